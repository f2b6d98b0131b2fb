"""Stage 5a, local deployment: Python source per tool, the reference solution, the task record."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from ftrl_gym.generation.codegen import tool_source
from ftrl_gym.generation.documents import ATTRIBUTE_LABELS, ToolDoc, doc_op
from ftrl_gym.generation.integration import Toolset
from ftrl_gym.generation.scenes import Scene
from ftrl_gym.generation.world import RELATIONS, Entity, World

GENERATOR_VERSION = "1.1"
"""Bumped whenever the offline backend's output changes for a given seed."""


@dataclass
class Candidate:
    """A deployed task awaiting validation.

    Attributes:
        record: The SPEC 2 task record (structured fields as objects).
        intended: Per solution turn, per call, the answer that call must produce.
        probes: Calls of each distractor on the task's own entities; none may produce an answer.
        meta: Diversity facts: template id, domains, hops, tools, distractors.
    """

    record: dict[str, Any]
    intended: list[list[str]] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "record": self.record,
            "intended": self.intended,
            "probes": self.probes,
            "meta": self.meta,
        }


def call_arguments(doc: ToolDoc, op: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Map a sub-problem's semantic inputs onto a tool's parameters.

    Args:
        doc: The tool answering the sub-problem.
        op: The document-level op (``city.population``, ``convert:m:ft``, ``math.add``...).
        inputs: Semantic inputs (``subject``, ``value``, ``a``, ``date``...).

    Returns:
        Keyword arguments for the call.
    """
    args = {doc.roles[k]: v for k, v in inputs.items() if k in doc.roles}
    for role in ("selector", "operation"):
        if role in doc.roles:
            args[doc.roles[role]] = doc.selectors[op]
    return args


def _with_defaults(
    doc: ToolDoc, args: dict[str, Any], rng: random.Random, rate: float
) -> dict[str, Any]:
    """Sometimes spell out optional parameters at their defaults, as careful callers do."""
    for param in doc.params:
        if not param.required and param.default is not None and rng.random() < rate:
            args[param.name] = param.default
    return args


def _scene_entities(scene: Scene, world: World) -> list[Entity]:
    """Every entity the scene mentions (subjects and entity answers), in node order."""
    names = []
    for node in scene.nodes:
        names += [node.inputs["subject"]] if node.is_lookup else []
        names += [str(node.value)] if node.value_type.startswith("entity:") else []
    return [world.find(n) for n in dict.fromkeys(names)]


def table_rows(
    doc: ToolDoc, entities: list[Entity], world: World, rng: random.Random
) -> list[dict[str, Any]]:
    """Rows of a lookup tool: the task's entities of its kind plus a few others, shuffled."""
    mine = [e for e in entities if e.kind == doc.kind]
    mine_ids = {e.id for e in mine}
    others = [i for i in world.by_kind[doc.kind or ""] if i not in mine_ids]
    chosen = mine + [world.get(i) for i in rng.sample(others, rng.randint(2, 4))]
    rows = []
    for entity in chosen:
        row: dict[str, Any] = {"id": entity.id, "name": entity.name}
        for op in doc.ops:
            relation = RELATIONS[op]
            word = ATTRIBUTE_LABELS[relation.attribute][0]
            value = world.value(entity, relation)
            row[word] = value.name if isinstance(value, Entity) else value
            if isinstance(value, Entity) and doc.options.get("structured"):
                row[f"{word}_id"] = value.id
        rows.append(row)
    rng.shuffle(rows)
    return rows


def _probe_inputs(op: str, scene: Scene, entities: list[Entity], doc: ToolDoc) -> dict[str, Any]:
    """Plausible inputs for calling a distractor: the task's own entities and values."""
    numbers = [n.value for n in scene.nodes if n.value_type in ("int", "float")] + [12, 7]
    dates = [n.value for n in scene.nodes if n.value_type == "date"] + ["2001-02-03", "2010-06-15"]
    names = [e.name for e in entities] or ["Example"]
    subject = next((e.name for e in entities if e.kind == doc.kind), names[0])
    inputs = {
        "subject": subject,
        "value": numbers[0],
        "a": numbers[0],
        "b": numbers[1],
        "date": dates[0],
        "days": 30,
        "start": dates[0],
        "end": dates[1],
        "text": names[0],
    }
    if op.startswith("convert:"):
        inputs.update(from_unit=op.split(":")[1], to_unit=op.split(":")[2])
    return inputs


def solution_turns(
    scene: Scene, toolset: Toolset, rng: random.Random, explicit_rate: float
) -> tuple[list[list[dict[str, Any]]], list[list[str]]]:
    """The reference calls turn by turn (independent sub-problems share a turn) and their answers."""
    turns, intended = [], []
    for level in scene.levels():
        calls = []
        for node in level:
            doc = toolset.doc(toolset.assignment[node.id])
            args = _with_defaults(
                doc, call_arguments(doc, doc_op(node), node.inputs), rng, explicit_rate
            )
            calls.append({"name": doc.name, "arguments": args})
        turns.append(calls)
        intended.append([node.answer for node in level])
    return turns, intended


def deploy(
    scene: Scene,
    toolset: Toolset,
    world: World,
    rng: random.Random,
    split: str,
    explicit_rate: float = 0.3,
) -> Candidate:
    """Stage 5a: write every tool's code and assemble the task record.

    Args:
        scene: The stage-1 scene.
        toolset: The stage-4 toolset.
        world: The world the lookup tables are cut from.
        rng: The candidate's private generator.
        split: ``train`` or ``test``.
        explicit_rate: Probability that the solution spells out an optional parameter's default.

    Returns:
        The candidate: record, intended answers per call, distractor probes, diversity facts.
    """
    entities = _scene_entities(scene, world)
    codes = {}
    for doc in toolset.docs:
        rows = table_rows(doc, entities, world, rng) if doc.kind else None
        codes[doc.name] = tool_source(doc, rows)
    turns, intended = solution_turns(scene, toolset, rng, explicit_rate)
    unsolved: dict[str, list[str]] = {}
    for calls, answers in zip(turns, intended):
        for call, answer in zip(calls, answers):
            unsolved.setdefault(call["name"], []).append(answer)
    schemas = [doc.schema() for doc in toolset.docs]
    rng.shuffle(schemas)
    record = {
        "messages": [{"role": "user", "content": scene.question}],
        "tools": schemas,
        "codes": codes,
        "unsolved_set": unsolved,
        "answer": scene.answer,
        "data_source": f"ftrl_gym.generation/offline-{GENERATOR_VERSION}",
        "split": split,
        "scenario": scene.scenario,
        "solution": turns,
    }
    decoys = [d for d in toolset.docs if d.distractor]
    probes = [
        {
            "name": d.name,
            "arguments": call_arguments(d, d.ops[0], _probe_inputs(d.ops[0], scene, entities, d)),
        }
        for d in decoys
    ]
    meta = {
        "template": scene.template_id,
        "domains": scene.domains,
        "hops": len(turns),
        "sub_problems": len(scene.nodes),
        "tools": len(toolset.docs),
        "distractors": len(decoys),
    }
    return Candidate(record, intended, probes, meta)
