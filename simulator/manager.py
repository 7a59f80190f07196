"""The sandbox-manager: the E2B-level operations with upstream's semantics and status codes.

:class:`SandboxManager` is what the E2B API of reference §6 does behind its
HTTP handlers: create (a claim through the shared :class:`~simulator.claim.Claimer`
with the retry loop of §5.3), describe, kill, set timeout, pause, connect /
resume and list. Errors are :class:`~pytest_kruise_agents.claiming.errors.ClaimError`
subclasses whose ``code`` is the HTTP status the real manager answers (§6.2,
§6.5, §6.9), quirks included: ``/timeout`` answers 500 for anything but 404,
list filters answer 400, a sandbox the caller does not own is a 404.

Like upstream, the manager reads its informer cache, and keeps a route table
of its own writes (claim, timeout, pause, resume, kill), so that a client that
describes its sandbox right after creating it sees it even before the watch
event arrives; the newer resourceVersion wins. A write is kept only until the
cache has seen it: kept longer, it would outlive the sandbox's deletion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxPhase, SandboxState
from pytest_kruise_agents.claiming.errors import (
    BadRequestError,
    ClaimCanceledError,
    ClaimError,
    ClaimTimeoutError,
    ConflictError,
    InternalError,
    LockConflictError,
    NoAvailableError,
    NotFoundError,
    PickFailure,
    RawError,
    RetryExhaustedError,
    add_pick_failure,
    create_http_code,
    wrapped_raw_error,
)
from pytest_kruise_agents.claiming.extensions import (
    TOKEN_STAND_IN,
    CreateRequest,
    CreateSpec,
    E2BCreateOptions,
    e2b_claim_options,
    parse_create_metadata,
    with_access_token,
)
from pytest_kruise_agents.claiming.listing import (
    LIST_STATES,
    MAX_LIST_LIMIT,
    decode_next_token,
    encode_next_token,
    page,
    started_after_key,
    validate_list_query,
)
from pytest_kruise_agents.claiming.modification import (
    ClaimOptions,
    check_inplace_target,
    validate_claim_options,
)
from pytest_kruise_agents.claiming.ownership import owns_route, route_not_found
from pytest_kruise_agents.claiming.recycle import (
    ANN_CLEANUP,
    can_recycle_on_kill,
    recycle_pending,
    recycle_requested,
)
from pytest_kruise_agents.claiming.retry import (
    CLAIM_RETRY,
    FixedInterval,
    RetrySchedule,
    jitter,
)
from pytest_kruise_agents.claiming.state import (
    is_claimed,
    is_pause_settled,
    is_ready,
    is_reserved_failed,
    sandbox_key,
    sandbox_state,
)
from pytest_kruise_agents.claiming.timeouts import (
    MAX_TIMEOUT_S,
    PAUSE_WAIT_S,
    check_pause_retention,
    create_times,
    extend_only_times,
    pause_times,
    paused_retention,
    resume_times,
    set_timeout_times,
    validate_create_timeout,
    validate_timeout_update,
)
from pytest_kruise_agents.claiming.view import e2b_state, sandbox_id, sandbox_id_keys
from simulator.apiserver import ApiError
from simulator.claim import Claimer, Modifier, Op, shielded
from simulator.cut import AttemptCut
from simulator.metrics import Operation
from simulator.ratelimit import TokenBucket
from simulator.records import ClaimRecord
from simulator.runtime import AgentRuntime
from simulator.world import World

__all__ = [
    "CREATE_CALL_BOUND_S",
    "LIST_STATES",
    "MAX_LIST_LIMIT",
    "PAUSE_WAIT_S",
    "RESUME_WAIT_S",
    "TEMPLATE_NOT_FOUND",
    "SandboxManager",
    "decode_next_token",
    "e2b_state",
    "encode_next_token",
    "route_not_found",
    "sandbox_id",
]

RESUME_WAIT_S: Final = 600.0
"""A resume waits at most this long for the sandbox to be running and ready."""

CREATE_CALL_BOUND_S: Final = 86_400.0
"""How long (simulated seconds, one day) a create call waits for an answer when its claim
has no timeout of its own (HEAD's default: no ``claim-timeout-seconds``), as an E2B
client's request timeout bounds it. Past it the call gives up as a client going away:
the claim is cancelled, cleans up, and the call raises
:class:`~simulator.errors.NoAnswerError`. Far above the ~3,100 s an unanswerable HEAD
create takes when each attempt's sandbox times out. See :meth:`SandboxManager.call_bound`."""
_CONFLICT_RETRY_STEPS: Final = 5
TEMPLATE_NOT_FOUND: Final = "Template or Checkpoint not found"


def _template_label(sbx: Sandbox) -> str:
    labels = sbx.metadata.labels
    return labels.get(keys.LABEL_SANDBOX_TEMPLATE) or labels.get(keys.LABEL_SANDBOX_POOL, "")


def _owner_keys(sbx: Any) -> Iterable[str]:
    owner = sbx.metadata.annotations.get(keys.ANN_OWNER)
    if not owner:
        return ()
    return (f"{sbx.metadata.namespace}/{owner}", f"*/{owner}")


def _rv(obj: Any) -> int:
    return int(obj.metadata.resource_version or 0)


class _Gone:
    """A watch verdict: the sandbox was deleted."""


_GONE: Final = _Gone()


def _still_owned(obj: Sandbox, uid: str | None, user: str) -> bool:
    """Whether ``obj`` is still the sandbox ``uid`` of ``user`` (not replaced, not recycled to another)."""
    return obj.metadata.uid == uid and obj.metadata.annotations.get(keys.ANN_OWNER) == user


class _DeleteInstead(Exception):
    """A kill found the sandbox no longer recyclable on its fresh read: it is deleted."""


class _PausedMeanwhile(Exception):
    """A connect read the sandbox running, but its fresh read is paused (its pauseTime came):
    it is resumed instead of extended."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox.metadata.name)
        self.sandbox = sandbox


class SandboxManager:
    """The sandbox-manager's E2B operations over ``world.manager_cache`` (see the module docstring).

    The caller is a ``namespace`` (the API key's team; ``""`` for the admin
    team, which sees every namespace) and a ``user`` (the API key id, which
    owns the sandboxes it creates). Objects returned come from the cache or
    the API server: never mutate them.
    """

    def __init__(self, world: World, runtime: AgentRuntime) -> None:
        self.world = world
        self.ctx = world.ctx
        self.runtime = runtime
        prof = self.ctx.profile
        self.cache = world.manager_cache
        self.client = world.manager_client
        self.claimer = Claimer(
            world,
            name="manager",
            cache=self.cache,
            client=self.client,
            runtime=runtime,
            worker_slots=simpy.Resource(self.ctx.env, capacity=prof.claim_workers),
            create_limiter=TokenBucket(self.ctx.now, prof.create_qps, prof.create_burst),
        )
        self.cache.add_index("Sandbox", "owner", _owner_keys)
        # The route table's own writes: "ns/name" -> the object we wrote last,
        # or None once we deleted it; dropped when the cache catches up.
        self._routes: dict[str, Sandbox | None] = {}
        # The newest resourceVersion of a Sandbox the cache has applied. Watch
        # events reach it in commit order, so it has seen every version up to
        # this one, and whatever deletion followed a version it has seen.
        self._cache_rv = max((_rv(s) for s in self.cache.list("Sandbox")), default=0)
        self.cache.add_handler("Sandbox", self._on_sandbox)

    def start(self) -> None:
        """Nothing to launch: the manager acts only when called."""

    # -- the route table ----------------------------------------------------------

    def _on_sandbox(self, event_type: str, old: Any, new: Any) -> None:
        if new is not None:
            rv = _rv(new)
            if rv > self._cache_rv:
                self._cache_rv = rv
        routes = self._routes
        if not routes:
            return
        obj = new if new is not None else old
        key = f"{obj.metadata.namespace}/{obj.metadata.name}"
        if key not in routes:
            return
        own = routes[key]
        if new is None or (own is not None and _rv(new) >= _rv(own)):
            del routes[key]

    def _remember(self, sbx: Sandbox) -> None:
        """Keep our write ``sbx`` in the route table until the cache has seen it.

        A version the cache has already seen is not kept: the cache answers
        with it or a newer one, or the sandbox has since been deleted (a
        create whose sandbox went during its ``/init``), and the DELETED event
        that would have dropped the entry has come and gone: the copy would
        read running for ever.
        """
        if _rv(sbx) > self._cache_rv:
            self._routes[sandbox_key(sbx)] = sbx

    def lookup(self, sid: str) -> Sandbox | None:
        """The newest copy of sandbox ``sid`` (route table or cache), without any ownership check."""
        return self._lookup(sid)

    def _lookup(self, sid: str) -> Sandbox | None:
        """The sandbox whose id is ``sid``, as the route table keyed by the id finds it.

        Every reading of the id is looked up (a namespace may hold ``--``);
        should two sandboxes share the id, the newer version wins, as in
        upstream's table.
        """
        found: Sandbox | None = None
        for ns, name in sandbox_id_keys(sid):
            sbx = self._lookup_key(ns, name)
            if sbx is not None and (found is None or _rv(sbx) > _rv(found)):
                found = sbx
        return found

    def _lookup_key(self, ns: str, name: str) -> Sandbox | None:
        cached: Sandbox | None = self.cache.get("Sandbox", ns, name)
        key = f"{ns}/{name}"
        if key in self._routes:
            own = self._routes[key]
            if own is None:
                return None
            if cached is None or _rv(cached) < _rv(own):
                return own
            del self._routes[key]
        return cached

    def _owned(self, namespace: str, user: str, sid: str) -> Sandbox:
        """The caller's sandbox ``sid`` from the route table, or the 404 of the auth middleware."""
        sbx = self._lookup(sid)
        if sbx is None or not owns_route(
            namespace, user, sbx.metadata.namespace, sbx.metadata.annotations.get(keys.ANN_OWNER)
        ):
            raise route_not_found(sid)
        return sbx

    def _viewable(self, sbx: Sandbox) -> str | None:
        """The E2B state ``sbx`` shows, or ``None`` when it is hidden (404).

        Hidden as the list hides it: a reserved failure, or a cached copy older
        than a write of ours to it (§5.6, §6.7). A claim that failed after its
        lock labels its sandbox reserved: until the cache has that write, the
        copy it holds still reads as claimed and running.
        """
        if is_reserved_failed(sbx) or not self.claimer.is_fresh(sbx):
            return None
        return e2b_state(sbx, self.ctx.now_dt())

    # -- templates ------------------------------------------------------------------

    def has_template(self, namespace: str, template: str) -> bool:
        """Whether a SandboxSet ``template`` exists in ``namespace`` (any namespace for ``""``)."""
        if namespace:
            return self.cache.get("SandboxSet", namespace, template) is not None
        return self.cache.index_size("SandboxSet", "name", f"*/{template}") > 0

    # -- create -----------------------------------------------------------------------

    def create_sandbox(
        self,
        *,
        namespace: str,
        user: str,
        template: str,
        timeout_s: int | None = None,
        auto_pause: bool = False,
        metadata: dict[str, str] | None = None,
        env_vars: dict[str, str] | None = None,
        volume_mounts: list[dict[str, str]] | None = None,
        allow_internet_access: bool | None = None,
        record: ClaimRecord | None = None,
    ) -> Op:
        """:meth:`create` of a request given as keywords (the model's own workloads make these).

        The keywords are taken as given, unchecked and uncopied, as the
        manager always took them: a caller with arguments from outside checks
        them with :func:`~pytest_kruise_agents.claiming.extensions.create_spec`
        and calls :meth:`create`.
        """
        request = CreateRequest(
            template=template,
            timeout=timeout_s,
            auto_pause=auto_pause,
            metadata=metadata or {},
            env_vars=env_vars or {},
            volume_mounts=volume_mounts,
            allow_internet_access=allow_internet_access,
        )
        return self.create(CreateSpec(namespace=namespace, user=user, request=request), record)

    def create(self, spec: CreateSpec, record: ClaimRecord | None = None) -> Op:
        """``POST /sandboxes`` (claim): return the claimed Sandbox or raise a coded ClaimError.

        The request is validated (timeout 30 s…30 d, extension metadata,
        volume mounts, env vars' size, template exists, an in-place update
        the pick's sandboxes can take: 400) before anything changes or is
        drawn; then the claim runs with the profile's retry
        loop, bounded by the claim timeout if any. Interrupting the process
        cancels the request's context (its client went away): the attempt in
        progress stops at its current wait, cleans up what it locked, and the
        create fails with :class:`ClaimCanceledError`. Every create leaves a
        record that completes: delivered, or failed with its error (an
        unexpected exception too, recorded as a 500 before it propagates).
        """
        ctx = self.ctx
        namespace, user, template = spec.namespace, spec.user, spec.request.template
        if record is None:
            record = self.world.records.new(
                path="e2b", namespace=namespace, template=template, owner=user, requested=ctx.now()
            )
        who = f"{namespace or '*'}/{template} user={user}"
        try:
            opts, modifier = self._create_options(spec)
            try:
                sbx: Sandbox = yield from self._claim(opts, record, modifier)
            except simpy.Interrupt:
                raise ClaimCanceledError() from None
        except ClaimError as err:
            err.code = create_http_code(err)
            self._claim_failed(record, who, str(err), err.code, err.reason)
            raise
        except Exception as exc:
            # Not a claim error: a defect, but the record must not wait for ever.
            self._claim_failed(record, who, f"{type(exc).__name__}: {exc}", 500, "InternalError")
            raise
        key = sandbox_key(sbx)
        self._remember(sbx)
        record.delivered = ctx.now()
        self.world.metrics.claim_ended(record)
        ctx.record(
            "manager.claim",
            f"{key} user={user} lock={record.lock_type} attempts={record.attempts}",
        )
        return sbx

    def _claim_failed(
        self, record: ClaimRecord, who: str, error: str, code: int, reason: str
    ) -> None:
        """Complete ``record`` as failed, and log it (``who``: ``<namespace>/<template> user=<user>``)."""
        record.failed = self.ctx.now()
        record.error = error
        record.error_code = code
        record.error_reason = reason
        self.world.metrics.claim_ended(record)
        self.ctx.record(
            "manager.claim_failed",
            f"{who} code={code} reason={reason} attempts={record.attempts}",
        )

    def check_create(self, spec: CreateSpec) -> None:
        """Raise the 400 :meth:`create` would answer whatever the cluster holds, if any.

        The request's own rules only (timeout, metadata, volume mounts, env
        vars' size), not whether the template exists: nothing is read, drawn,
        recorded or logged. A burst of creates checks its request once here.
        """
        self._checked_options(spec, check_template=False)

    def refuse_create(self, spec: CreateSpec) -> None:
        """Raise the 400 :meth:`create` of ``spec`` answers before it draws anything, if any.

        :meth:`check_create`'s rules and whether the template exists, checked
        at the call, before any event of the model runs. A refusal is recorded
        and logged as :meth:`create` records and logs it; nothing is drawn.
        """
        try:
            self._checked_options(spec, check_template=True)
        except ClaimError as err:
            namespace, user, template = spec.namespace, spec.user, spec.request.template
            record = self.world.records.new(
                path="e2b",
                namespace=namespace,
                template=template,
                owner=user,
                requested=self.ctx.now(),
            )
            err.code = create_http_code(err)
            self._claim_failed(
                record, f"{namespace or '*'}/{template} user={user}", str(err), err.code, err.reason
            )
            raise

    def call_bound(self, spec: CreateSpec) -> float | None:
        """How long a create call of ``spec`` waits at most: :data:`CREATE_CALL_BOUND_S`
        when its claim has no timeout of its own, else ``None`` (the claim ends by then).

        The model does not apply it: a caller driving virtual time (``Cluster``'s
        create, a virtual ``SimBackend``) stops running the model there.
        """
        try:
            claim_timeout = self.claim_timeout_of(spec)
        except ClaimError:
            return None  # refused at once by the claim itself
        return CREATE_CALL_BOUND_S if claim_timeout is None else None

    def claim_timeout_of(self, spec: CreateSpec) -> float | None:
        """The claim timeout (seconds) a create of ``spec`` runs under, or ``None`` if it has none.

        Its ``claim-timeout-seconds``, else the profile's default (HEAD has none).
        Raises the 400 :meth:`check_create` would; nothing is read, drawn or logged.
        """
        opts = self._checked_options(spec, check_template=False)[0]
        return None if opts.claim_timeout is None else opts.claim_timeout.total_seconds()

    def _create_options(self, spec: CreateSpec) -> tuple[ClaimOptions, Modifier]:
        """The claim options and modifier of a create; every 400 is raised before the token is drawn.

        The token is the request's first draw from the seeded generator: drawn
        for a create then refused, it would change every later pick of the run.
        """
        ctx = self.ctx
        opts, ext, timeout = self._checked_options(spec, check_template=True)
        opts = with_access_token(opts, self.world.api.new_token())
        auto_pause = spec.request.auto_pause

        def modifier(sbx: Sandbox) -> None:
            # basicSandboxCreateModifier computes the end times when the picked
            # sandbox is modified, not when the request arrived (retries move it).
            if not ext.never_timeout:
                sbx.spec.shutdown_time, sbx.spec.pause_time = create_times(
                    ctx.now_dt(),
                    timeout,
                    auto_pause=auto_pause,
                    never_timeout=False,
                    paused_retention=ext.reserve_paused_duration,
                )

        return opts, modifier

    def _checked_options(
        self, spec: CreateSpec, *, check_template: bool
    ) -> tuple[ClaimOptions, E2BCreateOptions, int]:
        """The options of a create with a stand-in token, its parsed metadata and timeout; or its 400.

        In upstream's order: the request's timeout and metadata, then (when
        ``check_template``) whether the template exists, then what
        ``ValidateAndInitClaimOptions`` and the lock write would refuse; last
        (when ``check_template``) an in-place update that a sandbox the pick
        could take has no inline pod template for, which the modification
        would refuse after the pick's draws.
        """
        ctx = self.ctx
        prof = ctx.profile
        request = spec.request
        timeout = int(prof.default_timeout_s) if request.timeout is None else request.timeout
        validate_create_timeout(timeout, max_timeout_s=MAX_TIMEOUT_S)
        ext = parse_create_metadata(request.metadata, volume_mounts=request.volume_mounts)
        if check_template and not self.has_template(spec.namespace, request.template):
            # Upstream falls through to the clone path, whose NotFound answers 400.
            raise NotFoundError(TEMPLATE_NOT_FOUND, code=400)
        opts = e2b_claim_options(
            ext,
            namespace=spec.namespace,
            user=spec.user,
            template=request.template,
            lock_string="",
            access_token=TOKEN_STAND_IN,
            now=ctx.now_dt(),
            timeout_s=timeout,
            auto_pause=request.auto_pause,
            env_vars=request.env_vars,
            allow_internet_access=request.allow_internet_access,
            candidate_count=prof.candidate_count,
            default_claim_timeout_s=prof.e2b_default_claim_timeout_s,
            default_wait_ready_timeout_s=prof.e2b_default_wait_ready_timeout_s,
        )
        validate_claim_options(opts)
        if check_template and opts.inplace_update:
            # The pick would take a sandbox whose image or CPU cannot change: said
            # now, as the pick would say it, before the token and the pick's draws.
            for sbx in self.claimer.pick_choices(opts):
                check_inplace_target(sbx, opts)
        return opts, ext, timeout

    def _schedule(self, claim_timeout: float | None) -> RetrySchedule:
        prof = self.ctx.profile
        if prof.retry != "fixed":
            return CLAIM_RETRY
        if claim_timeout is not None:
            return FixedInterval.for_timeout(claim_timeout)
        # Upstream's steps are ClaimTimeout/25 ms of a 100-year ClaimTimeout: endless, so
        # the client's disconnect ends the loop. The model stops at the profile's budget.
        return FixedInterval(steps=prof.fixed_retry_attempts)

    def _exhausted(
        self, claim_timeout: float | None, last: ClaimError | None, failures: list[PickFailure]
    ) -> RetryExhaustedError:
        """The error of a loop whose schedule ran out: the profile's budget says it ended it."""
        prof = self.ctx.profile
        if prof.retry == "fixed" and claim_timeout is None:
            cause = (
                f"retry budget exhausted: {prof.fixed_retry_attempts} attempts, "
                "the profile's fixed_retry_attempts (no claim timeout)"
            )
            return RetryExhaustedError(cause, last_error=last, pick_failures=failures)
        return RetryExhaustedError(last_error=last, pick_failures=failures)

    def _claim(self, opts: ClaimOptions, record: ClaimRecord, modifier: Modifier) -> Op:
        """The retry loop of §5.3 around :meth:`Claimer.try_claim`."""
        ctx = self.ctx
        env = ctx.env
        claim_timeout = opts.claim_timeout.total_seconds() if opts.claim_timeout else None
        sleeps = self._schedule(claim_timeout).delays(ctx.rng)
        deadline = ctx.now() + claim_timeout if claim_timeout is not None else None
        # One deadline event per claim, raced by every attempt and backoff sleep: a
        # SimPy timeout cannot be cancelled, so a timer per attempt stayed queued
        # until the deadline (2,400 per waiting claim of a fixed 25 ms retry).
        expiry = env.timeout(claim_timeout) if claim_timeout is not None else None
        pool_key = f"{opts.namespace or '*'}/{opts.template}"
        failures: list[PickFailure] = []
        last: ClaimError | None = None
        while True:
            if deadline is not None and ctx.now() >= deadline:
                raise _deadline_error(last, failures)
            record.attempts += 1
            attempt = opts.with_lock(self.world.api.new_uid())
            outcome: Sandbox | ClaimError | None
            if expiry is None:
                try:
                    claimed: Sandbox = yield from self.claimer.try_claim(
                        attempt, record, modifier=modifier
                    )
                except ClaimError as err:
                    outcome = err
                else:
                    return claimed
            else:
                proc = env.process(self._guarded(attempt, record, modifier))
                try:
                    yield proc | expiry
                except simpy.Interrupt:
                    # The request's context is cancelled: so is the attempt's.
                    if proc.is_alive:
                        proc.interrupt(ClaimCanceledError())
                        yield from shielded(env, _ended(proc))
                        raise
                    if not isinstance(proc.value, Sandbox):
                        raise
                if proc.is_alive:
                    # The context deadline: the attempt stops at its current
                    # wait and cleans up what it locked before we answer.
                    proc.interrupt(ClaimTimeoutError())
                    ended = yield from shielded(env, _ended(proc))
                    raise _deadline_error(ended if ended is not None else last, failures)
                outcome = proc.value
                if isinstance(outcome, Sandbox):
                    return outcome
                if outcome is None:
                    raise _deadline_error(last, failures)
            if not outcome.retriable:
                if isinstance(outcome, RawError):
                    # Untyped: wrapped with what the earlier attempts met (§5.3 "Final error").
                    raise wrapped_raw_error(outcome, last, failures) from outcome
                raise outcome
            last = outcome
            if isinstance(outcome, NoAvailableError):
                failures = add_pick_failure(failures, pool_key, outcome.message)
            elif isinstance(outcome, LockConflictError):
                failures = add_pick_failure(failures, record.sandbox or pool_key, "conflict")
            sleep = next(sleeps, None)
            if sleep is None:
                raise self._exhausted(claim_timeout, last, failures)
            if expiry is not None and deadline is not None and ctx.now() + sleep >= deadline:
                yield expiry
                raise _deadline_error(last, failures)
            yield env.timeout(sleep)

    def _guarded(self, opts: ClaimOptions, record: ClaimRecord, modifier: Modifier) -> Op:
        """An attempt process that never fails: a Sandbox, or a ClaimError (the error of the wait
        an interrupt cut too), or None (interrupted before it began)."""
        try:
            sbx: Sandbox = yield from self.claimer.try_claim(opts, record, modifier=modifier)
        except ClaimError as err:
            return err
        except AttemptCut as cut:
            # Upstream's attempt returns the cut wait's error, which the loop keeps as
            # its last error before it answers the context's (§5.3).
            return cut.error
        except simpy.Interrupt:
            return None
        return sbx

    # -- describe / kill ---------------------------------------------------------------

    def describe(self, namespace: str, user: str, sid: str) -> Sandbox:
        """``GET /sandboxes/{id}``: the caller's running or paused sandbox, else 404."""
        sbx = self._owned(namespace, user, sid)
        if self._viewable(sbx) is None:
            raise route_not_found(sid)
        return sbx

    def check_kill(self, namespace: str, user: str, sid: str) -> Sandbox:
        """The caller's sandbox ``sid``, or the 404 :meth:`kill` answers at once."""
        return self._owned(namespace, user, sid)

    def kill(self, namespace: str, user: str, sid: str) -> Op:
        """``DELETE /sandboxes/{id}``: 404 without a route of the caller, else delete (204).

        A sandbox already gone, or not viewable (reserved failure), still
        answers 204. The decision is taken on a copy at least as new as the
        manager's own writes: a cached copy older than one (within the watch
        lag after a failed claim labelled its sandbox reserved) is re-read
        from the API server first. A Running sandbox with
        ``cleanup-enabled: "true"`` is recycled instead (if the profile
        recycles on kill): the kill sets the ``cleanup`` trigger and the
        Sandbox controller returns it to its pool
        (:mod:`pytest_kruise_agents.claiming.recycle`). The call's end is
        counted (``sandbox_delete_*``).
        """
        sbx = self.check_kill(namespace, user, sid)
        started = self.ctx.now()
        try:
            yield from self._delete(sid, sbx, user)
        except BaseException:
            self._ended("delete", sbx, started, ok=False)
            raise
        self._ended("delete", sbx, started, ok=True)
        return None

    def _ended(self, operation: Operation, sbx: Sandbox, started: float, *, ok: bool) -> None:
        """Count a pause, resume or delete call of ``sbx`` begun at ``started`` as ended now."""
        self.world.metrics.operation_ended(
            operation, sbx.metadata.namespace, started, self.ctx.now(), ok=ok
        )

    def _delete(self, sid: str, sbx: Sandbox, user: str) -> Op:
        """:meth:`kill` of the caller's ``sbx``, past the route check."""
        ctx = self.ctx
        if not self.claimer.is_fresh(sbx):
            # The cache has not seen a write of ours yet (a failed claim's reserve
            # write, say): its copy still reads claimed and running, and deciding
            # on it would delete or recycle the reserved failure. Decide on the
            # API server's copy instead, as the pause path does.
            fresh = yield from self._fresh_owned(sid, sbx, user)
            if fresh is None:
                return None  # already gone: route known, sandbox missing
            sbx = fresh
        meta = sbx.metadata
        key = sandbox_key(sbx)
        if is_reserved_failed(sbx):
            return None
        if ctx.profile.recycle_on_kill and can_recycle_on_kill(sbx):

            def trigger(cur: Sandbox) -> Sandbox | None:
                if cur.metadata.annotations.get(ANN_CLEANUP) == "true":
                    return None
                if not can_recycle_on_kill(cur):
                    # Paused (or pausing) since the cache was read: deleted instead.
                    raise _DeleteInstead
                new = cur.model_copy()
                new.metadata = cur.metadata.model_copy(
                    update={"annotations": {**cur.metadata.annotations, ANN_CLEANUP: "true"}}
                )
                return new

            try:
                yield from self._retry_update(sid, sbx, trigger, user=user)
            except _DeleteInstead:
                pass
            except NotFoundError as err:
                if not _gone_from_api(err):
                    raise  # no longer the caller's: 404
                # Deleted since the read (its shutdownTime came as the kill arrived): the
                # route was known, so 204 as for any sandbox already gone (§6.2).
                self._forget_killed(key, sbx)
                return None
            else:
                ctx.record("manager.recycle", key)
                return None
        try:
            yield from self.world.api.delete(self.client, "Sandbox", meta.namespace, meta.name)
        except ApiError as exc:
            if not exc.is_not_found:
                raise InternalError(exc.message) from exc
        self._forget_killed(key, sbx)
        return None

    def _forget_killed(self, key: str, sbx: Sandbox) -> None:
        """Drop the route of ``sbx``, killed (or found gone): a tombstone while the cache holds it."""
        meta = sbx.metadata
        if self.cache.get("Sandbox", meta.namespace, meta.name) is not None:
            self._routes[key] = None
        else:
            self._routes.pop(key, None)
        self.ctx.record("manager.kill", key)

    def _fresh_owned(self, sid: str, sbx: Sandbox, user: str) -> Op:
        """The API server's copy of ``sbx``, ``None`` once it is gone; 404 if no longer ``user``'s.

        No longer the caller's (recycled and claimed by another, or replaced)
        answers 404 as :meth:`_retry_update` does; any other read error 500.
        """
        meta = sbx.metadata
        try:
            fresh: Sandbox = yield from self.world.api.get(
                self.client, "Sandbox", meta.namespace, meta.name
            )
        except ApiError as exc:
            if exc.is_not_found:
                return None
            raise InternalError(exc.message) from exc
        if not _still_owned(fresh, meta.uid, user):
            raise route_not_found(sid)
        return fresh

    # -- writes with retry on conflict ----------------------------------------------------

    def _api_error(self, exc: ApiError, sid: str) -> ClaimError:
        if exc.is_not_found:
            return route_not_found(sid)
        if exc.code == 409:
            return ConflictError(exc.message)
        return InternalError(exc.message)

    def _retry_update(
        self,
        sid: str,
        first: Sandbox,
        mutate: Callable[[Sandbox], Sandbox | None],
        *,
        user: str,
    ) -> Op:
        """Read-modify-``Update`` under ``retry.RetryOnConflict(DefaultRetry)``.

        ``mutate`` returns the changed copy (``None``: nothing to write) or
        raises. The first read is ``first`` (usually the cache); after a
        conflict the sandbox is re-read from the API server. A read that is
        no longer ``user``'s sandbox (recycled and claimed by another, or
        replaced) answers 404 and writes nothing. Return the object as stored
        (or as read, if nothing was written).
        """
        ctx = self.ctx
        api = self.world.api
        meta = first.metadata
        current = first
        for attempt in range(_CONFLICT_RETRY_STEPS):
            if not _still_owned(current, meta.uid, user):
                raise route_not_found(sid)
            new = mutate(current)
            if new is None:
                return current
            try:
                stored: Sandbox = yield from api.update(self.client, new)
            except ApiError as exc:
                if not exc.is_conflict or attempt + 1 >= _CONFLICT_RETRY_STEPS:
                    raise self._api_error(exc, sid) from exc
                yield ctx.env.timeout(jitter(0.01, 0.1, ctx.rng))
                try:
                    current = yield from api.get(self.client, "Sandbox", meta.namespace, meta.name)
                except ApiError as get_exc:
                    raise self._api_error(get_exc, sid) from get_exc
                continue
            self.claimer.expect(stored)
            self._remember(stored)
            return stored
        raise InternalError(f"sandbox {sid}: too many conflicts")  # pragma: no cover

    # -- timeout ---------------------------------------------------------------------------

    def check_set_timeout(self, namespace: str, user: str, sid: str, timeout_s: int) -> Sandbox:
        """The caller's sandbox ``sid``, or what :meth:`set_timeout` answers at once: 404,
        or 500 for a timeout out of range (anything but a 404 answers 500)."""
        sbx = self._owned(namespace, user, sid)
        try:
            validate_timeout_update(timeout_s, max_timeout_s=MAX_TIMEOUT_S)
        except ClaimError as err:
            err.code = 500
            raise
        return sbx

    def set_timeout(self, namespace: str, user: str, sid: str, timeout_s: int) -> Op:
        """``POST /sandboxes/{id}/timeout``: the sandbox now ends ``timeout_s`` from now.

        UpdatePolicyAlways (may shorten); a never-timeout sandbox is left
        alone. A sandbox describe does not show (a reserved failure, a cached
        copy older than our own write to it, a dead one) answers 404, a paused
        one 500; anything but a 404 answers 500, as upstream does.
        """
        ctx = self.ctx
        sbx = self.check_set_timeout(namespace, user, sid, timeout_s)
        try:

            def mutate(cur: Sandbox) -> Sandbox | None:
                state = self._viewable(cur)
                if state is None:
                    # No sandbox to E2B (a reserved failure, §2), as describe answers.
                    raise route_not_found(sid)
                if state != "running":
                    raise BadRequestError(f"sandbox {sid} is not running")
                shutdown, pause = set_timeout_times(cur, ctx.now_dt(), timeout_s)
                if shutdown == cur.spec.shutdown_time and pause == cur.spec.pause_time:
                    return None
                return _with_times(cur, shutdown, pause)

            yield from self._retry_update(sid, sbx, mutate, user=user)
        except ClaimError as err:
            if err.code != 404:
                err.code = 500
            raise
        ctx.record("manager.timeout", f"{sandbox_key(sbx)} {timeout_s}s")
        return None

    # -- pause / connect / resume -------------------------------------------------------------

    def check_pause(
        self, namespace: str, user: str, sid: str, retention: timedelta | None = None
    ) -> Sandbox:
        """The caller's sandbox ``sid``, or what :meth:`pause` answers at once: 404, or 400
        for a retention <= 0 or longer than a Go duration holds (the header's own limit)."""
        sbx = self._owned(namespace, user, sid)
        check_pause_retention(retention)
        return sbx

    def pause(self, namespace: str, user: str, sid: str, retention: timedelta | None = None) -> Op:
        """``POST /sandboxes/{id}/pause``: pause and wait (≤ 60 s) until ``SandboxPaused=True``.

        An already paused sandbox is pausable (reference §6.5): only the first
        writer flips ``spec.paused`` and sets the times; a later pause writes
        nothing (its ``retention`` too) and waits like the first, 204. 409 when
        the sandbox is not pausable (not running and ready, a pool sandbox, or
        killed and being recycled); 404 for a sandbox describe does not show (a
        reserved failure, or dead: past its shutdownTime before the controller
        deletes it), which a pause must not revive. ``retention`` (the request
        header) overrides the persisted paused retention (default forever).
        Interrupting the process (the client went away) stops the wait with
        :class:`ClaimCanceledError`; a pause already written goes on. The
        call's end is counted (``sandbox_pause_*``).
        """
        ctx = self.ctx
        api = self.world.api
        sbx = self.check_pause(namespace, user, sid, retention)
        meta = sbx.metadata
        started = ctx.now()

        def mutate(cur: Sandbox) -> Sandbox | None:
            if is_claimed(cur) and self._viewable(cur) is None:
                # No sandbox to E2B, as describe and connect answer: a reserved failure
                # (§2), or a dead one (deleted, failed, past its shutdownTime: §1.3) the
                # controller has not removed yet. Paused, that one would live on for the
                # retention (forever by default). A pool sandbox keeps its 409 (§6.5).
                raise route_not_found(sid)
            if recycle_requested(cur):
                # Killed: it shows as paused until it rejoins its pool.
                raise ConflictError(f"sandbox {sid} is already paused (being recycled)")
            if cur.spec.paused:
                # Pausable (§6.5): the first writer flipped it and set its times; this
                # pause writes nothing and waits for SandboxPaused=True as that one does.
                return None
            if (
                not is_claimed(cur)
                or cur.metadata.deletion_timestamp is not None
                or cur.status.phase != SandboxPhase.RUNNING
                or not is_ready(cur)
            ):
                raise ConflictError(f"sandbox {sid} is not pausable")
            ret = retention if retention is not None else paused_retention(cur)
            shutdown, pause = pause_times(cur, ctx.now_dt(), ret)
            return _with_times(cur, shutdown, pause, paused=True)

        try:
            try:
                fresh: Sandbox = yield from api.get(
                    self.client, "Sandbox", meta.namespace, meta.name
                )
            except ApiError as exc:
                raise self._api_error(exc, sid) from exc
            stored: Sandbox = yield from self._retry_update(sid, fresh, mutate, user=user)
            ctx.record("manager.pause", sandbox_key(stored))
            yield from self._wait_paused(sid, stored)
        except simpy.Interrupt:
            # The request's context was cancelled (its client went away): the
            # wait stops; a pause already written goes on without it.
            ctx.record("manager.canceled", f"pause {sid}")
            self._ended("pause", sbx, started, ok=False)
            raise ClaimCanceledError() from None
        except BaseException:
            self._ended("pause", sbx, started, ok=False)
            raise
        self._ended("pause", sbx, started, ok=True)
        return None

    def _wait_paused(self, sid: str, sbx: Sandbox) -> Op:
        """Wait (≤ 60 s) until the pause of ``sbx`` has stopped its pod: ``SandboxPaused=True``."""
        meta = sbx.metadata

        def paused(obj: Sandbox | None) -> object | None:
            if obj is None:
                return _GONE
            return obj if is_pause_settled(obj) else None

        verdict, _ = yield from self.claimer.watch(
            meta.namespace, meta.name, paused, timeout=PAUSE_WAIT_S, min_rv=_rv(sbx), initial=sbx
        )
        if verdict is _GONE:
            raise route_not_found(sid)
        if verdict is None:
            raise InternalError(f"sandbox {sid} was not paused within {PAUSE_WAIT_S:g}s")
        return verdict

    def check_connect(self, namespace: str, user: str, sid: str, timeout_s: int) -> Sandbox:
        """The caller's sandbox ``sid``, or what :meth:`connect` answers at once: 404, or 400
        for a timeout out of range."""
        sbx = self._owned(namespace, user, sid)
        validate_timeout_update(timeout_s, max_timeout_s=MAX_TIMEOUT_S)
        return sbx

    def connect(self, namespace: str, user: str, sid: str, timeout_s: int) -> Op:
        """``POST /sandboxes/{id}/connect``: return ``(sandbox, resumed)``.

        A paused sandbox is resumed (timeout floored at
        ``profile.min_resume_timeout_s``, written with ``paused=false``; a
        pause still stopping the pod is awaited first, ≤ 60 s) and
        awaited until running and ready (≤ 10 min); then the timeout is
        extended, never shortened. Resume conflicts answer 400, other
        failures 500, unknown sandboxes 404, and so does one whose owner's
        kill set its recycle trigger, on any read (a re-read after a conflict
        too). Interrupting the process stops the wait with
        :class:`ClaimCanceledError`; a resume already written goes on. A
        resume's end is counted (``sandbox_resume_*``).
        """
        ctx = self.ctx
        sbx = self.check_connect(namespace, user, sid, timeout_s)
        resumed = False
        try:
            while True:
                state = self._viewable(sbx)
                if state is None:
                    raise route_not_found(sid)
                if state == "paused":
                    started = ctx.now()
                    try:
                        resumed_sbx = yield from self._resume_paused(sid, sbx, timeout_s, user)
                    except BaseException:
                        self._ended("resume", sbx, started, ok=False)
                        raise
                    self._ended("resume", sbx, started, ok=True)
                    sbx, resumed = resumed_sbx, True

                def extend(cur: Sandbox, resumed: bool = resumed) -> Sandbox | None:
                    if recycle_pending(cur):
                        # Killed by its owner since our read (the re-read after a
                        # conflict with the kill's trigger write shows it): no longer
                        # the caller's, as the resume below answers too. (A trigger
                        # the controller refuses leaves it the caller's, running.)
                        raise route_not_found(sid)
                    if cur.spec.paused and not resumed:
                        raise _PausedMeanwhile(cur)
                    shutdown, pause = extend_only_times(cur, ctx.now_dt(), timeout_s)
                    if shutdown == cur.spec.shutdown_time and pause == cur.spec.pause_time:
                        return None
                    return _with_times(cur, shutdown, pause)

                try:
                    sbx = yield from self._retry_update(sid, sbx, extend, user=user)
                except _PausedMeanwhile as paused:
                    # Its pauseTime came between our read and the write (the #296 race
                    # from the other side): resume it, as a connect to a paused one does.
                    sbx = paused.sandbox
                    continue
                break
        except ClaimError as err:
            if err.code not in (400, 404):
                err.code = 500
            raise
        except simpy.Interrupt:
            # Cancelled as a pause is: a resume already written goes on.
            ctx.record("manager.canceled", f"connect {sid}")
            raise ClaimCanceledError() from None
        return sbx, resumed

    def _resume_paused(self, sid: str, sbx: Sandbox, timeout_s: int, user: str) -> Op:
        """Resume the paused ``sbx`` for a connect and wait until it runs; return it running."""
        ctx = self.ctx
        meta = sbx.metadata
        if sbx.spec.paused and not is_pause_settled(sbx):
            # The API shows "paused" from the spec write on, while the
            # controller is still stopping the pod: let that finish, or
            # its status write (computed before the resume) would land
            # after ours and stop the sandbox we answer as running.
            # Upstream answers 400 here (not resumable); docs/fidelity.md.
            sbx = yield from self._wait_paused(sid, sbx)
        min_resume = int(ctx.profile.min_resume_timeout_s)

        def resume(cur: Sandbox) -> Sandbox | None:
            now = ctx.now_dt()
            if recycle_requested(cur):
                # Killed, and on its way back to its pool: no longer the caller's.
                raise route_not_found(sid)
            if cur.metadata.deletion_timestamp is not None or e2b_state(cur, now) is None:
                raise BadRequestError(f"sandbox {sid} cannot be resumed")
            if not cur.spec.paused:
                # Already resuming (or resumed): nothing to write, just wait.
                return None
            shutdown, pause = resume_times(cur, now, timeout_s, min_resume_s=min_resume)
            return _with_times(cur, shutdown, pause, paused=False)

        try:
            stored: Sandbox = yield from self._retry_update(sid, sbx, resume, user=user)
        except ClaimError as err:
            if err.code == 409:  # conflicts past RetryOnConflict's steps
                err.code = 400  # upstream: a resume conflict answers 400
            raise
        ctx.record("manager.resume", sandbox_key(stored))

        def running(obj: Sandbox | None) -> object | None:
            # Killed meanwhile (recycled, perhaps claimed by another since): gone.
            if obj is None or not _still_owned(obj, meta.uid, user) or recycle_pending(obj):
                return _GONE
            ok = sandbox_state(obj, ctx.now_dt())[0] is SandboxState.RUNNING
            return obj if ok else None

        verdict, _ = yield from self.claimer.watch(
            meta.namespace,
            meta.name,
            running,
            timeout=RESUME_WAIT_S,
            min_rv=_rv(stored),
            initial=stored,
        )
        if verdict is _GONE:
            raise route_not_found(sid)
        if not isinstance(verdict, Sandbox):
            raise InternalError(f"sandbox {sid} was not resumed within {RESUME_WAIT_S:g}s")
        return verdict

    def resume(self, namespace: str, user: str, sid: str, timeout_s: int) -> Op:
        """Deprecated ``POST /sandboxes/{id}/resume``: resume like connect; return the Sandbox."""
        sbx, _ = yield from self.connect(namespace, user, sid, timeout_s)
        return sbx

    # -- list ---------------------------------------------------------------------------------

    def list_sandboxes(
        self,
        namespace: str,
        user: str,
        *,
        states: Sequence[str] = LIST_STATES,
        metadata: Mapping[str, str] | None = None,
        limit: int = MAX_LIST_LIMIT,
        next_token: str | None = None,
        order: Literal["asc", "desc"] = "asc",
        template: str | None = None,
        started_after: datetime | None = None,
    ) -> tuple[list[Sandbox], str | None]:
        """``GET /v2/sandboxes``: one page of the caller's sandboxes and the next token (§6.7).

        Only the caller's own sandboxes in its namespace (admin: all), not
        reserved failures, with a claim timestamp, in the given ``states``,
        whose annotations carry every ``metadata`` pair (and, when given, of
        ``template`` and claimed at or after ``started_after``); sorted by
        claim time then id. Bad states, blacklisted metadata keys or a limit
        outside 1…100 answer 400.
        """
        filters = dict(metadata or {})
        wanted = validate_list_query(states, filters, limit)
        now = self.ctx.now_dt()
        after = started_after_key(started_after) if started_after is not None else None
        # A page holds only items past the cursor: its claim time alone already
        # rules out most of the others (page() then compares claim time and id).
        bound = decode_next_token(next_token)[0] if next_token else None
        desc = order == "desc"
        is_fresh = self.claimer.is_fresh
        scope = f"{namespace or '*'}/{user}"
        items: list[tuple[str, str, Sandbox]] = []
        for sbx in self.cache.by_index("Sandbox", "owner", scope):
            ann = sbx.metadata.annotations
            started = ann.get(keys.ANN_CLAIM_TIMESTAMP)
            # is_fresh is asked of every listed sandbox, before any other filter,
            # as it always was: it drops expired expectations, which a later
            # expect() of the same sandbox can tell apart.
            if not started or is_reserved_failed(sbx) or not is_fresh(sbx):
                continue
            if bound is not None and (started > bound if desc else started < bound):
                continue
            if after is not None and started < after:
                continue
            if filters and any(ann.get(k) != v for k, v in filters.items()):
                continue
            if template is not None and _template_label(sbx) != template:
                continue
            items.append((started, sandbox_id(sbx), sbx))

        def shown(sbx: Sandbox) -> bool:
            # The costliest filter, so page() asks it only of the page's own items.
            return e2b_state(sbx, now) in wanted

        return page(items, limit=limit, next_token=next_token, order=order, keep=shown)

    def sandbox_id(self, sbx: Sandbox) -> str:
        """The E2B sandbox id of a sandbox (``<namespace>--<name>``)."""
        return sandbox_id(sbx)


def _gone_from_api(err: NotFoundError) -> bool:
    """Whether the 404 ``err`` of :meth:`SandboxManager._retry_update` is the API server's
    (the sandbox deleted), not its own "no longer the caller's"."""
    cause = err.__cause__
    return isinstance(cause, ApiError) and cause.is_not_found


def _ended(proc: simpy.Process) -> Op:
    """Wait for an attempt process of :meth:`SandboxManager._guarded`; its error, if it failed."""
    outcome = yield proc
    return outcome if isinstance(outcome, ClaimError) else None


def _deadline_error(last: ClaimError | None, failures: list[PickFailure]) -> ClaimTimeoutError:
    message = RetryExhaustedError(
        "context deadline exceeded", last_error=last, pick_failures=failures
    ).message
    return ClaimTimeoutError(message)


def _with_times(
    cur: Sandbox,
    shutdown: datetime | None,
    pause: datetime | None,
    *,
    paused: bool | None = None,
) -> Sandbox:
    """A copy of ``cur`` with new end times (and, when given, a new ``spec.paused``)."""
    new = cur.model_copy(deep=True)
    if paused is not None:
        new.spec.paused = paused
    new.spec.shutdown_time = shutdown
    new.spec.pause_time = pause
    return new
