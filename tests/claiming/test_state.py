"""Specification of the derived sandbox state: the table of reference §1.3, row by row."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import Condition, OwnerReference
from pytest_kruise_agents.api.sandbox import PodInfo, SandboxPhase, SandboxState
from pytest_kruise_agents.claiming.state import (
    is_claimed,
    is_controlled_by_sandboxset,
    is_pause_settled,
    is_ready,
    is_reserved_failed,
    pod_ip,
    sandbox_key,
    sandbox_state,
)

from .builders import NOW, make_sandbox

P = SandboxPhase
S = SandboxState


@pytest.mark.parametrize(
    ("row", "kwargs", "state", "reason"),
    [
        (1, {"deleted": True}, S.DEAD, "ResourceDeleted"),
        (2, {"shutdown": NOW - timedelta(seconds=1)}, S.DEAD, "ShutdownTimeReached"),
        (3, {"phase": P.PENDING}, S.CREATING, "ResourcePending"),
        (4, {"phase": P.SUCCEEDED}, S.DEAD, "ResourceSucceeded"),
        (4, {"phase": P.FAILED}, S.DEAD, "ResourceFailed"),
        (4, {"phase": P.TERMINATING}, S.DEAD, "ResourceTerminating"),
        (5, {}, S.AVAILABLE, "ResourceControlledBySbsAndReady"),
        (6, {"ready": False}, S.CREATING, "ResourceControlledBySbsButNotReady"),
        (7, {"owned": False, "paused": True}, S.PAUSED, "RunningResourceClaimedAndPaused"),
        (8, {"owned": False}, S.RUNNING, "RunningResourceClaimedAndReady"),
        (9, {"owned": False, "ready": False}, S.DEAD, "RunningResourceClaimedButNotReady"),
        (10, {"owned": False, "phase": P.PAUSED}, S.PAUSED, "NotRunningResourceClaimed"),
        (10, {"owned": False, "phase": P.RESUMING}, S.PAUSED, "NotRunningResourceClaimed"),
        (10, {"owned": False, "phase": P.UPGRADING}, S.PAUSED, "NotRunningResourceClaimed"),
        (10, {"owned": False, "phase": P.RECYCLING}, S.PAUSED, "NotRunningResourceClaimed"),
    ],
)
def test_state_table_row(row: int, kwargs: dict[str, object], state: S, reason: str) -> None:
    """Each row of the derived-state table yields its state and reason string."""
    assert sandbox_state(make_sandbox(**kwargs), NOW) == (state, reason)  # type: ignore[arg-type]


def test_rows_are_evaluated_top_down() -> None:
    """An earlier row wins: a deleted, expired, pending sandbox is dead because it is deleted."""
    sbx = make_sandbox(deleted=True, shutdown=NOW - timedelta(hours=1), phase=P.PENDING)
    assert sandbox_state(sbx, NOW) == (S.DEAD, "ResourceDeleted")
    expired_pending = make_sandbox(shutdown=NOW - timedelta(hours=1), phase=P.PENDING)
    assert sandbox_state(expired_pending, NOW)[1] == "ShutdownTimeReached"
    pending_controlled_ready = make_sandbox(phase=P.PENDING, ready=True)
    assert sandbox_state(pending_controlled_ready, NOW) == (S.CREATING, "ResourcePending")


def test_shutdown_time_is_reached_only_after_it() -> None:
    """A sandbox is dead strictly after its shutdownTime, not at it."""
    at = make_sandbox(owned=False, shutdown=NOW)
    assert sandbox_state(at, NOW)[0] == S.RUNNING
    assert sandbox_state(at, NOW + timedelta(microseconds=1))[0] == S.DEAD


def test_a_shutdown_time_counts_in_whole_seconds() -> None:
    """A hand-written fraction of a second is dropped before the comparison (§9 item 10):
    a shutdownTime of 10:00:00.9 is reached just after 10:00:00, as upstream truncates it."""
    sbx = make_sandbox(owned=False, shutdown=NOW + timedelta(microseconds=900_000))
    assert sandbox_state(sbx, NOW)[0] == S.RUNNING
    assert sandbox_state(sbx, NOW + timedelta(microseconds=1)) == (S.DEAD, "ShutdownTimeReached")
    assert sbx.spec.shutdown_time == NOW + timedelta(microseconds=900_000)  # as written


def test_a_paused_pool_sandbox_is_still_available() -> None:
    """spec.paused matters only once claimed: a controlled ready sandbox is available."""
    assert sandbox_state(make_sandbox(paused=True), NOW)[0] == S.AVAILABLE


def test_unset_phase_of_a_claimed_sandbox_counts_as_paused() -> None:
    """A claimed sandbox with no phase yet falls through to the last row."""
    assert sandbox_state(make_sandbox(owned=False, phase=None), NOW) == (
        S.PAUSED,
        "NotRunningResourceClaimed",
    )


def test_controlled_means_sandboxset_controller_ref() -> None:
    """Only a controller reference to an agents.kruise.io/v1alpha1 SandboxSet counts."""
    sbx = make_sandbox()
    assert is_controlled_by_sandboxset(sbx) and not is_claimed(sbx)
    for ref in (
        OwnerReference(api_version=keys.API_VERSION, kind="SandboxSet", name="x", uid="u"),
        OwnerReference(
            api_version="apps/v1", kind="SandboxSet", name="x", uid="u", controller=True
        ),
        OwnerReference(
            api_version=keys.API_VERSION, kind="ReplicaSet", name="x", uid="u", controller=True
        ),
    ):
        other = make_sandbox(owned=False)
        other.metadata.owner_references = [ref]
        assert not is_controlled_by_sandboxset(other)
        assert is_claimed(other)


def test_is_ready_reads_the_ready_condition() -> None:
    """Ready means a Ready condition with status True; no condition is not ready."""
    assert is_ready(make_sandbox(ready=True))
    assert not is_ready(make_sandbox(ready=False))
    bare = make_sandbox()
    bare.status.conditions = []
    assert not is_ready(bare)


def test_a_pause_is_settled_once_the_sandbox_paused_condition_is_true() -> None:
    """spec.paused alone is a pause under way; SandboxPaused=True means the pod is gone."""
    sbx = make_sandbox(paused=True)
    assert not is_pause_settled(sbx)
    sbx.status.conditions = [
        Condition(type="SandboxPaused", status="False", reason="Pending", last_transition_time=NOW)
    ]
    assert not is_pause_settled(sbx)
    sbx.status.conditions = [
        Condition(
            type="SandboxPaused", status="True", reason="StopPauseSucceed", last_transition_time=NOW
        )
    ]
    assert is_pause_settled(sbx)


def test_reserved_failed_label() -> None:
    """A sandbox is reserved-failed when its label says "true"."""
    assert is_reserved_failed(make_sandbox(labels={keys.LABEL_RESERVED_FAILED: "true"}))
    assert not is_reserved_failed(make_sandbox())


def test_a_reserved_failed_label_other_than_true_does_not_hide_the_sandbox() -> None:
    """Only the value "true" reserves: a label set to "false" (or empty) leaves the sandbox listed."""
    for value in ("false", "", "True"):
        assert not is_reserved_failed(make_sandbox(labels={keys.LABEL_RESERVED_FAILED: value}))


def test_pod_ip_prefers_pod_info() -> None:
    """The pod IP comes from podInfo, else from sandboxIp, else there is none."""
    sbx = make_sandbox(ip=None)
    assert pod_ip(sbx) is None
    sbx.status.sandbox_ip = "10.1.1.1"
    assert pod_ip(sbx) == "10.1.1.1"
    sbx.status.pod_info = PodInfo(pod_ip="10.2.2.2")
    assert pod_ip(sbx) == "10.2.2.2"


def test_an_empty_pod_info_ip_is_no_pod_ip() -> None:
    """A podInfo whose podIP is empty (the pod has no IP yet) falls back to sandboxIp, and with
    neither the sandbox has no pod IP: an empty string is not an address to route to."""
    sbx = make_sandbox(ip=None)
    sbx.status.pod_info = PodInfo(pod_ip="")
    assert pod_ip(sbx) is None
    sbx.status.sandbox_ip = "10.1.1.1"
    assert pod_ip(sbx) == "10.1.1.1"


def test_sandbox_key() -> None:
    """The key of a sandbox is namespace/name."""
    assert sandbox_key(make_sandbox("a", namespace="team")) == "team/a"
