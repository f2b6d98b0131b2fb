"""Token in, token out: the learner's ids are the generated ids, across tool turns (invariant 5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftrl_gym.agents.chat import render_prompt
from ftrl_gym.agents.training.generation import Completion, SamplingSettings
from ftrl_gym.agents.training.rollout import EnvPool, EpisodeSpec, TokenRenderer, run_episodes

WEATHER_TASKS = Path(__file__).parents[1] / "data" / "tasks.jsonl"


class ScriptedGenerator:
    """Returns fixed token ids turn after turn, recording the prompts it was given."""

    def __init__(self, turns: list[list[int]]) -> None:
        self.turns = list(turns)
        self.prompts: list[list[int]] = []

    def generate(self, prompts, settings, seeds=None):
        self.prompts.extend(list(p) for p in prompts)
        ids = self.turns.pop(0)
        return [[Completion(ids, [-0.5] * len(ids), True)] for _ in prompts]

    def sync_weights(self, model):
        """Nothing to sync."""

    def close(self):
        """Nothing to close."""


@pytest.fixture
def renderer(tokenizer) -> TokenRenderer:
    return TokenRenderer(tokenizer)


def _play(renderer: TokenRenderer, turns: list[list[int]]):
    pool = EnvPool(max_turns=5, reward="solve_f1", tasks=str(WEATHER_TASKS))
    generator = ScriptedGenerator(turns)
    try:
        spec = EpisodeSpec("FTRL-Custom-v0", 0, 0, "g")
        (episode,) = run_episodes(
            [spec], generator, renderer, pool, SamplingSettings(max_new_tokens=64), 4096
        )
    finally:
        pool.close()
    return episode, generator, None


def test_generated_ids_reach_the_learner_unchanged_across_tool_turns(tokenizer, renderer) -> None:
    eos = renderer.eos_id
    # "Paris" split into two tokens, JSON keys in an unusual order, no newlines: none of it is what
    # re-rendering the env's messages and re-tokenising would produce.
    call = (
        renderer.encode('<tool_call>{"arguments": {"city": "')
        + _by_character(renderer, "Paris")
        + renderer.encode('"}, "name": "get_weather"}</tool_call>')
    )
    answer = _by_character(renderer, "Sunny") + renderer.encode(", 21")
    assert renderer.encode("Sunny, 21") != answer  # not the canonical tokenisation of its text
    episode, generator, _ = _play(renderer, [call + [eos], answer + [eos]])

    generated = [t for t, m in zip(episode.token_ids, episode.loss_mask) if m]
    assert generated == call + [eos] + answer + [eos]
    assert [lp for lp, m in zip(episode.logprobs, episode.loss_mask) if m] == [-0.5] * len(
        generated
    )
    assert [t.reward for t in episode.turns] == [1.0, 1.0]  # 2q/(p+1) = 1, then the answer: 1/(1+0)
    first, second = generator.prompts
    assert second[: len(first) + len(call) + 1] == first + call + [eos]  # the context only grows
    assert episode.turns[1].prompt_ids == second


def test_context_text_is_the_chat_template_of_the_conversation(tokenizer, renderer) -> None:
    eos = renderer.eos_id
    call_text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    episode, _, _ = _play(
        renderer, [renderer.encode(call_text) + [eos], renderer.encode("Sunny, 21") + [eos]]
    )
    task_prompt = render_prompt(
        tokenizer,
        [{"role": "user", "content": "What is the weather in Paris right now?"}],
        _weather_tools(),
    )
    expected = (
        task_prompt + call_text + "<|im_end|>\n<|im_start|>tool\n"
        '{"city": "Paris", "sky": "Sunny", "temperature_c": 21}<|im_end|>\n<|im_start|>assistant\n'
        "Sunny, 21<|im_end|>"
    )
    assert tokenizer.decode(episode.token_ids) == expected


def test_rerendering_the_env_messages_would_drift(tokenizer, renderer) -> None:
    """The bug class avoided: re-render + re-tokenise changes the ids the policy produced."""
    eos = renderer.eos_id
    call = renderer.encode(
        '<tool_call>{"arguments": {"city": "Paris"}, "name": "get_weather"}</tool_call>'
    )
    episode, _, _ = _play(renderer, [call + [eos], renderer.encode("Sunny, 21") + [eos]])
    pool = EnvPool(max_turns=5, reward="solve_f1", tasks=str(WEATHER_TASKS))
    try:
        env = pool.get("FTRL-Custom-v0", 1)[0]
        _, info = env.reset(seed=0, options={"task_index": 0})
        _, _, _, _, info = env.step(tokenizer.decode(call))
        rerendered = renderer.encode(render_prompt(tokenizer, info["messages"], info["tools"]))
    finally:
        pool.close()
    ours = episode.turns[1].prompt_ids
    assert rerendered != ours
    assert (
        ours[: len(episode.turns[0].prompt_ids) + len(call)] == episode.turns[0].prompt_ids + call
    )


def _by_character(renderer: TokenRenderer, text: str) -> list[int]:
    return [i for character in text for i in renderer.encode(character)]


def _weather_tools():
    from ftrl_gym.tasks import load_tasks

    return load_tasks(WEATHER_TASKS)[0].tools
