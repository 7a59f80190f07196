"""The simulation kernel: API server, informers, work queue, token bucket, faults, event log."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import simpy

from pytest_kruise_agents.api import ObjectMeta, OwnerReference, Pod, SandboxClaim
from pytest_kruise_agents.api.sandboxclaim import SandboxClaimSpec
from simulator.apiserver import ApiError, ApiServer
from simulator.context import SimContext
from simulator.eventlog import EventLog
from simulator.faults import FaultInjector
from simulator.informer import Informer
from simulator.profile import get_profile
from simulator.ratelimit import TokenBucket
from simulator.workqueue import WorkQueue


@pytest.fixture
def ctx() -> SimContext:
    return SimContext(seed=1, profile=get_profile("openkruise-head"))


def claim(name: str = "", generate: str | None = None) -> SandboxClaim:
    return SandboxClaim(
        metadata=ObjectMeta(name=name, generate_name=generate),
        spec=SandboxClaimSpec(template_name="base"),
    )


def stored(api: ApiServer, kind: str, namespace: str, name: str) -> Any:
    """``api.peek``, for an object the test expects to be stored."""
    obj = api.peek(kind, namespace, name)
    assert obj is not None, f"no {kind} {namespace}/{name}"
    return obj


def run(ctx: SimContext, gen: Any) -> Any:
    proc = ctx.env.process(gen)
    return ctx.env.run(until=proc)


def test_create_assigns_identity_and_generate_name(ctx: SimContext) -> None:
    """Create fills uid, resourceVersion 1-up, generation 1, a creation time and a generated name."""
    api = ApiServer(ctx)
    obj = api.commit_create(claim(generate="c-"))
    assert obj.metadata.name.startswith("c-") and len(obj.metadata.name) == 7
    assert obj.metadata.uid and obj.metadata.resource_version == "1"
    assert obj.metadata.generation == 1
    assert obj.metadata.creation_timestamp == ctx.epoch


def test_create_twice_is_already_exists(ctx: SimContext) -> None:
    """A second create of the same name answers 409 AlreadyExists."""
    api = ApiServer(ctx)
    api.commit_create(claim("a"))
    with pytest.raises(ApiError) as err:
        api.commit_create(claim("a"))
    assert err.value.code == 409 and err.value.reason == "AlreadyExists"


def test_stale_update_is_conflict_and_changes_nothing(ctx: SimContext) -> None:
    """An update carrying an old resourceVersion answers 409 and leaves the object as it was."""
    api = ApiServer(ctx)
    first = api.commit_create(claim("a"))
    a = first.model_copy(deep=True)
    a.metadata.labels["x"] = "1"
    api.commit_update(a)
    b = first.model_copy(deep=True)
    b.metadata.labels["y"] = "2"
    with pytest.raises(ApiError) as err:
        api.commit_update(b)
    assert err.value.is_conflict
    assert stored(api, "SandboxClaim", "default", "a").metadata.labels == {"x": "1"}


def test_generation_moves_only_with_spec(ctx: SimContext) -> None:
    """Metadata-only updates keep the generation; spec changes bump it."""
    api = ApiServer(ctx)
    obj = api.commit_create(claim("a"))
    meta_only = obj.model_copy(deep=True)
    meta_only.metadata.labels["x"] = "1"
    obj = api.commit_update(meta_only)
    assert obj.metadata.generation == 1
    spec = obj.model_copy(deep=True)
    spec.spec.replicas = 3
    assert api.commit_update(spec).metadata.generation == 2


def test_update_ignores_status_and_status_update_ignores_spec(ctx: SimContext) -> None:
    """The status subresource is separate from the main resource."""
    api = ApiServer(ctx)
    obj = api.commit_create(claim("a"))
    both = obj.model_copy(deep=True)
    both.spec.replicas = 2
    both.status.claimed_replicas = 5
    after = api.commit_update(both)
    assert after.spec.replicas == 2 and after.status.claimed_replicas == 0
    both = after.model_copy(deep=True)
    both.spec.replicas = 9
    both.status.claimed_replicas = 1
    after = api.commit_update(both, subresource="status")
    assert after.spec.replicas == 2 and after.status.claimed_replicas == 1


def test_finalizers_delay_removal(ctx: SimContext) -> None:
    """Delete marks an object with finalizers; removing the last finalizer removes it."""
    api = ApiServer(ctx)
    c = claim("a")
    c.metadata.finalizers = ["x/y"]
    api.commit_create(c)
    marked = api.commit_delete("SandboxClaim", "default", "a")
    assert marked is not None and marked.metadata.deletion_timestamp is not None
    cleared = marked.model_copy(deep=True)
    cleared.metadata.finalizers = []
    api.commit_update(cleared)
    assert api.peek("SandboxClaim", "default", "a") is None


def test_marking_for_deletion_bumps_generation_once(ctx: SimContext) -> None:
    """A delete held by finalizers bumps ``generation``; a repeated delete changes nothing.

    As kube-apiserver's generic registry (``markAsDeleting``): the first mark
    is a change watchers compare ``observedGeneration`` against.
    """
    api = ApiServer(ctx)
    c = claim("a")
    c.metadata.finalizers = ["x/y"]
    created = api.commit_create(c)
    assert created.metadata.generation == 1
    marked = api.commit_delete("SandboxClaim", "default", "a")
    assert marked is not None and marked.metadata.generation == 2
    again = api.commit_delete("SandboxClaim", "default", "a")
    assert again is not None and again.metadata.generation == 2
    assert again.metadata.resource_version == marked.metadata.resource_version


def test_delete_collects_controlled_dependents(ctx: SimContext) -> None:
    """Deleting an owner garbage-collects objects whose controller ownerRef points at it."""
    api = ApiServer(ctx)
    owner = api.commit_create(claim("owner"))
    pod = Pod(
        metadata=ObjectMeta(
            name="p",
            owner_references=[
                OwnerReference(
                    api_version="agents.kruise.io/v1alpha1",
                    kind="SandboxClaim",
                    name="owner",
                    uid=owner.metadata.uid or "",
                    controller=True,
                )
            ],
        )
    )
    api.commit_create(pod)
    api.commit_delete("SandboxClaim", "default", "owner")
    assert api.peek("Pod", "default", "p") is None


def owned_pod(name: str, owner: str, uid: str) -> Pod:
    ref = OwnerReference(
        api_version="agents.kruise.io/v1alpha1",
        kind="SandboxClaim",
        name=owner,
        uid=uid,
        controller=True,
    )
    return Pod(metadata=ObjectMeta(name=name, owner_references=[ref]))


def test_an_object_created_for_a_deleted_controller_is_collected(ctx: SimContext) -> None:
    """A controller acting on a stale cache creates a pod for an owner already gone: the GC takes it."""
    api = ApiServer(ctx)
    owner = api.commit_create(claim("owner"))
    uid = owner.metadata.uid or ""
    api.commit_delete("SandboxClaim", "default", "owner")
    api.commit_create(owned_pod("late", "owner", uid))
    api.commit_create(claim("owner"))  # a new owner of the same name is not the one referred to
    assert api.peek("Pod", "default", "late") is not None  # the create itself succeeds
    ctx.env.run(until=0.001)
    assert api.peek("Pod", "default", "late") is None
    assert ctx.log.of_kind("gc.orphan_deleted")[0].detail == "Pod/default/late"


def test_collected_orphans_leave_no_bookkeeping(ctx: SimContext) -> None:
    """The owner-to-dependents table holds live owners only: each orphan made for a gone
    owner and collected (a stale cache's create, again and again) leaves nothing behind."""
    api = ApiServer(ctx)
    for i in range(20):
        owner = api.commit_create(claim(f"owner-{i}"))
        api.commit_delete("SandboxClaim", "default", f"owner-{i}")
        api.commit_create(owned_pod(f"late-{i}", f"owner-{i}", owner.metadata.uid or ""))
        ctx.env.run(until=ctx.env.now + 0.001)
    assert api.peek_list("Pod") == []
    assert api._dependents == {}


def test_an_object_whose_controller_exists_is_not_collected(ctx: SimContext) -> None:
    """Only a missing owner makes an orphan."""
    api = ApiServer(ctx)
    owner = api.commit_create(claim("owner"))
    api.commit_create(owned_pod("kept", "owner", owner.metadata.uid or ""))
    ctx.env.run(until=0.001)
    assert api.peek("Pod", "default", "kept") is not None
    assert not ctx.log.of_kind("gc.orphan_deleted")


def test_informer_sees_writes_after_lag_in_order(ctx: SimContext) -> None:
    """Watch events reach an informer later than the write, in commit order."""
    api = ApiServer(ctx)
    inf = Informer("test", ("SandboxClaim",))
    seen: list[tuple[float, str, str]] = []
    inf.add_handler(
        "SandboxClaim",
        lambda t, old, new: seen.append((ctx.now(), t, (new or old).metadata.resource_version)),
    )
    api.register(inf)
    obj = api.commit_create(claim("a"))
    for i in range(5):
        obj = obj.model_copy(deep=True)
        obj.metadata.labels["i"] = str(i)
        obj = api.commit_update(obj)
    assert inf.get("SandboxClaim", "default", "a") is None  # not yet propagated
    ctx.env.run(until=1)
    assert [rv for _, _, rv in seen] == ["1", "2", "3", "4", "5", "6"]
    assert all(t > 0 for t, _, _ in seen)
    assert [t for t, _, _ in seen] == sorted(t for t, _, _ in seen)


def test_an_unregistered_informer_sees_only_the_events_already_under_way(
    ctx: SimContext,
) -> None:
    """A closed watch: writes committed before it closed still arrive, later ones never."""
    api = ApiServer(ctx)
    inf = Informer("test", ("SandboxClaim",))
    seen: list[str] = []
    inf.add_handler("SandboxClaim", lambda t, old, new: seen.append((new or old).metadata.name))
    api.register(inf)
    api.commit_create(claim("before"))
    api.unregister(inf)
    api.commit_create(claim("after"))
    ctx.env.run(until=1)
    assert seen == ["before"]
    assert inf.get("SandboxClaim", "default", "after") is None


def test_informer_objects_is_the_live_cache_of_a_kind(ctx: SimContext) -> None:
    """``objects(kind)`` holds what ``get`` answers, by ``(namespace, name)``, and follows
    the watch events taken in after it was asked for (adds and deletes alike)."""
    api = ApiServer(ctx)
    inf = Informer("test", ("SandboxClaim",))
    api.register(inf)
    claims = inf.objects("SandboxClaim")
    api.commit_create(claim("a"))
    assert not claims  # not yet propagated
    ctx.env.run(until=1)
    assert claims.get(("default", "a")) is inf.get("SandboxClaim", "default", "a") is not None
    api.commit_delete("SandboxClaim", "default", "a")
    ctx.env.run(until=2)
    assert ("default", "a") not in claims


def test_informer_objects_cannot_be_written_through(ctx: SimContext) -> None:
    """A reader cannot take an object out of the cache (it would stay in the indexes)."""
    api = ApiServer(ctx)
    inf = Informer("test", ("SandboxClaim",))
    inf.add_index("SandboxClaim", "tpl", lambda o: (o.spec.template_name,))
    api.register(inf)
    api.commit_create(claim("a"))
    ctx.env.run(until=1)
    claims = inf.objects("SandboxClaim")
    with pytest.raises(TypeError):
        del claims[("default", "a")]  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        claims[("default", "b")] = claims[("default", "a")]  # type: ignore[index]
    assert inf.get("SandboxClaim", "default", "a") is not None
    assert inf.index_size("SandboxClaim", "tpl", "base") == 1


def test_informer_index_tracks_changes(ctx: SimContext) -> None:
    """An index follows its key function through updates and deletes."""
    api = ApiServer(ctx)
    inf = Informer("test", ("SandboxClaim",))
    inf.add_index("SandboxClaim", "tpl", lambda o: (o.spec.template_name,))
    api.register(inf)
    obj = api.commit_create(claim("a"))
    ctx.env.run(until=1)
    assert [o.metadata.name for o in inf.by_index("SandboxClaim", "tpl", "base")] == ["a"]
    moved = obj.model_copy(deep=True)
    moved.spec.template_name = "other"
    api.commit_update(moved)
    ctx.env.run(until=2)
    assert inf.index_size("SandboxClaim", "tpl", "base") == 0
    assert inf.index_size("SandboxClaim", "tpl", "other") == 1
    api.commit_delete("SandboxClaim", "default", "a")
    ctx.env.run(until=3)
    assert inf.index_size("SandboxClaim", "tpl", "other") == 0


def test_verbs_take_latency_and_client_qps(ctx: SimContext) -> None:
    """Each verb waits its latency; a client beyond its burst waits for tokens."""
    api = ApiServer(ctx)
    client = api.client("slow", qps=1.0, burst=1)

    def two_creates() -> Any:
        yield from api.create(client, claim("a"))
        t1 = ctx.now()
        yield from api.create(client, claim("b"))
        return t1, ctx.now()

    t1, t2 = run(ctx, two_creates())
    assert 0.01 <= t1 <= 0.05
    assert t2 >= 1.0  # the second token arrives one second after the first


def test_injected_api_faults(ctx: SimContext) -> None:
    """Injected conflicts and 5xx errors surface as ApiError from the verbs."""
    api = ApiServer(ctx)
    client = api.client("c", 1e6, 1_000_000)
    obj = api.commit_create(claim("a"))
    ctx.faults.inject(kind="api_conflict", selector={"verb": "update"})
    with pytest.raises(ApiError) as err:
        run(ctx, api.update(client, obj.model_copy(deep=True)))
    assert err.value.is_conflict
    ctx.faults.clear()
    ctx.faults.inject(kind="api_error", code=503)
    with pytest.raises(ApiError) as err:
        run(ctx, api.get(client, "SandboxClaim", "default", "a"))
    assert err.value.code == 503


def test_an_index_bucket_does_not_keep_the_room_of_removed_objects() -> None:
    """A bucket emptied from the front reads in order, without its vacated slots.

    Claims read a pool's bucket from the front while its front entries are
    the ones taken: a dict that kept every vacated slot would make each read
    walk them all.
    """
    inf = Informer("test", ("SandboxClaim",))
    inf.add_index("SandboxClaim", "tpl", lambda o: (o.spec.template_name,))
    for i in range(20_000):
        inf.apply("ADDED", "SandboxClaim", None, claim(f"c{i}"))
    full = sys.getsizeof(inf._indexes["SandboxClaim"]["tpl"].buckets["base"])
    for i in range(16_384):
        inf.apply("DELETED", "SandboxClaim", claim(f"c{i}"), None)
    left = [o.metadata.name for o in inf.by_index("SandboxClaim", "tpl", "base")]
    assert left == [f"c{i}" for i in range(16_384, 20_000)]
    bucket = inf._indexes["SandboxClaim"]["tpl"].buckets["base"]
    assert sys.getsizeof(bucket) <= sys.getsizeof(dict.fromkeys(range(len(bucket)))) < full


def test_a_bucket_nobody_reads_is_never_rebuilt() -> None:
    """Only a read rebuilds a bucket: a rebuild is a fresh dict the collector must walk.

    A pool's index keeps buckets no claim reads (all of a pool's sandboxes,
    creating ones too); rebuilding those after every few thousand claims
    made 100,000-entry dicts for nothing.
    """
    inf = Informer("test", ("SandboxClaim",))
    inf.add_index("SandboxClaim", "tpl", lambda o: (o.spec.template_name,))
    for i in range(10_000):
        inf.apply("ADDED", "SandboxClaim", None, claim(f"c{i}"))
    index = inf._indexes["SandboxClaim"]["tpl"]
    bucket = index.buckets["base"]
    for i in range(8_192):
        inf.apply("DELETED", "SandboxClaim", claim(f"c{i}"), None)
    assert index.buckets["base"] is bucket
    assert next(inf.by_index("SandboxClaim", "tpl", "base")).metadata.name == "c8192"
    assert index.buckets["base"] is not bucket


def test_an_object_keeps_its_place_under_a_key_it_keeps() -> None:
    """Gaining another index key does not move an object to the end of the buckets it stays in."""
    inf = Informer("test", ("SandboxClaim",))
    inf.add_index(
        "SandboxClaim",
        "tpl",
        lambda o: ("all", *(("labelled",) if o.metadata.labels else ())),
    )
    for name in ("a", "b", "c"):
        inf.apply("ADDED", "SandboxClaim", None, claim(name))
    old = claim("a")
    labelled = old.model_copy(deep=True)
    labelled.metadata.labels["x"] = "1"
    inf.apply("MODIFIED", "SandboxClaim", old, labelled)
    assert [o.metadata.name for o in inf.by_index("SandboxClaim", "tpl", "all")] == ["a", "b", "c"]
    assert next(inf.by_index("SandboxClaim", "tpl", "all")).metadata.labels == {"x": "1"}
    assert [o.metadata.name for o in inf.by_index("SandboxClaim", "tpl", "labelled")] == ["a"]
    inf.apply("MODIFIED", "SandboxClaim", labelled, old)
    assert inf.index_size("SandboxClaim", "tpl", "labelled") == 0
    assert [o.metadata.name for o in inf.by_index("SandboxClaim", "tpl", "all")] == ["a", "b", "c"]


def test_workqueue_deduplicates_and_serialises_keys() -> None:
    """A key waiting is not queued twice, and a key in process is re-queued only after done."""
    env = simpy.Environment()
    q = WorkQueue(env, "q")
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2
    got: list[str] = []

    def worker() -> Any:
        key = yield q.get()
        got.append(key)
        q.add(key)  # re-added while processing: must not go to a second worker
        assert len(q) == 1
        yield env.timeout(1)
        q.done(key)

    env.process(worker())
    env.run()
    assert got == ["a"]
    assert len(q) == 2  # "b" and the re-added "a"


def test_token_bucket_allow_and_reserve() -> None:
    """A bucket grants its burst at once, then refills at its rate."""
    t = [0.0]
    bucket = TokenBucket(lambda: t[0], rate=2.0, burst=2)
    assert bucket.allow() and bucket.allow() and not bucket.allow()
    t[0] = 0.5
    assert bucket.allow()
    assert bucket.reserve() == pytest.approx(0.5)


def test_fault_windows_selectors_and_probability() -> None:
    """A fault fires only inside its window, for matching targets, with its probability."""
    import random

    t = [0.0]
    faults = FaultInjector(lambda: t[0], random.Random(3))
    f = faults.inject(kind="image_pull_failure", start=10, duration=5, selector={"node": "n1"})
    assert f.id == "image_pull_failure-1"
    assert faults.check("image_pull_failure", node="n1") is None
    t[0] = 12
    assert faults.check("image_pull_failure", node="n2") is None
    assert faults.check("image_pull_failure", node="n1") is f
    t[0] = 15
    assert faults.check("image_pull_failure", node="n1") is None
    faults.clear()
    faults.inject(kind="runtime_init_failure", probability=0.25)
    hits = sum(faults.check("runtime_init_failure") is not None for _ in range(4000))
    assert 850 < hits < 1150


def test_fault_validation_names_the_field() -> None:
    """A bad fault is refused with the field and the reason."""
    import random

    faults = FaultInjector(lambda: 0.0, random.Random(0))
    with pytest.raises(ValueError, match="probability"):
        faults.inject(kind="api_error", probability=2)
    with pytest.raises(ValueError, match="kind"):
        faults.inject(kind="no_such_fault")
    assert len(faults) == 0


def test_event_log_text_is_stable() -> None:
    """The event log renders one fixed-format line per event, and can be turned off."""
    log = EventLog()
    log.add(1.5, "a.b", "x")
    assert log.text() == "1.500000 a.b x\n"
    off = EventLog(enabled=False)
    off.add(1.0, "a", "b")
    assert len(off) == 0


def test_an_event_is_one_line_whatever_its_detail_quotes() -> None:
    """A detail quoting a caller's text (a template name with a newline) stays on its line:
    what is not printable is escaped, so no event can forge another."""
    log = EventLog()
    log.add(5.0, "manager.claim_failed", "template=base\n1.000000 manager.claim forged\u2028x\ty")
    log.add(6.0, "a", "ü ok")
    assert log.text() == (
        "5.000000 manager.claim_failed template=base\\n1.000000 manager.claim forged\\u2028x\\ty\n"
        "6.000000 a ü ok\n"
    )
    assert len(log.text().splitlines()) == 2


# -- garbage collection: every owner reference, orphan and foreground deletion ---------


def ref_to(owner: Any, *, controller: bool = False, block: bool | None = None) -> OwnerReference:
    return OwnerReference(
        api_version=owner.api_version,
        kind=owner.kind,
        name=owner.metadata.name,
        uid=owner.metadata.uid or "",
        controller=controller,
        block_owner_deletion=block,
    )


def dependent(
    api: ApiServer, name: str, *refs: OwnerReference, finalizers: tuple[str, ...] = ()
) -> Pod:
    made: Pod = api.commit_create(
        Pod(
            metadata=ObjectMeta(name=name, owner_references=list(refs), finalizers=list(finalizers))
        )
    )
    return made


def owner_with(api: ApiServer, name: str, *finalizers: str) -> SandboxClaim:
    c = claim(name)
    c.metadata.finalizers = list(finalizers)
    made: SandboxClaim = api.commit_create(c)
    return made


def claim_owned_by(api: ApiServer, name: str, ref: OwnerReference) -> SandboxClaim:
    """A SandboxClaim with one owner: the middle of an owner tree (it can own pods)."""
    made: SandboxClaim = api.commit_create(
        SandboxClaim(
            metadata=ObjectMeta(name=name, owner_references=[ref]),
            spec=SandboxClaimSpec(template_name="base"),
        )
    )
    return made


def release(api: ApiServer, kind: str, name: str, finalizer: str) -> None:
    """Remove one finalizer, as the controller that put it there would."""
    obj = stored(api, kind, "default", name).model_copy(deep=True)
    obj.metadata.finalizers = [f for f in obj.metadata.finalizers if f != finalizer]
    api.commit_update(obj)


def owner_names(api: ApiServer, name: str) -> list[str]:
    return [r.name for r in stored(api, "Pod", "default", name).metadata.owner_references]


@pytest.mark.parametrize("controller", [True, False], ids=["controller", "plain-owner"])
def test_a_dependent_with_a_live_owner_left_stays_and_loses_the_dead_reference(
    ctx: SimContext, controller: bool
) -> None:
    """As upstream's ``attemptToDeleteItem``: an object that still has an owner is kept, and
    the reference to the owner that went is removed, whichever of the two was the controller."""
    api = ApiServer(ctx)
    a, b = api.commit_create(claim("a")), api.commit_create(claim("b"))
    dependent(api, "p", ref_to(a, controller=controller), ref_to(b, controller=not controller))
    api.commit_delete("SandboxClaim", "default", "a")
    assert owner_names(api, "p") == ["b"]
    api.commit_delete("SandboxClaim", "default", "b")
    assert api.peek("Pod", "default", "p") is None
    assert api._dependents == {}


def test_a_dependent_whose_only_owner_is_no_controller_goes_with_it(ctx: SimContext) -> None:
    """Every owner reference counts, not only ``controller: true``: no owner left, no object."""
    api = ApiServer(ctx)
    a = api.commit_create(claim("a"))
    dependent(api, "p", ref_to(a))
    api.commit_delete("SandboxClaim", "default", "a")
    assert api.peek("Pod", "default", "p") is None


def test_a_reference_to_a_gone_owner_is_removed_when_another_owner_lives(
    ctx: SimContext,
) -> None:
    """Created naming a live owner and a deleted one: kept, the dangling reference removed;
    naming only gone owners (controller or not): collected."""
    api = ApiServer(ctx)
    live, gone = api.commit_create(claim("live")), api.commit_create(claim("gone"))
    api.commit_delete("SandboxClaim", "default", "gone")
    dependent(api, "kept", ref_to(live, controller=True), ref_to(gone))
    dependent(api, "orphan", ref_to(gone))
    ctx.env.run(until=0.001)
    assert owner_names(api, "kept") == ["live"]
    assert api.peek("Pod", "default", "orphan") is None
    assert [e.detail for e in ctx.log.of_kind("gc.orphan_deleted")] == ["Pod/default/orphan"]


def test_the_orphan_finalizer_keeps_the_dependents_and_lets_the_owner_go(
    ctx: SimContext,
) -> None:
    """Deleting an owner held by ``orphan``: the GC removes its references from the
    dependents (which stay, a finalizer of their own or not), then the finalizer; the owner goes."""
    api = ApiServer(ctx)
    owner = owner_with(api, "owner", "orphan")
    other = api.commit_create(claim("other"))
    dependent(api, "p1", ref_to(owner, controller=True, block=True))
    dependent(api, "p2", ref_to(owner, controller=True), ref_to(other), finalizers=("x/y",))
    api.commit_delete("SandboxClaim", "default", "owner")
    assert api.peek("SandboxClaim", "default", "owner") is None
    assert owner_names(api, "p1") == []
    assert owner_names(api, "p2") == ["other"]
    assert stored(api, "Pod", "default", "p2").metadata.deletion_timestamp is None


def test_the_orphan_finalizer_goes_but_another_one_still_holds_the_owner(
    ctx: SimContext,
) -> None:
    """Only the GC's finalizer is the GC's to remove: the owner stays Terminating on the user's."""
    api = ApiServer(ctx)
    owner = owner_with(api, "owner", "example.com/keep", "orphan")
    dependent(api, "p", ref_to(owner, controller=True))
    api.commit_delete("SandboxClaim", "default", "owner")
    held = stored(api, "SandboxClaim", "default", "owner")
    assert held.metadata.finalizers == ["example.com/keep"]
    assert held.metadata.deletion_timestamp is not None
    assert owner_names(api, "p") == []


def test_foreground_deletion_waits_for_the_dependents_that_block_it(ctx: SimContext) -> None:
    """``foregroundDeletion``: every dependent is deleted at once; the owner keeps the
    finalizer until those whose reference has ``blockOwnerDeletion`` are gone, then goes."""
    api = ApiServer(ctx)
    owner = owner_with(api, "owner", "foregroundDeletion")
    dependent(api, "blocks", ref_to(owner, controller=True, block=True), finalizers=("x/y",))
    dependent(api, "free", ref_to(owner, block=False), finalizers=("x/y",))
    dependent(api, "plain", ref_to(owner, block=True))
    api.commit_delete("SandboxClaim", "default", "owner")
    assert api.peek("Pod", "default", "plain") is None
    for name in ("blocks", "free"):
        assert stored(api, "Pod", "default", name).metadata.deletion_timestamp is not None
    waiting = stored(api, "SandboxClaim", "default", "owner")
    assert waiting.metadata.finalizers == ["foregroundDeletion"]
    release(api, "Pod", "free", "x/y")
    assert api.peek("SandboxClaim", "default", "owner") is not None
    release(api, "Pod", "blocks", "x/y")
    assert api.peek("SandboxClaim", "default", "owner") is None
    assert api._dependents == {} and api._foreground == {}


def test_foreground_deletion_keeps_a_dependent_another_owner_holds(ctx: SimContext) -> None:
    """A dependent with a live owner besides the one deleted in the foreground is not deleted:
    it loses the reference, and so no longer blocks."""
    api = ApiServer(ctx)
    owner = owner_with(api, "owner", "foregroundDeletion")
    other = api.commit_create(claim("other"))
    dependent(api, "shared", ref_to(owner, controller=True, block=True), ref_to(other))
    api.commit_delete("SandboxClaim", "default", "owner")
    assert api.peek("SandboxClaim", "default", "owner") is None
    assert owner_names(api, "shared") == ["other"]


def test_foreground_deletion_goes_down_the_whole_tree(ctx: SimContext) -> None:
    """A dependent that has dependents of its own is deleted in the foreground too: the
    top owner goes only once the bottom of the tree is gone."""
    api = ApiServer(ctx)
    top = owner_with(api, "top", "foregroundDeletion")
    mid = claim_owned_by(api, "mid", ref_to(top, controller=True, block=True))
    dependent(api, "leaf", ref_to(mid, controller=True, block=True), finalizers=("x/y",))
    api.commit_delete("SandboxClaim", "default", "top")
    held = stored(api, "SandboxClaim", "default", "mid")
    assert held.metadata.finalizers == ["foregroundDeletion"]
    assert api.peek("SandboxClaim", "default", "top") is not None
    release(api, "Pod", "leaf", "x/y")
    assert api.peek_list("SandboxClaim") == []


def test_a_dependent_made_for_an_owner_deleted_in_the_foreground_is_collected(
    ctx: SimContext,
) -> None:
    """An owner waiting for its dependents is no live owner: a dependent created for it then
    (a controller acting on a stale cache) is deleted, and the owner does not wait for ever."""
    api = ApiServer(ctx)
    owner = owner_with(api, "owner", "foregroundDeletion")
    dependent(api, "first", ref_to(owner, controller=True, block=True), finalizers=("x/y",))
    api.commit_delete("SandboxClaim", "default", "owner")
    dependent(api, "late", ref_to(owner, controller=True, block=True))
    ctx.env.run(until=0.001)
    assert api.peek("Pod", "default", "late") is None
    release(api, "Pod", "first", "x/y")
    assert api.peek("SandboxClaim", "default", "owner") is None


@pytest.mark.parametrize(
    ("policy", "finalizers", "dependent_owners"),
    [
        ("Orphan", ["example.com/keep", "orphan"], []),
        ("Foreground", ["example.com/keep", "foregroundDeletion"], None),
        ("Background", ["example.com/keep"], ["owner"]),
    ],
)
def test_a_propagation_policy_sets_the_garbage_collector_finalizers(
    ctx: SimContext, policy: Any, finalizers: list[str], dependent_owners: list[str] | None
) -> None:
    """As the registry's ``deletionFinalizersForGarbageCollection``: the policy replaces the
    GC's finalizers of the object (the others stay), then the GC acts on them: orphaned, the
    dependent stays without the reference; in the foreground it is deleted at once; in the
    background it waits for its owner, still held by another finalizer, to go."""
    api = ApiServer(ctx)
    owner = owner_with(api, "owner", "example.com/keep", "foregroundDeletion")
    dependent(api, "p", ref_to(owner, controller=True, block=True))
    marked = api.commit_delete("SandboxClaim", "default", "owner", propagation=policy)
    assert marked is not None and marked.metadata.finalizers == finalizers
    if dependent_owners is None:
        assert api.peek("Pod", "default", "p") is None
    else:
        assert owner_names(api, "p") == dependent_owners


def test_a_delete_with_no_finalizer_in_the_foreground_still_waits(ctx: SimContext) -> None:
    """``propagationPolicy: Foreground`` on an object with no finalizer marks it Terminating."""
    api = ApiServer(ctx)
    owner = api.commit_create(claim("owner"))
    dependent(api, "p", ref_to(owner, controller=True, block=True), finalizers=("x/y",))
    api.commit_delete("SandboxClaim", "default", "owner", propagation="Foreground")
    assert api.peek("SandboxClaim", "default", "owner") is not None
    release(api, "Pod", "p", "x/y")
    assert api.peek("SandboxClaim", "default", "owner") is None


@pytest.mark.parametrize("version", ["0", "000", ""])
def test_a_zero_or_empty_resource_version_is_an_unconditional_update(
    ctx: SimContext, version: str
) -> None:
    """As ``Store.Update`` for pods and custom resources: a version that parses to 0 (or none)
    is no precondition, so the write goes through whatever the stored version."""
    api = ApiServer(ctx)
    first = api.commit_create(claim("a"))
    api.commit_update(first.model_copy(deep=True))
    blind = first.model_copy(deep=True)
    blind.metadata.resource_version = version
    blind.metadata.labels["x"] = "1"
    assert api.commit_update(blind).metadata.labels == {"x": "1"}


def test_owners_deleted_in_the_foreground_that_own_each_other_do_not_wait_for_ever(
    ctx: SimContext,
) -> None:
    """Upstream's cycle detection: a dependent to delete in the foreground whose own dependent
    already waits (here its owner, in a cycle) stops blocking its owners, and both go."""
    api = ApiServer(ctx)
    a = owner_with(api, "a", "foregroundDeletion")
    b = claim_owned_by(api, "b", ref_to(a, controller=True, block=True))
    cyclic = stored(api, "SandboxClaim", "default", "a").model_copy(deep=True)
    cyclic.metadata.owner_references = [ref_to(b, controller=True, block=True)]
    api.commit_update(cyclic)
    api.commit_delete("SandboxClaim", "default", "a")
    assert api.peek_list("SandboxClaim") == []
    assert api._dependents == {} and api._foreground == {}


# -- garbage collection: owners of kinds the fake cluster does not serve --------------


def foreign_ref(api_version: str, kind: str, *, controller: bool) -> OwnerReference:
    """A reference to an owner the fake cluster cannot store (a user's CRD, a ConfigMap)."""
    return OwnerReference(
        api_version=api_version,
        kind=kind,
        name="run-1",
        uid="6f1c2a9e-0000-4000-8000-000000000001",
        controller=controller,
        block_owner_deletion=True,
    )


FOREIGN_OWNERS = pytest.mark.parametrize(
    ("api_version", "kind"),
    [("example.com/v1", "AgentRun"), ("v1", "ConfigMap"), ("batch/v1", "Job")],
)
CONTROLLER = pytest.mark.parametrize("controller", [True, False], ids=["controller", "plain"])


@FOREIGN_OWNERS
@CONTROLLER
def test_an_owner_of_a_kind_the_cluster_does_not_serve_counts_as_live(
    ctx: SimContext, api_version: str, kind: str, controller: bool
) -> None:
    """Upstream's ``attemptToDeleteItem`` cannot look up an owner whose kind it has no REST
    mapping for: it re-queues the dependent and never deletes it. The fake cluster stores no
    such kind, so it cannot know that owner gone: the dependent stays, controller or not."""
    api = ApiServer(ctx)
    dependent(api, "p", foreign_ref(api_version, kind, controller=controller))
    ctx.env.run(until=1)
    assert owner_names(api, "p") == ["run-1"]
    assert not ctx.log.of_kind("gc.orphan_deleted")


@FOREIGN_OWNERS
@CONTROLLER
def test_a_dependent_with_an_owner_of_an_unserved_kind_outlives_its_other_owner(
    ctx: SimContext, api_version: str, kind: str, controller: bool
) -> None:
    """Its other owner deleted (in the background or the foreground), the dependent stays and
    loses only that reference; the owner deleted in the foreground does not wait for it."""
    api = ApiServer(ctx)
    bg, fg = api.commit_create(claim("bg")), api.commit_create(claim("fg"))
    foreign = foreign_ref(api_version, kind, controller=controller)
    dependent(api, "p", foreign, ref_to(bg, controller=not controller, block=True))
    dependent(api, "q", foreign, ref_to(fg, controller=not controller, block=True))
    api.commit_delete("SandboxClaim", "default", "bg")
    api.commit_delete("SandboxClaim", "default", "fg", propagation="Foreground")
    assert owner_names(api, "p") == owner_names(api, "q") == ["run-1"]
    assert api.peek_list("SandboxClaim") == [] and api._foreground == {}


MISMATCHED_OWNERS = pytest.mark.parametrize(
    ("api_version", "kind"),
    [("v1", "SandboxSet"), ("agents.kruise.io/v1beta1", "SandboxClaim"), ("apps/v1", "Pod")],
)


@MISMATCHED_OWNERS
def test_an_owner_is_resolved_by_its_apiversion_and_kind_not_its_kind_alone(
    ctx: SimContext, api_version: str, kind: str
) -> None:
    """A served kind name at an apiVersion it is not served at (each kind is served at one)
    has no REST mapping either: upstream's GC never deletes the dependent for it."""
    api = ApiServer(ctx)
    dependent(api, "p", foreign_ref(api_version, kind, controller=True))
    ctx.env.run(until=1)
    assert owner_names(api, "p") == ["run-1"]
    assert not ctx.log.of_kind("gc.orphan_deleted")


@MISMATCHED_OWNERS
def test_deleting_an_object_keeps_a_dependent_that_names_its_uid_at_another_apiversion(
    ctx: SimContext, api_version: str, kind: str
) -> None:
    """The uid matches, the group, version and kind do not: still no REST mapping, no delete."""
    api = ApiServer(ctx)
    owner = api.commit_create(claim("run-1"))
    ref = ref_to(owner, controller=True).model_copy(
        update={"api_version": api_version, "kind": kind}
    )
    dependent(api, "p", ref)
    api.commit_delete("SandboxClaim", "default", "run-1")
    assert owner_names(api, "p") == ["run-1"]


# -- garbage collection: cascades of any depth ------------------------------------------


def owner_chain(api: ApiServer, length: int) -> None:
    """Pods ``p0 <- p1 <- ... ``: each owned (and blocked) by the one before."""
    prev = dependent(api, "p0")
    for i in range(1, length):
        prev = dependent(api, f"p{i}", ref_to(prev, controller=True, block=True))


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
def test_a_cascade_down_a_long_owner_chain_is_collected_completely(
    ctx: SimContext, policy: Any
) -> None:
    """The garbage collector works down a queue, not the Python stack: a chain of owners
    longer than the interpreter's recursion limit is collected completely by one delete."""
    api = ApiServer(ctx)
    owner_chain(api, sys.getrecursionlimit() + 10)
    api.commit_delete("Pod", "default", "p0", propagation=policy)
    assert api.peek_list("Pod") == []
    assert api._dependents == {} and api._foreground == {}


def test_a_cascade_goes_depth_first(ctx: SimContext, monkeypatch: pytest.MonkeyPatch) -> None:
    """The order of the writes is the order of the recursion the queue replaced: each
    dependent's own dependents go before the next dependent (the event log stays the same)."""
    api = ApiServer(ctx)
    top = dependent(api, "top")
    first = dependent(api, "first", ref_to(top, controller=True))
    dependent(api, "first-child", ref_to(first, controller=True))
    dependent(api, "second", ref_to(top, controller=True))
    seen: list[str] = []
    notify = api._notify

    def record(event_type: str, kind: str, old: Any, new: Any) -> None:
        seen.append(f"{event_type} {(new or old).metadata.name}")
        notify(event_type, kind, old, new)

    monkeypatch.setattr(api, "_notify", record)
    api.commit_delete("Pod", "default", "top")
    assert seen == ["DELETED top", "DELETED first", "DELETED first-child", "DELETED second"]


def test_a_foreground_cascade_goes_depth_first_and_unwinds_from_the_bottom(
    ctx: SimContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the foreground, each dependent is marked (in the foreground too if it has
    dependents) and its own subtree dealt with before the next dependent; when the bottom
    goes, each owner it held goes in turn, from the bottom up."""
    api = ApiServer(ctx)
    top = dependent(api, "top")
    first = dependent(api, "first", ref_to(top, controller=True, block=True))
    dependent(api, "leaf", ref_to(first, controller=True, block=True), finalizers=("x/y",))
    dependent(api, "second", ref_to(top, controller=True, block=True))
    seen: list[str] = []
    notify = api._notify

    def record(event_type: str, kind: str, old: Any, new: Any) -> None:
        seen.append(f"{event_type} {(new or old).metadata.name}")
        notify(event_type, kind, old, new)

    monkeypatch.setattr(api, "_notify", record)
    api.commit_delete("Pod", "default", "top", propagation="Foreground")
    assert seen == ["MODIFIED top", "MODIFIED first", "MODIFIED leaf", "DELETED second"]
    seen.clear()
    release(api, "Pod", "leaf", "x/y")
    assert seen == ["DELETED leaf", "DELETED first", "DELETED top"]
    assert api._dependents == {} and api._foreground == {}
