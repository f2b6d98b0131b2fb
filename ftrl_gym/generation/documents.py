"""Stage 2, document generation: one OpenAI function schema per sub-problem, with realistic names."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

from ftrl_gym.generation.scenes import Scene, SubProblem
from ftrl_gym.generation.world import RELATIONS, UNIT_NAMES

VERBS: tuple[str, ...] = ("get", "lookup", "fetch", "query", "find", "retrieve")
"""Verbs that start lookup tool names."""

ATTRIBUTE_LABELS: dict[str, tuple[str, str]] = {
    "capital": ("capital", "capital city"),
    "population": ("population", "population"),
    "currency": ("currency", "official currency"),
    "area_km2": ("area", "area in square kilometres"),
    "head_of_state": ("head_of_state", "head of state"),
    "country": ("country", "country"),
    "elevation": ("elevation", "elevation"),
    "mayor": ("mayor", "mayor"),
    "founding_date": ("founding_date", "founding date (YYYY-MM-DD)"),
    "length": ("length", "length"),
    "source_country": ("source_country", "country of its source"),
    "mouth_city": ("mouth_city", "city at its mouth"),
    "height": ("height", "height"),
    "first_climber": ("first_ascent", "first person to climb it"),
    "birthplace": ("birthplace", "city of birth"),
    "birth_date": ("birth_date", "date of birth (YYYY-MM-DD)"),
    "employer": ("employer", "employer"),
    "alma_mater": ("alma_mater", "university graduated from"),
    "headquarters": ("headquarters", "headquarters city"),
    "ceo": ("ceo", "chief executive officer"),
    "founded_year": ("founding_year", "year of founding"),
    "employees": ("employee_count", "number of employees"),
    "revenue_musd": ("revenue", "annual revenue in millions of USD"),
    "city": ("city", "city"),
    "rector": ("rector", "rector"),
    "students": ("enrollment", "number of enrolled students"),
    "maker": ("manufacturer", "manufacturer"),
    "price_usd": ("price", "list price in USD"),
    "weight": ("weight", "weight"),
    "release_date": ("release_date", "release date (YYYY-MM-DD)"),
    "designer": ("designer", "designer"),
    "discoverer": ("discoverer", "discoverer"),
    "atomic_mass": ("atomic_mass", "atomic mass"),
    "melting_point": ("melting_point", "melting point"),
    "habitat": ("habitat", "native country"),
    "mass": ("mass", "average mass"),
    "lifespan_years": ("lifespan", "typical lifespan in years"),
    "date": ("date", "date (YYYY-MM-DD)"),
    "venue": ("venue", "host city"),
    "organiser": ("organiser", "organising company"),
    "attendance": ("attendance", "attendance"),
}
"""Attribute → (word used in names and selector values, human label without unit)."""


def attribute_label(op: str) -> str:
    """Return the human label of a relation, with its unit (``elevation in metres``)."""
    relation = RELATIONS[op]
    label = ATTRIBUTE_LABELS[relation.attribute][1]
    return f"{label} in {UNIT_NAMES[relation.unit]}" if relation.unit else label


COMPUTE_FAMILIES: dict[str, tuple[str, ...]] = {
    "math": ("math.add", "math.subtract", "math.multiply", "math.divide"),
    "date": ("date.add_days", "date.weekday", "date.days_between"),
    "text": ("text.reverse", "text.slug", "text.upper", "text.length"),
}
"""Computation family → the operations a broad tool of that family covers (conversions: see scaling)."""


@dataclass
class Param:
    """One parameter of a tool."""

    name: str
    type: str | list[str]
    description: str
    required: bool = True
    enum: list[Any] | None = None
    default: Any = None

    def schema(self) -> dict[str, Any]:
        """Return the JSON-schema property for this parameter."""
        out: dict[str, Any] = {"type": self.type, "description": self.description}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.default is not None:
            out["default"] = self.default
        return out


@dataclass
class ToolDoc:
    """A tool document: what the agent sees (name, description, parameters) and what it covers.

    Attributes:
        name: Function name, a Python identifier.
        description: One or two sentences for the agent.
        family: ``lookup:<entity kind>``, ``convert``, ``math``, ``date`` or ``text``.
        ops: Relation keys or computations the tool answers; more than one means a broad tool.
        params: Parameters in schema order.
        roles: Semantic input (``subject``, ``selector``, ``value``, ``a``...) → parameter name.
        selectors: Op → value of the selector parameter (broad tools only).
        style: Naming style, ``snake`` or ``camel``.
        options: Scaling flags read by code generation (``accepts_ids``, ``structured``, ``unit``,
            ``format``, ``verbose``, ``decimals``), and ``fixed`` units of a narrow converter.
        variant: Code style of the implementation (import placement, error handling).
        distractor: Whether the tool is a plausible decoy no sub-problem needs.
    """

    name: str
    description: str
    family: str
    ops: list[str]
    params: list[Param]
    roles: dict[str, str]
    selectors: dict[str, str] = field(default_factory=dict)
    style: str = "snake"
    options: dict[str, Any] = field(default_factory=dict)
    variant: int = 0
    distractor: bool = False

    @property
    def kind(self) -> str | None:
        """The entity kind of a lookup tool, else None."""
        return self.family.split(":")[1] if self.family.startswith("lookup:") else None

    def param(self, name: str) -> Param:
        """Return the parameter with this name."""
        return next(p for p in self.params if p.name == name)

    def schema(self) -> dict[str, Any]:
        """Return the OpenAI function-tool schema."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {p.name: p.schema() for p in self.params},
                    "required": [p.name for p in self.params if p.required],
                },
            },
        }

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict of the document."""
        return asdict(self)


def styled(words: list[str], style: str) -> str:
    """Join words in a naming style: ``snake`` (get_city_info) or ``camel`` (getCityInfo)."""
    parts = [p for w in words for p in w.split("_") if p]
    if style == "camel":
        return parts[0].lower() + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return "_".join(parts).lower()


def subject_param_words(kind: str, rng: random.Random) -> list[str]:
    """Pick the words of a lookup tool's subject parameter."""
    return rng.choice(([kind], [kind, "name"], ["name"], [kind]))


def _unique(name: str, taken: set[str]) -> str:
    """Make a name unique among ``taken`` by a numeric suffix, and record it."""
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name}{i}", i + 1
    taken.add(candidate)
    return candidate


def lookup_doc(op: str, rng: random.Random, taken: set[str], style: str | None = None) -> ToolDoc:
    """Write the narrow document of one relation (``get_city_population(city)``)."""
    rel = RELATIONS[op]
    style = style or rng.choice(("snake", "snake", "camel"))
    word, label = ATTRIBUTE_LABELS[rel.attribute][0], attribute_label(op)
    patterns = (
        [rng.choice(VERBS), rel.subject, word],
        [rng.choice(VERBS), word, "by", rel.subject],
        [rel.subject, word, "lookup"],
        [rng.choice(VERBS), rel.subject, word],
    )
    name = _unique(styled(rng.choice(patterns), style), taken)
    subject = styled(subject_param_words(rel.subject, rng), style)
    article = "an" if rel.subject in ("element", "event") else "a"
    description = rng.choice(
        (
            f"Return the {label} of {article} {rel.subject}.",
            f"Look up {article} {rel.subject}'s {label} by name.",
            f"Fetches the {label} for the given {rel.subject} from the {rel.domain} database.",
            f"Retrieve the recorded {label} of {article} {rel.subject}. Names are case-insensitive.",
        )
    )
    param = Param(
        subject,
        "string",
        rng.choice(
            (f"Name of the {rel.subject}.", f"The {rel.subject} to look up (case-insensitive).")
        ),
    )
    return ToolDoc(
        name,
        description,
        f"lookup:{rel.subject}",
        [op],
        [param],
        {"subject": subject},
        style=style,
        variant=rng.randrange(3),
    )


def broad_lookup_doc(
    kind: str, ops: list[str], rng: random.Random, taken: set[str], style: str | None = None
) -> ToolDoc:
    """Write a lookup document covering several relations of one entity kind, with a selector."""
    style = style or rng.choice(("snake", "snake", "camel"))
    patterns = (
        [rng.choice(VERBS), kind, "info"],
        [rng.choice(VERBS), kind, "details"],
        [kind, "facts"],
        ["query", kind, "registry"],
        [rng.choice(VERBS), kind, "record"],
        [kind, "database", "lookup"],
    )
    name = _unique(styled(rng.choice(patterns), style), taken)
    subject = styled(subject_param_words(kind, rng), style)
    selector = styled([rng.choice(("field", "attribute", "property", "info_type", "fact"))], style)
    selectors = {op: ATTRIBUTE_LABELS[RELATIONS[op].attribute][0] for op in ops}
    listing = ", ".join(f"'{v}' ({attribute_label(op)})" for op, v in selectors.items())
    description = rng.choice(
        (
            f"Look up facts about a {kind}. Available fields: {listing}.",
            f"Query the {kind} registry for one attribute of a {kind}: {listing}.",
        )
    )
    params = [
        Param(subject, "string", f"Name of the {kind} (case-insensitive)."),
        Param(selector, "string", "Which attribute to return.", enum=list(selectors.values())),
    ]
    return ToolDoc(
        name,
        description,
        f"lookup:{kind}",
        list(ops),
        params,
        {"subject": subject, "selector": selector},
        selectors,
        style,
        variant=rng.randrange(3),
    )


UNIT_WORDS: dict[str, tuple[str, ...]] = {
    "m": ("meters", "metres"),
    "ft": ("feet",),
    "km": ("km", "kilometers"),
    "mi": ("miles",),
    "cm": ("cm", "centimeters"),
    "in": ("inches",),
    "kg": ("kg", "kilograms"),
    "lb": ("pounds", "lbs"),
    "c": ("celsius",),
    "f": ("fahrenheit",),
}

_NARROW_COMPUTE: dict[
    str, tuple[tuple[tuple[str, ...], ...], tuple[str, ...], tuple[tuple[str, str, str], ...]]
] = {
    "math.add": (
        (("add", "numbers"), ("sum", "values"), ("add",)),
        ("Add two numbers and return the sum.", "Return a + b."),
        (("a", "number", "First addend."), ("b", "number", "Second addend.")),
    ),
    "math.subtract": (
        (("subtract", "numbers"), ("compute", "difference"), ("subtract",)),
        ("Subtract the second number from the first.", "Return a - b."),
        (("a", "number", "Number to subtract from."), ("b", "number", "Number to subtract.")),
    ),
    "math.multiply": (
        (("multiply", "numbers"), ("multiply",), ("product", "of")),
        ("Multiply two numbers.", "Return the product a * b."),
        (("a", "number", "First factor."), ("b", "number", "Second factor.")),
    ),
    "math.divide": (
        (("divide", "numbers"), ("compute", "ratio"), ("divide",)),
        (
            "Divide the first number by the second (two decimals).",
            "Return a / b rounded to 2 decimals.",
        ),
        (("a", "number", "Dividend."), ("b", "number", "Divisor (non-zero).")),
    ),
    "date.add_days": (
        (("add", "days", "to", "date"), ("date", "plus", "days"), ("shift", "date")),
        (
            "Return the ISO date a number of days after a given date.",
            "Add days to a calendar date (YYYY-MM-DD) and return the new date.",
        ),
        (
            ("date", "string", "Start date, YYYY-MM-DD."),
            ("days", "integer", "Days to add (may be negative)."),
        ),
    ),
    "date.weekday": (
        (("get", "weekday"), ("day", "of", "week"), ("weekday", "of", "date")),
        (
            "Return the English name of the weekday of a date.",
            "Tell which day of the week a date falls on.",
        ),
        (("date", "string", "Date, YYYY-MM-DD."),),
    ),
    "date.days_between": (
        (("days", "between"), ("count", "days", "between"), ("date", "diff", "days")),
        (
            "Count the days from a start date to an end date (negative if the end is earlier).",
            "Return the number of days between two ISO dates.",
        ),
        (
            ("start", "string", "Start date, YYYY-MM-DD."),
            ("end", "string", "End date, YYYY-MM-DD."),
        ),
    ),
    "text.reverse": (
        (("reverse", "string"), ("reverse", "text"), ("mirror", "text")),
        ("Return the text with its characters in reverse order.", "Reverse a string."),
        (("text", "string", "The text to reverse."),),
    ),
    "text.slug": (
        (("slugify",), ("make", "slug"), ("to", "url", "slug")),
        (
            "Turn a text into a lower-case URL slug (words joined by hyphens).",
            "Return the URL slug of a text.",
        ),
        (("text", "string", "The text to slugify."),),
    ),
    "text.upper": (
        (("to", "upper", "case"), ("uppercase", "text")),
        ("Return the text in upper case.",),
        (("text", "string", "The text to convert."),),
    ),
    "text.length": (
        (("count", "characters"), ("text", "length")),
        ("Return the number of characters of a text.",),
        (("text", "string", "The text to measure."),),
    ),
}
"""Narrow computation → (name patterns, descriptions, (role, type, description) per parameter)."""

_ROLE_NAMES: dict[tuple[str, ...], tuple[tuple[str, ...], ...]] = {
    ("a", "b"): (("a", "b"), ("x", "y"), ("first", "second"), ("left", "right"), ("num1", "num2")),
    ("start", "end"): (("start", "end"), ("start_date", "end_date"), ("from_date", "to_date")),
    ("date", "days"): (("date", "days"), ("start_date", "days"), ("date", "offset_days")),
    ("date",): (("date",), ("iso_date",), ("day",)),
    ("text",): (("text",), ("input_text",), ("string",), ("value",)),
}

_BROAD_NAMES: dict[str, tuple[tuple[str, ...], ...]] = {
    "convert": (
        ("convert", "units"),
        ("unit", "converter"),
        ("convert", "measurement"),
        ("convert", "quantity"),
    ),
    "math": (
        ("calculate",),
        ("calculator",),
        ("arithmetic",),
        ("basic", "math"),
        ("evaluate", "arithmetic"),
    ),
    "date": (("date", "calculator"), ("calendar", "tool"), ("date", "utility")),
    "text": (("transform", "text"), ("text", "utility"), ("string", "tools")),
}


def doc_op(node: SubProblem) -> str:
    """Return the document-level op of a node: conversions are keyed by their units."""
    if node.op == "convert":
        return f"convert:{node.inputs['from_unit']}:{node.inputs['to_unit']}"
    return node.op


def family_of(op: str) -> str:
    """Return the family of a document-level op (``lookup:city``, ``convert``, ``math``...)."""
    if op in RELATIONS:
        return f"lookup:{RELATIONS[op].subject}"
    return "convert" if op.startswith("convert:") else op.split(".")[0]


def converter_doc(
    op: str, rng: random.Random, taken: set[str], style: str | None = None
) -> ToolDoc:
    """Write a narrow unit converter (``meters_to_feet(meters)``)."""
    _, src, dst = op.split(":")
    style = style or rng.choice(("snake", "snake", "camel"))
    src_word, dst_word = rng.choice(UNIT_WORDS[src]), rng.choice(UNIT_WORDS[dst])
    words = rng.choice(([src_word, "to", dst_word], ["convert", src_word, "to", dst_word]))
    name = _unique(styled(words, style), taken)
    value = styled([rng.choice((src_word, "value", "amount"))], style)
    description = (
        f"Convert a quantity from {UNIT_NAMES[src]} to {UNIT_NAMES[dst]} (rounded to 2 decimals)."
    )
    params = [Param(value, "number", f"Quantity in {UNIT_NAMES[src]}.")]
    return ToolDoc(
        name,
        description,
        "convert",
        [op],
        params,
        {"value": value},
        style=style,
        options={"fixed": [src, dst]},
        variant=rng.randrange(3),
    )


def compute_doc(op: str, rng: random.Random, taken: set[str], style: str | None = None) -> ToolDoc:
    """Write the narrow document of one computation."""
    if op.startswith("convert:"):
        return converter_doc(op, rng, taken, style)
    style = style or rng.choice(("snake", "snake", "camel"))
    patterns, descriptions, spec = _NARROW_COMPUTE[op]
    name = _unique(styled(list(rng.choice(patterns)), style), taken)
    roles_key = tuple(role for role, _, _ in spec)
    names = rng.choice(_ROLE_NAMES[roles_key])
    params = [Param(styled([n], style), t, d) for n, (_, t, d) in zip(names, spec)]
    roles = {role: p.name for (role, _, _), p in zip(spec, params)}
    return ToolDoc(
        name,
        rng.choice(descriptions),
        family_of(op),
        [op],
        params,
        roles,
        style=style,
        variant=rng.randrange(3),
    )


def broad_compute_doc(
    family: str, ops: list[str], rng: random.Random, taken: set[str], style: str | None = None
) -> ToolDoc:
    """Write a computation document covering a whole family, with an operation selector."""
    style = style or rng.choice(("snake", "snake", "camel"))
    name = _unique(styled(list(rng.choice(_BROAD_NAMES[family])), style), taken)
    s = lambda *words: styled(list(words), style)
    if family == "convert":
        units = sorted({u for op in ops for u in op.split(":")[1:]})
        params = [
            Param(s("value"), "number", "The quantity to convert."),
            Param(s("from", "unit"), "string", "Unit of the quantity.", enum=units),
            Param(s("to", "unit"), "string", "Unit to convert into.", enum=units),
        ]
        roles = {"value": s("value"), "from_unit": s("from", "unit"), "to_unit": s("to", "unit")}
        return ToolDoc(
            name,
            "Convert a quantity between units of length, mass or temperature (2 decimals).",
            family,
            list(ops),
            params,
            roles,
            style=style,
            variant=rng.randrange(3),
        )
    selectors = {op: op.split(".")[1] for op in ops}
    operation = Param(
        s("operation"), "string", "The operation to apply.", enum=list(selectors.values())
    )
    params, roles = _broad_params(family, s)
    description = {
        "math": "Apply a basic arithmetic operation to two numbers.",
        "date": "Date arithmetic on ISO dates (YYYY-MM-DD): add days, weekday, days between.",
        "text": "Apply a text transformation (reverse, slug, upper case, length).",
    }[family]
    return ToolDoc(
        name,
        description,
        family,
        list(ops),
        [operation] + params,
        {"operation": operation.name} | roles,
        selectors,
        style,
        variant=rng.randrange(3),
    )


def _broad_params(family: str, s: Any) -> tuple[list[Param], dict[str, str]]:
    """Return the operand parameters of a broad computation tool and their roles."""
    if family == "math":
        return (
            [Param(s("a"), "number", "First operand."), Param(s("b"), "number", "Second operand.")],
            {"a": s("a"), "b": s("b")},
        )
    if family == "date":
        params = [
            Param(s("date"), "string", "Date, YYYY-MM-DD (the start date for days_between)."),
            Param(s("days"), "integer", "Days to add (add_days only).", required=False),
            Param(s("end", "date"), "string", "End date (days_between only).", required=False),
        ]
        return params, {
            "date": s("date"),
            "days": s("days"),
            "start": s("date"),
            "end": s("end", "date"),
        }
    return [Param(s("text"), "string", "The input text.")], {"text": s("text")}


def document(op: str, rng: random.Random, taken: set[str]) -> ToolDoc:
    """Write the narrow document of one document-level op."""
    return lookup_doc(op, rng, taken) if op in RELATIONS else compute_doc(op, rng, taken)


@dataclass
class Documents:
    """The output of stage 2: one document per sub-problem, in node order."""

    docs: list[ToolDoc]
    assignment: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {"docs": [d.to_dict() for d in self.docs], "assignment": dict(self.assignment)}


def generate_documents(scene: Scene, rng: random.Random) -> Documents:
    """Stage 2: write one tool document per sub-problem (duplicates are merged in stage 3).

    Args:
        scene: The stage-1 scene.
        rng: The candidate's private generator.

    Returns:
        The documents and the node → tool name assignment.
    """
    taken: set[str] = set()
    docs, assignment = [], {}
    for node in scene.nodes:
        doc = document(doc_op(node), rng, taken)
        docs.append(doc)
        assignment[node.id] = doc.name
    return Documents(docs, assignment)
