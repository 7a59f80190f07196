"""The runtime re-init after a resume is per pod (reference §4 step 7, §5.2 last paragraph)."""

from __future__ import annotations

from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.sandbox import Sandbox
from simulator.cluster import Cluster


def _condition(sbx: Sandbox, type_: str) -> tuple[str, str] | None:
    cond = find_condition(sbx.status.conditions, type_)
    return (cond.status, cond.reason) if cond is not None else None


def _set_paused(cluster: Cluster, name: str, paused: bool) -> None:
    """``kubectl edit``: write ``spec.paused`` on the stored sandbox."""
    sbx = cluster.get("sbx", name)
    sbx.spec.paused = paused
    cluster.apply(sbx)


def test_a_resume_paused_again_during_its_reinit_leaves_the_next_resume_unharmed(
    pooled: Cluster,
) -> None:
    """A pause lands while a resume's runtime re-init is in flight; the next resume works.

    The first re-init fails as its pod goes; that answer speaks for a pod
    that is gone (``sandbox.reinit_stale``). The second resume's new pod gets
    a re-init of its own: its runtime is initialised and the connect
    succeeds, where the stale answer used to mark the new pod
    ``RuntimeInitialized=False/Failed`` with no ``/init`` sent to it, and the
    connect waited 600 s to answer 500.
    """
    cluster = pooled
    sbx = cluster.create_sandbox("base", timeout=3600)
    name, sid = sbx.metadata.name, cluster.sandbox_id(sbx)
    cluster.pause(sid)
    cluster.set_latency("runtime.init", "fixed(900ms)")
    _set_paused(cluster, name, False)

    def reinit_due() -> bool:
        now = cluster.get("sbx", name)
        pods = [p for p in cluster.list("pod", "default") if p.metadata.name == name]
        return (
            _condition(now, "RuntimeInitialized") == ("False", "Pending")
            and bool(pods)
            and (ready := find_condition(pods[0].status.conditions, "Ready")) is not None
            and ready.status == "True"
        )

    cluster.run_until(reinit_due, timeout=120)
    cluster.advance(0.3)  # the pod is Ready: its re-init's first /init (0.9 s) is under way
    _set_paused(cluster, name, True)
    cluster.run_until(
        lambda: (
            _condition(cluster.get("sbx", name), "SandboxPaused") == ("True", "StopPauseSucceed")
        ),
        timeout=120,
    )
    cluster.advance(20)
    (stale,) = cluster.log.of_kind("sandbox.reinit_stale")
    assert stale.detail == f"default/{name} failed: pod is gone"

    cluster.set_latency("runtime.init", "fixed(50ms)")
    start = cluster.now
    _, was_paused = cluster.connect(sid, 600)
    assert was_paused and cluster.now - start < 60
    now = cluster.get("sbx", name)
    assert _condition(now, "RuntimeInitialized") == ("True", "Succeeded")
    assert _condition(now, "Ready") == ("True", "PodReady")
    assert cluster.runtime.is_initialised(now)
    assert [e.detail for e in cluster.log.of_kind("runtime.reinit")] == [f"default/{name} ok"]


def test_a_resume_whose_runtime_answers_401_to_the_replay_resumes(pooled: Cluster) -> None:
    """The replayed ``/init`` of a resume answered 401 ("already initialised") counts as
    success: the connect resumes the sandbox, where it answered 404 as if it had crashed."""
    sbx = pooled.create_sandbox("base")
    name, sid = sbx.metadata.name, pooled.sandbox_id(sbx)
    pooled.pause(sid)
    pooled.inject("runtime_init_failure", code=401)
    _, was_paused = pooled.connect(sid)
    assert was_paused
    assert _condition(pooled.get("sbx", name), "RuntimeInitialized") == ("True", "Succeeded")
    assert [e.detail for e in pooled.log.of_kind("runtime.reinit")] == [
        f"default/{name} already-initialised"
    ]
