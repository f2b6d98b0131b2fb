"""Entry points, call scorers, correct abstention and the state keyword, through gym.make and load_tasks."""

from __future__ import annotations

import gymnasium as gym
import pytest

import ftrl_gym  # noqa: F401
from ftrl_gym.errors import TaskFormatError
from ftrl_gym.tasks import load_tasks

FACTORIAL = "def factorial(number):\n    import math\n    return math.factorial(number)\n"


def _schema(name: str, *params: str) -> dict:
    properties = {p: {"type": "integer"} for p in params}
    return {"type": "function", "function": {"name": name, "description": name,
                                             "parameters": {"type": "object", "properties": properties}}}


def _record(**fields) -> dict:
    record = {"messages": [{"role": "user", "content": "What is 5!?"}], "tools": [_schema("math.factorial", "number")],
              "codes": {"math.factorial": FACTORIAL}, "unsolved_set": {"math.factorial": ["120"]}}
    record.update(fields)
    return record


def _call(name: str, **arguments) -> dict:
    return {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": name, "arguments": arguments}}]}


def test_a_dotted_tool_name_without_entry_point_is_refused_at_load():
    with pytest.raises(TaskFormatError) as error:
        load_tasks([_record()])
    assert str(error.value) == (
        "records[0]: tool 'math.factorial' is not a Python identifier a function could have (or starts with '_'); "
        'map it to the function that runs it: "entry_points": {"math.factorial": "a_function_name"}'
    )


def test_a_leading_double_underscore_name_needs_an_entry_point_too():
    record = _record(tools=[_schema("__factorial", "number")], codes={"__factorial": FACTORIAL},
                     unsolved_set={})
    with pytest.raises(TaskFormatError, match="tool '__factorial' is not a Python identifier"):
        load_tasks([record])


def test_an_entry_point_the_code_does_not_define_is_refused_at_load():
    with pytest.raises(TaskFormatError) as error:
        load_tasks([_record(entry_points={"math.factorial": "fact"})])
    assert "the code of tool 'math.factorial' does not define 'fact' at its top level" in str(error.value)


def test_an_entry_point_must_be_a_plain_identifier():
    with pytest.raises(TaskFormatError, match=r"entry_points\['math.factorial'\] must be a Python identifier"):
        load_tasks([_record(entry_points={"math.factorial": "_factorial"})])


def test_a_dotted_tool_runs_through_its_entry_point_and_only_under_its_own_name():
    env = gym.make("FTRL-Custom-v0", tasks=[_record(entry_points={"math.factorial": "factorial"})])
    try:
        env.reset(seed=0)
        obs, reward, terminated, _, info = env.step(_call("factorial", number=5))
        assert info["tool_results"][0]["text"].startswith("error: unknown tool 'factorial'; available: math.factorial")
        assert reward == 0.0
        obs, reward, terminated, _, info = env.step(_call("math.factorial", number=5))
        assert obs == "<tool_response>\n120\n</tool_response>"
        assert reward == 1.0 and info["metrics"]["solve_f1"] == pytest.approx(2 * 1 / (2 + 1))
    finally:
        env.close()


def test_a_stateful_tool_declaring_the_state_keyword_is_refused_at_load():
    record = {"messages": [{"role": "user", "content": "hi"}], "tools": [_schema("put", "data")],
              "codes": {"put": "def put(data):\n    return 1\n"}, "unsolved_set": {}, "state": {"x": 1}}
    with pytest.raises(TaskFormatError) as error:
        load_tasks([record])
    assert str(error.value) == (
        "records[0]: tools[0] 'put' declares a parameter named 'data', but every tool of a stateful task "
        "receives the world state as 'data'; rename the parameter"
    )


def test_the_same_parameter_is_fine_on_a_stateless_task():
    record = {"messages": [{"role": "user", "content": "hi"}], "tools": [_schema("put", "data")],
              "codes": {"put": "def put(data):\n    return data * 2\n"}, "unsolved_set": {"put": ["42"]}}
    env = gym.make("FTRL-Custom-v0", tasks=[record])
    try:
        env.reset(seed=0)
        obs, reward, *_ = env.step(_call("put", data=21))
        assert obs == "<tool_response>\n42\n</tool_response>" and reward == 1.0
    finally:
        env.close()


def _scored(calls: list[dict], tools: list[dict]) -> dict:
    return {"messages": [{"role": "user", "content": "q"}], "tools": tools, "codes": {}, "unsolved_set": {},
            "scorer": {"kind": "call_match", "calls": calls}, "id": "t0"}


AREA = {"name": "area", "arguments": {"base": [10], "height": [5, 5.0], "unit": ["units", ""]}}


def _scored_env(calls: list[dict], **kwargs):
    tools = [_schema("area", "base", "height", "unit"), _schema("hypot", "x", "y")]
    return gym.make("FTRL-Custom-v0", tasks=[_scored(calls, tools)], max_turns=1, **kwargs)


@pytest.mark.parametrize(
    ("arguments", "accepted", "reward"),
    [
        ({"base": 10, "height": 5}, True, 1.0),          # the optional unit left out
        ({"base": 10, "height": 5.0, "unit": "units"}, True, 1.0),
        ({"base": 10, "height": 6}, False, 0.0),         # a value changed
        ({"base": 10}, False, 0.0),                      # a required argument dropped
        ({"base": 10, "height": 5, "color": "red"}, False, 0.0),  # an unknown argument
        ({"base": True, "height": 5}, False, 0.0),       # a bool is not the number 1
    ],
)
def test_call_match_scores_one_call_against_acceptable_values(arguments, accepted, reward):
    env = _scored_env([AREA])
    try:
        _, info = env.reset(seed=0, options={"task_id": "t0"})
        assert info["task_id"] == "t0" and info["verdict"] == {}
        _, got, _, truncated, info = env.step(_call("area", **arguments))
        assert got == reward and truncated
        assert info["verdict"]["accepted"] is accepted
        assert info["metrics"]["solve_f1"] == (1.0 if accepted else 0.0)
        assert info["tool_results"][0]["text"].startswith("(call recorded")
    finally:
        env.close()


def test_call_match_pairs_parallel_calls_in_any_order_each_once():
    hypot = {"name": "hypot", "arguments": {"x": [3], "y": [4]}}
    env = _scored_env([AREA, hypot])
    try:
        env.reset(seed=0)
        both = {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "hypot", "arguments": {"x": 3, "y": 4}}},
            {"type": "function", "function": {"name": "area", "arguments": {"base": 10, "height": 5}}}]}
        _, reward, _, _, info = env.step(both)
        assert reward == pytest.approx(4 / 3) and info["metrics"]["solve_f1"] == 1.0
        env.reset(seed=0)
        twice = {"role": "assistant", "content": "", "tool_calls": both["tool_calls"][:1] * 2}
        _, reward, _, _, info = env.step(twice)
        assert info["verdict"] == {"accepted": False, "matched": 1,
                                   "detail": "1 of 2 calls match one of 2 expected calls"}
        assert reward == pytest.approx(2 / 3) and info["metrics"]["solve_f1"] == pytest.approx(2 / 4)
    finally:
        env.close()


@pytest.mark.parametrize(("action", "reward", "branch", "f1"), [
    ("That is not something these tools can do.", 1.0, "abstained", 1.0),
    ("", -0.5, "empty", 1.0),
    ("<tool_call>oops</tool_call>", -0.3, "format_error", 1.0),
])
def test_correct_abstention_earns_the_abstention_reward(action, reward, branch, f1):
    env = _scored_env([])
    try:
        env.reset(seed=0)
        _, got, terminated, _, info = env.step(action)
        assert (got, info["reward_breakdown"]["branch"], info["metrics"]["solve_f1"]) == (reward, branch, f1)
        assert terminated
    finally:
        env.close()


def test_a_text_reply_where_a_call_is_expected_earns_nothing():
    """No call on a task that expects one is SPEC 3's no-answer branch (0), not its all-solved one
    (0.5): the scorer's expected calls are the task's sub-problems, none of them solved."""
    env = _scored_env([AREA])
    try:
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step("The area is 25 square units.")
        assert (reward, info["reward_breakdown"]["branch"]) == (0.0, "no_answer")
        assert terminated and info["metrics"]["solve_f1"] == 0.0
    finally:
        env.close()


def test_the_abstention_reward_is_configurable_and_a_call_earns_nothing():
    env = _scored_env([], abstention_reward=0.25)
    try:
        env.reset(seed=0)
        assert env.step("No tool fits.")[1] == 0.25
        env.reset(seed=0)
        _, reward, _, _, info = env.step(_call("hypot", x=1, y=2))
        assert reward == 0.0 and info["metrics"]["solve_f1"] == 0.0 and info["verdict"]["accepted"] is False
    finally:
        env.close()


def test_an_unknown_scorer_kind_and_a_task_id_typo_say_what_was_expected():
    with pytest.raises(TaskFormatError, match=r"records\[0\]: unknown scorer kind 'exact'; known kinds: bfcl_ast, bfcl_multi_turn, call_match"):
        load_tasks([{**_scored([], [_schema("area")]), "scorer": {"kind": "exact"}}])
    env = _scored_env([])
    try:
        with pytest.raises(ftrl_gym.errors.EnvConfigError, match=r"options\['task_id'\]='t1' is not the id of a task"):
            env.reset(options={"task_id": "t1"})
    finally:
        env.close()


ACCOUNT = '''class Account:
    def __init__(self):
        self._balance: float = 0.0
        self.history: list = []

    def deposit(self, amount):
        self._balance += amount
        self.history.append(amount)
        return self._balance

    def balance(self):
        return {"balance": self._balance, "deposits": len(self.history)}


_account = Account()
deposit = _account.deposit
balance = _account.balance
'''


def test_tools_sharing_one_source_share_one_instance_per_episode():
    tools = [_schema("deposit", "amount"), _schema("balance")]
    record = {"messages": [{"role": "user", "content": "Deposit 5 twice."}], "tools": tools,
              "codes": {"deposit": ACCOUNT, "balance": ACCOUNT}, "unsolved_set": {"balance": ["10.0"]}}
    env = gym.make("FTRL-Custom-v0", tasks=[record])
    try:
        for _ in range(2):  # the second episode starts from a fresh instance
            env.reset(seed=0)
            obs, *_ = env.step({"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "deposit", "arguments": {"amount": 5}}},
                {"type": "function", "function": {"name": "deposit", "arguments": {"amount": 5}}}]})
            assert obs == "<tool_response>\n5.0\n</tool_response>\n<tool_response>\n10.0\n</tool_response>"
            obs, reward, *_ = env.step(_call("balance"))
            assert obs == '<tool_response>\n{"balance": 10.0, "deposits": 2}\n</tool_response>' and reward == 1.0
    finally:
        env.close()


def test_scripted_user_turns_arrive_when_the_agent_stops_calling_and_add_tools():
    tools = [_schema("deposit", "amount"), _schema("balance")]
    record = {"messages": [{"role": "user", "content": "Deposit 5."}], "tools": tools,
              "codes": {"deposit": ACCOUNT, "balance": ACCOUNT}, "unsolved_set": {"balance": ["5.0"]},
              "user_turns": [[{"role": "user", "content": "What is my balance now?"}]],
              "tools_added": {"1": ["balance"]}}
    env = gym.make("FTRL-Custom-v0", tasks=[record])
    try:
        _, info = env.reset(seed=0)
        assert [t["function"]["name"] for t in info["tools"]] == ["deposit"] and info["user_turn"] == 0
        obs, *_ , info = env.step(_call("balance"))
        assert info["tool_results"][0]["text"] == "error: unknown tool 'balance'; available: deposit"
        obs, *_ = env.step(_call("deposit", amount=5))
        assert obs == "<tool_response>\n5.0\n</tool_response>"
        obs, reward, terminated, truncated, info = env.step("Done, 5 deposited.")
        assert (obs, reward, terminated, truncated) == ("What is my balance now?", 0.0, False, False)
        assert [t["function"]["name"] for t in info["tools"]] == ["deposit", "balance"] and info["user_turn"] == 1
        assert info["messages"][-1] == {"role": "user", "content": "What is my balance now?"}
        obs, reward, *_ = env.step(_call("balance"))
        assert obs == '<tool_response>\n{"balance": 5.0, "deposits": 1}\n</tool_response>' and reward == 1.0
        _, _, terminated, _, info = env.step("Your balance is 5.0.")
        assert terminated and info["user_turn"] == 1
    finally:
        env.close()


def test_hidden_tools_run_when_called_if_the_task_says_so_and_are_still_not_offered():
    tools = [_schema("deposit", "amount"), _schema("balance")]
    record = {"messages": [{"role": "user", "content": "Deposit 5."}], "tools": tools,
              "codes": {"deposit": ACCOUNT, "balance": ACCOUNT}, "unsolved_set": {"balance": ["5.0"]},
              "user_turns": [[{"role": "user", "content": "What is my balance now?"}]],
              "tools_added": {"1": ["balance"]}, "hidden_tools_run": True}
    [task] = load_tasks([record])
    assert task.hidden_tools_run and task.to_dict()["hidden_tools_run"] is True
    env = gym.make("FTRL-Custom-v0", tasks=[record])
    try:
        _, info = env.reset(seed=0)
        obs, *_, info = env.step(_call("deposit", amount=5))
        obs, *_, info = env.step(_call("balance"))
        assert obs == '<tool_response>\n{"balance": 5.0, "deposits": 1}\n</tool_response>'
        assert [t["function"]["name"] for t in info["tools"]] == ["deposit"]
        obs, *_, info = env.step(_call("withdraw"))
        assert info["tool_results"][0]["text"] == "error: unknown tool 'withdraw'; available: deposit"
    finally:
        env.close()
    with pytest.raises(TaskFormatError, match="hidden_tools_run must be true or false, got a number"):
        load_tasks([{**record, "hidden_tools_run": 1}])


def test_tools_added_must_name_a_listed_tool_and_an_existing_user_turn():
    base = {"messages": [{"role": "user", "content": "q"}], "tools": [_schema("balance")],
            "codes": {"balance": ACCOUNT}, "unsolved_set": {}, "user_turns": [[]]}
    with pytest.raises(TaskFormatError, match=r"tools_added key '2' must be a user turn from 1 to 1"):
        load_tasks([{**base, "tools_added": {"2": ["balance"]}}])
    with pytest.raises(TaskFormatError, match=r"tools_added\['1'\] must list tools of tools"):
        load_tasks([{**base, "tools_added": {"1": ["deposit"]}}])
