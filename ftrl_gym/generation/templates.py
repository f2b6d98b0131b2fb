"""Question templates: noun phrases per relation and computation, and frames per scenario."""

from __future__ import annotations

import random
from collections.abc import Sequence

RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "country.capital": ("the capital of {x}", "the capital city of {x}", "{x}'s capital"),
    "country.population": (
        "the population of {x}",
        "the number of people living in {x}",
        "{x}'s population",
    ),
    "country.currency": (
        "the currency used in {x}",
        "the official currency of {x}",
        "{x}'s currency",
    ),
    "country.area_km2": (
        "the area of {x} in square kilometres",
        "the land area (km²) of {x}",
        "the size of {x} in km²",
    ),
    "country.head_of_state": (
        "the head of state of {x}",
        "the person serving as head of state of {x}",
        "{x}'s head of state",
    ),
    "city.country": (
        "the country in which {x} lies",
        "the country that {x} belongs to",
        "the nation where {x} is located",
    ),
    "city.population": (
        "the population of {x}",
        "the number of inhabitants of {x}",
        "{x}'s population",
    ),
    "city.elevation": (
        "the elevation of {x} in metres",
        "the altitude of {x} (metres above sea level)",
        "{x}'s elevation in metres",
    ),
    "city.mayor": ("the mayor of {x}", "the current mayor of {x}", "{x}'s mayor"),
    "city.founding_date": (
        "the founding date of {x}",
        "the date on which {x} was founded",
        "{x}'s founding date",
    ),
    "river.length": ("the length of {x} in kilometres", "the total length (km) of {x}"),
    "river.source_country": (
        "the country where {x} rises",
        "the country in which {x} has its source",
    ),
    "river.mouth_city": ("the city at the mouth of {x}", "the city where {x} reaches the sea"),
    "mountain.height": (
        "the height of {x} in metres",
        "the summit elevation (metres) of {x}",
        "{x}'s height in metres",
    ),
    "mountain.country": ("the country where {x} stands", "the country in which {x} is located"),
    "mountain.first_climber": (
        "the first person to climb {x}",
        "the person who first reached the top of {x}",
    ),
    "person.birthplace": (
        "the city where {x} was born",
        "the birthplace of {x}",
        "{x}'s birthplace",
    ),
    "person.birth_date": (
        "the date of birth of {x}",
        "the birth date of {x}",
        "{x}'s date of birth",
    ),
    "person.employer": ("the company that employs {x}", "the employer of {x}", "{x}'s employer"),
    "person.height": (
        "the height of {x} in centimetres",
        "{x}'s height in cm",
        "how tall {x} is in centimetres",
    ),
    "person.alma_mater": (
        "the university {x} graduated from",
        "the alma mater of {x}",
        "{x}'s alma mater",
    ),
    "company.headquarters": (
        "the city where {x} is headquartered",
        "the headquarters city of {x}",
        "{x}'s home city",
    ),
    "company.ceo": (
        "the CEO of {x}",
        "the chief executive of {x}",
        "{x}'s chief executive officer",
    ),
    "company.founded_year": (
        "the year {x} was founded",
        "the founding year of {x}",
        "{x}'s year of founding",
    ),
    "company.employees": (
        "the number of employees of {x}",
        "the headcount of {x}",
        "{x}'s workforce size",
    ),
    "company.revenue_musd": (
        "the annual revenue of {x} in millions of US dollars",
        "{x}'s revenue (million USD)",
    ),
    "university.city": (
        "the city where {x} is located",
        "the home city of {x}",
        "{x}'s campus city",
    ),
    "university.rector": ("the rector of {x}", "the head of {x}", "{x}'s rector"),
    "university.students": (
        "the number of students enrolled at {x}",
        "the student population of {x}",
    ),
    "product.maker": ("the company that makes {x}", "the manufacturer of {x}", "the maker of {x}"),
    "product.price_usd": (
        "the price of {x} in US dollars",
        "the list price (USD) of {x}",
        "{x}'s retail price in dollars",
    ),
    "product.weight": (
        "the weight of {x} in kilograms",
        "the mass of {x} in kg",
        "{x}'s weight in kg",
    ),
    "product.release_date": (
        "the release date of {x}",
        "the date {x} went on sale",
        "{x}'s launch date",
    ),
    "product.designer": (
        "the designer of {x}",
        "the person who designed {x}",
        "{x}'s lead designer",
    ),
    "element.discoverer": (
        "the discoverer of {x}",
        "the scientist who discovered {x}",
        "the person credited with discovering {x}",
    ),
    "element.atomic_mass": ("the atomic mass of {x}", "the standard atomic weight of {x}"),
    "element.melting_point": (
        "the melting point of {x} in degrees Celsius",
        "the temperature (°C) at which {x} melts",
    ),
    "species.discoverer": (
        "the naturalist who first described the {x}",
        "the discoverer of the {x}",
    ),
    "species.habitat": (
        "the country where the {x} lives in the wild",
        "the native country of the {x}",
    ),
    "species.mass": (
        "the average mass of the {x} in kilograms",
        "the typical weight (kg) of the {x}",
    ),
    "species.lifespan_years": (
        "the lifespan of the {x} in years",
        "the typical life expectancy (years) of the {x}",
    ),
    "event.date": ("the date of {x}", "the date on which {x} takes place", "the day {x} is held"),
    "event.venue": ("the city hosting {x}", "the venue city of {x}", "the city where {x} is held"),
    "event.organiser": (
        "the organiser of {x}",
        "the company that organises {x}",
        "{x}'s organiser",
    ),
    "event.attendance": (
        "the attendance at {x}",
        "the number of visitors to {x}",
        "{x}'s attendance figure",
    ),
}
"""Relation key → noun phrases; ``{x}`` is the subject's name or a nested phrase."""

COMPUTE_PHRASES: dict[str, tuple[str, ...]] = {
    "convert": (
        "{x}, converted to {unit}",
        "{x} expressed in {unit}",
        "{x} when converted into {unit}",
    ),
    "math.add": ("{x} plus {n}", "the sum of {x} and {n}", "{x} increased by {n}"),
    "math.subtract": (
        "{x} minus {n}",
        "{x} reduced by {n}",
        "what remains of {x} after subtracting {n}",
    ),
    "math.multiply": ("{x} multiplied by {n}", "{n} times {x}", "the product of {x} and {n}"),
    "math.divide": (
        "{x} divided by {n} (to two decimals)",
        "one {n}th of {x}, rounded to two decimals",
    ),
    "date.add_days": (
        "the date {n} days after {x}",
        "the day that falls {n} days after {x}",
        "the calendar date {n} days later than {x}",
    ),
    "date.weekday": (
        "the day of the week of {x}",
        "the weekday on which {x} falls",
        "the weekday name for {x}",
    ),
    "text.reverse": (
        "the name of {x} spelled backwards",
        "the reversed spelling of the name of {x}",
    ),
    "text.slug": ("the URL slug of the name of {x}", "the slugified name of {x}"),
}
"""Unary computation → noun phrases; ``{n}`` is a constant from the question."""

JOIN_PHRASES: dict[str, tuple[str, ...]] = {
    "math.add": ("the sum of {x} and {y}", "{x} plus {y}", "the total of {x} and {y}"),
    "math.subtract": (
        "{x} minus {y}",
        "the result of subtracting {y} from {x}",
        "the difference obtained by taking {y} away from {x}",
    ),
    "math.divide": (
        "the ratio of {x} to {y} (to two decimals)",
        "{x} divided by {y}, rounded to two decimals",
    ),
    "date.days_between": (
        "the number of days from {x} to {y}",
        "how many days separate {x} from {y}",
        "the day count between {x} and {y}",
    ),
}
"""Binary computation joining two branches → noun phrases."""

SINGLE_FRAMES: tuple[str, ...] = (
    "What is {np}?",
    "Can you tell me {np}?",
    "I need to know {np}.",
    "Please find {np}.",
    "Look up {np} for me.",
    "Could you work out {np}?",
    "Do you know {np}?",
    "Quick question: what is {np}?",
    "Using the available tools, determine {np}.",
    "I'm writing a report and need {np}. What is it?",
    "Find out {np}, please.",
    "Help me figure out {np}.",
)
"""Frames around one noun phrase (single-hop, multi-hop, joins)."""

PERSON_FRAMES: tuple[str, ...] = (
    "Who is {np}?",
    "Can you tell me who {np} is?",
    "I need to know who {np} is.",
    "Do you know who {np} is?",
    "Quick question: who is {np}?",
)
"""Frames for a single noun phrase whose answer is a person."""

_WHAT = (
    "What is",
    "Can you tell me",
    "Do you know",
    "Quick question",
    "I'm writing",
    "I need to know",
)
"""Frame openings that read oddly before a person ("What is the CEO of ...")."""

MULTI_FRAMES: tuple[str, ...] = (
    "What are {joined}?",
    "Can you find {joined}?",
    "I have {count} questions. {numbered}",
    "Please look up the following:\n{bulleted}",
    "Tell me {first}. Also, I'd like to know {rest}.",
    "For my notes I need {joined}.",
    "Answer these {count} questions: {numbered}",
    "I need a few facts: {joined}. Can you get them?",
)
"""Frames around several independent noun phrases (parallel scenarios)."""

_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five"}


def phrase_choices(templates: Sequence[str], nested: bool, trailing: bool = False) -> list[int]:
    """Return the indices of usable templates.

    Possessives only fit a bare name; after a phrase that ends in a clause ("the city where X was
    born") templates that end with ``{x}`` are preferred, so clauses do not pile up ("the university
    the mayor of ... graduated from graduated from").

    Args:
        templates: Candidate noun-phrase templates.
        nested: Whether ``{x}`` will be another phrase rather than a name.
        trailing: Whether that phrase ends in a clause.
    """
    usable = [i for i, t in enumerate(templates) if not (nested and t.startswith("{x}'s"))]
    closed = [i for i in usable if templates[i].endswith("{x}")]
    return closed if trailing and closed else usable


def capitalise(text: str) -> str:
    """Upper-case the first character only."""
    return text[:1].upper() + text[1:]


def _join_list(items: Sequence[str]) -> str:
    """Join phrases as ``a, b and c`` (semicolons when a phrase holds a comma)."""
    separator = "; " if any("," in item for item in items) else ", "
    return items[0] if len(items) == 1 else separator.join(items[:-1]) + " and " + items[-1]


def render_single(np: str, rng: random.Random, person: bool = False) -> tuple[str, str]:
    """Wrap one noun phrase in a question frame.

    Args:
        np: The noun phrase.
        rng: The candidate's generator.
        person: The answer is a person: "Who is ...?" frames join the neutral ones.

    Returns:
        The question and the frame's id.
    """
    frames = [(f"single/{i}", f) for i, f in enumerate(SINGLE_FRAMES) if not f.startswith(_WHAT)]
    if person:
        frames += [(f"who/{i}", f) for i, f in enumerate(PERSON_FRAMES)]
    else:
        frames += [(f"single/{i}", f) for i, f in enumerate(SINGLE_FRAMES) if f.startswith(_WHAT)]
    frame_id, frame = frames[rng.randrange(len(frames))]
    return capitalise(frame.format(np=np)), frame_id


def render_multi(nps: Sequence[str], rng: random.Random) -> tuple[str, str]:
    """Wrap several independent noun phrases in a question frame.

    Returns:
        The question and the frame's id.
    """
    index = rng.randrange(len(MULTI_FRAMES))
    fields = {
        "joined": _join_list(nps),
        "count": _COUNT_WORDS[len(nps)],
        "numbered": " ".join(f"{i}. What is {np}?" for i, np in enumerate(nps, start=1)),
        "bulleted": "\n".join(f"- {np}" for np in nps),
        "first": nps[0],
        "rest": _join_list(nps[1:]),
    }
    return capitalise(MULTI_FRAMES[index].format(**fields)), f"multi/{index}"
