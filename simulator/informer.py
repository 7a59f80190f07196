"""Informer caches: each component's eventually consistent view of the API server.

Watch events reach a cache after a propagation lag, in order, so components
read stale objects exactly as controllers and the sandbox-manager do against
a real API server; that staleness is what makes optimistic-lock conflicts real.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, overload

if TYPE_CHECKING:
    from pytest_kruise_agents.api.manifest import KubeObject
    from pytest_kruise_agents.api.pod import Pod
    from pytest_kruise_agents.api.sandbox import Sandbox
    from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
    from pytest_kruise_agents.api.sandboxset import SandboxSet
    from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate

__all__ = ["Handler", "IndexFunc", "Informer", "ObjKey"]

ObjKey = tuple[str, str]
"""(namespace, name)."""

Handler = Callable[[str, Any, Any], None]
"""``handler(event_type, old, new)`` with event_type ADDED, MODIFIED or DELETED."""

IndexFunc = Callable[[Any], Iterable[str]]

_COMPACT_AFTER = 4096
"""Removals after which an index bucket read is rebuilt first without the slots they vacated."""


class _Index:
    """One secondary index: index key -> the objects under it, in insertion order.

    An object keeps its place in a bucket while it stays under that key (an
    update replaces it in place); it moves to the end only by leaving and
    coming back.

    A bucket is rebuilt when it is read after many removals
    (:meth:`compacted`). Claims read a pool's bucket from the front (the
    first 100 candidates) while its front entries are the ones taken away,
    and a dict keeps a removed entry's slot, which iteration walks over,
    until the dict next grows: a busy pool of 100,000 had up to a few
    hundred thousand vacated slots in front of its first candidate, walked
    on every claim. A bucket nobody reads is never rebuilt: each rebuild is a
    fresh dict the garbage collector must walk (and, with a pool's worth of
    entries, each walk reaches 100,000 objects spread over the heap).
    """

    __slots__ = ("buckets", "fn", "keys_of", "removals")

    def __init__(self, fn: IndexFunc) -> None:
        self.fn = fn
        self.buckets: dict[str, dict[ObjKey, Any]] = {}
        self.keys_of: dict[ObjKey, tuple[str, ...]] = {}
        self.removals: dict[str, int] = {}
        """Removals from each bucket since it was last built."""

    def remove(self, key: ObjKey) -> None:
        for ikey in self.keys_of.pop(key, ()):
            self._drop(ikey, key)

    def _drop(self, ikey: str, key: ObjKey) -> None:
        bucket = self.buckets.get(ikey)
        if bucket is None:
            return
        bucket.pop(key, None)
        if bucket:
            self.removals[ikey] = self.removals.get(ikey, 0) + 1
        else:
            del self.buckets[ikey]
            self.removals.pop(ikey, None)

    def put(self, key: ObjKey, obj: Any) -> None:
        new_keys = tuple(self.fn(obj))
        old_keys = self.keys_of.get(key, ())
        if old_keys != new_keys:
            for ikey in old_keys:
                if ikey not in new_keys:
                    self._drop(ikey, key)
            for ikey in new_keys:
                self.buckets.setdefault(ikey, {})[key] = obj
            if new_keys:
                self.keys_of[key] = new_keys
            else:
                self.keys_of.pop(key, None)
        else:
            for ikey in new_keys:
                self.buckets[ikey][key] = obj

    def compacted(self, ikey: str) -> dict[ObjKey, Any] | None:
        """The bucket of ``ikey``, rebuilt first if ``_COMPACT_AFTER`` removals left their slots."""
        bucket = self.buckets.get(ikey)
        if bucket is not None and self.removals.get(ikey, 0) >= _COMPACT_AFTER:
            bucket = self.buckets[ikey] = dict(bucket)  # a fresh dict: no vacated slots
            self.removals[ikey] = 0
        return bucket


class Informer:
    """A per-component cache of some kinds, with secondary indexes and event handlers.

    Objects in the cache are shared with the API server and must never be
    mutated: copy before changing (``model_copy(deep=True)``).
    """

    def __init__(self, name: str, kinds: Iterable[str]) -> None:
        self.name = name
        self.kinds = tuple(kinds)
        self._store: dict[str, dict[ObjKey, Any]] = {k: {} for k in self.kinds}
        # Each kind's cache seen through a read-only proxy, made once: the dicts
        # are never replaced, so the proxies stay live.
        self._views: dict[str, Mapping[ObjKey, Any]] = {
            k: MappingProxyType(d) for k, d in self._store.items()
        }
        self._indexes: dict[str, dict[str, _Index]] = {k: {} for k in self.kinds}
        self._index_list: dict[str, list[_Index]] = {k: [] for k in self.kinds}
        """The same indexes per kind as a list: each watch event updates them all."""
        self._handlers: dict[str, list[Handler]] = {k: [] for k in self.kinds}
        self.last_delivery = 0.0

    def wants(self, kind: str) -> bool:
        """Whether this informer watches ``kind``."""
        return kind in self._store

    def add_index(self, kind: str, name: str, fn: IndexFunc) -> None:
        """Maintain an index ``name`` over ``kind``: ``fn(obj)`` gives the keys."""
        idx = _Index(fn)
        for key, obj in self._store[kind].items():
            idx.put(key, obj)
        self._indexes[kind][name] = idx
        self._index_list[kind].append(idx)

    def add_handler(self, kind: str, fn: Handler) -> None:
        """Call ``fn(event_type, old, new)`` after each event of ``kind`` is applied."""
        self._handlers[kind].append(fn)

    def apply(self, event_type: str, kind: str, old: Any, new: Any, _event: object = None) -> None:
        """Apply one watch event to the cache, the indexes, then the handlers.

        ``_event`` is ignored: the timer of a watch event in flight calls this
        with its SimPy event, as the callback it is.
        """
        store = self._store[kind]
        meta = (new if new is not None else old).metadata
        key = (meta.namespace, meta.name)
        cached = store.get(key)
        if event_type == "DELETED":
            store.pop(key, None)
            for idx in self._index_list[kind]:
                idx.remove(key)
        else:
            store[key] = new
            for idx in self._index_list[kind]:
                idx.put(key, new)
        # Handlers see the object as this cache last knew it (``old``) and the
        # new one; a DELETED event has no new object.
        old_seen = cached if cached is not None else old
        for fn in self._handlers[kind]:
            fn(event_type, old_seen, new)

    @overload
    def get(self, kind: Literal["Sandbox"], namespace: str, name: str) -> Sandbox | None: ...
    @overload
    def get(self, kind: Literal["SandboxSet"], namespace: str, name: str) -> SandboxSet | None: ...
    @overload
    def get(
        self, kind: Literal["SandboxClaim"], namespace: str, name: str
    ) -> SandboxClaim | None: ...
    @overload
    def get(
        self, kind: Literal["SandboxTemplate"], namespace: str, name: str
    ) -> SandboxTemplate | None: ...
    @overload
    def get(self, kind: Literal["Pod"], namespace: str, name: str) -> Pod | None: ...
    @overload
    def get(self, kind: str, namespace: str, name: str) -> KubeObject | None: ...
    def get(self, kind: str, namespace: str, name: str) -> Any | None:
        """The cached object, or ``None``.

        Typed as the kind's model when ``kind`` (a kind's name, as the informer
        watches it) is written out: ``"Sandbox"`` gives a :class:`Sandbox`,
        ``"SandboxSet"`` a :class:`SandboxSet`, ``"SandboxClaim"`` a
        :class:`SandboxClaim`, ``"SandboxTemplate"`` a :class:`SandboxTemplate`,
        ``"Pod"`` a :class:`Pod`; any other ``str`` gives any stored object
        (:data:`KubeObject`). ``| None`` either way.
        """
        return self._store[kind].get((namespace, name))

    @overload
    def objects(self, kind: Literal["Sandbox"]) -> Mapping[ObjKey, Sandbox]: ...
    @overload
    def objects(self, kind: Literal["SandboxSet"]) -> Mapping[ObjKey, SandboxSet]: ...
    @overload
    def objects(self, kind: Literal["SandboxClaim"]) -> Mapping[ObjKey, SandboxClaim]: ...
    @overload
    def objects(self, kind: Literal["SandboxTemplate"]) -> Mapping[ObjKey, SandboxTemplate]: ...
    @overload
    def objects(self, kind: Literal["Pod"]) -> Mapping[ObjKey, Pod]: ...
    @overload
    def objects(self, kind: str) -> Mapping[ObjKey, KubeObject]: ...
    def objects(self, kind: str) -> Mapping[ObjKey, Any]:
        """The cache of ``kind`` itself, by ``(namespace, name)``: live, and read-only (a
        ``MappingProxyType``: a write through it raises ``TypeError``, so no caller can
        take an object out of the cache and leave it in the indexes).

        Its values are typed as :meth:`get`'s (``"Pod"``: a mapping to :class:`Pod`).

        For a reader that looks up objects of one kind on every reconcile:
        ``objects(kind).get(key)`` is :meth:`get` without its call. Being live, it
        changes as the model runs: iterate a copy across an advance.
        """
        return self._views[kind]

    @overload
    def list(
        self, kind: Literal["Sandbox"], namespace: str | None = None
    ) -> builtins.list[Sandbox]: ...
    @overload
    def list(
        self, kind: Literal["SandboxSet"], namespace: str | None = None
    ) -> builtins.list[SandboxSet]: ...
    @overload
    def list(
        self, kind: Literal["SandboxClaim"], namespace: str | None = None
    ) -> builtins.list[SandboxClaim]: ...
    @overload
    def list(
        self, kind: Literal["SandboxTemplate"], namespace: str | None = None
    ) -> builtins.list[SandboxTemplate]: ...
    @overload
    def list(self, kind: Literal["Pod"], namespace: str | None = None) -> builtins.list[Pod]: ...
    @overload
    def list(self, kind: str, namespace: str | None = None) -> builtins.list[KubeObject]: ...
    def list(
        self, kind: str, namespace: str | None = None
    ) -> builtins.list[Any]:  # list is invariant: the overloads say what it holds
        """Cached objects of ``kind`` (all namespaces when ``namespace`` is None).

        Typed as :meth:`get` is: ``"Sandbox"`` gives ``list[Sandbox]``, and so on;
        any other ``str``, a list of any stored object.
        """
        objs = self._store[kind].values()
        if namespace is None:
            return list(objs)
        return [o for o in objs if o.metadata.namespace == namespace]

    def count(self, kind: str) -> int:
        """Number of cached objects of ``kind``."""
        return len(self._store[kind])

    @overload
    def by_index(self, kind: Literal["Sandbox"], index: str, key: str) -> Iterator[Sandbox]: ...
    @overload
    def by_index(
        self, kind: Literal["SandboxSet"], index: str, key: str
    ) -> Iterator[SandboxSet]: ...
    @overload
    def by_index(
        self, kind: Literal["SandboxClaim"], index: str, key: str
    ) -> Iterator[SandboxClaim]: ...
    @overload
    def by_index(
        self, kind: Literal["SandboxTemplate"], index: str, key: str
    ) -> Iterator[SandboxTemplate]: ...
    @overload
    def by_index(self, kind: Literal["Pod"], index: str, key: str) -> Iterator[Pod]: ...
    @overload
    def by_index(self, kind: str, index: str, key: str) -> Iterator[KubeObject]: ...
    def by_index(self, kind: str, index: str, key: str) -> Iterator[Any]:
        """Objects whose index ``index`` has ``key``, in cache insertion order.

        Typed as :meth:`get` is (``"Sandbox"``: an iterator of :class:`Sandbox`).

        The iterator is live (no copy, so a caller that stops early pays only for
        what it read): consume it without letting simulated time pass.
        """
        bucket = self._indexes[kind][index].compacted(key)
        if not bucket:
            return iter(())
        return iter(bucket.values())

    def index_size(self, kind: str, index: str, key: str) -> int:
        """How many objects the index holds under ``key``."""
        bucket = self._indexes[kind][index].buckets.get(key)
        return len(bucket) if bucket else 0
