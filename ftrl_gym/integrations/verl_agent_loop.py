"""verl multi-turn: an agent loop in verl's registry that plays ftrl-gym episodes token in, token out."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopOutput, register
from verl.utils.tokenizer.continuous_token_wiring import create_continuous_token_builder

from ftrl_gym.envs.tool_use_env import ToolUseEnv
from ftrl_gym.integrations.verl import AGENT_NAME, EPISODE_KEY, row_task, shared_sandbox


@register(AGENT_NAME)
class FTRLAgentLoop(AgentLoopBase):
    """Plays one ftrl-gym episode per row through verl's LLM server, scored by ``ToolUseEnv.step``.

    The context is one growing list of token ids, built with verl's Continuous Token builder: the
    row's prompt is rendered once; each generation is appended exactly as generated (mask 1); the
    env's observation after a turn with calls (the ``<tool_response>`` blocks) is appended as a user
    message (mask 0), and so on until the env ends the episode (a turn without a call, ``max_turns``)
    or ``rollout.response_length`` is used up.

    The episode's rewards are the env's: ``extra_fields["turn_scores"]`` holds each turn's reward
    (verl's own key for per-turn scores) and ``extra_fields["ftrl_episode"]`` the episode summary
    (``info["metrics"]`` after the last turn: ``solve_p``, ``solve_r``, ``solve_f1``, ``calls``,
    ``solved``, ``total_answers``; plus ``return``, the summed turn rewards, and ``turns``). The loop
    sets no ``reward_score``: verl's reward loop calls ``ftrl_gym.integrations.verl.compute_score``,
    which returns the episode's number from that summary.

    Args:
        *args: verl's ``AgentLoopBase`` arguments (passed by ``AgentLoopWorker``).
        max_turns: Assistant turns before the env truncates the episode (the env's ``max_turns``);
            ``rollout.multi_turn.max_assistant_turns`` wins when it is set.
        reward: The env's turn reward: ``solve_f1``, ``solve_p``, ``solve_r`` or ``solve_pr``.
        token_builder: verl's Continuous Token family (``auto``: from the model's ``model_type``).
            ChatML models that verl does not map (SmolLM2 is ``llama``) want ``qwen``: it puts back
            the newline the template writes after ``<|im_end|>`` before each observation (mask 0).
        tools: verl's global tool list (unused: each task brings its own tools).
        **kwargs: verl's other keywords (``name`` from the agent-loop config file, ...).
    """

    def __init__(
        self,
        *args: Any,
        max_turns: int = 20,
        reward: str = "solve_f1",
        token_builder: str = "auto",
        tools: Any = None,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("name", None)
        super().__init__(*args, **kwargs)
        if token_builder != "auto":
            self.continuous_token_builder = create_continuous_token_builder(
                self.tokenizer,
                model_family=token_builder,
                chat_template_kwargs=self.apply_chat_template_kwargs,
            )
        self.max_turns = int(self.rollout_config.multi_turn.max_assistant_turns or max_turns)
        self.reward = reward
        self.response_length = int(self.rollout_config.response_length)

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Play the row's task to the end of its episode.

        Args:
            sampling_params: verl's sampling parameters for the server.
            **kwargs: The row's fields: ``raw_prompt`` (the prompt messages), ``extra_info`` (the
                task, as :func:`~ftrl_gym.integrations.verl.task_to_row` writes it) and
                ``reward_model``.

        Returns:
            Prompt ids, response ids (generations and observations), the response mask (1 on
            generated tokens, 0 on observations), log-probs when the server returns them, the
            number of messages and the env's rewards in ``extra_fields``.
        """
        ground_truth = (kwargs.get("reward_model") or {}).get("ground_truth", "")
        env = ToolUseEnv(
            [row_task(kwargs["extra_info"], ground_truth)],
            sandbox=shared_sandbox(),
            max_turns=self.max_turns,
            reward=self.reward,
        )
        try:
            return await self._play(env, list(kwargs["raw_prompt"]), sampling_params)
        finally:
            env.close()

    async def _play(
        self, env: ToolUseEnv, messages: list[dict[str, Any]], sampling_params: dict[str, Any]
    ) -> AgentLoopOutput:
        """The episode loop; ``messages`` grows with the turns as the template sees them."""
        await self.loop.run_in_executor(None, lambda: env.reset(options={"task_index": 0}))
        prompt_ids = await self.ct_build_initial_tokens(messages)
        tokens, mask = list(prompt_ids), []
        logprobs: list[float] | None = None
        turn_scores: list[float] = []
        request_id, info = uuid4().hex, {}
        while True:
            output = await self.server_manager.generate(
                request_id=request_id, prompt_ids=tokens, sampling_params=sampling_params
            )
            if output.log_probs and logprobs is None:
                logprobs = []
            merged, mask, logprobs = await self.ct_merge_assistant_token(
                tokens,
                output.token_ids,
                mask,
                logprobs,
                assistant_logprobs=output.log_probs or None,
            )
            tokens = merged.token_ids
            text = self.tokenizer.decode(output.token_ids, skip_special_tokens=True)
            observation, reward, terminated, truncated, info = await self.loop.run_in_executor(
                None, env.step, text
            )
            turn_scores.append(float(reward))
            messages.append({"role": "assistant", "content": text})
            if terminated or truncated or len(mask) >= self.response_length:
                break
            previous = list(messages)
            messages.append({"role": "user", "content": observation})
            merged, next_mask, next_logprobs = await self.ct_merge_context_msg(
                previous, messages, tokens, mask, logprobs
            )
            if len(next_mask) >= self.response_length:
                break
            tokens, mask, logprobs = merged.token_ids, next_mask, next_logprobs
        return self._output(tokens, mask, logprobs, len(messages), turn_scores, info)

    def _output(
        self,
        tokens: list[int],
        mask: list[int],
        logprobs: list[float] | None,
        num_messages: int,
        turn_scores: list[float],
        info: dict[str, Any],
    ) -> AgentLoopOutput:
        """verl's output: the context split into prompt and response, cut to ``response_length``."""
        split = len(tokens) - len(mask)
        episode = dict(info["metrics"], turns=len(turn_scores), **{"return": sum(turn_scores)})
        return AgentLoopOutput(
            prompt_ids=tokens[:split],
            response_ids=tokens[split:][: self.response_length],
            response_mask=mask[: self.response_length],
            response_logprobs=logprobs[: self.response_length] if logprobs else None,
            num_turns=num_messages,
            metrics={},
            extra_fields={"turn_scores": turn_scores, "tool_rewards": [], EPISODE_KEY: episode},
        )
