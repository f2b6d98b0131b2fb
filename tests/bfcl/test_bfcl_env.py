"""FTRL-BFCL-v0 agrees with BFCL's own AST checker: gold calls, perturbed calls and abstentions."""

from __future__ import annotations

import copy
import pickle
import importlib.util
import random
from typing import Any

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import ftrl_gym  # noqa: F401
from ftrl_gym.errors import EnvConfigError

HAS_BFCL = importlib.util.find_spec("bfcl_eval") is not None


@pytest.mark.skipif(HAS_BFCL, reason="shows the message of an install without bfcl-eval")
def test_without_bfcl_eval_make_fails_with_one_line_naming_the_extra():
    with pytest.raises(EnvConfigError) as error:
        gym.make("FTRL-BFCL-v0", category="simple_python")
    assert str(error.value) == (
        "FTRL-BFCL-v0 reads BFCL from the bfcl-eval package, which is not installed: pip install 'ftrl-gym[bfcl]'"
    )


needs_bfcl = pytest.mark.skipif(not HAS_BFCL, reason="bfcl-eval is optional: pip install 'ftrl-gym[bfcl]'")

if HAS_BFCL:
    from bfcl_eval.constants.enums import Language
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry

    from ftrl_gym.bfcl.source import CHECKER_MODEL, SINGLE_TURN_CATEGORIES
else:
    SINGLE_TURN_CATEGORIES = ()

PERTURBATIONS = ("drop_call", "add_call", "change_value", "drop_argument", "wrong_function")
GOLD_ACCEPTED = {"simple_java": 0.75}
"""Share of tasks whose gold solution (the first acceptable values) BFCL's checker accepts (0.9 where
not listed). Measured: 77/100 in simple_java, where a HashMap or ArrayList argument is written as JSON
rather than as Java source; 100% or all but 2-3 tasks elsewhere."""
GOLD_ACCEPTED_DEFAULT = 0.9

PER_CATEGORY = 12
"""Tasks per category that each perturbation is tried on (seeded sample)."""


def _language(category: str) -> Any:
    return {"simple_java": Language.JAVA, "simple_javascript": Language.JAVASCRIPT}.get(category, Language.PYTHON)


def _gold_calls(env, task_id: str) -> list[tuple[str, dict]]:
    """The record's gold solution (BFCL's first acceptable values), as (name, arguments) pairs."""
    solution = env.unwrapped.tasks[env.unwrapped._index_of_id(task_id)].solution
    return [(call["name"], call["arguments"]) for call in solution[0]] if solution else []


def _message(calls: list[tuple[str, dict]]) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": name, "arguments": arguments}} for name, arguments in calls]}


def _bfcl_accepts(category: str, functions: list, answer: list, calls: list[tuple[str, dict]]) -> bool:
    """BFCL's own verdict, as its eval runner reaches it for a function-calling model."""
    if "irrelevance" in category:
        return not calls
    output = [{name: copy.deepcopy(arguments)} for name, arguments in calls]
    return ast_checker(functions, output, answer, _language(category), category, CHECKER_MODEL)["valid"]


def _perturb(kind: str, calls: list[tuple[str, dict]], tools: list[dict], rng: random.Random) -> list | None:
    calls = copy.deepcopy(calls)
    if kind == "drop_call":
        return calls[:-1] if calls else None
    if kind == "add_call":
        return calls + [calls[rng.randrange(len(calls))]] if calls else [(tools[0]["function"]["name"], {})]
    with_args = [i for i, (_, arguments) in enumerate(calls) if arguments]
    if not with_args:
        return None
    i = rng.choice(with_args)
    name, arguments = calls[i]
    key = rng.choice(sorted(arguments))
    if kind == "change_value":
        value = arguments[key]
        arguments[key] = (value + "_x" if isinstance(value, str) else not value if isinstance(value, bool)
                          else value + 7 if isinstance(value, (int, float)) else [value, value] if isinstance(value, list)
                          else "changed")
    elif kind == "drop_argument":
        del arguments[key]
    else:
        others = [t["function"]["name"] for t in tools if t["function"]["name"] != name]
        calls[i] = (others[0] if others else name + "_other", arguments)
    return calls


@pytest.fixture(scope="module")
def bfcl_envs():
    envs = {category: gym.make("FTRL-BFCL-v0", category=category) for category in SINGLE_TURN_CATEGORIES}
    yield envs
    for env in envs.values():
        env.close()


def _env_accepts(env, task_id: str, calls: list[tuple[str, dict]] | None) -> tuple[bool, float, dict]:
    _, info = env.reset(options={"task_id": task_id})
    action = _message(calls) if calls else "None of the functions given can answer this."
    _, reward, _, _, info = env.step(action)
    return info["metrics"]["solve_f1"] == 1.0, reward, info


@needs_bfcl
@pytest.mark.parametrize("category", SINGLE_TURN_CATEGORIES)
def test_gold_calls_score_one_exactly_where_bfcls_checker_accepts_them(bfcl_envs, category):
    env = bfcl_envs[category]
    functions = {e["id"]: e["function"] for e in load_dataset_entry(category, False, False)}
    answers = ({e["id"]: e["ground_truth"] for e in load_ground_truth_entry(category)}
               if "irrelevance" not in category else {task_id: [] for task_id in functions})
    accepted = 0
    for task_id, answer in answers.items():
        gold = _gold_calls(env, task_id)
        reference = _bfcl_accepts(category, functions[task_id], answer, gold)
        solved, reward, info = _env_accepts(env, task_id, gold)
        assert solved == reference, (task_id, gold, info["verdict"])
        assert info["task_id"] == task_id
        accepted += reference
    assert len(answers) == len(env.unwrapped.tasks)
    assert accepted >= GOLD_ACCEPTED.get(category, GOLD_ACCEPTED_DEFAULT) * len(answers), f"BFCL accepts only {accepted}/{len(answers)} gold answers"


@needs_bfcl
@pytest.mark.parametrize("category", SINGLE_TURN_CATEGORIES)
def test_perturbed_calls_agree_with_bfcls_checker(bfcl_envs, category):
    env = bfcl_envs[category]
    functions = {e["id"]: e["function"] for e in load_dataset_entry(category, False, False)}
    answers = ({e["id"]: e["ground_truth"] for e in load_ground_truth_entry(category)}
               if "irrelevance" not in category else {task_id: [] for task_id in functions})
    rng = random.Random(f"bfcl-{category}")
    tried = refused = 0
    for task_id in rng.sample(sorted(answers), min(PER_CATEGORY, len(answers))):
        tools = env.unwrapped.tasks[env.unwrapped._index_of_id(task_id)].tools
        gold = _gold_calls(env, task_id)
        for kind in PERTURBATIONS:
            calls = _perturb(kind, gold, tools, rng)
            if calls is None:
                continue
            reference = _bfcl_accepts(category, functions[task_id], answers[task_id], calls)
            solved, reward, info = _env_accepts(env, task_id, calls)
            assert solved == reference, (task_id, kind, calls, info["verdict"])
            assert info["verdict"].get("accepted", False) is (reference and bool(calls))
            tried += 1
            refused += not reference
    assert tried >= PER_CATEGORY and refused >= tried // 2


@needs_bfcl
def test_an_irrelevance_task_rewards_abstention_and_scores_a_call_zero(bfcl_envs):
    env = bfcl_envs["irrelevance"]
    solved, reward, info = _env_accepts(env, "irrelevance_0", None)
    assert (solved, reward, info["reward_breakdown"]["branch"]) == (True, 1.0, "abstained")
    solved, reward, info = _env_accepts(env, "irrelevance_0", [("determine_body_mass_index", {"weight": 1.0, "height": 2.0})])
    assert (solved, reward, info["verdict"]["accepted"]) == (False, 0.0, False)


@needs_bfcl
def test_hostile_arguments_are_scored_not_raised(bfcl_envs):
    env = bfcl_envs["simple_python"]
    for arguments in ({"number": {"$": [1, {"x": None}]}}, {"number": [[[]]]}, {"": 1, "number": 5},
                      {"number": "5" * 10_000}):
        solved, reward, info = _env_accepts(env, "simple_python_1", [("math_factorial", arguments)])
        assert not solved and reward == 0.0 and info["verdict"]["accepted"] is False


@needs_bfcl
def test_the_env_offers_bfcls_tools_and_messages_and_is_one_shot(bfcl_envs):
    env = bfcl_envs["simple_python"]
    obs, info = env.reset(options={"task_id": "simple_python_1"})
    assert obs == "Calculate the factorial of 5 using math functions."
    assert [t["function"]["name"] for t in info["tools"]] == ["math_factorial"]
    assert info["tools"][0]["function"]["parameters"]["properties"] == {
        "number": {"type": "integer", "description": "The number for which factorial needs to be calculated."}}
    _, reward, terminated, truncated, info = env.step(_message([("math_factorial", {"number": 5})]))
    assert (reward, terminated, truncated, info["truncation_reason"]) == (1.0, False, True, "max_turns")
    twin = pickle.loads(pickle.dumps(env.unwrapped))
    twin.reset(options={"task_id": "simple_python_1"})
    assert twin.step(_message([("math_factorial", {"number": 5})]))[1] == 1.0
    check_env(gym.make("FTRL-BFCL-Irrelevance-v0").unwrapped, skip_render_check=True)
    with pytest.raises(EnvConfigError, match="unknown BFCL category 'simple_pyton' \\(did you mean 'simple_python'\\?\\)"):
        gym.make("FTRL-BFCL-v0", category="simple_pyton")
