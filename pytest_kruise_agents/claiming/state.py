"""The derived state of a sandbox (reference §1.3) and the predicates around it.

Phases are not what the claim system looks at: pools, SandboxSet grouping, the
E2B API and routing all use the derived state computed here. The key fact it
encodes: *claimed* means *has no SandboxSet controller owner reference*.
"""

from __future__ import annotations

from datetime import datetime

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.sandbox import ConditionType, Sandbox, SandboxPhase, SandboxState

__all__ = [
    "REASON_CLAIMED_AND_PAUSED",
    "REASON_CLAIMED_AND_READY",
    "REASON_CLAIMED_NOT_READY",
    "REASON_CONTROLLED_AND_READY",
    "REASON_CONTROLLED_NOT_READY",
    "REASON_DELETED",
    "REASON_FAILED",
    "REASON_NOT_RUNNING_CLAIMED",
    "REASON_PENDING",
    "REASON_SHUTDOWN_TIME_REACHED",
    "REASON_SUCCEEDED",
    "REASON_TERMINATING",
    "is_claimed",
    "is_controlled_by_sandboxset",
    "is_pause_settled",
    "is_ready",
    "is_reserved_failed",
    "pod_ip",
    "sandbox_key",
    "sandbox_state",
]

REASON_DELETED = "ResourceDeleted"
REASON_SHUTDOWN_TIME_REACHED = "ShutdownTimeReached"
REASON_PENDING = "ResourcePending"
REASON_SUCCEEDED = "ResourceSucceeded"
REASON_FAILED = "ResourceFailed"
REASON_TERMINATING = "ResourceTerminating"
REASON_CONTROLLED_AND_READY = "ResourceControlledBySbsAndReady"
REASON_CONTROLLED_NOT_READY = "ResourceControlledBySbsButNotReady"
REASON_CLAIMED_AND_PAUSED = "RunningResourceClaimedAndPaused"
REASON_CLAIMED_AND_READY = "RunningResourceClaimedAndReady"
REASON_CLAIMED_NOT_READY = "RunningResourceClaimedButNotReady"
REASON_NOT_RUNNING_CLAIMED = "NotRunningResourceClaimed"

_TERMINAL_PHASES = {
    SandboxPhase.SUCCEEDED: REASON_SUCCEEDED,
    SandboxPhase.FAILED: REASON_FAILED,
    SandboxPhase.TERMINATING: REASON_TERMINATING,
}


def is_controlled_by_sandboxset(sbx: Sandbox) -> bool:
    """Whether the controller owner reference is an ``agents.kruise.io/v1alpha1`` SandboxSet."""
    ref = sbx.metadata.controller_ref()
    return ref is not None and ref.kind == "SandboxSet" and ref.api_version == keys.API_VERSION


def is_claimed(sbx: Sandbox) -> bool:
    """Whether the sandbox left its pool: it has no SandboxSet controller reference."""
    return not is_controlled_by_sandboxset(sbx)


def is_ready(sbx: Sandbox) -> bool:
    """Whether the sandbox's ``Ready`` condition is ``True``."""
    cond = find_condition(sbx.status.conditions, ConditionType.READY)
    return cond is not None and cond.status == "True"


def is_pause_settled(sbx: Sandbox) -> bool:
    """Whether a pause has stopped the pod: ``SandboxPaused`` is ``True`` (upstream: resumable)."""
    cond = find_condition(sbx.status.conditions, ConditionType.SANDBOX_PAUSED)
    return cond is not None and cond.status == "True"


def is_reserved_failed(sbx: Sandbox) -> bool:
    """Whether the sandbox is a failed claim kept for debugging (hidden from lists and counts)."""
    return sbx.metadata.labels.get(keys.LABEL_RESERVED_FAILED) == "true"


def pod_ip(sbx: Sandbox) -> str | None:
    """The sandbox's pod IP: ``status.podInfo.podIP``, else ``status.sandboxIp``, else ``None``."""
    info = sbx.status.pod_info
    if info is not None and info.pod_ip:
        return info.pod_ip
    return sbx.status.sandbox_ip or None


def sandbox_key(sbx: Sandbox) -> str:
    """The ``namespace/name`` key of a sandbox (the pick-cache and pick-failure key)."""
    return f"{sbx.metadata.namespace}/{sbx.metadata.name}"


def sandbox_state(sbx: Sandbox, now: datetime) -> tuple[SandboxState, str]:
    """The derived state of ``sbx`` at ``now`` and the reason, evaluating §1.3 top-down."""
    if sbx.metadata.deletion_timestamp is not None:
        return SandboxState.DEAD, REASON_DELETED
    shutdown = sbx.spec.shutdown_time
    if shutdown is not None:
        if shutdown.microsecond:
            # Compared in whole seconds, as upstream truncates it (§9 item 10);
            # only a hand-written time has a fraction, the model writes none.
            shutdown = shutdown.replace(microsecond=0)
        if now > shutdown:
            return SandboxState.DEAD, REASON_SHUTDOWN_TIME_REACHED
    phase = sbx.status.phase
    if phase == SandboxPhase.PENDING:
        return SandboxState.CREATING, REASON_PENDING
    if phase in _TERMINAL_PHASES:
        return SandboxState.DEAD, _TERMINAL_PHASES[phase]
    ready = is_ready(sbx)
    if is_controlled_by_sandboxset(sbx):
        if ready:
            return SandboxState.AVAILABLE, REASON_CONTROLLED_AND_READY
        return SandboxState.CREATING, REASON_CONTROLLED_NOT_READY
    if phase == SandboxPhase.RUNNING:
        if sbx.spec.paused:
            return SandboxState.PAUSED, REASON_CLAIMED_AND_PAUSED
        if ready:
            return SandboxState.RUNNING, REASON_CLAIMED_AND_READY
        return SandboxState.DEAD, REASON_CLAIMED_NOT_READY
    # Any other phase of a claimed sandbox (Paused, Resuming, Upgrading,
    # Recycling, and also an unset phase) is reported as paused, as upstream does.
    return SandboxState.PAUSED, REASON_NOT_RUNNING_CLAIMED
