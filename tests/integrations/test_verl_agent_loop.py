"""verl multi-turn: FTRLAgentLoop plays episodes through verl's own agent-loop and reward-loop code.

Needs verl (it pins ``transformers<5.11``): ``.ci/verl_venv.sh`` makes the side venv these tests run in.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

pytest.importorskip("pandas", reason="verl tests need pandas: pip install 'ftrl-gym[verl]'")
pytest.importorskip("verl", reason="verl is installed in a side venv: .ci/verl_venv.sh")

import ray
from hydra import compose, initialize_config_dir
from transformers import AutoTokenizer
from verl import DataProto
from verl.experimental.agent_loop.agent_loop import AgentLoopManager, DictConfigWrap
from verl.experimental.reward_loop import RewardLoopManager
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn
from verl.workers.rollout.llm_server import LLMServerClient
from verl.workers.rollout.replica import TokenOutput
from verl.workers.rollout.router import get_router_handle

import ftrl_gym.integrations.verl as ftrl_verl
from ftrl_gym.agents.models import resolve_model
from ftrl_gym.integrations.verl_agent_loop import AGENT_NAME, FTRLAgentLoop
from ftrl_gym.integrations.verl_generator import TransformersTokenServer

ENV_ID = "FTRL-MultiHop-v0"
MODEL_ENV_ID = (
    "FTRL-SingleHop-v0"  # SmolLM2's greedy reply to its third test task is a malformed call
)
CONFIGS = Path(ftrl_verl.__file__).parent / "verl_configs"
VERL_CONFIGS = Path(__import__("verl").__file__).parent / "trainer" / "config"
PROMPT_LENGTH, RESPONSE_LENGTH, MAX_NEW_TOKENS = 1024, 192, 64


def trainer_config(model: str, **overrides: object):
    """verl's ``ppo_trainer`` config for a CPU rollout of FTRLAgentLoop scored by ``compute_score``."""
    settings = {
        "actor_rollout_ref.model.path": model,
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.prompt_length": PROMPT_LENGTH,
        "actor_rollout_ref.rollout.response_length": RESPONSE_LENGTH,
        "actor_rollout_ref.rollout.temperature": 0,
        "actor_rollout_ref.rollout.agent.num_workers": 1,
        "actor_rollout_ref.rollout.agent.default_agent_loop": AGENT_NAME,
        "actor_rollout_ref.rollout.agent.agent_loop_config_path": str(CONFIGS / "agent_loop.yaml"),
        "actor_rollout_ref.rollout.multi_turn.max_assistant_turns": 3,
        "reward.num_workers": 1,
        "reward.custom_reward_function.path": ftrl_verl.__file__,
        "reward.custom_reward_function.name": "compute_score",
        "data.max_prompt_length": PROMPT_LENGTH,
        "data.dataloader_num_workers": 0,
        **overrides,
    }
    with initialize_config_dir(config_dir=str(VERL_CONFIGS), version_base=None):
        return compose("ppo_trainer", overrides=[f"{k}={v}" for k, v in settings.items()])


@pytest.fixture(scope="module")
def tasks():
    env = gym.make(ENV_ID, split="test")
    picked = env.unwrapped.tasks[:2]
    env.close()
    return picked


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_model("smollm2"), local_files_only=True)


def split_runs(mask: list[int], ids: list[int]) -> list[tuple[int, list[int]]]:
    """Consecutive runs of equal mask values: ``[(mask value, ids), ...]``."""
    runs: list[tuple[int, list[int]]] = []
    for value, token in zip(mask, ids):
        if runs and runs[-1][0] == value:
            runs[-1][1].append(token)
        else:
            runs.append((value, [token]))
    return runs


def replay(env_id: str, task_index: int, turns: list[str]) -> tuple[list[float], dict]:
    """The env's rewards for these assistant turns, stepped afresh through ``gym.make``."""
    env = gym.make(env_id, split="test", max_turns=3)
    try:
        env.reset(options={"task_index": task_index})
        rewards, info = [], {}
        for text in turns:
            _, reward, terminated, truncated, info = env.step(text)
            rewards.append(float(reward))
            if terminated or truncated:
                break
        return rewards, info["metrics"]
    finally:
        env.close()


@pytest.mark.slow
def test_smollm2_episodes_through_verl_agent_and_reward_loops(tokenizer, tmp_path):
    """SmolLM2 on CPU behind verl's server client plays three episodes; verl's reward loop scores them."""
    env = gym.make(MODEL_ENV_ID, split="test")
    tasks = env.unwrapped.tasks[:3]
    env.close()
    model = resolve_model("smollm2")
    loops = tmp_path / "agent_loop.yaml"
    loops.write_text(
        (CONFIGS / "agent_loop.yaml")
        .read_text()
        .replace("token_builder: auto", "token_builder: qwen")
    )
    config = trainer_config(
        model,
        **{
            "actor_rollout_ref.rollout.agent.agent_loop_config_path": str(loops),
            "+reward.custom_reward_function.reward_kwargs.episode_score": "return",
        },
    )
    path = ftrl_verl.write_parquet(tasks, tmp_path / "episodes.parquet", agent_name=AGENT_NAME)
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}},
    )
    try:
        server = ray.remote(TransformersTokenServer).remote(model, MAX_NEW_TOKENS)
        client = LLMServerClient(config, get_router_handle({"cpu-0": server}))
        rewards = RewardLoopManager(config)
        manager = AgentLoopManager.create(
            config, client, reward_loop_worker_handles=rewards.reward_loop_worker_handles
        )
        dataset = RLHFDataset(
            str(path), tokenizer, config.data
        )  # verl reads the rows as its trainer does
        batch = DataProto.from_single_dict(collate_fn([dataset[i] for i in range(len(dataset))]))
        output = manager.generate_sequences(batch)
    finally:
        ray.shutdown()

    assert len(output) == 3
    scores = output.batch["rm_scores"].sum(dim=1).tolist()  # verl's reward loop: compute_score
    returns = []
    for i, task in enumerate(tasks):
        width = int(output.batch["attention_mask"][i, PROMPT_LENGTH:].sum())
        ids = output.batch["responses"][i, :width].tolist()
        mask = output.batch["response_mask"][i, :width].tolist()
        runs = split_runs(mask, ids)
        turns = [
            tokenizer.decode(run, skip_special_tokens=True) for value, run in runs if value == 1
        ]
        observations = [tokenizer.decode(run) for value, run in runs if value == 0]
        assert runs[0][0] == 1 and len(turns) == len(observations) + 1
        assert all("<tool_response>" in text for text in observations), observations
        turn_scores = list(output.non_tensor_batch["turn_scores"][i])
        expected_rewards, metrics = replay(MODEL_ENV_ID, i, turns)
        assert turn_scores == pytest.approx(expected_rewards)
        assert scores[i] == pytest.approx(sum(expected_rewards))  # episode_score=return
        assert output.non_tensor_batch["solve_f1"][i] == pytest.approx(metrics["solve_f1"])
        assert output.non_tensor_batch["num_calls"][i] == metrics["calls"]
        prompt_mask = output.batch["attention_mask"][i, :PROMPT_LENGTH].bool()
        prompt = tokenizer.decode(output.batch["prompts"][i][prompt_mask])
        assert task.messages[0]["content"] in prompt and '"name":' in prompt
        returns.append(sum(expected_rewards))
    print(
        "turns per episode:",
        [len(t) for t in output.non_tensor_batch["turn_scores"]],
        "returns:",
        returns,
    )


class ScriptedPolicy:
    """Stands in for the policy (not for verl): answers each request with the next scripted turn.

    Records the prompt ids of every request, so the test can check that each context extends the
    previous one by exactly the generated ids and the observation.
    """

    def __init__(self, tokenizer, replies: list[str]) -> None:
        self.replies = [
            tokenizer.encode(r + tokenizer.eos_token, add_special_tokens=False) for r in replies
        ]
        self.prompts: list[list[int]] = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs) -> TokenOutput:
        ids = self.replies[len(self.prompts)]
        self.prompts.append(list(prompt_ids))
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), stop_reason="completed")


def oracle_replies(task) -> list[str]:
    """The reference calls, one turn each, then the answer (every turn earns 1.0 under SPEC 3)."""
    calls = [
        "\n".join(f"<tool_call>\n{json.dumps(call)}\n</tool_call>" for call in turn)
        for turn in task.solution
    ]
    return [*calls, f"The answer is {task.answer}."]


def play_scripted(tokenizer, row, replies: list[str], max_assistant_turns) -> tuple:
    """Run FTRLAgentLoop in this process, as verl's AgentLoopWorker instantiates and runs it."""
    import asyncio

    config = trainer_config(
        resolve_model("smollm2"),
        **{
            "actor_rollout_ref.rollout.response_length": 1024,
            "actor_rollout_ref.rollout.multi_turn.max_assistant_turns": max_assistant_turns,
        },
    )
    policy = ScriptedPolicy(tokenizer, replies)

    async def run():
        loop = FTRLAgentLoop(
            trainer_config=DictConfigWrap(config),
            server_manager=policy,
            tokenizer=tokenizer,
            processor=None,
            dataset_cls=RLHFDataset,
            data_config=DictConfigWrap(config.data),
            name=AGENT_NAME,
            token_builder="qwen",
        )
        return await loop.run({"temperature": 1.0, "logprobs": True}, **row)

    return asyncio.run(run()), policy


@pytest.mark.parametrize(
    ("max_turns", "turn_scores", "solve_f1"),
    [("null", [1.0, 1.0, 1.0, 1.0, 1.0], 1.0), (2, [1.0, 1.0], 2 * 2 / (2 + 4))],
)
def test_oracle_episode_tokens_masks_and_env_rewards(
    tasks, tokenizer, max_turns, turn_scores, solve_f1
):
    task = tasks[0]
    row = ftrl_verl.task_to_row(task, 0, agent_name=AGENT_NAME)
    row = {
        "raw_prompt": row["prompt"],
        "extra_info": row["extra_info"],
        "reward_model": row["reward_model"],
    }
    replies = oracle_replies(task)
    output, policy = play_scripted(tokenizer, row, replies, max_turns)

    assert output.extra_fields["turn_scores"] == pytest.approx(turn_scores)
    episode = output.extra_fields[ftrl_verl.EPISODE_KEY]
    assert episode["solve_f1"] == pytest.approx(solve_f1) and episode["turns"] == len(turn_scores)
    runs = split_runs(output.response_mask, output.response_ids)
    generated = [ids for value, ids in runs if value == 1]
    assert (
        generated == policy.replies[: len(turn_scores)]
    )  # the tokens trained on are the tokens generated
    observations = [tokenizer.decode(ids) for value, ids in runs if value == 0]
    assert len(observations) == len(turn_scores) - 1
    for text, answers in zip(observations, task.unsolved_set.values()):
        assert text.startswith("\n<|im_start|>user\n<tool_response>\n") and answers[0] in text, text
        assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert output.response_logprobs == [-0.5 if m else 0.0 for m in output.response_mask]
    played = [{"role": "assistant", "content": r} for r in replies[: len(turn_scores)]]
    conversation = ftrl_verl.hermes_text_messages(row["raw_prompt"]) + [
        message
        for assistant, observation in zip(played, observations)
        for message in (
            assistant,
            {"role": "user", "content": observation.split("user\n", 1)[1].split("<|im_end|>")[0]},
        )
    ]
    rendered = tokenizer.apply_chat_template(
        conversation, tokenize=False, add_generation_prompt=True
    )
    assert (
        tokenizer.decode(policy.prompts[len(observations)]) == rendered
    )  # the template's own text
    for before, after, reply in zip(policy.prompts, policy.prompts[1:], policy.replies):
        assert after[: len(before) + len(reply)] == before + reply
    assert output.prompt_ids == policy.prompts[0]
    extra_info = {**row["extra_info"], **output.extra_fields, "num_turns": output.num_turns}
    score = ftrl_verl.compute_score("ftrl_gym/multi_hop", "", task.answer, extra_info)
    assert score["score"] == pytest.approx(solve_f1)
    assert (score["num_calls"], score["num_solved"]) == (min(4, len(turn_scores)),) * 2
    summed = ftrl_verl.compute_score(
        "ftrl_gym/multi_hop", "", task.answer, extra_info, episode_score="return"
    )
    assert summed["score"] == pytest.approx(sum(turn_scores))
