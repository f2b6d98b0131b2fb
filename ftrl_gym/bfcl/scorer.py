"""A call scorer that asks BFCL's own AST checker whether a turn's calls answer a BFCL task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ftrl_gym.bfcl import source
from ftrl_gym.scoring import Call, CallVerdict, ScorerSpecError


def ast_verdict(category: str, task_id: str, calls: Sequence[Call]) -> dict[str, Any]:
    """BFCL's AST checker on calls in its decoded form ``[{name: arguments}, ...]``.

    Args:
        category: A single-turn category.
        task_id: BFCL's id of the task.
        calls: ``(name, arguments)`` pairs as the model sent them.

    Returns:
        The checker's result: ``{"valid": bool, "error": [...], "error_type": str}`` (only ``valid`` for
        an irrelevance task, which is valid exactly when there is no call).
    """
    if "irrelevance" in category:
        if calls:
            return {"valid": False, "error": ["a function was called on an irrelevance task"],
                    "error_type": "irrelevance_error:decoder_success"}
        return {"valid": True}
    from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker

    model_output = [{name: dict(arguments)} for name, arguments in calls]
    return ast_checker(source.checker_functions(category)[task_id], model_output,
                       source.possible_answers(category)[task_id], source.language(category), category,
                       source.CHECKER_MODEL)


@dataclass(frozen=True)
class BfclAstScorer:
    """Accepts a turn exactly when BFCL's AST checker does.

    Spec: ``{"kind": "bfcl_ast", "category": "<single-turn category>", "id": "<BFCL id>"}``. The
    verdict's ``matched`` is the expected call count when accepted; otherwise the calls that each
    pass BFCL's checker against a distinct expected call on their own, kept below the expected count
    so that Solve-F1 is 1 only when the checker accepts.
    """

    category: str
    """The BFCL category (it selects the checker's language and parallel/multiple rules)."""
    task_id: str
    """BFCL's id of the task."""

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> BfclAstScorer:
        """Build from a ``bfcl_ast`` spec, checking that bfcl-eval knows the task.

        Raises:
            ScorerSpecError: Unknown category or id, or bfcl-eval is not installed.
        """
        source.require_bfcl()
        category, task_id = spec.get("category"), spec.get("id")
        if category not in source.SINGLE_TURN_CATEGORIES:
            raise ScorerSpecError(f"scorer.category must be one of {', '.join(source.SINGLE_TURN_CATEGORIES)}, "
                                  f"got {category!r}")
        if task_id not in source.possible_answers(category):
            raise ScorerSpecError(f"scorer.id {task_id!r} is not a task of BFCL's {category} category")
        return cls(category, task_id)

    @property
    def expected_calls(self) -> int:
        """The calls of BFCL's possible answer (0 for an irrelevance task)."""
        return len(source.possible_answers(self.category)[self.task_id])

    def score(self, calls: Sequence[Call]) -> CallVerdict:
        """BFCL's verdict on the calls, and how many of them match a distinct expected call."""
        result = ast_verdict(self.category, self.task_id, calls)
        expected = self.expected_calls
        if result["valid"]:
            return CallVerdict(True, expected, "BFCL's AST checker accepts the calls")
        matched = min(self._matched_alone(calls), max(expected - 1, 0), len(calls))
        errors = "; ".join(str(e) for e in result.get("error", []))
        return CallVerdict(False, matched, f"BFCL's AST checker refuses the calls ({result.get('error_type')}: {errors})"[:500])

    def _matched_alone(self, calls: Sequence[Call]) -> int:
        """Calls that each pass BFCL's simple checker against a distinct expected call (greedy)."""
        from bfcl_eval.eval_checker.ast_eval.ast_checker import simple_function_checker

        answers = list(source.possible_answers(self.category)[self.task_id])
        functions = source.checker_functions(self.category)[self.task_id]
        matched = 0
        for name, arguments in calls:
            for i, answer in enumerate(answers):
                expected_name = source.sent_name(next(iter(answer)))
                doc = next((f for f in functions if source.sent_name(f["name"]) == expected_name), None)
                if doc is None or expected_name != name:
                    continue
                verdict = simple_function_checker(doc, {name: dict(arguments)}, answer, source.language(self.category),
                                                  source.CHECKER_MODEL)
                if verdict["valid"]:
                    matched += 1
                    del answers[i]
                    break
        return matched
