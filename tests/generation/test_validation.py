"""Stage 5b: validation accepts sound candidates and rejects broken ones with the right reason."""

from __future__ import annotations

import copy
import random

import pytest

from ftrl_gym.generation.pipeline import GenerationConfig, build_candidate
from ftrl_gym.generation.validation import REJECTION_REASONS, Verdict, validate


@pytest.fixture(scope="module")
def candidate(world):
    config = GenerationConfig(n=1, split="test")
    for index in range(50):
        made = build_candidate("parallel_multi_hop", world, random.Random(index), config)
        if made.probes and len(made.record["solution"]) > 1:
            return made
    raise AssertionError("no candidate with distractors and two turns")


def test_a_generated_candidate_is_accepted(candidate, sandbox):
    assert validate(candidate.record, sandbox, candidate.intended, candidate.probes) == Verdict(
        True
    )


def test_code_that_raises_is_rejected(candidate, sandbox):
    record = copy.deepcopy(candidate.record)
    name = record["solution"][0][0]["name"]
    record["codes"][name] = (
        f"def {name}(*args, **kwargs):\n    raise RuntimeError('backend down')\n"
    )
    verdict = validate(record, sandbox, candidate.intended, candidate.probes)
    assert verdict.reason == "solution_call_failed" and "backend down" in verdict.detail


def test_a_wrong_result_is_rejected(candidate, sandbox):
    record = copy.deepcopy(candidate.record)
    name = record["solution"][-1][0]["name"]
    record["codes"][name] = f"def {name}(**kwargs):\n    return 'no idea'\n"
    assert validate(record, sandbox, candidate.intended).reason == "wrong_answer"
    assert validate(record, sandbox, None).reason == "unmatched_answer"


def test_answers_listed_under_the_wrong_tool_are_rejected(candidate, sandbox):
    record = copy.deepcopy(candidate.record)
    decoy = candidate.probes[0]["name"]
    record["unsolved_set"] = {
        decoy: [a for answers in record["unsolved_set"].values() for a in answers]
    }
    assert validate(record, sandbox, None).reason == "unmatched_answer"


def test_a_solution_with_too_few_calls_is_rejected(candidate, sandbox):
    record = copy.deepcopy(candidate.record)
    record["solution"] = record["solution"][:-1]
    assert validate(record, sandbox).reason == "solution_size_mismatch"


def test_a_distractor_that_yields_an_answer_is_rejected(candidate, sandbox):
    record = copy.deepcopy(candidate.record)
    decoy = candidate.probes[0]["name"]
    answer = candidate.intended[0][0]
    record["codes"][decoy] = f"def {decoy}(**kwargs):\n    return {answer!r}\n"
    verdict = validate(record, sandbox, candidate.intended, candidate.probes)
    assert verdict == Verdict(False, "distractor_yields_answer", f"{decoy} returned {answer!r}")


def test_a_distractor_that_fails_is_rejected(candidate, sandbox):
    record = copy.deepcopy(candidate.record)
    decoy = candidate.probes[0]["name"]
    record["codes"][decoy] = f"def {decoy}(**kwargs):\n    return 1 / 0\n"
    assert (
        validate(record, sandbox, candidate.intended, candidate.probes).reason
        == "distractor_failed"
    )


def test_a_malformed_record_is_rejected(candidate, sandbox):
    record = copy.deepcopy(candidate.record)
    record["codes"].pop(record["solution"][0][0]["name"])
    verdict = validate(record, sandbox)
    assert verdict.reason == "malformed_record" and "has no entry in codes" in verdict.detail


def test_every_reason_is_documented():
    with pytest.raises(KeyError, match="unknown rejection reason 'bad_vibes'"):
        Verdict.reject("bad_vibes")
    assert all(REJECTION_REASONS.values())
