"""How a workload's claim options become an E2B create's metadata or a SandboxClaim manifest."""

from __future__ import annotations

from datetime import timedelta

from pytest_kruise_agents.api.manifest import load_manifest
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.backends.sim import default_pools_yaml
from simulator.cluster import Cluster
from simulator.planning.claims import (
    SandboxClaimTracker,
    e2b_metadata,
    sandboxclaim_manifest,
    sandboxclaim_outcomes,
)
from simulator.planning.scenario import ClaimSpec

CLAIM_ONE = """
apiVersion: agents.kruise.io/v1alpha1
kind: SandboxClaim
metadata: {name: c1, namespace: default}
spec: {templateName: base, replicas: 1}
"""


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


def test_a_sandboxclaims_failed_attempts_that_took_a_sandbox_count_as_taken() -> None:
    """A wave whose /init fails after its warm lock emptied a slot: the claim's outcomes carry
    it (``retaken``) beside the retry that delivered, so the measured refill counts both."""
    cluster = Cluster(seed=4, nodes=2)
    cluster.apply(default_pools_yaml(2, pools=("base",)))
    cluster.wait_for_pool("base")
    cluster.inject("runtime_init_failure", count=5)  # the first attempt's five /init tries
    applied = cluster.now
    cluster.apply(CLAIM_ONE)
    cluster.advance(120)
    records = [r for r in cluster.records if r.claim_name == "c1"]
    assert [(r.delivered is not None, r.error_reason) for r in records] == [
        (False, "InitRuntimeFailed"),
        (True, None),
    ]
    tracker = SandboxClaimTracker(
        workload=0,
        pool="default/base",
        name="c1",
        namespace="default",
        applied=applied,
        holds=[None],
        records=records,
    )
    (outcome,) = sandboxclaim_outcomes(tracker, phases=False)
    failed = records[0]
    assert failed.picked is not None and failed.locked is not None
    assert outcome.taken == records[1].picked
    assert outcome.retaken == ((failed.picked, failed.locked - failed.picked),)
