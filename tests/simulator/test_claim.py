"""One claim attempt (``TryClaimSandbox``, reference §5.2) on a small hand-built world.

The world here has no nodes and no real controllers: pool sandboxes are
written straight into the API server as Running and Ready, and a tiny
:class:`FakeController` plays the Sandbox controller where a test needs one
(bringing created sandboxes up, observing spec changes, pausing and resuming).
The helpers are shared with ``test_manager`` and ``test_runtime``.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Generator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import Condition, ObjectMeta, find_condition, set_condition
from pytest_kruise_agents.api.sandbox import PodInfo, RuntimeRef, Sandbox, SandboxPhase
from pytest_kruise_agents.api.sandboxset import SandboxSet, SandboxSetSpec
from pytest_kruise_agents.claiming.errors import (
    ClaimError,
    InitRuntimeError,
    LockConflictError,
    NoAvailableError,
    StartContainerFailedError,
    WaitReadyTimeoutError,
)
from pytest_kruise_agents.claiming.modification import (
    ClaimOptions,
    InitRuntimeRequest,
    new_sandbox_from_sandboxset,
    sandboxset_revision,
)
from pytest_kruise_agents.claiming.state import is_claimed
from simulator import world as world_module
from simulator.claim import Claimer
from simulator.cluster import Cluster
from simulator.context import SimContext
from simulator.informer import Informer
from simulator.profile import get_profile
from simulator.ratelimit import TokenBucket
from simulator.records import ClaimRecord
from simulator.runtime import AgentRuntime
from simulator.world import PICKABLE_PREFIX, World

TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "demo"}},
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "python:3.12",
                "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}},
            }
        ]
    },
}


class FakeController:
    """The Sandbox controller and kubelet, reduced to what the claim path waits for.

    After ``delay`` seconds it makes a new sandbox Running and Ready with a pod
    IP, records spec changes in ``observedGeneration``, pauses sandboxes whose
    ``spec.paused`` is set and resumes them when it is cleared. ``fail_start``
    makes new sandboxes report ``StartContainerFailed`` instead.
    """

    def __init__(self, hw: HandWorld, delay: float = 1.0, *, fail_start: bool = False) -> None:
        self.hw = hw
        self.delay = delay
        self.fail_start = fail_start
        hw.world.controller_cache.add_handler("Sandbox", self._on_event)

    def _on_event(self, event_type: str, old: Any, new: Any) -> None:
        if new is None or new.metadata.deletion_timestamp is not None:
            return
        if self._wants(new):
            meta = new.metadata
            timer = self.hw.env.timeout(self.delay)
            timer.callbacks.append(lambda _ev: self._act(meta.namespace, meta.name))

    def _wants(self, sbx: Sandbox) -> bool:
        status = sbx.status
        if status.phase is None or status.observed_generation != sbx.metadata.generation:
            return True
        if sbx.spec.paused and status.phase == SandboxPhase.RUNNING:
            return True
        return bool(not sbx.spec.paused and status.phase == SandboxPhase.PAUSED)

    def _act(self, namespace: str, name: str) -> None:
        cur = self.hw.api.peek("Sandbox", namespace, name)
        if cur is None or cur.metadata.deletion_timestamp is not None or not self._wants(cur):
            return
        new = cur.model_copy(deep=True)
        status = new.status
        status.observed_generation = cur.metadata.generation
        conds = status.conditions
        if cur.spec.paused:
            status.phase = SandboxPhase.PAUSED
            set_condition(conds, Condition(type="Ready", status="False", reason="Paused"))
            set_condition(conds, Condition(type="SandboxPaused", status="True"))
            status.pod_info = None
        elif status.phase in (None, SandboxPhase.PENDING, SandboxPhase.PAUSED):
            if self.fail_start:
                status.phase = SandboxPhase.RUNNING
                set_condition(
                    conds,
                    Condition(
                        type="Ready",
                        status="False",
                        reason="StartContainerFailed",
                        message="back-off pulling image",
                    ),
                )
            else:
                status.phase = SandboxPhase.RUNNING
                status.conditions = [c for c in conds if c.type != "SandboxPaused"]
                set_condition(
                    status.conditions, Condition(type="Ready", status="True", reason="PodReady")
                )
                status.pod_info = PodInfo(pod_ip=self.hw.next_ip())
        self.hw.api.commit_update(new, subresource="status")


class HandWorld:
    """A World with an agent runtime, hand-made pools and helpers to run SimPy code."""

    def __init__(self, seed: int = 1, latencies: dict[str, Any] | None = None, **knobs: Any):
        prof = get_profile("openkruise-head")
        if latencies or knobs:
            prof = prof.with_overrides(latencies=latencies, **knobs)
        self.ctx = SimContext(seed=seed, profile=prof)
        self.env = self.ctx.env
        self.world = World(self.ctx)
        self.api = self.world.api
        self.runtime = AgentRuntime(self.world)
        self._ips = itertools.count(1)

    def next_ip(self) -> str:
        """A fresh pod IP."""
        n = next(self._ips)
        return f"10.0.{n // 250}.{n % 250 + 1}"

    def pool(
        self,
        name: str = "base",
        namespace: str = "default",
        replicas: int = 3,
        *,
        runtime: bool = True,
    ) -> SandboxSet:
        """A SandboxSet with ``replicas`` available sandboxes (Running, Ready, pod IP)."""
        sbs = SandboxSet(
            metadata=ObjectMeta(name=name, namespace=namespace),
            spec=SandboxSetSpec(
                replicas=replicas,
                runtimes=[RuntimeRef(name="agent-runtime")] if runtime else None,
                template=TEMPLATE,
            ),
        )
        sbs = self.api.commit_create(sbs)
        revision = sandboxset_revision(sbs)
        with_status = sbs.model_copy(deep=True)
        with_status.status.update_revision = revision
        sbs = self.api.commit_update(with_status, subresource="status")
        for _ in range(replicas):
            self.add_sandbox(sbs)
        assert isinstance(sbs, SandboxSet)
        return sbs

    def add_sandbox(self, sbs: SandboxSet) -> Sandbox:
        """One more available sandbox in the pool of ``sbs``."""
        made = self.api.commit_create(
            new_sandbox_from_sandboxset(sbs, for_claim=False, revision=sbs.status.update_revision)
        )
        return self.make_ready(made)

    def make_ready(self, sbx: Sandbox) -> Sandbox:
        """Write the sandbox's status as Running and Ready with a pod IP."""
        new = sbx.model_copy(deep=True)
        new.status.phase = SandboxPhase.RUNNING
        new.status.observed_generation = sbx.metadata.generation
        new.status.conditions = [Condition(type="Ready", status="True", reason="PodReady")]
        new.status.pod_info = PodInfo(pod_ip=self.next_ip())
        stored: Sandbox = self.api.commit_update(new, subresource="status")
        return stored

    def sandboxes(self, namespace: str = "default") -> list[Sandbox]:
        """Every stored sandbox of the namespace."""
        return list(self.api.peek_list("Sandbox", namespace))

    def settle(self, seconds: float = 1.0) -> None:
        """Let ``seconds`` of virtual time pass (caches catch up)."""
        self.env.run(until=self.env.now + seconds)

    def run(self, gen: Generator[simpy.Event, Any, Any]) -> Any:
        """Run a SimPy sub-process to completion; return its value or raise its error."""
        proc = self.env.process(gen)
        return self.env.run(until=proc)

    def outcome(self, gen: Generator[simpy.Event, Any, Any]) -> simpy.Process:
        """Start a sub-process whose value is its result or the ClaimError it raised."""

        def wrapped() -> Generator[simpy.Event, Any, Any]:
            try:
                return (yield from gen)
            except ClaimError as err:
                return err

        return self.env.process(wrapped())

    def claimer(
        self,
        name: str = "test",
        *,
        cache: Informer | None = None,
        slots: int | None = None,
        limiter: TokenBucket | None = None,
    ) -> Claimer:
        """A Claimer over the manager cache (by default) with the given limits."""
        return Claimer(
            self.world,
            name=name,
            cache=cache if cache is not None else self.world.manager_cache,
            client=self.world.manager_client,
            runtime=self.runtime,
            worker_slots=simpy.Resource(self.env, capacity=slots) if slots else None,
            create_limiter=limiter,
        )

    def record(self, template: str = "base") -> ClaimRecord:
        """A fresh claim record."""
        return self.world.records.new(
            path="e2b", namespace="default", template=template, owner="u1", requested=self.ctx.now()
        )


def options(**overrides: Any) -> ClaimOptions:
    """Claim options for user ``u1`` and template ``base`` with a runtime init."""
    base: dict[str, Any] = {
        "namespace": "default",
        "user": "u1",
        "template": "base",
        "lock_string": "lock-1",
        "init_runtime": InitRuntimeRequest(env_vars={"A": "1"}, access_token="tok"),
        "create_on_no_stock": False,
    }
    base.update(overrides)
    return ClaimOptions(**base)


@pytest.fixture
def hw() -> HandWorld:
    world = HandWorld()
    world.pool(replicas=3)
    world.settle()
    return world


# -- warm claims -----------------------------------------------------------------------


def test_warm_claim_writes_the_claim_exactly(hw: HandWorld) -> None:
    """A warm claim clears the owner refs, sets claim labels, lock, owner and runtime request."""
    claimer = hw.claimer()
    rec = hw.record()
    opts = options(labels={"team": "a"}, annotations={"note": "x"})
    sbx = hw.run(claimer.try_claim(opts, rec))
    stored = hw.api.peek("Sandbox", "default", sbx.metadata.name)
    assert stored is not None
    meta = stored.metadata
    assert meta.owner_references == []
    assert is_claimed(stored)
    assert meta.labels[keys.LABEL_SANDBOX_CLAIMED] == "true"
    assert meta.labels["team"] == "a"
    assert meta.annotations["note"] == "x"
    assert meta.annotations[keys.ANN_LOCK] == "lock-1"
    assert meta.annotations[keys.ANN_OWNER] == "u1"
    assert meta.annotations[keys.ANN_RUNTIME_ACCESS_TOKEN] == "tok"
    assert meta.annotations[keys.ANN_INIT_RUNTIME_REQUEST] == (
        '{"envVars":{"A":"1"},"accessToken":"tok"}'
    )
    assert keys.ANN_CLAIM_TIMESTAMP in meta.annotations
    assert stored.spec.template is not None
    assert stored.spec.template["metadata"]["labels"][keys.LABEL_OWNER] == "u1"
    assert stored.spec.template["metadata"]["labels"]["team"] == "a"
    assert hw.runtime.is_initialised(stored)


def test_warm_claim_records_its_phases(hw: HandWorld) -> None:
    """The record gets worker, pick, lock and init times in order, and no wait for readiness."""
    claimer = hw.claimer(slots=4)
    rec = hw.record()
    sbx = hw.run(claimer.try_claim(options(), rec))
    assert rec.lock_type == "update"  # a warm pick (warm once the manager delivers it)
    assert rec.sandbox == f"default/{sbx.metadata.name}"
    assert rec.worker_acquired is not None and rec.picked is not None
    assert rec.locked is not None and rec.runtime_initialized is not None
    assert rec.worker_acquired <= rec.picked < rec.locked < rec.runtime_initialized
    assert rec.ready is None and rec.mounted is None
    assert claimer.in_flight == []


def test_claimed_sandbox_leaves_the_pool_index(hw: HandWorld) -> None:
    """Once the cache sees the claim, the sandbox is no longer a candidate of its pool."""
    claimer = hw.claimer()
    hw.run(claimer.try_claim(options(), hw.record()))
    hw.settle()
    assert hw.world.manager_cache.index_size("Sandbox", "pool", "default/base") == 2


def test_pick_buckets_hold_exactly_the_pickable_sandboxes(hw: HandWorld) -> None:
    """The "pick:" keys of the pool index list available, unlocked sandboxes with an IP only."""
    cache = hw.world.manager_cache
    assert cache.index_size("Sandbox", "pool", f"{PICKABLE_PREFIX}default/base") == 3
    assert cache.index_size("Sandbox", "pool", f"{PICKABLE_PREFIX}*/base") == 3
    claimer = hw.claimer()
    hw.run(claimer.try_claim(options(), hw.record()))
    hw.settle()
    picked = {
        s.metadata.name for s in cache.by_index("Sandbox", "pool", f"{PICKABLE_PREFIX}default/base")
    }
    pooled = {s.metadata.name for s in cache.by_index("Sandbox", "pool", "default/base")}
    assert picked == pooled and len(picked) == 2


def test_concurrent_claimers_never_share_a_sandbox() -> None:
    """Two managers racing for the last sandbox: one wins, the other gets a retriable 409."""
    hw = HandWorld()
    hw.pool(replicas=1)
    hw.settle()
    a, b = hw.claimer("a"), hw.claimer("b")
    pa = hw.outcome(a.try_claim(options(user="ua", lock_string="la"), hw.record()))
    pb = hw.outcome(b.try_claim(options(user="ub", lock_string="lb"), hw.record()))
    hw.env.run(until=hw.env.all_of([pa, pb]))
    results = [pa.value, pb.value]
    winners = [r for r in results if isinstance(r, Sandbox)]
    losers = [r for r in results if isinstance(r, ClaimError)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], LockConflictError) and losers[0].retriable
    stored = hw.sandboxes()[0]
    assert (
        stored.metadata.annotations[keys.ANN_OWNER]
        == winners[0].metadata.annotations[keys.ANN_OWNER]
    )


def test_loser_of_a_conflict_records_it_and_skips_the_stale_copy_on_retry() -> None:
    """Two claimers lock the same sandbox: the loser's 409 is one ``LockConflict`` pick failure
    in its record, and its retry, made while its cache still holds the stale copy, skips that
    copy and claims another sandbox without a second conflict."""
    # The caches see a write a second late, and a pick looks at one candidate only: both
    # claimers pick the pool's first sandbox, and the retry finds it first again.
    hw = HandWorld(latencies={"watch.lag": "fixed(1s)"})
    hw.pool(replicas=2)
    hw.settle(2)
    window = options(candidate_count=1)
    a, b = hw.claimer("a"), hw.claimer("b")
    rec_a, rec_b = hw.record(), hw.record()
    pa = hw.outcome(a.try_claim(replace(window, user="ua", lock_string="la"), rec_a))
    pb = hw.outcome(b.try_claim(replace(window, user="ub", lock_string="lb"), rec_b))
    hw.env.run(until=hw.env.all_of([pa, pb]))
    outcomes = {"a": (pa.value, rec_a, a), "b": (pb.value, rec_b, b)}
    won = [k for k, (value, _, _) in outcomes.items() if isinstance(value, Sandbox)]
    lost = [k for k, (value, _, _) in outcomes.items() if isinstance(value, LockConflictError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    first, won_rec, _ = outcomes[won[0]]
    assert isinstance(first, Sandbox)
    _, lost_rec, loser = outcomes[lost[0]]
    assert lost_rec.pick_failures == {"LockConflict": 1}
    assert won_rec.pick_failures == {}
    stale = hw.world.manager_cache.get("Sandbox", "default", first.metadata.name)
    assert stale is not None and not is_claimed(stale)  # the cache has not seen the lock yet

    second = hw.run(loser.try_claim(replace(window, user="again", lock_string="l2"), lost_rec))

    assert second.metadata.name != first.metadata.name
    assert lost_rec.pick_failures == {"LockConflict": 1}  # no second conflict


def test_stale_cached_copy_is_skipped_after_a_conflict() -> None:
    """A 409 leaves an expectation: the cached copy is not fresh until the cache moves on."""
    hw = HandWorld(latencies={"watch.lag": "fixed(1s)"})
    hw.pool(replicas=1)
    hw.settle(2)
    claimer = hw.claimer()
    cached = hw.world.manager_cache.list("Sandbox")[0]
    # Someone else writes the sandbox; our cache does not know yet.
    bumped = cached.model_copy(deep=True)
    bumped.metadata.labels["touched"] = "yes"
    hw.api.commit_update(bumped)
    with pytest.raises(LockConflictError):
        hw.run(claimer.try_claim(options(), hw.record()))
    copy = hw.world.manager_cache.get("Sandbox", "default", cached.metadata.name)
    assert copy is not None and not claimer.is_fresh(copy)
    hw.settle(2)
    copy = hw.world.manager_cache.get("Sandbox", "default", cached.metadata.name)
    assert copy is not None and claimer.is_fresh(copy)


@pytest.mark.parametrize("listed_meanwhile", [False, True])
def test_an_expired_expectation_is_renewed_by_a_new_write_whether_or_not_a_list_read_it(
    listed_meanwhile: bool,
) -> None:
    """An expectation the cache never met expires; a new write of the same resourceVersion
    expects afresh. A read (an E2B list asks ``is_fresh`` of every sandbox) in between
    changes nothing: a read-only call must not change what the model does next."""
    hw = HandWorld()
    hw.pool(replicas=1)
    hw.settle(2)
    claimer = hw.claimer()
    cached = hw.world.manager_cache.list("Sandbox")[0]
    ahead = int(cached.metadata.resource_version or 0) + 5  # a write the cache never sees
    claimer.expect(cached, ahead)
    assert not claimer.is_fresh(cached)
    hw.settle(hw.world.ctx.profile.expectation_timeout_s + 1)
    if listed_meanwhile:
        assert claimer.is_fresh(cached)  # expired: the copy counts as fresh again

    claimer.expect(cached, ahead)

    assert not claimer.is_fresh(cached)


def test_same_claimer_skips_its_own_in_flight_picks() -> None:
    """Two attempts of one process on a one-sandbox pool: the second finds all candidates picked."""
    hw = HandWorld()
    hw.pool(replicas=1)
    hw.settle()
    claimer = hw.claimer()
    rec2 = hw.record()
    p1 = hw.outcome(claimer.try_claim(options(), hw.record()))
    p2 = hw.outcome(claimer.try_claim(options(lock_string="lock-2"), rec2))
    hw.env.run(until=hw.env.all_of([p1, p2]))
    assert isinstance(p1.value, Sandbox)
    assert isinstance(p2.value, NoAvailableError) and p2.value.reason == "AllCandidatesPicked"
    assert rec2.pick_failures == {"AllCandidatesPicked": 1}
    assert hw.api.writes > 0 and claimer.in_flight == []


def test_no_stock_without_creation_is_retriable_no_available(hw: HandWorld) -> None:
    """An empty pool with create-on-no-stock off raises a retriable ``no stock``."""
    empty = HandWorld()
    empty.pool(replicas=0)
    empty.settle()
    rec = empty.record()
    with pytest.raises(NoAvailableError) as err:
        empty.run(empty.claimer().try_claim(options(), rec))
    assert err.value.retriable and str(err.value) == "no stock"
    assert rec.pick_failures == {"NoStock": 1}
    assert rec.locked is None


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_every_claim_takes_a_current_revision_sandbox_while_any_remain(seed: int) -> None:
    """§5.2 step 2 / §9 item 5: the pick tries the current revision's candidates first, and
    falls back to old-revision ones only when none of those is left.

    A pool of twelve old-revision sandboxes and three of the SandboxSet's update revision:
    whatever the seed, the first three claims take the three current ones (a pick among all
    fifteen would do so about once in 450), and the fourth an old one.
    """
    hw = HandWorld(seed=seed)
    sbs = hw.pool(replicas=12)
    for sbx in hw.sandboxes():
        old = sbx.model_copy(deep=True)
        old.metadata.labels[keys.LABEL_TEMPLATE_HASH] = "old"
        hw.api.commit_update(old)
    current = {hw.add_sandbox(sbs).metadata.name for _ in range(3)}
    hw.settle()
    claimer = hw.claimer()
    taken = [
        hw.run(claimer.try_claim(options(lock_string=f"lock-{i}"), hw.record())).metadata.name
        for i in range(4)
    ]
    assert set(taken[:3]) == current
    assert taken[3] not in current


# -- no-stock creation and readiness ------------------------------------------------------------


def test_no_stock_creates_a_sandbox_and_waits_until_ready() -> None:
    """With create-on-no-stock, an empty pool gets a new unowned sandbox, awaited until ready."""
    hw = HandWorld()
    hw.pool(replicas=0)
    FakeController(hw, delay=2.0)
    hw.settle()
    rec = hw.record()
    t0 = hw.ctx.now()
    sbx = hw.run(hw.claimer().try_claim(options(create_on_no_stock=True), rec))
    assert rec.lock_type == "create"  # a cold create (cold once the manager delivers it)
    assert rec.ready is not None and rec.ready - t0 >= 2.0
    assert rec.locked is not None and rec.runtime_initialized is not None
    assert rec.locked < rec.ready <= rec.runtime_initialized
    assert sbx.metadata.owner_references == []
    assert sbx.metadata.annotations[keys.ANN_SANDBOX_PRIORITY] == "100"
    assert keys.LABEL_TEMPLATE_HASH not in sbx.metadata.labels
    assert sbx.status.pod_info is not None and sbx.status.pod_info.pod_ip


def test_a_cold_create_on_an_empty_pool_says_no_stock() -> None:
    """An attempt that creates because the pool holds no candidate records ``NoStock`` as the
    reason it went cold (what the planning diagnosis reads instead of guessing from samples)."""
    hw = HandWorld()
    hw.pool(replicas=0)
    FakeController(hw)
    hw.settle()
    rec = hw.record()
    hw.run(hw.claimer().try_claim(options(create_on_no_stock=True), rec))
    assert (rec.lock_type, rec.cold_reason) == ("create", "NoStock")
    assert rec.as_dict()["cold_reason"] == "NoStock"


def test_a_cold_create_while_every_candidate_is_in_flight_says_all_candidates_picked() -> None:
    """Two attempts of one process on a one-sandbox pool, both allowed to create: the first
    takes the sandbox, the second finds its only candidate in flight and creates one while
    stock remained; its record says ``AllCandidatesPicked``, the warm one says nothing."""
    hw = HandWorld()
    hw.pool(replicas=1)
    FakeController(hw)
    hw.settle()
    claimer = hw.claimer()
    rec1, rec2 = hw.record(), hw.record()
    p1 = hw.outcome(claimer.try_claim(options(create_on_no_stock=True), rec1))
    p2 = hw.outcome(claimer.try_claim(options(create_on_no_stock=True, lock_string="l2"), rec2))
    hw.env.run(until=hw.env.all_of([p1, p2]))
    assert isinstance(p1.value, Sandbox) and isinstance(p2.value, Sandbox)
    assert (rec1.lock_type, rec1.cold_reason) == ("update", None)
    assert (rec2.lock_type, rec2.cold_reason) == ("create", "AllCandidatesPicked")
    assert rec2.pick_failures == {}


def test_a_warm_attempt_clears_an_earlier_attempts_cold_reason() -> None:
    """The cold reason is per attempt, as the lock type: a record whose earlier attempt went
    cold and whose next one is warm says nothing about going cold."""
    hw = HandWorld()
    sbs = hw.pool(replicas=0)
    FakeController(hw)
    hw.settle()
    claimer = hw.claimer()
    rec = hw.record()
    hw.run(claimer.try_claim(options(create_on_no_stock=True), rec))
    assert rec.cold_reason == "NoStock"
    hw.add_sandbox(sbs)
    hw.settle()
    hw.run(claimer.try_claim(options(create_on_no_stock=True, lock_string="l2"), rec))
    after = rec.as_dict()  # read anew: the attempt changed the record in place
    assert (after["lock_type"], after["cold_reason"]) == ("update", None)


def test_create_limiter_denies_beyond_its_burst() -> None:
    """The no-stock creation limiter lets its burst through and then refuses, retriably."""
    hw = HandWorld()
    hw.pool(replicas=0)
    FakeController(hw)
    hw.settle()
    limiter = TokenBucket(hw.ctx.now, rate=0.001, burst=2)
    claimer = hw.claimer(limiter=limiter)
    recs = [hw.record() for _ in range(3)]
    procs = [
        hw.outcome(claimer.try_claim(options(create_on_no_stock=True, lock_string=f"l{i}"), rec))
        for i, rec in enumerate(recs)
    ]
    hw.env.run(until=hw.env.all_of(procs))
    values = [p.value for p in procs]
    assert sum(isinstance(v, Sandbox) for v in values) == 2
    denied = [v for v in values if isinstance(v, NoAvailableError)]
    assert len(denied) == 1 and denied[0].reason == "RateLimited"
    assert str(denied[0]) == "sandbox creation is not allowed by rate limiter"


def test_wait_ready_timeout_deletes_the_created_sandbox() -> None:
    """A created sandbox that never gets ready fails with the diagnosis and is deleted."""
    hw = HandWorld()
    hw.pool(replicas=0)
    hw.settle()
    rec = hw.record()
    t0 = hw.ctx.now()
    opts = options(create_on_no_stock=True, wait_ready_timeout=timedelta(seconds=5))
    with pytest.raises(WaitReadyTimeoutError) as err:
        hw.run(hw.claimer().try_claim(opts, rec))
    assert err.value.retriable
    assert str(err.value).startswith(f"sandbox {rec.sandbox} is not ready before wait timeout:")
    # A claimed sandbox with no phase yet derives as paused (§1.3 row 10).
    assert str(err.value).endswith("reason=NotRunningResourceClaimed, state=paused, ready=false")
    assert rec.locked is not None and rec.locked - t0 < 5.0
    hw.settle()
    assert hw.sandboxes() == []


@pytest.mark.parametrize("deleted_by", ["the cleanup", "someone else first"])
def test_a_sandbox_deleted_before_the_cache_saw_it_is_never_fresh(deleted_by: str) -> None:
    """A created sandbox the cache has not shown yet is deleted when its attempt fails.

    The watch lags 10 s, so the attempt (wait-ready timeout 2 s) deletes its
    sandbox before the cache's ADDED event: that copy, arriving late, is
    older than the deletion and is not fresh (a SandboxClaim would count it
    as claimed), until the DELETED event takes it away. So too when someone
    else deleted it first and the cleanup's own delete answers 404.
    """
    hw = HandWorld(latencies={"watch.lag": 10.0})
    hw.pool(replicas=0)
    hw.settle(11)
    claimer = hw.claimer()
    rec = hw.record()
    verdicts: list[tuple[str, bool]] = []

    def watch(event_type: str, old: Any, new: Any) -> None:
        # Registered after the Claimer's own handler: sees what it made of the event.
        if new is not None and rec.sandbox == f"default/{new.metadata.name}":
            verdicts.append((event_type, claimer.is_fresh(new)))

    hw.world.manager_cache.add_handler("Sandbox", watch)

    def delete_first() -> Generator[simpy.Event, Any, None]:
        while rec.locked is None:
            yield hw.env.timeout(0.1)
        assert rec.sandbox is not None
        hw.api.commit_delete("Sandbox", "default", rec.sandbox.split("/")[1])

    if deleted_by == "someone else first":
        hw.env.process(delete_first())
    opts = options(create_on_no_stock=True, wait_ready_timeout=timedelta(seconds=2))
    with pytest.raises(WaitReadyTimeoutError):
        hw.run(claimer.try_claim(opts, rec))
    assert hw.sandboxes() == [] and rec.sandbox is not None
    assert hw.world.manager_cache.get("Sandbox", "default", rec.sandbox.split("/")[1]) is None
    hw.settle(15)
    assert verdicts == [("ADDED", False)]
    assert hw.world.manager_cache.count("Sandbox") == 0


def _stop_when_locked(
    hw: HandWorld, rec: ClaimRecord, change: str
) -> Generator[simpy.Event, Any, None]:
    """Once the attempt has locked its sandbox, delete it for good, mark it deleted (a
    finalizer holds it) or pause it, as ``change`` says."""
    while rec.locked is None:
        yield hw.env.timeout(0.1)
    assert rec.sandbox is not None
    name = rec.sandbox.split("/")[1]
    if change == "deleted":
        hw.api.commit_delete("Sandbox", "default", name)
        return
    stored = hw.api.peek("Sandbox", "default", name)
    assert stored is not None
    new = stored.model_copy(deep=True)
    if change == "being deleted":
        new.metadata.finalizers = ["test/hold"]
        held = hw.api.commit_update(new)
        hw.api.commit_delete("Sandbox", "default", held.metadata.name)
    else:
        new.spec.paused = True
        hw.api.commit_update(new)


@pytest.mark.parametrize(
    ("change", "reason", "says"),
    [
        ("deleted", "SandboxDeleted", "was deleted before it became ready"),
        ("being deleted", "SandboxDied", "died before it became ready: deleted"),
        ("paused", "SandboxPaused", "was paused before it became ready"),
    ],
)
def test_wait_ready_ends_at_once_for_a_sandbox_that_can_never_get_ready(
    change: str, reason: str, says: str
) -> None:
    """docs/fidelity.md (sandbox-manager; the E2B server's control plane): wait-ready does
    not wait out its timeout for a sandbox that is gone (``SandboxDeleted``), being deleted
    (``SandboxDied``) or paused meanwhile (``SandboxPaused``): the attempt fails at once
    with a retriable ``WaitReadyTimeoutError`` of that reason."""
    hw = HandWorld()
    hw.pool(replicas=0)
    hw.settle()
    rec = hw.record()
    t0 = hw.ctx.now()
    hw.env.process(_stop_when_locked(hw, rec, change))
    opts = options(create_on_no_stock=True, wait_ready_timeout=timedelta(seconds=600))
    with pytest.raises(WaitReadyTimeoutError) as err:
        hw.run(hw.claimer().try_claim(opts, rec))
    assert err.value.retriable and err.value.reason == reason
    assert says in str(err.value)
    assert hw.ctx.now() - t0 < 30  # far from the 600 s wait-ready timeout


def test_start_container_failure_fails_fast() -> None:
    """``StartContainerFailed`` ends the wait at once with a retriable error."""
    hw = HandWorld()
    hw.pool(replicas=0)
    FakeController(hw, delay=1.0, fail_start=True)
    hw.settle()
    t0 = hw.ctx.now()
    with pytest.raises(StartContainerFailedError) as err:
        hw.run(hw.claimer().try_claim(options(create_on_no_stock=True), hw.record()))
    assert err.value.retriable and hw.ctx.now() - t0 < 2.0
    hw.settle()
    assert hw.sandboxes() == []


def test_inplace_update_waits_for_the_new_generation() -> None:
    """An in-place image change makes a warm claim wait until the controller observes it."""
    hw = HandWorld()
    hw.pool(replicas=1)
    hw.settle()
    FakeController(hw, delay=3.0)
    rec = hw.record()
    t0 = hw.ctx.now()
    sbx = hw.run(hw.claimer().try_claim(options(inplace_image="python:3.13"), rec))
    assert sbx.spec.template["spec"]["containers"][0]["image"] == "python:3.13"
    assert sbx.status.observed_generation == sbx.metadata.generation
    assert rec.ready is not None and rec.ready - t0 >= 3.0


# -- post-processing failures ----------------------------------------------------------------------


def test_pool_without_runtime_fails_at_init_and_deletes_the_sandbox() -> None:
    """No agent-runtime: every ``/init`` is refused, the claim fails and the sandbox goes."""
    hw = HandWorld()
    hw.pool(replicas=2, runtime=False)
    hw.settle()
    rec = hw.record()
    with pytest.raises(InitRuntimeError) as err:
        hw.run(hw.claimer().try_claim(options(), rec))
    assert err.value.retriable
    assert rec.locked is not None and rec.runtime_initialized is None
    hw.settle()
    names = [s.metadata.name for s in hw.sandboxes()]
    assert rec.sandbox is not None and rec.sandbox.split("/")[1] not in names
    assert len(names) == 1


def test_pool_without_runtime_is_claimed_when_init_is_skipped() -> None:
    """Without a runtime init request, a pool without agent-runtime is claimed normally."""
    hw = HandWorld()
    hw.pool(replicas=1, runtime=False)
    hw.settle()
    sbx = hw.run(hw.claimer().try_claim(options(init_runtime=None), hw.record()))
    assert keys.ANN_INIT_RUNTIME_REQUEST not in sbx.metadata.annotations


def test_reserve_failed_keeps_the_sandbox_labelled() -> None:
    """``reserve_failed_for`` < 0 keeps the failed sandbox forever with the reserved label."""
    hw = HandWorld()
    hw.pool(replicas=1, runtime=False)
    hw.settle()
    rec = hw.record()
    with pytest.raises(InitRuntimeError):
        hw.run(hw.claimer().try_claim(options(reserve_failed_for=timedelta(seconds=-1)), rec))
    (kept,) = hw.sandboxes()
    assert kept.metadata.labels[keys.LABEL_RESERVED_FAILED] == "true"
    assert kept.spec.shutdown_time is None


def test_reserve_failed_for_a_while_sets_the_shutdown_time() -> None:
    """A positive ``reserve_failed_for`` keeps the failed sandbox until now + that duration."""
    hw = HandWorld()
    hw.pool(replicas=1, runtime=False)
    hw.settle()
    with pytest.raises(InitRuntimeError):
        hw.run(hw.claimer().try_claim(options(reserve_failed_for=timedelta(hours=1)), hw.record()))
    (kept,) = hw.sandboxes()
    assert kept.metadata.labels[keys.LABEL_RESERVED_FAILED] == "true"
    assert kept.spec.shutdown_time is not None
    assert kept.spec.shutdown_time - hw.ctx.now_dt() <= timedelta(hours=1)
    assert kept.spec.shutdown_time - hw.ctx.now_dt() > timedelta(minutes=59)


def test_worker_slot_is_freed_right_after_the_lock(hw: HandWorld) -> None:
    """With one worker slot, the second attempt starts as soon as the first has locked."""
    claimer = hw.claimer(slots=1)
    r1, r2 = hw.record(), hw.record()
    p1 = hw.outcome(claimer.try_claim(options(), r1))
    p2 = hw.outcome(claimer.try_claim(options(lock_string="lock-2"), r2))
    hw.env.run(until=hw.env.all_of([p1, p2]))
    assert isinstance(p1.value, Sandbox) and isinstance(p2.value, Sandbox)
    assert r1.locked is not None and r1.runtime_initialized is not None
    assert r2.worker_acquired == r1.locked
    assert r2.worker_acquired < r1.runtime_initialized


def test_interrupt_after_lock_cleans_up() -> None:
    """An attempt interrupted (the caller's deadline) after its lock deletes the sandbox."""
    hw = HandWorld()
    hw.pool(replicas=1, runtime=False)
    hw.settle()
    claimer = hw.claimer(slots=1)
    rec = hw.record()

    def attempt() -> Generator[simpy.Event, Any, Any]:
        try:
            yield from claimer.try_claim(options(), rec)
        except simpy.Interrupt:
            return "interrupted"
        return "done"

    proc = hw.env.process(attempt())
    hw.env.run(until=hw.env.now + 0.5)
    assert rec.locked is not None
    proc.interrupt("deadline")
    assert hw.env.run(until=proc) == "interrupted"
    assert hw.sandboxes() == []
    assert claimer.in_flight == []
    assert claimer.worker_slots is not None and claimer.worker_slots.count == 0


def test_interrupt_while_queued_for_a_worker_gives_up_the_place() -> None:
    """An attempt interrupted while waiting for a worker slot leaves the queue."""
    hw = HandWorld()
    hw.pool(replicas=2)
    hw.settle()
    claimer = hw.claimer(slots=1)
    assert claimer.worker_slots is not None
    held = claimer.worker_slots.request()
    rec = hw.record()

    def attempt() -> Generator[simpy.Event, Any, Any]:
        try:
            yield from claimer.try_claim(options(), rec)
        except simpy.Interrupt:
            return "interrupted"
        return "done"

    proc = hw.env.process(attempt())
    hw.env.run(until=hw.env.now + 1)
    proc.interrupt()
    assert hw.env.run(until=proc) == "interrupted"
    assert len(claimer.worker_slots.queue) == 0 and rec.worker_acquired is None
    claimer.worker_slots.release(held)


def test_claim_from_the_controller_cache_uses_its_indexes() -> None:
    """A Claimer over the controller's cache (the SandboxClaim path) claims the same way."""
    hw = HandWorld()
    hw.pool(replicas=2)
    hw.settle()
    claimer = hw.claimer("sandboxclaim", cache=hw.world.controller_cache)
    sbx = hw.run(claimer.try_claim(options(claim_name="c1", init_runtime=None), hw.record()))
    assert sbx.metadata.labels[keys.LABEL_CLAIM_NAME] == "c1"


def test_admin_claim_searches_every_namespace() -> None:
    """Namespace ``""`` picks from same-named pools of any namespace."""
    hw = HandWorld()
    hw.pool(namespace="team-a", replicas=1)
    hw.settle()
    sbx = hw.run(hw.claimer().try_claim(options(namespace=""), hw.record()))
    assert sbx.metadata.namespace == "team-a"


def test_ready_condition_is_kept_by_the_claim(hw: HandWorld) -> None:
    """The lock write keeps the status (a main-resource update): the claimed sandbox is Ready."""
    sbx = hw.run(hw.claimer().try_claim(options(), hw.record()))
    cond = find_condition(sbx.status.conditions, "Ready")
    assert cond is not None and cond.status == "True"


def test_pools_made_and_deleted_under_fresh_names_leave_no_index_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool index keys built for each pool are bounded: per-job pools, each made and
    deleted under a new name, do not pile up (the live ones build theirs again)."""
    monkeypatch.setattr(world_module, "_POOL_KEY_CACHE_MAX", 8)
    cluster = Cluster(seed=1, log=False)
    for i in range(20):
        name = f"job-{i}"
        cluster.apply(
            {
                "apiVersion": "agents.kruise.io/v1alpha1",
                "kind": "SandboxSet",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {
                    "replicas": 1,
                    "runtimes": [{"name": "agent-runtime"}],
                    "template": {"spec": {"containers": [{"name": "c", "image": "img:1"}]}},
                },
            }
        )
        cluster.wait_for_pool(name)
        if i < 19:
            cluster.delete("sbs", name)
        cluster.advance(10)
        assert len(cluster.world._pool_key_cache) <= 8
    assert isinstance(cluster.create_sandbox("job-19", timeout=60), Sandbox)  # the live pool works


def _live_sandboxes() -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is Sandbox)


def test_a_finished_wait_keeps_nothing_alive_until_its_timeout() -> None:
    """A wait that got its verdict before its timeout holds no Sandbox afterwards: cold
    claims with a day-long wait-ready timeout, each sandbox deleted at once, leave as many
    live Sandbox objects after 50 claims as after 5."""
    cluster = Cluster(seed=1, log=False, records_limit=1)
    cluster.apply(
        {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxSet",
            "metadata": {"name": "base", "namespace": "default"},
            "spec": {
                "replicas": 0,
                "runtimes": [{"name": "agent-runtime"}],
                "template": {"spec": {"containers": [{"name": "c", "image": "img:1"}]}},
            },
        }
    )
    cluster.advance(1)
    meta = {"e2b.agents.kruise.io/wait-ready-timeout-seconds": "86400"}

    def cycles(n: int) -> int:
        for _ in range(n):
            sbx = cluster.create_sandbox("base", timeout=30, metadata=meta)
            cluster.kill(cluster.sandbox_id(sbx))
            cluster.advance(1)
        return _live_sandboxes()

    after_5 = cycles(5)
    assert cycles(45) <= after_5


def _claimer_past_an_injected_lock_conflict(hw: HandWorld) -> Claimer:
    """A Claimer whose lock write of the one pooled sandbox met an injected ``api_conflict``."""
    hw.pool(replicas=1)
    hw.settle()
    claimer = hw.claimer()
    hw.ctx.faults.inject(
        kind="api_conflict",
        count=1,
        selector={"verb": "update", "kind": "Sandbox", "client": "sandbox-manager"},
    )
    with pytest.raises(LockConflictError):
        hw.run(claimer.try_claim(options(), hw.record()))
    return claimer


def test_an_injected_lock_conflict_skips_the_sandbox_until_its_expectation_expires() -> None:
    """docs/fidelity.md, sandbox-manager: an injected ``api_conflict`` on the lock writes
    nothing, so the expectation it leaves (the cached copy is stale) is met by no watch
    event while nothing else writes the sandbox: the Claimer passes the sandbox over, as
    after a real 409, until the expectation expires (``expectation_timeout_s``, 60 s), and
    then claims it."""
    hw = HandWorld()
    claimer = _claimer_past_an_injected_lock_conflict(hw)
    hw.settle(30)
    skipped = hw.outcome(claimer.try_claim(options(lock_string="lock-2"), hw.record()))
    hw.env.run(until=skipped)
    assert isinstance(skipped.value, NoAvailableError)
    hw.settle(hw.ctx.profile.expectation_timeout_s - 30 + 1)
    claimed = hw.run(claimer.try_claim(options(lock_string="lock-3"), hw.record()))
    assert isinstance(claimed, Sandbox) and is_claimed(claimed)


def test_an_injected_lock_conflicts_expectation_is_met_by_another_write() -> None:
    """docs/fidelity.md, sandbox-manager: that expectation is a newer copy than the cached one,
    so another client's write of the sandbox meets it, and the Claimer claims the sandbox as
    soon as its cache shows that write, well before the 60 s."""
    hw = HandWorld()
    claimer = _claimer_past_an_injected_lock_conflict(hw)
    touched = hw.sandboxes()[0].model_copy(deep=True)
    touched.metadata.labels["touched"] = "yes"
    hw.api.commit_update(touched)
    hw.settle(2)
    claimed = hw.run(claimer.try_claim(options(lock_string="lock-2"), hw.record()))
    assert isinstance(claimed, Sandbox) and is_claimed(claimed)
