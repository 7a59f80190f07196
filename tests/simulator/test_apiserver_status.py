"""The status subresource, deletion marks, and the faults the API server answers with.

A main-resource write (an update, a patch) keeps the stored status: only a
status write changes it. The first deletion mark of an object with
finalizers bumps its ``generation`` (``markAsDeleting``); deleting it again
changes nothing. ``api_conflict`` faults answer the writes that carry a
resourceVersion, status writes too; an ``api_error`` of 429 says
``TooManyRequests``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_kruise_agents.api.copying import deep_copy
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.sandboxclaim import (
    ClaimPhase,
    SandboxClaim,
    SandboxClaimSpec,
)
from simulator.apiserver import ApiError, Op
from simulator.context import SimContext
from simulator.profile import get_profile
from simulator.world import World


def world_() -> World:
    return World(SimContext(seed=1, profile=get_profile("openkruise-head")))


def claim(world: World, finalizers: list[str] | None = None) -> SandboxClaim:
    stored: SandboxClaim = world.api.commit_create(
        SandboxClaim(
            metadata=ObjectMeta(name="job", namespace="default", finalizers=finalizers or []),
            spec=SandboxClaimSpec(template_name="base"),
        )
    )
    return stored


def run(world: World, op: Callable[[], Op]) -> Any:
    env = world.ctx.env
    return env.run(until=env.process(op()))


def test_an_update_keeps_the_stored_status_and_a_status_write_the_stored_spec() -> None:
    world = world_()
    api, client = world.api, world.controller_client
    stored = claim(world)
    written = deep_copy(stored)
    written.status.phase = ClaimPhase.CLAIMING
    written = run(world, lambda: api.update_status(client, written))
    assert written.status.phase == ClaimPhase.CLAIMING

    # A full update from a copy read before the status write: its stale status is not written.
    stale = deep_copy(stored)
    stale.metadata.resource_version = written.metadata.resource_version
    stale.metadata.labels = {"team": "a"}
    updated = run(world, lambda: api.update(client, stale))
    assert updated.metadata.labels == {"team": "a"}
    assert updated.status.phase == ClaimPhase.CLAIMING

    # A status write keeps the stored metadata and spec, whatever its copy says.
    other = deep_copy(updated)
    other.metadata.labels = {}
    other.spec.replicas = 7
    other.status.phase = ClaimPhase.COMPLETED
    final = run(world, lambda: api.update_status(client, other))
    assert final.status.phase == ClaimPhase.COMPLETED
    assert final.metadata.labels == {"team": "a"} and final.spec.replicas == 1


def test_the_first_deletion_mark_bumps_generation_and_a_second_delete_writes_nothing() -> None:
    world = world_()
    api = world.api
    stored = claim(world, finalizers=["example.com/hold"])
    marked = api.commit_delete("SandboxClaim", "default", "job")
    assert marked is not None and marked.metadata.deletion_timestamp is not None
    assert marked.metadata.generation == (stored.metadata.generation or 0) + 1
    writes = api.writes
    again = api.commit_delete("SandboxClaim", "default", "job")
    assert again is marked
    assert api.writes == writes
    assert api.peek("SandboxClaim", "default", "job") is marked


@pytest.mark.parametrize("verb", ["update", "update_status", "patch"])
def test_an_api_conflict_fault_answers_every_versioned_write(verb: str) -> None:
    world = world_()
    api, client = world.api, world.controller_client
    stored = claim(world)
    fault = world.ctx.faults.inject(kind="api_conflict", selector={"verb": verb}, count=1)
    copy = deep_copy(stored)
    copy.metadata.labels = {"team": "a"}
    ops: dict[str, Callable[[], Op]] = {
        "update": lambda: api.update(client, copy),
        "update_status": lambda: api.update_status(client, copy),
        "patch": lambda: api.patch(client, "SandboxClaim", "default", "job", lambda _o: None),
    }
    with pytest.raises(ApiError) as err:
        run(world, ops[verb])
    assert (err.value.code, err.value.reason) == (409, "Conflict") and err.value.is_conflict
    assert fault.fired == 1
    assert api.peek("SandboxClaim", "default", "job") is stored


@pytest.mark.parametrize(("code", "reason"), [(429, "TooManyRequests"), (503, "InternalError")])
def test_an_api_error_fault_answers_its_code_and_reason(code: int, reason: str) -> None:
    world = world_()
    api, client = world.api, world.controller_client
    claim(world)
    world.ctx.faults.inject(kind="api_error", code=code, selector={"verb": "get"}, count=1)
    with pytest.raises(ApiError) as err:
        run(world, lambda: api.get(client, "SandboxClaim", "default", "job"))
    assert (err.value.code, err.value.reason) == (code, reason)
    assert run(world, lambda: api.get(client, "SandboxClaim", "default", "job")) is not None
