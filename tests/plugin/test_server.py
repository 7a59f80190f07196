"""``kruise_e2b``'s teardown reads and kills, called directly: in place, without copying the
model, and only of what the test left behind."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.keys import ANN_OWNER
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.backends import Caller, CreateRequest, SimBackend
from pytest_kruise_agents.plugin.server import (
    FactoryMade,
    KruiseE2B,
    claimed_sandboxes,
    holding,
    kill_sandbox,
)
from simulator.cluster import Cluster
from tests.pools import RECYCLING_POOL

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


# -- recycling: a sandbox its owner killed is not left behind ----------------------------------

BOB = Caller("default", "bob")


@pytest.fixture
def recycling_backend() -> Iterator[SimBackend]:
    """One recycling pool ``reuse`` of one sandbox on a node with room for one: a kill
    recycles it and the next create claims it again, under the same id."""
    cluster = Cluster(seed=1, nodes=[{"name": "n1", "cpu": 8, "memory": "16Gi", "max_pods": 1}])
    cluster.apply(RECYCLING_POOL)
    cluster.wait_for_pool("reuse")
    backend = SimBackend(cluster)
    yield backend
    backend.close()


def _reaper(backend: SimBackend) -> KruiseE2B:
    return KruiseE2B(url="http://127.0.0.1:1", api_key="k", admin_key=None, backend=backend)


def _stored(backend: SimBackend, sandbox_id: str) -> Sandbox | None:
    namespace, _, name = sandbox_id.partition("--")
    with backend.locked() as cluster:
        found: Sandbox | None = cluster.world.api.peek("Sandbox", namespace, name)
        return found


@pytest.mark.parametrize("after", [0.0, 1.0])
def test_a_sandbox_its_owner_killed_to_recycle_is_neither_listed_nor_killed_again(
    recycling_backend: SimBackend, after: float
) -> None:
    """Killed (204) and in its grace period, it shows paused to E2B, but the test did not
    leave it behind: the teardown neither reports it nor kills it, which (once the
    controller has it ``Recycling``) would delete it instead of letting it rejoin its pool."""
    backend = recycling_backend
    sid = backend.create_sandbox(ALICE, CreateRequest(template="reuse")).sandbox_id
    backend.kill(ALICE, sid)
    backend.advance(after)
    assert claimed_sandboxes(backend) == {}
    assert _reaper(backend).reap() == []
    backend.advance(30)
    back = _stored(backend, sid)
    assert back is not None, "deleted by the teardown"
    assert back.metadata.labels[keys.LABEL_SANDBOX_CLAIMED] == "false"
    assert back.status.phase == "Running"


def test_a_teardown_kill_spares_a_sandbox_another_claim_holds_now(
    recycling_backend: SimBackend,
) -> None:
    """``kill_sandbox`` given who held the sandbox kills it only while that claim still holds
    it: recycled and claimed again (by another key, or by the same key's next create), the
    same id is another sandbox, not the one to kill."""
    backend = recycling_backend
    sid = backend.create_sandbox(ALICE, CreateRequest(template="reuse")).sandbox_id
    alices = holding(backend, sid)
    assert alices is not None and alices.owner == "alice"
    backend.kill(ALICE, sid)
    assert holding(backend, sid) is None  # being recycled: nobody's
    assert not kill_sandbox(backend, sid, alices)
    backend.advance(30)
    for caller in (BOB, ALICE):
        assert backend.create_sandbox(caller, CreateRequest(template="reuse")).sandbox_id == sid
        now = holding(backend, sid)
        assert now is not None and now.owner == caller.user and now != alices
        assert not kill_sandbox(backend, sid, alices)
        assert claimed_sandboxes(backend) == {sid: "running"}
        assert kill_sandbox(backend, sid, now)  # its own holder's kill still goes
        backend.advance(30)


def test_the_session_server_answers_503_while_no_test_uses_it() -> None:
    """Between tests (a client's late call, a daemon thread's), the server says no test is
    using it, as JSON the SDK reads, not a connection refused or an empty 500."""
    import json
    import urllib.error
    import urllib.request

    from pytest_kruise_agents.plugin.server import SessionServer

    server = SessionServer()
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{server.url}/sandboxes", timeout=10)
        assert caught.value.code == 503
        assert caught.value.headers["content-type"] == "application/json"
        assert json.loads(caught.value.read()) == {
            "code": 503,
            "message": "no test is using the kruise_e2b fixture right now",
        }
    finally:
        server.close()
