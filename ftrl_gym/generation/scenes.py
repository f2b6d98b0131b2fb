"""Stage 1, scene decomposition: a question split into sub-problems with an explicit dependency DAG."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from ftrl_gym.generation import templates as tpl
from ftrl_gym.generation import world as wd
from ftrl_gym.generation.world import RELATIONS, Entity, Relation, World

SCENARIOS: tuple[str, ...] = (
    "single_hop",
    "parallel_single_hop",
    "multi_hop",
    "parallel_multi_hop",
)


@dataclass
class SubProblem:
    """One node of the scene: a single tool call answers it.

    Attributes:
        id: Node id, ``n0``, ``n1``... in creation order.
        op: A relation key (``city.population``) or a computation (``convert``, ``math.add``,
            ``date.add_days``, ``date.weekday``, ``date.days_between``, ``text.reverse``, ``text.slug``).
        domain: Knowledge domain (``geography``...) or ``computation``.
        inputs: Semantic inputs with concrete values: ``{"subject": name}`` for a lookup, e.g.
            ``{"value": 812, "from_unit": "m", "to_unit": "ft"}`` for a computation.
        depends_on: Ids of the nodes whose answers feed this one.
        value: The typed answer (``int``, ``float``, ``str``; an entity's name for entity values).
        value_type: ``entity:<kind>``, ``int``, ``float``, ``date`` or ``text``.
        unit: Unit of a numeric answer, if any.
        phrase: Noun phrase describing the answer, nested over the dependencies.
        phrase_id: Which template made the phrase (diversity figures).
    """

    id: str
    op: str
    domain: str
    inputs: dict[str, Any]
    depends_on: list[str]
    value: Any
    value_type: str
    unit: str | None
    phrase: str
    phrase_id: str

    @property
    def answer(self) -> str:
        """The expected answer string."""
        return str(self.value)

    @property
    def is_lookup(self) -> bool:
        """Whether the node reads a fact of the world (rather than computing)."""
        return self.op in RELATIONS


@dataclass
class Scene:
    """The output of stage 1: the sub-problem DAG, the user question and the final answer."""

    scenario: str
    nodes: list[SubProblem]
    question: str
    answer: str
    template_id: str
    domains: list[str] = field(default_factory=list)

    def node(self, node_id: str) -> SubProblem:
        """Return the node with this id."""
        return next(n for n in self.nodes if n.id == node_id)

    def levels(self) -> list[list[SubProblem]]:
        """Group the nodes into turns: a node's turn is the length of the longest path to it."""
        depth: dict[str, int] = {}
        for node in self.nodes:
            depth[node.id] = 1 + max((depth[d] for d in node.depends_on), default=-1)
        turns: list[list[SubProblem]] = [[] for _ in range(max(depth.values()) + 1)]
        for node in self.nodes:
            turns[depth[node.id]].append(node)
        return turns

    def edges(self) -> list[tuple[str, str]]:
        """Return the DAG's edges as (from, to) pairs."""
        return [(dep, node.id) for node in self.nodes for dep in node.depends_on]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the scene."""
        return asdict(self) | {"edges": self.edges()}


@dataclass
class _Cursor:
    """Where a chain walk stands: the current value, its phrase, and what it may do next."""

    value: Any
    value_type: str
    unit: str | None
    phrase: str
    bare: bool
    computed: int = 0
    converted: bool = False
    trailing: bool = False
    """The phrase ends in a clause after a nested phrase ("... where X was born")."""


def _unary(
    op: str, x: Any, unit: str | None, rng: random.Random
) -> tuple[dict[str, Any], Any, str, str | None, dict[str, Any]]:
    """Compute a unary op: (inputs, value, value type, unit, extra template fields)."""
    if op == "convert":
        to_unit = wd.target_unit(unit or "") or ""
        value = wd.convert(x, unit or "", to_unit)
        return (
            {"value": x, "from_unit": unit, "to_unit": to_unit},
            value,
            "float",
            to_unit,
            {"unit": wd.UNIT_NAMES[to_unit]},
        )
    if op.startswith("math."):
        n = rng.randint(2, 12) if op in ("math.multiply", "math.divide") else rng.randint(100, 999)
        value = wd.arithmetic(op.split(".")[1], x, n)
        kind = "int" if isinstance(value, int) else "float"
        return {"a": x, "b": n}, value, kind, unit, {"n": n}
    if op == "date.add_days":
        n = rng.randint(10, 400)
        return {"date": x, "days": n}, wd.add_days(x, n), "date", unit, {"n": n}
    if op == "date.weekday":
        return {"date": x}, wd.weekday(x), "text", unit, {}
    text = x.name if isinstance(x, Entity) else str(x)
    result = text[::-1] if op == "text.reverse" else wd.slugify(text)
    return {"text": text}, result, "text", unit, {}


class _SceneBuilder:
    """Builds nodes for one scene from a world and a private generator."""

    def __init__(self, world: World, rng: random.Random) -> None:
        self.world = world
        self.rng = rng
        self.nodes: list[SubProblem] = []
        self.seen: set[str] = set()

    def start(self, kind: str | None = None) -> _Cursor:
        """Return a cursor on a fresh random entity (of ``kind`` when given)."""
        kind = kind or self.rng.choice(sorted(self.world.by_kind))
        entity = self.world.get(self.rng.choice(self.world.by_kind[kind]))
        self.seen.add(entity.name)
        return _Cursor(entity, f"entity:{kind}", None, entity.name, True)

    def add(
        self,
        op: str,
        domain: str,
        inputs: dict[str, Any],
        deps: list[str],
        value: Any,
        value_type: str,
        unit: str | None,
        phrase: str,
        phrase_id: str,
    ) -> SubProblem:
        """Append a node and return it."""
        node = SubProblem(
            f"n{len(self.nodes)}",
            op,
            domain,
            inputs,
            deps,
            value,
            value_type,
            unit,
            phrase,
            phrase_id,
        )
        self.nodes.append(node)
        return node

    def phrase(
        self, templates: tuple[str, ...], key: str, cursor: _Cursor, **extra: Any
    ) -> tuple[str, str, bool]:
        """Pick a template for ``key`` and fill it with the cursor's phrase.

        Returns:
            The phrase, its template id, and whether it now ends in a clause after a nested phrase.
        """
        choices = tpl.phrase_choices(templates, nested=not cursor.bare, trailing=cursor.trailing)
        index = self.rng.choice(choices)
        template = templates[index]
        tail = not template.endswith("{x}")
        trailing = (tail and not cursor.bare) or (not tail and cursor.trailing)
        return template.format(x=cursor.phrase, **extra), f"{key}/{index}", trailing

    def lookup(
        self, cursor: _Cursor, relation: Relation, deps: list[str]
    ) -> tuple[SubProblem, _Cursor]:
        """Apply a relation to the cursor's entity."""
        entity: Entity = cursor.value
        value = self.world.value(entity, relation)
        phrase, pid, trailing = self.phrase(
            tpl.RELATION_PHRASES[relation.key], relation.key, cursor
        )
        kind = (
            f"entity:{relation.target}" if relation.value_type == "entity" else relation.value_type
        )
        answer = value.name if isinstance(value, Entity) else value
        node = self.add(
            relation.key,
            relation.domain,
            {"subject": entity.name},
            deps,
            answer,
            kind,
            relation.unit,
            phrase,
            pid,
        )
        self.seen.add(str(answer))
        moved = _Cursor(
            value, kind, relation.unit, phrase, False, cursor.computed, trailing=trailing
        )
        return node, moved

    def compute(self, cursor: _Cursor, op: str, deps: list[str]) -> tuple[SubProblem, _Cursor]:
        """Apply a unary computation to the cursor's value."""
        inputs, value, value_type, unit, extra = _unary(op, cursor.value, cursor.unit, self.rng)
        phrase, pid, trailing = self.phrase(tpl.COMPUTE_PHRASES[op], op, cursor, **extra)
        node = self.add(op, "computation", inputs, deps, value, value_type, unit, phrase, pid)
        self.seen.add(str(value))
        moved = _Cursor(
            value,
            value_type,
            unit,
            phrase,
            False,
            cursor.computed + 1,
            cursor.converted or op == "convert",
            trailing,
        )
        return node, moved

    def options(self, cursor: _Cursor, last: bool) -> list[tuple[str, str]]:
        """List the (kind, op) steps that may follow the cursor; weighted by repetition."""
        steps: list[tuple[str, str]] = []
        if cursor.value_type.startswith("entity:"):
            kind = cursor.value_type.split(":")[1]
            for rel in RELATIONS.values():
                if rel.subject != kind:
                    continue
                target = self.world.value(cursor.value, rel)
                if isinstance(target, Entity) and target.name in self.seen:
                    continue
                weight = 3 if rel.value_type == "entity" and not last else 1
                if last or rel.value_type == "entity" or cursor.computed == 0:
                    steps += [("lookup", rel.key)] * weight
            if last and cursor.computed == 0 and not cursor.bare:
                steps += [("compute", "text.reverse"), ("compute", "text.slug")]
            return steps
        if cursor.computed >= 2:
            return steps
        if cursor.value_type in ("int", "float"):
            if cursor.unit and not cursor.converted and wd.target_unit(cursor.unit):
                steps += [("compute", "convert")] * 3
            if last and cursor.computed == 0:
                steps += [
                    ("compute", op)
                    for op in ("math.add", "math.subtract", "math.multiply", "math.divide")
                ]
        elif cursor.value_type == "date":
            steps += [("compute", "date.add_days")] * (2 if cursor.computed == 0 else 0)
            if last:
                steps.append(("compute", "date.weekday"))
        elif cursor.value_type == "text" and last and cursor.computed == 0:
            steps += [("compute", "text.reverse"), ("compute", "text.slug")]
        return steps

    def chain(self, length: int, cursor: _Cursor | None = None) -> list[SubProblem] | None:
        """Walk ``length`` steps from a random entity; None when the walk reaches a dead end."""
        cursor = cursor or self.start()
        made: list[SubProblem] = []
        for step in range(length):
            options = self.options(cursor, last=step == length - 1)
            if not options:
                return None
            kind, op = self.rng.choice(options)
            deps = [made[-1].id] if made else []
            if kind == "lookup":
                node, cursor = self.lookup(cursor, RELATIONS[op], deps)
            else:
                node, cursor = self.compute(cursor, op, deps)
            made.append(node)
        return made


def decompose(scenario: str, world: World, rng: random.Random, max_tries: int = 50) -> Scene:
    """Stage 1: draw a scene of the given scenario from the world.

    Args:
        scenario: One of :data:`SCENARIOS`.
        world: The synthetic world the facts come from.
        rng: The candidate's private generator.
        max_tries: Walks to attempt before giving up.

    Returns:
        The scene: nodes with answers, the DAG, the question and the final answer.

    Raises:
        ValueError: Unknown scenario, or no scene found in ``max_tries`` walks.
    """
    makers = {
        "single_hop": _single_hop,
        "parallel_single_hop": _parallel_single_hop,
        "multi_hop": _multi_hop,
        "parallel_multi_hop": _parallel_multi_hop,
    }
    if scenario not in makers:
        raise ValueError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    for _ in range(max_tries):
        builder = _SceneBuilder(world, rng)
        scene = makers[scenario](builder)
        if scene is not None and _answers_distinct(scene):
            scene.domains = sorted({n.domain for n in scene.nodes})
            return scene
    raise ValueError(f"could not build a {scenario} scene in {max_tries} tries")


def _answers_distinct(scene: Scene) -> bool:
    """Reject scenes where two sub-problems share an answer (a call could not tell them apart)."""
    answers = [n.answer.lower() for n in scene.nodes]
    return len(set(answers)) == len(answers)


def _is_person(node: SubProblem) -> bool:
    """Whether a node's answer is a person (questions about it start with "Who")."""
    return node.value_type == "entity:person"


def _single_hop(b: _SceneBuilder) -> Scene | None:
    nodes = b.chain(1)
    if nodes is None or not nodes[0].is_lookup:
        return None
    question, frame = tpl.render_single(nodes[0].phrase, b.rng, _is_person(nodes[0]))
    return Scene("single_hop", b.nodes, question, nodes[0].answer, f"{frame}|{nodes[0].phrase_id}")


def _parallel_single_hop(b: _SceneBuilder) -> Scene | None:
    k = b.rng.choice((2, 2, 3, 3, 4))
    ends = []
    for _ in range(k):
        nodes = b.chain(1)
        if nodes is None or not nodes[0].is_lookup:
            return None
        ends.append(nodes[0])
    question, frame = tpl.render_multi([n.phrase for n in ends], b.rng)
    template = "|".join([frame] + [n.phrase_id for n in ends])
    return Scene(
        "parallel_single_hop", b.nodes, question, ", ".join(n.answer for n in ends), template
    )


def _multi_hop(b: _SceneBuilder) -> Scene | None:
    nodes = b.chain(b.rng.choice((2, 2, 3, 3, 4, 5)))
    if nodes is None:
        return None
    question, frame = tpl.render_single(nodes[-1].phrase, b.rng, _is_person(nodes[-1]))
    return Scene(
        "multi_hop",
        b.nodes,
        question,
        nodes[-1].answer,
        "|".join([frame] + [n.phrase_id for n in nodes]),
    )


def _parallel_multi_hop(b: _SceneBuilder) -> Scene | None:
    return _join(b) if b.rng.random() < 0.45 else _parallel_chains(b)


def _parallel_chains(b: _SceneBuilder) -> Scene | None:
    chains = []
    for _ in range(b.rng.choice((2, 2, 2, 3))):
        nodes = b.chain(b.rng.choice((2, 2, 3)))
        if nodes is None:
            return None
        chains.append(nodes)
    question, frame = tpl.render_multi([c[-1].phrase for c in chains], b.rng)
    template = "|".join([frame] + [n.phrase_id for c in chains for n in c])
    return Scene(
        "parallel_multi_hop", b.nodes, question, ", ".join(c[-1].answer for c in chains), template
    )


_JOINABLE = [r for r in RELATIONS.values() if r.value_type in ("int", "float", "date")]


def _join(b: _SceneBuilder) -> Scene | None:
    """Two branches ending in the same numeric or date fact, joined by a binary computation."""
    final = b.rng.choice(_JOINABLE)
    ends = []
    for _ in range(2):
        feeders = [r for r in RELATIONS.values() if r.target == final.subject]
        if feeders and b.rng.random() < 0.7:
            feeder = b.rng.choice(feeders)
            first, cursor = b.lookup(b.start(feeder.subject), feeder, [])
            if first.answer in {n.answer for n in b.nodes[:-1]}:
                return None
            node, _ = b.lookup(cursor, final, [first.id])
        else:
            node, _ = b.lookup(b.start(final.subject), final, [])
        ends.append(node)
    x, y = ends
    value: float
    if final.value_type == "date":
        op, value = "date.days_between", wd.days_between(x.value, y.value)
        inputs = {"start": x.value, "end": y.value}
    else:
        op = b.rng.choice(("math.add", "math.subtract", "math.divide"))
        value = wd.arithmetic(op.split(".")[1], x.value, y.value)
        inputs = {"a": x.value, "b": y.value}
    left = _Cursor(x.value, x.value_type, x.unit, x.phrase, False)
    phrase, pid, _ = b.phrase(tpl.JOIN_PHRASES[op], f"join:{op}", left, y=y.phrase)
    kind = "int" if isinstance(value, int) else "float"
    join = b.add(op, "computation", inputs, [x.id, y.id], value, kind, None, phrase, pid)
    question, frame = tpl.render_single(phrase, b.rng)
    template = "|".join([frame] + [n.phrase_id for n in b.nodes])
    return Scene("parallel_multi_hop", b.nodes, question, join.answer, template)
