"""The SPEC 3 reward, verification and episode metrics against hand-computed values."""

from __future__ import annotations

import pytest

from ftrl_gym.parsing import parse_response
from ftrl_gym.reward import episode_metrics, normalize, turn_reward, verify_answer


def test_normalize_lowercases_drops_commas_and_strips():
    assert normalize("  Paris, FRANCE 1,000 ") == "paris france 1000"


@pytest.mark.parametrize(
    ("result", "expected", "verified"),
    [
        ("The capital is Paris, France.", "Paris, France", True),
        ({"city": "Paris", "temperature_c": 21}, "paris, 21", True),
        ([1, 2, 3], "2, 3", True),
        ("1000 people", "1,000", True),
        ("Paris France", "Paris,France", False),
        ("Paris", "Paris, France", False),
        (21, "21", True),
    ],
)
def test_verify_answer(result, expected, verified):
    assert verify_answer(result, expected) is verified


def test_partial_solve_scores_two_q_over_p_plus_one():
    unsolved = {"f": ["alpha", "beta"], "g": ["gamma"]}
    out = turn_reward("", [("f", "ALPHA!"), ("g", "delta")], unsolved)
    assert out.reward == pytest.approx(2 * 1 / 3)
    assert (out.branch, out.num_calls, out.num_solved, out.answers_left_before) == ("tool_calls", 2, 1, 3)
    assert out.solved == (("f", "alpha"),)
    assert out.unsolved_after == {"f": ["beta"], "g": ["gamma"]}
    assert unsolved == {"f": ["alpha", "beta"], "g": ["gamma"]}


def test_duplicate_calls_match_an_answer_once():
    out = turn_reward("", [("f", "alpha"), ("f", "alpha")], {"f": ["alpha"]})
    assert (out.num_calls, out.num_solved) == (2, 1)
    assert out.reward == pytest.approx(2 / 3)


def test_each_call_matches_at_most_one_answer():
    out = turn_reward("", [("f", "alpha beta")], {"f": ["alpha", "beta"]})
    assert out.num_solved == 1
    assert out.reward == pytest.approx(1.0)
    assert out.unsolved_after == {"f": ["beta"]}
    both = turn_reward("", [("f", "alpha beta"), ("f", "alpha beta")], {"f": ["alpha", "beta"]})
    assert both.reward == pytest.approx(4 / 3)


def test_right_tool_wrong_result_and_wrong_tool_name_solve_nothing():
    assert turn_reward("", [("f", "nothing")], {"f": ["alpha"]}).reward == 0.0
    wrong_tool = turn_reward("", [("g", "alpha")], {"f": ["alpha"]})
    assert (wrong_tool.reward, wrong_tool.num_solved) == (0.0, 0)


def test_error_results_never_solve():
    out = turn_reward("", [("f", None), ("f", "alpha")], {"f": ["alpha"]})
    assert (out.num_calls, out.num_solved) == (2, 1)
    assert out.reward == pytest.approx(2 / 3)


def test_unparsable_block_beside_a_parsable_one_counts_only_the_parsed_call():
    parsed = parse_response('<tool_call>{"name": "f", "arguments": {}}</tool_call><tool_call>{oops</tool_call>')
    assert (len(parsed.calls), parsed.num_unparsable) == (1, 1)
    out = turn_reward(parsed.content, [("f", "alpha")], {"f": ["alpha"]})
    assert out.reward == pytest.approx(1.0)


@pytest.mark.parametrize("text", ["", "   \n", "<|im_end|>", " <|endoftext|><|im_end|> "])
def test_empty_response_is_minus_half(text):
    out = turn_reward(text, [], {"f": ["alpha"]}, answer="alpha")
    assert (out.reward, out.branch) == (-0.5, "empty")


@pytest.mark.parametrize("text", ["<tool_call>", "calling </tool_call>", '<tool_call>{"x": 1}</tool_call>'])
def test_tag_fragments_are_a_format_error(text):
    out = turn_reward(text, [], {"f": ["alpha"]}, answer="alpha")
    assert (out.reward, out.branch) == (-0.3, "format_error")


def test_malformed_message_calls_are_a_format_error():
    out = turn_reward("some text", [], {"f": ["alpha"]}, malformed_calls=1)
    assert (out.reward, out.branch) == (-0.3, "format_error")
    no_content = turn_reward("", [], {"f": ["alpha"]}, malformed_calls=2)
    assert (no_content.reward, no_content.branch) == (-0.3, "format_error")


def test_correct_final_answer_with_answers_left_is_one_over_one_plus_t():
    out = turn_reward("The answer is PARIS.", [], {"f": ["a", "b"]}, answer="Paris")
    assert (out.reward, out.branch, out.answers_left_before) == (pytest.approx(1 / 3), "final_answer", 2)
    done = turn_reward("It has 1000 people<|im_end|>", [], {}, answer="1,000")
    assert done.reward == 1.0


def test_all_solved_without_the_answer_is_half():
    assert turn_reward("Done.", [], {}, answer="Paris", solve_rate=1.0).reward == 0.5
    assert turn_reward("Done.", [], {}, answer=None, solve_rate=1).branch == "all_solved"


def test_no_answer_before_everything_is_solved_is_zero():
    out = turn_reward("I do not know.", [], {"f": ["a"]}, answer="Paris", solve_rate=0.5)
    assert (out.reward, out.branch) == (0.0, "no_answer")
    assert turn_reward("anything", [], {"f": ["a"]}, answer="").reward == 0.0


@pytest.mark.parametrize(
    ("variant", "expected"),
    [("solve_f1", 4 / 4), ("solve_p", 2 / 3), ("solve_r", 2.0), ("solve_pr", 4 / 3)],
)
def test_variants_differ_only_in_the_tool_call_branch(variant, expected):
    calls = [("f", "alpha"), ("f", "beta"), ("f", "nope")]
    assert turn_reward("", calls, {"f": ["alpha", "beta"]}, variant=variant).reward == pytest.approx(expected)
    assert turn_reward("", [], {"f": ["alpha"]}, variant=variant).reward == -0.5


def test_unknown_variant_raises_key_error():
    with pytest.raises(KeyError):
        turn_reward("", [], {}, variant="solve_x")


def test_episode_metrics():
    assert episode_metrics(total_answers=3, calls=4, solved=2) == pytest.approx(
        {"solve_p": 0.5, "solve_r": 2 / 3, "solve_f1": 4 / 7}
    )
    assert episode_metrics(total_answers=3, calls=0, solved=0) == {"solve_p": 1.0, "solve_r": 0.0, "solve_f1": 0.0}
    assert episode_metrics(total_answers=2, calls=2, solved=2)["solve_f1"] == 1.0
    assert episode_metrics(total_answers=0, calls=0, solved=0) == {"solve_p": 1.0, "solve_r": 1.0, "solve_f1": 1.0}
