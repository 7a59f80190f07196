"""``kruise_e2b``'s teardown reads, called directly: in place, without copying the model."""

from __future__ import annotations

from typing import Any

from pytest_kruise_agents.api.keys import ANN_OWNER
from pytest_kruise_agents.backends import Caller, CreateRequest, SimBackend
from pytest_kruise_agents.plugin.server import FactoryMade, claimed_sandboxes

ALICE = Caller("default", "alice")


def test_claimed_sandboxes_reads_the_stored_objects_without_copying_them(
    sim_backend: SimBackend, model_copies: list[Any]
) -> None:
    """Every teardown asks for every claimed sandbox: the answer (ids and states, in the API
    server's order) is read in place, since a copy of each sandbox would cost more than the rest."""
    ids = [
        sim_backend.create_sandbox(ALICE, CreateRequest(template="base")).sandbox_id for _ in "ab"
    ]
    model_copies.clear()
    assert claimed_sandboxes(sim_backend) == dict.fromkeys(sorted(ids), "running")
    assert list(claimed_sandboxes(sim_backend)) == sorted(ids)
    assert model_copies == []


def test_factory_made_ids_reads_the_stored_objects_without_copying_them(
    sim_backend: SimBackend, model_copies: list[Any]
) -> None:
    """``FactoryMade.ids`` finds the sandboxes of the factories' claims by their owner (the
    claim's uid, in any namespace), in place."""
    view = sim_backend.create_sandbox(ALICE, CreateRequest(template="base"))
    with sim_backend.locked() as cluster:
        stored = cluster.world.api.peek("Sandbox", view.namespace, view.name)
        assert stored is not None
        stored.metadata.annotations[ANN_OWNER] = "uid-of-mine"
    made = FactoryMade(sandbox_ids={"default--other"}, claims={"uid-of-mine"})
    model_copies.clear()
    assert made.ids(sim_backend) == {"default--other", view.sandbox_id}
    assert FactoryMade(claims={"uid-of-theirs"}).ids(sim_backend) == set()
    assert model_copies == []
