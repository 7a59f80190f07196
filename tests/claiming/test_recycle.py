"""Recycle rules: when a kill recycles, and what the reset leaves on a sandbox (reference §4)."""

from __future__ import annotations

from datetime import timedelta

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import Condition
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxPhase, SandboxState
from pytest_kruise_agents.claiming.modification import (
    ANN_CLEANUP_ENABLED,
    ANN_CLEANUP_RETAIN_ON_FAILURE,
    modify_for_claim,
    sandboxset_owner_reference,
)
from pytest_kruise_agents.claiming.recycle import (
    ANN_CLEANUP,
    can_recycle_on_kill,
    recycle_enabled,
    recycle_ended,
    recycle_pending,
    recycle_refusal,
    recycle_requested,
    recycle_timing,
    reset_for_recycle,
    retain_on_failure,
)
from pytest_kruise_agents.claiming.state import sandbox_state

from .builders import NOW, make_sandbox, make_sandboxset
from .test_modification import options

ENABLED = {ANN_CLEANUP_ENABLED: "true"}


def test_recycling_is_opt_in_and_triggered_by_the_cleanup_annotation() -> None:
    assert not recycle_enabled(make_sandbox())
    assert not recycle_enabled(make_sandbox(annotations={ANN_CLEANUP_ENABLED: "True"}))
    assert recycle_enabled(make_sandbox(annotations=ENABLED))
    assert not recycle_requested(make_sandbox(annotations={ANN_CLEANUP: "true"}))
    assert recycle_requested(make_sandbox(annotations={**ENABLED, ANN_CLEANUP: "true"}))


def test_a_kill_recycles_only_a_running_enabled_sandbox_without_volumes() -> None:
    """Paused, deleting, or PVC-backed sandboxes are deleted by a kill instead."""
    assert can_recycle_on_kill(make_sandbox(owned=False, annotations=ENABLED))
    assert not can_recycle_on_kill(make_sandbox(owned=False))
    paused = make_sandbox(owned=False, annotations=ENABLED, phase=SandboxPhase.PAUSED)
    assert not can_recycle_on_kill(paused)
    # A pause already written (spec.paused) stops the pod first, even while it still runs.
    pausing = make_sandbox(owned=False, annotations=ENABLED, paused=True)
    assert not can_recycle_on_kill(pausing)
    assert not can_recycle_on_kill(make_sandbox(owned=False, annotations=ENABLED, deleted=True))
    with_pvc = make_sandbox(owned=False, annotations=ENABLED)
    with_pvc.spec.volume_claim_templates = [{"metadata": {"name": "data"}}]
    assert not can_recycle_on_kill(with_pvc)
    assert recycle_refusal(with_pvc) == "a sandbox with volumeClaimTemplates cannot be recycled"


def test_a_recycle_is_pending_once_triggered_unless_it_will_be_refused() -> None:
    """The trigger on an enabled sandbox, without PVCs (which the controller refuses)."""
    triggered = {**ENABLED, ANN_CLEANUP: "true"}
    assert not recycle_pending(make_sandbox(owned=False, annotations=ENABLED))
    assert recycle_pending(make_sandbox(owned=False, annotations=triggered))
    with_pvc = make_sandbox(owned=False, annotations=triggered)
    with_pvc.spec.volume_claim_templates = [{"metadata": {"name": "data"}}]
    assert not recycle_pending(with_pvc)


def test_retention_on_failure_is_a_positive_go_duration() -> None:
    def retain(value: str) -> timedelta | None:
        return retain_on_failure(make_sandbox(annotations={ANN_CLEANUP_RETAIN_ON_FAILURE: value}))

    assert retain("1h30m") == timedelta(minutes=90)
    assert retain("0s") is None
    assert retain("-5m") is None
    assert retain("soon") is None
    assert retain_on_failure(make_sandbox()) is None


def test_the_reset_undoes_the_claim_and_returns_the_sandbox_to_its_pool() -> None:
    """After a claim and the kill's trigger, the reset leaves what a fresh pool sandbox has."""
    sbs = make_sandboxset()
    pooled = make_sandbox(annotations=ENABLED, labels={"keep": "1"})
    opts = options(
        labels={"team": "ml"},
        annotations={"note": "x"},
        claim_name="job",
        shutdown_time=NOW + timedelta(minutes=5),
        pause_time=NOW + timedelta(minutes=4),
    )
    claimed = modify_for_claim(pooled, opts, NOW)
    claimed.metadata.annotations[ANN_CLEANUP] = "true"
    claimed.metadata.labels[keys.LABEL_SANDBOX_ID] = "abc"
    # An E2B create that asked for its IP, and a resume (paused written back to false).
    claimed.metadata.annotations[keys.ANN_RETURN_SANDBOX_IP] = "true"
    claimed.spec.paused = False
    assert sandbox_state(claimed, NOW)[0] is SandboxState.RUNNING

    reset_for_recycle(claimed, sandboxset_owner_reference(sbs))
    meta = claimed.metadata
    assert meta.annotations == ENABLED
    assert meta.labels == {**pooled.metadata.labels, keys.LABEL_SANDBOX_CLAIMED: "false"}
    assert meta.owner_references == pooled.metadata.owner_references
    assert claimed.spec.shutdown_time is None and claimed.spec.pause_time is None
    assert claimed.spec.paused is None  # unset, as a pool sandbox has it
    assert sandbox_state(claimed, NOW)[0] is SandboxState.AVAILABLE


def test_the_reset_keeps_keys_the_claim_did_not_write() -> None:
    """A user key the pool sandbox already had survives unless the claim recorded it."""
    sbx = make_sandbox(owned=False, annotations={**ENABLED, "site": "a"}, labels={"tier": "x"})
    reset_for_recycle(sbx, sandboxset_owner_reference(make_sandboxset()))
    assert sbx.metadata.annotations == {**ENABLED, "site": "a"}
    assert sbx.metadata.labels["tier"] == "x"


def recycling(reason: str = "RecyclingStarted", started: float = 0.0) -> Sandbox:
    sbx = make_sandbox(owned=False, annotations=ENABLED, phase=SandboxPhase.RECYCLING)
    sbx.status.conditions = [
        Condition(
            type="Recycling",
            status="False",
            reason=reason,
            last_transition_time=NOW - timedelta(seconds=started),
        )
    ]
    return sbx


def test_a_recycle_waits_its_grace_then_is_due_and_times_out() -> None:
    """Grace 10 s, timeout 60 s, counted from the condition's transition time."""

    def timing(started: float, grace: float = 10, timeout: float = 60) -> tuple[str, float]:
        t = recycle_timing(
            recycling(started=started),
            NOW,
            grace=timedelta(seconds=grace),
            timeout=timedelta(seconds=timeout),
        )
        return t.kind, t.after

    assert timing(0) == ("wait", 10.0)
    assert timing(4) == ("wait", 6.0)
    assert timing(10) == ("due", 0.0)
    assert timing(59) == ("due", 0.0)
    assert timing(60) == ("timeout", 0.0)
    # A wait never outlasts the timeout.
    assert timing(5, grace=100, timeout=30) == ("wait", 25.0)


def test_a_recycle_has_ended_only_once_it_failed_or_timed_out() -> None:
    assert not recycle_ended(recycling())
    assert recycle_ended(recycling("RecyclingFailed"))
    assert recycle_ended(recycling("RecyclingTimeout"))
    assert not recycle_ended(recycling("RecyclingSucceeded"))
