"""Episodes through the envs, token in and token out: the policy generates ids, ``env.step`` scores them.

The context of an episode is one growing list of token ids. The opening prompt is rendered with the
model's chat template and tokenised once; after that only *new* text is tokenised (the tool results
and the next generation prompt), and the ids the policy generated are appended exactly as generated.
Nothing is ever re-rendered and re-tokenised, so the learner trains on the very tokens the policy
produced (invariant 5) even where the env re-formats the assistant's turn in ``info["messages"]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ftrl_gym.agents.chat import render_prompt
from ftrl_gym.agents.training.config import TrainConfig
from ftrl_gym.agents.training.generation import (
    Completion,
    Generator,
    SamplingSettings,
    request_seed,
)

import ftrl_gym  # noqa: F401  (registers the FTRL ids)
from ftrl_gym.envs.pool import EnvPool

SENTINEL = "\u2063FTRL-ASSISTANT-TURN\u2063"
"""Stands in for an assistant turn's content while the template text after it is measured."""


class TokenRenderer:
    """Turns conversations into token ids with the chat template, without re-tokenising history.

    Args:
        tokenizer: A transformers tokenizer with a chat template and an end-of-turn (eos) token.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.eos_id = int(tokenizer.eos_token_id)
        self.eos_text = str(tokenizer.eos_token)

    def encode(self, text: str) -> list[int]:
        """Tokenise template text (special tokens in it are parsed, none are added)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> list[int]:
        """The opening prompt: the whole conversation rendered, ending with the generation prompt."""
        return self.encode(render_prompt(self.tokenizer, messages, tools))

    def continuation_ids(
        self, messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
    ) -> list[int]:
        """Ids that follow an assistant turn's end-of-turn token: its tool messages and the next prompt.

        The last assistant message of ``messages`` is replaced by a sentinel; the template text after
        the sentinel and the end-of-turn marker is what the model reads next (for ChatML:
        ``"\\n<|im_start|>tool\\n…<|im_end|>\\n<|im_start|>assistant\\n"``).

        Args:
            messages: The conversation after the turn (``info["messages"]`` of ``env.step``).
            tools: The tool schemas.
        """
        last = max(i for i, m in enumerate(messages) if m.get("role") == "assistant")
        stand_in = [dict(m) for m in messages]
        stand_in[last] = {"role": "assistant", "content": SENTINEL}
        text = render_prompt(self.tokenizer, stand_in, tools)
        after = text.split(SENTINEL, 1)[1]
        if not after.startswith(self.eos_text):
            raise ValueError(f"the chat template does not close a turn with {self.eos_text!r}")
        return self.encode(after[len(self.eos_text) :])


def train_env_pool(config: TrainConfig) -> EnvPool:
    """The envs a training process steps: the run's train tasks, turns, reward and call charges."""
    return EnvPool(
        config.max_turns, config.reward, tasks=config.tasks, env_kwargs=config.train_env_kwargs()
    )


@dataclass
class Turn:
    """One assistant turn: the exact context it was generated from, what came out, what it scored."""

    prompt_ids: list[int]
    completion: Completion
    action: str
    reward: float


@dataclass
class Episode:
    """One env episode in token space.

    Attributes:
        env_id: The env's id.
        task_index: The task's index in the env's train split.
        seed: The seed the env was reset with (replays use it again).
        group: The id shared by episodes of the same task in one batch.
        token_ids: The whole conversation: prompt, generated ids, observation ids, ...
        loss_mask: 1 on ids the policy generated, 0 on prompt, tool and observation ids.
        logprobs: The generator's logprob at generated positions, 0.0 elsewhere.
        turn_of_token: The assistant turn each id belongs to (-1 for context).
        turns: The assistant turns in order.
        metrics: The env's episode metrics at the end (``info["metrics"]``).
        done: The episode has terminated or been truncated.
    """

    env_id: str
    task_index: int
    seed: int
    group: str
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turn_of_token: list[int] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    done: bool = False

    def extend(
        self, ids: Sequence[int], generated: bool, logprobs: Sequence[float] | None = None
    ) -> None:
        """Append ids to the context, marking whether the policy generated them."""
        self.token_ids.extend(ids)
        self.loss_mask.extend([1 if generated else 0] * len(ids))
        self.logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))
        self.turn_of_token.extend([len(self.turns) if generated else -1] * len(ids))


@dataclass(frozen=True)
class EpisodeSpec:
    """Which episode to run: a task of an env, a reset seed, and its group id."""

    env_id: str
    task_index: int
    seed: int
    group: str


def run_episodes(
    specs: Sequence[EpisodeSpec],
    generator: Generator,
    renderer: TokenRenderer,
    pool: EnvPool,
    settings: SamplingSettings,
    max_context_tokens: int,
) -> list[Episode]:
    """Play every episode to its end, all at once: each round, every open episode generates one turn.

    Args:
        specs: The episodes.
        generator: Samples one completion per open episode per round (``settings.n`` is ignored),
            each turn seeded by ``turn_seed``, so an episode plays the same wherever it runs.
        renderer: Tokenises prompts and observations.
        pool: Envs; episode ``i`` of an env id uses that id's ``i``-th env.
        settings: Sampling settings of each turn.
        max_context_tokens: An episode whose next turn could pass this length is stopped (truncated).

    Returns:
        The finished episodes, in the order of ``specs``.
    """
    envs = _assign_envs(specs, pool)
    episodes = []
    for spec, env in zip(specs, envs):
        _, info = env.reset(seed=spec.seed, options={"task_index": spec.task_index})
        episode = Episode(
            spec.env_id, spec.task_index, spec.seed, spec.group, metrics=dict(info["metrics"])
        )
        episode.extend(renderer.prompt_ids(info["messages"], info["tools"]), generated=False)
        episodes.append(episode)
    single = SamplingSettings(
        1, settings.max_new_tokens, settings.temperature, settings.top_p, settings.seed
    )
    while True:
        open_ = [i for i, e in enumerate(episodes) if not e.done]
        for i in open_:
            if len(episodes[i].token_ids) + settings.max_new_tokens > max_context_tokens:
                episodes[i].done = True
        open_ = [i for i in open_ if not episodes[i].done]
        if not open_:
            return episodes
        seeds = [turn_seed(settings.seed, specs[i], len(episodes[i].turns)) for i in open_]
        completions = generator.generate([episodes[i].token_ids for i in open_], single, seeds)
        for i, (completion,) in zip(open_, completions):
            take_turn(episodes[i], envs[i], completion, renderer)


def mean_metrics(episodes: Sequence[Episode], keys: Sequence[str]) -> dict[str, float]:
    """The mean of each of the env's episode metrics ``keys`` (0.0 where one lacks it) over episodes."""
    count = max(len(episodes), 1)
    return {k: sum(float(e.metrics.get(k, 0.0)) for e in episodes) / count for k in keys}


def turn_seed(run_seed: int, spec: EpisodeSpec, turn: int) -> int:
    """The sampling seed of one assistant turn of one episode: the same in any process or batch."""
    return request_seed(run_seed, spec.group, spec.env_id, spec.task_index, spec.seed, turn)


def _assign_envs(specs: Sequence[EpisodeSpec], pool: EnvPool) -> list[Any]:
    counts: dict[str, int] = {}
    for spec in specs:
        counts[spec.env_id] = counts.get(spec.env_id, 0) + 1
    available = {env_id: list(pool.get(env_id, n)) for env_id, n in counts.items()}
    return [available[spec.env_id].pop(0) for spec in specs]


def take_turn(
    episode: Episode, env: Any, completion: Completion, renderer: TokenRenderer
) -> dict[str, Any]:
    """Step the env with one completion and append its ids, then the observation's, to the context.

    Returns:
        The env's ``info`` after the step.
    """
    prompt = list(episode.token_ids)
    action = completion_text(renderer, completion)
    _, reward, terminated, truncated, info = env.step(action)
    episode.extend(completion.token_ids, generated=True, logprobs=completion.logprobs)
    episode.turns.append(Turn(prompt, completion, action, float(reward)))
    episode.metrics = dict(info["metrics"])
    episode.done = bool(terminated or truncated)
    if not completion.finished:
        episode.extend([renderer.eos_id], generated=False)
    if not episode.done:
        episode.extend(renderer.continuation_ids(info["messages"], info["tools"]), generated=False)
    return info


def completion_text(renderer: TokenRenderer, completion: Completion) -> str:
    """The text given to ``env.step``: the generated ids decoded, special tokens dropped."""
    return str(renderer.tokenizer.decode(completion.token_ids, skip_special_tokens=True))


def replay_and_score(
    env: Any, episode: Episode, turn: int, responses: Sequence[Completion], renderer: TokenRenderer
) -> list[float]:
    """Score alternative responses to one turn of an episode through the env itself.

    For each response the env is reset to the episode's task and seed, the episode's earlier actions
    are stepped again (tools are deterministic functions of their arguments and the state), and the
    response is stepped: its reward is the env's turn reward.

    Args:
        env: An env of the episode's id.
        episode: The sampled trajectory.
        turn: Which assistant turn the responses answer.
        responses: The candidate completions.
        renderer: Decodes completions to the text the env reads.

    Returns:
        One env reward per response.
    """
    rewards = []
    for response in responses:
        env.reset(seed=episode.seed, options={"task_index": episode.task_index})
        for earlier in episode.turns[:turn]:
            env.step(earlier.action)
        _, reward, *_ = env.step(completion_text(renderer, response))
        rewards.append(float(reward))
    return rewards
