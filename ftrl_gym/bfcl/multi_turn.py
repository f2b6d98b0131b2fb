"""BFCL's multi-turn categories: task records, gold calls and BFCL's per-user-turn state check."""

from __future__ import annotations

import ast
import importlib
import inspect
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from ftrl_gym.bfcl import source, toolsets
from ftrl_gym.bfcl.source import MULTI_TURN_CATEGORIES
from ftrl_gym.errors import SandboxError
from ftrl_gym.sandbox import Sandbox, SandboxSession, ToolCall
from ftrl_gym.scoring import CallVerdict, ScorerSpecError


@cache
def entries(category: str) -> dict[str, dict[str, Any]]:
    """Task id → BFCL's entry (questions, initial config, classes, function docs, missed functions)."""
    return {entry["id"]: entry for entry in source.prompts(category, with_hints=True)}


@cache
def _signatures(class_name: str) -> dict[str, inspect.Signature]:
    """Method name → signature of a BFCL class (read, not run), to name positional gold arguments."""
    from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING

    cls = getattr(importlib.import_module(CLASS_FILE_PATH_MAPPING[class_name]), class_name)
    return {
        name: inspect.signature(getattr(cls, name)) for name in toolsets.public_methods(class_name)
    }


def parse_gold_call(text: str, classes: Sequence[str]) -> dict[str, Any]:
    """One of BFCL's ground-truth call strings as a call ``{"name", "arguments"}``.

    Args:
        text: Python call syntax with literal arguments, e.g. ``"sort('final_report.pdf')"``.
        classes: The task's classes; positional arguments are named by the method's signature.

    Raises:
        ValueError: The text is not a call of a method of ``classes`` with literal arguments.
    """
    node = ast.parse(text, mode="eval").body
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a plain call: {text!r}")  # noqa: TRY004 - the text is the value
    name = node.func.id
    signature = next((_signatures(c)[name] for c in classes if name in _signatures(c)), None)
    if signature is None:
        raise ValueError(f"{name!r} is not a method of {', '.join(classes)}")
    args = [ast.literal_eval(a) for a in node.args]
    kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg is not None}
    bound = signature.bind(None, *args, **kwargs)  # None stands for self
    arguments = dict(bound.arguments)
    arguments.pop(next(iter(signature.parameters)))
    return {"name": name, "arguments": arguments}


@cache
def gold_turns(category: str) -> dict[str, tuple[tuple[dict[str, Any], ...], ...]]:
    """Task id → BFCL's ground-truth calls per user turn, parsed."""
    from bfcl_eval.utils import load_ground_truth_entry

    out = {}
    for truth in load_ground_truth_entry(category):
        entry = entries(category).get(truth["id"])
        if entry is None:
            continue
        classes = entry["involved_classes"]
        out[truth["id"]] = tuple(
            tuple(parse_gold_call(call, classes) for call in turn) for turn in truth["ground_truth"]
        )
    return out


def _holdout_prompt() -> str:
    from bfcl_eval.constants.default_prompts import DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC

    return DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC


def multi_turn_records(category: str) -> list[dict[str, Any]]:
    """A multi-turn category's tasks as task records.

    The opening messages are BFCL's first turn and ``user_turns`` its later ones (a miss_func turn
    that adds tools, empty in BFCL's data, says what BFCL's inference says then); ``tools`` are all the
    task's function docs as BFCL sends them, those of ``missed_function`` held back by ``tools_added``
    until their turn (not offered, but run when called, as BFCL's executor runs any method of the
    classes: ``multi_turn_miss_func_49``'s gold calls ``tail`` two turns before it is offered); the
    code lives in the ``bfcl_multi_turn`` scorer's toolset, not in the record;
    ``solution`` is each user turn's gold calls in one assistant turn, then a text turn ending it.

    Args:
        category: One of :data:`MULTI_TURN_CATEGORIES`.

    Returns:
        One record per task whose classes all load in the sandbox, in BFCL's order.
    """
    gold = gold_turns(category)
    records = []
    for task_id, entry in entries(category).items():
        if task_id not in gold:
            continue
        missed = {int(turn): docs for turn, docs in entry.get("missed_function", {}).items()}
        later = [
            list(turn)
            if turn or k not in missed
            else [{"role": "user", "content": _holdout_prompt()}]
            for k, turn in enumerate(entry["question"])
            if k > 0
        ]
        solution: list[list[dict[str, Any]]] = []
        for turn in gold[task_id]:
            solution += [[dict(call) for call in turn], []] if turn else [[]]
        records.append(
            {
                "id": task_id,
                "messages": [dict(message) for message in entry["question"][0]],
                "user_turns": later,
                "tools": source.tools_as_sent(
                    list(entry["function"]) + [d for docs in missed.values() for d in docs]
                ),
                "tools_added": {
                    str(k): [source.sent_name(d["name"]) for d in docs]
                    for k, docs in missed.items()
                },
                "hidden_tools_run": True,
                "codes": {},
                "unsolved_set": {},
                "scorer": {"kind": "bfcl_multi_turn", "category": category, "id": task_id},
                "solution": solution,
                "data_source": f"bfcl:{category}",
                "split": "test",
            }
        )
    return records


@dataclass(frozen=True)
class BfclMultiTurnScorer:
    """BFCL's multi-turn check as a turn scorer (``ftrl_gym.scoring.TurnScorer``).

    Spec: ``{"kind": "bfcl_multi_turn", "category": "<multi-turn category>", "id": "<BFCL id>"}``.
    The agent's session holds the task's classes (``toolsets.toolset_source``), one instance each,
    loaded with BFCL's initial configuration; the gold run is BFCL's ground-truth calls in a second,
    fresh session of the same classes on the same sandbox (see :class:`MultiTurnJudge`).
    """

    category: str
    """The multi-turn category (``long_context`` loads each class's long-context scenario)."""
    task_id: str
    """BFCL's id of the task."""
    per_user_turn: ClassVar[bool] = True

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> BfclMultiTurnScorer:
        """Build from a ``bfcl_multi_turn`` spec, checking that bfcl-eval has the task and it loads.

        Raises:
            ScorerSpecError: Unknown category or id, or bfcl-eval is not installed.
        """
        source.require_bfcl()
        category, task_id = spec.get("category"), spec.get("id")
        if category not in MULTI_TURN_CATEGORIES:
            raise ScorerSpecError(
                f"scorer.category must be one of {', '.join(MULTI_TURN_CATEGORIES)}, got {category!r}"
            )
        if task_id not in entries(category):
            raise ScorerSpecError(
                f"scorer.id {task_id!r} is not a task of BFCL's {category} category"
            )
        return cls(category, task_id)

    @property
    def classes(self) -> list[str]:
        """The task's BFCL classes."""
        return list(entries(self.category)[self.task_id]["involved_classes"])

    @property
    def gold(self) -> tuple[tuple[dict[str, Any], ...], ...]:
        """The gold calls of each user turn."""
        return gold_turns(self.category)[self.task_id]

    @property
    def expected_calls(self) -> int:
        """T: the gold calls of all user turns."""
        return sum(len(turn) for turn in self.gold)

    def expected_at(self, user_turn: int) -> int:
        """The gold calls of one user turn (0 on miss_func/miss_param turns the agent cannot act on)."""
        return len(self.gold[user_turn]) if 0 <= user_turn < len(self.gold) else 0

    def entry_points(self) -> dict[str, str]:
        """Tool name (BFCL's method name) → ``api_<method>``."""
        return {
            method: toolsets.METHOD_PREFIX + method
            for c in self.classes
            for method in toolsets.public_methods(c)
        }

    def session_codes(self) -> dict[str, str]:
        """Every method's, loader's and state probe's function → its class's toolset source."""
        codes = {}
        for class_name in self.classes:
            text = _toolset_source(class_name)
            functions = [toolsets.METHOD_PREFIX + m for m in toolsets.public_methods(class_name)]
            functions += [toolsets.load_function(class_name), toolsets.state_function(class_name)]
            codes.update(dict.fromkeys(functions, text))
        return codes

    def setup_calls(self) -> list[ToolCall]:
        """The hidden calls that load BFCL's initial configuration into each instance."""
        entry = entries(self.category)[self.task_id]
        long_context = "long_context" in self.category
        return [
            ToolCall(
                toolsets.load_function(c),
                {"config": entry["initial_config"].get(c, {}), "long_context": long_context},
            )
            for c in self.classes
        ]

    def start(self, sandbox: Sandbox, seed: int | None) -> MultiTurnJudge:
        """A judge for one episode (its gold session opens at the first judged turn)."""
        return MultiTurnJudge(self, sandbox, seed)


@cache
def _toolset_source(class_name: str) -> str:
    return toolsets.toolset_source(class_name)


class MultiTurnJudge:
    """One episode's BFCL check: after each user turn, the gold calls of that turn run in the gold
    session; the turn is accepted when every instance's state probe reads the same in both sessions
    and the gold results are contained (as a multiset, in any order) in the agent's results of all
    turns so far. A turn without gold calls is not checked (BFCL's checker skips it).

    The gold run is a second sandbox session rather than BFCL's classes in-process: both runs then
    execute the same source under the same limits and seed, their results are rendered by the same
    code (the sandbox's text, not ``str()`` in-process), and no class code runs outside the sandbox.
    """

    def __init__(self, scorer: BfclMultiTurnScorer, sandbox: Sandbox, seed: int | None) -> None:
        self.scorer = scorer
        self._sandbox = sandbox
        self._seed = seed
        self._gold: SandboxSession | None = None
        self._gold_turns_run = 0

    def setup(self, session: SandboxSession) -> None:
        """Load BFCL's initial configuration into the session's instances.

        Raises:
            SandboxError: A loader did not answer ``loaded``.
        """
        results = session.call(self.scorer.setup_calls())
        failed = [r.text for r in results if r.text != "loaded"]
        if failed:
            raise SandboxError(
                f"BFCL task {self.scorer.task_id}: its scenario did not load in the sandbox: {failed[0]}"
            )

    def judge(
        self, user_turn: int, session: SandboxSession, turn_calls: int, results: Sequence[str]
    ) -> CallVerdict:
        """BFCL's check of one user turn (see the class docstring)."""
        gold_results = self._run_gold(user_turn)
        expected = self.scorer.expected_at(user_turn)
        if expected == 0:
            return CallVerdict(
                True, 0, "this turn has no gold calls; BFCL's checker does not check it"
            )
        if turn_calls == 0:
            return CallVerdict(
                False,
                0,
                f"no call in a turn whose gold run makes {expected} "
                "(multi_turn:empty_turn_model_response)",
            )
        gold_state = self._probe(self._gold_session(), "the gold run")
        agent_state = self._probe(session, None)
        for class_name in self.scorer.classes:
            agent, gold = agent_state.get(class_name), gold_state[class_name]
            if isinstance(agent, str):
                return CallVerdict(False, 0, agent)
            differing = sorted(k for k in set(gold) | set(agent) if gold.get(k) != agent.get(k))
            if differing:
                return CallVerdict(
                    False,
                    0,
                    f"the state of {class_name} differs from the gold run's in "
                    f"{', '.join(differing)} (multi_turn:instance_state_mismatch)"[:500],
                )
        missing = Counter(gold_results) - Counter(results)
        if missing:
            shown = "; ".join(text[:120] for text in list(missing.elements())[:3])
            return CallVerdict(
                False,
                0,
                f"{sum(missing.values())} of the gold run's {len(gold_results)} results are "
                f"not among the agent's: {shown} (multi_turn:execution_response_mismatch)"[:500],
            )
        return CallVerdict(
            True,
            min(expected, turn_calls),
            "the state equals the gold run's and its results are among the agent's",
        )

    def _gold_session(self) -> SandboxSession:
        if self._gold is None:
            self._gold = self._sandbox.open_session(self.scorer.session_codes(), seed=self._seed)
            self.setup(self._gold)
        return self._gold

    def _run_gold(self, user_turn: int) -> list[str]:
        """Run the gold calls of the turns up to ``user_turn`` not run yet; the results of ``user_turn``."""
        session = self._gold_session()
        entry_points = self.scorer.entry_points()
        texts: list[str] = []
        while self._gold_turns_run <= min(user_turn, len(self.scorer.gold) - 1):
            calls = [
                ToolCall(entry_points[c["name"]], dict(c["arguments"]))
                for c in self.scorer.gold[self._gold_turns_run]
            ]
            texts = [r.text for r in session.call(calls)]
            self._gold_turns_run += 1
        return texts if self._gold_turns_run == user_turn + 1 else []

    def _probe(self, session: SandboxSession, gold: str | None) -> dict[str, Any]:
        """Class → its state snapshot; for the agent's session, an error line where it cannot be read.

        Raises:
            SandboxError: The gold run's state cannot be read (never for anything the agent did).
        """
        probes = [ToolCall(toolsets.state_function(c), {}) for c in self.scorer.classes]
        out: dict[str, Any] = {}
        for class_name, result in zip(self.scorer.classes, session.call(probes)):
            if result.ok and isinstance(result.value, dict):
                out[class_name] = result.value
                continue
            line = (
                f"the state of {class_name} cannot be read: "
                + (result.error or "its snapshot was cut at the sandbox's output limit")
            )[:300]
            if gold is not None:
                raise SandboxError(f"BFCL task {self.scorer.task_id}: {gold}: {line}")
            out[class_name] = line
        return out

    def close(self) -> None:
        """Close the gold session (idempotent)."""
        if self._gold is not None:
            self._gold.close()
            self._gold = None
