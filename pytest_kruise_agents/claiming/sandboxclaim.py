"""SandboxClaim reconcile decisions (reference §5.4): status, batch waves, TTL, claim options.

A SandboxClaim is one-shot: it claims up to ``replicas`` sandboxes in waves
until all are claimed or ``claimTimeout`` passes, then completes; after
``ttlAfterCompleted`` only the claim object is deleted, never its sandboxes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from pytest_kruise_agents.api.durations import format_duration
from pytest_kruise_agents.api.meta import Condition, set_condition
from pytest_kruise_agents.api.sandboxclaim import ClaimPhase, SandboxClaim, SandboxClaimStatus
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.validation import FieldProblem
from pytest_kruise_agents.claiming.extensions import RESERVE_FOREVER, is_blacklisted
from pytest_kruise_agents.claiming.modification import (
    AGENT_RUNTIME,
    RUNTIME_INIT_CONTAINER,
    UUID_STAND_IN,
    ClaimOptions,
    InitRuntimeRequest,
    InplaceNames,
    RuntimeInitNames,
    claim_annotations_problem,
    sandboxset_has_agent_runtime,
)
from pytest_kruise_agents.claiming.selection import DEFAULT_CANDIDATE_WINDOW
from pytest_kruise_agents.claiming.timeouts import truncate

__all__ = [
    "CLAIM_RETRY_INTERVAL_S",
    "COND_COMPLETED",
    "COND_TIMED_OUT",
    "DEFAULT_INITIAL_WAVE",
    "DEFAULT_MAX_BATCH",
    "REASON_ALL_REPLICAS_CLAIMED",
    "REASON_CLAIM_TIMEOUT_REACHED",
    "REASON_FEATURE_GATE_DISABLED",
    "REASON_SANDBOXSET_NOT_FOUND",
    "REASON_TIMEOUT_REACHED",
    "SANDBOXCLAIM_CSI_MOUNTS",
    "SANDBOXCLAIM_INPLACE_NAMES",
    "ClaimStatusDecision",
    "calculate_claim_status",
    "claim_batch",
    "claim_options_for",
    "claim_waves",
    "completed_status",
    "feature_gate_disabled_status",
    "progress_status",
    "requeue_after",
    "sandboxclaim_annotations_problem",
    "sandboxset_not_found_status",
    "ttl_action",
    "wants_resource_resize",
]

DEFAULT_INITIAL_WAVE: Final = 5
"""``--sandboxclaim-initial-batch-size``."""
DEFAULT_MAX_BATCH: Final = 50
"""``--sandboxclaim-max-batch-size``."""
CLAIM_RETRY_INTERVAL_S: Final = 2.0
"""Requeue delay of a reconcile that claimed nothing (``ClaimRetryInterval``)."""

COND_COMPLETED: Final = "Completed"
COND_TIMED_OUT: Final = "TimedOut"
REASON_ALL_REPLICAS_CLAIMED: Final = "AllReplicasClaimed"
REASON_TIMEOUT_REACHED: Final = "TimeoutReached"
REASON_CLAIM_TIMEOUT_REACHED: Final = "ClaimTimeoutReached"
REASON_SANDBOXSET_NOT_FOUND: Final = "SandboxSetNotFound"
REASON_FEATURE_GATE_DISABLED: Final = "FeatureGateDisabled"

SANDBOXCLAIM_INPLACE_NAMES: Final = InplaceNames(
    "spec.inplaceUpdate.image",
    "spec.inplaceUpdate.resources.requests.cpu",
    "spec.inplaceUpdate.resources.limits.cpu",
)
"""The fields of a SandboxClaim's in-place image and CPU, which a refusal of them names."""
SANDBOXCLAIM_CSI_MOUNTS: Final = "spec.dynamicVolumesMount"
"""The field of a SandboxClaim's CSI mounts, which their refusal without runtime init names."""


def claim_waves(n: int, initial: int = DEFAULT_INITIAL_WAVE) -> list[int]:
    """Attempts per wave for a batch of ``n``: ``initial``, doubling, capped by the rest."""
    waves: list[int] = []
    size = max(initial, 1)
    remaining = n
    while remaining > 0:
        wave = min(size, remaining)
        waves.append(wave)
        remaining -= wave
        size *= 2
    return waves


def claim_batch(desired: int, current: int, max_batch: int = DEFAULT_MAX_BATCH) -> int:
    """How many to claim this reconcile: ``min(desired - current, max_batch)``, never negative."""
    return max(0, min(desired - current, max_batch))


def requeue_after(successes: int) -> float:
    """Requeue delay after a claiming reconcile: 0 on progress, else 2 s."""
    return 0.0 if successes > 0 else CLAIM_RETRY_INTERVAL_S


@dataclass(frozen=True)
class ClaimStatusDecision:
    """The status to write, whether the claim is (now) completed, and whether the status changed."""

    status: SandboxClaimStatus
    terminal: bool
    changed: bool


def _replicas_text(claim: SandboxClaim, claimed: int) -> str:
    return f"{claimed}/{claim.spec.replicas}"


def completed_status(
    claim: SandboxClaim,
    now: datetime,
    *,
    reason: str,
    message: str,
    status: SandboxClaimStatus | None = None,
) -> SandboxClaimStatus:
    """A ``Completed`` copy of the status with condition ``Completed=True/<reason>``."""
    now = truncate(now)
    out = (status or claim.status).model_copy(deep=True)
    out.phase = ClaimPhase.COMPLETED
    out.message = message
    out.completion_time = now
    out.observed_generation = claim.metadata.generation
    set_condition(
        out.conditions,
        Condition(
            type=COND_COMPLETED,
            status="True",
            reason=reason,
            message=message,
            last_transition_time=now,
        ),
    )
    return out


def calculate_claim_status(claim: SandboxClaim, now: datetime) -> ClaimStatusDecision:
    """The status decision at the start of a reconcile (``CalculateClaimStatus``, §5.4 step 3).

    Already completed: unchanged, terminal. First pass: ``Claiming`` and
    ``claimStartTime = now``. All replicas claimed: ``Completed`` /
    ``AllReplicasClaimed``. ``claimTimeout`` passed since ``claimStartTime``:
    ``Completed`` with ``TimedOut/ClaimTimeoutReached`` and
    ``Completed/TimeoutReached``.
    """
    status = claim.status.model_copy(deep=True)
    status.observed_generation = claim.metadata.generation
    if status.phase == ClaimPhase.COMPLETED:
        return ClaimStatusDecision(status, True, status != claim.status)
    if status.phase is None:
        status.phase = ClaimPhase.CLAIMING
        # metav1.Time is stored in whole seconds: every later reconcile reads
        # the truncated start (and measures the claim timeout from it).
        status.claim_start_time = truncate(now)
    start = status.claim_start_time or now
    claimed = status.claimed_replicas
    if claimed >= claim.spec.replicas:
        status = completed_status(
            claim,
            now,
            reason=REASON_ALL_REPLICAS_CLAIMED,
            message=f"Successfully claimed {_replicas_text(claim, claimed)} sandboxes",
            status=status,
        )
        return ClaimStatusDecision(status, True, True)
    elapsed = now - start
    if elapsed >= claim.spec.claim_timeout:
        message = (
            f"Timeout reached after {format_duration(elapsed)}, "
            f"claimed {_replicas_text(claim, claimed)} sandboxes"
        )
        set_condition(
            status.conditions,
            Condition(
                type=COND_TIMED_OUT,
                status="True",
                reason=REASON_CLAIM_TIMEOUT_REACHED,
                message=message,
                last_transition_time=truncate(now),
            ),
        )
        status = completed_status(
            claim, now, reason=REASON_TIMEOUT_REACHED, message=message, status=status
        )
        return ClaimStatusDecision(status, True, True)
    return ClaimStatusDecision(status, False, status != claim.status)


def sandboxset_not_found_status(claim: SandboxClaim, now: datetime) -> SandboxClaimStatus:
    """``Completed`` / ``SandboxSetNotFound``: no such template in the claim's namespace."""
    return completed_status(
        claim,
        now,
        reason=REASON_SANDBOXSET_NOT_FOUND,
        message=(f"SandboxSet {claim.metadata.namespace}/{claim.spec.template_name} not found"),
    )


def wants_resource_resize(claim: SandboxClaim) -> bool:
    """Whether the claim asks for an in-place CPU request or limit (``inplaceUpdate.resources``)."""
    inplace = claim.spec.inplace_update
    resources = inplace.resources if inplace is not None else None
    if resources is None:
        return False
    return "cpu" in (resources.requests or {}) or "cpu" in (resources.limits or {})


def feature_gate_disabled_status(claim: SandboxClaim, now: datetime) -> SandboxClaimStatus:
    """``Completed`` / ``FeatureGateDisabled``: a CPU resize asked with the gate off."""
    return completed_status(
        claim,
        now,
        reason=REASON_FEATURE_GATE_DISABLED,
        message=(
            "in-place resource resize is disabled (feature gate SandboxInPlaceResourceResize), "
            f"claimed {_replicas_text(claim, claim.status.claimed_replicas)} sandboxes"
        ),
    )


def progress_status(claim: SandboxClaim, claimed: int) -> SandboxClaimStatus:
    """The ``Claiming`` status after a wave, with message ``Claiming sandboxes: n/m claimed``."""
    out = claim.status.model_copy(deep=True)
    out.phase = ClaimPhase.CLAIMING
    out.claimed_replicas = claimed
    out.observed_generation = claim.metadata.generation
    out.message = f"Claiming sandboxes: {_replicas_text(claim, claimed)} claimed"
    return out


def ttl_action(
    claim: SandboxClaim, now: datetime
) -> tuple[Literal["delete", "requeue", "never"], float | None]:
    """What TTL handling does with a claim: delete it now, requeue after seconds, or never.

    Only a ``Completed`` claim expires; a negative ``ttlAfterCompleted`` never
    deletes. The claim's sandboxes are never touched.
    """
    status = claim.status
    if status.phase != ClaimPhase.COMPLETED:
        return "never", None
    ttl = claim.spec.ttl_after_completed
    if ttl < timedelta(0):
        return "never", None
    completed = status.completion_time or now
    remaining = ttl - (now - completed)
    if remaining <= timedelta(0):
        return "delete", None
    return "requeue", remaining.total_seconds()


def claim_options_for(
    claim: SandboxClaim,
    sbs: SandboxSet,
    *,
    lock_string: str,
    access_token: str,
    now: datetime,
    resolved: dict[str, Any] | None = None,
    annotations_on_pod: bool = True,
    candidate_count: int = DEFAULT_CANDIDATE_WINDOW,
) -> ClaimOptions:
    """The claim options the SandboxClaim controller builds once per reconcile (§5.1).

    Namespace is the claim's own; the owner is the claim's UID; the
    ``claim-name`` label names the claim. Spec labels go to the sandbox and its
    pod template, spec annotations to the sandbox and (without reserved
    prefixes, unless ``annotations_on_pod`` is off as before 2026-07-19) to the
    pod template. The runtime is initialised only if not
    skipped and the pool has the agent runtime (for a ``templateRef`` set, it
    may be in ``resolved``, the pod template of the SandboxTemplate the set
    names: #441). ``reserveFailedSandbox`` keeps failed sandboxes forever. No
    claim timeout: the controller makes one attempt per call. ``candidate_count``
    is the pick's candidate window (``CandidateCounts``, the manager's too). ``now`` is
    accepted for symmetry with the other rules. CSI mounts without runtime
    init are refused at each attempt naming ``spec.dynamicVolumesMount`` and
    why init is off: ``spec.skipInitRuntime``, or the pool without the agent
    runtime.
    """
    del now  # The claim path takes its times from the spec, not the clock.
    has_runtime = sandboxset_has_agent_runtime(sbs, resolved)
    opts = _claim_options(
        claim,
        lock_string=lock_string,
        access_token=access_token,
        initialises=not claim.spec.skip_init_runtime and has_runtime,
        annotations_on_pod=annotations_on_pod,
        candidate_count=candidate_count,
    )
    if opts.init_runtime is not None or not opts.csi_mounts:
        return opts
    # Only a claim that will be refused carries the reason: the names are for its error.
    if claim.spec.skip_init_runtime:
        why = "spec.skipInitRuntime is true"
    else:
        why = (
            f"SandboxSet {sbs.metadata.namespace}/{sbs.metadata.name} has no agent-runtime "
            f"(runtimes: [{AGENT_RUNTIME}], or an init container named {RUNTIME_INIT_CONTAINER})"
        )
    return dataclasses.replace(
        opts, runtime_init_names=RuntimeInitNames(SANDBOXCLAIM_CSI_MOUNTS, why)
    )


def _claim_options(
    claim: SandboxClaim,
    *,
    lock_string: str,
    access_token: str,
    initialises: bool,
    annotations_on_pod: bool,
    candidate_count: int = DEFAULT_CANDIDATE_WINDOW,
) -> ClaimOptions:
    spec = claim.spec
    annotations = dict(spec.annotations or {})
    inplace = spec.inplace_update
    resources = inplace.resources if inplace is not None else None
    init_runtime = None
    if initialises:
        init_runtime = InitRuntimeRequest(
            env_vars=dict(spec.env_vars or {}), access_token=access_token
        )
    return ClaimOptions(
        namespace=claim.metadata.namespace,
        user=claim.metadata.uid or "",
        template=spec.template_name,
        lock_string=lock_string,
        candidate_count=candidate_count,
        claim_name=claim.metadata.name,
        labels=dict(spec.labels or {}),
        annotations=annotations,
        pod_annotations=(
            {k: v for k, v in annotations.items() if not is_blacklisted(k)}
            if annotations_on_pod
            else {}
        ),
        shutdown_time=spec.shutdown_time,
        reserve_failed_for=RESERVE_FOREVER if spec.reserve_failed_sandbox else None,
        inplace_image=inplace.image if inplace is not None else None,
        cpu_request=((resources.requests or {}).get("cpu") if resources else None),
        cpu_limit=((resources.limits or {}).get("cpu") if resources else None),
        inplace_names=SANDBOXCLAIM_INPLACE_NAMES,
        init_runtime=init_runtime,
        csi_mounts=[m.model_copy(deep=True) for m in spec.dynamic_volumes_mount or []],
        claim_timeout=None,
        wait_ready_timeout=spec.wait_ready_timeout,
        create_on_no_stock=spec.create_on_no_stock,
    )


def sandboxclaim_annotations_problem(claim: SandboxClaim) -> FieldProblem | None:
    """Why every claim write of ``claim`` would be refused for its annotations, or ``None``.

    Each claimed sandbox gets the claim's annotations, its env vars (in the
    runtime-init request, unless ``skipInitRuntime``) and the manager's own
    keys in one lock write, which the API server refuses over 256 KiB: every
    attempt would fail until the claim times out. Asked of
    :func:`~pytest_kruise_agents.claiming.modification.claim_annotations_problem`,
    the rule of the commit, with UUID stand-ins for the lock, the token and a
    UID not given yet, so what it refuses the commit would refuse too. The
    env vars count whatever the pool (a pool without the agent runtime
    ignores them): they are meant to be stored. The problem names
    ``spec.envVars`` when there are env vars to store, else ``spec.annotations``.
    """
    spec = claim.spec
    initialises = not spec.skip_init_runtime
    opts = _claim_options(
        claim,
        lock_string=UUID_STAND_IN,
        access_token=UUID_STAND_IN,
        initialises=initialises,
        annotations_on_pod=False,
    )
    if not opts.user:
        opts = dataclasses.replace(opts, user=UUID_STAND_IN)
    problem = claim_annotations_problem(opts)
    if problem is None:
        return None
    _, why = problem
    if initialises and spec.env_vars:
        return FieldProblem(
            ("spec", "envVars"), f"with the annotations, each claimed sandbox's annotations {why}"
        )
    return FieldProblem(
        ("spec", "annotations"),
        f"with the sandbox-manager's own keys, each claimed sandbox's annotations {why}",
    )
