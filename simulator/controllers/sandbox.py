"""The Sandbox controller (reference §4): one pod per sandbox, phases, timers, pause and resume.

Event-driven from the agent-sandbox-controller's cache: a Sandbox event
enqueues the sandbox, a Pod event enqueues the sandbox that controls the pod
(pod name == sandbox name). ``profile.sandbox_workers`` workers reconcile, in
upstream's order:

1. deletion (``deletionTimestamp``): delete the pod, then drop the
   ``agents.kruise.io/sandbox`` finalizer if someone put it there;
2. terminal phases (Failed, Succeeded) stop here, before the timers;
3. timers (:func:`~pytest_kruise_agents.claiming.timeouts.timer_action`):
   delete the Sandbox at ``shutdownTime`` (its pod goes with it by garbage
   collection), auto-pause at ``pauseTime`` (an optimistic-lock patch of
   ``spec.paused``), or requeue for the next timer;
4. the phase machine: ``""`` → Pending (creates the pod; a create that fails
   is written as Ready ``False/PodCreateFailed`` before its error backs the
   key off) → Running (pod Running; Ready follows the pod) → Paused (the pod is deleted with the pause
   grace; ``SandboxPaused`` becomes True when it is gone) → Resuming (the pod is
   recreated) → Running with ``RuntimeInitialized=False/Pending`` until the
   runtime re-init (``runtime.reinit``) of that very pod is done, and only
   then Ready (a re-init answering for a pod that has gone meanwhile is
   dropped: ``sandbox.reinit_stale``). In-place
   updates of the first container's image or CPU (a pod update the kubelet
   carries out: a restart for an image, a resize for CPU) go through
   ``InplaceUpdate=False/InplaceUpdating`` to ``True/Succeeded``, or to
   ``False/Failed`` when the API server refuses the pod update (422) or the
   kubelet finds the resize ``Infeasible`` (once the new image of the same
   update runs, if it has one). A running sandbox asked to recycle
   (``agents.kruise.io/cleanup``) goes to ``Recycling`` and back to its pool.

The status is written once per reconcile that changes it, as a merge patch of
the whole status carrying ``observedGeneration``; a reconcile that changes
nothing writes nothing. Like upstream, the controller records an expectation
after each of its own writes and does not act on a sandbox or pod until its
cache has caught up with that write.

Only the open-source ``Stop`` pause strategy is modelled; PVCs, upgrades,
the ``hash-immutable-part`` annotation and the priority pod-creation rate
limiter (feature-gated off upstream) are not.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.copying import same_fields, shallow_copy
from pytest_kruise_agents.api.meta import (
    Condition,
    ObjectMeta,
    OwnerReference,
    find_condition,
    set_condition,
)
from pytest_kruise_agents.api.pod import (
    Pod,
    first_container_cpu,
    first_container_image,
    normalize_image,
    set_first_container_cpu,
    set_first_container_image,
)
from pytest_kruise_agents.api.podfields import known_pod_spec
from pytest_kruise_agents.api.quantity import cpu_millis
from pytest_kruise_agents.api.sandbox import (
    ConditionType,
    PodInfo,
    Sandbox,
    SandboxPhase,
    SandboxStatus,
)
from pytest_kruise_agents.claiming.errors import ClaimError
from pytest_kruise_agents.claiming.modification import (
    pod_template_revision,
    sandboxset_owner_reference,
)
from pytest_kruise_agents.claiming.recycle import (
    COND_RECYCLING,
    RECYCLE_FAILED,
    RECYCLE_REJECTED,
    RECYCLE_STARTED,
    RECYCLE_SUCCEEDED,
    RECYCLE_TIMEOUT,
    recycle_ended,
    recycle_refusal,
    recycle_requested,
    recycle_timing,
    reset_for_recycle,
    retain_on_failure,
)
from pytest_kruise_agents.claiming.timeouts import later, timer_action
from simulator.apiserver import ORPHAN, ApiError
from simulator.controllers.base import Reconciler
from simulator.nodes import ANN_GRACE_SECONDS, POD_FINALIZER
from simulator.world import World

__all__ = ["STALL_NAME", "ReInitRuntime", "SandboxController"]

STALL_NAME = "sandbox"
"""The controller's name for ``controller_stall`` faults."""

Op = Generator[simpy.Event, Any, Any]
SbxKey = tuple[str, str]

_UNSEEN_RV = sys.maxsize
"""Expectation RV of an object deleted outright: only its DELETED event satisfies it."""

_TEMPLATE_HASHES_MAX = 1024
"""Pod templates whose hash is kept (cleared when full: a miss costs one hash)."""

_TERMINAL_POD = {"Failed": SandboxPhase.FAILED, "Succeeded": SandboxPhase.SUCCEEDED}

# Ready condition reasons (reference §1.2).
_READY_POD = "PodReady"
_READY_INPLACE = "InplaceUpdating"
_READY_START_FAILED = "StartContainerFailed"
_READY_CREATE_FAILED = "PodCreateFailed"


class ReInitRuntime(Protocol):
    """What the controller needs of the agent runtime: replay the init request after a resume.

    ``reinit(sbx)`` is a SimPy sub-process; it raises a
    :class:`~pytest_kruise_agents.claiming.errors.ClaimError` on failure.
    """

    def reinit(self, sbx: Sandbox) -> Generator[simpy.Event, Any, Any]:
        """Replay the sandbox's ``init-runtime-request`` and re-mount its CSI volumes."""
        ...


@dataclass(slots=True)
class _Expectation:
    """An own write the cache has not shown yet: object ``uid`` at ``rv`` or later."""

    uid: str
    rv: int
    deadline: float


def _rv(obj: Any) -> int:
    return int(obj.metadata.resource_version or 0)


def _pod_ready(pod: Pod) -> Condition | None:
    return find_condition(pod.status.conditions, "Ready")


def _pod_image(pod: Pod) -> str | None:
    containers = pod.spec.get("containers") or []
    if not containers:
        return None
    image = containers[0].get("image")
    return str(image) if image is not None else None


def _image_pending(pod: Pod) -> bool:
    """Whether the pod's first container has yet to run the image its spec names.

    The kubelet reports the image of the container's latest instance: the old
    one while the new image is pulled (or fails to be).
    """
    image = _pod_image(pod)
    statuses = pod.status.container_statuses
    if image is None or not statuses:
        return False
    return statuses[0].image != normalize_image(image)


def _cpu_change(template: dict[str, Any], pod: Pod) -> tuple[str | None, str | None] | None:
    """The CPU (request, limit) to give the pod in place, or ``None`` when it has it already.

    Only the values the sandbox's first container sets count; they are
    compared as quantities (``"1"`` is ``"1000m"``).
    """
    wanted = (template.get("spec") or {}).get("containers")
    running = pod.spec.get("containers")
    if running is wanted:
        return None  # the pod was made from this very template (stored objects never change)
    if wanted and running and wanted[0].get("resources") == running[0].get("resources"):
        return None
    want = first_container_cpu(template)
    if want == (None, None):
        return None
    have = first_container_cpu({"spec": pod.spec})
    if want == have:
        return None
    for w, h in zip(want, have, strict=True):
        if w is None:
            continue
        try:
            if h is None or cpu_millis(w) != cpu_millis(h):
                return want
        except ValueError:
            return want
    return None


def _controls(sbx: Sandbox, pod: Pod) -> bool:
    ref = pod.metadata.controller_ref()
    return ref is not None and ref.kind == "Sandbox" and ref.uid == sbx.metadata.uid


class SandboxController(Reconciler[SbxKey]):
    """Event-driven Sandbox reconciler (``--sandbox-workers`` workers); see the module docstring.

    :param world: the cluster wiring (controller cache and client).
    :param runtime: the agent runtime used to re-initialise resumed sandboxes.
    """

    stall_name = STALL_NAME

    def __init__(self, world: World, runtime: ReInitRuntime) -> None:
        super().__init__(world.ctx)
        self.world = world
        self.api = world.api
        self.cache = world.controller_cache
        # The cached Sandboxes and Pods by key: every reconcile reads both.
        self._sandboxes = self.cache.objects("Sandbox")
        self._pods = self.cache.objects("Pod")
        self.client = world.controller_client.for_component(self.stall_name)
        self.runtime = runtime
        self._sbx_expect: dict[SbxKey, _Expectation] = {}
        self._pod_expect: dict[SbxKey, _Expectation] = {}
        # Runtime re-inits by the pod they are for (its UID): the runtime lives in
        # the pod, so a re-init speaks for that pod only, and a resume's new pod
        # starts uninitialised whatever became of an earlier pod's re-init.
        self._reiniting: dict[SbxKey, str] = {}
        """Sandbox → UID of the pod whose re-init was started last and is in flight."""
        self._reinit_done: dict[SbxKey, tuple[str, bool, str]] = {}
        """Sandbox → (pod UID, ok, message) of a re-init answered for a pod still there."""
        self._unsupported: dict[SbxKey, None] = {}
        self._missing_template: dict[SbxKey, None] = {}
        """Sandboxes whose templateRef named no SandboxTemplate when a pod was to be made."""
        self._template_hashes: dict[int, tuple[Any, Any, dict[str, Any], str]] = {}
        """Pod template spec (by identity) → (spec, metadata, template, revision hash) (see
        :meth:`_template_hash`)."""
        self._known_specs: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        """Pod template spec (by identity) → (spec, what a pod of it gets) (see :meth:`_pod_spec`)."""
        self._started = False

    # -- public ---------------------------------------------------------------------

    def start(self) -> None:
        """Watch Sandboxes and Pods, enqueue every cached Sandbox, and launch the workers."""
        if self._started:
            return
        self._started = True
        self.cache.add_handler("Sandbox", self._on_sandbox)
        self.cache.add_handler("Pod", self._on_pod)
        for sbx in self.cache.list("Sandbox"):
            self.queue.add((sbx.metadata.namespace, sbx.metadata.name))
        self.start_workers(self.ctx.profile.sandbox_workers)

    # -- event handlers -----------------------------------------------------------------

    def _on_sandbox(self, event_type: str, old: Any, new: Any) -> None:
        obj = new if new is not None else old
        key = (obj.metadata.namespace, obj.metadata.name)
        if key in self._sbx_expect:
            self._observe(self._sbx_expect, key, event_type, obj)
        if event_type == "DELETED":
            self._sbx_expect.pop(key, None)
            self.queue.forget(key)
            self._failures.pop(key, None)
            self._reinit_done.pop(key, None)
            self._unsupported.pop(key, None)
            self._missing_template.pop(key, None)
        self.queue.add(key)

    def _on_pod(self, event_type: str, old: Any, new: Any) -> None:
        obj = new if new is not None else old
        ref = obj.metadata.controller_ref()
        if ref is None or ref.kind != "Sandbox":
            return
        key = (obj.metadata.namespace, obj.metadata.name)
        if key in self._pod_expect:
            self._observe(self._pod_expect, key, event_type, obj)
        self.queue.add(key)

    @staticmethod
    def _observe(
        expect: dict[SbxKey, _Expectation], key: SbxKey, event_type: str, obj: Any
    ) -> None:
        """Drop the expectation of ``key`` (which has one) if the event of ``obj`` meets it."""
        exp = expect[key]
        if obj.metadata.uid != exp.uid:
            return
        if event_type == "DELETED" or _rv(obj) >= exp.rv:
            del expect[key]

    def _expect(self, table: dict[SbxKey, _Expectation], key: SbxKey, obj: Any, rv: int) -> None:
        # Every committed write reaches the cache, so its event both satisfies
        # the expectation and enqueues the sandbox; the deadline only guards
        # against a cache that never catches up (upstream's 1 min timeout).
        deadline = self.ctx.now() + self.ctx.profile.expectation_timeout_s
        table[key] = _Expectation(obj.metadata.uid or "", rv, deadline)

    def _pending(
        self, table: dict[SbxKey, _Expectation], key: SbxKey, cached: Sandbox | Pod | None
    ) -> bool:
        """Whether the cache is still older than our last write to ``key`` (``cached``: the
        cache's copy of the object written, or ``None``).

        As upstream's ``IsSatisfied``, the cached copy itself meets the expectation when it
        is at the written resourceVersion: a write that changed nothing (a status the store
        held already) keeps the resourceVersion whose watch event may have come before the
        write was answered, and no event would ever meet it again.
        """
        exp = table.get(key)
        if exp is None:
            return False
        if exp.deadline <= self.ctx.now() or (
            cached is not None and cached.metadata.uid == exp.uid and _rv(cached) >= exp.rv
        ):
            del table[key]
            return False
        return True

    # -- workers ------------------------------------------------------------------------

    def _error_delay(self, key: SbxKey, err: ApiError) -> float | None:
        """As the base, but a 404 for a sandbox gone from the cache ends the key."""
        if err.is_not_found and self.cache.get("Sandbox", key[0], key[1]) is None:
            return None
        return self._backoff(key)

    # -- reconcile ------------------------------------------------------------------------

    def _reconcile(self, key: SbxKey) -> Op:
        ns, name = key
        sbx: Sandbox | None = self._sandboxes.get(key)
        if sbx is None:
            self._pod_expect.pop(key, None)
            return None
        # Expectations: do not act on a cache older than our own last writes;
        # the watch event of the write enqueues the sandbox again. (Most keys
        # have none: looked up before the call, on every reconcile.)
        sbx_expect, pod_expect = self._sbx_expect, self._pod_expect
        pod: Pod | None = self._pods.get(key)
        if (key in sbx_expect and self._pending(sbx_expect, key, sbx)) or (
            key in pod_expect and self._pending(pod_expect, key, pod)
        ):
            return None
        blocked = False
        if pod is not None and not _controls(sbx, pod):
            # A pod of the same name left by an earlier sandbox: wait until it is gone.
            pod, blocked = None, True

        if sbx.metadata.deletion_timestamp is not None:
            yield from self._ensure_terminated(key, sbx, pod)
            return None
        if not sbx.spec.template and sbx.spec.template_ref is None:
            if key not in self._unsupported:
                self._unsupported[key] = None
                self.ctx.record(
                    "sandbox.unsupported", f"{ns}/{name} no pod template or templateRef"
                )
            return None
        if sbx.status.phase in (SandboxPhase.FAILED, SandboxPhase.SUCCEEDED):
            return None

        action = timer_action(sbx, self.ctx.now_dt())
        if action.kind == "delete":
            yield from self._delete_sandbox(key, sbx)
            return None
        if action.kind == "pause":
            yield from self._auto_pause(key, sbx, action.shutdown_time, action.pause_time)
            return None
        delay = action.after if action.kind == "requeue" else None
        if sbx.status.phase == SandboxPhase.RECYCLING and not recycle_ended(sbx):
            return (yield from self._recycle(key, sbx, pod))

        # A shallow copy is enough: conditions and podInfo are replaced, never
        # changed in place (and a deep copy per reconcile is the costly part).
        # The observed generation is the sandbox's whatever the calculation
        # does (it neither reads nor sets it): it is part of the copy. (``shallow_copy``:
        # ``model_copy(update=)`` would check these two names on every reconcile.)
        status = shallow_copy(
            sbx.status,
            {
                "conditions": list(sbx.status.conditions),
                "observed_generation": sbx.metadata.generation,
            },
        )
        failed = yield from self._calculate(key, sbx, pod, blocked, status)
        if not same_fields(status, sbx.status):
            yield from self._write_status(key, sbx, status)
        if failed is not None:
            # Raised once the status says so, for the worker's error back-off.
            raise failed
        return delay

    def _write_status(self, key: SbxKey, sbx: Sandbox, status: SandboxStatus) -> Op:
        uid = sbx.metadata.uid

        def put(s: Sandbox) -> None:
            if s.metadata.uid != uid:
                raise ApiError(404, "NotFound", f'sandbox "{key[1]}" was replaced')
            s.status = status

        new = yield from self.api.patch(
            self.client, "Sandbox", key[0], key[1], put, subresource="status", shallow=True
        )
        self._expect(self._sbx_expect, key, new, _rv(new))
        old_phase = sbx.status.phase or "None"
        if status.phase != sbx.status.phase:
            self.ctx.record("sandbox.phase", f"{key[0]}/{key[1]} {old_phase}->{status.phase}")

    def _calculate(
        self, key: SbxKey, sbx: Sandbox, pod: Pod | None, blocked: bool, st: SandboxStatus
    ) -> Op:
        """``calculateStatus``: the next status, with the pod writes it takes.

        Returns the error of a pod create that failed (already reported in
        ``st``), for the caller to raise once ``st`` is written, or ``None``.
        """
        if not st.phase:
            st.phase = SandboxPhase.PENDING
        phase = st.phase
        failed: ApiError | None = None
        if phase == SandboxPhase.PENDING:
            failed = yield from self._pending_phase(key, sbx, pod, blocked, st)
        elif phase == SandboxPhase.RUNNING:
            yield from self._running_phase(key, sbx, pod, st)
        elif phase == SandboxPhase.PAUSED:
            failed = yield from self._paused_phase(key, sbx, pod, blocked, st)
        elif phase == SandboxPhase.RESUMING:
            failed = yield from self._resuming_phase(key, sbx, pod, blocked, st)
        # Recycling is handled before the status is calculated; Upgrading and
        # Terminating are not modelled.
        return failed

    def _pending_phase(
        self, key: SbxKey, sbx: Sandbox, pod: Pod | None, blocked: bool, st: SandboxStatus
    ) -> Op:
        if pod is None:
            if not blocked:
                return (yield from self._create_pod(key, sbx, st))
            return None
        if self._pod_terminal(pod, st) or pod.metadata.deletion_timestamp is not None:
            return None
        if pod.status.phase == "Running":
            st.phase = SandboxPhase.RUNNING
            self._sync_pod_info(pod, st)
            self._sync_ready(pod, st)
        return None

    def _running_phase(self, key: SbxKey, sbx: Sandbox, pod: Pod | None, st: SandboxStatus) -> Op:
        if recycle_requested(sbx):
            refusal = recycle_refusal(sbx)
            if refusal is None:
                st.phase = SandboxPhase.RECYCLING
                self._cond(st, COND_RECYCLING, False, RECYCLE_STARTED)
                self.ctx.record("sandbox.recycling", f"{key[0]}/{key[1]}")
                return
            self._cond(st, COND_RECYCLING, False, RECYCLE_REJECTED, refusal)
        # calculateStatus's order: a pod lost or finished wins over a pause that
        # lands at the same time (the sandbox is dead, not paused).
        if pod is None or pod.metadata.deletion_timestamp is not None:
            st.phase = SandboxPhase.FAILED
            st.message = "Pod Not Found"
            return
        if self._pod_terminal(pod, st):
            return
        if sbx.spec.paused:
            self._pause(key, st)
            return
        yield from self._ensure_updated(key, sbx, pod, st)

    def _paused_phase(
        self, key: SbxKey, sbx: Sandbox, pod: Pod | None, blocked: bool, st: SandboxStatus
    ) -> Op:
        if pod is not None:
            # The pause's pod deletion is still under way (or must be retried).
            if pod.metadata.deletion_timestamp is None:
                yield from self._delete_pod(key, pod, self.ctx.profile.pause_pod_grace_s)
            return None
        if blocked:
            return None
        paused = find_condition(st.conditions, ConditionType.SANDBOX_PAUSED)
        if paused is None or paused.status != "True":
            self._cond(st, ConditionType.SANDBOX_PAUSED, True, "StopPauseSucceed")
            return None
        if not sbx.spec.paused:
            st.phase = SandboxPhase.RESUMING
            self._cond(st, ConditionType.SANDBOX_RESUMED, False, "CreatePod")
            return (yield from self._create_pod(key, sbx, st))
        return None

    def _resuming_phase(
        self, key: SbxKey, sbx: Sandbox, pod: Pod | None, blocked: bool, st: SandboxStatus
    ) -> Op:
        if pod is None:
            if not blocked:
                return (yield from self._create_pod(key, sbx, st))
            return None
        if self._pod_terminal(pod, st) or pod.metadata.deletion_timestamp is not None:
            return None
        if pod.status.phase != "Running":
            return None
        st.phase = SandboxPhase.RUNNING
        self._cond(st, ConditionType.SANDBOX_RESUMED, True, "ResumePod")
        st.conditions = [c for c in st.conditions if c.type != ConditionType.SANDBOX_PAUSED]
        self._sync_pod_info(pod, st)
        if keys.ANN_INIT_RUNTIME_REQUEST in sbx.metadata.annotations:
            self._cond(st, ConditionType.RUNTIME_INITIALIZED, False, "Pending")
            self._cond(st, ConditionType.READY, False, _READY_POD, "waiting for runtime re-init")
        else:
            # Nothing to replay: the runtime is as initialised as it will be.
            self._cond(st, ConditionType.RUNTIME_INITIALIZED, True, "Succeeded")
            self._sync_ready(pod, st)
        return None

    def _pause(self, key: SbxKey, st: SandboxStatus) -> None:
        # The pod is deleted by the Paused phase's reconcile, once this status is
        # stored: deleted now, a failed status write would leave a Running
        # sandbox with a terminating pod, which is Failed ("Pod Not Found").
        st.phase = SandboxPhase.PAUSED
        self._cond(st, ConditionType.SANDBOX_PAUSED, False, "Pending")
        self._cond(st, ConditionType.READY, False, _READY_POD, "sandbox is paused")
        self.ctx.record("sandbox.pause", f"{key[0]}/{key[1]}")

    def _ensure_updated(self, key: SbxKey, sbx: Sandbox, pod: Pod, st: SandboxStatus) -> Op:
        """``EnsureSandboxUpdated``: runtime re-init, in-place update, pod labels, Ready."""
        self._sync_pod_info(pod, st)
        template = sbx.spec.template or {}
        # Pod-template labels (claim labels, the owner label) go to the pod as
        # they are, without an in-place update; an image change is one.
        want_labels = (template.get("metadata") or {}).get("labels") or {}
        have = pod.metadata.labels
        labels = {k: v for k, v in want_labels.items() if have.get(k) != v}
        want = first_container_image(template)
        image = want if want is not None and _pod_image(pod) != want else None
        # Resizes are behind the SandboxInPlaceResourceResize feature gate (on upstream).
        cpu = _cpu_change(template, pod) if self.ctx.profile.inplace_resource_resize else None
        inplace = find_condition(st.conditions, ConditionType.INPLACE_UPDATE)
        # Refused for this spec already: the stored status says Failed for this generation.
        refused = (
            inplace is not None
            and inplace.reason == "Failed"
            and sbx.status.observed_generation == sbx.metadata.generation
        )
        if (image is not None or cpu is not None) and not refused:
            try:
                yield from self._update_pod(key, pod, labels, image, cpu)
            except ApiError as err:
                if not err.is_invalid:
                    raise
                # Refused for good (a resize breaking the pod's QoS class, a
                # request above its limit): reported, not retried until the
                # sandbox's spec changes again.
                self._cond(st, ConditionType.INPLACE_UPDATE, False, "Failed", err.message)
                self.ctx.record("sandbox.inplace_failed", f"{key[0]}/{key[1]} {err.message}")
                inplace = None
                if labels:
                    yield from self._update_pod(key, pod, labels, None, None)
            else:
                self._cond(st, ConditionType.INPLACE_UPDATE, False, "InplaceUpdating")
                self._cond(st, ConditionType.READY, False, _READY_INPLACE)
                return
        elif labels:
            yield from self._update_pod(key, pod, labels, None, None)
        if inplace is not None and inplace.reason == "InplaceUpdating":
            if pod.status.resize == "Infeasible" and _image_pending(pod):
                # The resize will never be carried out, but the image of the same
                # update is: the update is under way until the new image runs.
                return
            if pod.status.resize == "Infeasible":
                message = f"resize does not fit node {pod.spec.get('nodeName')}"
                self._cond(st, ConditionType.INPLACE_UPDATE, False, "Failed", message)
                self.ctx.record("sandbox.inplace_failed", f"{key[0]}/{key[1]} {message}")
            elif not self._pod_ready_for_spec(pod):
                return
            else:
                self._cond(st, ConditionType.INPLACE_UPDATE, True, "Succeeded")
                request, limit = first_container_cpu(template)
                self.ctx.record(
                    "sandbox.inplace_updated",
                    f"{key[0]}/{key[1]} image={want} cpu={request or '-'}/{limit or '-'}",
                )

        runtime = find_condition(st.conditions, ConditionType.RUNTIME_INITIALIZED)
        if runtime is not None and runtime.reason == "Pending":
            if not self._runtime_reinit(key, sbx, pod, st):
                return
        elif runtime is not None and runtime.reason == "Failed":
            self._cond(st, ConditionType.READY, False, _READY_POD, "runtime re-init failed")
            return
        self._sync_ready(pod, st)

    def _runtime_reinit(self, key: SbxKey, sbx: Sandbox, pod: Pod, st: SandboxStatus) -> bool:
        """Drive ``RuntimeInitialized=Pending``; True once the sandbox may become Ready.

        Only a re-init of ``pod`` itself counts: one started for an earlier pod
        (a resume paused again before its re-init answered) neither holds back
        this pod's own re-init nor decides its outcome.
        """
        pod_uid = pod.metadata.uid or ""
        done = self._reinit_done.pop(key, None)
        if done is not None and done[0] == pod_uid:
            _, ok, message = done
            if ok:
                self._cond(st, ConditionType.RUNTIME_INITIALIZED, True, "Succeeded")
                return True
            self._cond(st, ConditionType.RUNTIME_INITIALIZED, False, "Failed", message)
            self._cond(st, ConditionType.READY, False, _READY_POD, "runtime re-init failed")
            return False
        if keys.ANN_INIT_RUNTIME_REQUEST not in sbx.metadata.annotations:
            self._cond(st, ConditionType.RUNTIME_INITIALIZED, True, "Succeeded")
            return True
        ready = _pod_ready(pod)
        if ready is not None and ready.status == "True" and self._reiniting.get(key) != pod_uid:
            # In a process of its own, so that no worker waits on the runtime.
            self._reiniting[key] = pod_uid
            self.ctx.env.process(self._reinit(key, sbx, pod_uid))
        return False

    def _reinit(self, key: SbxKey, sbx: Sandbox, pod_uid: str) -> Op:
        """Re-init the runtime of pod ``pod_uid``; keep the answer if that pod is still there."""
        uid = sbx.metadata.uid or ""
        ok, message = True, ""
        try:
            if self.ctx.faults.injected:  # stalled, it sends nothing
                yield from self._honour_stall()
            yield from self.runtime.reinit(sbx)
        except (ClaimError, ApiError) as err:
            ok, message = False, str(err)
        if self.ctx.faults.injected:  # stalled, it takes in no answer
            yield from self._honour_stall()
        if self._reiniting.get(key) == pod_uid:
            del self._reiniting[key]
        current = self.cache.get("Sandbox", key[0], key[1])
        if current is None or current.metadata.uid != uid:
            return
        outcome = "ok" if ok else "failed"
        pod: Pod | None = self.cache.get("Pod", key[0], key[1])
        if (
            pod is None
            or pod.metadata.uid != pod_uid
            or pod.metadata.deletion_timestamp is not None
        ):
            # The pod went (paused, lost) before the answer: it speaks for no pod
            # there is, and a later pod waits for a re-init of its own.
            self.ctx.record("sandbox.reinit_stale", f"{key[0]}/{key[1]} {outcome}: pod is gone")
            return
        self._reinit_done[key] = (pod_uid, ok, message)
        self.ctx.record("sandbox.reinit", f"{key[0]}/{key[1]} {outcome}")
        self.queue.add(key)

    # -- status helpers ----------------------------------------------------------------

    def _cond(
        self, st: SandboxStatus, type_: str, status: bool, reason: str, message: str = ""
    ) -> None:
        value = "True" if status else "False"
        for cond in st.conditions:
            if cond.type == type_:
                # Most reconciles change nothing: skip building an equal condition.
                if (
                    cond.status == value
                    and cond.reason == reason
                    and cond.message == message
                    and cond.last_transition_time is not None
                    and cond.observed_generation is None
                ):
                    return
                break
        set_condition(
            st.conditions,
            Condition(
                type=type_,
                status=value,
                reason=reason,
                message=message,
                last_transition_time=self.ctx.now_dt().replace(microsecond=0),
            ),
            intern=self.ctx.intern_condition,
        )

    @staticmethod
    def _pod_terminal(pod: Pod, st: SandboxStatus) -> bool:
        phase = _TERMINAL_POD.get(pod.status.phase)
        if phase is None:
            return False
        st.phase = phase
        st.message = pod.status.reason or pod.status.message or f"pod {pod.status.phase}"
        return True

    @staticmethod
    def _pod_ready_for_spec(pod: Pod) -> bool:
        # Ready, and reported for the pod's current spec (the kubelet stamps
        # the Ready condition with the generation it has realised).
        ready = _pod_ready(pod)
        if ready is None or ready.status != "True":
            return False
        seen = ready.observed_generation
        return seen is None or seen >= (pod.metadata.generation or 0)

    @staticmethod
    def _sync_pod_info(pod: Pod, st: SandboxStatus) -> None:
        node = pod.spec.get("nodeName")
        node_name = str(node) if node else None
        have = st.pod_info
        if (
            have is None
            or have.node_name != node_name
            or have.pod_ip != pod.status.pod_ip
            or have.pod_uid != pod.metadata.uid
            or have.labels is not None
            or have.annotations is not None
        ):
            st.pod_info = PodInfo(
                node_name=node_name, pod_ip=pod.status.pod_ip, pod_uid=pod.metadata.uid
            )
        # Assigned only when they change (a pydantic assignment is four calls, and every
        # reconcile of a running sandbox gets here): ``st`` is a copy of the stored status,
        # which holds them already but for the first sync.
        if st.node_name != node_name or st.sandbox_ip != pod.status.pod_ip:
            st.node_name = node_name
            st.sandbox_ip = pod.status.pod_ip

    def _sync_ready(self, pod: Pod, st: SandboxStatus) -> None:
        ready = _pod_ready(pod)
        if ready is not None and ready.status == "True":
            self._cond(st, ConditionType.READY, True, _READY_POD)
        elif ready is not None and ready.reason == _READY_START_FAILED:
            self._cond(st, ConditionType.READY, False, _READY_START_FAILED, ready.message)
        else:
            self._cond(st, ConditionType.READY, False, _READY_POD, "pod is not ready")

    # -- writes -----------------------------------------------------------------------------

    def _new_pod(self, sbx: Sandbox) -> Pod:
        template = self.world.pod_template(sbx, self.cache)
        if template is None:
            # A templateRef naming a SandboxTemplate this cache does not hold:
            # the reconcile fails and backs off until it appears.
            ref = sbx.spec.template_ref.name if sbx.spec.template_ref else ""
            key = (sbx.metadata.namespace, sbx.metadata.name)
            if key not in self._missing_template:
                self._missing_template[key] = None
                self.ctx.record(
                    "sandbox.template_not_found", f"{key[0]}/{key[1]} templateRef={ref}"
                )
            raise ApiError(404, "NotFound", f'sandboxtemplates.agents.kruise.io "{ref}" not found')
        if self._missing_template:
            self._missing_template.pop((sbx.metadata.namespace, sbx.metadata.name), None)
        meta = template.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        for label in (keys.LABEL_SANDBOX_TEMPLATE, keys.LABEL_SANDBOX_POOL):
            # Pods carry their template so that selectors (faults, policies) find them.
            value = sbx.metadata.labels.get(label)
            if value is not None:
                labels.setdefault(label, value)
        # No sandbox-name label here: upstream's controller does not write one;
        # the E2B create path puts it in the pod template (reference §6.6).
        labels[keys.LABEL_CREATED_BY] = "sandbox"
        labels[keys.LABEL_POD_TEMPLATE_HASH] = self._template_hash(template)
        owner = OwnerReference(
            api_version=keys.API_VERSION,
            kind="Sandbox",
            name=sbx.metadata.name,
            uid=sbx.metadata.uid or "",
            controller=True,
            block_owner_deletion=True,
        )
        # Stored objects are never changed in place (patches copy what they
        # change), so the pod may share the template's spec.
        return Pod(
            metadata=ObjectMeta(
                name=sbx.metadata.name,
                namespace=sbx.metadata.namespace,
                labels=labels,
                annotations=dict(meta.get("annotations") or {}),
                owner_references=[owner],
                finalizers=[POD_FINALIZER],
            ),
            spec=self._pod_spec(template.get("spec") or {}),
        )

    def _pod_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        """:func:`known_pod_spec` of a template's ``spec``, computed once per spec object.

        As the controller's typed decode of the template: fields core/v1 lacks
        never reach the pod (the template itself keeps them, schemaless). Kept
        by the spec's identity, as :meth:`_template_hash` keeps its digests
        (the pods of a pool revision share one spec), the spec held so that its
        id cannot be reused.
        """
        found = self._known_specs.get(id(spec))
        if found is not None and found[0] is spec:
            return found[1]
        if len(self._known_specs) >= _TEMPLATE_HASHES_MAX:
            self._known_specs.clear()
        known: dict[str, Any] = known_pod_spec(spec)
        self._known_specs[id(spec)] = (spec, known)
        return known

    def _template_hash(self, template: dict[str, Any]) -> str:
        """:func:`pod_template_revision` of ``template``, computed once per pool revision.

        Sandboxes of one pool revision share their template's ``spec`` and
        ``metadata`` objects (stored objects are never changed in place), but
        not the template dict itself: validating a Sandbox copies its outer
        dict. So the hash is kept by the spec's identity, and a template is
        taken as the one hashed when its spec and metadata are the very objects
        hashed and its outer dict equals the one hashed (a key other than these
        two, which a pod template does not have, is compared by value). The
        objects are held so that their ids cannot be reused; bounded, as
        templates come and go with pools and in-place updates.
        """
        spec = template.get("spec")
        meta = template.get("metadata")
        found = self._template_hashes.get(id(spec))
        if found is not None and found[0] is spec and found[1] is meta and found[2] == template:
            return found[3]
        if len(self._template_hashes) >= _TEMPLATE_HASHES_MAX:
            self._template_hashes.clear()
        digest = pod_template_revision(template)
        self._template_hashes[id(spec)] = (spec, meta, template, digest)
        return digest

    def _create_pod(self, key: SbxKey, sbx: Sandbox, st: SandboxStatus) -> Op:
        """Create the sandbox's pod; return the error if that failed, else ``None``.

        A failure (the API server's, or a templateRef naming no template) is
        reported in ``st`` as Ready ``False/PodCreateFailed`` with the error as
        message (reference §1.2), so that the status is written before the
        error backs the key off; the next successful create clears it.
        """
        try:
            pod = yield from self.api.create(self.client, self._new_pod(sbx))
        except ApiError as err:
            if err.reason == "AlreadyExists":
                return None  # our cache has not seen it yet; its event enqueues us
            self._cond(st, ConditionType.READY, False, _READY_CREATE_FAILED, err.message)
            return err
        self._expect(self._pod_expect, key, pod, _rv(pod))
        self.ctx.record("sandbox.pod_created", f"{key[0]}/{key[1]}")
        ready = find_condition(st.conditions, ConditionType.READY)
        if ready is not None and ready.reason == _READY_CREATE_FAILED:
            st.conditions = [c for c in st.conditions if c is not ready]
        return None

    def _delete_pod(self, key: SbxKey, pod: Pod, grace: float | None) -> Op:
        ns, name = key
        uid = pod.metadata.uid
        if grace is not None and pod.metadata.annotations.get(ANN_GRACE_SECONDS) != f"{grace:g}":
            # Stands in for DeleteOptions.gracePeriodSeconds.
            def annotate(p: Pod) -> None:
                if p.metadata.uid != uid:
                    raise ApiError(404, "NotFound", f'pod "{name}" was replaced')
                p.metadata.annotations[ANN_GRACE_SECONDS] = f"{grace:g}"

            try:
                yield from self.api.patch(self.client, "Pod", ns, name, annotate)
            except ApiError as err:
                if err.is_not_found:
                    return
                raise
        try:
            marked = yield from self.api.delete(self.client, "Pod", ns, name)
        except ApiError as err:
            if err.is_not_found:
                return
            raise
        self._expect(self._pod_expect, key, pod, _rv(marked) if marked is not None else _UNSEEN_RV)
        self.ctx.record("sandbox.pod_deleted", f"{ns}/{name}")

    def _update_pod(
        self,
        key: SbxKey,
        pod: Pod,
        labels: dict[str, str],
        image: str | None,
        cpu: tuple[str | None, str | None] | None,
    ) -> Op:
        """One write of the pod: new labels (a patch), or an image or CPU as well (an update)."""
        if image is None and cpu is None:
            uid = pod.metadata.uid

            def label(p: Pod) -> None:
                if p.metadata.uid != uid:
                    raise ApiError(404, "NotFound", f'pod "{key[1]}" was replaced')
                p.metadata.labels = {**p.metadata.labels, **labels}

            new = yield from self.api.patch(self.client, "Pod", key[0], key[1], label, shallow=True)
        else:
            changed = pod.model_copy(deep=True)
            changed.metadata.labels.update(labels)
            what = []
            if image is not None:
                set_first_container_image({"spec": changed.spec}, image)
                what.append(f"image={image}")
            if cpu is not None:
                set_first_container_cpu({"spec": changed.spec}, *cpu)
                what.append(f"cpu={cpu[0] or '-'}/{cpu[1] or '-'}")
            new = yield from self.api.update(self.client, changed)
            self.ctx.record("sandbox.inplace_update", f"{key[0]}/{key[1]} {' '.join(what)}")
        self._expect(self._pod_expect, key, new, _rv(new))

    def _delete_sandbox(self, key: SbxKey, sbx: Sandbox) -> Op:
        try:
            marked = yield from self.api.delete(self.client, "Sandbox", key[0], key[1])
        except ApiError as err:
            if err.is_not_found:
                return
            raise
        self._expect(self._sbx_expect, key, sbx, _rv(marked) if marked is not None else _UNSEEN_RV)
        self.ctx.record("sandbox.shutdown", f"{key[0]}/{key[1]}")

    def _recycle(self, key: SbxKey, sbx: Sandbox, pod: Pod | None) -> Op:
        """Phase ``Recycling``: after the grace period rejoin the pool; fail past the timeout.

        The recycler itself is a no-op (as in open source): the pod, its files
        and its runtime stay as they are. Returns the requeue delay.
        """
        ctx = self.ctx
        prof = ctx.profile
        ns, name = key
        timing = recycle_timing(
            sbx,
            ctx.now_dt(),
            grace=timedelta(seconds=prof.recycle_grace_s),
            timeout=timedelta(seconds=prof.recycle_timeout_s),
        )
        if timing.kind == "timeout":
            message = f"not recycled within {prof.recycle_timeout_s:g}s"
            yield from self._recycle_failed(key, sbx, RECYCLE_TIMEOUT, message)
            return None
        if (
            pod is None
            or pod.metadata.deletion_timestamp is not None
            or pod.status.phase in _TERMINAL_POD
        ):
            yield from self._recycle_failed(key, sbx, RECYCLE_FAILED, "the pod is gone")
            return None
        if timing.kind == "wait":
            return timing.after
        pool = sbx.metadata.labels.get(keys.LABEL_SANDBOX_POOL, "")
        sbs = self.cache.get("SandboxSet", ns, pool) if pool else None
        if sbs is None or sbs.metadata.deletion_timestamp is not None:
            message = f"sandboxset {ns}/{pool} not found"
            yield from self._recycle_failed(key, sbx, RECYCLE_FAILED, message)
            return None
        ref = sandboxset_owner_reference(sbs)
        uid = sbx.metadata.uid

        def rejoin(s: Sandbox) -> None:
            if s.metadata.uid != uid:
                raise ApiError(404, "NotFound", f'sandbox "{name}" was replaced')
            reset_for_recycle(s, ref)

        # Optimistic on the cached copy: a concurrent write (a claim cannot
        # take it yet: it is not in any pool) makes us look again.
        new = yield from self.api.patch(
            self.client, "Sandbox", ns, name, rejoin, resource_version=sbx.metadata.resource_version
        )
        self._expect(self._sbx_expect, key, new, _rv(new))
        status = sbx.status.model_copy(update={"conditions": list(sbx.status.conditions)})
        status.phase = SandboxPhase.RUNNING
        status.recycled_count = (status.recycled_count or 0) + 1
        status.observed_generation = new.metadata.generation
        self._cond(status, COND_RECYCLING, True, RECYCLE_SUCCEEDED)
        yield from self._write_status(key, new, status)
        ctx.record("sandbox.recycled", f"{ns}/{name} set={pool} count={status.recycled_count}")
        return None

    def _recycle_failed(self, key: SbxKey, sbx: Sandbox, reason: str, message: str) -> Op:
        """A failed recycle: delete the sandbox, or keep it for ``cleanup-retain-on-failure``."""
        ctx = self.ctx
        ns, name = key
        ctx.record("sandbox.recycle_failed", f"{ns}/{name} {reason}: {message}")
        retain = retain_on_failure(sbx)
        if retain is None:
            yield from self._delete_sandbox(key, sbx)
            return
        # Clamped as every deadline is: a Go duration (292 years) from a late clock
        # would pass the last date a timestamp holds.
        until = later(ctx.now_dt(), retain)
        uid = sbx.metadata.uid

        def keep(s: Sandbox) -> None:
            if s.metadata.uid != uid:
                raise ApiError(404, "NotFound", f'sandbox "{name}" was replaced')
            s.spec.shutdown_time = until

        new = yield from self.api.patch(self.client, "Sandbox", ns, name, keep)
        self._expect(self._sbx_expect, key, new, _rv(new))
        # Once the recycle has failed the timers apply again: the shutdown time deletes it.
        status = sbx.status.model_copy(update={"conditions": list(sbx.status.conditions)})
        self._cond(status, COND_RECYCLING, False, reason, message)
        yield from self._write_status(key, new, status)

    def _auto_pause(self, key: SbxKey, sbx: Sandbox, shutdown: Any, pause: Any) -> Op:
        def paused(s: Sandbox) -> None:
            s.spec.paused = True
            s.spec.shutdown_time = shutdown
            s.spec.pause_time = pause

        new = yield from self.api.patch(
            self.client,
            "Sandbox",
            key[0],
            key[1],
            paused,
            resource_version=sbx.metadata.resource_version,
        )
        self._expect(self._sbx_expect, key, new, _rv(new))
        self.ctx.record("sandbox.auto_pause", f"{key[0]}/{key[1]}")

    def _ensure_terminated(self, key: SbxKey, sbx: Sandbox, pod: Pod | None) -> Op:
        """``EnsureSandboxTerminated``: delete the pod; drop the finalizer once the pod is gone.

        A Sandbox deleted with ``Orphan`` propagation (the ``orphan`` finalizer)
        keeps its pod: the garbage collector removes the pod's reference to it
        at the delete, and this controller's cache may or may not show that
        yet (the watch lag decides). Deleting what the cache still shows as
        ours would make the pod's fate a draw of the lag.
        """
        if ORPHAN in sbx.metadata.finalizers:
            # The GC's orphaning runs first; its events bring us back, with the
            # pod no longer ours (then only the SandboxFinalizer is left to drop).
            return
        if pod is not None:
            if pod.metadata.deletion_timestamp is None:
                yield from self._delete_pod(key, pod, None)
            return
        if keys.SANDBOX_FINALIZER not in sbx.metadata.finalizers:
            return
        uid = sbx.metadata.uid

        def unfinalize(s: Sandbox) -> None:
            if s.metadata.uid != uid:
                raise ApiError(404, "NotFound", f'sandbox "{key[1]}" was replaced')
            s.metadata.finalizers = [
                f for f in s.metadata.finalizers if f != keys.SANDBOX_FINALIZER
            ]

        try:
            new = yield from self.api.patch(self.client, "Sandbox", key[0], key[1], unfinalize)
        except ApiError as err:
            if err.is_not_found:
                return
            raise
        self._expect(self._sbx_expect, key, new, _rv(new))
