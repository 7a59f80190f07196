"""Informer caches fed by the API server's watch events, as a stateful property (hypothesis).

A ``RuleBasedStateMachine`` writes SandboxTemplates to a bare
:class:`~simulator.apiserver.ApiServer` through ``kubectl apply``'s path (creates,
label changes, finalizers, deletes that only mark, deletes that remove, writes that
change nothing), with a watch lag it sets between writes (long, short, none),
``watch_lag`` faults on one cache (open-ended or with a window, cleared one by one
or all) and time passing. Two :class:`~simulator.informer.Informer` caches are
registered from the start with secondary indexes and event handlers; a third is
registered late (it lists the store, then watches) and given an index over what
it already holds; its watch may close again (``unregister``). The indexes' rebuild threshold is lowered so that the machine
reaches it.

The model is a shared informer (client-go ``sharedIndexInformer`` over a
reflector's watch), per cache:

- the handlers see exactly the events committed for the cache's kinds since it
  was registered (its initial list as ADDED), in the order the API server
  committed them (a watch is one ordered stream per resource), none before its
  commit plus the watch lag in force at the commit; with no fault, each arrives
  at the commit plus that lag, or with the one before it if that is later;
- ``OnAdd`` sees no old object, ``OnUpdate`` the object the cache held before it
  (so a handler never sees an object older than one it saw: resourceVersions
  grow per object), ``OnDelete`` the object's last state, as the API server
  stored it;
- the cache holds what those events leave (each object at the version of its
  last event delivered), and once the faults are gone and the lag has passed it
  holds what the API server stores;
- each index agrees with a brute-force index of the cache (the objects whose
  index function gives the key), in the order the informer documents: an
  object keeps its place in a bucket while it stays under its key, and goes to
  the end when it comes back (upstream's are Go maps, in no order:
  docs/fidelity.md).

``derandomize=True`` keeps the suite deterministic (a few seconds of one core; 100 examples of
50 steps: with fewer, two of the hand mutations the machine was checked against went unseen).
``KRUISE_MACHINE_EXAMPLES`` and ``KRUISE_MACHINE_STEPS`` raise the count while hunting;
``KRUISE_MACHINE_HUNT=1`` draws at random and reports each distinct failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import simulator.informer as informer_module
from pytest_kruise_agents.api.manifest import load_manifests
from simulator import applying
from simulator.apiserver import ApiServer
from simulator.context import SimContext
from simulator.informer import Informer, ObjKey
from simulator.profile import get_profile
from tests.machines import machine_settings

KIND = "SandboxTemplate"
KEYS: tuple[ObjKey, ...] = (("default", "a"), ("default", "b"), ("default", "c"), ("other", "a"))
TAGS = ("", "x", "y", "x.y", "y.x", "x.x", "z")
"""Label values the ``tag`` index reads as dot-separated words (a repeated word, none)."""
FINALIZER = "example.com/keep"
LAGS = (0.0, 0.001, 0.01, 0.05, 0.5, 3.0)
STEPS = (0.001, 0.005, 0.02, 0.1, 0.5, 1.0, 5.0)
INFORMERS = ("agent-sandbox-controller", "sandbox-manager")
LATE = "kube-system"
"""The informer registered late (a fault may name it too)."""
QUIET = 60.0
"""More than any lag the machine sets, fault latencies included."""


def _tag(obj: Any) -> Iterable[str]:
    return [w for w in str(obj.metadata.labels.get("tags", "")).split(".") if w]


def _deleting(obj: Any) -> Iterable[str]:
    return ["deleting"] if obj.metadata.deletion_timestamp is not None else []


def _namespace(obj: Any) -> Iterable[str]:
    return [obj.metadata.namespace]


INDEXES: dict[str, Callable[[Any], Iterable[str]]] = {
    "tag": _tag,
    "deleting": _deleting,
    "namespace": _namespace,
}


def _rv(obj: Any) -> int:
    return int(obj.metadata.resource_version)


@dataclass
class Sent:
    """A watch event committed for one cache."""

    type: str
    key: ObjKey
    rv: int
    """The version it carries (a DELETED event: the object's last stored one)."""
    at: float
    lag: float


@dataclass
class Seen:
    """A watch event one cache's handler saw."""

    type: str
    key: ObjKey
    old: Any
    new: Any
    at: float


@dataclass
class Cache:
    """One informer and what the model expects of it."""

    informer: Informer
    sent: list[Sent] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    buckets: dict[str, dict[str, dict[ObjKey, None]]] = field(default_factory=dict)
    """Per index, the model's buckets in their documented order."""
    closed: bool = False
    """Unregistered: its watch closed, no event sent after reaches it."""


class InformerMachine(RuleBasedStateMachine):
    """Writes, lags and faults; every cache checked against a shared informer."""

    def __init__(self) -> None:
        super().__init__()
        self._compact_after = informer_module._COMPACT_AFTER
        informer_module._COMPACT_AFTER = 1  # a bucket read after a removal is rebuilt
        self.profile = get_profile("openkruise-head")
        self.ctx = SimContext(seed=3, profile=self.profile)
        self.env = self.ctx.env
        self.api = ApiServer(self.ctx)
        self.lag = 0.0
        self._set_lag(0.01)
        self.faulted = False
        """Whether a fault has been injected in this example (arrival times then vary)."""
        self.faults: list[str] = []
        self.caches: dict[str, Cache] = {}
        for name in INFORMERS:
            self._register(name, indexes_first=True)

    def teardown(self) -> None:
        informer_module._COMPACT_AFTER = self._compact_after

    # -- helpers --------------------------------------------------------------------------

    def _set_lag(self, lag: float) -> None:
        self.lag = lag
        self.ctx.set_profile(self.profile.with_overrides(latencies={"watch.lag": lag}))

    def _register(self, name: str, *, indexes_first: bool) -> None:
        inf = Informer(name, (KIND,))
        cache = self.caches[name] = Cache(inf)

        def handler(event_type: str, old: Any, new: Any) -> None:
            obj = new if new is not None else old
            key = (obj.metadata.namespace, obj.metadata.name)
            cache.seen.append(Seen(event_type, key, old, new, self.env.now))
            self._model_index(cache, event_type, key, new)

        inf.add_handler(KIND, handler)
        if indexes_first:
            for index, fn in INDEXES.items():
                inf.add_index(KIND, index, fn)
                cache.buckets[index] = {}
        now = self.env.now
        for key, obj in self.api._objects.get(KIND, {}).items():
            cache.sent.append(Sent("ADDED", key, _rv(obj), now, 0.0))
        self.api.register(inf)
        if not indexes_first:
            for index, fn in INDEXES.items():
                inf.add_index(KIND, index, fn)
                buckets = cache.buckets[index] = {}
                for key, obj in inf.objects(KIND).items():
                    for ikey in fn(obj):
                        buckets.setdefault(ikey, {})[key] = None

    @staticmethod
    def _model_index(cache: Cache, event_type: str, key: ObjKey, new: Any) -> None:
        for index, fn in INDEXES.items():
            buckets = cache.buckets.get(index)
            if buckets is None:
                continue
            wanted = set() if event_type == "DELETED" else set(fn(new))
            for ikey in list(buckets):
                if ikey not in wanted and key in buckets[ikey]:
                    del buckets[ikey][key]
                    if not buckets[ikey]:
                        del buckets[ikey]
            for ikey in fn(new) if event_type != "DELETED" else ():
                buckets.setdefault(ikey, {}).setdefault(key, None)

    def _sent(self, event_type: str, key: ObjKey, rv: int) -> None:
        for cache in self.caches.values():
            if cache.closed:
                continue
            cache.sent.append(Sent(event_type, key, rv, self.env.now, self.lag))

    def _settle(self) -> None:
        env = self.env
        while env.peek() <= env.now:
            env.step()

    def _run(self, step: float) -> None:
        to = self.env.now + step
        if to > self.env.now:
            self.env.run(until=to)
        self._settle()

    # -- rules ----------------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS), tags=st.sampled_from(TAGS), keep=st.booleans())
    def apply(self, key: ObjKey, tags: str, keep: bool) -> None:
        """Create the object, or change its labels and finalizers (maybe to what they are)."""
        namespace, name = key
        meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": {"tags": tags}}
        meta["finalizers"] = [FINALIZER] if keep else []
        doc = {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": KIND,
            "metadata": meta,
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img"}]}}},
        }
        before = self.api.peek(KIND, namespace, name)
        (out,) = applying.commit(self.api, applying.plan(self.api, load_manifests(doc)))
        after = self.api.peek(KIND, namespace, name)
        if before is None:
            assert after is not None
            self._sent("ADDED", key, _rv(after))
        elif after is None:
            # The last finalizer of an object marked for deletion went: it is gone.
            self._sent("DELETED", key, _rv(before))
        elif _rv(after) != _rv(before):
            self._sent("MODIFIED", key, _rv(after))
        del out

    @rule(key=st.sampled_from(KEYS))
    def delete(self, key: ObjKey) -> None:
        """Delete the object: gone at once, or marked while a finalizer holds it."""
        before = self.api.peek(KIND, *key)
        if before is None:
            return
        self.api.commit_delete(KIND, *key)
        after = self.api.peek(KIND, *key)
        if after is None:
            self._sent("DELETED", key, _rv(before))
        elif _rv(after) != _rv(before):
            self._sent("MODIFIED", key, _rv(after))

    @rule(lag=st.sampled_from(LAGS))
    def set_lag(self, lag: float) -> None:
        """The watch lag of the writes to come."""
        self._set_lag(lag)

    @rule(step=st.sampled_from(STEPS))
    def advance(self, step: float) -> None:
        self._run(step)

    @rule(
        informer=st.sampled_from((*INFORMERS, LATE)),
        latency=st.sampled_from((0.2, 2.0, 20.0)),
        window=st.sampled_from((None, 0.5, 5.0)),
    )
    def inject_watch_lag(self, informer: str, latency: float, window: float | None) -> None:
        """A ``watch_lag`` fault on one cache: open-ended, or for a window from now."""
        fields: dict[str, Any] = {
            "kind": "watch_lag",
            "latency": latency,
            "selector": {"informer": informer},
        }
        if window is not None:
            fields["start"] = self.env.now
            fields["duration"] = window
        fault = self.ctx.faults.inject(**fields)
        self.faults.append(fault.id)
        self.faulted = True

    @precondition(lambda self: bool(self.faults))
    @rule(data=st.data())
    def clear_one(self, data: st.DataObject) -> None:
        """A fault is cleared: what it held arrives now, or when it would have without it."""
        fault_id = data.draw(st.sampled_from(self.faults), label="fault")
        self.faults.remove(fault_id)
        if self.ctx.faults.get(fault_id) is not None:
            self.ctx.faults.clear(fault_id)
        self._settle()

    @precondition(lambda self: LATE not in self.caches)
    @rule()
    def register_late(self) -> None:
        """A component starts: lists the store, watches, then builds its indexes."""
        self._register(LATE, indexes_first=False)
        stored = {k: _rv(o) for k, o in self.api._objects.get(KIND, {}).items()}
        late = self.caches[LATE].informer.objects(KIND)
        assert {k: _rv(o) for k, o in late.items()} == stored  # listed at once
        self._settle()

    @precondition(lambda self: LATE in self.caches and not self.caches[LATE].closed)
    @rule()
    def unregister_late(self) -> None:
        """The late component's watch closes: the events under way still reach it, no later
        one does."""
        cache = self.caches[LATE]
        self.api.unregister(cache.informer)
        cache.closed = True

    @rule()
    def quiesce(self) -> None:
        """Every fault cleared and the lag waited out: each cache holds the store."""
        self.ctx.faults.clear()
        self.faults.clear()
        self._run(QUIET)
        stored = {k: _rv(o) for k, o in self.api._objects.get(KIND, {}).items()}
        for name, cache in self.caches.items():
            assert len(cache.seen) == len(cache.sent), name
            if cache.closed:
                continue
            cached = {k: _rv(o) for k, o in cache.informer.objects(KIND).items()}
            assert cached == stored, name

    # -- checks ---------------------------------------------------------------------------

    @invariant()
    def handlers_see_the_committed_events_in_order(self) -> None:
        for name, cache in self.caches.items():
            assert len(cache.seen) <= len(cache.sent), name
            held: dict[ObjKey, Any] = {}
            last_at = 0.0
            for i, (seen, sent) in enumerate(zip(cache.seen, cache.sent, strict=False)):
                where = f"{name} event {i}: {seen.type} {seen.key}"
                assert (seen.type, seen.key) == (sent.type, sent.key), where
                obj = seen.new if seen.type != "DELETED" else seen.old
                assert _rv(obj) == sent.rv, where
                if seen.type == "ADDED":
                    assert seen.key not in held and seen.old is None, where
                else:
                    assert seen.key in held and seen.old is held[seen.key], where
                if seen.type == "DELETED":
                    assert seen.new is None, where
                    del held[seen.key]
                else:
                    held[seen.key] = seen.new
                assert seen.at >= sent.at + sent.lag - 1e-9, where
                assert seen.at >= last_at, where
                if not self.faulted:
                    want = max(sent.at + sent.lag, last_at)
                    assert seen.at == pytest.approx(want, abs=1e-9), where
                last_at = seen.at
            cached = {k: _rv(o) for k, o in cache.informer.objects(KIND).items()}
            assert cached == {k: _rv(o) for k, o in held.items()}, name

    @invariant()
    def indexes_agree_with_a_brute_force_index(self) -> None:
        for name, cache in self.caches.items():
            inf = cache.informer
            objs = inf.objects(KIND)
            for index, fn in INDEXES.items():
                want = cache.buckets.get(index)
                if want is None:
                    continue
                brute: dict[str, set[ObjKey]] = {}
                for key, obj in objs.items():
                    for ikey in fn(obj):
                        brute.setdefault(ikey, set()).add(key)
                assert {i: set(b) for i, b in want.items()} == brute, (name, index)
                for ikey in {*brute, "x", "y", "z", "deleting", "default", "other"}:
                    got = [
                        (o.metadata.namespace, o.metadata.name)
                        for o in inf.by_index(KIND, index, ikey)
                    ]
                    assert got == list(want.get(ikey, {})), (name, index, ikey)
                    assert all(
                        objs[k] is o
                        for k, o in zip(got, inf.by_index(KIND, index, ikey), strict=True)
                    )
                    assert inf.index_size(KIND, index, ikey) == len(got), (name, index, ikey)


InformerMachine.TestCase.settings = machine_settings(100, 50)
test_informer_machine = InformerMachine.TestCase
