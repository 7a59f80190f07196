"""The SandboxSet controller keeps a warm pool at its replicas (reference §3).

These tests run the controller on a hand-made world; a tiny fake stands in for
pods and the Sandbox controller by turning each new sandbox Running and Ready
after a delay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.meta import Condition, ObjectMeta
from pytest_kruise_agents.api.sandbox import PodInfo, Sandbox, SandboxPhase
from pytest_kruise_agents.api.sandboxset import SandboxSet, SandboxSetSpec, ScaleStrategy
from pytest_kruise_agents.claiming.modification import sandboxset_revision
from pytest_kruise_agents.claiming.sandboxset import group_sandboxes
from simulator.context import SimContext
from simulator.controllers.sandboxset import MAX_MATERIALIZED, SandboxSetController
from simulator.informer import Informer
from simulator.profile import get_profile
from simulator.world import World


class FakeReadiness:
    """Turns every new pool sandbox Running and Ready ``delay`` seconds after it is created."""

    def __init__(self, world: World, delay: float = 1.0) -> None:
        self.world = world
        self.delay = delay
        self.ips = 0
        world.controller_cache.add_handler("Sandbox", self._on_event)

    def _on_event(self, event_type: str, old: Any, new: Any) -> None:
        if event_type != "ADDED" or new.status.phase is not None:
            return
        ns, name = new.metadata.namespace, new.metadata.name
        timer = self.world.ctx.env.timeout(self.delay)
        timer.callbacks.append(lambda _ev: self._ready(ns, name))

    def _ready(self, ns: str, name: str) -> None:
        api = self.world.api
        cur = api.peek("Sandbox", ns, name)
        if cur is None or cur.metadata.deletion_timestamp is not None:
            return
        self.ips += 1
        new = cur.model_copy(deep=True)
        new.status.phase = SandboxPhase.RUNNING
        new.status.conditions = [Condition(type="Ready", status="True", reason="PodReady")]
        new.status.pod_info = PodInfo(pod_ip=f"10.0.{self.ips // 250}.{self.ips % 250}")
        api.commit_update(new, subresource="status", check_rv=False)


class Recorder:
    """Every Sandbox watch event, as ``(type, name, lock owner)``, from a cache of its own."""

    def __init__(self, world: World) -> None:
        self.events: list[tuple[str, str, str]] = []
        inf = Informer("recorder", ("Sandbox",))
        inf.add_handler("Sandbox", self._on_event)
        world.api.register(inf)

    def _on_event(self, event_type: str, old: Any, new: Any) -> None:
        obj = new if new is not None else old
        owner = obj.metadata.annotations.get(keys.ANN_OWNER, "")
        self.events.append((event_type, obj.metadata.name, owner))


def make_world(seed: int = 1, **knobs: Any) -> World:
    prof = get_profile("openkruise-head")
    if knobs:
        prof = prof.with_overrides(**knobs)
    return World(SimContext(seed=seed, profile=prof))


def template(image: str = "python:3.12") -> dict[str, Any]:
    return {"spec": {"containers": [{"name": "main", "image": image}]}}


def make_set(world: World, replicas: int, name: str = "base", **spec: Any) -> SandboxSet:
    sbs = SandboxSet(
        metadata=ObjectMeta(name=name, namespace="default"),
        spec=SandboxSetSpec(replicas=replicas, template=spec.pop("template", template()), **spec),
    )
    made: SandboxSet = world.api.commit_create(sbs)
    return made


def stored(world: World, kind: str, name: str) -> Any:
    """The stored object (it must exist)."""
    obj = world.api.peek(kind, "default", name)
    assert obj is not None, f"{kind} {name} not found"
    return obj


def update_set(world: World, name: str, change: Callable[[SandboxSet], None]) -> None:
    cur = stored(world, "SandboxSet", name).model_copy(deep=True)
    change(cur)
    world.api.commit_update(cur, check_rv=False)


def pool(world: World, name: str = "base") -> list[Sandbox]:
    """Unclaimed sandboxes of the set, as stored."""
    return [
        s
        for s in world.api.peek_list("Sandbox", "default")
        if s.metadata.labels.get(keys.LABEL_SANDBOX_POOL) == name and s.metadata.owner_references
    ]


def run_until(world: World, predicate: Callable[[], bool], limit: float = 120.0) -> None:
    env = world.ctx.env
    deadline = env.now + limit
    while not predicate():
        assert env.peek() <= deadline, "condition not reached in time"
        env.step()


def events(world: World, kind: str) -> list[str]:
    """Details of the logged events of exactly ``kind``."""
    return [e.detail for e in world.ctx.log if e.kind == kind]


def status(world: World, name: str = "base") -> Any:
    return stored(world, "SandboxSet", name).status


def full(world: World, replicas: int, name: str = "base") -> Callable[[], bool]:
    """Whether the set reports ``replicas`` available and that many ready sandboxes exist."""

    def check() -> bool:
        st = status(world, name)
        members = pool(world, name)
        return (
            st.replicas == replicas
            and st.available_replicas == replicas
            and len(members) == replicas
            and all(s.status.phase == SandboxPhase.RUNNING for s in members)
        )

    return check


def claim(world: World, sbx: Sandbox, owner: str = "user-1") -> Sandbox:
    """What a claim's lock write does to a pool sandbox: ownerRef gone, claimed, locked."""
    new = stored(world, "Sandbox", sbx.metadata.name).model_copy(deep=True)
    new.metadata.owner_references = []
    new.metadata.labels[keys.LABEL_SANDBOX_CLAIMED] = "true"
    new.metadata.annotations[keys.ANN_LOCK] = "lock-" + owner
    new.metadata.annotations[keys.ANN_OWNER] = owner
    made: Sandbox = world.api.commit_update(new)
    return made


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def controller(world: World) -> SandboxSetController:
    FakeReadiness(world)
    ctl = SandboxSetController(world)
    ctl.start()
    return ctl


def test_pool_fills_to_replicas_in_doubling_batches(
    world: World, controller: SandboxSetController
) -> None:
    """A new set of 100 creates 16, then 32, then the remaining 52, and all become available."""
    make_set(world, 100)
    run_until(world, full(world, 100))
    batches = events(world, "sandboxset.create_batch")
    assert batches == ["default/base size=16", "default/base size=32", "default/base size=52"]
    st = status(world)
    assert (st.replicas, st.available_replicas) == (100, 100)
    assert st.selector == (
        "agents.kruise.io/sandbox-pool=base,agents.kruise.io/sandbox-claimed=false"
    )
    assert st.update_revision == sandboxset_revision(stored(world, "SandboxSet", "base"))
    # The inline template materialised as an immutable SandboxTemplate the set owns.
    assert st.current_revision == f"base-{st.update_revision}"
    tpl = stored(world, "SandboxTemplate", st.current_revision)
    assert tpl.spec.template == stored(world, "SandboxSet", "base").spec.template
    ref = tpl.metadata.controller_ref()
    assert ref is not None and (ref.kind, ref.name) == ("SandboxSet", "base")
    assert st.updated_replicas == 100 and st.updated_available_replicas == 100
    assert controller.counts("default", "base") == {
        "creating": 0,
        "available": 100,
        "dead": 0,
        "unobserved": 0,
    }
    sbx = pool(world)[0]
    assert sbx.metadata.generate_name == "base-"
    assert sbx.metadata.labels[keys.LABEL_TEMPLATE_HASH] == st.update_revision


def test_unobserved_creates_count_as_replicas(world: World) -> None:
    """Creates issued but not yet cached count as replicas, so nothing is created twice."""
    FakeReadiness(world)
    ctl = SandboxSetController(world)
    ctl.start()
    # Slow watch propagation: the creates answer long before the cache sees them.
    world.ctx.set_profile(world.ctx.profile.with_overrides(latencies={"watch.lag": 2.0}))
    make_set(world, 4)
    run_until(world, lambda: len(events(world, "sandboxset.create")) == 4, limit=10)
    run_until(world, lambda: ctl.counts("default", "base")["unobserved"] == 4, limit=10)
    run_until(world, full(world, 4), limit=30)
    assert len(world.api.peek_list("Sandbox")) == 4
    assert len(events(world, "sandboxset.create_batch")) == 1


def test_a_claim_triggers_replenishment(world: World, controller: SandboxSetController) -> None:
    """Removing the ownerRef drops the sandbox from the count; the set creates a replacement."""
    make_set(world, 5)
    run_until(world, full(world, 5))
    taken = claim(world, pool(world)[2])
    run_until(world, lambda: status(world).replicas == 4, limit=5)
    run_until(world, full(world, 5))
    assert len(world.api.peek_list("Sandbox")) == 6
    assert status(world).replicas == 5
    names = {s.metadata.name for s in pool(world)}
    assert taken.metadata.name not in names
    counts = controller.counts("default", "base")
    assert counts["available"] + counts["creating"] == 5


def test_status_never_counts_claimed_sandboxes(
    world: World, controller: SandboxSetController
) -> None:
    """While claimed sandboxes are replaced, replicas and availableReplicas count only the pool."""
    make_set(world, 3)
    run_until(world, full(world, 3))
    for sbx in pool(world)[:2]:
        claim(world, sbx)
    seen: list[tuple[int, int]] = []
    env = world.ctx.env
    while not full(world, 3)():
        env.step()
        st = status(world)
        seen.append((st.replicas, st.available_replicas))
    assert all(replicas <= 3 and available <= replicas for replicas, available in seen)
    assert (1, 1) in seen
    assert len(world.api.peek_list("Sandbox")) == 5


def test_scale_down_deletes_old_revision_first_with_lock_then_delete(
    world: World,
) -> None:
    """Scale-down deletes old-revision sandboxes first, each locked by __manager_scale_down."""
    ready = FakeReadiness(world)
    ctl = SandboxSetController(world)
    ctl.start()
    rec = Recorder(world)
    make_set(world, 3)
    run_until(world, full(world, 3))
    old = {s.metadata.name for s in pool(world)}

    # A new template with more replicas: two new-revision sandboxes, slow to get ready.
    ready.delay = 1000.0

    def bump(sbs: SandboxSet) -> None:
        sbs.spec.template = template("python:3.13")
        sbs.spec.replicas = 5

    update_set(world, "base", bump)
    run_until(world, lambda: len(pool(world)) == 5 and status(world).replicas == 5)
    new = {s.metadata.name for s in pool(world)} - old
    assert len(new) == 2

    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 3))
    run_until(world, lambda: len(pool(world)) == 3)
    left = {s.metadata.name for s in pool(world)}
    assert new <= left and len(left & old) == 1
    deleted = old - left
    world.ctx.env.run(until=world.ctx.env.now + 1)  # let the watch events arrive
    for name in deleted:
        mine = [(t, o) for t, n, o in rec.events if n == name]
        lock_at = mine.index(("MODIFIED", keys.OWNER_MANAGER_SCALE_DOWN))
        assert mine[-1][0] == "DELETED" and lock_at < len(mine) - 1
    assert sorted(events(world, "sandboxset.delete")) == sorted(
        f"default/{n} reason=scale_down" for n in deleted
    )


def test_scale_down_skips_a_sandbox_locked_by_someone_else(
    world: World, controller: SandboxSetController
) -> None:
    """A sandbox locked by another owner is skipped, never deleted; the others go."""
    make_set(world, 4)
    run_until(world, full(world, 4))
    # An old-revision label puts this sandbox first in the scale-down order.
    first = pool(world)[2].model_copy(deep=True)
    first.metadata.labels[keys.LABEL_TEMPLATE_HASH] = "old"
    first.metadata.annotations[keys.ANN_LOCK] = "someone-elses-lock"
    first.metadata.annotations[keys.ANN_OWNER] = "user-9"
    world.api.commit_update(first)
    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 2))
    world.ctx.env.run(until=world.ctx.env.now + 30)
    names = {s.metadata.name for s in pool(world)}
    assert first.metadata.name in names
    skipped = events(world, "sandboxset.lock_skipped")
    assert skipped and skipped[0].startswith(f"default/{first.metadata.name} owner=user-9")
    assert len(events(world, "sandboxset.delete")) == 1
    # As upstream: the locked sandbox heads the order, so the pool stays above spec.
    assert len(names) == 3
    assert (
        stored(world, "Sandbox", first.metadata.name).metadata.annotations[keys.ANN_LOCK]
        == "someone-elses-lock"
    )


def test_a_scale_down_whose_delete_fails_leaves_its_lock_until_the_next(
    world: World, controller: SandboxSetController
) -> None:
    """As upstream, nothing unlocks a sandbox whose scale-down Delete failed: it stays
    counted available but unpickable; the next scale-down may take it (its own lock)."""
    make_set(world, 3)
    run_until(world, full(world, 3))
    world.ctx.faults.inject(
        kind="api_error", selector={"verb": "delete", "kind": "Sandbox"}, duration=30
    )
    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 2))
    world.ctx.env.run(until=world.ctx.env.now + 3)
    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 3))
    world.ctx.env.run(until=world.ctx.env.now + 60)
    locked = [
        s.metadata.name
        for s in pool(world)
        if s.metadata.annotations.get(keys.ANN_OWNER) == "__manager_scale_down"
    ]
    assert len(locked) == 1 and len(pool(world)) == 3
    assert status(world).available_replicas == 3
    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 2))
    world.ctx.env.run(until=world.ctx.env.now + 30)
    assert world.api.peek("Sandbox", "default", locked[0]) is None
    assert len(pool(world)) == 2


def test_dead_sandboxes_are_deleted_and_replaced(
    world: World, controller: SandboxSetController
) -> None:
    """An owned sandbox whose phase turns Failed is dead: the set deletes and replaces it."""
    make_set(world, 3)
    run_until(world, full(world, 3))
    victim = pool(world)[1]
    failed = victim.model_copy(deep=True)
    failed.status.phase = SandboxPhase.FAILED
    world.api.commit_update(failed, subresource="status", check_rv=False)
    run_until(world, lambda: world.api.peek("Sandbox", "default", victim.metadata.name) is None)
    run_until(world, full(world, 3))
    assert events(world, "sandboxset.delete") == [f"default/{victim.metadata.name} reason=dead"]
    assert controller.counts("default", "base")["dead"] == 0


def test_a_dead_sandbox_a_finalizer_holds_is_not_deleted_again_once_seen_terminating(
    world: World, controller: SandboxSetController
) -> None:
    """A dead sandbox its set's cache shows being deleted (another finalizer holds it) is
    not deleted again at each later reconcile of the set. (Within the watch lag after the
    delete, a reconcile on the older copy may send it again: a no-op for the API server.)"""
    make_set(world, 3)
    run_until(world, full(world, 3))
    victim = pool(world)[1]
    name = victim.metadata.name
    failed = victim.model_copy(deep=True)
    failed.metadata.finalizers = ["example.com/hold"]
    world.api.commit_update(failed, check_rv=False)
    failed = stored(world, "Sandbox", name).model_copy(deep=True)
    failed.status.phase = SandboxPhase.FAILED
    world.api.commit_update(failed, subresource="status", check_rv=False)
    run_until(world, lambda: stored(world, "Sandbox", name).metadata.deletion_timestamp is not None)

    def live(n: int) -> Callable[[], bool]:
        def check() -> bool:
            up = [
                s
                for s in pool(world)
                if s.metadata.deletion_timestamp is None and s.status.phase == SandboxPhase.RUNNING
            ]
            return len(up) == n and status(world).available_replicas == n

        return check

    run_until(world, live(3))
    world.ctx.env.run(until=world.ctx.now() + 1)
    deletes = events(world, "sandboxset.delete")
    assert set(deletes) == {f"default/{name} reason=dead"}
    # More reconciles of the set, on a cache that shows the mark: a scale-up and its events.
    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 4))
    run_until(world, live(4))
    assert events(world, "sandboxset.delete") == deletes
    assert world.api.peek("Sandbox", "default", name) is not None


def test_max_unavailable_bounds_the_creating_count(world: World) -> None:
    """With scaleStrategy.maxUnavailable 3, at most 3 sandboxes are creating at any time."""
    FakeReadiness(world, delay=5.0)
    ctl = SandboxSetController(world)
    ctl.start()
    make_set(world, 10, scale_strategy=ScaleStrategy(max_unavailable=3))
    env = world.ctx.env
    peak = 0
    while not full(world, 10)():
        assert env.now < 200
        env.step()
        c = ctl.counts("default", "base")
        peak = max(peak, c["creating"] + c["unobserved"])
        st = status(world)
        assert st.replicas - st.available_replicas <= 3
    assert peak == 3
    assert all(int(d.rsplit("=", 1)[1]) <= 3 for d in events(world, "sandboxset.scale_up"))


def test_rolling_update_replaces_old_revision_sandboxes(
    world: World, controller: SandboxSetController
) -> None:
    """A template change deletes old-revision sandboxes within the budget until all are updated."""
    make_set(world, 5)
    run_until(world, full(world, 5))
    old = {s.metadata.name for s in pool(world)}
    update_set(world, "base", lambda s: setattr(s.spec, "template", template("python:3.13")))
    rev = sandboxset_revision(stored(world, "SandboxSet", "base"))
    run_until(
        world,
        lambda: (
            full(world, 5)()
            and all(s.metadata.labels[keys.LABEL_TEMPLATE_HASH] == rev for s in pool(world))
        ),
        limit=300,
    )
    assert not old & {s.metadata.name for s in pool(world)}
    # 20% of 5 rounds up to 1: one old sandbox at a time.
    rolls = events(world, "sandboxset.rolling_update")
    assert rolls and all(r.endswith("delete=1") for r in rolls)
    st = status(world)
    assert st.updated_replicas == 5 and st.updated_available_replicas == 5


def test_updated_counts_stay_stale_while_scaling(world: World) -> None:
    """updatedReplicas is recomputed only when delta is 0 (upstream bug #779)."""
    FakeReadiness(world, delay=5.0)
    SandboxSetController(world).start()
    make_set(world, 2, scale_strategy=ScaleStrategy(max_unavailable=1))
    run_until(world, full(world, 2))
    assert status(world).updated_replicas == 2
    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 4))
    # maxUnavailable 1 holds delta at 1 while the third sandbox is creating.
    run_until(world, lambda: status(world).replicas == 3, limit=5)
    assert status(world).updated_replicas == 2
    run_until(world, full(world, 4))
    assert status(world).updated_replicas == 4


def test_a_template_ref_set_fills_with_sandboxes_that_carry_the_reference(
    world: World, controller: SandboxSetController
) -> None:
    """A templateRef set makes pool sandboxes naming the template; it is its current revision."""
    FakeReadiness(world)
    sbs = SandboxSet.model_validate(
        {
            "metadata": {"name": "ref", "namespace": "default"},
            "spec": {"replicas": 2, "templateRef": {"name": "tpl"}},
        }
    )
    world.api.commit_create(sbs)
    run_until(world, full(world, 2, "ref"))
    for sbx in pool(world, "ref"):
        assert sbx.spec.template is None
        assert sbx.spec.template_ref is not None and sbx.spec.template_ref.name == "tpl"
        assert sbx.metadata.labels[keys.LABEL_SANDBOX_TEMPLATE] == "tpl"
        assert sbx.metadata.labels[keys.LABEL_SANDBOX_POOL] == "ref"
    st = stored(world, "SandboxSet", "ref").status
    assert st.current_revision == "tpl"
    assert st.update_revision == sandboxset_revision(sbs)


def test_stalled_controller_does_nothing_until_the_stall_ends(
    world: World, controller: SandboxSetController
) -> None:
    """A controller_stall fault on "sandboxset" holds every reconcile until it ends."""
    world.ctx.faults.inject(
        kind="controller_stall", selector={"controller": "sandboxset"}, duration=10
    )
    make_set(world, 2)
    world.ctx.env.run(until=9.5)
    assert not world.api.peek_list("Sandbox")
    run_until(world, full(world, 2))
    assert world.ctx.now() >= 10


def test_bookkeeping_matches_a_full_recount(world: World, controller: SandboxSetController) -> None:
    """At every step of a churn, the incremental counts equal a recount of the cache."""
    sbs = make_set(world, 8)
    uid = sbs.metadata.uid or ""
    env = world.ctx.env

    def recount() -> dict[str, int]:
        owned = world.controller_cache.by_index("Sandbox", "owner-uid", uid)
        groups = group_sandboxes(list(owned), world.ctx.now_dt())
        return {"creating": len(groups.creating), "available": len(groups.available)}

    def check_until(t: float) -> None:
        while env.peek() <= t:
            env.step()
            c = controller.counts("default", "base")
            assert {k: c[k] for k in ("creating", "available")} == recount()

    check_until(5)
    for i, sbx in enumerate(pool(world)[:4]):
        if i % 2:
            claim(world, sbx)
        else:
            dead = sbx.model_copy(deep=True)
            dead.status.phase = SandboxPhase.FAILED
            world.api.commit_update(dead, subresource="status", check_rv=False)
        check_until(env.now + 0.5)
    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 3))
    check_until(env.now + 10)
    assert full(world, 3)()


def test_same_seed_same_log() -> None:
    """Two runs with the same seed and the same steps give the same event log."""

    def once() -> str:
        w = make_world(seed=7)
        FakeReadiness(w)
        SandboxSetController(w).start()
        make_set(w, 20)
        run_until(w, full(w, 20))
        claim(w, pool(w)[3])
        run_until(w, lambda: len(w.api.peek_list("Sandbox")) == 21 and full(w, 20)())
        return w.ctx.log.text()

    assert once() == once()


def test_end_to_end_pool_with_pods_claims_and_scale_down() -> None:
    """On the whole fake cluster: the pool fills with real pods, refills after E2B claims,
    and a scale-down removes sandboxes (and their pods) with the lock-then-delete."""
    from simulator.cluster import Cluster

    cluster = Cluster(seed=5)
    cluster.apply(
        {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxSet",
            "metadata": {"name": "base", "namespace": "default"},
            "spec": {
                "replicas": 20,
                "runtimes": [{"name": "agent-runtime"}],
                "template": template(),
            },
        }
    )
    cluster.wait_for_pool("base")
    ctl = cluster.sandboxset_controller
    assert events(cluster.world, "sandboxset.create_batch") == [
        "default/base size=16",
        "default/base size=4",
    ]
    results: list[Any] = cluster.create_sandboxes(6, "base")
    assert all(isinstance(r, Sandbox) for r in results)
    cluster.wait_for_pool("base")
    assert len(cluster.list("sbx", "default")) == 26
    assert status(cluster.world).replicas == 20
    assert ctl.counts("default", "base") == {
        "creating": 0,
        "available": 20,
        "dead": 0,
        "unobserved": 0,
    }

    update_set(cluster.world, "base", lambda s: setattr(s.spec, "replicas", 10))
    cluster.run_until(
        lambda: len(pool(cluster.world)) == 10 and status(cluster.world).replicas == 10
    )
    cluster.advance(5)
    assert len(events(cluster.world, "sandboxset.delete")) == 10
    assert len(cluster.list("sbx", "default")) == 16
    # Pods went with their sandboxes; the claimed sandboxes' pods remain.
    assert len(cluster.list("Pod", "default")) == 16


def templates(world: World) -> list[str]:
    """Names of the stored SandboxTemplates, oldest first."""
    return [t.metadata.name for t in world.api.peek_list("SandboxTemplate", "default")]


def test_each_revision_is_materialised_and_the_ten_newest_are_kept(
    world: World, controller: SandboxSetController
) -> None:
    """A template change makes a new ``<set>-<revision>`` template; past ten, the oldest go."""
    make_set(world, 1)
    run_until(world, full(world, 1))
    revisions = [status(world).update_revision]
    for i in range(2, 14):

        def retemplate(s: SandboxSet, i: int = i) -> None:
            s.spec.template = template(f"py:{i}")

        update_set(world, "base", retemplate)
        run_until(world, lambda: status(world).update_revision not in revisions)
        run_until(world, full(world, 1))
        revisions.append(status(world).update_revision)
    assert len(set(revisions)) == 13
    assert templates(world) == [f"base-{r}" for r in revisions[-MAX_MATERIALIZED:]]
    assert status(world).current_revision == f"base-{revisions[-1]}"
    assert len(events(world, "sandboxset.template_materialized")) == 13
    assert len(events(world, "sandboxset.template_pruned")) == 3


def test_a_prune_is_logged_once_for_each_template_really_deleted() -> None:
    """Revisions two seconds apart: a reconcile whose stale cache still lists a pruned
    template gets a 404 deleting it again, and logs no second prune."""
    from simulator.cluster import Cluster

    cluster = Cluster(seed=15)
    for i in range(13):
        cluster.apply(
            "apiVersion: agents.kruise.io/v1alpha1\nkind: SandboxSet\nmetadata: {name: base}\n"
            "spec: {replicas: 1, template: {spec: {containers: "
            f"[{{name: main, image: 'python:3.{i}'}}]}}}}}}\n"
        )
        cluster.advance(2)
    pruned = events(cluster.world, "sandboxset.template_pruned")
    made = events(cluster.world, "sandboxset.template_materialized")
    assert len(pruned) == len(set(pruned)) == len(made) - len(cluster.list("sbt")) == 3


def test_a_materialised_template_deleted_by_hand_is_made_again_and_goes_with_its_set(
    world: World, controller: SandboxSetController
) -> None:
    make_set(world, 1)
    run_until(world, full(world, 1))
    (name,) = templates(world)
    world.api.commit_delete("SandboxTemplate", "default", name)
    run_until(world, lambda: templates(world) == [name], limit=5)
    world.api.commit_delete("SandboxSet", "default", "base")
    assert templates(world) == []


def test_a_set_made_anew_adopts_the_template_an_orphan_delete_left_and_takes_it_along(
    world: World, controller: SandboxSetController
) -> None:
    """A set deleted with ``Orphan`` propagation leaves its materialised template with no
    owner. A set made anew under its name with the same template names that template as its
    ``currentRevision`` and adopts it (its controller reference, as a ControllerRefManager
    adopts an orphan), so that the template goes with the new set."""
    make_set(world, 1)
    run_until(world, full(world, 1))
    (name,) = templates(world)
    world.api.commit_delete("SandboxSet", "default", "base", propagation="Orphan")
    world.ctx.env.run(until=world.ctx.now() + 1)
    assert stored(world, "SandboxTemplate", name).metadata.owner_references == []

    again = make_set(world, 1)
    run_until(world, lambda: status(world).current_revision == name, limit=30)
    run_until(world, lambda: stored(world, "SandboxTemplate", name).metadata.owner_references)

    ref = stored(world, "SandboxTemplate", name).metadata.controller_ref()
    assert ref is not None and (ref.kind, ref.uid) == ("SandboxSet", again.metadata.uid)
    assert events(world, "sandboxset.template_adopted") == [f"default/{name}"]
    world.ctx.env.run(until=world.ctx.now() + 5)
    assert len(events(world, "sandboxset.template_adopted")) == 1
    world.api.commit_delete("SandboxSet", "default", "base")
    assert templates(world) == []


def test_a_template_another_set_controls_is_not_adopted(
    world: World, controller: SandboxSetController
) -> None:
    """Only an orphan is adopted: a template of the set's name and revision that another
    object controls keeps its controller."""
    from pytest_kruise_agents.api.meta import OwnerReference
    from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate, SandboxTemplateSpec

    sbs = SandboxSet(
        metadata=ObjectMeta(name="base", namespace="default"),
        spec=SandboxSetSpec(replicas=1, template=template()),
    )
    name = f"base-{sandboxset_revision(sbs)}"
    other = OwnerReference(
        api_version="example.com/v1", kind="AgentRun", name="run", uid="u-1", controller=True
    )
    world.api.commit_create(
        SandboxTemplate(
            metadata=ObjectMeta(name=name, namespace="default", owner_references=[other]),
            spec=SandboxTemplateSpec(template=template()),
        )
    )
    make_set(world, 1)
    run_until(world, full(world, 1))

    assert status(world).current_revision == name
    assert stored(world, "SandboxTemplate", name).metadata.owner_references == [other]
    assert events(world, "sandboxset.template_adopted") == []


def test_a_users_template_of_the_sets_name_is_not_adopted_nor_deleted_with_it(
    world: World, controller: SandboxSetController
) -> None:
    """An orphan is adopted only if the set's selector matches it (its ``sandbox-pool``
    label), as a ControllerRefManager adopts: a user's own SandboxTemplate that happens to
    bear the name ``<set>-<revision>`` stays the user's, and outlives the set."""
    from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate, SandboxTemplateSpec

    sbs = SandboxSet(
        metadata=ObjectMeta(name="base", namespace="default"),
        spec=SandboxSetSpec(replicas=1, template=template()),
    )
    name = f"base-{sandboxset_revision(sbs)}"
    world.api.commit_create(
        SandboxTemplate(
            metadata=ObjectMeta(name=name, namespace="default"),
            spec=SandboxTemplateSpec(template=template("registry.example.com/other:v9")),
        )
    )
    make_set(world, 1)
    run_until(world, full(world, 1))
    world.ctx.env.run(until=world.ctx.now() + 5)

    assert stored(world, "SandboxTemplate", name).metadata.owner_references == []
    assert events(world, "sandboxset.template_adopted") == []
    world.api.commit_delete("SandboxSet", "default", "base")
    world.ctx.env.run(until=world.ctx.now() + 5)
    assert templates(world) == [name]


def test_scale_down_takes_a_sandbox_whose_pod_cannot_be_created_first() -> None:
    """§3's scale-down tiers on the whole fake cluster: a sandbox whose pod the API server
    refuses is Pending (§4 step 7), tier 0, so it goes before an older Running-not-Ready one
    (tier 2) that would win the tie by age were both in one tier."""
    from simulator.cluster import Cluster

    cluster = Cluster(seed=3)
    world = cluster.world
    cluster.inject("pod_start_failure", selector={"template": "base"})
    make_set(world, 1)
    cluster.run_until(lambda: [s.status.phase for s in pool(world)] == [SandboxPhase.RUNNING])
    (crashing,) = (s.metadata.name for s in pool(world))
    cluster.advance(2)
    cluster.inject("api_error", code=500, selector={"verb": "create", "kind": "Pod"})
    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 2))
    cluster.run_until(lambda: len(pool(world)) == 2)
    (stuck,) = (s.metadata.name for s in pool(world) if s.metadata.name != crashing)
    cluster.advance(2)
    assert stored(world, "Sandbox", stuck).status.phase == SandboxPhase.PENDING
    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 1))
    cluster.run_until(lambda: bool(events(world, "sandboxset.delete")))
    assert events(world, "sandboxset.delete") == [f"default/{stuck} reason=scale_down"]


def test_a_first_recycle_rejoins_its_pool_as_a_fresh_sandbox_for_scale_down() -> None:
    """Reference §4 resets the metadata (owner reference back) before ``recycledCount++``, and
    §3 reconciles the set on that event: its scale-down sees the sandbox still ``Recycling``
    with no recycled count, a fresh available one, so age decides, not the recycled tier. In
    a pool of two the other sandbox of the first fill, as old and listed first, goes."""
    from simulator.cluster import Cluster

    cluster = Cluster(seed=0)
    world = cluster.world
    cleanup = {"metadata": {"annotations": {keys.ANN_CLEANUP_ENABLED: "true"}}, **template()}
    make_set(world, 2, template=cleanup, runtimes=[{"name": "agent-runtime"}])
    cluster.wait_for_pool("base")
    first_fill = {s.metadata.name for s in pool(world)}
    sbx = cluster.create_sandbox("base", timeout=600)
    cluster.advance(20)
    cluster.kill(cluster.sandbox_id(sbx))
    cluster.advance(20)
    name = sbx.metadata.name
    assert stored(world, "Sandbox", name).status.recycled_count == 1
    (other,) = first_fill - {name}
    assert events(world, "sandboxset.delete") == [f"default/{other} reason=scale_down"]


def test_scale_down_waits_until_the_cache_shows_every_create_and_delete_of_the_set() -> None:
    """Reference §3 step 4: a set scales down only when both its scale-up and its scale-down
    expectations are satisfied, i.e. its cache shows every create and delete it issued.

    The controller's cache lags 2 s behind the API server; the set is applied with 4 replicas,
    then cut to 1 half a second later, while its creates are still unseen. Each scale-down
    decision therefore comes at least 2 s after every create or delete before it, and the pool
    ends at 1 sandbox with 3 deletes. Without the gate, every reconcile while the creates (or
    the first deletes) are unseen decides a scale-down of 3 again, at once.
    """
    from simulator.cluster import Cluster

    lag = 2.0
    cluster = Cluster(seed=11)
    world = cluster.world
    cluster.inject(
        "watch_lag", latency=f"fixed({lag:g}s)", selector={"informer": "agent-sandbox-controller"}
    )
    make_set(world, 4)
    cluster.advance(0.5)
    update_set(world, "base", lambda s: setattr(s.spec, "replicas", 1))
    cluster.advance(60)

    log = list(world.ctx.log)
    decisions = [e.time for e in log if e.kind == "sandboxset.scale_down"]
    assert decisions
    writes = [e.time for e in log if e.kind in ("sandboxset.create", "sandboxset.delete")]
    for at in decisions:
        assert all(w <= at - lag for w in writes if w < at), (at, writes)
    assert len(events(world, "sandboxset.create")) == 4
    assert len(events(world, "sandboxset.delete")) == 3
    assert len(pool(world)) == 1


def test_a_status_write_answered_409_backs_off_per_key(
    world: World, controller: SandboxSetController
) -> None:
    """A status write that keeps meeting 409 is an error of the reconcile: the key backs off
    5 ms doubling to 30 s (controller-runtime's ``AddRateLimited``), rather than retrying at
    once; once the conflicts end the status lands at the next retry."""
    fault = world.ctx.faults.inject(
        kind="api_conflict", selector={"kind": "SandboxSet"}, duration=60
    )
    make_set(world, 1)
    world.ctx.env.run(until=65)

    # The 14th retry comes 5 ms x (2**14 - 1) = 82 s in, capped at 30 s after the 13th
    # (41 s in): about 71 s. The watch events of the pool's sandbox (created, ready)
    # bring a few reconciles of their own: an event is no requeue.
    assert 12 <= fault.fired <= 20
    assert status(world).replicas == 0
    run_until(world, lambda: status(world).replicas == 1, limit=10)
    assert 70 < world.ctx.now() < 73
    run_until(world, full(world, 1))


def test_a_reconcile_starts_no_further_wave_after_one_with_a_failed_create(
    world: World, controller: SandboxSetController
) -> None:
    """Reference §3 step 4: creates run in waves 16, 32, ... (``DoItSlowly``) that stop after
    the first wave with an error. One create of the first wave of a set of 40 fails: that
    reconcile starts no wave of 32; the next reconcile creates the 25 still missing (16, 9)."""
    world.ctx.faults.inject(
        kind="api_error", selector={"verb": "create", "kind": "Sandbox"}, count=1
    )
    make_set(world, 40)
    run_until(world, full(world, 40))
    assert events(world, "sandboxset.create_batch") == [
        "default/base size=16",
        "default/base size=16",
        "default/base size=9",
    ]
    assert len(events(world, "sandboxset.create_failed")) == 1
    assert len(events(world, "sandboxset.create")) == 40


def test_a_rolling_update_waits_until_the_cache_shows_the_sets_creates(world: World) -> None:
    """Reference §3 step 6: old-revision sandboxes are deleted only when delta is 0 *and* the
    expectations are satisfied. With a 2 s watch lag, the replacement of each old sandbox is
    a create the cache has not shown yet: counted in replicas (delta 0), but not as an
    updated creating one. Deleting the next old sandbox then would take the pool below
    maxUnavailable (20% of 5: one at a time); the set waits, and never has more than one
    of its five sandboxes missing or creating."""
    FakeReadiness(world)
    ctl = SandboxSetController(world)
    ctl.start()
    make_set(world, 5)
    run_until(world, full(world, 5))
    world.ctx.set_profile(world.ctx.profile.with_overrides(latencies={"watch.lag": 2.0}))
    update_set(world, "base", lambda s: setattr(s.spec, "template", template("python:3.13")))
    rev = sandboxset_revision(stored(world, "SandboxSet", "base"))
    env = world.ctx.env
    fewest = 5
    while not (
        full(world, 5)()
        and all(s.metadata.labels[keys.LABEL_TEMPLATE_HASH] == rev for s in pool(world))
    ):
        assert env.now < 300, "the rollout did not finish"
        env.step()
        ready = [
            s
            for s in pool(world)
            if s.status.phase == SandboxPhase.RUNNING and s.metadata.deletion_timestamp is None
        ]
        fewest = min(fewest, len(ready))
    assert fewest == 4
    assert all(r.endswith("delete=1") for r in events(world, "sandboxset.rolling_update"))


def test_a_set_requeues_itself_when_its_expectations_expire(world: World) -> None:
    """Reference §3 step 7: a reconcile with creates not yet seen requeues after the
    expectations' remaining timeout (1 min). A cache 90 s behind shows nothing by then:
    the expired creates no longer count, and the set creates the pool again at 60 s,
    without waiting for any watch event (upstream's expectations behave the same)."""
    FakeReadiness(world)
    SandboxSetController(world).start()
    make_set(world, 2)
    # Once the controller's cache shows the set (and before its creates are written), every
    # later event reaches that cache 90 s late.
    run_until(
        world, lambda: world.controller_cache.get("SandboxSet", "default", "base") is not None
    )
    assert events(world, "sandboxset.create") == []
    world.ctx.faults.inject(
        kind="watch_lag", latency="90s", selector={"informer": "agent-sandbox-controller"}
    )
    world.ctx.env.run(until=59)
    assert len(events(world, "sandboxset.create")) == 2
    world.ctx.env.run(until=61)
    creates = [e.time for e in world.ctx.log if e.kind == "sandboxset.create"]
    assert len(creates) == 4
    assert 60 <= creates[2] < 61
