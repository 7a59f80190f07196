"""Specification of the SandboxClaim reconcile decisions (reference §5.4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.sandboxclaim import (
    ClaimPhase,
    CSIMountConfig,
    InplaceUpdate,
    ResourceRequirements,
    SandboxClaim,
)
from pytest_kruise_agents.api.validation import ANNOTATIONS_MAX, annotations_size
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.extensions import RESERVE_FOREVER
from pytest_kruise_agents.claiming.modification import (
    UUID_STAND_IN,
    InitRuntimeRequest,
    claim_annotations,
    validate_claim_options,
)
from pytest_kruise_agents.claiming.sandboxclaim import (
    calculate_claim_status,
    claim_batch,
    claim_options_for,
    claim_waves,
    feature_gate_disabled_status,
    progress_status,
    requeue_after,
    sandboxclaim_annotations_problem,
    sandboxset_not_found_status,
    ttl_action,
    wants_resource_resize,
)

from .builders import NOW, make_claim, make_sandboxset, pod_template


def claiming(claim: SandboxClaim, *, started_ago: timedelta, claimed: int = 0) -> SandboxClaim:
    """The claim as it looks in phase Claiming, started ``started_ago`` before NOW."""
    out = claim.model_copy(deep=True)
    out.status.phase = ClaimPhase.CLAIMING
    out.status.claim_start_time = NOW - started_ago
    out.status.claimed_replicas = claimed
    return out


class TestWaves:
    """Batch and wave sizes."""

    def test_reference_example(self) -> None:
        """A batch of 50 runs in waves of 5, 10, 20, 15."""
        assert claim_waves(50) == [5, 10, 20, 15]

    @pytest.mark.parametrize(("n", "waves"), [(0, []), (1, [1]), (5, [5]), (6, [5, 1])])
    def test_small(self, n: int, waves: list[int]) -> None:
        """Waves start at 5 and double, capped by what is left."""
        assert claim_waves(n) == waves

    @given(st.integers(min_value=0, max_value=5000), st.integers(min_value=1, max_value=20))
    def test_waves_sum_to_n(self, n: int, initial: int) -> None:
        """Waves sum to n and are all positive."""
        waves = claim_waves(n, initial)
        assert sum(waves) == n and all(w > 0 for w in waves)

    @pytest.mark.parametrize(
        ("desired", "current", "batch"), [(100, 0, 50), (100, 80, 20), (3, 3, 0), (3, 5, 0)]
    )
    def test_batch(self, desired: int, current: int, batch: int) -> None:
        """One reconcile claims min(desired - current, 50), never negative."""
        assert claim_batch(desired, current) == batch

    def test_requeue(self) -> None:
        """Progress requeues immediately, no progress after 2 s."""
        assert requeue_after(1) == 0.0
        assert requeue_after(0) == 2.0


class TestCalculateStatus:
    """CalculateClaimStatus."""

    def test_first_pass_starts_claiming(self) -> None:
        """The first reconcile sets phase Claiming and claimStartTime = now."""
        decision = calculate_claim_status(make_claim(), NOW)
        assert decision.status.phase == ClaimPhase.CLAIMING
        assert decision.status.claim_start_time == NOW
        assert decision.status.observed_generation == 1
        assert decision.changed and not decision.terminal

    def test_input_claim_is_not_mutated(self) -> None:
        """The claim passed in keeps its status."""
        claim = make_claim()
        calculate_claim_status(claim, NOW)
        assert claim.status.phase is None

    def test_claiming_within_timeout_is_unchanged(self) -> None:
        """A claim still claiming within its timeout is neither terminal nor changed."""
        claim = claiming(make_claim(), started_ago=timedelta(seconds=10))
        claim.status.observed_generation = 1
        decision = calculate_claim_status(claim, NOW)
        assert not decision.terminal and not decision.changed

    def test_all_replicas_claimed_completes(self) -> None:
        """With every replica claimed the claim completes with AllReplicasClaimed."""
        claim = claiming(make_claim(replicas=3), started_ago=timedelta(seconds=5), claimed=3)
        decision = calculate_claim_status(claim, NOW)
        status = decision.status
        assert decision.terminal and decision.changed
        assert status.phase == ClaimPhase.COMPLETED
        assert status.message == "Successfully claimed 3/3 sandboxes"
        assert status.completion_time == NOW
        cond = find_condition(status.conditions, "Completed")
        assert cond is not None and (cond.status, cond.reason) == ("True", "AllReplicasClaimed")
        assert find_condition(status.conditions, "TimedOut") is None

    def test_timeout_completes_with_both_conditions(self) -> None:
        """After claimTimeout the claim completes with TimedOut and Completed/TimeoutReached."""
        claim = claiming(
            make_claim(replicas=5, claim_timeout=timedelta(minutes=1)),
            started_ago=timedelta(seconds=61),
            claimed=2,
        )
        decision = calculate_claim_status(claim, NOW)
        status = decision.status
        assert decision.terminal
        assert status.phase == ClaimPhase.COMPLETED
        assert status.message == "Timeout reached after 1m1s, claimed 2/5 sandboxes"
        timed_out = find_condition(status.conditions, "TimedOut")
        completed = find_condition(status.conditions, "Completed")
        assert timed_out is not None and timed_out.reason == "ClaimTimeoutReached"
        assert completed is not None and completed.reason == "TimeoutReached"
        assert status.completion_time == NOW

    def test_status_times_are_whole_seconds(self) -> None:
        """``metav1.Time`` is stored in whole seconds: claimStartTime, completionTime and the
        conditions' transition times drop the fraction, and the timeout counts from the
        truncated start, as upstream's next reconcile reads it back."""
        later = NOW + timedelta(microseconds=987_654)
        started = calculate_claim_status(make_claim(), later).status
        assert started.claim_start_time == NOW
        claim = make_claim(claim_timeout=timedelta(seconds=10)).model_copy(
            update={"status": started}
        )
        # 9.5 s after the request, 10.5 s after the truncated start: timed out.
        decision = calculate_claim_status(claim, later + timedelta(seconds=9.5))
        assert decision.terminal
        status = decision.status
        assert status.message == "Timeout reached after 10.487654s, claimed 0/1 sandboxes"
        assert status.completion_time == NOW + timedelta(seconds=10)
        assert {c.last_transition_time for c in status.conditions} == {NOW + timedelta(seconds=10)}

    def test_timeout_boundary_is_inclusive(self) -> None:
        """Exactly claimTimeout after the start counts as timed out."""
        claim = claiming(make_claim(), started_ago=timedelta(minutes=1))
        assert calculate_claim_status(claim, NOW).terminal

    def test_all_claimed_wins_over_timeout(self) -> None:
        """A claim that got everything completes as AllReplicasClaimed even if late."""
        claim = claiming(make_claim(), started_ago=timedelta(hours=1), claimed=1)
        cond = find_condition(calculate_claim_status(claim, NOW).status.conditions, "Completed")
        assert cond is not None and cond.reason == "AllReplicasClaimed"

    def test_completed_stays_completed(self) -> None:
        """A completed claim is terminal and left as it is."""
        claim = claiming(make_claim(), started_ago=timedelta(hours=1), claimed=1)
        done = claim.model_copy(update={"status": calculate_claim_status(claim, NOW).status})
        later = calculate_claim_status(done, NOW + timedelta(hours=1))
        assert later.terminal and not later.changed
        assert later.status == done.status

    def test_a_completed_claim_edited_since_records_the_new_generation(self) -> None:
        """A completed claim stays completed, but an edit (a new generation) is observed: the
        status changes only in its observedGeneration, and is written."""
        claim = claiming(make_claim(), started_ago=timedelta(hours=1), claimed=1)
        done = claim.model_copy(update={"status": calculate_claim_status(claim, NOW).status})
        edited = done.model_copy(deep=True)
        edited.metadata.generation = 2
        decision = calculate_claim_status(edited, NOW + timedelta(hours=1))
        assert decision.terminal and decision.changed
        assert decision.status == done.status.model_copy(update={"observed_generation": 2})


def test_only_a_cpu_value_asks_for_a_resource_resize() -> None:
    """An image, or memory alone, is not a resize the feature gate covers; a CPU value is."""
    assert not wants_resource_resize(make_claim())
    assert not wants_resource_resize(make_claim(inplace_update=InplaceUpdate(image="img:2")))
    memory = ResourceRequirements(requests={"memory": "1Gi"})
    assert not wants_resource_resize(make_claim(inplace_update=InplaceUpdate(resources=memory)))
    for resources in (
        ResourceRequirements(requests={"cpu": "2"}),
        ResourceRequirements(limits={"cpu": "2"}),
    ):
        assert wants_resource_resize(make_claim(inplace_update=InplaceUpdate(resources=resources)))


def test_a_resize_with_the_gate_off_completes_the_claim() -> None:
    """``Completed`` / ``FeatureGateDisabled``, naming the gate and what was claimed."""
    status = feature_gate_disabled_status(
        claiming(make_claim(replicas=3), started_ago=timedelta(0)), NOW
    )
    assert status.phase == ClaimPhase.COMPLETED and status.completion_time == NOW
    cond = find_condition(status.conditions, "Completed")
    assert cond is not None and cond.reason == "FeatureGateDisabled"
    assert "SandboxInPlaceResourceResize" in cond.message and "0/3" in cond.message


def test_sandboxset_not_found() -> None:
    """A missing SandboxSet completes the claim with reason SandboxSetNotFound."""
    status = sandboxset_not_found_status(make_claim(generation=3), NOW)
    assert status.phase == ClaimPhase.COMPLETED
    assert status.observed_generation == 3
    cond = find_condition(status.conditions, "Completed")
    assert cond is not None and cond.reason == "SandboxSetNotFound"
    assert status.message is not None and "default/demo" in status.message


def test_progress_status() -> None:
    """Progress writes claimedReplicas and the message Claiming sandboxes: n/m claimed."""
    claim = claiming(make_claim(replicas=10), started_ago=timedelta(seconds=1))
    status = progress_status(claim, 4)
    assert status.claimed_replicas == 4
    assert status.message == "Claiming sandboxes: 4/10 claimed"
    assert status.phase == ClaimPhase.CLAIMING
    assert claim.status.claimed_replicas == 0


class TestTTL:
    """ttlAfterCompleted."""

    def done(self, ttl: timedelta, completed_ago: timedelta) -> SandboxClaim:
        """A claim completed ``completed_ago`` before NOW with the given TTL."""
        claim = make_claim(ttl_after_completed=ttl)
        claim.status.phase = ClaimPhase.COMPLETED
        claim.status.completion_time = NOW - completed_ago
        return claim

    def test_not_completed_never_expires(self) -> None:
        """Only completed claims expire."""
        assert ttl_action(make_claim(), NOW) == ("never", None)

    def test_negative_ttl_never_deletes(self) -> None:
        """A negative TTL keeps the claim forever."""
        assert ttl_action(self.done(timedelta(seconds=-1), timedelta(days=9)), NOW) == (
            "never",
            None,
        )

    def test_a_zero_ttl_deletes_at_completion(self) -> None:
        """Only a negative TTL keeps the claim: ``ttlAfterCompleted: 0s`` deletes it as soon as
        it completes."""
        assert ttl_action(self.done(timedelta(0), timedelta(0)), NOW) == ("delete", None)

    def test_requeue_until_ttl(self) -> None:
        """Before the TTL passes the claim is requeued for the remaining time."""
        assert ttl_action(self.done(timedelta(minutes=60), timedelta(minutes=45)), NOW) == (
            "requeue",
            900.0,
        )

    def test_delete_after_ttl(self) -> None:
        """Once the TTL has passed the claim is deleted."""
        assert ttl_action(self.done(timedelta(minutes=60), timedelta(minutes=60)), NOW) == (
            "delete",
            None,
        )


class TestClaimOptionsFor:
    """The claim options the controller builds."""

    def test_identity_and_defaults(self) -> None:
        """Namespace, owner, template and claim name come from the claim; no claim timeout."""
        opts = claim_options_for(
            make_claim(), make_sandboxset(), lock_string="L", access_token="T", now=NOW
        )
        assert (opts.namespace, opts.user, opts.template) == ("default", "claim-uid-1", "demo")
        assert opts.claim_name == "claim-1"
        assert opts.lock_string == "L"
        assert opts.claim_timeout is None
        assert opts.wait_ready_timeout == timedelta(seconds=30)
        assert opts.create_on_no_stock is True
        assert opts.reserve_failed_for is None
        assert opts.init_runtime is None  # the default set has no agent runtime

    def test_init_runtime_only_with_agent_runtime(self) -> None:
        """The runtime is initialised only when the set has agent-runtime and it is not skipped."""
        sbs = make_sandboxset(runtimes=["agent-runtime"])
        claim = make_claim(env_vars={"K": "v"})
        opts = claim_options_for(claim, sbs, lock_string="L", access_token="T", now=NOW)
        assert opts.init_runtime == InitRuntimeRequest({"K": "v"}, "T")
        skip = make_claim(skip_init_runtime=True)
        assert (
            claim_options_for(skip, sbs, lock_string="L", access_token="T", now=NOW).init_runtime
            is None
        )

    @pytest.mark.parametrize(
        ("skip", "runtimes", "why"),
        [
            (True, ["agent-runtime"], "spec.skipInitRuntime is true"),
            (
                False,
                [],
                "SandboxSet default/demo has no agent-runtime "
                "(runtimes: [agent-runtime], or an init container named runtime)",
            ),
        ],
    )
    def test_csi_mounts_without_init_are_refused_naming_the_claims_fields(
        self, skip: bool, runtimes: list[str], why: str
    ) -> None:
        """Each attempt refuses CSI mounts without runtime init (``ValidateAndInitClaimOptions``):
        the 400 names ``spec.dynamicVolumesMount`` and why there is no init, the claim's
        ``skipInitRuntime`` or its pool without the agent runtime (skipped silently, §5.1)."""
        claim = make_claim(
            skip_init_runtime=skip,
            dynamic_volumes_mount=[CSIMountConfig(pv_name="pv", mount_path="/d")],
        )
        sbs = make_sandboxset(runtimes=runtimes)
        opts = claim_options_for(claim, sbs, lock_string="L", access_token="T", now=NOW)
        with pytest.raises(BadRequestError) as info:
            validate_claim_options(opts)
        assert info.value.field == "spec.dynamicVolumesMount"
        assert info.value.message == (
            f"spec.dynamicVolumesMount: CSI mounts need the runtime to be initialised, but {why}"
        )

    def test_spec_fields(self) -> None:
        """Labels, annotations, times, in-place, CSI and reservation come from the spec."""
        template = pod_template()
        template["spec"]["initContainers"] = [{"name": "runtime", "image": "rt"}]
        claim = make_claim(
            labels={"team": "a"},
            annotations={"note": "x", "agents.kruise.io/cleanup-enabled": "true"},
            shutdown_time=NOW + timedelta(hours=1),
            inplace_update=InplaceUpdate(
                image="python:3.13",
                resources=ResourceRequirements(requests={"cpu": "1"}, limits={"cpu": "2"}),
            ),
            dynamic_volumes_mount=[CSIMountConfig(pv_name="pv", mount_path="/d")],
            reserve_failed_sandbox=True,
            create_on_no_stock=False,
            wait_ready_timeout=timedelta(seconds=90),
        )
        opts = claim_options_for(
            claim, make_sandboxset(template=template), lock_string="L", access_token="T", now=NOW
        )
        assert opts.labels == {"team": "a"}
        assert opts.annotations == {"note": "x", "agents.kruise.io/cleanup-enabled": "true"}
        assert opts.pod_annotations == {"note": "x"}
        assert opts.shutdown_time == NOW + timedelta(hours=1)
        assert (opts.inplace_image, opts.cpu_request, opts.cpu_limit) == ("python:3.13", "1", "2")
        assert opts.csi_mounts == [CSIMountConfig(pv_name="pv", mount_path="/d")]
        assert opts.init_runtime is not None
        assert opts.reserve_failed_for == RESERVE_FOREVER
        assert opts.create_on_no_stock is False
        assert opts.wait_ready_timeout == timedelta(seconds=90)

    def test_annotations_stay_off_the_pod_template_as_at_v0_3_0(self) -> None:
        """Before 2026-07-19 (§1.5) claim annotations went to the sandbox only."""
        claim = make_claim(annotations={"note": "x"})
        opts = claim_options_for(
            claim,
            make_sandboxset(),
            lock_string="L",
            access_token="T",
            now=NOW,
            annotations_on_pod=False,
        )
        assert (opts.annotations, opts.pod_annotations) == ({"note": "x"}, {})


def test_a_claim_whose_every_write_would_be_refused_is_a_problem_naming_the_field() -> None:
    """Each claimed sandbox gets the claim's annotations, its env vars (in the runtime-init
    request) and the manager's keys in one lock write, which the API server refuses over
    256 KiB. Counted as the commit counts them (UUID stand-ins for what is not drawn yet), so
    a claim that could store them on a sandbox of its own is not refused."""
    big = {"BIG": "x" * 200_000, "B2": "y" * 70_000}
    problem = sandboxclaim_annotations_problem(make_claim(env_vars=big))
    assert problem is not None and problem.loc == ("spec", "envVars")
    assert "may not be more than 256 KiB in total" in problem.reason
    both = make_claim(env_vars={"A": "x" * 200_000}, annotations={"n": "y" * 70_000})
    problem = sandboxclaim_annotations_problem(both)
    assert problem is not None and problem.loc == ("spec", "envVars")
    assert sandboxclaim_annotations_problem(make_claim(env_vars={"A": "x" * 200_000})) is None
    # No init request: the env vars are not stored.
    assert (
        sandboxclaim_annotations_problem(make_claim(env_vars=big, skip_init_runtime=True)) is None
    )
    # The annotations alone fit the limit, but not with the manager's keys.
    alone = make_claim(annotations={"n": "y" * (256 * 1024 - 2)})
    problem = sandboxclaim_annotations_problem(alone)
    assert problem is not None and problem.loc == ("spec", "annotations")
    assert "sandbox-manager's own keys" in problem.reason
    # With skipInitRuntime the env vars are not stored: the annotations are what is too big.
    skipped = make_claim(
        annotations={"n": "y" * (256 * 1024 - 2)}, env_vars={"A": "x"}, skip_init_runtime=True
    )
    problem = sandboxclaim_annotations_problem(skipped)
    assert problem is not None and problem.loc == ("spec", "annotations")


def test_the_claim_problem_counts_exactly_what_one_attempt_writes() -> None:
    """At the limit exactly it passes, one byte more it does not: the lock write of one attempt
    onto a sandbox with no annotations of its own is then exactly 256 KiB."""
    sbs = make_sandboxset(runtimes=["agent-runtime"])
    empty = make_claim(uid=UUID_STAND_IN, env_vars={"V": ""})
    opts = claim_options_for(
        empty, sbs, lock_string=UUID_STAND_IN, access_token=UUID_STAND_IN, now=NOW
    )
    room = ANNOTATIONS_MAX - annotations_size(claim_annotations(opts, NOW))
    at_limit = make_claim(uid=UUID_STAND_IN, env_vars={"V": "x" * room})
    assert sandboxclaim_annotations_problem(at_limit) is None
    over = make_claim(uid=UUID_STAND_IN, env_vars={"V": "x" * (room + 1)})
    assert sandboxclaim_annotations_problem(over) is not None
    # A claim not given its UID yet is judged as it will be written: with a UUID for owner.
    assert sandboxclaim_annotations_problem(make_claim(uid="", env_vars={"V": "x" * room})) is None
    no_uid_over = make_claim(uid="", env_vars={"V": "x" * (room + 1)})
    assert sandboxclaim_annotations_problem(no_uid_over) is not None
