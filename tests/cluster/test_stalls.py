"""A ``controller_stall`` stops its component, the work it has under way included.

docs/profiles-and-faults.md: "A component makes no progress while the window is
open", as a controller pod under Chaos Mesh ``pod-failure`` or behind a disabled
Toxiproxy proxy. A reconcile or a pod start already running when the window
opens goes no further than the step it is in: each API request its component
would send, and each step of a claim attempt or a kubelet pod start, waits until
the stall lets go, and counts as held in the stall's ``fired``.
"""

from __future__ import annotations

from simulator.cluster import Cluster

from .conftest import claim_yaml, pool_yaml

_STEP_S = 1.0
"""Room for a request sent just before a window opens (its latency is milliseconds)."""


def _events(cluster: Cluster, prefix: str, start: float, end: float) -> list[str]:
    """The log lines of kind ``prefix...`` in ``[start, end)``."""
    return [str(e) for e in cluster.log.of_kind(prefix) if start <= e.time < end]


def test_a_claim_reconcile_under_way_stops_while_its_controller_is_stalled() -> None:
    """A SandboxClaim reconcile waiting for new sandboxes when the stall opens claims
    nothing and writes no status in the window; it finishes after."""
    cluster = Cluster(seed=1)
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    cluster.apply(claim_yaml("c1", replicas=5))
    cluster.advance(1)  # the reconcile is under way: its attempts wait for sandboxes
    stall = cluster.inject("controller_stall", selector={"controller": "sandboxclaim"}, duration=60)
    start = cluster.now
    cluster.advance(59)
    assert _events(cluster, "sandboxclaim.", start, cluster.now) == []
    assert _events(cluster, "claim.locked sandboxclaim", start + _STEP_S, cluster.now) == []
    assert cluster.get("sbc", "c1", "default").status.claimed_replicas == 0
    assert stall.fired >= 1  # it held the attempts under way
    cluster.advance(30)
    claim = cluster.get("sbc", "c1", "default")
    assert claim.status.claimed_replicas == 5
    assert claim.status.phase == "Completed"


def test_a_scale_up_under_way_creates_nothing_while_its_controller_is_stalled() -> None:
    """A SandboxSet controller stalled between two create batches sends no create until
    the window ends."""
    cluster = Cluster(seed=11)
    cluster.apply(pool_yaml(replicas=40))
    cluster.advance(0.1)  # the first batch's creates are on their way
    stall = cluster.inject("controller_stall", selector={"controller": "sandboxset"}, duration=30)
    start = cluster.now
    cluster.advance(30)
    assert _events(cluster, "sandboxset.", start + _STEP_S, start + 30) == []
    assert len(cluster.list("sbx", "default")) < 40
    assert stall.fired >= 1
    cluster.wait_for_pool("base", timeout=120)


def test_pod_starts_under_way_stop_while_the_kubelet_is_stalled() -> None:
    """Pods pulling their image when a kubelet stall opens do not start in the window: the
    download (the container runtime's) lands, the kubelet goes on once the stall ends."""
    cluster = Cluster(seed=2)
    cluster.apply(pool_yaml(replicas=3))
    cluster.advance(1.5)  # the pods are bound, their images on their way
    stall = cluster.inject("controller_stall", selector={"controller": "kubelet"}, duration=60)
    start = cluster.now
    cluster.advance(59)
    assert _events(cluster, "kubelet.running", start, cluster.now) == []
    assert {p.status.phase for p in cluster.list("pod", "default")} == {"Pending"}
    assert stall.fired == 3  # each pod's start, held once
    cluster.wait_for_pool("base", timeout=60)


def test_clearing_a_stall_lets_the_work_it_held_go_at_once() -> None:
    """A stall without a window holds a reconcile under way until it is cleared; the
    claim then finishes in the time its remaining steps take."""
    cluster = Cluster(seed=1)
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    cluster.apply(claim_yaml("c1", replicas=5))
    cluster.advance(1)
    stall = cluster.inject("controller_stall", selector={"controller": "sandboxclaim"})
    cluster.advance(300)
    assert cluster.get("sbc", "c1", "default").status.claimed_replicas == 0
    cluster.clear_faults(stall.id)
    cleared = cluster.now
    cluster.advance(5)
    assert cluster.get("sbc", "c1", "default").status.claimed_replicas == 5
    assert len(_events(cluster, "sandboxclaim.claimed", cleared, cleared + _STEP_S)) == 1


def test_a_stalled_kubelet_reports_no_killed_pod() -> None:
    """A pod killed while its kubelet is stalled is reported failed only once the stall
    ends: a stalled kubelet writes nothing."""
    cluster = Cluster(seed=3)
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    cluster.inject("controller_stall", selector={"controller": "kubelet"}, duration=30)
    start = cluster.now
    cluster.inject("pod_kill", selector={"template": "base"})
    cluster.advance(29)
    assert len(_events(cluster, "pod.killed", start, cluster.now)) == 2
    assert {p.status.phase for p in cluster.list("pod", "default")} == {"Running"}
    cluster.advance(2)
    failed = [e for e in _events(cluster, "sandbox.phase", start, cluster.now) if "->Failed" in e]
    assert len(failed) == 2
