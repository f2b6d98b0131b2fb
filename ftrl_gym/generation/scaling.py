"""Stage 4, complexity scaling: broader tools, more parameters, looser types, distractor tools."""

from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass

from ftrl_gym.generation.documents import (
    COMPUTE_FAMILIES,
    Param,
    ToolDoc,
    broad_compute_doc,
    broad_lookup_doc,
    compute_doc,
    lookup_doc,
    styled,
)
from ftrl_gym.generation.integration import Toolset
from ftrl_gym.generation.scenes import Scene
from ftrl_gym.generation.world import CONVERSIONS, RELATIONS, target_unit

CONVERT_OPS: tuple[str, ...] = tuple(f"convert:{a}:{b}" for a, b in CONVERSIONS) + ("convert:c:f",)
"""Every conversion a broad converter covers."""

MAX_LOOKUP_FIELDS = 4
"""A widened lookup tool covers at most this many facts (more only if integration merged more)."""


@dataclass
class ScalingConfig:
    """Rates of the four complexity-scaling operations (each a probability per tool or task)."""

    functional_rate: float = 0.3
    """Per needed tool: widen it to a whole family (all facts of a kind, all conversions...)."""
    parameter_rate: float = 0.4
    """Per needed tool: add optional parameters (units, number format, verbosity, precision)."""
    type_rate: float = 0.4
    """Per tool: accept numeric ids as well as names, accept numbers as strings, return JSON objects."""
    distractor_rate: float = 0.7
    """Per task: add 1..``max_distractors`` plausible tools no sub-problem needs."""
    max_distractors: int = 3
    """Upper bound on distractors per task."""

    def __post_init__(self) -> None:
        for name in ("functional_rate", "parameter_rate", "type_rate", "distractor_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"ScalingConfig.{name} must be a probability in [0, 1], got {value}"
                )
        if self.max_distractors < 1:
            raise ValueError(
                f"ScalingConfig.max_distractors must be >= 1, got {self.max_distractors}"
            )

    def to_dict(self) -> dict[str, float]:
        """Return the rates as a dict."""
        return asdict(self)


def scale(scene: Scene, toolset: Toolset, rng: random.Random, config: ScalingConfig) -> Toolset:
    """Stage 4: apply the four scaling operations, each at its configured rate.

    Args:
        scene: The stage-1 scene (entity kinds present guide the distractors).
        toolset: The stage-3 toolset (left unchanged: stage outputs stay inspectable).
        rng: The candidate's private generator.
        config: The rates.

    Returns:
        A new, scaled toolset; the assignment follows renamed tools.
    """
    toolset = copy.deepcopy(toolset)
    taken = {d.name for d in toolset.docs}
    for doc in list(toolset.docs):
        if rng.random() < config.functional_rate:
            wider = generalise_function(doc, rng, taken)
            if wider is not None:
                toolset.replace(doc, wider)
                toolset.log.append(
                    f"functional generalisation: {doc.name} -> {wider.name} ({len(wider.ops)} ops)"
                )
    for doc in toolset.docs:
        if rng.random() < config.parameter_rate and expand_parameters(doc, rng):
            toolset.log.append(f"parameter expansion: {doc.name}")
        if rng.random() < config.type_rate:
            generalise_types(doc, rng)
            toolset.log.append(f"type generalisation: {doc.name}")
    if rng.random() < config.distractor_rate:
        for decoy in distractors(
            scene, toolset, rng, rng.randint(1, config.max_distractors), taken
        ):
            toolset.docs.append(decoy)
            toolset.log.append(f"toolset expansion: {decoy.name}")
    return toolset


def generalise_function(doc: ToolDoc, rng: random.Random, taken: set[str]) -> ToolDoc | None:
    """Return a broader version of ``doc``, or None when it already covers its whole family.

    A lookup gains other facts of its entity kind, up to :data:`MAX_LOOKUP_FIELDS`; a computation
    covers its whole family (every conversion, every arithmetic operation...).
    """
    if doc.kind:
        family_ops = [
            key for key, rel in RELATIONS.items() if rel.subject == doc.kind and key not in doc.ops
        ]
        ops = doc.ops + rng.sample(
            family_ops, min(len(family_ops), max(1, MAX_LOOKUP_FIELDS - len(doc.ops)))
        )
        return (
            broad_lookup_doc(doc.kind, ops, rng, taken, doc.style)
            if len(ops) > len(doc.ops)
            else None
        )
    family_ops = list(CONVERT_OPS if doc.family == "convert" else COMPUTE_FAMILIES[doc.family])
    ops = doc.ops + [op for op in family_ops if op not in doc.ops]
    return (
        broad_compute_doc(doc.family, ops, rng, taken, doc.style)
        if len(ops) > len(doc.ops)
        else None
    )


def _optional(doc: ToolDoc, words: tuple[str, ...], rng: random.Random) -> str:
    """Pick a parameter name in the document's style that it does not use yet."""
    used = {p.name for p in doc.params}
    for word in rng.sample(words, len(words)):
        name = styled([word], doc.style)
        if name not in used:
            return name
    return styled([words[0], "option"], doc.style)


def expand_parameters(doc: ToolDoc, rng: random.Random) -> bool:
    """Add one or two optional parameters that leave the default answer unchanged.

    Returns:
        Whether a parameter was added.
    """
    choices: list[str] = []
    if doc.kind:
        rels = [RELATIONS[op] for op in doc.ops]
        if len(rels) == 1 and rels[0].unit and target_unit(rels[0].unit):
            choices.append("unit")
        if any(r.value_type in ("int", "float") for r in rels):
            choices.append("format")
        choices.append("verbose")
    elif doc.family in ("convert", "math"):
        choices.append("decimals")
    if not choices:
        return False
    for option in rng.sample(choices, min(len(choices), rng.randint(1, 2))):
        _add_option(doc, option, rng)
    return True


def _add_option(doc: ToolDoc, option: str, rng: random.Random) -> None:
    """Add one optional parameter and record it in the document's options."""
    if option == "unit":
        base = RELATIONS[doc.ops[0]].unit or ""
        name = _optional(doc, ("unit", "units", "output_unit"), rng)
        doc.params.append(
            Param(
                name,
                "string",
                f"Unit of the result (default '{base}').",
                required=False,
                enum=[base, target_unit(base)],
                default=base,
            )
        )
    elif option == "format":
        name = _optional(doc, ("format", "number_format"), rng)
        doc.params.append(
            Param(
                name,
                "string",
                "'plain' (default) or 'grouped' with thousands separators.",
                required=False,
                enum=["plain", "grouped"],
                default="plain",
            )
        )
    elif option == "verbose":
        name = _optional(doc, ("verbose", "as_sentence"), rng)
        doc.params.append(
            Param(
                name,
                "boolean",
                "Return a full sentence instead of the bare value.",
                required=False,
                default=False,
            )
        )
    else:
        name = _optional(doc, ("decimals", "precision"), rng)
        doc.params.append(
            Param(
                name,
                "integer",
                "Decimal places of the result (default 2).",
                required=False,
                default=2,
            )
        )
    doc.options[option] = name


def generalise_types(doc: ToolDoc, rng: random.Random) -> None:
    """Loosen input types (ids as int or str, numbers as strings) and/or return JSON objects.

    A tool whose inputs cannot be loosened always gets a structured return, so something changes.
    """
    changed = False
    if doc.kind and rng.random() < 0.6:
        subject = doc.param(doc.roles["subject"])
        subject.type = ["string", "integer"]
        subject.description = subject.description.rstrip(".") + ", or its numeric id."
        doc.options["accepts_ids"] = True
        changed = True
    elif not doc.kind:
        for param in doc.params:
            if param.type == "number":
                param.type = ["number", "string"]
                changed = True
    if not changed or rng.random() < 0.5:
        doc.options["structured"] = True
        doc.description += " Returns a JSON object."


def distractors(
    scene: Scene, toolset: Toolset, rng: random.Random, count: int, taken: set[str]
) -> list[ToolDoc]:
    """Write plausible decoy tools: facts about kinds the question mentions, or other computations.

    Never a decoy for an op some needed tool already covers, so a decoy cannot give the answer.
    """
    covered = {op for d in toolset.docs for op in d.ops}
    kinds = {n.value_type.split(":")[1] for n in scene.nodes if n.value_type.startswith("entity:")}
    kinds |= {RELATIONS[n.op].subject for n in scene.nodes if n.is_lookup}
    near = [op for op, rel in RELATIONS.items() if rel.subject in kinds and op not in covered]
    computed = [op for fam in COMPUTE_FAMILIES.values() for op in fam if op != "text.upper"] + list(
        CONVERT_OPS
    )
    far = [op for op in computed if op not in covered]
    pool = near * 3 + far
    made: list[ToolDoc] = []
    while pool and len(made) < count:
        op = rng.choice(pool)
        pool = [o for o in pool if o != op]
        doc = lookup_doc(op, rng, taken) if op in RELATIONS else compute_doc(op, rng, taken)
        doc.distractor = True
        made.append(doc)
    return made
