"""The offline backend's seeded synthetic world: fictional entities, their relations, and computations."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

ENTITY_KINDS: dict[str, tuple[str, int]] = {
    "country": ("geography", 24),
    "city": ("geography", 90),
    "river": ("geography", 30),
    "mountain": ("geography", 30),
    "person": ("people", 160),
    "company": ("organisations", 60),
    "university": ("organisations", 30),
    "product": ("products", 80),
    "element": ("science", 30),
    "species": ("science", 40),
    "event": ("calendars", 50),
}
"""Entity kind → (domain, how many the world holds)."""


@dataclass(frozen=True)
class Relation:
    """One fact a lookup tool can return: ``subject``'s ``attribute``.

    Attributes:
        key: ``"<subject>.<attribute>"``, e.g. ``"city.population"``.
        subject: Entity kind the fact is about.
        attribute: Field name in the entity's record.
        value_type: ``"entity"``, ``"int"``, ``"float"``, ``"date"`` or ``"text"``.
        target: Entity kind of the value when ``value_type`` is ``"entity"``.
        unit: Physical unit of a numeric value (``"m"``, ``"km"``, ``"cm"``, ``"kg"``, ``"c"``).
        domain: The knowledge domain, for diversity figures.
    """

    key: str
    subject: str
    attribute: str
    value_type: str
    target: str | None = None
    unit: str | None = None
    domain: str = ""


def _relations() -> dict[str, Relation]:
    """Build the relation table from a compact spec."""
    spec = [
        ("country", "capital", "entity", "city", None),
        ("country", "population", "int", None, None),
        ("country", "currency", "text", None, None),
        ("country", "area_km2", "int", None, None),
        ("country", "head_of_state", "entity", "person", None),
        ("city", "country", "entity", "country", None),
        ("city", "population", "int", None, None),
        ("city", "elevation", "int", None, "m"),
        ("city", "mayor", "entity", "person", None),
        ("city", "founding_date", "date", None, None),
        ("river", "length", "float", None, "km"),
        ("river", "source_country", "entity", "country", None),
        ("river", "mouth_city", "entity", "city", None),
        ("mountain", "height", "int", None, "m"),
        ("mountain", "country", "entity", "country", None),
        ("mountain", "first_climber", "entity", "person", None),
        ("person", "birthplace", "entity", "city", None),
        ("person", "birth_date", "date", None, None),
        ("person", "employer", "entity", "company", None),
        ("person", "height", "int", None, "cm"),
        ("person", "alma_mater", "entity", "university", None),
        ("company", "headquarters", "entity", "city", None),
        ("company", "ceo", "entity", "person", None),
        ("company", "founded_year", "int", None, None),
        ("company", "employees", "int", None, None),
        ("company", "revenue_musd", "float", None, None),
        ("university", "city", "entity", "city", None),
        ("university", "rector", "entity", "person", None),
        ("university", "students", "int", None, None),
        ("product", "maker", "entity", "company", None),
        ("product", "price_usd", "float", None, None),
        ("product", "weight", "float", None, "kg"),
        ("product", "release_date", "date", None, None),
        ("product", "designer", "entity", "person", None),
        ("element", "discoverer", "entity", "person", None),
        ("element", "atomic_mass", "float", None, None),
        ("element", "melting_point", "int", None, "c"),
        ("species", "discoverer", "entity", "person", None),
        ("species", "habitat", "entity", "country", None),
        ("species", "mass", "float", None, "kg"),
        ("species", "lifespan_years", "int", None, None),
        ("event", "date", "date", None, None),
        ("event", "venue", "entity", "city", None),
        ("event", "organiser", "entity", "company", None),
        ("event", "attendance", "int", None, None),
    ]
    table = {}
    for subject, attribute, value_type, target, unit in spec:
        key = f"{subject}.{attribute}"
        domain = ENTITY_KINDS[subject][0]
        table[key] = Relation(key, subject, attribute, value_type, target, unit, domain)
    return table


RELATIONS: dict[str, Relation] = _relations()
"""Every relation of the world, by key."""

CONVERSIONS: dict[tuple[str, str], float] = {
    ("m", "ft"): 3.28084,
    ("km", "mi"): 0.621371,
    ("cm", "in"): 0.393701,
    ("kg", "lb"): 2.20462,
}
"""Linear unit conversions (from, to) → factor. Celsius → Fahrenheit is affine and handled apart."""

UNIT_NAMES: dict[str, str] = {
    "m": "metres",
    "ft": "feet",
    "km": "kilometres",
    "mi": "miles",
    "cm": "centimetres",
    "in": "inches",
    "kg": "kilograms",
    "lb": "pounds",
    "c": "degrees Celsius",
    "f": "degrees Fahrenheit",
}
"""Unit symbol → spoken name."""

WEEKDAYS: tuple[str, ...] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)


@dataclass
class Entity:
    """A fictional entity: a unique name, a numeric id, and its attributes (entity values by id)."""

    id: int
    kind: str
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)


_ONSETS = (
    "b",
    "br",
    "c",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "kr",
    "l",
    "m",
    "n",
    "p",
    "pr",
    "qu",
    "r",
    "s",
    "st",
    "t",
    "th",
    "tr",
    "v",
    "vr",
    "z",
    "zh",
    "sk",
    "j",
    "y",
)
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ai", "ia", "ou", "ei", "y", "eo")
_CODAS = ("", "", "n", "r", "l", "s", "th", "x", "m", "nd", "rk", "sh", "v")
_SUFFIXES = {
    "country": ("ia", "land", "ora", "istan", "ar", "enne", ""),
    "city": ("port", "ford", "holm", "grad", "wick", "ville", "mouth", "", "", ""),
    "company": (" Labs", " Dynamics", " Systems", " Holdings", " Works", " Industries", " Group"),
    "product": (" X{n}", " Pro", " {n}", " Mini", " Go", " Max"),
    "event": (" Festival", " Summit", " Expo", " Games", " Fair", " Congress"),
}


class _Namer:
    """Makes unique pronounceable fictional words from a seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def word(self, low: int = 2, high: int = 3) -> str:
        """Return a fresh capitalised word of ``low``..``high`` syllables."""
        while True:
            syllables = self.rng.randint(low, high)
            parts = [self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) for _ in range(syllables)]
            word = ("".join(parts) + self.rng.choice(_CODAS)).capitalize()
            if word.lower() not in self.used and len(word) >= 4:
                self.used.add(word.lower())
                return word

    def name(self, kind: str) -> str:
        """Return a fresh name fitting an entity kind."""
        rng = self.rng
        if kind == "person":
            return f"{self.word(2, 2)} {self.word(2, 3)}"
        if kind == "river":
            return f"{self.word()} River"
        if kind == "mountain":
            return rng.choice(("Mount {}", "{} Peak", "{} Spire"))
        if kind == "university":
            return rng.choice(("University of {}", "{} Institute of Technology", "{} College"))
        if kind == "element":
            return self.word(2, 2) + rng.choice(("ium", "on", "ine", "ite"))
        if kind == "species":
            return (
                f"{self.word(2, 2).lower()}-{rng.choice(('tailed', 'horned', 'crested', 'spotted'))} "
                + rng.choice(
                    ("marten", "heron", "newt", "beetle", "lynx", "finch", "otter", "moth")
                )
            )
        suffix = rng.choice(_SUFFIXES[kind]).replace("{n}", str(rng.randint(2, 99)))
        return (self.word(2, 2) if suffix.strip() else self.word()) + suffix


def _format_name(namer: _Namer, kind: str) -> str:
    """Fill a name pattern that needs a word (mountains, universities)."""
    name = namer.name(kind)
    return name.format(namer.word()) if "{}" in name else name


@dataclass
class World:
    """A seeded fictional world: entities of every kind, indexed by id and by kind."""

    seed: str
    entities: dict[int, Entity]
    by_kind: dict[str, list[int]]
    by_name: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_name = {e.name: i for i, e in self.entities.items()}

    def get(self, entity_id: int) -> Entity:
        """Return the entity with this id."""
        return self.entities[entity_id]

    def find(self, name: str) -> Entity:
        """Return the entity with this exact name."""
        return self.entities[self.by_name[name]]

    def value(self, entity: Entity, relation: Relation) -> Any:
        """Return ``entity``'s value for ``relation``: an ``Entity`` for entity-valued relations."""
        raw = entity.attrs[relation.attribute]
        return self.entities[raw] if relation.value_type == "entity" else raw


def _literal(rng: random.Random, kind: str, attribute: str, namer: _Namer) -> Any:
    """Draw a literal attribute value; ranges keep numbers plausible and hard to guess."""
    ranges = {
        "population": (20_000, 9_000_000),
        "area_km2": (900, 990_000),
        "elevation": (3, 3400),
        "length": (40.0, 4200.0),
        "height": (1200, 8600),
        "employees": (40, 250_000),
        "founded_year": (1801, 2019),
        "students": (900, 65_000),
        "lifespan_years": (2, 140),
        "attendance": (300, 95_000),
        "melting_point": (-180, 3300),
        "atomic_mass": (10.0, 290.0),
        "price_usd": (4.0, 4800.0),
        "revenue_musd": (1.5, 90_000.0),
        "mass": (0.02, 900.0),
    }
    if attribute == "weight":
        return round(rng.uniform(0.1, 60.0), 2)
    if kind == "person" and attribute == "height":
        return rng.randint(148, 212)
    if attribute == "currency":
        return f"{namer.word(2, 2)} {rng.choice(('crown', 'mark', 'florin', 'dinar', 'thaler'))}"
    if attribute.endswith("date"):
        first, last = {"person": (1930, 2005), "city": (1050, 1890)}.get(kind, (1955, 2035))
        year = rng.randint(first, last)
        return f"{year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    low, high = ranges[attribute]
    if isinstance(low, float):
        return round(rng.uniform(low, high), 2)
    return rng.randint(low, high)


def build_world(seed: str) -> World:
    """Build the world for a seed: the same seed always gives the same world.

    Args:
        seed: Any string; it seeds a private ``random.Random``.

    Returns:
        The world, with every relation of every entity filled in.
    """
    rng = random.Random(f"world:{seed}")
    namer = _Namer(rng)
    entities: dict[int, Entity] = {}
    by_kind: dict[str, list[int]] = {}
    next_id = 100
    for kind, (_, count) in ENTITY_KINDS.items():
        by_kind[kind] = []
        for _ in range(count):
            next_id += rng.randint(1, 37)
            entities[next_id] = Entity(next_id, kind, _format_name(namer, kind))
            by_kind[kind].append(next_id)
    for relation in RELATIONS.values():
        for entity_id in by_kind[relation.subject]:
            entity = entities[entity_id]
            if relation.value_type == "entity":
                choices = [i for i in by_kind[relation.target or ""] if i != entity_id]
                entity.attrs[relation.attribute] = rng.choice(choices)
            else:
                entity.attrs[relation.attribute] = _literal(
                    rng, entity.kind, relation.attribute, namer
                )
    _make_capitals_consistent(entities, by_kind, rng)
    return World(seed, entities, by_kind)


def _make_capitals_consistent(
    entities: dict[int, Entity], by_kind: dict[str, list[int]], rng: random.Random
) -> None:
    """Pick each country's capital among the cities that lie in it, where it has any."""
    for country_id in by_kind["country"]:
        cities = [i for i in by_kind["city"] if entities[i].attrs["country"] == country_id]
        if cities:
            entities[country_id].attrs["capital"] = rng.choice(cities)


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert a quantity exactly as the generated conversion tools do (rounded to 2 decimals)."""
    if (from_unit, to_unit) == ("c", "f"):
        return round(float(value) * 9 / 5 + 32, 2)
    return round(float(value) * CONVERSIONS[(from_unit, to_unit)], 2)


def target_unit(unit: str) -> str | None:
    """Return the unit a quantity in ``unit`` converts to, or None when it does not convert."""
    if unit == "c":
        return "f"
    return next((to for (src, to) in CONVERSIONS if src == unit), None)


def arithmetic(operation: str, a: float, b: float) -> float:
    """Apply an arithmetic operation exactly as the generated calculator tools do."""
    if operation == "add":
        result = a + b
    elif operation == "subtract":
        result = a - b
    elif operation == "multiply":
        result = a * b
    else:
        result = a / b
    return result if isinstance(result, int) else round(result, 2)


def add_days(iso_date: str, days: int) -> str:
    """Return the ISO date ``days`` after ``iso_date``."""
    from datetime import date, timedelta

    return (date.fromisoformat(iso_date) + timedelta(days=days)).isoformat()


def weekday(iso_date: str) -> str:
    """Return the English weekday name of an ISO date."""
    from datetime import date

    return WEEKDAYS[date.fromisoformat(iso_date).weekday()]


def days_between(start: str, end: str) -> int:
    """Return the number of days from ``start`` to ``end`` (negative when ``end`` is earlier)."""
    from datetime import date

    return (date.fromisoformat(end) - date.fromisoformat(start)).days


def slugify(text: str) -> str:
    """Return the lower-case, hyphen-separated slug of a text, as the text tools do."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def format_value(value: Any) -> str:
    """Return the answer string of a value, as the tools print it (``str``; names for entities)."""
    return value.name if isinstance(value, Entity) else str(value)
