"""How a workload claims, and what each claim became.

The E2B path calls the sandbox-manager's create with the claim options as
``e2b.agents.kruise.io/*`` metadata; the SandboxClaim path applies one
SandboxClaim object per arrival. Either way the cluster keeps a
:class:`~simulator.records.ClaimRecord` per attempt; :func:`e2b_outcome` and
:func:`sandboxclaim_outcomes` turn them into one :class:`Outcome` per
requested sandbox.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pytest_kruise_agents.api.durations import format_duration
from pytest_kruise_agents.claiming.extensions import (
    KEY_CLAIM_TIMEOUT_SECONDS,
    KEY_CPU_LIMIT,
    KEY_CPU_REQUEST,
    KEY_CREATE_ON_NO_STOCK,
    KEY_IMAGE,
    KEY_SKIP_INIT_RUNTIME,
    KEY_WAIT_READY_TIMEOUT_SECONDS,
)
from simulator.planning.metrics import Outcome
from simulator.planning.scenario import ClaimSpec
from simulator.records import PHASES, ClaimRecord, ColdReason

__all__ = [
    "NO_STOCK",
    "RATE_LIMITED",
    "SANDBOXCLAIM_TTL",
    "SandboxClaimTracker",
    "e2b_metadata",
    "e2b_outcome",
    "sandboxclaim_manifest",
    "sandboxclaim_outcomes",
    "volume_mounts",
]

RATE_LIMITED = "RateLimited"
"""The pick-failure reason of a no-stock creation the manager's create limiter refused."""

NO_STOCK = "NoStock"
"""The pick-failure reason of an attempt that found the pool empty in the manager's cache."""

SANDBOXCLAIM_TTL = "5m"
"""``ttlAfterCompleted`` of the workload's SandboxClaims: long runs do not keep them all."""


def e2b_metadata(claim: ClaimSpec) -> dict[str, str] | None:
    """The create request's metadata: the claim options as extension keys, plus the user's."""
    md: dict[str, str] = dict(claim.metadata)
    if not claim.create_on_no_stock:
        md[KEY_CREATE_ON_NO_STOCK] = "false"
    if claim.claim_timeout is not None:
        md[KEY_CLAIM_TIMEOUT_SECONDS] = str(math.ceil(claim.claim_timeout))
    if claim.wait_ready_timeout is not None:
        md[KEY_WAIT_READY_TIMEOUT_SECONDS] = str(math.ceil(claim.wait_ready_timeout))
    if claim.image is not None:
        md[KEY_IMAGE] = claim.image
    if claim.cpu_request is not None:
        md[KEY_CPU_REQUEST] = claim.cpu_request
    if claim.cpu_limit is not None:
        md[KEY_CPU_LIMIT] = claim.cpu_limit
    if claim.skip_init_runtime:
        md[KEY_SKIP_INIT_RUNTIME] = "true"
    return md or None


def volume_mounts(count: int) -> list[dict[str, str]] | None:
    """``count`` dynamic CSI volumes (``volumeMounts`` of the create request)."""
    if count <= 0:
        return None
    return [{"name": f"pv-data-{k}", "path": f"/mnt/data-{k}"} for k in range(count)]


def sandboxclaim_manifest(
    name: str, namespace: str, template: str, claim: ClaimSpec
) -> dict[str, Any]:
    """The SandboxClaim object one arrival of a ``sandboxclaim`` workload applies."""
    spec: dict[str, Any] = {
        "templateName": template,
        "replicas": claim.replicas,
        "createOnNoStock": claim.create_on_no_stock,
        "ttlAfterCompleted": SANDBOXCLAIM_TTL,
        "skipInitRuntime": claim.skip_init_runtime,
    }
    # Go's own notation (``342h56m7s``): ``:g`` writes 1234567 as "1.23457e+06s",
    # which no Go duration parser reads, and rounds it to 6 digits besides.
    if claim.claim_timeout is not None:
        spec["claimTimeout"] = format_duration(timedelta(seconds=claim.claim_timeout))
    if claim.wait_ready_timeout is not None:
        spec["waitReadyTimeout"] = format_duration(timedelta(seconds=claim.wait_ready_timeout))
    inplace: dict[str, Any] = {}
    if claim.image is not None:
        inplace["image"] = claim.image
    resources = {
        part: {"cpu": value}
        for part, value in (("requests", claim.cpu_request), ("limits", claim.cpu_limit))
        if value is not None
    }
    if resources:
        inplace["resources"] = resources
    if inplace:
        spec["inplaceUpdate"] = inplace
    mounts = volume_mounts(claim.csi_mounts)
    if mounts:
        spec["dynamicVolumesMount"] = [
            {"pvName": m["name"], "mountPath": m["path"]} for m in mounts
        ]
    return {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


@dataclass(slots=True)
class SandboxClaimTracker:
    """One SandboxClaim a workload applied: its attempts' records and its sandboxes' holds.

    ``holds`` are drawn at the arrival, one per replica, and given to the
    sandboxes in the order they are delivered; ``released`` holds the ids of
    the records whose sandbox release is already scheduled.
    """

    workload: int
    pool: str
    name: str
    namespace: str
    applied: float
    holds: list[float | None]
    records: list[ClaimRecord] = field(default_factory=list)
    released: set[int] = field(default_factory=set)
    finished: float | None = None
    """When the claim finished (its ``completionTime``; ``None`` while it has not)."""

    @property
    def done(self) -> bool:
        """Whether the claim has finished: all delivered, completed, or gone."""
        return self.finished is not None

    def delivered(self) -> list[ClaimRecord]:
        """Its delivered records in delivery order (at most one per replica)."""
        recs = [r for r in self.records if r.delivered is not None]
        recs.sort(key=lambda r: (r.delivered or 0.0, r.id))
        return recs[: len(self.holds)]


def _phases(rec: ClaimRecord) -> dict[str, Any]:
    return {p: getattr(rec, p) for p in PHASES}


def _lock_s(rec: ClaimRecord) -> float | None:
    """How long a warm claim took to lock its sandbox: the SandboxSet still counts it
    available meanwhile, which the refill time measured by Little's law must add back."""
    if rec.warm is not True or rec.picked is None or rec.locked is None:
        return None
    return rec.locked - rec.picked


def _lock_s_taken(rec: ClaimRecord) -> float:
    """The lock write of an attempt that took a sandbox (:func:`_taken` is not None)."""
    assert rec.picked is not None and rec.locked is not None
    return rec.locked - rec.picked


def _taken(rec: ClaimRecord) -> float | None:
    """When the attempt took a sandbox from the pool: its pick, once the warm lock is written.

    Delivered or not (a failed ``/init`` still emptied a slot), which
    ``rec.warm`` (``None`` until delivered) does not tell.
    """
    if rec.lock_type != "update" or rec.locked is None:
        return None
    return rec.picked


def e2b_outcome(workload: int, pool: str, rec: ClaimRecord, *, phases: bool) -> Outcome:
    """The outcome of one E2B create (its record is the whole claim)."""
    return Outcome(
        workload=workload,
        pool=pool,
        requested=rec.requested,
        delivered=rec.delivered,
        failed=rec.failed,
        warm=rec.warm,
        attempts=rec.attempts,
        reason=rec.error_reason,
        phases=_phases(rec) if phases else None,
        create_refused=rec.pick_failures.get(RATE_LIMITED, 0),
        pick_failed=_pick_failed(rec),
        no_stock=rec.pick_failures.get(NO_STOCK, 0),
        lock_s=_lock_s(rec),
        taken=_taken(rec),
        cold_reason=_cold_reason(rec),
        failed_cold_reason=rec.cold_reason if rec.delivered is None else None,
    )


def _cold_reason(rec: ClaimRecord) -> ColdReason | None:
    """Why a delivered cold claim's attempt created its sandbox (None for any other claim)."""
    return rec.cold_reason if rec.warm is False else None


def _pick_failed(rec: ClaimRecord) -> int:
    """The attempts that failed at the pick or the lock, other than for a creation token."""
    return sum(n for reason, n in rec.pick_failures.items() if reason != RATE_LIMITED)


def _wave_pick_failures(tracker: SandboxClaimTracker) -> tuple[list[float], set[float], set[float]]:
    """The claim's waves, and those in which an attempt failed at the pick (and found no stock).

    A wave makes one attempt per replica still missing, at one instant: a
    replica delivered in a later wave took part in every earlier one, whose
    failed attempts tell why it did not get a sandbox then.
    """
    waves = sorted({r.requested for r in tracker.records})
    picks = {r.requested for r in tracker.records if _pick_failed(r)}
    empty = {r.requested for r in tracker.records if r.pick_failures.get(NO_STOCK, 0)}
    return waves, picks, empty


def sandboxclaim_outcomes(tracker: SandboxClaimTracker, *, phases: bool) -> list[Outcome]:
    """One outcome per replica of a SandboxClaim, measured from the claim's creation.

    Replicas never delivered count as failed (with the last failed attempt's
    reason, else ``ClaimTimeout``) at the claim's completion once it is
    finished, as still in flight otherwise. A replica's attempts are the
    claim's waves it took part in: each wave makes one attempt per replica
    still missing, all at one instant, so a replica delivered in the third
    wave made three attempts, and one never delivered made one per wave.
    """
    delivered = tracker.delivered()
    failed = [r for r in tracker.records if r.failed is not None]
    waves, picks, empty = _wave_pick_failures(tracker)
    # Failed attempts that took a sandbox first emptied a slot: the refill counts them.
    lost = tuple((t, _lock_s_taken(r)) for r in failed if (t := _taken(r)) is not None)
    out: list[Outcome] = []
    for rec in delivered:
        before = waves[: bisect.bisect_left(waves, rec.requested)]
        out.append(
            Outcome(
                workload=tracker.workload,
                pool=tracker.pool,
                requested=tracker.applied,
                delivered=rec.delivered,
                warm=rec.warm,
                attempts=bisect.bisect_right(waves, rec.requested),
                pick_failed=sum(1 for w in before if w in picks),
                no_stock=sum(1 for w in before if w in empty),
                phases=_phases(rec) if phases else None,
                lock_s=_lock_s(rec),
                taken=_taken(rec),
                cold_reason=_cold_reason(rec),
            )
        )
    # The claim's latest failed attempt that created a sandbox cold: the claim found the
    # pool empty (or every candidate picked), as a failed pick for no stock says too.
    went_cold = next((r.cold_reason for r in reversed(failed) if r.cold_reason is not None), None)
    for _ in range(len(tracker.holds) - len(delivered)):
        attempts = max(1, len(waves))
        out.append(
            Outcome(
                workload=tracker.workload,
                pool=tracker.pool,
                requested=tracker.applied,
                failed=tracker.finished,
                attempts=attempts,
                pick_failed=len(picks),
                no_stock=len(empty),
                failed_cold_reason=went_cold,
                reason=(failed[-1].error_reason or "Unknown" if failed else "ClaimTimeout")
                if tracker.done
                else None,
            )
        )
    if lost and out:
        out[0].retaken = lost  # the claim's: one replica carries them, counted once
    return out
