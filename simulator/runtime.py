"""The agent-runtime sidecar (envd-compatible) as the claim path and the controller see it.

A sandbox runs the agent-runtime when its ``spec.runtimes`` lists
``agent-runtime`` or its pod has an init container named ``runtime``
(reference §5.1): the pod as it was made, whatever its SandboxTemplate
became since. The claim path calls its ``POST /init`` after the lock
(§5.2 step 6) and mounts dynamic CSI volumes through it; the Sandbox
controller replays both after a resume (§5.2, last paragraph). A sandbox
without the runtime refuses every connection, which is how an E2B claim
against such a pool fails (§9 item 16).

Only the timing and the outcome are modelled: each ``/init`` attempt takes a
``runtime.init`` latency (or the whole attempt timeout when the runtime does
not answer), retried with the back-off of upstream's ``pkg/utils/runtime``;
each mount takes a ``csi.mount`` latency, a few at a time. An attempt is an
HTTP call into the pod: if the sandbox or its pod goes (deleted, killed,
paused) before the answer, the connection drops and the attempt fails as a
transport error, as an unreachable runtime's does. Mounts are HTTP calls
too: one whose pod goes before the last mount answers fails, and a failed
mount is terminal (§5.2 step 6).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Generator, Sequence
from typing import Any

import simpy
from pydantic import TypeAdapter, ValidationError

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.api.sandboxclaim import CSIMountConfig
from pytest_kruise_agents.claiming.errors import CSIMountError, InitRuntimeError
from pytest_kruise_agents.claiming.modification import (
    AGENT_RUNTIME,
    RUNTIME_INIT_CONTAINER,
    InitRuntimeRequest,
)
from pytest_kruise_agents.claiming.retry import ExponentialBackoff, init_should_retry
from pytest_kruise_agents.claiming.state import pod_ip, sandbox_key
from simulator.cut import AttemptCut, context_error, cut
from simulator.records import ClaimRecord
from simulator.world import World

__all__ = ["AgentRuntime", "has_agent_runtime"]

Op = Generator[simpy.Event, Any, Any]

_REFUSED_S = 0.001
"""A refused TCP connection fails about as fast as one round trip."""

_CSI_LIST: TypeAdapter[list[CSIMountConfig]] = TypeAdapter(list[CSIMountConfig])


def has_agent_runtime(sbx: Sandbox, pod_template: dict[str, Any] | None = None) -> bool:
    """Whether the sandbox runs the agent-runtime (``runtimes`` or init container ``runtime``).

    The init container is looked for in ``pod_template``, the template of the
    pod the sandbox runs (``{"spec": pod.spec}``), when given: the runtime is
    in the pod, made from the template as it was then. Without it, in the
    sandbox's own pod template (a ``templateRef`` sandbox has none).
    """
    if any(r.name == AGENT_RUNTIME for r in sbx.spec.runtimes or ()):
        return True
    template = pod_template if pod_template is not None else sbx.spec.template
    init_containers = ((template or {}).get("spec") or {}).get("initContainers") or ()
    return any(
        isinstance(c, dict) and c.get("name") == RUNTIME_INIT_CONTAINER for c in init_containers
    )


def _pod_uid(sbx: Sandbox) -> str | None:
    info = sbx.status.pod_info
    return info.pod_uid if info is not None else None


class AgentRuntime:
    """The agent-runtime of every sandbox: ``/init``, CSI mounts, and the re-init after resume.

    The runtime's state lives in the pod: it remembers, per sandbox, the pod
    whose runtime received an access token, so that a re-init of that same
    runtime answers 401 ("already initialised"), which counts as success,
    while a recreated pod (after a resume) starts uninitialised again.
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self.ctx = world.ctx
        # "ns/name" -> uid of the pod whose runtime holds a token (None when
        # the sandbox does not report one, as in hand-built test worlds).
        self._initialised: dict[str, str | None] = {}
        world.controller_cache.add_handler("Sandbox", self._on_sandbox)

    def _on_sandbox(self, event_type: str, old: Any, new: Any) -> None:
        if event_type == "DELETED" and self._initialised:
            self._initialised.pop(sandbox_key(old), None)

    def is_initialised(self, sbx: Sandbox) -> bool:
        """Whether the runtime of the sandbox's current pod has received its ``/init``."""
        key = sandbox_key(sbx)
        return key in self._initialised and self._initialised[key] == _pod_uid(sbx)

    # -- reachability ------------------------------------------------------------

    def _reachable(self, sbx: Sandbox) -> tuple[Sandbox | None, str]:
        """The sandbox as stored now if its runtime accepts connections, else why not.

        Upstream re-resolves the runtime URL from the refreshed Sandbox before
        each attempt; the network's truth is the stored object and its pod.
        Whether a runtime listens is the pod's: the init container it was made
        with, not the SandboxTemplate as it is now (edited or deleted since).
        """
        api = self.world.api
        meta = sbx.metadata
        current: Sandbox | None = api.peek("Sandbox", meta.namespace, meta.name)
        if current is None or current.metadata.deletion_timestamp is not None:
            return None, "connection refused: sandbox is gone"
        uid = _pod_uid(current)
        pod = api.peek("Pod", meta.namespace, meta.name) if uid is not None else None
        if pod is not None and pod.metadata.uid != uid:
            pod = None
        # Judged from the pod; without one, from the sandbox's own template (a sandbox
        # that reports no pod: hand-built test worlds). A templateRef sandbox whose pod
        # is gone has nothing to tell by: the pod check below refuses it.
        judged = pod is not None or uid is None or current.spec.template is not None
        if judged and not has_agent_runtime(
            current, {"spec": pod.spec} if pod is not None else None
        ):
            return None, "connection refused: no agent-runtime in the sandbox"
        if pod_ip(current) is None:
            return None, "no route to the runtime: the sandbox has no pod IP"
        if uid is not None and (
            pod is None
            or pod.metadata.deletion_timestamp is not None
            or pod.status.phase != "Running"
        ):
            return None, "connection refused: the sandbox pod is not running"
        return current, ""

    def _dropped(self, started: Sandbox, pod_uid: str | None) -> str | None:
        """Why the connection of an attempt that reached ``started`` dropped before its
        answer, or ``None`` if the runtime it reached is still there.

        The runtime lives in the pod: the sandbox deleted or made anew, or its
        pod gone, killed or replaced, takes the connection with it.
        """
        meta = started.metadata
        now: Sandbox | None = self.world.api.peek("Sandbox", meta.namespace, meta.name)
        if (
            now is None
            or now.metadata.deletion_timestamp is not None
            or now.metadata.uid != meta.uid
        ):
            return "connection reset: the sandbox is gone"
        current, _ = self._reachable(now)
        # An attempt that could not tell its pod (no pod UID reported) checks only the sandbox.
        if current is None or (pod_uid is not None and _pod_uid(current) != pod_uid):
            return "connection reset: the sandbox pod is gone"
        return None

    # -- /init ------------------------------------------------------------------------

    def init(
        self,
        sbx: Sandbox,
        request: InitRuntimeRequest,
        record: ClaimRecord | None = None,
        *,
        reinit: bool = False,
    ) -> Op:
        """``POST <runtime>/init`` with retries; raise :class:`InitRuntimeError` when it fails.

        Up to ``profile.init_attempts`` attempts of at most
        ``profile.init_attempt_timeout_s`` each, sleeping 0.2 s, 0.4 s, ...
        between them; only transport errors and 5xx answers are retried. With
        ``reinit`` a 401 ("already initialised"), an injected one too, is a success. An attempt
        whose sandbox or pod goes before it answers fails as a transport
        error (retried, as an unreachable runtime's). Sets
        ``record.runtime_initialized`` on success. Interrupted (the claim's
        context ended), raise an :class:`~simulator.cut.AttemptCut` naming the
        calls made and the last one's failure.
        """
        ctx = self.ctx
        env = ctx.env
        prof = ctx.profile
        faults = ctx.faults
        key = sandbox_key(sbx)
        template = sbx.metadata.labels.get(keys.LABEL_SANDBOX_TEMPLATE) or sbx.metadata.labels.get(
            keys.LABEL_SANDBOX_POOL
        )
        attempt_timeout = prof.init_attempt_timeout_s
        backoff = ExponentialBackoff(
            duration=0.2, factor=2.0, jitter=0.0, cap=10.0, steps=prof.init_attempts
        )
        sleeps = backoff.delays(ctx.rng)
        attempts = 0
        last = ""
        try:
            while True:
                attempts += 1
                status: int | None = None
                current, why = self._reachable(sbx)
                if current is None:
                    yield env.timeout(_REFUSED_S)
                    last = why
                else:
                    uid = _pod_uid(current)
                    unreachable = init_failure = None
                    if faults.injected:
                        unreachable = faults.check(
                            "runtime_unreachable",
                            template=template,
                            namespace=sbx.metadata.namespace,
                        )
                        if unreachable is None:
                            init_failure = faults.check(
                                "runtime_init_failure",
                                template=template,
                                namespace=sbx.metadata.namespace,
                            )
                    took = ctx.latency("runtime.init")
                    if unreachable is not None or took > attempt_timeout:
                        yield env.timeout(attempt_timeout)
                        last = f"timeout after {attempt_timeout:g}s"
                    elif init_failure is not None and not (reinit and init_failure.code == 401):
                        yield env.timeout(took)
                        status = init_failure.code
                        last = f"status {status}"
                    else:
                        # An answer; a 401 to a replay says "already initialised", a success.
                        yield env.timeout(took)
                        dropped = self._dropped(current, uid)
                        if dropped is None:
                            self._answered(
                                key,
                                uid,
                                reinit=reinit,
                                record=record,
                                said_401=init_failure is not None,
                            )
                            return None
                        # A transport error (status None): retried, as an unreachable runtime's.
                        ctx.record("runtime.init_dropped", f"{key} {dropped}")
                        last = dropped
                if not init_should_retry(status):
                    break
                sleep = next(sleeps, None)
                if sleep is None:
                    break
                yield env.timeout(sleep)
        except simpy.Interrupt as exc:
            # The claim's context ended while an attempt or a back-off ran: what the
            # calls met so far, and what stopped them (the retry loop's last error).
            met = f"{last}: " if last else ""
            raise cut(
                exc,
                InitRuntimeError(
                    f"failed to init runtime of sandbox {key} after {attempts} attempts: "
                    f"{met}{context_error(exc)}"
                ),
            ) from exc
        ctx.record("runtime.init_failed", f"{key} attempts={attempts} last={last}")
        raise InitRuntimeError(
            f"failed to init runtime of sandbox {key} after {attempts} attempts: {last}"
        )

    def _answered(
        self,
        key: str,
        uid: str | None,
        *,
        reinit: bool,
        record: ClaimRecord | None,
        said_401: bool = False,
    ) -> None:
        """An ``/init`` the runtime answered: it holds a token now (a replay into a runtime
        that held one already is answered 401, which counts as success; ``said_401``: an
        injected 401 answered this replay, whatever the runtime held)."""
        ctx = self.ctx
        already = said_401 or (key in self._initialised and self._initialised[key] == uid)
        # A first /init, or a replay into a fresh runtime, succeeds.
        self._initialised[key] = uid
        if reinit:
            ctx.record("runtime.reinit", f"{key} {'already-initialised' if already else 'ok'}")
        if record is not None:
            record.runtime_initialized = ctx.now()

    # -- CSI mounts ---------------------------------------------------------------------

    def mount(self, sbx: Sandbox, mounts: Sequence[CSIMountConfig]) -> Op:
        """Mount dynamic CSI volumes through the runtime; raise :class:`CSIMountError` on failure.

        ``profile.csi_mount_concurrency`` mounts run at once, each taking a
        ``csi.mount`` latency; each consults ``csi_mount_failure`` when it
        starts. Like an errgroup, a failure is reported once every started
        mount has finished. Mounts whose sandbox or pod goes
        before the last of them answers fail as their connection drops: a
        failed mount is terminal (reference §5.2 step 6), so the claim fails
        rather than deliver a sandbox that is gone. Interrupted (the claim's
        context ended), raise an :class:`~simulator.cut.AttemptCut` saying so.
        """
        if not mounts:
            return None
        ctx = self.ctx
        key = sandbox_key(sbx)
        current, why = self._reachable(sbx)
        if current is None:
            yield from self._mount_wait(key, _REFUSED_S)
            ctx.record("runtime.mount_failed", f"{key} {why}")
            raise CSIMountError(f"failed to mount csi volumes of sandbox {key}: {why}")
        uid = _pod_uid(current)
        template = sbx.metadata.labels.get(keys.LABEL_SANDBOX_TEMPLATE) or sbx.metadata.labels.get(
            keys.LABEL_SANDBOX_POOL
        )
        faults = ctx.faults
        namespace = sbx.metadata.namespace
        lanes = [0.0] * min(ctx.profile.csi_mount_concurrency, len(mounts))
        failed: CSIMountConfig | None = None
        later: list[tuple[float, CSIMountConfig]] = []
        for m in mounts:
            # List scheduling: each mount starts on the first free lane.
            start = heapq.heappop(lanes)
            heapq.heappush(lanes, start + ctx.latency("csi.mount"))
            if start > 0.0:
                later.append((start, m))  # in start order: the lanes pop in time order
            elif (
                failed is None
                and faults.injected
                and faults.check("csi_mount_failure", template=template, namespace=namespace)
                is not None
            ):
                failed = m
        try:
            finish = max(lanes)
            done = ctx.env.timeout(finish)
            # Each later mount is a decision point of its own, when it starts: a
            # failure window open then fails it, one closed by then does not.
            at = 0.0
            for start, m in later:
                if failed is not None:
                    break
                if start > at:
                    # ``done`` when the mount starts as the last answers (zero-length mounts).
                    yield ctx.env.timeout(start - at) if start < finish else done
                    at = start
                if (
                    faults.injected
                    and faults.check("csi_mount_failure", template=template, namespace=namespace)
                    is not None
                ):
                    failed = m
            yield done  # the same event: a run whose mounts meet no fault waits as it did
        except simpy.Interrupt as exc:
            raise _mount_cut(key, exc) from exc
        # Checked when the last mount answers: the pod going at any time before
        # then drops a call in flight (or refuses one not yet started). A pure
        # read, so runs without such a delete log and draw exactly as before.
        dropped = self._dropped(current, uid)
        if dropped is not None:
            ctx.record("runtime.mount_dropped", f"{key} {dropped}")
            raise CSIMountError(f"failed to mount csi volumes of sandbox {key}: {dropped}")
        if failed is not None:
            ctx.record("runtime.mount_failed", f"{key} {failed.mount_path}")
            raise CSIMountError(
                f"failed to mount csi volume {failed.pv_name} at {failed.mount_path} "
                f"of sandbox {key}"
            )
        return None

    def _mount_wait(self, key: str, seconds: float) -> Op:
        """Wait ``seconds`` for the mounts of sandbox ``key`` to answer; cut, say so."""
        try:
            yield self.ctx.env.timeout(seconds)
        except simpy.Interrupt as exc:
            raise _mount_cut(key, exc) from exc

    # -- after a resume ---------------------------------------------------------------

    def reinit(self, sbx: Sandbox) -> Op:
        """Replay the stored ``init-runtime-request`` (as a re-init) and re-mount the CSI volumes.

        What the Sandbox controller does before a resumed sandbox becomes Ready
        again. A sandbox that never had its runtime initialised has nothing to replay.
        """
        ann = sbx.metadata.annotations
        raw = ann.get(keys.ANN_INIT_RUNTIME_REQUEST)
        if raw:
            try:
                request = InitRuntimeRequest.from_json(raw)
            except (ValueError, TypeError, AttributeError) as exc:
                raise InitRuntimeError(
                    f"sandbox {sandbox_key(sbx)}: unreadable {keys.ANN_INIT_RUNTIME_REQUEST}: {exc}"
                ) from exc
            yield from self.init(sbx, request, reinit=True)
        csi = ann.get(keys.ANN_CSI_VOLUME_CONFIG)
        if csi:
            try:
                mounts = _CSI_LIST.validate_python(json.loads(csi))
            except (ValueError, ValidationError) as exc:
                raise CSIMountError(
                    f"sandbox {sandbox_key(sbx)}: unreadable {keys.ANN_CSI_VOLUME_CONFIG}: {exc}"
                ) from exc
            yield from self.mount(sbx, mounts)
        return None


def _mount_cut(key: str, exc: simpy.Interrupt) -> AttemptCut:
    """The cut of sandbox ``key``'s mounts when the claim's context ends mid-wait."""
    return cut(
        exc,
        CSIMountError(f"failed to mount csi volumes of sandbox {key}: {context_error(exc)}"),
    )
