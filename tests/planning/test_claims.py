"""How a workload's claim options become an E2B create's metadata or a SandboxClaim manifest."""

from __future__ import annotations

from simulator.planning.claims import e2b_metadata, sandboxclaim_manifest
from simulator.planning.scenario import ClaimSpec


def test_claim_options_become_extension_keys() -> None:
    """Each option is its ``e2b.agents.kruise.io/`` key; the user's metadata stays."""
    claim = ClaimSpec(
        create_on_no_stock=False,
        claim_timeout=2.5,
        image="registry.example.com/x:v2",
        cpu_request="1",
        cpu_limit="2",
        metadata={"team": "ml"},
    )
    assert e2b_metadata(claim) == {
        "team": "ml",
        "e2b.agents.kruise.io/create-on-no-stock": "false",
        "e2b.agents.kruise.io/claim-timeout-seconds": "3",
        "e2b.agents.kruise.io/image": "registry.example.com/x:v2",
        "e2b.agents.kruise.io/cpu-request": "1",
        "e2b.agents.kruise.io/cpu-limit": "2",
    }
    assert e2b_metadata(ClaimSpec()) is None


def test_in_place_options_become_the_sandboxclaims_inplace_update() -> None:
    """Image and CPU go to ``spec.inplaceUpdate``; nothing asked, no ``inplaceUpdate``."""
    claim = ClaimSpec(path="sandboxclaim", image="registry.example.com/x:v2", cpu_limit="2")
    spec = sandboxclaim_manifest("c-1", "default", "base", claim)["spec"]
    assert spec["inplaceUpdate"] == {
        "image": "registry.example.com/x:v2",
        "resources": {"limits": {"cpu": "2"}},
    }
    plain = sandboxclaim_manifest("c-2", "default", "base", ClaimSpec(path="sandboxclaim"))
    assert "inplaceUpdate" not in plain["spec"]
