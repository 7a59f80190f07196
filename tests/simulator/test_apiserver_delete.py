"""The API server's ``DELETE`` preconditions (``DeleteOptions.preconditions``).

A delete that names the object's UID deletes only that object: one deleted
and made anew under its name since the caller read it answers 409 Conflict
with the message of ``storage.Preconditions.Check`` and stays as it is.
"""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import ObjectMeta, OwnerReference
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim, SandboxClaimSpec
from simulator.apiserver import UIDConflictError
from simulator.context import SimContext
from simulator.profile import get_profile
from simulator.world import World


def world_() -> World:
    return World(SimContext(seed=1, profile=get_profile("openkruise-head")))


def claim(world: World, name: str = "job") -> SandboxClaim:
    stored: SandboxClaim = world.api.commit_create(
        SandboxClaim(
            metadata=ObjectMeta(name=name, namespace="default"),
            spec=SandboxClaimSpec(template_name="base"),
        )
    )
    return stored


def test_a_delete_naming_another_uid_answers_409_and_deletes_nothing() -> None:
    world = world_()
    old = claim(world)
    world.api.commit_delete("SandboxClaim", "default", "job")
    new = claim(world)
    writes = world.api.writes
    with pytest.raises(UIDConflictError) as err:
        world.api.commit_delete("SandboxClaim", "default", "job", uid=old.metadata.uid)
    assert err.value.code == 409 and err.value.is_conflict
    assert err.value.message == (
        'Operation cannot be fulfilled on sandboxclaims.agents.kruise.io "job": Precondition failed: '
        f"UID in precondition: {old.metadata.uid}, UID in object meta: {new.metadata.uid}"
    )
    assert world.api.peek("SandboxClaim", "default", "job") == new
    assert world.api.writes == writes


def test_a_delete_naming_the_stored_uid_deletes_it_through_the_verb() -> None:
    world = world_()
    stored = claim(world)
    env = world.ctx.env
    proc = env.process(
        world.api.delete(
            world.controller_client, "SandboxClaim", "default", "job", uid=stored.metadata.uid
        )
    )
    env.run(until=proc)
    assert world.api.peek("SandboxClaim", "default", "job") is None


def test_an_object_with_a_live_owner_left_loses_only_the_gone_owners_reference() -> None:
    """The garbage collector deletes a dependent only once none of its owners lives: the
    delete of one of two owners drops that owner's reference and keeps the object; the
    delete of the other then collects it."""
    world = world_()
    api = world.api
    first, second = claim(world, "first"), claim(world, "second")
    refs = [
        OwnerReference(
            api_version=keys.API_VERSION,
            kind="SandboxClaim",
            name=o.metadata.name,
            uid=o.metadata.uid or "",
        )
        for o in (first, second)
    ]
    api.commit_create(
        SandboxClaim(
            metadata=ObjectMeta(name="dependent", namespace="default", owner_references=refs),
            spec=SandboxClaimSpec(template_name="base"),
        )
    )
    api.commit_delete("SandboxClaim", "default", "first")
    world.ctx.env.run(until=1)
    kept = api.peek("SandboxClaim", "default", "dependent")
    assert kept is not None
    assert [r.name for r in kept.metadata.owner_references] == ["second"]
    api.commit_delete("SandboxClaim", "default", "second")
    world.ctx.env.run(until=2)
    assert api.peek("SandboxClaim", "default", "dependent") is None
