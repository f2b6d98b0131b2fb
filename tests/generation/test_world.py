"""The synthetic world: determinism, consistency, and the computations tools mirror."""

from __future__ import annotations

from ftrl_gym.generation import world as wd
from ftrl_gym.generation.world import ENTITY_KINDS, RELATIONS, build_world


def test_same_seed_same_world_and_other_seed_other_world():
    a, b, c = build_world("s"), build_world("s"), build_world("t")
    assert [(e.name, e.attrs) for e in a.entities.values()] == [
        (e.name, e.attrs) for e in b.entities.values()
    ]
    assert [e.name for e in a.entities.values()] != [e.name for e in c.entities.values()]


def test_names_are_unique_and_every_relation_is_filled(world):
    names = [e.name.lower() for e in world.entities.values()]
    assert len(names) == len(set(names))
    assert {k: len(v) for k, v in world.by_kind.items()} == {
        k: n for k, (_, n) in ENTITY_KINDS.items()
    }
    for relation in RELATIONS.values():
        for entity_id in world.by_kind[relation.subject]:
            value = world.value(world.get(entity_id), relation)
            if relation.value_type == "entity":
                assert value.kind == relation.target and value.id != entity_id


def test_a_capital_lies_in_its_country_when_the_country_has_cities(world):
    for country_id in world.by_kind["country"]:
        country = world.get(country_id)
        cities = [i for i in world.by_kind["city"] if world.get(i).attrs["country"] == country_id]
        if cities:
            assert country.attrs["capital"] in cities


def test_six_entity_domains_are_covered():
    assert {domain for domain, _ in ENTITY_KINDS.values()} == {
        "geography",
        "people",
        "organisations",
        "products",
        "science",
        "calendars",
    }
    assert {r.domain for r in RELATIONS.values()} >= {"geography", "science", "calendars"}


def test_computations_match_hand_values():
    assert wd.convert(100, "m", "ft") == 328.08
    assert wd.convert(10, "km", "mi") == 6.21
    assert wd.convert(100, "c", "f") == 212.0
    assert wd.target_unit("kg") == "lb" and wd.target_unit("km2") is None
    assert wd.arithmetic("add", 2, 3) == 5 and isinstance(wd.arithmetic("add", 2, 3), int)
    assert wd.arithmetic("divide", 10, 4) == 2.5
    assert wd.arithmetic("subtract", 1.5, 0.25) == 1.25
    assert wd.add_days("2020-02-27", 3) == "2020-03-01"
    assert wd.weekday("2024-01-01") == "Monday"
    assert wd.days_between("2024-01-01", "2023-12-25") == -7
    assert wd.slugify("University of Quorvane") == "university-of-quorvane"
