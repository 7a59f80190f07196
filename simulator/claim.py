"""One claim attempt (``sandboxcr.TryClaimSandbox``, reference §5.2), shared by both callers.

The sandbox-manager's E2B create and the SandboxClaim controller run the same
attempt through a :class:`Claimer` over their own informer cache and client:
acquire a claim-worker slot, pick a candidate from the cache (or build a new
sandbox when the pool has no stock), write the claim as one optimistic-lock
Update (or a Create), free the slot, then post-process: wait until ready (for
created or in-place-updated sandboxes), ``/init`` the agent-runtime, mount
CSI volumes. A failure after the lock deletes the sandbox (or keeps it
labelled as a reserved failure); it never returns to the pool.

Exclusivity comes only from the API server's resourceVersion check. The
in-flight pick set (per Claimer, i.e. per process) only spreads one process's
concurrent attempts; resourceVersion expectations keep a Claimer from picking
a cached copy older than its own last write to that sandbox.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, NoReturn

import simpy

from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.sandbox import ConditionType, Sandbox, SandboxPhase, SandboxState
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.claiming.errors import (
    ClaimError,
    InternalError,
    LockConflictError,
    NoAvailableError,
    StartContainerFailedError,
    WaitReadyTimeoutError,
    create_lock_error,
    update_lock_error,
)
from pytest_kruise_agents.claiming.modification import (
    ClaimOptions,
    failed_sandbox_cleanup,
    modify_for_claim,
    needs_wait_ready,
    new_sandbox_from_sandboxset,
)
from pytest_kruise_agents.claiming.retry import jitter
from pytest_kruise_agents.claiming.selection import (
    PickResult,
    no_available_error,
    pick_choices,
    select_candidate,
)
from pytest_kruise_agents.claiming.state import is_ready, pod_ip, sandbox_key, sandbox_state
from simulator.apiserver import ApiError, Client
from simulator.cut import context_error, cut
from simulator.informer import Informer
from simulator.ratelimit import TokenBucket
from simulator.records import ClaimRecord, ColdReason
from simulator.runtime import AgentRuntime
from simulator.world import PICKABLE_PREFIX, World

__all__ = ["RATE_LIMITED", "Check", "Claimer", "Modifier", "Op", "ready_verdict", "shielded"]

Op = Generator[simpy.Event, Any, Any]
"""A SimPy sub-process, used with ``yield from``."""

Modifier = Callable[[Sandbox], None]
"""An extra change to the claimed copy, made in place after the claim modification."""

Check = Callable[[Sandbox | None], object | None]
"""A watch predicate: ``None`` to keep waiting, anything else ends the wait with it.

Called with ``None`` when the sandbox is deleted.
"""

_CONFLICT_RETRY_STEPS: Final = 5
"""client-go ``retry.DefaultRetry``: 5 tries, 10 ms apart (jitter 0.1)."""

RATE_LIMITED: Final = "sandbox creation is not allowed by rate limiter"


def _cold_reason(result: PickResult) -> ColdReason:
    """Why a pick that found no sandbox did so: an empty window, or one all in flight."""
    return "AllCandidatesPicked" if result.candidates > 0 else "NoStock"


class _Deleted:
    """The verdict of a wait whose sandbox was deleted."""


_DELETED: Final = _Deleted()


class _TimedOut:
    """The result of a wait that reached its timeout."""


_TIMED_OUT: Final = _TimedOut()


_GONE: Final = sys.maxsize
"""The resourceVersion expected of a deleted object: no cached copy meets it; its DELETED
event (or the expectation's timeout) clears the expectation."""


def _rv(obj: Any) -> int:
    return int(obj.metadata.resource_version or 0)


_DIED: Final = (SandboxPhase.FAILED, SandboxPhase.SUCCEEDED)


def ready_verdict(sbx: Sandbox | None, now: datetime) -> object | None:
    """The wait-ready check of §5.2 step 6 on one observed copy of the sandbox.

    ``None`` while not ready (spec not yet observed, in-place update in
    progress, not running, no pod IP); the sandbox once ready; a
    :class:`StartContainerFailedError` (fail fast) when a container cannot
    start, and a :class:`WaitReadyTimeoutError` when it died (failed, or is
    being deleted) or was paused meanwhile (an auto-pause); a deletion
    marker when the sandbox is gone.
    """
    if sbx is None:
        return _DELETED
    phase = sbx.status.phase
    if sbx.metadata.deletion_timestamp is not None or phase in _DIED:
        # It will never be ready: fail the attempt now (upstream waits out
        # WaitReadyTimeout, which HEAD leaves unbounded on the E2B path).
        return WaitReadyTimeoutError(
            f"sandbox {sandbox_key(sbx)} died before it became ready: "
            f"{'deleted' if phase not in _DIED else phase} {sbx.status.message or ''}".rstrip(),
            reason="SandboxDied",
        )
    if sbx.spec.paused:
        return WaitReadyTimeoutError(
            f"sandbox {sandbox_key(sbx)} was paused before it became ready",
            reason="SandboxPaused",
        )
    if sbx.status.observed_generation != sbx.metadata.generation:
        return None
    conditions = sbx.status.conditions
    ready = find_condition(conditions, ConditionType.READY)
    if ready is not None and ready.reason == "StartContainerFailed":
        return StartContainerFailedError(
            f"sandbox {sandbox_key(sbx)} failed to start container: {ready.message}"
        )
    inplace = find_condition(conditions, ConditionType.INPLACE_UPDATE)
    if inplace is not None and inplace.reason == "InplaceUpdating":
        return None
    if sandbox_state(sbx, now)[0] is not SandboxState.RUNNING:
        return None
    if pod_ip(sbx) is None:
        return None
    return sbx


_Stage = Literal["worker", "pick", "lock", "create"]
"""Where an attempt is before its lock."""


def _waited_for(stage: _Stage, opts: ClaimOptions, picked: str | None) -> str:
    """What an attempt cut at ``stage`` was doing, for its error (``failed to <this>``)."""
    pool = f"{opts.namespace or '*'}/{opts.template}"
    if stage == "worker":
        return "acquire a claim worker"
    if stage == "pick":
        return f"pick a sandbox of {pool}"
    if stage == "lock":
        return f"lock sandbox {picked}"
    return f"create a sandbox of {pool}"


def shielded(env: simpy.Environment, op: Op) -> Op:
    """Run ``op`` as its own process to its end, whatever interrupts the caller gets meanwhile.

    A cleanup must not be cut short by the context that failed: a delete
    interrupted half-way would leave a locked sandbox nobody owns. Returns
    ``op``'s value (or raises its error, the very object) once it has ended.
    """
    proc = env.process(_captured(op))
    while True:
        try:
            outcome = yield proc
        except simpy.Interrupt:
            continue  # the interrupt was for the caller; the cleanup goes on
        if isinstance(outcome, _Raised):
            raise outcome.error
        return outcome


@dataclass(frozen=True, slots=True)
class _Raised:
    error: Exception


def _captured(op: Op) -> Op:
    """``op``, with its error returned rather than raised.

    SimPy gives a process waiting on a failed one a copy of the error made as
    ``type(e)(*e.args)``, which drops what an error sets besides its arguments
    (a claim error's ``code`` or ``field``): :func:`shielded` raises the original.
    """
    try:
        return (yield from op)
    except Exception as exc:
        return _Raised(exc)


def _expire(event: simpy.Event) -> None:
    if not event.triggered:
        event.succeed(_TIMED_OUT)


class _Waiter:
    __slots__ = ("check", "event", "last", "min_rv")

    def __init__(self, event: simpy.Event, check: Check, min_rv: int, last: Sandbox | None) -> None:
        self.event = event
        self.check = check
        self.min_rv = min_rv
        self.last = last


class Claimer:
    """``TryClaimSandbox`` over one informer cache and one API client.

    ``worker_slots`` is the claim-worker semaphore (``None``: unlimited, as
    for the SandboxClaim controller); ``create_limiter`` the no-stock
    creation token bucket (``None``: unlimited). One Claimer is one process's
    claim state: its in-flight picks and its resourceVersion expectations.
    """

    def __init__(
        self,
        world: World,
        *,
        name: str,
        cache: Informer,
        client: Client,
        runtime: AgentRuntime,
        worker_slots: simpy.Resource | None,
        create_limiter: TokenBucket | None,
    ) -> None:
        self.world = world
        self.ctx = world.ctx
        self.name = name
        self.cache = cache
        self.client = client
        self.runtime = runtime
        self.worker_slots = worker_slots
        self.create_limiter = create_limiter
        # Ordered set of "ns/name" picked by attempts still running.
        self._in_flight: dict[str, None] = {}
        # uid -> (smallest acceptable cached resourceVersion, set at); keyed by
        # uid because every candidate of every pick is checked against it.
        self._expect: dict[str, tuple[int, float]] = {}
        # (set at, uid) of each deletion expectation, oldest first: one whose
        # DELETED event this cache had handled already is never cleared by an
        # event, so it is dropped once expired (see _expect_gone).
        self._gone: deque[tuple[float, str]] = deque()
        # "ns/name" -> waiters on that sandbox's watch events.
        self._waiters: dict[str, list[_Waiter]] = {}
        cache.add_handler("Sandbox", self._on_sandbox)

    # -- resourceVersion expectations ---------------------------------------------

    def expect(self, sbx: Sandbox, resource_version: int | None = None) -> None:
        """Skip cached copies of ``sbx`` older than ``resource_version`` (default: its own)."""
        uid = sbx.metadata.uid
        if uid is None:
            return
        rv = _rv(sbx) if resource_version is None else resource_version
        cur = self._expect.get(uid)
        now = self.ctx.now()
        # An expired expectation counts as none, whether or not a read has met it.
        if cur is None or cur[0] < rv or now - cur[1] >= self.ctx.profile.expectation_timeout_s:
            self._expect[uid] = (rv, now)

    def _expect_gone(self, sbx: Sandbox) -> None:
        """Skip every cached copy of ``sbx``, deleted, until its DELETED event (or the timeout).

        Whether or not the cache holds it now: one that has not shown its
        ADDED event yet gets that older copy later, which must not count
        (a SandboxClaim would count a sandbox that is gone as claimed).
        """
        uid = sbx.metadata.uid
        if uid is None:
            return
        now = self.ctx.now()
        timeout = self.ctx.profile.expectation_timeout_s
        gone, expect = self._gone, self._expect
        while gone and now - gone[0][0] >= timeout:
            # Expired: one whose DELETED event came before this expectation was
            # set (the cache had seen the sandbox go) would otherwise stay for ever.
            at, old = gone.popleft()
            if expect.get(old) == (_GONE, at):
                del expect[old]
        self.expect(sbx, _GONE)
        if expect.get(uid) == (_GONE, now):
            gone.append((now, uid))

    def is_fresh(self, sbx: Sandbox) -> bool:
        """Whether the cached copy is at least as new as this Claimer's last write to it.

        An expectation the cache has not met within ``profile.expectation_timeout_s``
        no longer counts, as upstream's expectations expire. A pure read: an E2B
        list asks it of every sandbox, and must not change what the model does
        next (the watch event that meets an expectation, or the object's delete,
        removes it; :meth:`expect` renews an expired one).
        """
        expect = self._expect
        if not expect:
            return True
        meta = sbx.metadata
        uid = meta.uid
        exp = expect.get(uid) if uid is not None else None
        if exp is None or int(meta.resource_version or 0) >= exp[0]:
            return True
        return self.ctx.now() - exp[1] >= self.ctx.profile.expectation_timeout_s

    @property
    def in_flight(self) -> list[str]:
        """Keys of the sandboxes picked by attempts in progress, in pick order."""
        return list(self._in_flight)

    # -- watch events ----------------------------------------------------------------

    def _on_sandbox(self, event_type: str, old: Any, new: Any) -> None:
        if not self._expect and not self._waiters:
            return
        obj = new if new is not None else old
        meta = obj.metadata
        expect = self._expect
        if expect:
            exp = expect.get(meta.uid)
            if exp is not None and (new is None or _rv(new) >= exp[0]):
                del expect[meta.uid]
        if not self._waiters:
            return
        key = f"{meta.namespace}/{meta.name}"
        waiters = self._waiters.get(key)
        if not waiters:
            return
        rv = _rv(new) if new is not None else 0
        for w in list(waiters):
            if new is not None and rv < w.min_rv:
                continue
            w.last = new
            verdict = w.check(new)
            if verdict is not None:
                waiters.remove(w)
                w.event.succeed(verdict)
        if not waiters:
            del self._waiters[key]

    def watch(
        self,
        namespace: str,
        name: str,
        check: Check,
        *,
        timeout: float | None,
        min_rv: int = 0,
        initial: Sandbox | None = None,
    ) -> Op:
        """Wait, driven by this Claimer's cache, until ``check`` gives a verdict.

        ``initial`` (if given) and the cached copy are checked first; then each
        watch event of the sandbox with a resourceVersion of at least
        ``min_rv``. Return ``(verdict, last_seen)``; the verdict is ``None``
        when ``timeout`` seconds (``None``: no limit) passed first.
        """
        key = f"{namespace}/{name}"
        last = initial
        for obj in (initial, self.cache.get("Sandbox", namespace, name)):
            if obj is None or _rv(obj) < min_rv:
                continue
            last = obj
            verdict = check(obj)
            if verdict is not None:
                return verdict, last
        env = self.ctx.env
        event = env.event()
        waiter = _Waiter(event, check, min_rv, last)
        self._waiters.setdefault(key, []).append(waiter)
        timer: simpy.Timeout | None = None
        if timeout is not None:
            timer = env.timeout(max(timeout, 0.0))
            timer.callbacks.append(lambda _ev: _expire(event))
        try:
            result = yield event
        finally:
            if timer is not None and timer.callbacks:
                # A SimPy timer cannot be cancelled: one still pending stays queued
                # until its time, so it must not keep the verdict (a Sandbox) alive.
                timer.callbacks = []
            waiters = self._waiters.get(key)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[key]
        if result is _TIMED_OUT:
            return None, waiter.last
        return result, waiter.last

    # -- the attempt -------------------------------------------------------------------

    def _pool(self, namespace: str, template: str) -> tuple[Any, SandboxSet | None]:
        cache = self.cache
        if namespace:
            sbs = cache.get("SandboxSet", namespace, template)
            pool = cache.by_index("Sandbox", "pool", f"{PICKABLE_PREFIX}{namespace}/{template}")
        else:
            # Admin: same-named pools of every namespace; the first SandboxSet in cache order.
            sbs = next(cache.by_index("SandboxSet", "name", f"*/{template}"), None)
            pool = cache.by_index("Sandbox", "pool", f"{PICKABLE_PREFIX}*/{template}")
        return pool, sbs

    def pick_choices(self, opts: ClaimOptions) -> list[Sandbox]:
        """The sandboxes an attempt of ``opts`` picking now could take (none if it would create).

        What :meth:`try_claim`'s pick would choose among, read from the cache
        as the pick reads it; nothing is drawn, waited for or changed.
        """
        pool, sbs = self._pool(opts.namespace, opts.template)
        return pick_choices(
            pool,
            update_revision=sbs.status.update_revision if sbs is not None else None,
            in_flight=self._in_flight.keys(),
            now=self.ctx.now_dt(),
            window=opts.candidate_count,
            is_fresh=self.is_fresh,
            prefiltered=True,
            suspects=self._expect,
        )

    def _new_sandbox(self, sbs: SandboxSet) -> Sandbox:
        """A no-stock sandbox of ``sbs``, its templateRef resolved (§5.2 "create new")."""
        if sbs.spec.template_ref is None:
            return new_sandbox_from_sandboxset(sbs, for_claim=True)
        resolved = self.world.pod_template(sbs, self.cache)
        if resolved is None:
            meta = sbs.metadata
            raise InternalError(
                f"sandboxtemplate {meta.namespace}/{sbs.spec.template_ref.name} "
                f"(templateRef of sandboxset {meta.name}) not found",
                reason="NotFound",
            )
        return new_sandbox_from_sandboxset(sbs, for_claim=True, resolved=resolved)

    def try_claim(
        self, opts: ClaimOptions, record: ClaimRecord, *, modifier: Modifier | None = None
    ) -> Op:
        """One claim attempt; return the claimed Sandbox or raise a :class:`ClaimError`.

        Fills ``record``'s phases for this attempt (``worker_acquired``,
        ``picked``, ``locked``, ``ready``, ``runtime_initialized``,
        ``mounted``; earlier attempts' values are cleared), ``lock_type``,
        ``cold_reason`` (why a ``create`` attempt found nothing to pick),
        ``sandbox`` and ``pick_failures``. An interrupt (the caller's deadline)
        is honoured at any wait; after the lock it first cleans up the sandbox.
        It leaves as an :class:`~simulator.cut.AttemptCut` whose error names
        the wait it cut (the retry loop's last error).
        """
        ctx = self.ctx
        env = ctx.env
        record.worker_acquired = record.picked = record.locked = None
        record.ready = record.runtime_initialized = record.mounted = None
        record.lock_type = record.cold_reason = None
        record.sandbox = None

        slots = self.worker_slots
        request = slots.request() if slots is not None else None
        holding = request is not None
        picked_key: str | None = None
        # What the attempt waits for before its lock: named if the context cuts it there.
        stage: _Stage = "worker"
        try:
            if request is not None:
                yield request
            record.worker_acquired = ctx.now()

            # -- pick -----------------------------------------------------------
            stage = "pick"
            yield env.timeout(ctx.latency("manager.pick"))
            if ctx.faults.injected and self.client.stall_name is not None:
                yield from self._held()
            now_dt = ctx.now_dt()
            pool, sbs = self._pool(opts.namespace, opts.template)
            update_revision = sbs.status.update_revision if sbs is not None else None
            result = select_candidate(
                pool,
                update_revision=update_revision,
                in_flight=self._in_flight.keys(),
                rng=ctx.rng,
                now=now_dt,
                window=opts.candidate_count,
                is_fresh=self.is_fresh,
                prefiltered=True,
                suspects=self._expect,
            )
            lock_type: Literal["update", "create"]
            if result.sandbox is not None:
                target = result.sandbox
                picked_key = sandbox_key(target)
                self._in_flight[picked_key] = None
                lock_type = "update"
                record.sandbox = picked_key
            elif opts.create_on_no_stock:
                if sbs is None:
                    raise InternalError(
                        f"sandboxset {opts.namespace}/{opts.template} not found", reason="NotFound"
                    )
                limiter = self.create_limiter
                if limiter is not None and not limiter.allow():
                    self._pick_failed(record, NoAvailableError(RATE_LIMITED))
                target = self._new_sandbox(sbs)
                lock_type = "create"
                # Said here, by the pick itself: samples of the pool's level taken
                # between steps cannot tell an empty pool from a busy window.
                record.cold_reason = _cold_reason(result)
            else:
                self._pick_failed(record, no_available_error(result))
            record.picked = ctx.now()
            record.lock_type = lock_type

            # -- modify (on a copy) and lock ---------------------------------------
            claimed = modify_for_claim(target, opts, now_dt)
            if modifier is not None:
                modifier(claimed)
            api = self.world.api
            if lock_type == "update":
                stage = "lock"
                try:
                    stored: Sandbox = yield from api.update(self.client, claimed)
                except ApiError as exc:
                    assert picked_key is not None
                    if exc.code == 409:
                        # The cached copy is stale: skip it until the cache moves on.
                        self.expect(target, _rv(target) + 1)
                        ctx.record("claim.conflict", f"{self.name} {picked_key}")
                    err = update_lock_error(exc.code, exc.message, reason=exc.reason)
                    if isinstance(err, LockConflictError):
                        self._pick_failed(record, err)
                    raise err from exc
            else:
                stage = "create"
                try:
                    stored = yield from api.create(self.client, claimed)
                except ApiError as exc:
                    raise create_lock_error(exc.code, exc.message, reason=exc.reason) from exc
            key = sandbox_key(stored)
            self.expect(stored)
            record.sandbox = key
            record.locked = ctx.now()
            if lock_type == "update":
                # The lock took it out of its pool: the set's claimed counter.
                self.world.metrics.sandbox_claimed(target)
            ctx.record("claim.locked", f"{self.name} {key} {lock_type}")
            if request is not None and slots is not None:
                # The worker is freed as soon as the lock is written.
                slots.release(request)
                holding = False

            # -- post-process ------------------------------------------------------
            latest = stored
            try:
                if needs_wait_ready(lock_type, opts):
                    latest = yield from self._wait_ready(stored, opts)
                    record.ready = ctx.now()
                if opts.init_runtime is not None:
                    if ctx.faults.injected and self.client.stall_name is not None:
                        yield from self._held()
                    yield from self.runtime.init(latest, opts.init_runtime, record)
                    record.runtime_initialized = ctx.now()
                if opts.csi_mounts:
                    if ctx.faults.injected and self.client.stall_name is not None:
                        yield from self._held()
                    yield from self.runtime.mount(latest, opts.csi_mounts)
                    record.mounted = ctx.now()
                if ctx.faults.injected and self.client.stall_name is not None:
                    yield from self._held()
            except (ClaimError, simpy.Interrupt) as exc:
                reason = exc.reason if isinstance(exc, ClaimError) else "Interrupted"
                ctx.record("claim.post_failed", f"{self.name} {key} {reason}")
                yield from shielded(env, self._clear_failed(latest, opts))
                raise
            return latest
        except simpy.Interrupt as exc:
            # Cut before the lock (a wait after it names itself): say where.
            ctx_err = context_error(exc)
            waited = _waited_for(stage, opts, picked_key)
            raise cut(exc, type(ctx_err)(f"failed to {waited}: {ctx_err}")) from exc
        finally:
            if picked_key is not None:
                self._in_flight.pop(picked_key, None)
            if holding and request is not None and slots is not None:
                request.cancel()
                slots.release(request)

    def _held(self) -> Op:
        """Wait while a ``controller_stall`` holds the component this claimer works for.

        The SandboxClaim controller's attempts stop at each step (the pick, the
        ``/init``, the mounts, the answer) while it is stalled, as its API
        requests do (:meth:`ApiServer.held`); the manager's client has no stall name.
        Callers test ``ctx.faults.injected and self.client.stall_name is not None``
        inline first, as ``ApiServer._request`` does: a claim without faults (the
        hot path) then makes no generator and no call per step.
        """
        yield from self.world.api.held(self.client)

    def _pick_failed(self, record: ClaimRecord, err: ClaimError) -> NoReturn:
        record.pick_failures[err.reason] = record.pick_failures.get(err.reason, 0) + 1
        raise err

    def _wait_ready(self, stored: Sandbox, opts: ClaimOptions) -> Op:
        ctx = self.ctx
        meta = stored.metadata
        timeout = opts.wait_ready_timeout.total_seconds() if opts.wait_ready_timeout else None
        try:
            verdict, last = yield from self.watch(
                meta.namespace,
                meta.name,
                lambda obj: ready_verdict(obj, ctx.now_dt()),
                timeout=timeout,
                min_rv=_rv(stored),
                initial=stored,
            )
        except simpy.Interrupt as exc:
            # The claim's context ended first: the wait reports what it last saw, as at its
            # own timeout, and what ended it. The watch follows this cache, so its copy
            # is the last one the wait was shown.
            cached = self.cache.get("Sandbox", meta.namespace, meta.name)
            seen = cached if cached is not None and _rv(cached) >= _rv(stored) else stored
            diagnosis = self._not_ready(seen)
            raise cut(
                exc,
                WaitReadyTimeoutError(
                    f"{diagnosis}: {context_error(exc)}", reason=diagnosis.reason
                ),
            ) from exc
        if isinstance(verdict, Sandbox):
            return verdict
        if isinstance(verdict, ClaimError):
            raise verdict
        if verdict is _DELETED:
            raise WaitReadyTimeoutError(
                f"sandbox {meta.namespace}/{meta.name} was deleted before it became ready",
                reason="SandboxDeleted",
            )
        raise self._not_ready(last if last is not None else stored)

    def _not_ready(self, seen: Sandbox) -> WaitReadyTimeoutError:
        """Upstream's wait-ready diagnosis of the last copy the wait saw."""
        meta = seen.metadata
        state, reason = sandbox_state(seen, self.ctx.now_dt())
        return WaitReadyTimeoutError.diagnose(
            meta.namespace, meta.name, reason=reason, state=str(state), ready=is_ready(seen)
        )

    def _clear_failed(self, sbx: Sandbox, opts: ClaimOptions) -> Op:
        """Delete the failed sandbox, or write its reserved copy (``clearFailedSandbox``)."""
        ctx = self.ctx
        api = self.world.api
        meta = sbx.metadata
        key = sandbox_key(sbx)
        if failed_sandbox_cleanup(sbx, opts.reserve_failed_for, ctx.now_dt()) is None:
            try:
                marked = yield from api.delete(self.client, "Sandbox", meta.namespace, meta.name)
            except ApiError as exc:
                if not exc.is_not_found:
                    # Upstream #410: the locked sandbox leaks.
                    ctx.record("claim.cleanup_failed", f"{self.name} {key} {exc.code}")
                    return None
                marked = None
            # The cache must show the deletion (or its mark) before a copy of
            # this sandbox counts again (see is_fresh), even when it holds no
            # copy now: it may not have shown the sandbox's ADDED event yet.
            if marked is not None:
                self.expect(marked)
            else:
                self._expect_gone(sbx)
            ctx.record("claim.cleanup", f"{self.name} {key} deleted")
            return None
        current = sbx
        for attempt in range(_CONFLICT_RETRY_STEPS):
            reserved = failed_sandbox_cleanup(current, opts.reserve_failed_for, ctx.now_dt())
            assert reserved is not None
            try:
                stored = yield from api.update(self.client, reserved)
            except ApiError as exc:
                if exc.is_conflict and attempt + 1 < _CONFLICT_RETRY_STEPS:
                    yield ctx.env.timeout(jitter(0.01, 0.1, ctx.rng))
                    try:
                        current = yield from api.get(
                            self.client, "Sandbox", meta.namespace, meta.name
                        )
                    except ApiError as read:
                        # RetryOnConflict returns the Get's error: the cleanup failed
                        # (#410, the sandbox stays as it is), unless the sandbox is gone.
                        if not read.is_not_found:
                            ctx.record("claim.cleanup_failed", f"{self.name} {key} {read.code}")
                        return None
                    continue
                ctx.record("claim.cleanup_failed", f"{self.name} {key} {exc.code}")
                return None
            self.expect(stored)
            ctx.record("claim.cleanup", f"{self.name} {key} reserved")
            return None
        return None
