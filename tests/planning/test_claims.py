"""How a workload's claim options become an E2B create's metadata or a SandboxClaim manifest."""

from __future__ import annotations

from datetime import timedelta

from pytest_kruise_agents.api.manifest import load_manifest
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
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


def test_sandboxclaim_timeouts_are_go_durations_that_load_back_exactly() -> None:
    """``claim_timeout`` and ``wait_ready_timeout`` are written as Go writes durations, so that
    the manifest loads and a long one is neither refused (``1.23457e+06s``) nor rounded."""
    claim = ClaimSpec(path="sandboxclaim", claim_timeout=1234567, wait_ready_timeout=90.5)
    manifest = sandboxclaim_manifest("c", "default", "base", claim)
    assert manifest["spec"]["claimTimeout"] == "342h56m7s"
    assert manifest["spec"]["waitReadyTimeout"] == "1m30.5s"
    loaded = load_manifest(manifest)
    assert isinstance(loaded, SandboxClaim)
    assert loaded.spec.claim_timeout == timedelta(seconds=1234567)
    assert loaded.spec.wait_ready_timeout == timedelta(seconds=90.5)
