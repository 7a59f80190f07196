"""The Sandbox controller: pod lifecycle, phases, timers, pause/resume, in-place update, faults."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any

import pytest
import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import ObjectMeta, find_condition
from pytest_kruise_agents.api.pod import Pod, normalize_image
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxSpec, SandboxState, TemplateRef
from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate
from pytest_kruise_agents.claiming.errors import InitRuntimeError
from pytest_kruise_agents.claiming.state import sandbox_state
from simulator.apiserver import GARBAGE_COLLECTOR, ApiError
from simulator.cluster import Cluster
from simulator.context import SimContext
from simulator.controllers.sandbox import SandboxController
from simulator.nodes import ANN_GRACE_SECONDS, POD_FINALIZER, Nodes, NodeSpec
from simulator.profile import LATENCY_DOCS, get_profile
from simulator.world import World
from tests.cluster.conftest import pool_yaml

IMAGE = "registry.example.com/sandbox:v1"
IMAGE_V2 = "registry.example.com/sandbox:v2"

# Every step fixed (and no watch lag), so that timings in assertions are exact.
FIXED: dict[str, Any] = {name: 0.01 for name in LATENCY_DOCS}
FIXED.update(
    {
        "watch.lag": 0.0,
        "controller.reconcile": 0.0,
        "pod.create": 0.2,
        "image.pull": 5.0,
        "image.pull_cached": 0.1,
        "container.start": 0.5,
        "container.ready": 0.2,
        "inplace.update": 3.0,
        "pod.stop": 0.1,
    }
)


class FakeRuntime:
    """Records re-init calls; takes ``delay`` seconds and fails when ``fail`` is set.

    ``plan`` gives the (delay, fail) of the next calls, in order, before the defaults.
    """

    def __init__(self, env: simpy.Environment, *, delay: float = 0.5, fail: bool = False) -> None:
        self.env = env
        self.delay = delay
        self.fail = fail
        self.plan: list[tuple[float, bool]] = []
        self.calls: list[tuple[str, str | None]] = []
        self.ended = 0
        """How many calls have answered."""

    def reinit(self, sbx: Sandbox) -> Generator[simpy.Event, Any, Any]:
        info = sbx.status.pod_info
        self.calls.append((sbx.metadata.name, info.pod_ip if info else None))
        delay, fail = self.plan.pop(0) if self.plan else (self.delay, self.fail)
        yield self.env.timeout(delay)
        self.ended += 1
        if fail:
            raise InitRuntimeError("agent-runtime /init answered 500")


class Rig:
    """A world with two nodes, the scheduler and kubelets, and the Sandbox controller."""

    def __init__(
        self, *, seed: int = 1, latencies: dict[str, Any] | None = None, fail: bool = False
    ) -> None:
        profile = get_profile("openkruise-head").with_overrides(
            latencies={**FIXED, **(latencies or {})}
        )
        self.ctx = SimContext(seed=seed, profile=profile)
        self.world = World(self.ctx)
        self.api = self.world.api
        self.runtime = FakeRuntime(self.ctx.env, fail=fail)
        self.nodes = Nodes(self.world, [NodeSpec(name="a"), NodeSpec(name="b")])
        self.controller = SandboxController(self.world, self.runtime)
        self.nodes.start()
        self.controller.start()

    def create(
        self,
        name: str = "sbx",
        *,
        annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
        **spec: Any,
    ) -> Sandbox:
        template = {
            "metadata": {"labels": {"app": "demo"}},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": IMAGE,
                        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}},
                    }
                ]
            },
        }
        sbx = Sandbox(
            metadata=ObjectMeta(
                name=name,
                namespace="default",
                labels={keys.LABEL_SANDBOX_TEMPLATE: "base", **(labels or {})},
                annotations=annotations or {},
            ),
            spec=SandboxSpec(template=template, **spec),
        )
        created: Sandbox = self.api.commit_create(sbx)
        return created

    def sbx(self, name: str = "sbx") -> Sandbox | None:
        got: Sandbox | None = self.api.peek("Sandbox", "default", name)
        return got

    def pod(self, name: str = "sbx") -> Pod | None:
        got: Pod | None = self.api.peek("Pod", "default", name)
        return got

    def edit(self, name: str, change: Callable[[Sandbox], None]) -> Sandbox:
        cur = self.sbx(name)
        assert cur is not None
        new = cur.model_copy(deep=True)
        change(new)
        updated: Sandbox = self.api.commit_update(new)
        return updated

    def until(self, pred: Callable[[], bool], limit: float = 600.0) -> float:
        """Step the simulation until ``pred`` holds; return the virtual time it first did."""
        env = self.ctx.env
        while not pred():
            if env.peek() > limit:
                raise AssertionError(f"condition not met by t={limit}")
            env.step()
        return float(env.now)

    def run(self, seconds: float) -> None:
        self.ctx.env.run(until=self.ctx.now() + seconds)

    def cond(self, type_: str, name: str = "sbx") -> tuple[str, str] | None:
        sbx = self.sbx(name)
        c = find_condition(sbx.status.conditions, type_) if sbx else None
        return (c.status, c.reason) if c else None

    def phase(self, name: str = "sbx") -> str | None:
        sbx = self.sbx(name)
        return str(sbx.status.phase) if sbx and sbx.status.phase else None

    def ready(self, name: str = "sbx") -> bool:
        return self.phase(name) == "Running" and self.cond("Ready", name) == ("True", "PodReady")


def test_sandbox_goes_pending_then_running_and_ready_with_its_pod() -> None:
    """A new Sandbox becomes Pending, gets a same-named owned pod, then Running and Ready.

    The pod's labels are the template's, the sandbox's template label, ``created-by`` and
    the template hash; no ``sandbox-name`` (upstream writes that in E2B pod templates only).
    """
    rig = Rig()
    rig.create()
    rig.until(lambda: rig.phase() == "Pending")
    pod = rig.pod()
    assert pod is not None
    sbx = rig.sbx()
    assert sbx is not None
    ref = pod.metadata.controller_ref()
    assert ref is not None and (ref.kind, ref.uid) == ("Sandbox", sbx.metadata.uid)
    assert ref.api_version == keys.API_VERSION
    assert pod.metadata.finalizers == [POD_FINALIZER]
    revision = pod.metadata.labels.pop(keys.LABEL_POD_TEMPLATE_HASH)
    assert len(revision) == 8 and int(revision, 16) >= 0
    assert pod.metadata.labels == {
        "app": "demo",
        keys.LABEL_SANDBOX_TEMPLATE: "base",
        keys.LABEL_CREATED_BY: "sandbox",
    }
    assert pod.spec["containers"][0]["image"] == IMAGE

    rig.until(rig.ready)
    sbx = rig.sbx()
    pod = rig.pod()
    assert sbx is not None and pod is not None and sbx.status.pod_info is not None
    assert sbx.status.pod_info.pod_ip == pod.status.pod_ip == sbx.status.sandbox_ip
    assert sbx.status.pod_info.node_name == pod.spec["nodeName"] == sbx.status.node_name
    assert sbx.status.pod_info.pod_uid == pod.metadata.uid
    assert sbx.status.observed_generation == sbx.metadata.generation
    phases = [e.detail for e in rig.ctx.log.of_kind("sandbox.phase")]
    assert phases == ["default/sbx None->Pending", "default/sbx Pending->Running"]


def test_no_op_reconciles_write_nothing() -> None:
    """Start-up costs two status writes (Pending, Running); later reconciles write nothing."""
    rig = Rig()
    writes: list[str] = []
    rig.world.controller_cache.add_handler(
        "Sandbox", lambda t, old, new: writes.append(t) if t == "MODIFIED" else None
    )
    rig.create()
    rig.until(rig.ready)
    rig.run(1)
    assert writes == ["MODIFIED", "MODIFIED"]
    total = rig.api.writes
    rig.controller.queue.add(("default", "sbx"))
    rig.run(100)
    assert rig.api.writes == total


def template_object(image: str = IMAGE_V2) -> SandboxTemplate:
    return SandboxTemplate.model_validate(
        {
            "metadata": {"name": "tpl", "namespace": "default"},
            "spec": {
                "template": {
                    "metadata": {"labels": {"team": "ml"}, "annotations": {"note": "x"}},
                    "spec": {"containers": [{"name": "main", "image": image}]},
                }
            },
        }
    )


def ref_sandbox(rig: Rig, name: str = "sbx") -> Sandbox:
    sbx = Sandbox(
        metadata=ObjectMeta(
            name=name, namespace="default", labels={keys.LABEL_SANDBOX_TEMPLATE: "tpl"}
        ),
        spec=SandboxSpec(template_ref=TemplateRef(name="tpl")),
    )
    created: Sandbox = rig.api.commit_create(sbx)
    return created


def test_a_sandbox_with_neither_template_nor_template_ref_is_left_alone() -> None:
    """Reference §4 step 1: no template and no templateRef: the reconcile ignores it. No pod,
    no phase, no error to back off from; said once in the log."""
    rig = Rig()
    rig.api.commit_create(
        Sandbox(metadata=ObjectMeta(name="bare", namespace="default"), spec=SandboxSpec())
    )
    rig.run(30)
    assert rig.pod("bare") is None
    bare = rig.sbx("bare")
    assert bare is not None and bare.status.phase is None
    assert [e.detail for e in rig.ctx.log.of_kind("sandbox.unsupported")] == [
        "default/bare no pod template or templateRef"
    ]
    assert not rig.ctx.log.of_kind("sandbox.reconcile_error")


def test_a_template_ref_sandbox_gets_its_pod_from_the_sandbox_template() -> None:
    """The pod is built from the SandboxTemplate the sandbox names: labels, annotations, image."""
    rig = Rig()
    rig.api.commit_create(template_object())
    ref_sandbox(rig)
    rig.until(rig.ready)
    pod = rig.pod()
    assert pod is not None
    assert pod.spec["containers"][0]["image"] == IMAGE_V2
    assert pod.metadata.labels == {
        "team": "ml",
        keys.LABEL_SANDBOX_TEMPLATE: "tpl",
        keys.LABEL_CREATED_BY: "sandbox",
        keys.LABEL_POD_TEMPLATE_HASH: pod.metadata.labels[keys.LABEL_POD_TEMPLATE_HASH],
    }
    assert pod.metadata.annotations == {"note": "x"}
    assert not rig.ctx.log.of_kind("sandbox.template_not_found")


def test_a_missing_sandbox_template_backs_off_until_it_appears() -> None:
    """No SandboxTemplate yet: no pod, one event, back-off; the pod comes once it is created."""
    rig = Rig()
    ref_sandbox(rig)
    rig.run(10)
    assert rig.pod() is None
    assert [e.detail for e in rig.ctx.log.of_kind("sandbox.template_not_found")] == [
        "default/sbx templateRef=tpl"
    ]
    errors = rig.ctx.log.of_kind("sandbox.reconcile_error")
    assert errors and all(e.detail == "default/sbx 404 NotFound" for e in errors)
    # Back-off doubles from 5 ms: a dozen attempts in 10 s, not thousands.
    assert 5 <= len(errors) <= 15
    # Meanwhile the sandbox says why, as for any pod create that fails (docs/fidelity.md).
    assert rig.phase() == "Pending"
    assert ready_condition(rig) == (
        "False",
        "PodCreateFailed",
        'sandboxtemplates.agents.kruise.io "tpl" not found',
    )
    rig.api.commit_create(template_object())
    became_ready = rig.until(rig.ready, limit=60)
    assert became_ready < 10 + 30 + 10  # within one capped back-off (30 s) and a start
    assert len(rig.ctx.log.of_kind("sandbox.template_not_found")) == 1


def test_a_sandbox_template_change_reaches_only_pods_made_after_it() -> None:
    """A SandboxTemplate change leaves running pods as they are; a new pod gets the new image."""
    rig = Rig()
    rig.api.commit_create(template_object(IMAGE))
    ref_sandbox(rig, "one")
    rig.until(lambda: rig.ready("one"))
    changed = template_object(IMAGE_V2)
    stored = rig.api.peek("SandboxTemplate", "default", "tpl")
    assert stored is not None
    changed.metadata = stored.metadata.model_copy()
    rig.api.commit_update(changed)
    ref_sandbox(rig, "two")
    rig.until(lambda: rig.ready("two"))
    rig.run(30)
    one, two = rig.pod("one"), rig.pod("two")
    assert one is not None and two is not None
    assert one.spec["containers"][0]["image"] == IMAGE
    assert two.spec["containers"][0]["image"] == IMAGE_V2
    assert rig.cond("InplaceUpdate", "one") is None
    # Each pod is labelled with the revision of the template it was made from.
    hashes = [p.metadata.labels[keys.LABEL_POD_TEMPLATE_HASH] for p in (one, two)]
    assert hashes[0] != hashes[1]
    ref_sandbox(rig, "three")
    rig.until(lambda: rig.ready("three"))
    three = rig.pod("three")
    assert three is not None and three.metadata.labels[keys.LABEL_POD_TEMPLATE_HASH] == hashes[1]


def test_pause_deletes_the_pod_and_resume_recreates_it_and_reinitialises() -> None:
    """Pause deletes the pod with the pause grace; resume makes a new pod, re-inits, then Ready."""
    rig = Rig()
    rig.create(annotations={keys.ANN_INIT_RUNTIME_REQUEST: '{"envVars":{},"accessToken":"t"}'})
    rig.until(rig.ready)
    old_pod = rig.pod()
    assert old_pod is not None
    old_ip = old_pod.status.pod_ip

    start = rig.ctx.now()
    rig.edit("sbx", lambda s: setattr(s.spec, "paused", True))
    rig.until(lambda: rig.phase() == "Paused")
    assert rig.cond("SandboxPaused") == ("False", "Pending")
    assert rig.cond("Ready") == ("False", "PodReady")
    # The Paused phase's reconcile, once that status is stored, deletes the pod.
    assert (pod := rig.pod()) is not None and pod.metadata.deletion_timestamp is None
    rig.until(lambda: (p := rig.pod()) is not None and p.metadata.deletion_timestamp is not None)
    marked = rig.pod()
    assert marked is not None
    assert marked.metadata.annotations[ANN_GRACE_SECONDS] == "5"
    gone = rig.until(lambda: rig.pod() is None)
    assert gone - start >= 5.0
    rig.until(lambda: rig.cond("SandboxPaused") == ("True", "StopPauseSucceed"))

    rig.edit("sbx", lambda s: setattr(s.spec, "paused", False))
    rig.until(lambda: rig.phase() == "Resuming")
    assert rig.cond("SandboxResumed") == ("False", "CreatePod")
    rig.until(lambda: rig.phase() == "Running")
    assert rig.cond("SandboxResumed") == ("True", "ResumePod")
    assert rig.cond("RuntimeInitialized") == ("False", "Pending")
    assert rig.cond("Ready") == ("False", "PodReady")
    assert rig.cond("SandboxPaused") is None

    rig.until(rig.ready)
    assert rig.cond("RuntimeInitialized") == ("True", "Succeeded")
    new_pod = rig.pod()
    assert new_pod is not None and new_pod.metadata.uid != old_pod.metadata.uid
    assert new_pod.status.pod_ip != old_ip
    assert rig.runtime.calls == [("sbx", new_pod.status.pod_ip)]


def test_a_resume_asked_for_while_the_pause_stops_the_pod_waits_for_the_pause_to_settle() -> None:
    """Reference §4: a Paused sandbox resumes once its ``SandboxPaused`` condition is True
    and ``spec.paused`` is false. ``spec.paused`` cleared while the pause's pod is still
    terminating: the pause first settles (a status of its own, Paused with
    ``SandboxPaused=True``), and only the next reconcile goes to Resuming."""
    rig = Rig()
    rig.create()
    rig.until(rig.ready)
    rig.edit("sbx", lambda s: setattr(s.spec, "paused", True))
    rig.until(lambda: (p := rig.pod()) is not None and p.metadata.deletion_timestamp is not None)
    rig.edit("sbx", lambda s: setattr(s.spec, "paused", False))
    seen: list[tuple[str | None, tuple[str, str] | None]] = []
    env = rig.ctx.env
    while rig.phase() != "Resuming":
        assert env.now < 60, "never resumed"
        env.step()
        now = (rig.phase(), rig.cond("SandboxPaused"))
        if not seen or seen[-1] != now:
            seen.append(now)
    assert seen == [
        ("Paused", ("False", "Pending")),
        ("Paused", ("True", "StopPauseSucceed")),
        ("Resuming", ("True", "StopPauseSucceed")),
    ]
    rig.until(rig.ready)


def test_failed_reinit_leaves_the_resumed_sandbox_not_ready() -> None:
    """A re-init that fails marks RuntimeInitialized False/Failed and keeps Ready False."""
    rig = Rig(fail=True)
    rig.create(annotations={keys.ANN_INIT_RUNTIME_REQUEST: '{"envVars":{},"accessToken":"t"}'})
    rig.until(rig.ready)
    rig.edit("sbx", lambda s: setattr(s.spec, "paused", True))
    rig.until(lambda: rig.cond("SandboxPaused") == ("True", "StopPauseSucceed"))
    rig.edit("sbx", lambda s: setattr(s.spec, "paused", False))
    rig.until(lambda: rig.cond("RuntimeInitialized") == ("False", "Failed"))
    rig.run(30)
    assert rig.phase() == "Running"
    assert rig.cond("Ready") == ("False", "PodReady")
    assert len(rig.runtime.calls) == 1


INIT_REQUEST = {keys.ANN_INIT_RUNTIME_REQUEST: '{"envVars":{},"accessToken":"t"}'}


def _set_paused(rig: Rig, paused: bool) -> None:
    rig.edit("sbx", lambda s: setattr(s.spec, "paused", paused))


def _pod_uid(rig: Rig) -> str | None:
    pod = rig.pod()
    return pod.metadata.uid if pod is not None else None


def _resume_with_reinit_in_flight(rig: Rig, first: tuple[float, bool]) -> str | None:
    """Pause and resume the ready sandbox, its re-init taking ``first``; pause it again while
    that re-init is in flight and wait until the pod is gone. Return the first pod's UID."""
    rig.create(annotations=INIT_REQUEST)
    rig.until(rig.ready)
    _set_paused(rig, True)
    rig.until(lambda: rig.cond("SandboxPaused") == ("True", "StopPauseSucceed"))
    rig.runtime.plan = [first]
    _set_paused(rig, False)
    rig.until(lambda: len(rig.runtime.calls) == 1)
    first_pod = _pod_uid(rig)
    _set_paused(rig, True)
    rig.until(lambda: rig.cond("SandboxPaused") == ("True", "StopPauseSucceed"))
    assert rig.runtime.ended == 0 and rig.pod() is None
    return first_pod


@pytest.mark.parametrize("first_fails", [True, False], ids=["first-failed", "first-ok"])
def test_a_reinit_that_ends_after_its_pod_went_does_not_decide_the_next_resume(
    first_fails: bool,
) -> None:
    """Resume #1's re-init answers after a pause took its pod; resume #2's pod gets its own.

    The initialised state is per pod (reference §4 step 7: wait for the pod
    to be Ready, then re-init its runtime). The late answer belongs to a pod
    that is gone: failed, it must not mark the new pod's runtime Failed (the
    sandbox would never become Ready, with no ``/init`` ever sent to it);
    successful, it must not make the new pod Ready uninitialised.
    """
    rig = Rig()
    first_pod = _resume_with_reinit_in_flight(rig, (30.0, first_fails))
    rig.until(lambda: rig.runtime.ended == 1)
    rig.run(1)
    _set_paused(rig, False)
    rig.until(rig.ready)
    assert rig.cond("RuntimeInitialized") == ("True", "Succeeded")
    new_pod = rig.pod()
    assert new_pod is not None and new_pod.metadata.uid != first_pod
    assert len(rig.runtime.calls) == 2
    assert rig.runtime.calls[1] == ("sbx", new_pod.status.pod_ip)


@pytest.mark.parametrize("first_fails", [True, False], ids=["first-failed", "first-ok"])
def test_a_reinit_still_in_flight_for_a_gone_pod_neither_holds_nor_decides_the_new_pod(
    first_fails: bool,
) -> None:
    """Resume #2's pod is Ready while resume #1's re-init (of a pod now gone) still runs.

    The new pod gets a re-init of its own at once and is Ready when it
    answers; the old re-init's answer, when it comes, changes nothing.
    """
    rig = Rig()
    _resume_with_reinit_in_flight(rig, (120.0, first_fails))
    _set_paused(rig, False)
    ready_at = rig.until(rig.ready)
    assert rig.runtime.ended == 1  # the new pod's; the first is still in flight
    assert ready_at < 100
    new_pod = rig.pod()
    assert new_pod is not None
    assert rig.runtime.calls[1] == ("sbx", new_pod.status.pod_ip)
    rig.until(lambda: rig.runtime.ended == 2)
    rig.run(5)
    assert rig.ready()
    assert rig.cond("RuntimeInitialized") == ("True", "Succeeded")
    assert len(rig.runtime.calls) == 2


def test_resume_without_init_request_is_ready_without_reinit() -> None:
    """A sandbox with no stored init request becomes Ready on resume without a re-init call."""
    rig = Rig()
    rig.create()
    rig.until(rig.ready)
    rig.edit("sbx", lambda s: setattr(s.spec, "paused", True))
    rig.until(lambda: rig.cond("SandboxPaused") == ("True", "StopPauseSucceed"))
    rig.edit("sbx", lambda s: setattr(s.spec, "paused", False))
    rig.until(rig.ready)
    assert rig.cond("RuntimeInitialized") == ("True", "Succeeded")
    assert rig.runtime.calls == []


def test_shutdown_time_deletes_the_sandbox_and_its_pod() -> None:
    """At shutdownTime the controller deletes the Sandbox; garbage collection takes the pod."""
    rig = Rig()
    rig.create(shutdown_time=rig.ctx.now_dt() + timedelta(seconds=30))
    rig.until(rig.ready)
    rig.ctx.env.run(until=29.9)
    assert rig.sbx() is not None
    gone = rig.until(lambda: rig.sbx() is None)
    assert 30 <= gone <= 30.1
    rig.until(lambda: rig.pod() is None)
    assert rig.ctx.log.of_kind("sandbox.shutdown")


def test_pause_time_auto_pauses() -> None:
    """At pauseTime the controller sets spec.paused and the sandbox pauses."""
    rig = Rig()
    rig.create(pause_time=rig.ctx.now_dt() + timedelta(seconds=20))
    rig.until(rig.ready)
    t = rig.until(lambda: bool(rig.sbx().spec.paused))  # type: ignore[union-attr]
    assert 20 <= t <= 20.1
    rig.until(lambda: rig.cond("SandboxPaused") == ("True", "StopPauseSucceed"))
    assert rig.phase() == "Paused" and rig.pod() is None


def test_an_auto_pause_with_paused_retention_moves_both_end_times_to_now_plus_it() -> None:
    """Reference §4 step 6: at pauseTime a sandbox with the paused-retention annotation and a
    shutdownTime is paused with ``shutdownTime = pauseTime = now + retention``: it is kept
    paused for the retention, not until its old shutdownTime."""
    rig = Rig()
    start = rig.ctx.now_dt()
    rig.create(
        annotations={keys.ANN_RESERVE_PAUSED_DURATION: "1h"},
        pause_time=start + timedelta(seconds=20),
        shutdown_time=start + timedelta(seconds=120),
    )
    rig.until(rig.ready)
    rig.until(lambda: bool(rig.sbx().spec.paused))  # type: ignore[union-attr]
    spec = rig.sbx().spec  # type: ignore[union-attr]
    end = start + timedelta(seconds=20 + 3600)
    assert spec.shutdown_time == end and spec.pause_time == end
    rig.ctx.env.run(until=200)
    assert rig.phase() == "Paused"


def test_an_auto_pause_on_a_stale_cache_loses_to_a_later_pause_time() -> None:
    """Reference §4 step 6: the auto-pause is a patch under an optimistic lock. The pauseTime
    is moved on half a second before it comes, and the controller's cache shows that only
    2 s later: its pause, decided on the stale copy, meets a 409, and once the cache has
    caught up nothing is due. The sandbox runs on with the new pauseTime."""
    rig = Rig()
    start = rig.ctx.now_dt()
    rig.create(pause_time=start + timedelta(seconds=20))
    rig.until(rig.ready)
    rig.ctx.env.run(until=19.5)
    rig.ctx.faults.inject(
        kind="watch_lag", latency="2s", selector={"informer": "agent-sandbox-controller"}
    )
    later = start + timedelta(seconds=120)
    rig.edit("sbx", lambda s: setattr(s.spec, "pause_time", later))
    rig.ctx.env.run(until=40)
    sbx = rig.sbx()
    assert sbx is not None and not sbx.spec.paused
    assert sbx.spec.pause_time == later
    assert rig.phase() == "Running"
    assert not rig.ctx.log.of_kind("sandbox.auto_pause")


def test_inplace_image_update_goes_through_inplace_updating_to_succeeded() -> None:
    """A new template image is applied to the pod in place: InplaceUpdating, then Succeeded."""
    rig = Rig()
    rig.create()
    rig.until(rig.ready)
    pod_uid = rig.pod().metadata.uid  # type: ignore[union-attr]

    def new_image(s: Sandbox) -> None:
        assert s.spec.template is not None
        s.spec.template["spec"]["containers"][0]["image"] = IMAGE_V2

    rig.edit("sbx", new_image)
    rig.until(lambda: rig.cond("InplaceUpdate") == ("False", "InplaceUpdating"))
    assert rig.cond("Ready") == ("False", "InplaceUpdating")
    rig.until(lambda: rig.cond("InplaceUpdate") == ("True", "Succeeded"))
    assert rig.ready()
    pod = rig.pod()
    assert pod is not None and pod.metadata.uid == pod_uid
    assert pod.spec["containers"][0]["image"] == IMAGE_V2
    # Succeeded only once the kubelet runs the new image (Ready for the pod's new generation).
    assert rig.ctx.log.of_kind("kubelet.inplace_updated")
    assert pod.status.container_statuses[0].image == normalize_image(IMAGE_V2)
    sbx = rig.sbx()
    assert sbx is not None and sbx.status.observed_generation == sbx.metadata.generation


def test_template_label_change_patches_pod_labels_without_inplace_update() -> None:
    """A pod-template label change reaches the pod's labels with no InplaceUpdate condition."""
    rig = Rig()
    rig.create()
    rig.until(rig.ready)

    def relabel(s: Sandbox) -> None:
        assert s.spec.template is not None
        s.spec.template["metadata"]["labels"][keys.LABEL_OWNER] = "user-1"

    rig.edit("sbx", relabel)
    rig.until(lambda: rig.pod().metadata.labels.get(keys.LABEL_OWNER) == "user-1")  # type: ignore[union-attr]
    rig.run(10)
    assert rig.cond("InplaceUpdate") is None
    assert rig.ready()


def test_image_pull_failure_keeps_the_sandbox_pending_until_cleared() -> None:
    """While pulls fail the sandbox stays Pending; clearing the fault lets it run."""
    rig = Rig()
    fault = rig.ctx.faults.inject(kind="image_pull_failure")
    rig.create()
    rig.run(60)
    assert rig.phase() == "Pending"
    pod = rig.pod()
    # The kubelet says it where a real one does: in the container's waiting state.
    assert pod is not None and pod.status.container_statuses[0].state.waiting is not None
    assert pod.status.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
    rig.ctx.faults.clear(fault.id)
    rig.until(rig.ready)


def test_pod_start_failure_reports_start_container_failed() -> None:
    """A container that cannot start makes the sandbox Ready False/StartContainerFailed."""
    rig = Rig()
    rig.ctx.faults.inject(kind="pod_start_failure", selector={"template": "base"}, count=1)
    rig.create()
    rig.until(lambda: rig.cond("Ready") == ("False", "StartContainerFailed"))
    assert rig.phase() == "Running"
    rig.until(rig.ready)


def test_node_loss_fails_the_sandboxes_on_the_node() -> None:
    """Losing a node fails its pods and, with them, their sandboxes."""
    rig = Rig()
    rig.create("s1")
    rig.create("s2")
    rig.create("s3")
    rig.until(lambda: all(rig.ready(n) for n in ("s1", "s2", "s3")))
    rig.ctx.faults.inject(kind="node_loss", selector={"node": "a"})
    rig.run(2)
    for name in ("s1", "s2", "s3"):
        node = rig.pod(name).spec["nodeName"]  # type: ignore[union-attr]
        expected = "Failed" if node == "a" else "Running"
        assert rig.phase(name) == expected
        if expected == "Failed":
            assert rig.sbx(name).status.message == "NodeLost"  # type: ignore[union-attr]
    # A Failed sandbox is terminal: nothing more happens to it.
    assert {rig.phase(n) for n in ("s1", "s2", "s3")} >= {"Failed"}


def test_deleted_pod_of_a_running_sandbox_fails_it() -> None:
    """A Running sandbox whose pod disappears fails with "Pod Not Found"."""
    rig = Rig()
    rig.create()
    rig.until(rig.ready)
    # Deleted as one the pod-delete webhook lets through (it refuses the user).
    rig.api.commit_delete("Pod", "default", "sbx", requester=GARBAGE_COLLECTOR)
    rig.until(lambda: rig.phase() == "Failed")
    assert rig.sbx().status.message == "Pod Not Found"  # type: ignore[union-attr]


def test_a_running_sandbox_whose_pod_is_terminating_fails_at_once() -> None:
    """Reference §4: a Running sandbox whose pod is missing *or terminating* is Failed ("Pod
    Not Found"): it fails when its pod's deletion starts, not when the pod is finally gone
    (here 30 s of grace later)."""
    rig = Rig()
    rig.create()
    rig.until(rig.ready)

    def graceful(p: Pod) -> Pod:
        new = p.model_copy(deep=True)
        new.metadata.annotations[ANN_GRACE_SECONDS] = "30"
        return new

    pod = rig.pod()
    assert pod is not None
    rig.api.commit_update(graceful(pod))
    rig.api.commit_delete("Pod", "default", "sbx", requester=GARBAGE_COLLECTOR)
    deleted = rig.ctx.now()
    failed = rig.until(lambda: rig.phase() == "Failed")
    assert failed - deleted < 1
    assert rig.pod() is not None  # still terminating
    assert rig.sbx().status.message == "Pod Not Found"  # type: ignore[union-attr]


def test_a_failed_sandbox_is_not_deleted_at_its_shutdown_time() -> None:
    """Reference §4 step 4: Failed (and Succeeded) are terminal, and the reconcile returns
    before the timers: the controller does not delete a Failed sandbox when its shutdownTime
    passes (a claimed one stays until someone deletes it; a pool's set deletes its own)."""
    rig = Rig()
    rig.create(shutdown_time=rig.ctx.now_dt() + timedelta(seconds=30))
    rig.until(rig.ready)
    rig.api.commit_delete("Pod", "default", "sbx", requester=GARBAGE_COLLECTOR)
    rig.until(lambda: rig.phase() == "Failed")
    rig.ctx.env.run(until=90)
    assert rig.phase() == "Failed"
    assert not rig.ctx.log.of_kind("sandbox.shutdown")


def ready_condition(rig: Rig, name: str = "sbx") -> tuple[str, str, str]:
    """The sandbox's Ready condition as (status, reason, message); it must have one."""
    sbx = rig.sbx(name)
    assert sbx is not None
    cond = find_condition(sbx.status.conditions, "Ready")
    assert cond is not None
    return cond.status, cond.reason, cond.message


def refuse_pod_creates(rig: Rig, seconds: float) -> None:
    rig.ctx.faults.inject(
        kind="api_error", code=500, selector={"verb": "create", "kind": "Pod"}, duration=seconds
    )


def test_a_pod_the_api_server_refuses_leaves_the_sandbox_pending_with_pod_create_failed() -> None:
    """§4 steps 7-8 and §1.2: "" becomes Pending and the status is written even when the pod
    create fails: Ready False/PodCreateFailed with the error as message, derived state
    creating/ResourcePending (§1.3 row 3). The create is retried with back-off; once the API
    server takes it the sandbox starts and the failure condition is gone."""
    rig = Rig()
    refuse_pod_creates(rig, 10)
    rig.create()
    rig.run(5)
    assert rig.pod() is None
    assert rig.phase() == "Pending"
    assert ready_condition(rig) == ("False", "PodCreateFailed", "injected 500 on create Pod")
    sbx = rig.sbx()
    assert sbx is not None
    assert sandbox_state(sbx, rig.ctx.now_dt()) == (SandboxState.CREATING, "ResourcePending")
    # One status write: the next failures, with the same message, change nothing.
    assert [e.detail for e in rig.ctx.log.of_kind("sandbox.phase")] == ["default/sbx None->Pending"]
    errors = rig.ctx.log.of_kind("sandbox.reconcile_error")
    assert errors and all(e.detail == "default/sbx 500 InternalError" for e in errors)
    # Back-off doubles from 5 ms: about a dozen attempts in 5 s, not thousands.
    assert 5 <= len(errors) <= 15
    rig.until(rig.ready, limit=60)
    sbx = rig.sbx()
    assert sbx is not None
    assert [c.reason for c in sbx.status.conditions if c.type == "Ready"] == ["PodReady"]


def test_failing_keys_back_off_each_on_its_own_with_no_shared_bucket() -> None:
    """``docs/fidelity.md``, SandboxSet controller (error back-off): each failing key backs
    off on its own, 5 ms doubling; there is no token bucket shared by all keys (client-go's
    default limiter adds one of 10 per second, burst 100). 150 sandboxes whose pod creates
    all fail for 3 s are each retried about ten times, some 1,500 errors in that time, where
    such a bucket would allow about 130."""
    cluster = Cluster(seed=2, nodes=20)
    cluster.inject("api_error", code=500, selector={"verb": "create", "kind": "Pod"}, duration=3)
    cluster.apply(pool_yaml(replicas=150, cpu="10m", memory="16Mi"))
    cluster.advance(3)
    errors = cluster.log.of_kind("sandbox.reconcile_error")
    per_key = Counter(e.detail.split()[0] for e in errors)
    assert len(per_key) == 150
    assert min(per_key.values()) >= 8
    assert len(errors) > 1000


def test_a_created_pod_clears_pod_create_failed_before_it_runs() -> None:
    """Once the pod exists the sandbox no longer says its create failed: Pending, no Ready
    condition until the pod runs (as a sandbox whose first create succeeded)."""
    rig = Rig(latencies={"image.pull": 30.0})
    refuse_pod_creates(rig, 1)
    rig.create()
    rig.until(lambda: rig.pod() is not None, limit=60)
    rig.run(1)
    assert rig.phase() == "Pending"
    assert rig.cond("Ready") is None


def test_a_resume_whose_pod_cannot_be_created_is_written_as_resuming() -> None:
    """A resume's pod create that fails still records the resume: phase Resuming with Ready
    False/PodCreateFailed; the create is retried and the sandbox comes back Running."""
    rig = Rig()
    rig.create()
    rig.until(rig.ready)
    rig.edit("sbx", lambda s: setattr(s.spec, "paused", True))
    rig.until(lambda: rig.cond("SandboxPaused") == ("True", "StopPauseSucceed"))
    refuse_pod_creates(rig, 5)
    rig.edit("sbx", lambda s: setattr(s.spec, "paused", False))
    rig.run(2)
    assert rig.phase() == "Resuming"
    assert ready_condition(rig) == ("False", "PodCreateFailed", "injected 500 on create Pod")
    rig.until(lambda: rig.phase() == "Running", limit=60)
    assert rig.pod() is not None


def test_deleting_the_sandbox_garbage_collects_the_pod() -> None:
    """Deleting a Sandbox takes its pod with it (graceful, through the kubelet)."""
    rig = Rig()
    rig.create()
    rig.until(rig.ready)
    rig.api.commit_delete("Sandbox", "default", "sbx")
    rig.until(lambda: rig.pod() is None)


def test_sandbox_finalizer_is_removed_once_the_pod_is_gone() -> None:
    """A Sandbox held by the sandbox finalizer is released after its pod is deleted."""
    rig = Rig()
    rig.create()
    rig.until(rig.ready)
    rig.edit("sbx", lambda s: s.metadata.finalizers.append(keys.SANDBOX_FINALIZER))
    rig.api.commit_delete("Sandbox", "default", "sbx")
    assert rig.sbx() is not None
    rig.until(lambda: rig.sbx() is None and rig.pod() is None)


def test_a_status_write_that_changes_nothing_is_seen_by_the_cache_that_holds_it() -> None:
    """The controller's cache lags 75 s (longer than the 1 min expectation), and status
    patches take 1 s from the moment the first one (Pending) has landed.

    The pod's ADDED event comes after the expectation of the Pending write has lapsed,
    with the cached sandbox still without a phase: the controller writes Pending again,
    which changes nothing (same resourceVersion), and the event of the first write comes
    while that patch is under way. The cached sandbox is then at the written
    resourceVersion, which meets the expectation (upstream's ``IsSatisfied`` compares the
    cached copy): the sandbox goes Running when the pod's Running event comes. It used to
    wait for an event at that resourceVersion that had come already, and stayed Pending
    for ever, the faults cleared or not.
    """
    rig = Rig()
    rig.ctx.faults.inject(
        kind="watch_lag", selector={"informer": "agent-sandbox-controller"}, latency="fixed(75s)"
    )
    rig.create()
    rig.until(lambda: rig.phase() == "Pending")
    rig.ctx.faults.inject(
        kind="api_latency", selector={"kind": "Sandbox", "verb": "patch"}, latency="fixed(1s)"
    )
    rig.until(rig.ready, limit=200)
    phases = [(round(e.time), e.detail) for e in rig.ctx.log.of_kind("sandbox.phase")]
    assert phases == [
        (75, "default/sbx None->Pending"),
        (151, "default/sbx None->Pending"),  # the stale cache's write: changes nothing
        (157, "default/sbx Pending->Running"),
    ]


def test_controller_stall_delays_progress_by_exactly_the_stall() -> None:
    """A stalled Sandbox controller shifts the sandbox's whole start-up by the stall."""

    def ready_at(stall: float | None) -> float:
        rig = Rig()
        if stall is not None:
            rig.ctx.faults.inject(
                kind="controller_stall", selector={"controller": "sandbox"}, duration=stall
            )
        rig.create()
        return rig.until(rig.ready)

    base = ready_at(None)
    assert ready_at(10.0) == pytest.approx(base + 10.0)


def test_same_seed_same_log() -> None:
    """Two runs with the same seed and calls log the same events."""

    def run() -> str:
        rig = Rig(seed=3, latencies={"pod.create": "uniform(0.1s, 0.5s)", "watch.lag": "exp(20ms)"})
        for i in range(6):
            rig.create(f"s{i}")
        rig.run(20)
        rig.edit("s0", lambda s: setattr(s.spec, "paused", True))
        rig.run(20)
        return rig.ctx.log.text()

    assert run() == run()


def test_a_key_that_keeps_failing_backs_off_at_the_cap_for_ever() -> None:
    """5 ms doubling to 30 s, and 30 s still after 1,024 failures (8.5 hours of a missing
    SandboxTemplate): ``2**1024`` is no float, and the run must not end in OverflowError."""
    from simulator.cluster import Cluster
    from simulator.controllers.base import BACKOFF_MAX_S

    controller = Cluster(seed=1).sandbox_controller
    delays = [controller._backoff(("default", "s")) for _ in range(5_000)]

    assert delays[:3] == [0.005, 0.01, 0.02]
    assert delays[-1] == BACKOFF_MAX_S and max(delays) == BACKOFF_MAX_S


def test_a_status_write_answered_409_backs_off_per_key() -> None:
    """A status write that keeps meeting 409 backs the key off, 5 ms doubling to 30 s, as
    every error of a reconcile does (controller-runtime's ``AddRateLimited``); the sandbox
    gets its status at the first retry after the conflicts end."""
    rig = Rig()
    fault = rig.ctx.faults.inject(kind="api_conflict", selector={"kind": "Sandbox"}, duration=60)
    rig.create()
    rig.run(60)
    errors = [e.time for e in rig.ctx.log if e.kind == "sandbox.reconcile_error"]

    assert 10 <= fault.fired <= 25
    assert len(errors) == fault.fired
    assert errors[-1] - errors[-2] > 10
    assert rig.phase() is None
    rig.until(rig.ready, limit=100)


@pytest.mark.parametrize(
    "name", ["sandbox_controller", "sandboxset_controller", "sandboxclaim_controller"]
)
def test_a_conflict_backs_off_as_any_error_does(name: str) -> None:
    """Every controller answers a 409 with the key's next back-off delay (5 ms, 10 ms,
    20 ms, ...): only ``RequeueAfter`` bypasses the rate limiter upstream, and a conflict
    is an error."""
    from simulator.cluster import Cluster

    controller = getattr(Cluster(seed=1), name)
    conflict = ApiError(409, "Conflict", "the object has been modified")
    delays = [controller._error_delay(("default", "s"), conflict) for _ in range(3)]

    assert delays == [0.005, 0.01, 0.02]


def orphan_delete(seed: int, *, held: bool) -> str:
    """Delete a running Sandbox with ``Orphan`` propagation (``held``: the ``SandboxFinalizer``
    on it first); what became of its pod 10 s after the Sandbox went."""
    rig = Rig(seed=seed, latencies={"watch.lag": "exp(20ms)"})
    rig.create()
    rig.until(rig.ready)
    if held:
        rig.edit("sbx", lambda s: s.metadata.finalizers.append(keys.SANDBOX_FINALIZER))
    rig.api.commit_delete("Sandbox", "default", "sbx", propagation="Orphan")
    rig.until(lambda: rig.sbx() is None, limit=rig.ctx.now() + 10)
    rig.run(10)
    pod = rig.pod()
    if pod is None or pod.metadata.deletion_timestamp is not None:
        return "deleted"
    if pod.metadata.owner_references or pod.status.phase != "Running":
        return f"owned={pod.metadata.owner_references} phase={pod.status.phase}"
    return "kept"


def test_a_sandbox_deleted_with_orphan_propagation_leaves_its_pod_running() -> None:
    """``kubectl delete --cascade=orphan``: the garbage collector removes the Sandbox's
    reference from its pod, which stays and runs, whatever the controller's cache shows when
    it meets the deletion (the pod still owned, or already orphaned: the watch lag decides).
    Without a ``SandboxFinalizer`` the pod is the garbage collector's to keep or delete, not
    ``EnsureSandboxTerminated``'s. The same outcome for every seed."""
    outcomes = Counter(orphan_delete(seed, held=False) for seed in range(40))

    assert outcomes == {"kept": 40}


def test_a_held_sandbox_deleted_with_orphan_propagation_goes_and_leaves_its_pod() -> None:
    """A Sandbox the ``SandboxFinalizer`` holds, deleted with ``Orphan`` propagation: the
    garbage collector orphans the pod, the controller then finds no pod of its own and drops
    the finalizer; the Sandbox goes, the pod stays, for every seed."""
    outcomes = Counter(orphan_delete(seed, held=True) for seed in range(20))

    assert outcomes == {"kept": 20}


def test_the_pods_of_one_pool_revision_share_one_template_hash_entry() -> None:
    """The pod-template hash is kept once per pool revision, not once per pod: after 10 and
    after 100 pool pods of one revision, the controller holds one hash, and the pods are
    labelled with the revision's hash."""
    from pytest_kruise_agents.claiming.modification import pod_template_revision
    from simulator.cluster import Cluster
    from tests.cluster.conftest import pool_yaml

    cluster = Cluster(seed=1, log=False, records_limit=1)
    cluster.apply(pool_yaml(replicas=2))
    cluster.wait_for_pool("base")
    hashes = cluster.sandbox_controller._template_hashes

    def cycles(n: int) -> int:
        for _ in range(n):
            sbx = cluster.create_sandbox("base", timeout=30)
            cluster.kill(cluster.sandbox_id(sbx))
            cluster.wait_for_pool("base")
        return len(hashes)

    assert cycles(8) == 1
    assert cycles(90) == 1
    sbs = cluster.world.api.peek("SandboxSet", "default", "base")
    assert sbs is not None
    template = sbs.spec.template
    assert template is not None
    for pod in cluster.world.api.peek_list("Pod"):
        assert pod.metadata.labels[keys.LABEL_POD_TEMPLATE_HASH] == pod_template_revision(template)
