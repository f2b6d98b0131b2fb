"""verl: the parquet rows read back with pandas, scored through ``compute_score`` as verl calls it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import gymnasium as gym
import pytest

pd = pytest.importorskip("pandas", reason="verl tests need pandas: pip install 'ftrl-gym[verl]'")
pytest.importorskip("pyarrow", reason="verl tests need pyarrow: pip install 'ftrl-gym[verl]'")

import ftrl_gym.integrations.verl as ftrl_verl
from ftrl_gym.tasks import load_tasks

ENV_ID = "FTRL-MultiHop-v0"
DATA = Path(__file__).resolve().parents[1] / "data" / "tasks.jsonl"


def call(name: str, **arguments) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


@pytest.fixture(scope="module")
def multihop(tmp_path_factory):
    """The first three FTRL-MultiHop-v0 test tasks and their parquet file."""
    env = gym.make(ENV_ID, split="test")
    tasks = env.unwrapped.tasks[:3]
    env.close()
    path = ftrl_verl.write_parquet(tasks, tmp_path_factory.mktemp("verl") / "train.parquet")
    return tasks, path


def responses_for(task) -> dict[str, float]:
    """Responses to the task's first turn and their rewards, computed by hand from SPEC 3."""
    first = task.solution[0][0]
    right = call(first["name"], **first["arguments"])
    return {
        right + "<|im_end|>": 2 * 1 / (1 + 1),
        right + call(first["name"], **first["arguments"]): 2 * 1 / (2 + 1),
        "": -0.5,
        "<tool_call>not json</tool_call>": -0.3,
        f"The answer is {task.answer}.": 1 / (1 + task.total_answers),
        "I do not know.": 0.0,
    }


def verl_call(row, response: str) -> dict:
    """Call ``compute_score`` the way verl's NaiveRewardManager does for one row."""
    extra_info = dict(row["extra_info"])
    extra_info.update(num_turns=None, rollout_reward_scores={})
    return ftrl_verl.compute_score(
        data_source=row["data_source"],
        solution_str=response,
        ground_truth=row["reward_model"]["ground_truth"],
        extra_info=extra_info,
    )


def test_parquet_layout_reads_back_with_pandas(multihop):
    tasks, path = multihop
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert len(frame) == 3
    row = frame.iloc[0]
    assert row["data_source"] == "ftrl_gym/multi_hop" and row["ability"] == "tool_use"
    assert row["reward_model"] == {"style": "rule", "ground_truth": tasks[0].answer}
    prompt = list(row["prompt"])
    assert [m["role"] for m in prompt] == ["system", "user"]
    assert prompt[1]["content"] == tasks[0].messages[0]["content"]
    assert all(f'"name": "{name}"' in prompt[0]["content"] for name in tasks[0].tool_names)
    info = row["extra_info"]
    assert json.loads(info["unsolved_set"]) == tasks[0].unsolved_set
    assert json.loads(info["codes"]) == tasks[0].codes
    assert json.loads(info["tools"]) == tasks[0].tools
    assert (info["index"], info["answer"], info["state"]) == (0, tasks[0].answer, "null")


def test_compute_score_matches_hand_values_and_the_env(multihop):
    tasks, path = multihop
    frame = pd.read_parquet(path)
    env = gym.make(ENV_ID, split="test")
    try:
        for i, task in enumerate(tasks):
            for response, expected in responses_for(task).items():
                score = verl_call(frame.iloc[i], response)
                assert score["score"] == pytest.approx(expected), (i, response)
                env.reset(options={"task_index": i})
                assert env.step(response)[1] == pytest.approx(score["score"])
    finally:
        env.close()
    first = tasks[0].solution[0][0]
    twice = verl_call(frame.iloc[0], 2 * call(first["name"], **first["arguments"]))
    assert (twice["num_calls"], twice["num_solved"]) == (2, 1)


def test_stateful_task_runs_with_its_world_state(tmp_path):
    bank = load_tasks(DATA)[2]
    frame = pd.read_parquet(ftrl_verl.write_parquet([bank], tmp_path / "bank.parquet"))
    response = call("transfer", from_account="checking", to_account="savings", amount=40) + call(
        "get_balance", account="savings"
    )
    score = verl_call(frame.iloc[0], response)
    assert score == {"score": pytest.approx(2 * 2 / 3), "num_calls": 2, "num_solved": 2}
    assert verl_call(frame.iloc[0], call("get_balance", account="savings"))["num_solved"] == 0


def test_verl_naive_reward_manager_scores_through_the_custom_function(multihop):
    verl = pytest.importorskip(
        "verl", reason="verl is installed in a side venv (it pins transformers<5.11): .ci/verl_venv.sh"
    )
    torch = pytest.importorskip("torch")
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from verl.workers.reward_manager.naive import NaiveRewardManager

    models = pytest.importorskip("ftrl_gym.agents.models")
    tokenizer = AutoTokenizer.from_pretrained(
        models.resolve_model("smollm2"), local_files_only=True
    )
    tasks, path = multihop
    frame = pd.read_parquet(path)
    config = OmegaConf.create(
        {
            "reward": {
                "custom_reward_function": {"path": ftrl_verl.__file__, "name": "compute_score"}
            }
        }
    )
    manager = NaiveRewardManager(
        tokenizer, num_examine=0, compute_score=get_custom_reward_fn(config)
    )
    rows, texts, expected = [], [], []
    for i, task in enumerate(tasks):
        for response, value in responses_for(task).items():
            if response:  # verl scores the last valid response token: an empty response has none
                rows.append(frame.iloc[i]), texts.append(response), expected.append(value)
    prompt_ids = [
        tokenizer.encode(tokenizer.apply_chat_template(list(r["prompt"]), tokenize=False))
        for r in rows
    ]
    response_ids = [tokenizer.encode(t) for t in texts]
    width_p, width_r = max(map(len, prompt_ids)), max(map(len, response_ids))
    pad = tokenizer.pad_token_id or 0
    prompts = torch.tensor([[pad] * (width_p - len(p)) + p for p in prompt_ids])
    responses = torch.tensor([r + [pad] * (width_r - len(r)) for r in response_ids])
    mask = torch.tensor(
        [
            [0] * (width_p - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (width_r - len(r))
            for p, r in zip(prompt_ids, response_ids)
        ]
    )
    import numpy as np

    data = verl.DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": mask},
        non_tensors={
            key: np.array([r[key] for r in rows], dtype=object)
            for key in ("data_source", "reward_model", "extra_info")
        },
    )
    out = manager(data, return_dict=True)
    assert out["reward_tensor"].sum(dim=1).tolist() == pytest.approx(expected)
    assert out["reward_extra_info"]["num_calls"][:2] == [1, 2]


def oracle_turns(task) -> list[str]:
    """The reference calls, one assistant turn each, then the answer."""
    return [
        *("\n".join(f"<tool_call>\n{json.dumps(c)}\n</tool_call>" for c in turn) for turn in task.solution),
        f"The answer is {task.answer}.",
    ]


def test_turn_rows_hold_every_prefix_and_score_like_the_env(multihop, tmp_path):
    tasks, _ = multihop
    episodes = [(task, oracle_turns(task)) for task in tasks[:2]]
    frame = pd.read_parquet(ftrl_verl.write_turn_parquet(episodes, tmp_path / "turns.parquet"))
    lengths = [len(turns) for _, turns in episodes]
    assert lengths == [5, 4]  # four and three single-call turns, then the answer
    assert len(frame) == 9
    assert [r["turn"] for r in frame["extra_info"]] == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert [r["index"] for r in frame["extra_info"]] == [0] * 5 + [1] * 4
    task, turns = episodes[0]
    rows = frame.iloc[:5]
    for k, (_, row) in enumerate(rows.iterrows()):
        prompt = list(row["prompt"])
        # system (tools) + user, then one assistant and one observation message per earlier turn
        assert [m["role"] for m in prompt] == ["system", "user"] + ["assistant", "user"] * k
        assert [m["content"] for m in prompt[2::2]] == turns[:k]
        info = row["extra_info"]
        left = json.loads(info["unsolved_set"])
        assert sum(map(len, left.values())) == 4 - k
        assert info["solve_rate"] == pytest.approx(k / 4)
        # the row's next turn earns what the env gave turn k of the episode: 1.0 each (SPEC 3)
        assert verl_call(row, turns[k])["score"] == pytest.approx(1.0)
    third = list(rows.iloc[3]["prompt"])[-1]["content"]
    assert third == '<tool_response>\n{"operation": "add_days", "result": "1939-06-18"}\n</tool_response>'
    first = task.solution[0][0]
    # a call solved in turn 0 solves nothing again at turn 2: 2q/(p+1) with q=0
    assert verl_call(rows.iloc[2], call(first["name"], **first["arguments"]))["score"] == 0.0
    # the answer at turn 2 (two answers left): 1/(1+2)
    assert verl_call(rows.iloc[2], f"It is {task.answer}")["score"] == pytest.approx(1 / 3)


def test_turn_rows_carry_the_world_state_after_earlier_turns(tmp_path):
    bank = load_tasks(DATA)[2]
    turns = [
        call("transfer", from_account="checking", to_account="savings", amount=40),
        call("get_balance", account="savings"),
    ]
    frame = pd.read_parquet(ftrl_verl.write_turn_parquet([(bank, turns)], tmp_path / "bank.parquet"))
    assert len(frame) == 2
    before, after = (json.loads(r["state"]) for r in frame["extra_info"])
    assert before == bank.state
    assert after == {"accounts": {"checking": 60.0, "savings": 140.0}}
    # turn 1 alone: the balance after the transfer is an answer left to obtain
    assert verl_call(frame.iloc[1], turns[1]) == {"score": pytest.approx(1.0), "num_calls": 1, "num_solved": 1}
    assert verl_call(frame.iloc[0], turns[1])["num_solved"] == 0


def test_reference_turns_are_the_solution_then_the_answer(multihop):
    tasks, _ = multihop
    assert ftrl_verl.reference_turns(tasks[0]) == oracle_turns(tasks[0])
    bank = load_tasks(DATA)[2]
    assert ftrl_verl.reference_turns(bank)[1:] == [call("get_balance", account="savings"), "The answer is 140."]
    assert ftrl_verl.reference_turns(dataclasses.replace(bank, solution=None)) == []


def test_verl_data_command_writes_turn_and_episode_rows(tmp_path, capsys):
    from ftrl_gym.cli import main

    turns, episodes = tmp_path / "turns.parquet", tmp_path / "episodes.parquet"
    assert main(["verl-data", "--split", "test", "--num-tasks", "2", "--out", str(turns)]) == 0
    assert main(["verl-data", "--rows", "episodes", "--split", "test", "--num-tasks", "2",
                 "--out", str(episodes)]) == 0
    out = capsys.readouterr().out
    assert f"wrote 9 turns rows of 2 {ENV_ID} test tasks to {turns}" in out
    assert f"wrote 2 episodes rows of 2 {ENV_ID} test tasks" in out
    assert str(ftrl_verl.CONFIG_DIR) in out
    assert [r["turn"] for r in pd.read_parquet(turns)["extra_info"]] == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    frame = pd.read_parquet(episodes)
    assert list(frame["agent_name"]) == ["ftrl_agent"] * 2 and "agent_name" in frame.columns
    assert main(["verl-data", "--num-tasks", "0", "--out", str(turns)]) == 2
    assert "--num-tasks must be at least 1, got 0" in capsys.readouterr().err
