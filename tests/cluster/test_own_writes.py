"""A list right after one of the caller's own writes shows that write (docs/server.md).

The sandbox-manager lists from its informer cache, which sees a write one
watch lag after it is made, and virtual time stands still between calls: a
call that writes a sandbox (create, connect, kill, timeout change) is
answered once the cache has seen it, so that ``list_sandboxes`` agrees with
``describe`` at once, on the in-process :class:`Cluster` as through
:class:`~pytest_kruise_agents.backends.sim.SimBackend` (the HTTP server's path).
"""

from __future__ import annotations

import pytest

from pytest_kruise_agents.backends import Caller, CreateRequest
from pytest_kruise_agents.backends.base import ListQuery
from pytest_kruise_agents.backends.sim import SimBackend
from pytest_kruise_agents.claiming.errors import ClaimError
from simulator.cluster import CACHE_WAIT_S, DEFAULT_USER, Cluster

from .conftest import pool_yaml


def _listed(cluster: Cluster, *, namespace: str = "default", user: str = DEFAULT_USER) -> list[str]:
    page, _ = cluster.list_sandboxes(namespace=namespace, user=user)
    return [cluster.sandbox_id(s) for s in page]


def test_a_created_sandbox_is_listed_at_once(pooled: Cluster) -> None:
    """``list_sandboxes`` right after ``create_sandbox`` shows the new sandbox."""
    sid = pooled.sandbox_id(pooled.create_sandbox("base"))
    assert _listed(pooled) == [sid]


def test_every_create_past_a_small_pool_is_listed_at_once() -> None:
    """Warm and cold claims alike are listed right after they are answered.

    A claim whose last write lands just before its answer (seed 2's sixth
    create here) was missing from the list until some later call moved time.
    """
    cluster = Cluster(seed=2)
    cluster.apply(pool_yaml(replicas=1))
    cluster.wait_for_pool("base")
    for _ in range(6):
        sid = cluster.sandbox_id(cluster.create_sandbox("base"))
        assert sid in _listed(cluster), cluster.now


def test_a_burst_of_creates_is_listed_at_once(pooled: Cluster) -> None:
    """Every sandbox a ``create_sandboxes`` burst delivered is listed right after it."""
    made = pooled.create_sandboxes(3, "base")
    sids = sorted(pooled.sandbox_id(s) for s in made if not isinstance(s, ClaimError))
    assert len(sids) == 3
    assert sorted(_listed(pooled)) == sids


def test_a_killed_sandbox_leaves_the_list_at_once(pooled: Cluster) -> None:
    """Right after ``kill`` the list no longer shows the sandbox ``describe`` answers 404 for."""
    sid = pooled.sandbox_id(pooled.create_sandbox("base"))
    pooled.advance(1)
    pooled.kill(sid)
    with pytest.raises(ClaimError) as err:
        pooled.describe(sid)
    assert err.value.code == 404
    assert _listed(pooled) == []


def test_a_timeout_change_keeps_the_sandbox_listed(pooled: Cluster) -> None:
    """Right after ``set_timeout`` the list still shows the sandbox (it dropped it until time moved)."""
    sid = pooled.sandbox_id(pooled.create_sandbox("base"))
    pooled.advance(1)
    pooled.set_timeout(sid, 600)
    assert _listed(pooled) == [sid]
    assert pooled.describe(sid).spec.shutdown_time is not None


def test_a_connect_keeps_the_sandbox_listed(pooled: Cluster) -> None:
    """Right after a ``connect`` that extends a running sandbox's timeout, it is still listed."""
    sid = pooled.sandbox_id(pooled.create_sandbox("base", timeout=60))
    pooled.advance(1)
    _, resumed = pooled.connect(sid, timeout=600)
    assert resumed is False
    assert _listed(pooled) == [sid]


def test_a_connect_the_controller_ends_at_once_is_shown_alike_by_describe_and_list() -> None:
    """A connect exactly at a sandbox's end extends it, and the Sandbox controller, reading
    its cache before that write arrives, deletes it within the watch lag (upstream's race).

    The connect's wait for the manager's cache stopped as soon as the API server had
    deleted the sandbox, before the cache had its write: ``describe`` then answered the
    route table's copy of the write (running, with the new end) while the list left the
    older cached copy out, until some later call moved time. Now the wait lasts until
    the cache has the write (or has dropped the sandbox): both answer alike.
    """
    cluster = Cluster(seed=3, nodes=2)
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    sbx = cluster.create_sandbox("base", timeout=30)
    sid = cluster.sandbox_id(sbx)
    end = sbx.spec.shutdown_time
    assert end is not None
    cluster.advance((end - cluster.now_dt()).total_seconds())

    _, resumed = cluster.connect(sid, timeout=600)

    assert resumed is False
    assert _described(cluster, sid) == (sid in _listed(cluster))
    cluster.advance(1)  # the controller's deletion reaches the manager
    assert not _described(cluster, sid)
    assert _listed(cluster) == []


def _described(cluster: Cluster, sid: str) -> bool:
    """Whether ``describe`` shows ``sid`` (False for its 404)."""
    try:
        cluster.describe(sid)
    except ClaimError as err:
        assert err.code == 404, err
        return False
    return True


def test_the_admin_scope_sees_its_own_writes_at_once(pooled: Cluster) -> None:
    """The admin team (namespace ``""``) lists its create and its kill at once, too."""
    sid = pooled.sandbox_id(pooled.create_sandbox("base", namespace="", user="admin"))
    assert _listed(pooled, namespace="", user="admin") == [sid]
    pooled.advance(1)
    pooled.kill(sid, namespace="", user="admin")
    assert _listed(pooled, namespace="", user="admin") == []


def _lists_after_each_call(cluster: Cluster, backend: SimBackend | None) -> list[list[str]]:
    """The list after a create, a timeout change and a kill, through the backend if given."""
    caller = Caller("default", DEFAULT_USER)

    def listed() -> list[str]:
        if backend is None:
            return _listed(cluster)
        return [v.sandbox_id for v in backend.list_sandboxes(caller, ListQuery())[0]]

    if backend is None:
        sid = cluster.sandbox_id(cluster.create_sandbox("base"))
    else:
        sid = backend.create_sandbox(caller, CreateRequest("base")).sandbox_id
    seen = [listed()]
    cluster.advance(1)
    if backend is None:
        cluster.set_timeout(sid, 600)
    else:
        backend.set_timeout(caller, sid, 600)
    seen.append(listed())
    if backend is None:
        cluster.kill(sid)
    else:
        backend.kill(caller, sid)
    seen.append(listed())
    return seen


def test_the_cluster_and_the_backend_answer_the_same_lists() -> None:
    """The same calls, in process or through the Backend seam, list the same sandboxes at once."""

    def pooled() -> Cluster:
        cluster = Cluster(seed=11)
        cluster.apply(pool_yaml())
        cluster.wait_for_pool("base")
        return cluster

    in_process = pooled()
    direct = _lists_after_each_call(in_process, None)
    served = pooled()
    through = _lists_after_each_call(served, SimBackend(served))
    assert direct == through
    assert [len(seen) for seen in direct] == [1, 1, 0]
    # One rule, one run: the two paths wait alike, so the same calls give the same log.
    assert in_process.log.text() == served.log.text()


def test_the_wait_for_the_cache_never_outlasts_a_short_bound(pooled: Cluster) -> None:
    """The wait hides the ordinary watch lag, not a lagging manager: under a 45 s
    ``watch_lag`` a create with a 30 s timeout sat through the lag and returned a sandbox
    its timeout had already ended. It returns within ``CACHE_WAIT_S`` of its delivery,
    alive, and the list shows it once the cache catches up, as a real manager's would."""
    pooled.inject("watch_lag", latency="45s", selector={"informer": "sandbox-manager"})
    start = pooled.now
    sbx = pooled.create_sandbox("base", timeout=30)
    latency = pooled.last_record().latency
    assert latency is not None and pooled.now - start <= CACHE_WAIT_S + latency
    sid = pooled.sandbox_id(sbx)
    assert pooled.describe(sid).metadata.deletion_timestamp is None
    pooled.set_timeout(sid, 60)
    assert pooled.describe(sid).metadata.deletion_timestamp is None
