"""The API server's ``DELETE`` preconditions (``DeleteOptions.preconditions``).

A delete that names the object's UID deletes only that object: one deleted
and made anew under its name since the caller read it answers 409 Conflict
with the message of ``storage.Preconditions.Check`` and stays as it is.
"""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api.meta import ObjectMeta
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
