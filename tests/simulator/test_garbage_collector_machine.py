"""The API server's object lifecycle and garbage collector as a stateful property (hypothesis).

A ``RuleBasedStateMachine`` drives one bare :class:`~simulator.world.World` (the
API server and its informer caches, no controller that would write on its own)
the way a user drives a cluster: objects of every served kind (SandboxTemplates,
SandboxClaims, Sandboxes, SandboxSets, Pods) applied through ``kubectl apply``'s
path (``load_manifests``, then :mod:`simulator.applying`, as ``Cluster.apply``),
with drawn owner references to each other (chains, cycles, self-references,
references across namespaces), to kinds the server does not serve (a ConfigMap,
an operator's AgentRun), to served kinds at a wrong apiVersion, to owners that
are gone or never were, with and without ``controller`` and
``blockOwnerDeletion``; finalizers added and removed by apply (``orphan``,
``foregroundDeletion``, a custom one); deletes with each propagation policy, or
none (``Cluster.delete``'s ``ApiServer.commit_delete``); stale writes and
deletes with a stale ``resourceVersion`` or another object's ``uid``; time
advanced.

A model of upstream's rules (docs/fidelity.md, the garbage collector row;
``attemptToDeleteItem``, ``processDeletingDependentsItem``, ``orphanDependents``,
``deletionFinalizersForGarbageCollection``), written as the plain recursion the
API server's work queue replaces, says after every rule which objects exist,
which carry a ``deletionTimestamp``, their finalizers and which owner references
remain (with their ``blockOwnerDeletion``). It takes an owner's dependents in the
order they came to name it, as the API server does (upstream's workers take them
in none: where the cycle rule makes the outcome depend on the order, the model
follows the API server's). Checked after every rule as well, without the model:

- the store is quiet: no object marked for deletion without a finalizer, none
  still holding ``orphan``, no live object with an owner reference that is
  neither live nor unserved (a dependent whose every owner is gone was
  collected, unless orphaned), every object held by ``foregroundDeletion`` has a
  dependent still blocking it and no live one;
- an object's ``resourceVersion`` never goes back, and every write of it gives
  a greater one; a removed uid never comes back;
- the API server's own books agree with the store: the owner index
  (``_dependents``) holds exactly the references stored to each stored owner
  (and none that is not stored), the foreground book (``_foreground``) every
  object held by ``foregroundDeletion`` and only objects that were, the
  per-namespace lists the same objects, and the GC's work queue is empty;
- a write or delete with a stale ``resourceVersion`` answers 409 and changes
  nothing; after time passes, every informer cache holds what the store holds.

``derandomize=True`` keeps the suite deterministic (about 10 s of one core).
``KRUISE_MACHINE_EXAMPLES`` and ``KRUISE_MACHINE_STEPS`` raise the count while
hunting; ``KRUISE_MACHINE_HUNT=1`` draws at random and reports each distinct
failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pytest_kruise_agents.api.copying import deep_copy
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import API_VERSIONS, load_manifests
from simulator import applying
from simulator.apiserver import FOREGROUND, ORPHAN, ApiError, Propagation, UIDConflictError
from simulator.context import SimContext
from simulator.errors import ConflictError
from simulator.profile import get_profile
from simulator.world import World
from tests.machines import machine_settings

KINDS = ("SandboxTemplate", "SandboxClaim", "Sandbox", "SandboxSet", "Pod")
KEYS: tuple[tuple[str, str, str], ...] = (
    *((kind, "default", name) for kind in KINDS for name in ("a", "b")),
    ("SandboxTemplate", "other", "a"),
    ("Sandbox", "other", "a"),
)
"""The objects the machine may make: two of each kind, two in a second namespace."""
CUSTOM = "example.com/keep"
FINALIZER_SETS: tuple[tuple[str, ...], ...] = (
    (),
    (),
    (CUSTOM,),
    (ORPHAN,),
    (FOREGROUND,),
    (CUSTOM, ORPHAN),
    (FOREGROUND, CUSTOM),
    (ORPHAN, FOREGROUND),  # refused at apply
)
UNSERVED = (("v1", "ConfigMap"), ("example.com/v1", "AgentRun"))
"""Owners of kinds the fake cluster does not serve: always live."""
WRONG_VERSIONS = ("v1", "agents.kruise.io/v1beta1", "apps/v1")
"""apiVersions no served kind is served at (but a Pod at ``v1``)."""
POLICIES: tuple[Propagation | None, ...] = (None, None, "Background", "Foreground", "Orphan")
_CONTAINERS = {"containers": [{"name": "c", "image": "img"}]}

SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"
_FAKE = "6f1c2a9e-0000-4000-8000-"
"""The prefix of the uids of owners that never were."""


@dataclass
class Ref:
    """An owner reference as the model keeps it."""

    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None
    block: bool | None

    def doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
        }
        if self.controller is not None:
            out["controller"] = self.controller
        if self.block is not None:
            out["blockOwnerDeletion"] = self.block
        return out

    def served(self) -> bool:
        return API_VERSIONS.get(self.kind) == self.api_version


@dataclass
class Obj:
    """A stored object as the model expects it."""

    kind: str
    namespace: str
    name: str
    uid: str
    finalizers: list[str]
    refs: list[Ref]
    deleting: bool = False
    deleting_dependents: bool = False
    """Once marked for deletion with ``foregroundDeletion`` (upstream's graph node flag,
    ``markDeletingDependents``, set one way): it may stay in the API server's book."""
    filed: dict[str, int] = field(default_factory=dict)
    """Per owner uid, when the object came to name it: the API server takes an owner's
    dependents in that order (docs/fidelity.md: upstream's workers take them in none)."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.namespace, self.name)


def _manifest(
    key: tuple[str, str, str], finalizers: list[str] | None, refs: list[Ref] | None
) -> dict[str, Any]:
    kind, namespace, name = key
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if finalizers is not None:
        meta["finalizers"] = list(finalizers)
    if refs is not None:
        meta["ownerReferences"] = [r.doc() for r in refs]
    spec: dict[str, Any]
    if kind == "Pod":
        spec = deep_copy(_CONTAINERS)
    elif kind == "SandboxClaim":
        spec = {"templateName": "nothing"}
    elif kind == "SandboxSet":
        spec = {"replicas": 0, "template": {"spec": deep_copy(_CONTAINERS)}}
    else:
        spec = {"template": {"spec": deep_copy(_CONTAINERS)}}
    return {"apiVersion": API_VERSIONS[kind], "kind": kind, "metadata": meta, "spec": spec}


def _propagated(finalizers: list[str], policy: Propagation) -> list[str]:
    kept = [f for f in finalizers if f not in (ORPHAN, FOREGROUND)]
    if policy == "Orphan":
        kept.append(ORPHAN)
    elif policy == "Foreground":
        kept.append(FOREGROUND)
    return finalizers if set(kept) == set(finalizers) else kept


@dataclass
class Model:
    """Upstream's garbage collector as a plain recursion over the expected store."""

    objs: dict[tuple[str, str, str], Obj] = field(default_factory=dict)
    gone: set[str] = field(default_factory=set)
    """Uids of the objects removed."""
    clock: int = 0

    def file(self, o: Obj) -> None:
        """Note when ``o`` came to name each owner it names now."""
        for ref in o.refs:
            if ref.uid not in o.filed:
                self.clock += 1
                o.filed[ref.uid] = self.clock
        for uid in [u for u in o.filed if all(r.uid != u for r in o.refs)]:
            del o.filed[uid]

    # -- reads ----------------------------------------------------------------------

    def by_uid(self, uid: str) -> Obj | None:
        for o in self.objs.values():
            if o.uid == uid:
                return o
        return None

    def dependents(self, uid: str) -> list[Obj]:
        """The objects naming ``uid`` as an owner, in the order they came to name it."""
        deps = [o for o in self.objs.values() if any(r.uid == uid for r in o.refs)]
        return sorted(deps, key=lambda o: o.filed[uid])

    @staticmethod
    def waiting(o: Obj) -> bool:
        return o.deleting and FOREGROUND in o.finalizers

    def state(self, ref: Ref, namespace: str) -> str:
        """``classifyReferences`` of one reference, resolved in the dependent's namespace."""
        if not ref.served():
            return SOLID
        owner = self.objs.get((ref.kind, namespace, ref.name))
        if owner is None or owner.uid != ref.uid:
            return DANGLING
        return WAITING if self.waiting(owner) else SOLID

    # -- the rules --------------------------------------------------------------------

    def remove(self, o: Obj) -> None:
        del self.objs[o.key]
        self.gone.add(o.uid)
        for dep in self.dependents(o.uid):
            self.attempt(dep.key, dep.uid)
        for ref in o.refs:
            if ref.block:
                self.finish_foreground(ref.uid)

    def delete(self, key: tuple[str, str, str], policy: Propagation | None) -> None:
        """A delete (the user's or the GC's): ``deletionFinalizersForGarbageCollection``,
        then the GC's reaction to a finalizer of its own newly set."""
        o = self.objs[key]
        finalizers = o.finalizers if policy is None else _propagated(o.finalizers, policy)
        if not finalizers:
            self.remove(o)
            return
        if o.deleting and set(finalizers) == set(o.finalizers):
            return
        before = o.finalizers if o.deleting else []
        o.finalizers = list(finalizers)
        o.deleting = True
        if ORPHAN in finalizers and ORPHAN not in before:
            for dep in self.dependents(o.uid):
                self.set_refs(dep, [r for r in dep.refs if r.uid != o.uid])
            self.drop_finalizer(o, ORPHAN)
        if FOREGROUND in finalizers and FOREGROUND not in before:
            o.deleting_dependents = True
            for dep in self.dependents(o.uid):
                self.attempt(dep.key, dep.uid)
            self.finish_foreground(o.uid)

    def attempt(self, key: tuple[str, str, str], uid: str) -> None:
        """``attemptToDeleteItem``."""
        o = self.objs.get(key)
        if o is None or o.uid != uid or o.deleting or not o.refs:
            return
        states = [self.state(r, o.namespace) for r in o.refs]
        if SOLID in states:
            stale = {r.uid for r, s in zip(o.refs, states, strict=True) if s != SOLID}
            if stale:
                self.set_refs(o, [r for r in o.refs if r.uid not in stale])
            return
        policy: Propagation | None = None
        if WAITING in states and self.dependents(o.uid):
            policy = "Foreground"
        self.delete(key, policy)
        if policy is not None:
            # The cycle rule (after the delete here: docs/fidelity.md).
            held = self.objs.get(key)
            if (
                held is not None
                and held.uid == uid
                and any(self.waiting(d) for d in self.dependents(uid))
            ):
                self.set_refs(held, [_unblocked(r) for r in held.refs])

    def finish_foreground(self, uid: str) -> None:
        """``processDeletingDependentsItem``: no blocking dependent left, drop the finalizer."""
        o = self.by_uid(uid)
        if o is None or not self.waiting(o):
            return
        for dep in self.dependents(uid):
            if any(r.uid == uid and r.block for r in dep.refs):
                return
        self.drop_finalizer(o, FOREGROUND)

    def drop_finalizer(self, o: Obj, finalizer: str) -> None:
        if finalizer not in o.finalizers:
            return
        o.finalizers = [f for f in o.finalizers if f != finalizer]
        if o.deleting and not o.finalizers:
            self.remove(o)

    def set_refs(self, o: Obj, refs: list[Ref]) -> bool:
        """New owner references (a write); whether one names an owner the object had not
        (a new uid, or another kind, apiVersion or name under a uid it had)."""
        old = o.refs
        o.refs = refs
        self.file(o)
        for ref in old:
            if ref.block and not any(r.uid == ref.uid and r.block for r in refs):
                self.finish_foreground(ref.uid)
        return any(all(_owner(r) != _owner(n) for r in old) for n in refs)

    def look_at(self, key: tuple[str, str, str], uid: str) -> None:
        """The GC's look at an object given a new owner: collected if one is not live."""
        o = self.objs.get(key)
        if (
            o is not None
            and o.uid == uid
            and any(self.state(r, o.namespace) != SOLID for r in o.refs)
        ):
            self.attempt(key, uid)


def _owner(ref: Ref) -> tuple[str, str, str, str]:
    """Who a reference names: a reference naming another under the same uid is a new owner."""
    return (ref.uid, ref.kind, ref.api_version, ref.name)


def _unblocked(ref: Ref) -> Ref:
    if not ref.block:
        return ref
    return Ref(ref.api_version, ref.kind, ref.name, ref.uid, ref.controller, False)


class GarbageCollectorMachine(RuleBasedStateMachine):
    """Objects owning each other, finalizers and deletes; the store checked against the model."""

    def __init__(self) -> None:
        super().__init__()
        self.world = World(SimContext(seed=7, profile=get_profile("openkruise-head")))
        self.api = self.world.api
        self.model = Model()
        self.seen_uids: dict[tuple[str, str, str], list[str]] = {}
        """Every uid an object of the key had, oldest first."""
        self.versions: dict[str, tuple[int, Any]] = {}
        """Per uid: the last resourceVersion seen and the stored object it was seen on."""
        self.old_versions: dict[str, list[str]] = {}
        """Per uid: the resourceVersions it had before its current one."""

    # -- drawing -------------------------------------------------------------------------

    def _draw_refs(self, data: st.DataObject, key: tuple[str, str, str]) -> list[Ref]:
        count = data.draw(st.sampled_from((0, 1, 1, 1, 2, 2, 3)), label="owners")
        refs: list[Ref] = []
        has_controller = False
        for _ in range(count):
            ref = self._draw_ref(data, key)
            if any(r.uid == ref.uid for r in refs):
                continue
            if ref.controller and has_controller:
                ref.controller = False
            has_controller = has_controller or bool(ref.controller)
            refs.append(ref)
        return refs

    def _draw_ref(self, data: st.DataObject, key: tuple[str, str, str]) -> Ref:
        """An owner reference: mostly to an object stored in the dependent's namespace (itself
        included); else to one gone or never made, to one in the other namespace, or under an
        unserved kind or a wrong apiVersion (with the uid of an object stored or gone)."""
        how = data.draw(
            st.sampled_from(("live",) * 6 + ("gone", "other-ns", "unserved", "version")),
            label="owner",
        )
        stored = sorted(k for k in self.model.objs if how == "other-ns" or k[1] == key[1])
        if how == "gone" or not stored:
            kind, namespace, name = data.draw(
                st.sampled_from([k for k in KEYS if k[1] == key[1]]), label="gone key"
            )
            fake = data.draw(st.integers(0, 9), label="fake")
            uids = [*self.seen_uids.get((kind, namespace, name), []), f"{_FAKE}{fake:012d}"]
            uid = data.draw(st.sampled_from(uids), label="gone uid")
        else:
            kind, namespace, name = data.draw(st.sampled_from(stored), label="owner key")
            uid = self.model.objs[(kind, namespace, name)].uid
        api_version = API_VERSIONS[kind]
        if how == "unserved":
            api_version, kind = data.draw(st.sampled_from(UNSERVED), label="unserved")
        elif how == "version":
            api_version = data.draw(
                st.sampled_from([v for v in WRONG_VERSIONS if v != api_version]), label="version"
            )
        flags = st.sampled_from((None, False, True))
        return Ref(
            api_version,
            kind,
            name,
            uid,
            data.draw(flags, label="controller"),
            data.draw(flags, label="blockOwnerDeletion"),
        )

    # -- acting -------------------------------------------------------------------------

    def _apply(self, doc: dict[str, Any]) -> Any:
        objs = load_manifests(doc)
        (out,) = applying.commit(self.api, applying.plan(self.api, objs))
        return out

    def _settle(self) -> None:
        """Run what this instant holds (the GC's look at an object made for an owner gone)."""
        env = self.world.ctx.env
        now = env.now
        while env.peek() <= now:
            env.step()

    @rule(data=st.data(), key=st.sampled_from(KEYS), finalizers=st.sampled_from(FINALIZER_SETS))
    def apply(
        self, data: st.DataObject, key: tuple[str, str, str], finalizers: tuple[str, ...]
    ) -> None:
        """Apply an object with drawn owners and finalizers: a create, or an update that states
        both (its finalizers and owner references replace the stored ones)."""
        refs = self._draw_refs(data, key)
        existing = self.model.objs.get(key)
        doc = _manifest(key, list(finalizers), refs)
        refused = ORPHAN in finalizers and FOREGROUND in finalizers
        if existing is not None and existing.deleting:
            refused = refused or any(f not in existing.finalizers for f in finalizers)
        if refused:
            with pytest.raises(InvalidError):
                self._apply(doc)
            return
        out = self._apply(doc)
        self._after_write(key, out, list(finalizers), refs)

    def _stored_key(self, data: st.DataObject) -> tuple[str, str, str] | None:
        """One of the objects stored (as the model has them), or None if there is none."""
        if not self.model.objs:
            return None
        return data.draw(st.sampled_from(sorted(self.model.objs)), label="object")

    @rule(data=st.data())
    def edit_owners(self, data: st.DataObject) -> None:
        """Apply the object with its owner references edited: one removed, added, or its
        ``blockOwnerDeletion`` or its kind, apiVersion or name changed under the same uid;
        finalizers not stated (kept)."""
        key = self._stored_key(data)
        if key is None:
            return
        existing = self.model.objs[key]
        refs = [Ref(**vars(r)) for r in existing.refs]
        how = data.draw(st.sampled_from(("drop", "add", "flip", "retarget")), label="edit")
        if how == "add" or not refs:
            new = self._draw_ref(data, key)
            if any(r.uid == new.uid for r in refs):
                return
            if new.controller and any(r.controller for r in refs):
                new.controller = False
            refs.append(new)
        else:
            i = data.draw(st.integers(0, len(refs) - 1), label="which")
            if how == "drop":
                del refs[i]
            elif how == "flip":
                refs[i].block = not refs[i].block
            else:
                kind, _, name = data.draw(
                    st.sampled_from([k for k in KEYS if k[1] == key[1]]), label="retarget"
                )
                unserved = data.draw(st.booleans(), label="unserved")
                refs[i].api_version, refs[i].kind = (
                    data.draw(st.sampled_from(UNSERVED)) if unserved else (API_VERSIONS[kind], kind)
                )
                refs[i].name = name
        out = self._apply(_manifest(key, None, refs))
        self._after_write(key, out, None, refs)

    @rule(data=st.data(), keep=st.sampled_from((0, 1, 2)))
    def remove_finalizers(self, data: st.DataObject, keep: int) -> None:
        """Apply an object with fewer finalizers (the first ``keep``): a deletion they held
        completes when none is left."""
        key = self._stored_key(data)
        existing = None if key is None else self.model.objs[key]
        if key is None or existing is None or len(existing.finalizers) <= keep:
            return
        kept = existing.finalizers[:keep]
        out = self._apply(_manifest(key, kept, None))
        self._after_write(key, out, kept, None)

    def _after_write(
        self,
        key: tuple[str, str, str],
        out: Any,
        finalizers: list[str] | None,
        refs: list[Ref] | None,
    ) -> None:
        model = self.model
        existing = model.objs.get(key)
        uid = out.metadata.uid
        if existing is None:
            assert uid not in model.gone
            made = Obj(*key, uid=uid, finalizers=list(finalizers or []), refs=list(refs or []))
            model.objs[key] = made
            model.file(made)
            self.seen_uids.setdefault(key, []).append(uid)
            if made.refs:
                self._settle()
                model.look_at(key, uid)
            return
        assert uid == existing.uid
        if finalizers is not None and existing.deleting and not finalizers:
            model.remove(existing)  # the update completes the deletion
            return
        if finalizers is not None:
            existing.finalizers = list(finalizers)
        if refs is not None and [vars(r) for r in refs] != [vars(r) for r in existing.refs]:
            adopted = model.set_refs(existing, refs)
            self._settle()
            if adopted:
                model.look_at(key, uid)

    @rule(data=st.data(), policy=st.sampled_from(POLICIES))
    def delete(self, data: st.DataObject, policy: Propagation | None) -> None:
        """Delete an object (mostly one that owns others) with a propagation policy (``None``:
        its own finalizers decide); one not stored answers 404."""
        owners = sorted(o.key for o in self.model.objs.values() if self.model.dependents(o.uid))
        which = data.draw(st.integers(0, 9), label="which")
        if owners and which >= 4:
            key: tuple[str, str, str] | None = data.draw(st.sampled_from(owners), label="owner")
        else:
            key = self._stored_key(data) if which else None
        if key is None:
            key = data.draw(st.sampled_from(KEYS), label="key")
        if key not in self.model.objs:
            with pytest.raises(ApiError) as err:
                self.api.commit_delete(*key, propagation=policy)
            assert err.value.is_not_found
            return
        self.api.commit_delete(*key, propagation=policy)
        self._settle()
        self.model.delete(key, policy)

    @rule(data=st.data())
    def stale_writes(self, data: st.DataObject) -> None:
        """A write or a delete on a resourceVersion the object has moved past answers 409;
        a delete naming a uid the name had before answers 409 too; nothing changes."""
        key = self._stored_key(data)
        if key is None:
            return
        stored = self.api.peek(*key)
        assert stored is not None
        writes = self.api.writes
        assert stored.metadata.uid is not None  # every stored object has one
        older = self.old_versions.get(stored.metadata.uid, [])
        if older:
            stale = deep_copy(stored)
            stale.metadata.resource_version = older[-1]
            stale.metadata.labels["touched"] = "yes"
            with pytest.raises(ApiError) as err:
                self.api.commit_update(stale)
            assert err.value.is_conflict
            with pytest.raises(ApiError) as err:
                self.api.commit_delete(*key, resource_version=older[0])
            assert err.value.is_conflict
            doc = _manifest(key, None, None)
            doc["metadata"]["resourceVersion"] = older[-1]
            with pytest.raises(ConflictError):
                self._apply(doc)
        previous = [u for u in self.seen_uids.get(key, []) if u != stored.metadata.uid]
        if previous:
            with pytest.raises(UIDConflictError):
                self.api.commit_delete(*key, uid=previous[-1])
        assert self.api.writes == writes
        assert self.api.peek(*key) is stored

    @rule(seconds=st.sampled_from((0.5, 5.0, 60.0)))
    def advance(self, seconds: float) -> None:
        """Let time pass: every watch event reaches every cache, which then holds the store."""
        env = self.world.ctx.env
        env.run(until=env.now + seconds)
        for informer in (self.world.controller_cache, self.world.manager_cache):
            for kind in informer.kinds:
                cached = {k: o.metadata.resource_version for k, o in informer.objects(kind).items()}
                stored = {
                    (o.metadata.namespace, o.metadata.name): o.metadata.resource_version
                    for o in self.api.peek_list(kind)
                }
                assert cached == stored, (informer.name, kind)

    # -- checks --------------------------------------------------------------------------

    @invariant()
    def store_is_the_model(self) -> None:
        """Which objects exist, marked or not, with which finalizers and owner references."""
        model = self.model
        stored = {
            (kind, o.metadata.namespace, o.metadata.name): o
            for kind in KINDS
            for o in self.api.peek_list(kind)
        }
        assert set(stored) == set(model.objs), (sorted(stored), sorted(model.objs))
        for key, o in stored.items():
            want = model.objs[key]
            meta = o.metadata
            assert meta.uid == want.uid, key
            assert (meta.deletion_timestamp is not None) == want.deleting, key
            assert sorted(meta.finalizers) == sorted(want.finalizers), (key, meta.finalizers)
            got_refs = [
                (r.api_version, r.kind, r.name, r.uid, r.controller, r.block_owner_deletion)
                for r in meta.owner_references
            ]
            want_refs = [
                (r.api_version, r.kind, r.name, r.uid, r.controller, r.block) for r in want.refs
            ]
            assert got_refs == want_refs, (key, got_refs, want_refs)

    @invariant()
    def the_store_is_quiet(self) -> None:
        """What the GC leaves: nothing it would still act on (checked on the store alone)."""
        model = self.model
        for o in model.objs.values():
            if o.deleting:
                assert o.finalizers, o.key
                assert ORPHAN not in o.finalizers, o.key
            else:
                for r in o.refs:
                    assert model.state(r, o.namespace) == SOLID, (o.key, r)
            if model.waiting(o):
                deps = model.dependents(o.uid)
                assert any(any(r.uid == o.uid and r.block for r in d.refs) for d in deps), o.key
                assert all(
                    d.deleting for d in deps if any(r.uid == o.uid and r.served() for r in d.refs)
                ), o.key

    @invariant()
    def versions_only_grow(self) -> None:
        """Each write of an object gives it a greater resourceVersion; none goes back."""
        for kind in KINDS:
            for o in self.api.peek_list(kind):
                uid, version = o.metadata.uid, o.metadata.resource_version
                assert uid is not None and version is not None  # set on every stored object
                rv = int(version)
                assert rv <= self.api._rv
                last = self.versions.get(uid)
                if last is not None:
                    if last[1] is o:
                        assert last[0] == rv
                    else:
                        assert rv > last[0], (uid, rv, last[0])
                        self.old_versions.setdefault(uid, []).append(str(last[0]))
                self.versions[uid] = (rv, o)

    @invariant()
    def the_books_agree(self) -> None:
        """The owner index, the foreground book and the namespace lists hold what is stored."""
        api = self.api
        want: dict[str, set[tuple[str, str, str]]] = {}
        for o in self.model.objs.values():
            for r in o.refs:
                want.setdefault(r.uid, set()).add(o.key)
        live = {o.uid for o in self.model.objs.values()}
        for uid, deps in api._dependents.items():
            # An owner's entry goes with it: a dependent it leaves (one whose reference to it
            # is unserved, or being deleted) is filed under it no more.
            assert set(deps) <= want.get(uid, set()), uid
        for uid in live:
            assert set(api._dependents.get(uid, {})) == want.get(uid, set()), uid
        # Each object held by ``foregroundDeletion`` is in the book; one whose foreground
        # deletion a later delete called off may stay (upstream's node flag stays set).
        objs = self.model.objs.values()
        assert {o.uid for o in objs if self.model.waiting(o)} <= set(api._foreground)
        assert set(api._foreground) <= {o.uid for o in objs if o.deleting_dependents}
        assert not api._gc_work and not api._collecting
        for kind in KINDS:
            everywhere = api.peek_list(kind)
            by_namespace = [o for ns in ("default", "other") for o in api.peek_list(kind, ns)]
            assert sorted(id(o) for o in everywhere) == sorted(id(o) for o in by_namespace)


GarbageCollectorMachine.TestCase.settings = machine_settings(300, 40)
test_garbage_collector = GarbageCollectorMachine.TestCase
