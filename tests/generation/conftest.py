"""Shared fixtures of the generation tests: a sandbox, a world, hand-built scenes and scripted LLM servers."""

from __future__ import annotations

import pytest
from scripted_llm import ScriptedServer

from ftrl_gym.generation.scenes import Scene, SubProblem
from ftrl_gym.generation.world import RELATIONS, World, build_world
from ftrl_gym.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as box:
        yield box


@pytest.fixture(scope="module")
def world() -> World:
    return build_world("tests")


def lookup_node(
    world: World,
    index: int,
    op: str,
    entity_index: int = 0,
    deps: list[str] | None = None,
    subject: str | None = None,
) -> SubProblem:
    """A lookup node on the ``entity_index``-th entity of the relation's kind (or on ``subject``)."""
    relation = RELATIONS[op]
    entity = (
        world.find(subject) if subject else world.get(world.by_kind[relation.subject][entity_index])
    )
    value = world.value(entity, relation)
    answer = value.name if relation.value_type == "entity" else value
    kind = f"entity:{relation.target}" if relation.value_type == "entity" else relation.value_type
    return SubProblem(
        f"n{index}",
        op,
        relation.domain,
        {"subject": entity.name},
        deps or [],
        answer,
        kind,
        relation.unit,
        f"the {relation.attribute} of {entity.name}",
        f"{op}/0",
    )


def parallel_scene(world: World, ops: list[tuple[str, int]]) -> Scene:
    """A parallel single-hop scene of the given (relation, entity index) lookups."""
    nodes = [lookup_node(world, i, op, e) for i, (op, e) in enumerate(ops)]
    return Scene(
        "parallel_single_hop",
        nodes,
        "What are " + " and ".join(n.phrase for n in nodes) + "?",
        ", ".join(n.answer for n in nodes),
        "multi/0",
        sorted({n.domain for n in nodes}),
    )


@pytest.fixture
def make_scene(world):
    """Build a parallel single-hop scene from (relation, entity index) pairs."""
    return lambda ops: parallel_scene(world, ops)


@pytest.fixture
def serve():
    """Start scripted chat-completions servers on loopback: ``serve(script, **options)``."""
    servers = []

    def start(script, **options):
        servers.append(ScriptedServer(script, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
