"""FTRL-BFCL-v0 on BFCL's multi-turn categories agrees with BFCL's own executor and multi-turn checker."""

from __future__ import annotations

import copy
import importlib.util
import itertools
import random
from typing import Any

import gymnasium as gym
import pytest
from ftrl_gym.agents.baselines import OracleAgent

import ftrl_gym  # noqa: F401
from ftrl_gym.sandbox import Sandbox, ToolCall

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("bfcl_eval") is None, reason="bfcl-eval is optional"
    ),
    pytest.mark.slow,
]

PERTURBED = 20
"""multi_turn_base tasks on which each perturbation is tried (seeded sample)."""
_model_names = itertools.count()

if importlib.util.find_spec("bfcl_eval") is not None:
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import execute_multi_turn_func_call

    from ftrl_gym.bfcl import multi_turn, toolsets


@pytest.fixture(scope="module")
def sandbox():
    """One sandbox for every env here: it compiles each class's source once."""
    with Sandbox() as shared:
        yield shared


@pytest.fixture(scope="module")
def base_env(sandbox):
    env = gym.make("FTRL-BFCL-MultiTurnBase-v0", sandbox=sandbox)
    yield env
    env.close()


def _snapshot_function():
    """The state probe's own encoder, run here on BFCL's in-process instances."""
    namespace: dict[str, Any] = {}
    exec(toolsets.STATE_SNAPSHOT_SOURCE, namespace)  # noqa: S102 - our own source, not tool code
    return namespace["_ftrl_snapshot"]


def _bfcl_states(entry: dict, turns: list[list[str]], category: str) -> list[dict[str, dict]]:
    """BFCL's expected state after each user turn: its ground truth run by its own executor."""
    snapshot, name = _snapshot_function(), f"ftrl_test_{next(_model_names)}"
    states = []
    for turn in turns:
        _, instances = execute_multi_turn_func_call(
            turn,
            entry["initial_config"],
            entry["involved_classes"],
            name,
            entry["id"],
            long_context="long_context" in category,
        )
        states.append(
            {
                c: {k: snapshot(v) for k, v in vars(i).items() if not k.startswith("_")}
                for c, i in instances.items()
            }
        )
    return states


def _probe(env) -> dict[str, dict]:
    """The env's own state probe, read from the agent's sandbox session."""
    classes = env.unwrapped.task.call_scorer.classes
    results = env.unwrapped._session.call(
        [ToolCall(toolsets.state_function(c), {}) for c in classes]
    )
    return {c: r.value for c, r in zip(classes, results)}


def _message(calls: list[dict]) -> dict:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls
        ],
    }


def _play(env, task_id: str, turns: list[list[dict]]) -> list[dict]:
    """Play each user turn's calls in one assistant turn, then end it in text; the judged verdicts."""
    _, info = env.reset(options={"task_id": task_id})
    verdicts = []
    for turn in turns:
        if turn:
            env.step(_message(turn))
        *_, info = env.step("Done.")
        verdicts.append(info["verdict"])
    return verdicts


def _call_text(call: dict) -> str:
    return f"{call['name']}({', '.join(f'{k}={v!r}' for k, v in call['arguments'].items())})"


def test_gold_trajectories_reach_bfcls_expected_state_after_every_user_turn(base_env):
    from bfcl_eval.utils import load_ground_truth_entry

    truths = {g["id"]: g["ground_truth"] for g in load_ground_truth_entry("multi_turn_base")}
    entries = multi_turn.entries("multi_turn_base")
    ids = sorted(multi_turn.gold_turns("multi_turn_base"))
    classes_seen: set[str] = set()
    turns_checked = 0
    for task_id in ids:
        expected = _bfcl_states(entries[task_id], truths[task_id], "multi_turn_base")
        _, info = base_env.reset(options={"task_id": task_id})
        for k, turn in enumerate(multi_turn.gold_turns("multi_turn_base")[task_id]):
            if turn:  # two tasks have a user turn without gold calls: the agent just answers
                base_env.step(_message(list(turn)))
            _, reward, terminated, _, info = base_env.step("Done.")
            assert info["verdict"]["accepted"] and reward == 1.0, (task_id, k, info["verdict"])
            assert _probe(base_env) == expected[k], (task_id, k)
            turns_checked += 1
        assert terminated and info["episode_accepted"] and info["metrics"]["solve_f1"] == 1.0
        classes_seen.update(entries[task_id]["involved_classes"])
    assert classes_seen == set(toolsets.MULTI_TURN_CLASSES)
    assert (len(ids), turns_checked) == (200, 734)  # every task, every user turn


def _perturb(
    kind: str, gold: list[list[dict]], rng: random.Random
) -> tuple[int, list[list[dict]]] | None:
    """Drop one gold call, or change one argument value, at a seeded user turn."""
    turns = copy.deepcopy(gold)
    candidates = [
        k
        for k, turn in enumerate(turns)
        if turn and (kind == "drop_call" or any(c["arguments"] for c in turn))
    ]
    if not candidates:
        return None
    k = rng.choice(candidates)
    if kind == "drop_call":
        del turns[k][rng.randrange(len(turns[k]))]
        return k, turns
    call = rng.choice([c for c in turns[k] if c["arguments"]])
    key = rng.choice(sorted(call["arguments"]))
    value = call["arguments"][key]
    call["arguments"][key] = (
        not value
        if isinstance(value, bool)
        else value + 7
        if isinstance(value, (int, float))
        else value + "_x"
        if isinstance(value, str)
        else []
    )
    return k, turns


@pytest.mark.parametrize("kind", ["drop_call", "wrong_argument"])
def test_perturbed_trajectories_are_refused_at_that_turn_exactly_when_bfcls_checker_refuses_them(
    base_env, kind
):
    entries = multi_turn.entries("multi_turn_base")
    rng = random.Random(f"multi-turn-{kind}")
    tried = refused = 0
    for task_id in rng.sample(sorted(multi_turn.gold_turns("multi_turn_base")), PERTURBED):
        gold = [list(turn) for turn in multi_turn.gold_turns("multi_turn_base")[task_id]]
        perturbed = _perturb(kind, gold, rng)
        if perturbed is None:
            continue
        k, turns = perturbed
        decoded = [[[_call_text(c) for c in turn]] if turn else [] for turn in turns]
        truth = [[_call_text(c) for c in turn] for turn in gold]
        reference = multi_turn_checker(
            decoded, truth, entries[task_id], "multi_turn_base", f"ftrl_test_{next(_model_names)}"
        )["valid"]
        verdicts = _play(base_env, task_id, turns)
        assert all(v["accepted"] for v in verdicts[:k]), (task_id, verdicts)
        assert verdicts[k]["accepted"] is reference, (task_id, kind, k, turns[k], verdicts[k])
        tried += 1
        refused += not reference
    assert tried >= PERTURBED // 2 and refused >= tried * 3 // 4, (tried, refused)


def test_a_refused_turn_scores_zero_and_names_what_differs(base_env):
    task_id = "multi_turn_base_51"
    gold = [list(turn) for turn in multi_turn.gold_turns("multi_turn_base")[task_id]]
    _, info = base_env.reset(options={"task_id": task_id})
    _, reward, terminated, _, info = base_env.step("I will not do that.")
    assert (reward, terminated) == (0.0, False)
    assert info["verdict"] == {
        "accepted": False,
        "matched": 0,
        "detail": (
            f"no call in a turn whose gold run makes {len(gold[0])} (multi_turn:empty_turn_model_response)"
        ),
    }
    call = copy.deepcopy(gold[1][0])
    base_env.step(_message([call]))
    _, reward, *_, info = base_env.step("Done.")
    assert not info["verdict"]["accepted"] and reward == 0.0
    assert info["verdict"]["detail"].startswith("the state of ")
    assert info["episode_accepted"] is False


def test_the_state_probe_and_loader_are_no_tools_an_agent_can_call(base_env):
    _, info = base_env.reset(options={"task_id": "multi_turn_base_51"})
    names = [t["function"]["name"] for t in info["tools"]]
    classes = base_env.unwrapped.task.call_scorer.classes
    hidden = [
        toolsets.state_function(classes[0]),
        toolsets.load_function(classes[0]),
        "api_" + names[0],
    ]
    assert not set(hidden) & set(names)
    _, reward, _, _, info = base_env.step(
        _message([{"name": name, "arguments": {}} for name in hidden])
    )
    for name, result in zip(hidden, info["tool_results"]):
        assert (
            result["text"] == f"error: unknown tool {name!r}; available: {', '.join(sorted(names))}"
        )
    assert reward == 0.0


def test_hostile_calls_are_scored_never_raised(base_env):
    _, info = base_env.reset(options={"task_id": "multi_turn_base_51"})
    name = info["tools"][0]["function"]["name"]
    hostile = [
        {"name": name, "arguments": {"no_such_parameter": 1}},
        {"name": name, "arguments": {"x": {"$": [[[[]]]], "y": None}}},
        {"name": name, "arguments": {"s": "5" * 10_000}},
        {"name": "__import__", "arguments": {"name": "os"}},
    ]
    _, reward, terminated, truncated, info = base_env.step(_message(hostile))
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert [r["ok"] for r in info["tool_results"]] == [False] * 4
    assert info["tool_results"][3]["text"].startswith("error: unknown tool '__import__'")
    _, reward, terminated, _, info = base_env.step("Done.")
    assert info["verdict"]["accepted"] is False and reward == 0.0 and not terminated


@pytest.mark.parametrize(
    "category", ["multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"]
)
def test_the_oracle_solves_every_sampled_task_through_gym_make(sandbox, category):
    env = gym.make("FTRL-BFCL-v0", category=category, sandbox=sandbox)
    agent = OracleAgent()
    try:
        for task_id in random.Random(category).sample(sorted(multi_turn.gold_turns(category)), 4):
            _, info = env.reset(options={"task_id": task_id})
            agent.reset(env.unwrapped.task)
            done = False
            while not done:
                _, _, terminated, truncated, info = env.step(
                    agent.act(info["messages"], info["tools"])
                )
                done = terminated or truncated
                if info["verdict"]:
                    assert info["verdict"]["accepted"], (task_id, info["verdict"])
            assert terminated and info["episode_accepted"] and info["metrics"]["solve_f1"] == 1.0, (
                task_id
            )
    finally:
        env.close()


@pytest.mark.parametrize(
    ("category", "task_id"),
    [
        ("multi_turn_miss_func", "multi_turn_miss_func_49"),  # gold calls tail before it is offered
        ("multi_turn_long_context", "multi_turn_long_context_38"),  # gold turns of 34 calls
        ("multi_turn_long_context", "multi_turn_long_context_46"),
    ],
)
def test_the_oracle_solves_the_tasks_that_stretch_bfcls_rules(sandbox, category, task_id):
    env = gym.make("FTRL-BFCL-v0", category=category, sandbox=sandbox)
    agent = OracleAgent()
    try:
        _, info = env.reset(options={"task_id": task_id})
        agent.reset(env.unwrapped.task)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(agent.act(info["messages"], info["tools"]))
            done = terminated or truncated
        assert terminated and info["episode_accepted"] and info["metrics"]["solve_f1"] == 1.0
    finally:
        env.close()


def test_miss_func_holds_tools_back_until_their_turn_and_says_so(sandbox):
    env = gym.make("FTRL-BFCL-MultiTurnMissFunc-v0", sandbox=sandbox)
    try:
        task = next(t for t in env.unwrapped.tasks if t.tools_added)
        ((turn, held),) = task.tools_added.items()
        _, info = env.reset(options={"task_id": task.extra["id"]})
        assert not set(held) & {t["function"]["name"] for t in info["tools"]}
        # not offered, yet run when called: BFCL's executor runs any public method of the classes
        _, _, _, _, info = env.step(_message([{"name": held[0], "arguments": {}}]))
        assert "unknown tool" not in info["tool_results"][0]["text"]
        assert "missing" in info["tool_results"][0]["text"]  # the method's own TypeError
        assert task.user_turns[turn - 1] == [
            {
                "role": "user",
                "content": "I have updated some more functions you can choose from. What about now?",
            }
        ]
    finally:
        env.close()


def test_every_task_of_every_multi_turn_category_loads():
    for category in multi_turn.MULTI_TURN_CATEGORIES:
        assert len(multi_turn.entries(category)) == len(multi_turn.gold_turns(category)) == 200
        assert len(multi_turn.multi_turn_records(category)) == 200
    from ftrl_gym.tasks import load_tasks

    for task_id in ("multi_turn_base_0", "multi_turn_base_57"):  # GorillaFileSystem, MathAPI (once refused)
        classes = multi_turn.entries("multi_turn_base")[task_id]["involved_classes"]
        assert "MathAPI" in classes or "GorillaFileSystem" in classes
        [task] = load_tasks(
            [
                {
                    "messages": [{"role": "user", "content": "q"}],
                    "tools": [],
                    "codes": {},
                    "unsolved_set": {},
                    "scorer": {"kind": "bfcl_multi_turn", "category": "multi_turn_base", "id": task_id},
                }
            ]
        )
        assert (task.call_scorer.category, task.call_scorer.task_id, task.call_scorer.classes) == (
            "multi_turn_base", task_id, classes)


def test_a_multi_turn_env_passes_check_env_and_a_pickled_one_restarts_from_the_initial_state(
    sandbox, base_env
):
    import pickle

    from gymnasium.utils.env_checker import check_env

    check_env(
        gym.make("FTRL-BFCL-MultiTurnBase-v0", sandbox=sandbox).unwrapped, skip_render_check=True
    )
    gold = [list(turn) for turn in multi_turn.gold_turns("multi_turn_base")["multi_turn_base_51"]]
    base_env.reset(options={"task_id": "multi_turn_base_51"})
    base_env.step(_message(gold[0]))
    twin = pickle.loads(pickle.dumps(base_env.unwrapped))
    try:
        *_, info = twin.step("Done.")  # the instances live in the sandbox: the twin's start afresh
        assert info["verdict"]["accepted"] is False
        assert all(verdict["accepted"] for verdict in _play(twin, "multi_turn_base_51", gold))
    finally:
        twin.close()
