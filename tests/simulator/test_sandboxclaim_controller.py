"""The SandboxClaim controller claims sandboxes in waves and completes claims (reference §5.4).

These tests drive the controller with a scripted fake of the shared claim
implementation: each attempt succeeds (making a claimed sandbox owned by the
claim) or fails, as the test decides.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any

import pytest
import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import Condition, ObjectMeta
from pytest_kruise_agents.api.sandbox import PodInfo, Sandbox, SandboxPhase
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim, SandboxClaimSpec
from pytest_kruise_agents.api.sandboxset import SandboxSet, SandboxSetSpec
from pytest_kruise_agents.claiming.errors import NoAvailableError
from pytest_kruise_agents.claiming.modification import ClaimOptions
from simulator.context import SimContext
from simulator.controllers.sandboxclaim import SandboxClaimController
from simulator.profile import get_profile
from simulator.records import ClaimRecord
from simulator.world import World


class FakeClaimer:
    """A scripted ``TryClaimSandbox``: ``succeed(call_index)`` decides each attempt.

    A success takes ``duration`` seconds and stores a running sandbox owned by
    the claim, as a real lock write would; a failure raises ``no stock``.
    """

    def __init__(
        self,
        world: World,
        succeed: Callable[[int], bool] = lambda _i: True,
        duration: float = 0.1,
    ) -> None:
        self.world = world
        self.succeed = succeed
        self.duration = duration
        self.calls: list[tuple[float, ClaimOptions]] = []

    def is_fresh(self, sbx: Sandbox) -> bool:
        return True

    def try_claim(
        self, opts: ClaimOptions, record: ClaimRecord
    ) -> Generator[simpy.Event, Any, Sandbox]:
        index = len(self.calls)
        self.calls.append((self.world.ctx.now(), opts))
        yield self.world.ctx.env.timeout(self.duration)
        if not self.succeed(index):
            raise NoAvailableError("no stock")
        sbx = Sandbox(
            metadata=ObjectMeta(
                generate_name=f"{opts.template}-",
                namespace=opts.namespace or "default",
                labels={
                    keys.LABEL_SANDBOX_POOL: opts.template,
                    keys.LABEL_SANDBOX_CLAIMED: "true",
                    keys.LABEL_CLAIM_NAME: opts.claim_name or "",
                },
                annotations={keys.ANN_LOCK: opts.lock_string, keys.ANN_OWNER: opts.user},
            )
        )
        made = self.world.api.commit_create(sbx)
        ready = made.model_copy(deep=True)
        ready.status.phase = SandboxPhase.RUNNING
        ready.status.conditions = [Condition(type="Ready", status="True", reason="PodReady")]
        ready.status.pod_info = PodInfo(pod_ip="10.1.0.1")
        stored: Sandbox = self.world.api.commit_update(ready, subresource="status")
        record.locked = self.world.ctx.now()
        return stored

    def wave_sizes(self) -> list[int]:
        """Attempts grouped by the virtual time they started at."""
        sizes: dict[float, int] = {}
        for t, _ in self.calls:
            sizes[t] = sizes.get(t, 0) + 1
        return list(sizes.values())


def make_world(**knobs: Any) -> World:
    prof = get_profile("openkruise-head")
    if knobs:
        prof = prof.with_overrides(**knobs)
    world = World(SimContext(seed=3, profile=prof))
    world.api.commit_create(
        SandboxSet(
            metadata=ObjectMeta(name="base", namespace="default"),
            spec=SandboxSetSpec(
                replicas=0, template={"spec": {"containers": [{"name": "m", "image": "i"}]}}
            ),
        )
    )
    return world


def start(world: World, claimer: FakeClaimer) -> SandboxClaimController:
    ctl = SandboxClaimController(world, claimer)
    ctl.start()
    return ctl


def apply_claim(world: World, name: str, template: str = "base", **spec: Any) -> SandboxClaim:
    claim = SandboxClaim(
        metadata=ObjectMeta(name=name, namespace="default"),
        spec=SandboxClaimSpec(template_name=template, **spec),
    )
    stored: SandboxClaim = world.api.commit_create(claim)
    return stored


def own_sandbox(world: World, claim: SandboxClaim) -> None:
    """Store a sandbox the claim already owns (labelled and annotated as its claims are)."""
    world.api.commit_create(
        Sandbox(
            metadata=ObjectMeta(
                generate_name="base-",
                labels={keys.LABEL_CLAIM_NAME: claim.metadata.name or ""},
                annotations={keys.ANN_OWNER: claim.metadata.uid or ""},
            ),
        )
    )


def get_claim(world: World, name: str) -> SandboxClaim | None:
    found: SandboxClaim | None = world.api.peek("SandboxClaim", "default", name)
    return found


def completed(world: World, name: str) -> Callable[[], bool]:
    def check() -> bool:
        claim = get_claim(world, name)
        return claim is not None and claim.status.phase == "Completed"

    return check


def claimed_count(world: World, name: str) -> int:
    claim = get_claim(world, name)
    return claim.status.claimed_replicas if claim is not None else 0


def run_until(world: World, predicate: Callable[[], bool], limit: float = 120.0) -> None:
    env = world.ctx.env
    deadline = env.now + limit
    while not predicate():
        assert env.peek() <= deadline, "condition not reached in time"
        env.step()


def conditions(claim: SandboxClaim) -> dict[str, Condition]:
    return {c.type: c for c in claim.status.conditions}


def events(world: World, kind: str) -> list[str]:
    return [e.detail for e in world.ctx.log if e.kind == kind]


def claimed_sandboxes(world: World, name: str) -> list[Sandbox]:
    return [
        s
        for s in world.api.peek_list("Sandbox")
        if s.metadata.labels.get(keys.LABEL_CLAIM_NAME) == name
    ]


@pytest.fixture
def world() -> World:
    return make_world()


def test_single_claim_completes_with_all_replicas_claimed(world: World) -> None:
    """A one-replica claim makes one attempt and completes with AllReplicasClaimed."""
    claimer = FakeClaimer(world)
    start(world, claimer)
    claim = apply_claim(world, "one")
    run_until(world, completed(world, "one"))
    got = get_claim(world, "one")
    assert got is not None
    assert got.status.claimed_replicas == 1
    assert got.status.message == "Successfully claimed 1/1 sandboxes"
    assert got.status.claim_start_time is not None and got.status.completion_time is not None
    assert conditions(got)["Completed"].reason == "AllReplicasClaimed"
    assert len(claimer.calls) == 1
    opts = claimer.calls[0][1]
    assert (opts.namespace, opts.user, opts.template, opts.claim_name) == (
        "default",
        claim.metadata.uid,
        "base",
        "one",
    )
    [rec] = list(world.records)
    assert rec.path == "sandboxclaim" and rec.claim_name == "one"
    assert rec.owner == claim.metadata.uid and rec.delivered is not None
    assert events(world, "sandboxclaim.completed") == [
        "default/one reason=AllReplicasClaimed claimed=1/1"
    ]


def test_batch_claim_runs_doubling_waves_capped_per_reconcile(world: World) -> None:
    """60 replicas: one reconcile of 50 in waves 5, 10, 20, 15, then one of 10 in waves 5, 5."""
    claimer = FakeClaimer(world)
    start(world, claimer)
    apply_claim(world, "many", replicas=60)
    run_until(world, completed(world, "many"))
    assert claimer.wave_sizes() == [5, 10, 20, 15, 5, 5]
    assert events(world, "sandboxclaim.wave") == [
        f"default/many size={n}" for n in (5, 10, 20, 15, 5, 5)
    ]
    got = get_claim(world, "many")
    assert got is not None and got.status.claimed_replicas == 60
    assert len(claimed_sandboxes(world, "many")) == 60
    locks = {opts.lock_string for _, opts in claimer.calls}
    tokens = {opts.init_runtime.access_token for _, opts in claimer.calls if opts.init_runtime}
    assert len(locks) == 60 and not tokens  # this pool has no agent-runtime: no /init


def test_progress_is_visible_between_reconciles(world: World) -> None:
    """Status reports Claiming with n/m claimed after each batch before completing."""
    start(world, FakeClaimer(world))
    apply_claim(world, "big", replicas=70)
    run_until(world, lambda: claimed_count(world, "big") > 0)
    got = get_claim(world, "big")
    assert got is not None
    assert got.status.phase == "Claiming"
    assert got.status.message == "Claiming sandboxes: 50/70 claimed"


def test_a_failing_wave_stops_the_reconcile(world: World) -> None:
    """A failure in the second wave ends the reconcile there; the next reconcile goes on."""
    claimer = FakeClaimer(world, succeed=lambda i: i != 7)
    start(world, claimer)
    apply_claim(world, "partial", replicas=30)
    run_until(world, completed(world, "partial"))
    # First reconcile: 5 + 10 attempts (one failed) -> 14 claimed; then 16 more at once.
    assert claimer.wave_sizes()[:2] == [5, 10]
    assert events(world, "sandboxclaim.wave_failed") == ["default/partial claimed=9/10"]
    assert events(world, "sandboxclaim.claimed")[0] == "default/partial 14/30"
    assert claimer.wave_sizes()[2:] == [5, 10, 1]
    got = get_claim(world, "partial")
    assert got is not None and got.status.claimed_replicas == 30
    assert len(world.records.failed()) == 1 and world.records.failed()[0].error == "no stock"


def test_no_progress_requeues_after_the_retry_interval(world: World) -> None:
    """A reconcile that claims nothing tries again after claim_retry_interval_s (2 s)."""
    claimer = FakeClaimer(world, succeed=lambda i: i >= 3)
    start(world, claimer)
    apply_claim(world, "slow")
    run_until(world, completed(world, "slow"))
    starts = [t for t, _ in claimer.calls]
    assert len(starts) == 4
    # The first status write's own watch event brings one early reconcile;
    # after that the status is unchanged, so only the 2 s requeues.
    assert starts[1] - starts[0] < 1.0
    assert starts[2] - starts[0] >= 2.0 and 2.0 <= starts[3] - starts[2] < 2.5
    assert events(world, "sandboxclaim.no_available")[:1] == ["default/slow 0/1"]


def test_claim_timeout_completes_with_timed_out(world: World) -> None:
    """When nothing can be claimed, claimTimeout ends the claim with TimedOut and a message."""
    start(world, FakeClaimer(world, succeed=lambda _i: False))
    apply_claim(world, "late", replicas=2, claim_timeout="10s")
    run_until(world, completed(world, "late"))
    got = get_claim(world, "late")
    assert got is not None
    cond = conditions(got)
    assert cond["TimedOut"].reason == "ClaimTimeoutReached"
    assert cond["Completed"].reason == "TimeoutReached"
    assert got.status.claimed_replicas == 0
    assert got.status.message is not None
    assert got.status.message.startswith("Timeout reached after")
    assert got.status.message.endswith("claimed 0/2 sandboxes")
    assert 10 <= world.ctx.now() <= 13


@pytest.mark.parametrize(
    ("succeed", "reason", "count", "replicas"),
    [
        (lambda i: i != 3, "AllReplicasClaimed", "Successfully claimed 6/6 sandboxes", 6),
        (lambda i: i != 3 and i <= 5, "TimeoutReached", "claimed 5/6 sandboxes", 6),
        (lambda i: i != 3, "AllReplicasClaimed", "Successfully claimed 5/5 sandboxes", 5),
    ],
    ids=["all-claimed", "one-short", "the-last-one-unwritten"],
)
def test_a_claim_whose_status_writes_failed_completes_with_what_it_claimed(
    world: World, succeed: Callable[[int], bool], reason: str, count: str, replicas: int
) -> None:
    """The first wave's status (4 claimed) lands; then every status write fails for 20 s
    while the next reconciles claim the rest (or all but one), and the 10 s claimTimeout
    passes.

    The completion counts what the controller claimed, as the rest of the
    reconcile does, not the last count that landed: 6/6 ``AllReplicasClaimed``
    (it used to read "Timeout reached ..., claimed 4/6" with six sandboxes
    delivered), or ``TimeoutReached`` with 5/6 when one is missing; and 5/5
    when the status that landed (4/5) was one short.
    """
    start(world, FakeClaimer(world, succeed=succeed))
    apply_claim(world, "c", replicas=replicas, claim_timeout="10s")
    run_until(world, lambda: claimed_count(world, "c") == 4)
    world.ctx.faults.inject(
        kind="api_error", selector={"kind": "SandboxClaim", "verb": "patch"}, duration=20
    )
    run_until(world, completed(world, "c"), limit=60)
    got = get_claim(world, "c")
    assert got is not None
    assert conditions(got)["Completed"].reason == reason
    assert got.status.message is not None and got.status.message.endswith(count)
    assert got.status.claimed_replicas == int(count.split()[-2].split("/")[0])
    assert got.status.claimed_replicas == len(claimed_sandboxes(world, "c"))
    assert world.ctx.now() >= 20  # only once the writes land again


def test_ttl_deletes_only_the_claim(world: World) -> None:
    """ttlAfterCompleted deletes the completed claim and leaves its sandboxes."""
    start(world, FakeClaimer(world))
    apply_claim(world, "short", replicas=2, ttl_after_completed="30s")
    run_until(world, completed(world, "short"))
    done_at = world.ctx.now()
    world.ctx.env.run(until=done_at + 29)
    assert get_claim(world, "short") is not None
    world.ctx.env.run(until=done_at + 31)
    assert get_claim(world, "short") is None
    assert len(claimed_sandboxes(world, "short")) == 2
    assert events(world, "sandboxclaim.ttl_deleted") == ["default/short"]


def test_a_spec_edited_after_completion_is_observed_and_its_new_ttl_applies(world: World) -> None:
    """CalculateClaimStatus sets observedGeneration on a completed claim too (§5.4 step 3)."""
    start(world, FakeClaimer(world))
    apply_claim(world, "edited", ttl_after_completed="1h")
    run_until(world, completed(world, "edited"))
    stored = world.api.peek("SandboxClaim", "default", "edited")
    assert stored is not None
    claim = stored.model_copy(deep=True)
    claim.spec.ttl_after_completed = timedelta(seconds=30)
    world.api.commit_update(claim, check_rv=False)
    world.ctx.env.run(until=world.ctx.now() + 5)
    got = get_claim(world, "edited")
    assert got is not None and got.metadata.generation == 2
    assert got.status.observed_generation == 2
    world.ctx.env.run(until=world.ctx.now() + 30)
    assert get_claim(world, "edited") is None


def test_negative_ttl_never_deletes(world: World) -> None:
    """A negative ttlAfterCompleted keeps the completed claim forever."""
    start(world, FakeClaimer(world))
    apply_claim(world, "kept", ttl_after_completed="-1s")
    run_until(world, completed(world, "kept"))
    world.ctx.env.run(until=world.ctx.now() + 7200)
    assert get_claim(world, "kept") is not None


def test_missing_sandboxset_completes_the_claim(world: World) -> None:
    """A claim naming no SandboxSet in its namespace completes with SandboxSetNotFound."""
    claimer = FakeClaimer(world)
    start(world, claimer)
    apply_claim(world, "orphan", template="ghost")
    run_until(world, completed(world, "orphan"), limit=5)
    got = get_claim(world, "orphan")
    assert got is not None
    assert conditions(got)["Completed"].reason == "SandboxSetNotFound"
    assert not claimer.calls


def test_existing_sandboxes_of_the_claim_count(world: World) -> None:
    """Active sandboxes already owned by the claim count toward it (crash recovery)."""
    claimer = FakeClaimer(world)
    claim = apply_claim(world, "resume", replicas=3)
    for _ in range(2):
        own_sandbox(world, claim)
    world.ctx.env.run(until=1)  # the cache sees them before the controller starts
    start(world, claimer)
    run_until(world, completed(world, "resume"))
    assert len(claimer.calls) == 1
    got = get_claim(world, "resume")
    assert got is not None and got.status.claimed_replicas == 3


def test_a_claim_whose_sandboxes_all_exist_completes_without_an_attempt(world: World) -> None:
    """Reference §5.4 step 4: ``current >= desired`` records the count and requeues; the
    next reconcile completes. No wave runs and no "no available sandboxes" is reported."""
    claimer = FakeClaimer(world)
    claim = apply_claim(world, "whole", replicas=2)
    for _ in range(2):
        own_sandbox(world, claim)
    world.ctx.env.run(until=1)
    start(world, claimer)
    run_until(world, completed(world, "whole"))
    assert claimer.calls == []
    assert events(world, "sandboxclaim.wave") == []
    assert events(world, "sandboxclaim.no_available") == []
    got = get_claim(world, "whole")
    assert got is not None and got.status.claimed_replicas == 2
    assert conditions(got)["Completed"].reason == "AllReplicasClaimed"


def test_cross_namespace_search_with_the_v030_bug(world: World) -> None:
    """With claim_namespace_scoped off (v0.3.0, #824) attempts search all namespaces."""
    world = make_world(claim_namespace_scoped=False)
    claimer = FakeClaimer(world)
    start(world, claimer)
    apply_claim(world, "wide")
    run_until(world, completed(world, "wide"))
    assert claimer.calls[0][1].namespace == ""


def test_stalled_controller_claims_nothing_until_the_stall_ends(world: World) -> None:
    """A controller_stall fault on "sandboxclaim" holds reconciles until it ends."""
    claimer = FakeClaimer(world)
    start(world, claimer)
    world.ctx.faults.inject(
        kind="controller_stall", selector={"controller": "sandboxclaim"}, duration=5
    )
    apply_claim(world, "held")
    world.ctx.env.run(until=4.9)
    assert not claimer.calls
    run_until(world, completed(world, "held"))
    assert claimer.calls[0][0] >= 5


def owned_by(world: World, uid: str | None) -> list[Sandbox]:
    return [
        s
        for s in world.api.peek_list("Sandbox")
        if s.metadata.annotations.get(keys.ANN_OWNER) == uid
    ]


def recreate_during_first_wave(
    world: World, claimer: FakeClaimer, old_replicas: int, *, watch_lag: str | None = None
) -> tuple[SandboxClaim, SandboxClaim]:
    """Claim ``job`` (``old_replicas``), then delete it 50 ms into its first wave and make
    ``job`` anew with one replica: the old and the new claim as stored. ``watch_lag`` is extra
    lag of the controller's cache from the moment the wave starts."""
    old = apply_claim(world, "job", replicas=old_replicas)
    run_until(world, lambda: bool(claimer.calls))
    if watch_lag is not None:
        world.ctx.faults.inject(
            kind="watch_lag", selector={"informer": world.controller_cache.name}, latency=watch_lag
        )
    world.ctx.env.run(until=world.ctx.now() + 0.05)
    world.api.commit_delete("SandboxClaim", "default", "job")
    new = apply_claim(world, "job", replicas=1)
    assert new.metadata.uid != old.metadata.uid
    return old, new


def test_a_claim_made_anew_under_the_same_name_does_not_inherit_the_old_progress(
    world: World,
) -> None:
    """The reconcile of a claim deleted during its wave does not write its progress onto the
    claim made anew under the same name: the new claim (1 replica) claims its own sandbox and
    completes with 1/1, and the old claim's sandboxes stay the old claim's."""
    claimer = FakeClaimer(world, duration=1.0)
    ctl = start(world, claimer)
    old, new = recreate_during_first_wave(world, claimer, 4)
    run_until(world, completed(world, "job"))
    got = get_claim(world, "job")
    assert got is not None and got.metadata.uid == new.metadata.uid
    assert got.status.claimed_replicas == 1
    assert got.status.message == "Successfully claimed 1/1 sandboxes"
    assert len(owned_by(world, new.metadata.uid)) == 1
    assert len(owned_by(world, old.metadata.uid)) == 4  # the wave in flight ran to its end
    assert events(world, "sandboxclaim.completed") == [
        "default/job reason=AllReplicasClaimed claimed=1/1"
    ]
    assert old.metadata.uid not in ctl._claimed


def test_a_deleted_claim_starts_no_more_waves(world: World) -> None:
    """20 replicas run waves of 5, 10 and 5; a claim deleted during the first wave starts no
    other: its reconcile ends when the wave does, writing nothing."""
    claimer = FakeClaimer(world, duration=1.0)
    start(world, claimer)
    old = apply_claim(world, "gone", replicas=20)
    run_until(world, lambda: bool(claimer.calls))
    world.api.commit_delete("SandboxClaim", "default", "gone")
    world.ctx.env.run(until=world.ctx.now() + 30)
    assert claimer.wave_sizes() == [5]
    assert len(owned_by(world, old.metadata.uid)) == 5
    assert events(world, "sandboxclaim.gone") == ["default/gone claimed=5/20"]
    assert not events(world, "sandboxclaim.claimed")


def test_the_status_write_of_a_claim_made_anew_within_the_watch_lag_is_refused(
    world: World,
) -> None:
    """The status patch carries the claim's UID (the API server's 409 when the object of that
    name is another one): with a cache 3 s behind, the reconcile of the deleted claim sees it
    still there, claims, and its write for it is refused instead of landing on the new claim,
    which then claims for itself."""
    claimer = FakeClaimer(world)
    start(world, claimer)
    old, new = recreate_during_first_wave(world, claimer, 2, watch_lag="fixed(3s)")
    world.ctx.env.run(until=world.ctx.now() + 2.0)
    got = get_claim(world, "job")
    assert got is not None and got.metadata.uid == new.metadata.uid
    assert got.status == new.status  # nothing written onto it
    assert events(world, "sandboxclaim.claimed") == ["default/job 2/2"]
    assert events(world, "sandboxclaim.gone") == ["default/job claimed=2/2"]
    run_until(world, completed(world, "job"))
    got = get_claim(world, "job")
    assert got is not None and got.status.claimed_replicas == 1
    assert len(owned_by(world, new.metadata.uid)) == 1
    assert len(owned_by(world, old.metadata.uid)) == 2


def test_the_ttl_delete_of_a_claim_made_anew_within_the_watch_lag_is_refused(
    world: World,
) -> None:
    """The TTL delete carries the claim's UID as a precondition: with a cache 5 s behind, the
    expired claim, deleted and made anew under its name just before its TTL, is still cached
    when the TTL fires, and the API server's 409 keeps the delete off the new claim."""
    start(world, FakeClaimer(world))
    old = apply_claim(world, "short", ttl_after_completed="30s")
    run_until(world, completed(world, "short"))
    done_at = world.ctx.now()
    world.ctx.faults.inject(
        kind="watch_lag", selector={"informer": world.controller_cache.name}, latency="fixed(5s)"
    )
    world.ctx.env.run(until=done_at + 29)
    world.api.commit_delete("SandboxClaim", "default", "short")
    new = apply_claim(world, "short", ttl_after_completed="1h")
    assert new.metadata.uid != old.metadata.uid
    world.ctx.env.run(until=done_at + 31)  # the old claim's TTL has fired on the stale cache
    got = get_claim(world, "short")
    assert got is not None and got.metadata.uid == new.metadata.uid
    assert not events(world, "sandboxclaim.ttl_deleted")
    run_until(world, completed(world, "short"))  # the new claim is reconciled as itself
    assert len(owned_by(world, new.metadata.uid)) == 1


def test_same_seed_same_log() -> None:
    """Two identical runs give the same event log."""

    def once() -> str:
        w = make_world()
        start(w, FakeClaimer(w, succeed=lambda i: i % 7 != 3))
        apply_claim(w, "x", replicas=25)
        apply_claim(w, "y", replicas=4)
        run_until(w, lambda: completed(w, "x")() and completed(w, "y")())
        return w.ctx.log.text()

    assert once() == once()


def test_end_to_end_batch_claim_on_the_whole_cluster() -> None:
    """With the real claim implementation, pods and controllers, a claim of 12 from a pool of 5
    runs waves 5 and 7, takes the warm sandboxes and creates the rest."""
    from simulator.cluster import Cluster

    cluster = Cluster(seed=9)
    cluster.apply(
        {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxSet",
            "metadata": {"name": "base", "namespace": "default"},
            "spec": {
                "replicas": 5,
                "runtimes": [{"name": "agent-runtime"}],
                "template": {"spec": {"containers": [{"name": "m", "image": "img:1"}]}},
            },
        }
    )
    cluster.wait_for_pool("base")
    claim = cluster.apply(
        {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxClaim",
            "metadata": {"name": "batch", "namespace": "default"},
            "spec": {"templateName": "base", "replicas": 12},
        }
    )[0]
    world = cluster.world
    assert cluster.run_until(completed(world, "batch"), timeout=120)
    assert events(world, "sandboxclaim.wave")[:2] == [
        "default/batch size=5",
        "default/batch size=7",
    ]
    got = get_claim(world, "batch")
    assert got is not None and got.status.claimed_replicas == 12
    mine = claimed_sandboxes(world, "batch")
    assert len(mine) == 12
    assert all(s.metadata.annotations[keys.ANN_OWNER] == claim.metadata.uid for s in mine)
    recs = [r for r in world.records if r.claim_name == "batch" and r.delivered is not None]
    assert len(recs) == 12
    assert sum(r.warm is True for r in recs) == 5
    assert all(r.runtime_initialized is not None for r in recs)
    cluster.wait_for_pool("base")
