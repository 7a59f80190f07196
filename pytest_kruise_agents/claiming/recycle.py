"""Recycling: a killed sandbox goes back to its pool instead of being deleted (reference §4).

A sandbox whose ``agents.kruise.io/cleanup-enabled`` annotation is ``"true"``
(inherited from its pool's pod template) is recycled when an E2B kill finds it
Running: the manager sets the trigger annotation ``agents.kruise.io/cleanup``,
and the Sandbox controller moves the sandbox to phase ``Recycling``, runs the
recycler (a no-op in open source), waits the grace period, then resets its
metadata so that it belongs to its pool again (:func:`reset_for_recycle`) and
returns it to ``Running`` with ``recycledCount`` one higher. A recycle that
does not finish within its timeout, or cannot (the pool is gone), fails: the
sandbox is deleted, or kept for the duration in
``agents.kruise.io/cleanup-retain-on-failure`` through its ``shutdownTime``.

Which claim keys the reset drops is our reading of "drop ``claim-name``,
``sandbox-id``, ``AnnotationsClearedOnRecycle``, user keys listed in
``updated-metadata-in-claim``" (docs/fidelity.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.durations import parse_duration
from pytest_kruise_agents.api.meta import OwnerReference, find_condition
from pytest_kruise_agents.api.sandbox import ConditionType, Sandbox, SandboxPhase

__all__ = [
    "ANNOTATIONS_CLEARED_ON_RECYCLE",
    "ANN_CLEANUP",
    "COND_RECYCLING",
    "LABELS_CLEARED_ON_RECYCLE",
    "RECYCLE_FAILED",
    "RECYCLE_REJECTED",
    "RECYCLE_STARTED",
    "RECYCLE_SUCCEEDED",
    "RECYCLE_TIMEOUT",
    "RecycleTiming",
    "can_recycle_on_kill",
    "recycle_enabled",
    "recycle_ended",
    "recycle_pending",
    "recycle_refusal",
    "recycle_requested",
    "recycle_timing",
    "reset_for_recycle",
    "retain_on_failure",
]

ANN_CLEANUP: Final = keys.ANN_CLEANUP
"""The recycle trigger the sandbox-manager sets on kill (value ``"true"``)."""

COND_RECYCLING: Final = ConditionType.RECYCLING
RECYCLE_STARTED: Final = "RecyclingStarted"
RECYCLE_SUCCEEDED: Final = "RecyclingSucceeded"
RECYCLE_FAILED: Final = "RecyclingFailed"
RECYCLE_TIMEOUT: Final = "RecyclingTimeout"
RECYCLE_REJECTED: Final = "RecyclingRejected"

ANNOTATIONS_CLEARED_ON_RECYCLE: Final = frozenset(
    {
        keys.ANN_LOCK,
        keys.ANN_OWNER,
        keys.ANN_CLAIM_TIMESTAMP,
        keys.ANN_INIT_RUNTIME_REQUEST,
        keys.ANN_RUNTIME_ACCESS_TOKEN,
        keys.ANN_CSI_VOLUME_CONFIG,
        keys.ANN_UPDATED_METADATA_IN_CLAIM,
        keys.ANN_RESERVE_PAUSED_DURATION,
        keys.ANN_RETURN_SANDBOX_IP,
        ANN_CLEANUP,
    }
)
"""What a claim (and the kill) wrote that a sandbox back in its pool must not carry."""

LABELS_CLEARED_ON_RECYCLE: Final = frozenset({keys.LABEL_CLAIM_NAME, keys.LABEL_SANDBOX_ID})


def recycle_enabled(sbx: Sandbox) -> bool:
    """Whether the sandbox may be recycled (``cleanup-enabled: "true"``)."""
    return sbx.metadata.annotations.get(keys.ANN_CLEANUP_ENABLED) == "true"


def recycle_requested(sbx: Sandbox) -> bool:
    """Whether a recycle was asked for: the trigger set on a recycle-enabled sandbox."""
    return recycle_enabled(sbx) and sbx.metadata.annotations.get(ANN_CLEANUP) == "true"


def recycle_ended(sbx: Sandbox) -> bool:
    """Whether the sandbox's recycle failed or timed out (its timers then apply again)."""
    cond = find_condition(sbx.status.conditions, COND_RECYCLING)
    return cond is not None and cond.reason in (RECYCLE_FAILED, RECYCLE_TIMEOUT)


@dataclass(frozen=True, slots=True)
class RecycleTiming:
    """Where a recycle stands in time: ``wait`` (``after`` seconds), ``due``, or ``timeout``."""

    kind: Literal["wait", "due", "timeout"]
    after: float = 0.0


def recycle_timing(
    sbx: Sandbox, now: datetime, *, grace: timedelta, timeout: timedelta
) -> RecycleTiming:
    """A ``Recycling`` sandbox at ``now``: still in its grace period, due to rejoin, or timed out.

    The recycle started at its ``Recycling`` condition's ``lastTransitionTime``
    (whole seconds, so the end may come up to a second early); without one it
    starts now. A wait never outlasts the timeout.
    """
    cond = find_condition(sbx.status.conditions, COND_RECYCLING)
    started = cond.last_transition_time if cond is not None else None
    elapsed = now - started if started is not None else timedelta(0)
    if elapsed >= timeout:
        return RecycleTiming("timeout")
    if elapsed < grace:
        return RecycleTiming("wait", (min(grace, timeout) - elapsed).total_seconds())
    return RecycleTiming("due")


def recycle_refusal(sbx: Sandbox) -> str | None:
    """Why the sandbox cannot be recycled, or ``None``: a PVC-backed one keeps user data."""
    if sbx.spec.volume_claim_templates:
        return "a sandbox with volumeClaimTemplates cannot be recycled"
    return None


def recycle_pending(sbx: Sandbox) -> bool:
    """Whether a kill has asked to recycle ``sbx`` and the Sandbox controller will do it.

    From the trigger on the sandbox is its caller's no longer: it takes no
    traffic, though it reads ``running`` until the controller moves it to
    ``Recycling`` (one watch lag later).
    """
    return recycle_requested(sbx) and recycle_refusal(sbx) is None


def can_recycle_on_kill(sbx: Sandbox) -> bool:
    """Whether an E2B kill recycles ``sbx`` instead of deleting it.

    Enabled, Running and not asked to pause (a pause already written, or an
    auto-pause, would stop it first), not being deleted, no PVCs.
    """
    return (
        recycle_enabled(sbx)
        and sbx.metadata.deletion_timestamp is None
        and sbx.status.phase == SandboxPhase.RUNNING
        and not sbx.spec.paused
        and recycle_refusal(sbx) is None
    )


def retain_on_failure(sbx: Sandbox) -> timedelta | None:
    """How long a sandbox whose recycle failed is kept (``cleanup-retain-on-failure``), if at all.

    A value that is not a positive Go duration keeps nothing: the sandbox is deleted.
    """
    raw = sbx.metadata.annotations.get(keys.ANN_CLEANUP_RETAIN_ON_FAILURE)
    if not raw:
        return None
    try:
        value = parse_duration(raw)
    except ValueError:
        return None
    return value if value > timedelta(0) else None


def _claimed_user_keys(sbx: Sandbox) -> tuple[list[str], list[str]]:
    raw = sbx.metadata.annotations.get(keys.ANN_UPDATED_METADATA_IN_CLAIM)
    if not raw:
        return [], []
    try:
        doc = json.loads(raw)
    except ValueError:
        return [], []
    if not isinstance(doc, dict):
        return [], []
    labels = [k for k in doc.get("labels") or [] if isinstance(k, str)]
    annotations = [k for k in doc.get("annotations") or [] if isinstance(k, str)]
    return labels, annotations


def reset_for_recycle(sbx: Sandbox, pool_ref: OwnerReference) -> None:
    """Reset ``sbx`` (a copy about to be written) so that it belongs to its pool again.

    Clears the shutdown and pause times, restores the SandboxSet controller
    reference ``pool_ref``, marks it unclaimed, and drops the claim's keys:
    those the claim recorded in ``updated-metadata-in-claim`` and the fixed
    :data:`ANNOTATIONS_CLEARED_ON_RECYCLE` and :data:`LABELS_CLEARED_ON_RECYCLE`.
    """
    meta = sbx.metadata
    user_labels, user_annotations = _claimed_user_keys(sbx)
    labels = {
        k: v
        for k, v in meta.labels.items()
        if k not in LABELS_CLEARED_ON_RECYCLE and k not in user_labels
    }
    labels[keys.LABEL_SANDBOX_CLAIMED] = "false"
    meta.labels = labels
    meta.annotations = {
        k: v
        for k, v in meta.annotations.items()
        if k not in ANNOTATIONS_CLEARED_ON_RECYCLE and k not in user_annotations
    }
    meta.owner_references = [pool_ref]
    sbx.spec.shutdown_time = None
    sbx.spec.pause_time = None
    sbx.spec.paused = None  # as a pool sandbox has it: unset
