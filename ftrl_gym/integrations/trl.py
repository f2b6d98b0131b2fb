"""TRL: FTRL tasks, tools and the Solve-F1 reward in the form ``trl.GRPOTrainer`` takes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym

from ftrl_gym.envs.chat_template import render_chat_prompt
from ftrl_gym.envs.registration import CUSTOM_ID
from ftrl_gym.envs.tool_use_env import ToolUseEnv
from ftrl_gym.integrations.prompts import with_tools_system_message
from ftrl_gym.integrations.trl_tools import tool_method
from ftrl_gym.sandbox import Sandbox, SandboxConfig
from ftrl_gym.tasks import TaskRecord


class TaskToolEnvironment:
    """Base of the per-task TRL environments: a ``ToolUseEnv`` episode whose tools are its public methods.

    TRL's ``environment_factory`` exposes every public method except ``reset`` and ``get_reward`` as a
    tool, so this class defines no other public method; :meth:`TRLAdapter.environment_factory` makes
    one subclass per task with one coroutine method per tool. TRL gathers the coroutine calls of one
    assistant turn (``asyncio.gather``): each call records itself and yields once, so by the time the
    first resumes the whole turn is known, and the turn is stepped through ``ToolUseEnv.step`` as one
    assistant message with ``tool_calls``. Each tool therefore runs once per call, in the sandbox,
    and the env scores the turn (SPEC 3); :class:`EpisodeReturn` steps the final text turn and reads
    the return. Failures come back as the tool's error line, never as an exception.
    """

    task: TaskRecord
    """The task whose tools the subclass exposes (set on the subclass)."""

    def __init__(self, make_env: Callable[[TaskRecord], gym.Env]) -> None:
        """Create an environment; no sandbox session opens before the first ``reset``.

        Args:
            make_env: Builds a ``ToolUseEnv`` whose only task is the given one.
        """
        self._env = make_env(self.task)
        self._pending: _PendingTurn | None = None
        self._rewards: list[float] = []
        self._done = True

    def reset(self, **row: Any) -> None:
        """Start the task's episode: a fresh sandbox session and world state.

        Args:
            **row: The dataset row (TRL passes it; the prompt already holds the question).
        """
        self._env.reset(options={"task_index": 0})
        self._pending = None
        self._rewards = []
        self._done = False

    @property
    def tool_use_env(self) -> gym.Env:
        """The episode's ``ToolUseEnv`` (a property, so TRL does not take it for a tool)."""
        return self._env

    @property
    def turn_rewards(self) -> tuple[float, ...]:
        """The env's rewards of the turns stepped so far in this episode."""
        return tuple(self._rewards)

    def _finish(self, completion: Sequence[Mapping[str, Any]] | str) -> float:
        """Step the rollout's final text turn, if it has one not stepped yet; return the episode's return.

        Args:
            completion: TRL's completion messages (or text for a single-turn rollout).

        Returns:
            The sum of the env's turn rewards.
        """
        turns = assistant_turns(completion)
        last = turns[-1] if turns else None
        if (
            not self._done
            and last is not None
            and not (isinstance(last, dict) and last.get("tool_calls"))
        ):
            self._step(last)
        return sum(self._rewards)

    async def _call(self, name: str, arguments: dict[str, Any]) -> str:
        turn = self._pending
        if turn is None:
            turn = self._pending = _PendingTurn()
        index = len(turn.calls)
        turn.calls.append(
            {"type": "function", "function": {"name": name, "arguments": dict(arguments)}}
        )
        await asyncio.sleep(0)  # the turn's other gathered calls record themselves meanwhile
        if turn.results is None:
            self._pending = None
            turn.results = self._step_turn(turn.calls)
        return turn.results[index]

    def _step_turn(self, calls: list[dict[str, Any]]) -> list[str]:
        if self._done:
            return [EPISODE_OVER] * len(calls)
        info = self._step({"role": "assistant", "content": "", "tool_calls": calls})
        texts = [result["text"] for result in info["tool_results"]]
        missing = len(calls) - len(texts)
        return texts + [f"error: call not parsed: {'; '.join(info['parse_errors'])}"] * missing

    def _step(self, action: Any) -> dict[str, Any]:
        _, reward, terminated, truncated, info = self._env.step(action)
        self._rewards.append(float(reward))
        self._done = terminated or truncated
        return info

    def _close(self) -> None:
        self._env.close()


EPISODE_OVER = "error: call not run: the episode is over (max_turns reached)"
"""What a tool call returns after the env has truncated the episode."""


@dataclass
class _PendingTurn:
    """The calls of the assistant turn being gathered, and their results once stepped."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    results: list[str] | None = None


async def _run_tool(environment: TaskToolEnvironment, name: str, arguments: dict[str, Any]) -> str:
    return await environment._call(name, arguments)


class EpisodeReturn:
    """The TRL reward of ``environment_factory`` rollouts: the return of the episode each environment played.

    The tool calls were stepped through the environment's ``ToolUseEnv`` while TRL ran them; this
    steps the rollout's final text turn (no tool runs) and returns the sum of the turn rewards.
    TRL passes the rollouts' environment instances as ``environments``.
    """

    __name__ = "solve_f1"

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        environments: Sequence[TaskToolEnvironment] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        """One return per rollout.

        Args:
            prompts: The prompts (unused).
            completions: TRL's completion messages, one list per rollout.
            environments: The rollouts' environments, in the same order.
            **kwargs: Dataset columns and TRL's extras (ignored).

        Returns:
            Each episode's summed turn rewards.

        Raises:
            ValueError: No environments came (the trainer was built without ``environment_factory``).
        """
        if environments is None:
            raise ValueError(
                "EpisodeReturn scores environment_factory rollouts: pass "
                "environment_factory=adapter.environment_factory() to GRPOTrainer, or use "
                "adapter.reward_func with adapter.prompt_dataset(tokenizer)"
            )
        return [env._finish(completion) for env, completion in zip(environments, completions)]


class SolveF1Reward:
    """A TRL reward function for per-turn prompts: each completion stepped through the env as turns.

    TRL calls it as ``reward(prompts=..., completions=..., task_index=[...], **columns)``. A completion
    is text (one assistant turn, the paper's per-turn scheme: its calls run here, once) or a list of
    messages whose assistant messages are stepped in order through a ``ToolUseEnv`` reset to the row's
    task, so the reward is exactly the env's SPEC 3 reward summed over the turns. For
    ``environment_factory`` rollouts use :class:`EpisodeReturn`, which does not run the tools again.
    """

    __name__ = "solve_f1"

    def __init__(self, env: gym.Env) -> None:
        """Score with an env.

        Args:
            env: A ``ToolUseEnv`` over the dataset's tasks (``task_index`` indexes its tasks).
        """
        self.env = env

    def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        task_index: Sequence[int],
        **kwargs: Any,
    ) -> list[float]:
        """One reward per completion.

        Args:
            prompts: The prompts (unused: the task fixes the opening conversation).
            completions: Completion texts, or lists of messages.
            task_index: The dataset column naming each row's task.
            **kwargs: Other columns and TRL's extras (ignored).

        Returns:
            The summed turn rewards.
        """
        return [
            self.score(int(index), completion) for index, completion in zip(task_index, completions)
        ]

    def score(self, task_index: int, completion: str | Sequence[Mapping[str, Any]]) -> float:
        """Replay one completion from the start of task ``task_index``.

        Args:
            task_index: The task.
            completion: Text, or messages in which every assistant message is one turn.

        Returns:
            The sum of the turn rewards until the episode ends or the turns run out.
        """
        self.env.reset(options={"task_index": task_index})
        total = 0.0
        for turn in assistant_turns(completion):
            _, reward, terminated, truncated, _ = self.env.step(turn)
            total += float(reward)
            if terminated or truncated:
                break
        return total


def assistant_turns(completion: str | Sequence[Mapping[str, Any]]) -> list[Any]:
    """The assistant turns of a completion: the text itself, or its assistant messages.

    Args:
        completion: Completion text, or chat messages.

    Returns:
        Actions ``ToolUseEnv.step`` takes, in order.
    """
    if isinstance(completion, str):
        return [completion]
    return [dict(message) for message in completion if message.get("role") == "assistant"]


class TRLAdapter:
    """An FTRL env's tasks, tools and reward for ``trl.GRPOTrainer``.

    Two ways to train:

    - **per turn** (the paper's scheme): ``prompt_dataset(tokenizer)`` holds each task's opening
      prompt rendered with its tools; :attr:`reward_func` steps the completion as one assistant turn.
    - **multi-turn with tools** (TRL's ``environment_factory``): ``environment_dataset()`` routes each row
      to its task's environment, whose methods are the task's tools and which steps each turn through
      a ``ToolUseEnv`` as TRL runs the calls; :attr:`episode_reward` returns the episode's return.

    Example:
        >>> adapter = TRLAdapter("FTRL-MultiHop-v0", split="test", num_tasks=64)
        >>> trainer = GRPOTrainer(model, reward_funcs=adapter.episode_reward, args=config,
        ...                       train_dataset=adapter.environment_dataset(),
        ...                       environment_factory=adapter.environment_factory())
    """

    def __init__(
        self,
        env_id: str = "FTRL-MultiHop-v0",
        *,
        tasks: str | Iterable[TaskRecord | Mapping[str, Any]] | None = None,
        num_tasks: int | None = None,
        tool_timeout: float = 10.0,
        tool_memory_mb: int = 1024,
        **env_kwargs: Any,
    ) -> None:
        """Load the tasks and start the sandbox the tools and the reward share.

        Args:
            env_id: A built-in FTRL id (ignored when ``tasks`` is given).
            tasks: A JSONL path or records (``FTRL-Custom-v0``).
            num_tasks: Keep only the first ``num_tasks`` tasks.
            tool_timeout: Seconds per tool call.
            tool_memory_mb: Memory limit of the sandbox worker.
            **env_kwargs: More ``gym.make`` keywords (``split``, ``max_turns``, ``reward``).
        """
        self.sandbox = Sandbox(SandboxConfig(timeout_s=tool_timeout, memory_mb=tool_memory_mb))
        kwargs = dict(
            env_kwargs,
            sandbox=self.sandbox,
            tool_timeout=tool_timeout,
            tool_memory_mb=tool_memory_mb,
        )
        env = (
            gym.make(CUSTOM_ID, tasks=tasks, **kwargs)
            if tasks is not None
            else gym.make(env_id, **kwargs)
        )
        if num_tasks is not None:
            env.unwrapped.tasks = env.unwrapped.tasks[:num_tasks]
        self.env = env
        self.tasks: list[TaskRecord] = env.unwrapped.tasks
        self.reward_func = SolveF1Reward(env)
        self.episode_reward = EpisodeReturn()

    def prompt_dataset(self, tokenizer: Any, **template_kwargs: Any) -> Any:
        """Rows ``{"prompt": text, "task_index": i}``: each task's opening prompt rendered with its tools.

        Args:
            tokenizer: A ``transformers`` tokenizer with a chat template; one that ignores ``tools=``
                (SmolLM2's) gets the tools in the system message (:func:`render_task_prompt`).
            **template_kwargs: Passed to the chat template.

        Returns:
            A ``datasets.Dataset`` in TRL's standard (text) format.
        """
        from datasets import Dataset

        prompts = [
            render_task_prompt(tokenizer, t.messages, t.tools, **template_kwargs)
            for t in self.tasks
        ]
        return Dataset.from_dict({"prompt": prompts, "task_index": list(range(len(self.tasks)))})

    def environment_dataset(self) -> Any:
        """Rows ``{"prompt": messages, "environment": key, "task_index": i}`` for ``environment_factory``.

        Returns:
            A ``datasets.Dataset`` in TRL's conversational format.
        """
        from datasets import Dataset

        return Dataset.from_dict(
            {
                "prompt": [t.messages for t in self.tasks],
                "environment": [environment_key(i) for i in range(len(self.tasks))],
                "task_index": list(range(len(self.tasks))),
            }
        )

    def environment_factory(self) -> dict[str, Callable[[], TaskToolEnvironment]]:
        """One environment class per task, keyed like ``environment_dataset``'s ``environment`` column.

        Returns:
            ``{key: factory}`` for ``GRPOTrainer(environment_factory=...)``.

        Raises:
            ValueError: A task's tool or parameter name cannot be a Python method or argument.
        """
        return {
            environment_key(i): _environment_class(task, i, self._task_env)
            for i, task in enumerate(self.tasks)
        }

    def close(self) -> None:
        """Close the env and the sandbox (kills its worker processes)."""
        self.env.close()
        self.sandbox.close()

    def _task_env(self, task: TaskRecord) -> gym.Env:
        """A ``ToolUseEnv`` over one task with the adapter's settings and shared sandbox."""
        return ToolUseEnv([task], sandbox=self.sandbox, **asdict(self.env.unwrapped.config))


def render_task_prompt(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    **template_kwargs: Any,
) -> str:
    """The next-turn prompt with the tools, whether or not the chat template renders ``tools=``.

    The template renders ``tools=`` itself when that changes its output; otherwise (SmolLM2's
    template) the tool list and call format go in the system message (``with_tools_system_message``).

    Args:
        tokenizer: A ``transformers`` tokenizer with a chat template.
        messages: The conversation, OpenAI format.
        tools: OpenAI function-tool schemas.
        **template_kwargs: Passed to the chat template.

    Returns:
        The prompt text, ending with the assistant generation prompt.
    """
    with_tools = render_chat_prompt(tokenizer, messages, tools, **template_kwargs)
    if not tools or with_tools != render_chat_prompt(tokenizer, messages, None, **template_kwargs):
        return with_tools
    return render_chat_prompt(
        tokenizer, with_tools_system_message(messages, tools), None, **template_kwargs
    )


def environment_key(task_index: int) -> str:
    """The ``environment`` value of task ``task_index``.

    Args:
        task_index: Index into the adapter's tasks.

    Returns:
        ``"task_<index>"``.
    """
    return f"task_{task_index}"


class _Factory:
    """Builds instances of one task's environment class around the adapter's env maker."""

    def __init__(
        self, cls: type[TaskToolEnvironment], make_env: Callable[[TaskRecord], gym.Env]
    ) -> None:
        self.cls = cls
        self.make_env = make_env

    def __call__(self) -> TaskToolEnvironment:
        return self.cls(self.make_env)


def _environment_class(
    task: TaskRecord, index: int, make_env: Callable[[TaskRecord], gym.Env]
) -> _Factory:
    methods = {tool["function"]["name"]: tool_method(tool, _run_tool) for tool in task.tools}
    cls = type(f"FTRLTask{index}Environment", (TaskToolEnvironment,), {"task": task, **methods})
    return _Factory(cls, make_env)
