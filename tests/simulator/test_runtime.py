"""The agent-runtime sidecar: ``/init`` with retries, CSI mounts, and the re-init after resume."""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.sandbox import Sandbox, TemplateRef
from pytest_kruise_agents.api.sandboxclaim import CSIMountConfig
from pytest_kruise_agents.claiming.errors import ClaimError, CSIMountError, InitRuntimeError
from pytest_kruise_agents.claiming.modification import InitRuntimeRequest
from simulator.cluster import Cluster
from simulator.runtime import has_agent_runtime
from tests.simulator.test_claim import HandWorld

REQUEST = InitRuntimeRequest(env_vars={"A": "1"}, access_token="tok")


def world(runtime: bool = True, **knobs: Any) -> tuple[HandWorld, Sandbox]:
    hw = HandWorld(latencies={"runtime.init": "fixed(50ms)", "csi.mount": "fixed(1s)"}, **knobs)
    hw.pool(replicas=1, runtime=runtime)
    hw.settle()
    return hw, hw.sandboxes()[0]


def test_init_takes_one_round_trip_and_is_remembered() -> None:
    """A first ``/init`` succeeds after one ``runtime.init`` latency and marks the runtime."""
    hw, sbx = world()
    rec = hw.record()
    t0 = hw.ctx.now()
    hw.run(hw.runtime.init(sbx, REQUEST, rec))
    assert hw.ctx.now() - t0 == pytest.approx(0.05)
    assert rec.runtime_initialized == hw.ctx.now()
    assert hw.runtime.is_initialised(sbx)


def test_runtime_presence_follows_runtimes_or_init_container() -> None:
    """``agent-runtime`` in ``runtimes`` or an init container named ``runtime`` means a runtime."""
    _, sbx = world(runtime=False)
    assert not has_agent_runtime(sbx)
    with_init = sbx.model_copy(deep=True)
    with_init.spec.template = {
        "spec": {
            "initContainers": [{"name": "runtime", "image": "agent-runtime"}],
            "containers": [{"name": "main", "image": "python"}],
        }
    }
    assert has_agent_runtime(with_init)


def test_runtime_presence_is_judged_from_the_pod_the_sandbox_runs() -> None:
    """Given the pod's template, its init containers decide, not the sandbox's template.

    A templateRef sandbox has no template of its own: the pod made from the
    SandboxTemplate as it was then tells whether the runtime is there.
    """
    _, sbx = world(runtime=False)
    main = {"name": "main", "image": "python"}
    with_runtime = {"spec": {"initContainers": [{"name": "runtime"}], "containers": [main]}}
    without = {"spec": {"containers": [main]}}
    ref = sbx.model_copy(deep=True)
    ref.spec.template = None
    ref.spec.template_ref = TemplateRef(name="python")
    assert has_agent_runtime(ref, with_runtime)
    assert not has_agent_runtime(ref, without)
    assert not has_agent_runtime(ref)
    inline = sbx.model_copy(deep=True)
    inline.spec.template = with_runtime
    assert not has_agent_runtime(inline, without)


def test_sandbox_without_runtime_refuses_every_attempt() -> None:
    """Five refused attempts, 0.2/0.4/0.8/1.6 s apart, then a retriable InitRuntimeError."""
    hw, sbx = world(runtime=False)
    t0 = hw.ctx.now()
    with pytest.raises(InitRuntimeError) as err:
        hw.run(hw.runtime.init(sbx, REQUEST))
    assert err.value.retriable
    assert "after 5 attempts" in str(err.value) and "connection refused" in str(err.value)
    assert hw.ctx.now() - t0 == pytest.approx(0.2 + 0.4 + 0.8 + 1.6 + 5 * 0.001)


def test_init_attempts_follow_the_profile() -> None:
    """``profile.init_attempts`` bounds the attempts."""
    hw, sbx = world(runtime=False, init_attempts=2)
    with pytest.raises(InitRuntimeError) as err:
        hw.run(hw.runtime.init(sbx, REQUEST))
    assert "after 2 attempts" in str(err.value)


def test_server_errors_are_retried_until_success() -> None:
    """A 500 from ``/init`` is retried: two injected failures, success on the third attempt."""
    hw, sbx = world()
    hw.ctx.faults.inject(kind="runtime_init_failure", count=2, selector={"template": "base"})
    t0 = hw.ctx.now()
    hw.run(hw.runtime.init(sbx, REQUEST))
    assert hw.ctx.now() - t0 == pytest.approx(3 * 0.05 + 0.2 + 0.4)
    assert hw.runtime.is_initialised(sbx)


def test_client_errors_are_not_retried() -> None:
    """A 4xx answer ends ``/init`` after one attempt."""
    hw, sbx = world()
    hw.ctx.faults.inject(kind="runtime_init_failure", code=400)
    with pytest.raises(InitRuntimeError) as err:
        hw.run(hw.runtime.init(sbx, REQUEST))
    assert "after 1 attempts" in str(err.value) and "status 400" in str(err.value)


def test_unreachable_runtime_costs_the_attempt_timeout() -> None:
    """An unreachable runtime makes each attempt last ``init_attempt_timeout_s``."""
    hw, sbx = world()
    hw.ctx.faults.inject(kind="runtime_unreachable", selector={"namespace": "default"})
    t0 = hw.ctx.now()
    with pytest.raises(InitRuntimeError):
        hw.run(hw.runtime.init(sbx, REQUEST))
    assert hw.ctx.now() - t0 == pytest.approx(5 * 1.0 + 0.2 + 0.4 + 0.8 + 1.6)


def test_fault_selector_must_match_the_template() -> None:
    """A fault aimed at another template does not touch this sandbox."""
    hw, sbx = world()
    hw.ctx.faults.inject(kind="runtime_init_failure", selector={"template": "other"})
    hw.run(hw.runtime.init(sbx, REQUEST))
    assert hw.runtime.is_initialised(sbx)


def test_reinit_of_an_initialised_runtime_counts_as_success() -> None:
    """A replayed ``/init`` answered 401 (already initialised) is a success."""
    hw, sbx = world()
    hw.run(hw.runtime.init(sbx, REQUEST))
    hw.run(hw.runtime.init(sbx, REQUEST, reinit=True))
    assert [e.detail for e in hw.ctx.log.of_kind("runtime.reinit")] == [
        f"default/{sbx.metadata.name} already-initialised"
    ]


def test_a_replay_the_runtime_answers_401_counts_as_success() -> None:
    """A ``runtime_init_failure`` of code 401 on a re-init is the runtime saying "already
    initialised", which the controller counts as success (reference §5.2); on a first
    ``/init`` the same 401 is a client error, not retried."""
    hw, sbx = world()
    hw.ctx.faults.inject(kind="runtime_init_failure", code=401)
    t0 = hw.ctx.now()
    hw.run(hw.runtime.init(sbx, REQUEST, reinit=True))
    assert hw.ctx.now() - t0 == pytest.approx(0.05)  # one answered attempt
    assert hw.runtime.is_initialised(sbx)
    assert [e.detail for e in hw.ctx.log.of_kind("runtime.reinit")] == [
        f"default/{sbx.metadata.name} already-initialised"
    ]
    with pytest.raises(InitRuntimeError, match="after 1 attempts: status 401"):
        hw.run(hw.runtime.init(sbx, REQUEST))


def test_deleting_the_sandbox_forgets_its_runtime() -> None:
    """The runtime's memory of a sandbox goes with the sandbox."""
    hw, sbx = world()
    hw.run(hw.runtime.init(sbx, REQUEST))
    hw.api.commit_delete("Sandbox", "default", sbx.metadata.name)
    hw.settle()
    assert not hw.runtime.is_initialised(sbx)


def test_mounts_run_three_at_a_time() -> None:
    """Four 1 s mounts with concurrency 3 take 2 s."""
    hw, sbx = world()
    mounts = [CSIMountConfig(pv_name=f"pv{i}", mount_path=f"/m{i}") for i in range(4)]
    t0 = hw.ctx.now()
    hw.run(hw.runtime.mount(sbx, mounts))
    assert hw.ctx.now() - t0 == pytest.approx(2.0)


def test_mount_failure_is_terminal() -> None:
    """An injected CSI mount failure raises a terminal CSIMountError after the mounts finish."""
    hw, sbx = world()
    hw.ctx.faults.inject(kind="csi_mount_failure", count=1)
    mounts = [CSIMountConfig(pv_name="pv", mount_path="/data")]
    with pytest.raises(CSIMountError) as err:
        hw.run(hw.runtime.mount(sbx, mounts))
    assert not err.value.retriable and err.value.code == 500
    assert "/data" in str(err.value)


@pytest.mark.parametrize(("opens", "fails"), [(0.0, True), (1.0, True), (1.5, False)])
def test_each_mount_consults_the_fault_when_it_starts(opens: float, fails: bool) -> None:
    """Six 1 s mounts, three at a time: mounts 4-6 start 1 s in, so a failure window that
    opens then fails them though it was not open when the phase began, and one that opens
    once every mount has started fails none."""
    hw, sbx = world()
    t0 = hw.ctx.now()
    fault = hw.ctx.faults.inject(kind="csi_mount_failure", start=t0 + opens, duration=10)
    mounts = [CSIMountConfig(pv_name=f"pv{i}", mount_path=f"/m{i}") for i in range(6)]
    if fails:
        with pytest.raises(CSIMountError, match="/m0" if opens == 0 else "/m3"):
            hw.run(hw.runtime.mount(sbx, mounts))
    else:
        hw.run(hw.runtime.mount(sbx, mounts))
    assert hw.ctx.now() - t0 == pytest.approx(2.0)  # a failure is told once all have answered
    assert fault.fired == int(fails)


def test_reinit_replays_the_stored_request_and_mounts() -> None:
    """``reinit`` sends the persisted init request and re-mounts the persisted CSI volumes."""
    hw, sbx = world()
    claimed = sbx.model_copy(deep=True)
    claimed.metadata.annotations[keys.ANN_INIT_RUNTIME_REQUEST] = REQUEST.to_json()
    claimed.metadata.annotations[keys.ANN_CSI_VOLUME_CONFIG] = json.dumps(
        [{"pvName": "pv", "mountPath": "/data"}]
    )
    stored = hw.api.commit_update(claimed)
    t0 = hw.ctx.now()
    hw.run(hw.runtime.reinit(stored))
    assert hw.ctx.now() - t0 == pytest.approx(0.05 + 1.0)
    assert hw.runtime.is_initialised(stored)
    assert [e.detail for e in hw.ctx.log.of_kind("runtime.reinit")] == [
        f"default/{sbx.metadata.name} ok"
    ]


def test_reinit_without_a_stored_request_does_nothing() -> None:
    """A sandbox never initialised has nothing to replay."""
    hw, sbx = world()
    t0 = hw.ctx.now()
    hw.run(hw.runtime.reinit(sbx))
    assert hw.ctx.now() == t0 and not hw.runtime.is_initialised(sbx)


POOL = """\
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxSet
metadata: {name: base, namespace: default}
spec:
  replicas: 1
  runtimes: [{name: agent-runtime}]
  template:
    spec:
      containers:
        - {name: sandbox, image: img:1, resources: {requests: {cpu: 100m, memory: 64Mi}}}
"""


@pytest.mark.parametrize("how", ["delete", "pod_kill"])
def test_an_init_whose_pod_goes_meanwhile_fails_and_the_create_retries(how: str) -> None:
    """The sandbox is deleted (or its pod killed) while the create's ``/init`` is in flight: the
    call's connection drops with the pod, so the attempt fails as an unreachable runtime does
    (``InitRuntimeFailed``), is cleaned up, and the create retries onto another sandbox that
    exists (reference §5.2 step 6-7, §5.3).

    Before, the ``/init`` answered as if the pod were still there: the create returned 201 for
    a sandbox that was 404 everywhere from then on.
    """
    cluster = Cluster(seed=1, latencies={"runtime.init": "fixed(900ms)"})
    cluster.apply(POOL)
    cluster.wait_for_pool("base")
    proc = cluster.submit_create("base", timeout=300)
    records = cluster.records
    assert cluster.run_until(lambda: len(records) > 0 and records[0].locked is not None)
    cluster.advance(0.5)  # /init is in flight: it answers 0.9 s after the lock
    rec = records[0]
    assert rec.runtime_initialized is None and rec.sandbox is not None
    gone = rec.sandbox.split("/")[1]
    if how == "delete":
        cluster.delete("sbx", gone)
    else:
        cluster.inject("pod_kill", selector={"template": "base"})  # the pool's only pod
    assert cluster.run_until(lambda: not proc.is_alive, timeout=120)
    got = proc.value
    assert isinstance(got, Sandbox), got
    assert got.metadata.name != gone
    assert cluster.get("sbx", got.metadata.name).metadata.uid == got.metadata.uid
    assert cluster.describe(cluster.sandbox_id(got)) is not None
    assert rec.attempts == 2 and rec.delivered is not None
    (failed,) = cluster.log.of_kind("claim.post_failed")
    assert failed.detail.endswith(f"default/{gone} InitRuntimeFailed")
    (init,) = cluster.log.of_kind("runtime.init_failed")
    assert init.detail.startswith(f"default/{gone} attempts=")


def test_an_init_attempt_whose_sandbox_goes_meanwhile_fails_as_unreachable() -> None:
    """One ``/init`` call with the sandbox deleted half-way: the call fails as a transport error
    (retried, then :class:`InitRuntimeError`, reason ``InitRuntimeFailed``), and the runtime
    is not marked initialised."""
    hw, sbx = world()

    def delete_half_way() -> Any:
        yield hw.env.timeout(0.025)
        hw.api.commit_delete("Sandbox", "default", sbx.metadata.name)

    hw.env.process(delete_half_way())
    t0 = hw.ctx.now()
    with pytest.raises(InitRuntimeError) as err:
        hw.run(hw.runtime.init(sbx, REQUEST))
    assert err.value.reason == "InitRuntimeFailed" and err.value.retriable
    assert "after 5 attempts" in str(err.value)
    # The attempts left are refused at once; only the back-off between them takes time
    # (0.2 + 0.4 + 0.8 + 1.6 s: "about 3 s in all", docs/fidelity.md), not their 1 s timeouts.
    assert 3.0 <= hw.ctx.now() - t0 < 3.5
    (reset,) = [e for e in hw.ctx.log.of_kind("runtime.init_dropped")]
    assert reset.detail == f"default/{sbx.metadata.name} connection reset: the sandbox is gone"
    assert not hw.runtime.is_initialised(sbx)


@pytest.mark.parametrize("how", ["delete", "pod_kill"])
def test_a_mount_whose_pod_goes_meanwhile_fails_the_create_with_a_500(how: str) -> None:
    """The sandbox is deleted (or its pod killed) while the create's CSI mount is in flight: the
    mount call's connection drops with the pod, so the mount fails, and a failed mount is
    terminal (reference §5.2 step 6: "CSI mounts ... failure is **not retriable** (terminal
    500)"). The create answers 500 ``CSIMountFailed`` after one attempt, its sandbox is
    cleaned up (step 7), and no route to it is left.

    Before, the mount answered as if the pod were still there: the create returned 201 for a
    sandbox that was gone (or dead) from then on.
    """
    cluster = Cluster(seed=1, latencies={"csi.mount": "fixed(2s)"})
    cluster.apply(POOL)
    cluster.wait_for_pool("base")
    proc = cluster.submit_create("base", volume_mounts=[{"name": "pv", "path": "/data"}])
    records = cluster.records
    assert cluster.run_until(
        lambda: len(records) > 0 and records[0].runtime_initialized is not None
    )
    cluster.advance(0.5)  # the mount is in flight: it answers 2 s after the /init
    rec = records[0]
    assert rec.mounted is None and rec.sandbox is not None
    gone = rec.sandbox.split("/")[1]
    if how == "delete":
        cluster.delete("sbx", gone)
    else:
        cluster.inject("pod_kill", selector={"template": "base"})  # the pool's only pod
    assert cluster.run_until(lambda: not proc.is_alive, timeout=60)
    err = proc.value
    assert isinstance(err, CSIMountError), err
    assert err.code == 500 and not err.retriable
    assert (rec.attempts, rec.mounted, rec.delivered) == (1, None, None)
    assert (rec.error_code, rec.error_reason) == (500, "CSIMountFailed")
    (dropped,) = cluster.log.of_kind("runtime.mount_dropped")
    assert dropped.detail.startswith(f"default/{gone} connection reset: the sandbox")
    (failed,) = cluster.log.of_kind("claim.post_failed")
    assert failed.detail.endswith(f"default/{gone} CSIMountFailed")
    cluster.advance(5)
    assert gone not in {s.metadata.name for s in cluster.list("sbx")}
    with pytest.raises(ClaimError) as missing:
        cluster.describe(f"default--{gone}")
    assert missing.value.code == 404


def test_a_mount_whose_sandbox_goes_meanwhile_fails_as_a_dropped_connection() -> None:
    """One mount call with the sandbox deleted half-way: :class:`CSIMountError` (terminal, 500)
    once the started mounts have ended, logged as ``runtime.mount_dropped``."""
    hw, sbx = world()

    def delete_half_way() -> Any:
        yield hw.env.timeout(0.5)
        hw.api.commit_delete("Sandbox", "default", sbx.metadata.name)

    hw.env.process(delete_half_way())
    mounts = [CSIMountConfig(pv_name="pv", mount_path="/data")]
    t0 = hw.ctx.now()
    with pytest.raises(CSIMountError) as err:
        hw.run(hw.runtime.mount(sbx, mounts))
    assert not err.value.retriable and err.value.code == 500
    assert hw.ctx.now() - t0 == pytest.approx(1.0)
    assert "connection reset: the sandbox is gone" in str(err.value)
    (dropped,) = hw.ctx.log.of_kind("runtime.mount_dropped")
    assert dropped.detail == f"default/{sbx.metadata.name} connection reset: the sandbox is gone"
    assert hw.ctx.log.of_kind("runtime.mount_failed") == []
