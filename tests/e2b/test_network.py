"""The server's memory of each claim's ``network``: one claim's rules are never another's."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from pytest_kruise_agents.api.e2b import SandboxNetwork, SandboxNetworkConfig
from pytest_kruise_agents.claiming.view import SandboxView
from pytest_kruise_agents.e2b.network import SandboxNetworks, reported_network

CLAIMED = SandboxView(
    sandbox_id="default--reuse-abcde",
    namespace="default",
    name="reuse-abcde",
    template_id="reuse",
    state="running",
    started_at=datetime(2026, 1, 1, tzinfo=UTC),
    end_at=None,
    cpu_count=1,
    memory_mb=512,
    disk_size_mb=0,
    envd_access_token="token-1",
)
RULES = SandboxNetwork(deny_out=["0.0.0.0/0"])


def test_the_network_of_a_claim_is_reported_for_that_claim() -> None:
    networks = SandboxNetworks()
    networks.record(CLAIMED, RULES)

    assert networks.of(replace(CLAIMED, state="paused")) == RULES


def test_a_recycled_sandbox_claimed_again_shows_no_earlier_claims_network() -> None:
    """A ``cleanup-enabled`` sandbox keeps its id in its pool: the next claim is another one."""
    networks = SandboxNetworks()
    networks.record(CLAIMED, RULES)

    later = replace(
        CLAIMED, started_at=datetime(2026, 1, 1, 0, 5, tzinfo=UTC), envd_access_token="t2"
    )
    assert networks.of(later) is None
    networks.record(later, None)
    assert CLAIMED.sandbox_id not in networks


def test_forget_drops_the_entry() -> None:
    networks = SandboxNetworks()
    networks.record(CLAIMED, RULES)

    networks.forget(CLAIMED.sandbox_id)
    networks.forget(CLAIMED.sandbox_id)  # twice: no error

    assert len(networks) == 0


def test_only_the_egress_lists_are_reported() -> None:
    requested = SandboxNetworkConfig.model_validate(
        {"allowOut": ["1.1.1.1"], "allowPublicTraffic": False, "dnsServers": ["8.8.8.8"]}
    )

    reported = reported_network(requested)

    assert reported is not None and reported.to_wire() == {"allowOut": ["1.1.1.1"]}
    assert reported_network(None) is None


def test_a_create_is_reported_its_egress_lists_both() -> None:
    requested = SandboxNetworkConfig(allow_out=["10.1.0.0/16"], deny_out=["0.0.0.0/0"])

    assert reported_network(requested) == SandboxNetwork(
        allow_out=["10.1.0.0/16"], deny_out=["0.0.0.0/0"]
    )
    assert reported_network(None) is None
