"""The SandboxSet controller (reference §3): keeps each warm pool at ``spec.replicas``.

A SandboxSet counts only what it still owns: sandboxes whose controller owner
reference is the set and whose derived state is ``creating`` or ``available``,
plus creates it issued but has not yet seen in its cache. A claim removes the
owner reference, so a claimed sandbox drops out of the count and the set
creates a replacement on the resulting watch event.

The counts come from incremental bookkeeping fed by the controller cache's
Sandbox events (owned sandboxes grouped by derived state, per set UID), so a
reconcile costs the same whatever the size of the pool; only the rare paths
that must order sandboxes (scale-down, rolling update) walk the set's own
sandboxes. The decisions themselves are the pure rules of
:mod:`pytest_kruise_agents.claiming.sandboxset`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import simpy

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.copying import deep_copy
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxState
from pytest_kruise_agents.api.sandboxset import SandboxSet, SandboxSetStatus
from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate, SandboxTemplateSpec
from pytest_kruise_agents.claiming.modification import (
    new_sandbox_from_sandboxset,
    sandboxset_owner_reference,
    sandboxset_revision,
)
from pytest_kruise_agents.claiming.sandboxset import (
    SetStatusCounts,
    can_lock_for_scale_down,
    compute_replicas,
    creation_batches,
    lock_for_scale_down,
    rolling_update_deletions,
    scale_delta,
    scale_down_order,
    selector_for,
)
from pytest_kruise_agents.claiming.state import is_controlled_by_sandboxset, sandbox_state
from pytest_kruise_agents.claiming.timeouts import whole_seconds
from simulator.apiserver import ApiError
from simulator.controllers.base import Reconciler
from simulator.world import World

__all__ = ["MAX_MATERIALIZED", "SandboxSetController"]

MAX_MATERIALIZED = 10
"""Materialised SandboxTemplates a set keeps (its newest revisions)."""

STALL_NAME = "sandboxset"
"""The controller's name for ``controller_stall`` faults."""


SetKey = tuple[str, str]
"""(namespace, name) of a SandboxSet: the work-queue key."""

Op = Generator[simpy.Event, Any, Any]


def _skey(sbx: Any) -> str:
    meta = sbx.metadata
    return f"{meta.namespace}/{meta.name}"


@dataclass(slots=True)
class _Owned:
    """One set's owned sandboxes by derived state (``"ns/name"`` → object, insertion order).

    ``order`` holds all of them in first-seen order (the cache list order the
    ordering rules break ties with); ``hashes`` counts creating and available
    sandboxes per ``(state, template-hash)`` so updated counts need no walk.
    """

    creating: dict[str, Sandbox] = field(default_factory=dict)
    available: dict[str, Sandbox] = field(default_factory=dict)
    dead: dict[str, Sandbox] = field(default_factory=dict)
    order: dict[str, Sandbox] = field(default_factory=dict)
    hashes: dict[tuple[SandboxState, str], int] = field(default_factory=dict)

    def bucket(self, state: SandboxState) -> dict[str, Sandbox]:
        if state is SandboxState.AVAILABLE:
            return self.available
        if state is SandboxState.CREATING:
            return self.creating
        # A set-controlled sandbox is never running or paused (§1.3); count
        # anything else as dead so that it is cleaned up.
        return self.dead

    def put(
        self, key: str, sbx: Sandbox, state: SandboxState, prev: SandboxState | None = None
    ) -> None:
        """File ``sbx`` under ``state``, replacing its entry under ``prev`` if any."""
        if prev is state:
            self._uncount(self.bucket(state).get(key), state)
        elif prev is not None:
            self._uncount(self.bucket(prev).pop(key, None), prev)
        self.bucket(state)[key] = sbx
        self.order[key] = sbx
        self._count(sbx, state)

    def _count(self, sbx: Sandbox, state: SandboxState) -> None:
        if state is not SandboxState.DEAD:
            h = (state, sbx.metadata.labels.get(keys.LABEL_TEMPLATE_HASH, ""))
            self.hashes[h] = self.hashes.get(h, 0) + 1

    def _uncount(self, sbx: Sandbox | None, state: SandboxState) -> None:
        if sbx is not None and state is not SandboxState.DEAD:
            h = (state, sbx.metadata.labels.get(keys.LABEL_TEMPLATE_HASH, ""))
            left = self.hashes.get(h, 0) - 1
            if left > 0:
                self.hashes[h] = left
            else:
                self.hashes.pop(h, None)

    def remove(self, key: str, state: SandboxState) -> None:
        self._uncount(self.bucket(state).pop(key, None), state)
        self.order.pop(key, None)

    def empty(self) -> bool:
        return not self.order


@dataclass(slots=True)
class _Expectations:
    """Scale expectations of one set (``scale_expectations.go``): writes not yet observed.

    Keyed by sandbox ``"ns/name"``, valued by the virtual time the
    expectation expires at (``expectation_timeout_s`` after the write).
    """

    creates: dict[str, float] = field(default_factory=dict)
    deletes: dict[str, float] = field(default_factory=dict)

    def prune(self, now: float) -> None:
        for pending in (self.creates, self.deletes):
            for key in [k for k, t in pending.items() if t <= now]:
                del pending[key]

    def satisfied(self) -> bool:
        return not self.creates and not self.deletes

    def next_expiry(self) -> float | None:
        times = list(self.creates.values()) + list(self.deletes.values())
        return min(times) if times else None


class SandboxSetController(Reconciler[SetKey]):
    """Event-driven SandboxSet reconciler (``--sandboxset-workers`` workers).

    SandboxSet events enqueue the set; Sandbox events enqueue the set named by
    the old object's controller reference whenever the derived state changes
    (which is how a claim triggers replenishment), and the owning set on adds
    and deletes.
    """

    stall_name = STALL_NAME
    # A reconcile that returns a back-off delay (some creates failed) keeps
    # the key's failure count; _reconcile resets it itself on full success.
    reset_backoff_on_success = False

    def __init__(self, world: World) -> None:
        super().__init__(world.ctx)
        self.world = world
        self.api = world.api
        self.cache = world.controller_cache
        self.client = world.controller_client.for_component(self.stall_name)
        self._owned: dict[str, _Owned] = {}
        self._where: dict[str, tuple[str, SandboxState]] = {}
        self._expect: dict[str, _Expectations] = {}
        # Reverse maps of the expectations: sandbox key -> set UID.
        self._create_of: dict[str, str] = {}
        self._delete_of: dict[str, str] = {}
        self._uid_of: dict[SetKey, str] = {}
        self._revisions: dict[str, tuple[int | None, str]] = {}
        self._timers: dict[str, float] = {}
        self._made: dict[str, None] = {}
        """Materialised templates created or adopted but not yet seen in the cache."""
        self._started = False
        self.cache.add_handler("SandboxSet", self._on_set)
        self.cache.add_handler("Sandbox", self._on_sandbox)
        self.cache.add_handler("SandboxTemplate", self._on_template)
        # Objects the cache held before this controller existed.
        for sbs in self.cache.list("SandboxSet"):
            self._uid_of[(sbs.metadata.namespace, sbs.metadata.name)] = sbs.metadata.uid or ""
        for sbx in self.cache.list("Sandbox"):
            self._track(sbx)

    # -- public ---------------------------------------------------------------------

    def start(self) -> None:
        """Launch the workers and enqueue every SandboxSet already cached."""
        if self._started:
            return
        self._started = True
        for sbs in self.cache.list("SandboxSet"):
            self.queue.add((sbs.metadata.namespace, sbs.metadata.name))
        self.start_workers(self.ctx.profile.sandboxset_workers)

    def counts(self, namespace: str, name: str) -> dict[str, int]:
        """The set's bookkeeping: ``creating``, ``available``, ``dead``, ``unobserved`` creates."""
        uid = self._uid_of.get((namespace, name))
        owned = self._owned.get(uid) if uid is not None else None
        exp = self._expect.get(uid) if uid is not None else None
        if exp is not None:
            exp.prune(self.ctx.now())
        return {
            "creating": len(owned.creating) if owned else 0,
            "available": len(owned.available) if owned else 0,
            "dead": len(owned.dead) if owned else 0,
            "unobserved": len(exp.creates) if exp else 0,
        }

    # -- event handlers ---------------------------------------------------------------

    def _on_set(self, event_type: str, old: Any, new: Any) -> None:
        obj = new if new is not None else old
        key = (obj.metadata.namespace, obj.metadata.name)
        if event_type == "DELETED":
            uid = self._uid_of.pop(key, None)
            if uid is not None:
                self._forget_expectations(uid)
                self._revisions.pop(uid, None)
        else:
            self._uid_of[key] = obj.metadata.uid or ""
        self.queue.add(key)

    def _on_template(self, event_type: str, old: Any, new: Any) -> None:
        # Owned templates enqueue their set (``Owns``): one deleted by hand is made again.
        obj = new if new is not None else old
        meta = obj.metadata
        self._made.pop(f"{meta.namespace}/{meta.name}", None)
        ref = meta.controller_ref()
        if ref is not None and ref.kind == "SandboxSet":
            self.queue.add((meta.namespace, ref.name))

    def _on_sandbox(self, event_type: str, old: Any, new: Any) -> None:
        obj = new if new is not None else old
        key = _skey(obj)
        self._observe(key, new)
        old_owned = old is not None and is_controlled_by_sandboxset(old)
        new_owned = new is not None and is_controlled_by_sandboxset(new)
        if not old_owned and not new_owned:
            self._untrack(key)
            return  # A claimed sandbox: no set counts it.
        prev = self._where.get(key)
        new_state: SandboxState | None = None
        if new is None:
            self._untrack(key)
        else:
            new_state = self._track(new, key, new_owned)
        if event_type == "ADDED":
            if new_owned:
                self._enqueue_owner(new)
            return
        if event_type == "DELETED":
            if old_owned:
                self._enqueue_owner(old)
            return
        if old_owned:
            now = self.ctx.now_dt()
            old_state = prev[1] if prev is not None else sandbox_state(old, now)[0]
            if new_state is None:
                new_state = sandbox_state(new, now)[0]
            if old_state is not new_state:
                self._enqueue_owner(old)
        if new_owned:
            if old_owned and old.metadata.owner_references is new.metadata.owner_references:
                return  # the same list (most writes share it): the same owner
            old_ref = old.metadata.controller_ref() if old_owned else None
            if old_ref is None or old_ref.uid != new.metadata.controller_ref().uid:
                self._enqueue_owner(new)

    def _enqueue_owner(self, sbx: Any) -> None:
        ref = sbx.metadata.controller_ref()
        self.queue.add((sbx.metadata.namespace, ref.name))

    # -- bookkeeping ------------------------------------------------------------------

    def _untrack(self, key: str) -> None:
        prev = self._where.pop(key, None)
        if prev is None:
            return
        uid, state = prev
        owned = self._owned.get(uid)
        if owned is not None:
            owned.remove(key, state)
            if owned.empty():
                del self._owned[uid]

    def _track(
        self, sbx: Any, key: str | None = None, controlled: bool | None = None
    ) -> SandboxState | None:
        """Re-file ``sbx`` in its owner's bookkeeping; return its derived state if owned.

        ``key`` and ``controlled`` (whether a SandboxSet controls ``sbx``) are
        what the caller knows already, to be worked out when ``None``.
        """
        if key is None:
            key = _skey(sbx)
        if controlled is None:
            controlled = is_controlled_by_sandboxset(sbx)
        if not controlled:
            self._untrack(key)
            return None
        uid = sbx.metadata.controller_ref().uid
        state = sandbox_state(sbx, self.ctx.now_dt())[0]
        prev = self._where.get(key)
        if prev is not None and prev[0] != uid:
            self._untrack(key)
            prev = None
        owned = self._owned.get(uid)
        if owned is None:
            owned = self._owned[uid] = _Owned()
        # Same owner: re-filed in place, so ``order`` keeps first-seen order
        # as the informer's list does.
        owned.put(key, sbx, state, prev[1] if prev is not None else None)
        self._where[key] = (uid, state)
        # When the derived state turns dead: the shutdown time in whole seconds (§9 item 10).
        shutdown = whole_seconds(sbx.spec.shutdown_time)
        if shutdown is not None and state is not SandboxState.DEAD:
            self._arm_shutdown_timer(key, self.ctx.to_seconds(shutdown))
        return state

    def _arm_shutdown_timer(self, key: str, at: float) -> None:
        # A pool sandbox turns dead by the clock alone when its shutdownTime
        # passes; upstream sees that at the next list, we re-file it then.
        if self._timers.get(key) == at:
            return
        self._timers[key] = at
        env = self.ctx.env
        # The derived state compares ``now > shutdownTime``: fire just after.
        timer = env.timeout(max(0.0, at - env.now) + 1e-6)
        timer.callbacks.append(lambda _ev: self._on_shutdown_timer(key, at))

    def _on_shutdown_timer(self, key: str, at: float) -> None:
        if self._timers.get(key) != at:
            return
        del self._timers[key]
        prev = self._where.get(key)
        if prev is None:
            return
        ns, name = key.split("/", 1)
        sbx = self.cache.get("Sandbox", ns, name)
        if sbx is None:
            return
        if self._track(sbx) is not prev[1]:
            self._enqueue_owner(sbx)

    def _observe(self, key: str, new: Any) -> None:
        # Any sight of a created sandbox observes its create; a deletion is
        # observed once the sandbox is gone, terminating, or no longer the set's.
        uid = self._create_of.pop(key, None)
        if uid is not None:
            exp = self._expect.get(uid)
            if exp is not None:
                exp.creates.pop(key, None)
        if key in self._delete_of and (
            new is None
            or new.metadata.deletion_timestamp is not None
            or not is_controlled_by_sandboxset(new)
        ):
            uid = self._delete_of.pop(key)
            exp = self._expect.get(uid)
            if exp is not None:
                exp.deletes.pop(key, None)

    def _expectations(self, uid: str) -> _Expectations:
        exp = self._expect.get(uid)
        if exp is None:
            exp = self._expect[uid] = _Expectations()
        return exp

    def _forget_expectations(self, uid: str) -> None:
        exp = self._expect.pop(uid, None)
        if exp is None:
            return
        for key in exp.creates:
            self._create_of.pop(key, None)
        for key in exp.deletes:
            self._delete_of.pop(key, None)

    def _expect_create(self, uid: str, key: str) -> None:
        self._expectations(uid).creates[key] = (
            self.ctx.now() + self.ctx.profile.expectation_timeout_s
        )
        self._create_of[key] = uid

    def _expect_delete(self, uid: str, key: str) -> None:
        self._expectations(uid).deletes[key] = (
            self.ctx.now() + self.ctx.profile.expectation_timeout_s
        )
        self._delete_of[key] = uid

    def _unexpect_delete(self, uid: str, key: str) -> None:
        exp = self._expect.get(uid)
        if exp is not None:
            exp.deletes.pop(key, None)
        self._delete_of.pop(key, None)

    # -- workers ------------------------------------------------------------------------

    # -- reconcile ----------------------------------------------------------------------

    def _revision(self, sbs: SandboxSet) -> str:
        uid = sbs.metadata.uid or ""
        gen = sbs.metadata.generation
        cached = self._revisions.get(uid)
        if cached is not None and cached[0] == gen and gen is not None:
            return cached[1]
        rev = sandboxset_revision(sbs)
        self._revisions[uid] = (gen, rev)
        return rev

    def _reconcile(self, key: SetKey) -> Op:
        """One reconcile of set ``key``; returns the requeue delay or ``None``."""
        ctx = self.ctx
        ns, name = key
        sbs: SandboxSet | None = self.cache.get("SandboxSet", ns, name)
        if sbs is None or sbs.metadata.deletion_timestamp is not None:
            return None
        uid = sbs.metadata.uid or ""
        revision = self._revision(sbs)
        if sbs.spec.template_ref is not None:
            current = sbs.spec.template_ref.name
        else:
            current = yield from self._materialize(sbs, revision)
        owned = self._owned.get(uid) or _Owned()
        exp = self._expectations(uid)
        exp.prune(ctx.now())

        counts = SetStatusCounts(
            creating=len(owned.creating),
            available=len(owned.available),
            dead=len(owned.dead),
            unobserved_creates=len(exp.creates),
        )
        replicas, available = compute_replicas(counts)
        spec = sbs.spec
        raw_delta = spec.replicas - replicas

        status = sbs.status.model_copy(deep=True)
        status.observed_generation = sbs.metadata.generation
        status.replicas = replicas
        status.available_replicas = available
        status.update_revision = revision
        status.current_revision = current
        status.selector = selector_for(sbs)
        if raw_delta == 0:
            # Upstream recomputes these only at steady size (bug #779).
            upd_available = owned.hashes.get((SandboxState.AVAILABLE, revision), 0)
            status.updated_replicas = (
                owned.hashes.get((SandboxState.CREATING, revision), 0) + upd_available
            )
            status.updated_available_replicas = upd_available

        # Expectations gate scale-down and rolling update as they stood at the
        # start of the reconcile.
        satisfied = exp.satisfied()
        set_key = f"{ns}/{name}"
        ok = True
        if raw_delta > 0:
            max_unavailable = spec.scale_strategy.max_unavailable if spec.scale_strategy else None
            delta = scale_delta(spec.replicas, counts, max_unavailable)
            if delta > 0:
                ctx.record("sandboxset.scale_up", f"{set_key} replicas={replicas} delta={delta}")
                ok = yield from self._create(sbs, uid, revision, delta)
        elif raw_delta < 0 and satisfied:
            order = scale_down_order(list(owned.order.values()), revision, ctx.now_dt())
            victims = order[:-raw_delta]
            ctx.record("sandboxset.scale_down", f"{set_key} replicas={replicas} delta={raw_delta}")
            ok = yield from self._lock_and_delete(uid, set_key, victims, "scale_down")

        # The bookkeeping moved on while we waited for the API server.
        owned = self._owned.get(uid) or _Owned()
        dead = [s for s in owned.dead.values() if s.metadata.deletion_timestamp is None]
        if dead:
            ok = (yield from self._delete_dead(uid, set_key, dead)) and ok

        if raw_delta == 0 and satisfied:
            victims = self._rolling_victims(owned, revision, sbs)
            if victims:
                ctx.record("sandboxset.rolling_update", f"{set_key} delete={len(victims)}")
                ok = (yield from self._lock_and_delete(uid, set_key, victims, "rolling")) and ok

        if not (yield from self._write_status(key, status)):
            # 409, the cache was stale: an error return, which controller-runtime
            # rate-limits whatever requeue the expectations would have asked for.
            return self._backoff(key)
        exp.prune(ctx.now())
        nxt = exp.next_expiry()
        if nxt is not None:
            return max(0.0, nxt - ctx.now())
        if not ok:
            return self._backoff(key)
        self._failures.pop(key, None)
        return None

    def _materialize(self, sbs: SandboxSet, revision: str) -> Op:
        """Make the immutable SandboxTemplate ``<set>-<revision>`` of an inline template.

        Upstream's ``template_materialize.go``: the set owns it (and adopts
        one of that name that has no controller), and keeps at most
        :data:`MAX_MATERIALIZED` (the oldest go first). Returns its name, the
        set's ``currentRevision``.
        """
        ns, name = sbs.metadata.namespace, sbs.metadata.name
        tname = f"{name}-{revision}"
        # Until the cache shows our create or adoption, do neither again.
        if f"{ns}/{tname}" not in self._made:
            cached: SandboxTemplate | None = self.cache.get("SandboxTemplate", ns, tname)
            if cached is None:
                yield from self._make_template(sbs, tname)
            elif cached.metadata.controller_ref() is None and _selects(sbs, cached):
                yield from self._adopt(sbs, cached)
        yield from self._prune_templates(sbs, tname)
        return tname

    def _make_template(self, sbs: SandboxSet, tname: str) -> Op:
        """Create the set's SandboxTemplate ``tname`` from its inline template."""
        ns, name = sbs.metadata.namespace, sbs.metadata.name
        spec = sbs.spec
        template = SandboxTemplate(
            metadata=ObjectMeta(
                name=tname,
                namespace=ns,
                labels={keys.LABEL_SANDBOX_POOL: name},
                owner_references=[sandboxset_owner_reference(sbs)],
            ),
            spec=SandboxTemplateSpec.model_construct(
                template=deep_copy(spec.template or {}),
                volume_claim_templates=deep_copy(spec.volume_claim_templates),
                persistent_contents=deep_copy(spec.persistent_contents),
                runtimes=deep_copy(spec.runtimes),
                pause_strategy=deep_copy(spec.pause_strategy),
            ),
        )
        try:
            yield from self.api.create(self.client, template)
        except ApiError as err:
            if err.reason != "AlreadyExists":
                raise
        self._made[f"{ns}/{tname}"] = None
        self.ctx.record("sandboxset.template_materialized", f"{ns}/{tname}")

    def _adopt(self, sbs: SandboxSet, tpl: SandboxTemplate) -> Op:
        """Make the set the controller of ``tpl``, a template of its revision that has none.

        An earlier set of the name deleted with ``Orphan`` propagation leaves
        its templates without an owner; taken as they are, the set's
        ``currentRevision`` would name a template that outlives it. As a
        ControllerRefManager adopts an orphan: only one its selector matches
        (the set's own ``sandbox-pool`` label, :func:`_selects`: a user's
        template of that name is not taken, nor deleted with the set), not
        one being deleted, and on the cached resourceVersion. A 409 (it changed meanwhile) or a 404 (it
        went) fails the reconcile, whose retry finds it as it then is.
        """
        meta = tpl.metadata
        if meta.deletion_timestamp is not None:
            return
        ref = sandboxset_owner_reference(sbs)

        def adopt(t: SandboxTemplate) -> None:
            t.metadata.owner_references = [*t.metadata.owner_references, ref]

        yield from self.api.patch(
            self.client,
            "SandboxTemplate",
            meta.namespace,
            meta.name,
            adopt,
            resource_version=meta.resource_version,
        )
        self._made[f"{meta.namespace}/{meta.name}"] = None
        self.ctx.record("sandboxset.template_adopted", f"{meta.namespace}/{meta.name}")

    def _prune_templates(self, sbs: SandboxSet, keep: str) -> Op:
        uid = sbs.metadata.uid or ""
        # Every reconcile asks; only a set past its limit lists its templates.
        if self.cache.index_size("SandboxTemplate", "owner-uid", uid) <= MAX_MATERIALIZED:
            return
        owned = list(self.cache.by_index("SandboxTemplate", "owner-uid", uid))
        owned.sort(key=lambda t: (t.metadata.creation_timestamp, t.metadata.name))
        excess = len(owned) - MAX_MATERIALIZED
        for tpl in [t for t in owned if t.metadata.name != keep][:excess]:
            meta = tpl.metadata
            try:
                yield from self.api.delete(
                    self.client, "SandboxTemplate", meta.namespace, meta.name
                )
            except ApiError as err:
                if not err.is_not_found:
                    raise
                # Gone already (a stale cache still lists it): nothing was pruned now.
                continue
            self.ctx.record("sandboxset.template_pruned", f"{meta.namespace}/{meta.name}")

    def _rolling_victims(self, owned: _Owned, revision: str, sbs: SandboxSet) -> list[Sandbox]:
        updated_creating = owned.hashes.get((SandboxState.CREATING, revision), 0)
        updated_available = owned.hashes.get((SandboxState.AVAILABLE, revision), 0)
        if updated_creating + updated_available == len(owned.creating) + len(owned.available):
            return []  # Everything is on the current revision: nothing to walk.
        old_creating = [s for s in owned.creating.values() if _hash(s) != revision]
        old_available = [s for s in owned.available.values() if _hash(s) != revision]
        return rolling_update_deletions(
            updated_creating,
            old_creating,
            old_available,
            sbs.spec.replicas,
            sbs.spec.update_strategy.max_unavailable,
        )

    # -- writes -------------------------------------------------------------------------

    def _slowly(self, ops: Iterator[Op], n: int, what: str, set_key: str) -> Op:
        """Run ``n`` sub-processes in waves 16, 32, ... (``DoItSlowly``); whether all succeeded.

        The sub-processes of a wave run concurrently; the waves stop after the
        first one with a failure.
        """
        ctx = self.ctx
        env = ctx.env
        for size in creation_batches(n, ctx.profile.sandboxset_initial_batch):
            ctx.record(f"sandboxset.{what}_batch", f"{set_key} size={size}")
            procs = [env.process(next(ops)) for _ in range(size)]
            yield simpy.AllOf(env, procs)
            if not all(p.value for p in procs):
                return False
        return True

    def _create(self, sbs: SandboxSet, uid: str, revision: str, n: int) -> Op:
        ns, name = sbs.metadata.namespace, sbs.metadata.name

        def ops() -> Iterator[Op]:
            while True:
                yield self._create_one(sbs, uid, revision)

        return (yield from self._slowly(ops(), n, "create", f"{ns}/{name}"))

    def _create_one(self, sbs: SandboxSet, uid: str, revision: str) -> Op:
        ns, name = sbs.metadata.namespace, sbs.metadata.name
        # A templateRef set's sandboxes keep the reference but take the labels and
        # annotations of the template it names, as its no-stock ones do (reference
        # §2, §5.2): `cleanup-enabled` there makes every sandbox of the pool recyclable.
        # A template not in the cache yet gives none (the pod waits for it anyway).
        resolved = (
            self.world.pod_template(sbs, self.cache) if sbs.spec.template_ref is not None else None
        )
        # Stored objects are never changed in place: the pool shares the template.
        sbx = new_sandbox_from_sandboxset(
            sbs,
            for_claim=False,
            revision=revision,
            share=True,
            resolved=resolved,
            keep_reference=True,
        )
        try:
            made = yield from self.api.create(self.client, sbx)
        except ApiError as err:
            self.ctx.record("sandboxset.create_failed", f"{ns}/{name} {err.code} {err.reason}")
            return False
        # The create answers before its watch event can arrive: expect it now.
        self._expect_create(uid, _skey(made))
        self.world.metrics.sandbox_created(ns, name)
        self.ctx.record("sandboxset.create", f"{ns}/{made.metadata.name} set={name}")
        return True

    def _lock_and_delete(self, uid: str, set_key: str, victims: list[Sandbox], why: str) -> Op:
        """Delete ``victims`` with the scale-down lock, in waves; whether all went."""

        ops = (self._lock_and_delete_one(uid, sbx, why) for sbx in victims)
        return (yield from self._slowly(ops, len(victims), "delete", set_key))

    def _lock_and_delete_one(self, uid: str, sbx: Sandbox, why: str) -> Op:
        ctx = self.ctx
        key = _skey(sbx)
        if not can_lock_for_scale_down(sbx):
            owner = sbx.metadata.annotations.get(keys.ANN_OWNER, "")
            ctx.record("sandboxset.lock_skipped", f"{key} owner={owner} reason={why}")
            return False
        locked = lock_for_scale_down(sbx, self.api.new_uid())
        try:
            # Optimistic lock on the cached resourceVersion: a concurrent claim
            # either wins (409 here) or loses cleanly (409 there).
            yield from self.api.update(self.client, locked)
        except ApiError as err:
            ctx.record("sandboxset.lock_failed", f"{key} {err.code} {err.reason} reason={why}")
            return False
        return (yield from self._delete_one(uid, key, why))

    def _delete_dead(self, uid: str, set_key: str, dead: list[Sandbox]) -> Op:
        ops = (self._delete_one(uid, _skey(sbx), "dead", expect=False) for sbx in dead)
        return (yield from self._slowly(ops, len(dead), "delete", set_key))

    def _delete_one(self, uid: str, key: str, why: str, *, expect: bool = True) -> Op:
        ns, name = key.split("/", 1)
        # Dead sandboxes are not counted, so their deletion gates nothing.
        if expect:
            self._expect_delete(uid, key)
        try:
            yield from self.api.delete(self.client, "Sandbox", ns, name)
        except ApiError as err:
            if expect:
                self._unexpect_delete(uid, key)
            if err.is_not_found:
                return True
            self.ctx.record("sandboxset.delete_failed", f"{key} {err.code} {err.reason}")
            return False
        self.ctx.record("sandboxset.delete", f"{key} reason={why}")
        return True

    def _write_status(self, key: SetKey, status: SandboxSetStatus) -> Op:
        """Write ``status`` if it changed (re-reading the latest cached set); False on 409.

        A 409 is not logged: most status writes of a busy set meet one (the
        cache has not shown the set's last write yet).
        """
        latest: SandboxSet | None = self.cache.get("SandboxSet", key[0], key[1])
        if latest is None or latest.status == status:
            return True
        new = latest.model_copy()
        new.status = status
        try:
            yield from self.api.update_status(self.client, new)
        except ApiError as err:
            if err.is_conflict:
                return False
            if err.is_not_found:
                return True
            raise
        self.ctx.record(
            "sandboxset.status",
            f"{key[0]}/{key[1]} replicas={status.replicas} available={status.available_replicas}",
        )
        return True


def _hash(sbx: Sandbox) -> str:
    return sbx.metadata.labels.get(keys.LABEL_TEMPLATE_HASH, "")


def _selects(sbs: SandboxSet, tpl: SandboxTemplate) -> bool:
    """Whether ``tpl`` carries the label the set gives its templates (its selector)."""
    labels = tpl.metadata.labels or {}
    return labels.get(keys.LABEL_SANDBOX_POOL) == sbs.metadata.name
