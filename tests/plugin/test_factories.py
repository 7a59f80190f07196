"""The factory fixtures' classes, called directly (inner pytest runs are in test_fixtures.py)."""

from __future__ import annotations

from typing import Any

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.plugin.clock import KruiseClock
from pytest_kruise_agents.plugin.factories import SandboxClaimFactory


def test_sandbox_claim_waits_without_copying_the_claim_at_every_event(
    sim_backend: SimBackend, model_copies: list[Any]
) -> None:
    """``sandbox_claim`` looks at its claim after every event of the model: in place, so that
    only the claim applied and the one returned are copies."""
    factory = SandboxClaimFactory(KruiseClock(sim_backend), sim_backend)
    claim = factory("base", replicas=3)
    assert claim.status.claimed_replicas == 3
    assert [type(c).__name__ for c in model_copies] == ["SandboxClaim", "SandboxClaim"]
