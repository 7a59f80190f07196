"""The SandboxClaim controller (reference §5.4): claims sandboxes for SandboxClaim objects.

A SandboxClaim is one-shot: each reconcile claims up to
``--sandboxclaim-max-batch-size`` sandboxes through the shared claim
implementation, in concurrent waves of 5, 10, 20, ... attempts that stop after
the first wave with a failure, and records progress in the claim's status.
Progress is driven by requeues (the controller watches only SandboxClaims):
at once after a reconcile that claimed something, after
``claim_retry_interval_s`` otherwise. The claim completes when all replicas
are claimed or at ``claimTimeout`` (checked at the start of a reconcile only,
so completion can overshoot by one reconcile), counting what it has claimed
even where a status write failed; ``ttlAfterCompleted`` later
deletes the claim object, never its sandboxes. A claim deleted during a
reconcile starts no further wave, and the status patch carries its UID: the
progress of a deleted claim never lands on one made anew under its name.

The decisions are the pure rules of
:mod:`pytest_kruise_agents.claiming.sandboxclaim`; the claim attempt itself is
the shared ``TryClaimSandbox`` implementation (:class:`simulator.claim.Claimer`),
given here as any object with a ``try_claim`` sub-process.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Generator
from datetime import datetime
from typing import Any, Protocol

import simpy

from pytest_kruise_agents.api.sandbox import Sandbox, SandboxState
from pytest_kruise_agents.api.sandboxclaim import ClaimPhase, SandboxClaim, SandboxClaimStatus
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.claiming.errors import ClaimError, InternalError
from pytest_kruise_agents.claiming.modification import ClaimOptions, validate_claim_options
from pytest_kruise_agents.claiming.sandboxclaim import (
    COND_COMPLETED,
    ClaimStatusDecision,
    calculate_claim_status,
    claim_batch,
    claim_options_for,
    claim_waves,
    feature_gate_disabled_status,
    progress_status,
    sandboxset_not_found_status,
    ttl_action,
    wants_resource_resize,
)
from pytest_kruise_agents.claiming.state import is_reserved_failed, sandbox_state
from simulator.apiserver import ApiError, UIDConflictError
from simulator.controllers.base import Reconciler
from simulator.records import ClaimRecord
from simulator.world import World

__all__ = ["ClaimAttempter", "SandboxClaimController"]

STALL_NAME = "sandboxclaim"
"""The controller's name for ``controller_stall`` faults."""


ClaimKey = tuple[str, str]
"""(namespace, name) of a SandboxClaim: the work-queue key."""

Op = Generator[simpy.Event, Any, Any]


class ClaimAttempter(Protocol):
    """What the controller needs of the shared claim implementation (``TryClaimSandbox``)."""

    def try_claim(
        self, opts: ClaimOptions, record: ClaimRecord
    ) -> Generator[simpy.Event, Any, Sandbox]:
        """One claim attempt: the claimed Sandbox, or raise :class:`ClaimError`."""
        ...

    def is_fresh(self, sbx: Sandbox) -> bool:
        """Whether a cached copy is at least as new as the attempts' own last write to it."""
        ...


class SandboxClaimController(Reconciler[ClaimKey]):
    """Event-driven SandboxClaim reconciler (``--sandboxclaim-workers`` workers).

    ``claimer`` runs the attempts; the cluster builds it over the controller's
    cache with no claim-worker limit and no create limiter (reference §5.1).
    """

    stall_name = STALL_NAME

    def __init__(self, world: World, claimer: ClaimAttempter) -> None:
        super().__init__(world.ctx)
        self.world = world
        self.api = world.api
        self.cache = world.controller_cache
        self.client = world.controller_client.for_component(self.stall_name)
        self.claimer = claimer
        # resourceVersion expectations: our last status write, until seen or expired.
        self._expected: dict[ClaimKey, tuple[int, float]] = {}
        self._claimed: dict[str, int] = {}
        """Sandboxes claimed so far by claim UID, whether or not the status says so yet."""
        self._started = False
        self.cache.add_handler("SandboxClaim", self._on_claim)

    def start(self) -> None:
        """Launch the workers and enqueue every SandboxClaim already cached."""
        if self._started:
            return
        self._started = True
        for claim in self.cache.list("SandboxClaim"):
            self.queue.add((claim.metadata.namespace, claim.metadata.name))
        self.start_workers(self.ctx.profile.sandboxclaim_workers)

    # -- events and workers -----------------------------------------------------------

    def _on_claim(self, event_type: str, old: Any, new: Any) -> None:
        obj = new if new is not None else old
        key = (obj.metadata.namespace, obj.metadata.name)
        if event_type == "DELETED":
            self._expected.pop(key, None)
            self._failures.pop(key, None)
            self._claimed.pop(obj.metadata.uid or "", None)
            return
        self.queue.add(key)

    # -- reconcile ----------------------------------------------------------------------

    def _rv_wait(self, key: ClaimKey, claim: SandboxClaim) -> float | None:
        """Seconds to wait for the cache to show our last status write, or ``None``."""
        expected = self._expected.get(key)
        if expected is None:
            return None
        rv, deadline = expected
        now = self.ctx.now()
        if int(claim.metadata.resource_version or 0) >= rv or now >= deadline:
            del self._expected[key]
            return None
        return deadline - now

    def _reconcile(self, key: ClaimKey) -> Op:
        """One reconcile of claim ``key``; returns the requeue delay or ``None``."""
        ctx = self.ctx
        ns, name = key
        claim: SandboxClaim | None = self.cache.get("SandboxClaim", ns, name)
        if claim is None or claim.metadata.deletion_timestamp is not None:
            return None
        wait = self._rv_wait(key, claim)
        if wait is not None:
            # Our own status write is on its way; its watch event requeues us.
            return wait
        now = ctx.now_dt()
        if claim.status.phase == ClaimPhase.COMPLETED:
            # CalculateClaimStatus still sets observedGeneration (a spec edited after
            # completion, e.g. its ttlAfterCompleted), then the TTL is handled.
            decision = calculate_claim_status(claim, now)
            if decision.changed and not (yield from self._write_status(claim, decision.status)):
                return None
            return (yield from self._expire(claim))

        sbs: SandboxSet | None = self.cache.get("SandboxSet", ns, claim.spec.template_name)
        if sbs is None:
            # Completed with what the claim has, as at its timeout (_terminal_decision):
            # the status's count may be one that landed before writes that failed.
            status = sandboxset_not_found_status(self._counted(claim), now)
            yield from self._write_status(claim, status)
            return None  # The write's watch event brings us back for the TTL.

        decision = calculate_claim_status(claim, now)
        if decision.terminal:
            # Terminal transitions are persisted without running claim logic.
            decision = self._terminal_decision(claim, decision, now)
            if decision.changed:
                yield from self._write_status(claim, decision.status)
            return None

        status = decision.status
        view = claim.model_copy(update={"status": status})
        desired = claim.spec.replicas
        uid = claim.metadata.uid or ""
        current = self._claimed_so_far(claim, status.claimed_replicas)
        if current >= desired:
            # All there (crash recovery): record it; the next reconcile completes.
            if not (yield from self._write_status(claim, progress_status(view, current))):
                return None
            return 0.0
        if wants_resource_resize(claim) and not ctx.profile.inplace_resource_resize:
            ctx.record("sandboxclaim.feature_gate_disabled", f"{ns}/{name}")
            # Completed with what the claim has (``current``), as when its pool is gone.
            counted = self._counted(view)
            yield from self._write_status(claim, feature_gate_disabled_status(counted, now))
            return None  # The write's watch event brings us back for the TTL.

        batch = claim_batch(desired, current, ctx.profile.claim_batch_max)
        successes = 0
        for wave in claim_waves(batch, ctx.profile.claim_batch_initial):
            ctx.record("sandboxclaim.wave", f"{ns}/{name} size={wave}")
            attempts = [self._attempt(claim, sbs) for _ in range(wave)]
            procs = [ctx.env.process(a) for a in attempts]
            yield simpy.AllOf(ctx.env, procs)
            ok = sum(1 for p in procs if p.value)
            successes += ok
            if self._gone(claim):
                # Deleted during the wave (and maybe made anew under its name):
                # no more waves for it, and no status to write.
                self._record_gone(claim, current + successes)
                return None
            if ok < wave:
                ctx.record("sandboxclaim.wave_failed", f"{ns}/{name} claimed={ok}/{wave}")
                break
        claimed = current + successes
        self._claimed[uid] = claimed
        if successes:
            ctx.record("sandboxclaim.claimed", f"{ns}/{name} {claimed}/{desired}")
        else:
            ctx.record("sandboxclaim.no_available", f"{ns}/{name} {claimed}/{desired}")
        if not (yield from self._write_status(claim, progress_status(view, claimed))):
            self._record_gone(claim, claimed)
            return None
        return 0.0 if successes else ctx.profile.claim_retry_interval_s

    def _claimed_so_far(self, claim: SandboxClaim, in_status: int) -> int:
        """How many sandboxes the claim has: the status's count, the active ones, our own tally.

        What this controller claimed itself counts too: a status write that
        failed, with a cache that has not shown the claimed sandboxes yet,
        would otherwise make the next reconcile claim them again.
        """
        uid = claim.metadata.uid or ""
        return max(in_status, self._count_active(claim), self._claimed.get(uid, 0))

    def _counted(self, claim: SandboxClaim) -> SandboxClaim:
        """``claim`` with the count of what it has in its status, where that is more.

        ``max(status.claimedReplicas, active sandboxes, the controller's own
        tally)``, as the rest of the reconcile counts: after status writes that
        failed the status may hold a count that landed earlier.
        """
        in_status = claim.status.claimed_replicas
        known = self._claimed_so_far(claim, in_status)
        if known <= in_status:
            return claim
        counted = claim.status.model_copy(update={"claimed_replicas": known})
        return claim.model_copy(update={"status": counted})

    def _terminal_decision(
        self, claim: SandboxClaim, decision: ClaimStatusDecision, now: datetime
    ) -> ClaimStatusDecision:
        """The claim's completion, counting what it has as the rest of the reconcile does.

        ``CalculateClaimStatus`` reads only ``status.claimedReplicas``: after
        status writes that failed, the claim timeout would complete the claim
        with the last count that landed ("claimed 3/6" with six delivered).
        With more claimed than that (all of it: ``AllReplicasClaimed``), the
        decision is taken again on the status carrying that count.
        """
        if claim.status.claimed_replicas >= claim.spec.replicas:
            return decision  # all replicas claimed, as the status says already
        counted = self._counted(claim)
        if counted is claim:
            return decision
        return calculate_claim_status(counted, now)

    def _gone(self, claim: SandboxClaim) -> bool:
        """Whether the cache no longer holds ``claim`` (deleted, being deleted, or made anew)."""
        meta = claim.metadata
        cached: SandboxClaim | None = self.cache.get("SandboxClaim", meta.namespace, meta.name)
        return (
            cached is None
            or cached.metadata.uid != meta.uid
            or cached.metadata.deletion_timestamp is not None
        )

    def _record_gone(self, claim: SandboxClaim, claimed: int) -> None:
        """Log a reconcile that ended because its claim went; forget what it claimed.

        The sandboxes stay, owned by the claim's UID; nothing counts them any
        more (a claim made anew under the name has another UID).
        """
        meta = claim.metadata
        self._claimed.pop(meta.uid or "", None)
        self.ctx.record(
            "sandboxclaim.gone",
            f"{meta.namespace}/{meta.name} claimed={claimed}/{claim.spec.replicas}",
        )

    def _attempt(self, claim: SandboxClaim, sbs: SandboxSet) -> Op:
        """One ``TryClaimSandbox`` with fresh lock string and token; whether it claimed."""
        ctx = self.ctx
        meta = claim.metadata
        # Drawn before the attempt runs so the generator's sequence does not
        # depend on how the attempts interleave.
        lock_string = self.api.new_uid()
        try:
            access_token, defect = self.api.new_token(), None
        except Exception as exc:  # the caller's token_source, whatever it raised
            # A token_source returning no str (or raising) fails this attempt, as it fails
            # the E2B create that draws it: raised here it would stop the controller, with
            # the wave's other records open for ever.
            access_token, defect = "", exc
        opts = claim_options_for(
            claim,
            sbs,
            lock_string=lock_string,
            access_token=access_token,
            now=ctx.now_dt(),
            resolved=self.world.pod_template(sbs, self.cache),
            annotations_on_pod=ctx.profile.claim_annotations_on_pod,
            candidate_count=ctx.profile.candidate_count,
        )
        if not ctx.profile.claim_namespace_scoped:
            # v0.3.0 did not pass the claim's namespace (bug #824).
            opts = dataclasses.replace(opts, namespace="")
        record = self.world.records.new(
            path="sandboxclaim",
            namespace=meta.namespace,
            template=claim.spec.template_name,
            owner=meta.uid or "",
            requested=ctx.now(),
            claim_name=meta.name,
        )
        return self._run_attempt(opts, record, defect)

    def _run_attempt(
        self, opts: ClaimOptions, record: ClaimRecord, defect: Exception | None = None
    ) -> Op:
        """Run one attempt; ``defect``, an error drawing its options, fails it at once (a 500)."""
        ctx = self.ctx
        # Each attempt is the whole claim of its record: the controller never
        # retries an attempt, it requeues the claim.
        record.attempts += 1
        try:
            if defect is not None:
                raise InternalError(f"{type(defect).__name__}: {defect}")
            # ValidateAndInitClaimOptions runs before anything is picked: options
            # it refuses (CSI mounts without runtime init) fail every attempt.
            validate_claim_options(opts)
            sbx = yield from self.claimer.try_claim(opts, record)
        except (ClaimError, ApiError) as err:
            record.failed = ctx.now()
            record.error, record.error_reason, record.error_code = err.message, err.reason, err.code
            self.world.metrics.claim_ended(record)
            ctx.record(
                "sandboxclaim.attempt_failed",
                f"{record.namespace}/{record.claim_name} {err.reason}",
            )
            return False
        record.delivered = ctx.now()
        if record.sandbox is None:
            record.sandbox = f"{sbx.metadata.namespace}/{sbx.metadata.name}"
        self.world.metrics.claim_ended(record)
        return True

    def _count_active(self, claim: SandboxClaim) -> int:
        """``CountActiveSandboxes``: the claim's non-dead, non-reserved-failed sandboxes.

        A cached copy older than the attempts' own last write to it is not
        counted: that write deleted or reserved a failed sandbox (a success
        counts through ``_claimed``). Counted, a reconcile that follows at once
        (a requeue that fired during the wave) would complete the claim with a
        sandbox it never delivered.
        """
        uid = claim.metadata.uid
        if not uid:
            return 0
        ns = claim.metadata.namespace
        now = self.ctx.now_dt()
        is_fresh = self.claimer.is_fresh
        n = 0
        for sbx in self.cache.by_index("Sandbox", "claim-owner", uid):
            if sbx.metadata.namespace != ns or is_reserved_failed(sbx) or not is_fresh(sbx):
                continue
            if sandbox_state(sbx, now)[0] is not SandboxState.DEAD:
                n += 1
        return n

    def _expire(self, claim: SandboxClaim) -> Op:
        """TTL of a completed claim: delete the claim (only the claim) or wait.

        The delete carries the claim's UID as a precondition: within the watch
        lag the cache may still hold a claim deleted and made anew under its
        name, and the new one must not go for the old one's TTL.
        """
        action, delay = ttl_action(claim, self.ctx.now_dt())
        if action == "requeue":
            return delay
        if action == "delete":
            meta = claim.metadata
            try:
                yield from self.api.delete(
                    self.client, "SandboxClaim", meta.namespace, meta.name, uid=meta.uid
                )
            except UIDConflictError:
                return None  # The claim made anew's own events bring it to a reconcile.
            except ApiError as err:
                if not err.is_not_found:
                    raise
                return None
            self.ctx.record("sandboxclaim.ttl_deleted", f"{meta.namespace}/{meta.name}")
        return None

    def _write_status(self, claim: SandboxClaim, status: SandboxClaimStatus) -> Op:
        """Merge-patch the whole status if it changed; record the resourceVersion expectation.

        The patch carries the claim's UID: a claim deleted (and perhaps made
        anew under its name) since the cache read it is not written. Return
        whether the claim is still there (``False``: 404, or another UID).
        """
        if status == claim.status:
            return True
        meta = claim.metadata
        key = (meta.namespace, meta.name)

        def mutate(obj: SandboxClaim) -> None:
            obj.status = status

        try:
            stored = yield from self.api.patch(
                self.client,
                "SandboxClaim",
                meta.namespace,
                meta.name,
                mutate,
                subresource="status",
                uid=meta.uid,
            )
        except UIDConflictError:
            return False
        except ApiError as err:
            if err.is_not_found:
                return False
            raise
        self._expected[key] = (
            int(stored.metadata.resource_version or 0),
            self.ctx.now() + self.ctx.profile.expectation_timeout_s,
        )
        if status.phase == ClaimPhase.COMPLETED and claim.status.phase != ClaimPhase.COMPLETED:
            reason = next((c.reason for c in status.conditions if c.type == COND_COMPLETED), "")
            self.ctx.record(
                "sandboxclaim.completed",
                f"{meta.namespace}/{meta.name} reason={reason} "
                f"claimed={status.claimed_replicas}/{claim.spec.replicas}",
            )
        return True
