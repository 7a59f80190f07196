"""An update or a patch that changes nothing is not written, as the API server skips it.

etcd3's ``GuaranteedUpdate`` compares the object to store with the stored one
and, when they are the same, writes nothing: the answer is the stored object,
its ``resourceVersion`` stays, no watch event goes out, and a writer still
holding that version is not turned away with a 409 for a change that never
happened. The ``resourceVersion`` precondition is checked first all the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_kruise_agents.api.copying import deep_copy
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim, SandboxClaimSpec
from simulator.apiserver import ApiError, Op
from simulator.context import SimContext
from simulator.profile import get_profile
from simulator.world import World


def world_() -> World:
    return World(SimContext(seed=1, profile=get_profile("openkruise-head")))


def claim(world: World) -> SandboxClaim:
    stored: SandboxClaim = world.api.commit_create(
        SandboxClaim(
            metadata=ObjectMeta(name="job", namespace="default", labels={"team": "a"}),
            spec=SandboxClaimSpec(template_name="base"),
        )
    )
    return stored


def events(world: World) -> list[tuple[str, str]]:
    """The SandboxClaim watch events the controllers' cache applies: (type, resourceVersion)."""
    seen: list[tuple[str, str]] = []

    def handler(event_type: str, _old: Any, new: Any) -> None:
        seen.append((event_type, new.metadata.resource_version))

    world.controller_cache.add_handler("SandboxClaim", handler)
    return seen


def run(world: World, op: Callable[[], Op]) -> Any:
    env = world.ctx.env
    proc = env.process(op())
    return env.run(until=proc)


def keep(_obj: Any) -> None:
    """A patch's mutation that changes nothing."""


def test_an_update_of_exactly_what_is_stored_writes_nothing() -> None:
    world = world_()
    api, client = world.api, world.controller_client
    seen = events(world)
    stored = claim(world)
    writes = api.writes
    answer = run(world, lambda: api.update(client, deep_copy(stored)))
    assert answer is stored
    assert api.peek("SandboxClaim", "default", "job") is stored
    assert api.writes == writes
    # The same version is still current: a second writer holding it is not refused.
    again = run(world, lambda: api.update(client, deep_copy(stored)))
    assert again.metadata.resource_version == stored.metadata.resource_version
    world.ctx.env.run(until=world.ctx.env.now + 1)
    assert seen == [("ADDED", stored.metadata.resource_version)]


def test_a_patch_or_a_status_write_that_changes_nothing_writes_nothing() -> None:
    world = world_()
    api, client = world.api, world.controller_client
    stored = claim(world)
    writes = api.writes
    patched = run(world, lambda: api.patch(client, "SandboxClaim", "default", "job", keep))
    assert patched is stored
    status = run(world, lambda: api.update_status(client, deep_copy(stored)))
    assert status is stored
    assert api.writes == writes


def test_a_write_that_changes_anything_is_written() -> None:
    """A label, a finalizer, the spec or the status: each is a change."""
    world = world_()
    api = world.api
    stored: Any = claim(world)

    def relabel(obj: Any) -> None:
        obj.metadata.labels = {"team": "b"}

    def finalize(obj: Any) -> None:
        obj.metadata.finalizers = ["example.com/hold"]

    def respec(obj: Any) -> None:
        obj.spec.replicas = 2

    for change in (relabel, finalize, respec):
        new = deep_copy(stored)
        change(new)
        written = api.commit_update(new)
        assert int(written.metadata.resource_version) > int(stored.metadata.resource_version)
        stored = written
    new = deep_copy(stored)
    new.status.message = "claimed"
    written = api.commit_update(new, subresource="status")
    assert written.metadata.resource_version != stored.metadata.resource_version


def test_a_no_op_update_on_a_stale_version_is_still_a_conflict() -> None:
    world = world_()
    api = world.api
    old = claim(world)
    changed = deep_copy(old)
    changed.metadata.labels = {"team": "b"}
    current = api.commit_update(changed)
    stale = deep_copy(current)
    stale.metadata.resource_version = old.metadata.resource_version
    with pytest.raises(ApiError) as caught:
        api.commit_update(stale)
    assert caught.value.is_conflict
