"""The simulated Kubernetes API server: an object store with optimistic concurrency.

Every write carries the caller's ``resourceVersion``; a stale one answers
``409 Conflict`` as a real API server does. Each verb takes a latency drawn
from the profile, each client is throttled by its QPS/burst limits, and every
committed change reaches each registered :class:`~simulator.informer.Informer`
after a watch propagation lag, in order. Error answers are worded as
Kubernetes words them, naming objects by their group-qualified resource
(``sandboxes.agents.kruise.io "x" not found``).

Objects held here are immutable by convention: a write stores a new object,
readers copy before they change anything, and an object handed to a write
belongs to the store from then on (the writer does not touch it again).

A delete carries who asks for it (a component's client name, or
:data:`USER_REQUESTER` for the user's own calls), for the one admission
webhook modelled: the pod-delete protection (reference §4,
``pkg/webhook/pod/validating/pod_delete.go``), which lets only the sandbox
controller delete the pods sandboxes create (:class:`ForbiddenError`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Generator, Sequence
from functools import partial
from operator import attrgetter
from typing import Any, Final, Literal, TypeAlias, TypeVar, overload

import simpy
from pydantic import BaseModel

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.copying import deep_copy, same_fields, shallow_copy
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import API_VERSIONS, KubeObject
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.pod import (
    Pod,
    default_requests,
    pod_create_error,
    pod_spec_change_problem,
    pod_update_error,
)
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate
from pytest_kruise_agents.api.validation import ANNOTATIONS_MAX, annotations_size_problem
from simulator.context import SimContext
from simulator.faults import Fault, StallGate
from simulator.heldrequest import HeldRequest
from simulator.informer import Informer, ObjKey
from simulator.interning import FieldsSetInterner
from simulator.ratelimit import TokenBucket

__all__ = [
    "ANN_GRACE_SECONDS",
    "FOREGROUND",
    "GARBAGE_COLLECTOR",
    "ORPHAN",
    "POD_DELETE_WEBHOOK",
    "POD_FINALIZER",
    "SANDBOX_CONTROLLER",
    "USER_REQUESTER",
    "ApiError",
    "ApiServer",
    "Client",
    "ForbiddenError",
    "Op",
    "OpOf",
    "Propagation",
    "UIDConflictError",
    "is_precondition",
    "pod_delete_refusal",
    "pod_update_refusal",
]

Op = Generator[simpy.Event, Any, Any]
"""A SimPy sub-process: use as ``result = yield from api.update(...)``."""

_T = TypeVar("_T")
OpOf: TypeAlias = Generator[simpy.Event, Any, _T]
"""An :data:`Op` whose result is a ``_T``: ``OpOf[Sandbox]`` answers with a Sandbox."""

_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

_NO_STATUS = frozenset({"SandboxTemplate"})
"""Kinds without a status (subresource)."""

ORPHAN: Final = "orphan"
"""``metav1.FinalizerOrphanDependents``: the GC removes the owner's references, then lets it go."""
FOREGROUND: Final = "foregroundDeletion"
"""``metav1.FinalizerDeleteDependents``: the GC deletes the dependents, then lets the owner go."""
_GC_FINALIZERS: Final = frozenset({ORPHAN, FOREGROUND})

Propagation = Literal["Orphan", "Background", "Foreground"]
"""``DeleteOptions.propagationPolicy``."""

USER_REQUESTER: Final = "user"
"""Who a delete is from when no component says: the user (``Cluster.delete``, the admin API)."""
SANDBOX_CONTROLLER: Final = "agent-sandbox-controller"
"""The agent-sandbox-controller's identity (its client's name): it may delete sandbox pods."""
GARBAGE_COLLECTOR: Final = "generic-garbage-collector"
"""The garbage collector's identity: its cascade from a deleted Sandbox removes the pod."""
POD_DELETE_WEBHOOK: Final = "vpod-delete.agents.kruise.io"
"""The pod-delete protection webhook's name in its denials (ours: the reference gives none)."""
_POD_DELETERS: Final = frozenset({SANDBOX_CONTROLLER, GARBAGE_COLLECTOR})

# A merge patch costs what an update costs (the reference gives one "patch" range).
_VERB_LATENCY = {
    "create": "api.create",
    "update": "api.update",
    "patch": "api.update",
    "update_status": "api.update_status",
    "delete": "api.delete",
    "get": "api.get",
}


_RESOURCES: Final = {
    "Pod": "pods",
    "Sandbox": "sandboxes.agents.kruise.io",
    "SandboxSet": "sandboxsets.agents.kruise.io",
    "SandboxClaim": "sandboxclaims.agents.kruise.io",
    "SandboxTemplate": "sandboxtemplates.agents.kruise.io",
}
"""Per kind, its group-qualified resource: what the API server's messages name an object by."""


class ApiError(Exception):
    """An error answer of the API server (``metav1.Status``)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        # The arguments as given: ``type(e)(*e.args)`` (how SimPy hands a process's
        # error to the process waiting on it, and how pickle rebuilds it) builds it again.
        super().__init__(code, reason, message)
        self.code = code
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message

    @property
    def is_conflict(self) -> bool:
        """409 Conflict (stale resourceVersion)."""
        return self.code == 409 and self.reason == "Conflict"

    @property
    def is_not_found(self) -> bool:
        """404 NotFound."""
        return self.code == 404

    @property
    def is_invalid(self) -> bool:
        """422 Invalid (a write the API server's validation refuses)."""
        return self.code == 422


class ForbiddenError(ApiError):
    """403 Forbidden: a validating admission webhook denied the request.

    The message is the API server's for a denial, ``admission webhook
    "<webhook>" denied the request: <why>``; ``webhook`` names the webhook.
    """

    def __init__(self, webhook: str, why: str) -> None:
        super().__init__(
            403, "Forbidden", f'admission webhook "{webhook}" denied the request: {why}'
        )
        self.webhook = webhook
        self.args = (webhook, why)


class UIDConflictError(ApiError):
    """409 Conflict: a write's UID precondition names another object than the stored one.

    The object of that name was deleted and made anew since the writer read
    it; the message is the API server's (``storage.Preconditions.Check``).
    """

    def __init__(self, kind: str, name: str, expected: str, stored: str | None) -> None:
        super().__init__(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {_resource(kind)} "{name}": Precondition failed: '
            f"UID in precondition: {expected}, UID in object meta: {stored}",
        )
        self.args = (kind, name, expected, stored)


def _resource(kind: str) -> str:
    """``kind``'s qualified resource (``sandboxes.agents.kruise.io``; ``pods`` in the core group)."""
    return _RESOURCES.get(kind) or f"{kind.lower()}s"


def _not_found(kind: str, name: str) -> ApiError:
    """404 NotFound, worded as ``errors.NewNotFound``."""
    return ApiError(404, "NotFound", f'{_resource(kind)} "{name}" not found')


def _conflict(kind: str, name: str, why: str) -> ApiError:
    """409 Conflict, worded as ``errors.NewConflict``."""
    return ApiError(
        409, "Conflict", f'Operation cannot be fulfilled on {_resource(kind)} "{name}": {why}'
    )


_SERVER_META: Final = frozenset(
    {"uid", "resource_version", "generation", "creation_timestamp", "deletion_timestamp"}
)
"""The metadata an update takes from the stored object (or the server sets), not the writer."""
_writers_meta: Final = attrgetter(*(f for f in ObjectMeta.model_fields if f not in _SERVER_META))
"""The metadata a main-resource update writes, as a tuple: equal tuples write the same."""

_MODIFIED: Final = (
    "the object has been modified; please apply your changes to the latest version and try again"
)
"""``registry.OptimisticLockErrorMsg``: why a write on a stale resourceVersion is refused."""


class Client:
    """A component's API client: its name, its QPS/burst token bucket, and the name of the
    component a ``controller_stall`` holds it with (``None``: no stall holds it)."""

    __slots__ = ("bucket", "name", "stall_name")

    def __init__(self, name: str, bucket: TokenBucket, stall_name: str | None = None) -> None:
        self.name = name
        self.bucket = bucket
        self.stall_name = stall_name

    def for_component(self, stall_name: str) -> Client:
        """This client (its name and token bucket, shared) as the component a
        ``controller_stall`` selects as ``stall_name`` uses it: the agent-sandbox-controller's
        one client serves three controllers, each stalled on its own."""
        return Client(self.name, self.bucket, stall_name)


def _meta(obj: Any) -> Any:
    return obj.metadata


class ApiServer:
    """In-memory object store with resourceVersion compare-and-swap, latency and watches."""

    def __init__(self, ctx: SimContext, *, token_source: Callable[[], str] | None = None) -> None:
        self.ctx = ctx
        self.token_source = token_source
        """Where envd access tokens come from (:meth:`new_token`); ``None``: the seeded generator."""
        self._objects: dict[str, dict[ObjKey, Any]] = {}
        """Per kind, the stored objects by key, in the order they were created (all namespaces)."""
        self._by_namespace: dict[str, dict[str, dict[ObjKey, Any]]] = {}
        """Per kind and namespace, the same objects in the same order: a namespaced list
        reads its own namespace's, not every namespace's (see :meth:`peek_list`)."""
        self._rv = 0
        self._informers: list[Informer] = []
        self._watchers: dict[str, list[Informer]] = {}
        """Per kind, the informers that watch it, in registration order."""
        self._dependents: dict[str, dict[tuple[str, str, str], None]] = {}
        """Per owner uid, the objects with an owner reference to it (any, controller or not)."""
        self._foreground: dict[str, tuple[str, str, str]] = {}
        """Owners deleted in the foreground, by uid: waiting for their blocking dependents."""
        self._gc_work: list[Callable[[], None]] = []
        """The garbage collector's pending steps, a stack (see :meth:`_collect`)."""
        self._collecting = False
        self.writes = 0
        # Stored objects are never changed: their models share equal fields-sets.
        self._share_fields_sets = FieldsSetInterner()
        self._held: dict[Informer, _HeldQueue] = {}
        """Per informer, the watch events in flight while a ``watch_lag`` fault holds one back."""
        self._held_requests: dict[HeldRequest, None] = {}
        """The requests waiting out ``api_latency`` draws, in the order they began."""
        self._window_ends: set[int] = set()
        """The ``watch_lag`` and ``api_latency`` faults (by ``id``) with a release timer at the
        end of their window."""
        ctx.faults.add_clear_listener(self._on_faults_cleared)
        self._stall_gate = StallGate(ctx.faults, ctx.env)

    # -- wiring ---------------------------------------------------------------

    def client(self, name: str, qps: float, burst: int, *, stall_name: str | None = None) -> Client:
        """A client with its own QPS/burst limits; a ``controller_stall`` of ``stall_name``
        holds each request it sends (:meth:`held`)."""
        return Client(name, TokenBucket(self.ctx.now, qps, burst), stall_name)

    def register(self, informer: Informer) -> None:
        """Feed ``informer`` from now on, after replaying the current state as ADDED events."""
        self._informers.append(informer)
        for kind in informer.kinds:
            self._watchers.setdefault(kind, []).append(informer)
        for kind, objs in self._objects.items():
            if informer.wants(kind):
                for obj in list(objs.values()):
                    informer.apply("ADDED", kind, None, obj)

    def unregister(self, informer: Informer) -> None:
        """Stop feeding ``informer``: a watch closed (events already under way still reach it)."""
        self._informers.remove(informer)
        for kind in informer.kinds:
            self._watchers[kind].remove(informer)

    # -- instant reads (the state of etcd; for the user-facing API and tests) --

    @overload
    def peek(self, kind: Literal["Sandbox"], namespace: str, name: str) -> Sandbox | None: ...
    @overload
    def peek(self, kind: Literal["SandboxSet"], namespace: str, name: str) -> SandboxSet | None: ...
    @overload
    def peek(
        self, kind: Literal["SandboxClaim"], namespace: str, name: str
    ) -> SandboxClaim | None: ...
    @overload
    def peek(
        self, kind: Literal["SandboxTemplate"], namespace: str, name: str
    ) -> SandboxTemplate | None: ...
    @overload
    def peek(self, kind: Literal["Pod"], namespace: str, name: str) -> Pod | None: ...
    @overload
    def peek(self, kind: str, namespace: str, name: str) -> KubeObject | None: ...
    def peek(self, kind: str, namespace: str, name: str) -> Any | None:
        """The stored object, with no latency; ``None`` if there is none.

        ``kind`` is the kind's name as stored (``"Sandbox"``, not ``"sbx"``). Typed
        as that kind's model when it is written out (``"Sandbox"``: a
        :class:`Sandbox`, ``"Pod"``: a :class:`Pod`, ...), else as any stored object
        (:data:`KubeObject`); ``| None`` either way.
        """
        return self._objects.get(kind, {}).get((namespace, name))

    @overload
    def peek_list(
        self, kind: Literal["Sandbox"], namespace: str | None = None
    ) -> list[Sandbox]: ...
    @overload
    def peek_list(
        self, kind: Literal["SandboxSet"], namespace: str | None = None
    ) -> list[SandboxSet]: ...
    @overload
    def peek_list(
        self, kind: Literal["SandboxClaim"], namespace: str | None = None
    ) -> list[SandboxClaim]: ...
    @overload
    def peek_list(
        self, kind: Literal["SandboxTemplate"], namespace: str | None = None
    ) -> list[SandboxTemplate]: ...
    @overload
    def peek_list(self, kind: Literal["Pod"], namespace: str | None = None) -> list[Pod]: ...
    @overload
    def peek_list(self, kind: str, namespace: str | None = None) -> list[KubeObject]: ...
    def peek_list(
        self, kind: str, namespace: str | None = None
    ) -> list[Any]:  # list is invariant: the overloads say what it holds
        """Stored objects of ``kind`` (all namespaces when ``namespace`` is None), with no latency.

        Typed as :meth:`peek` is: a list of the kind's model for a kind name written
        out (``"Pod"``: ``list[Pod]``), else a list of any stored object.

        In creation order (an update keeps an object's place): a namespace's
        objects in the order the list of all namespaces has them. A namespaced
        list costs what that namespace holds, however many others there are.
        """
        if namespace is None:
            return list(self._objects.get(kind, {}).values())
        return list(self._by_namespace.get(kind, {}).get(namespace, {}).values())

    def count(self, kind: str) -> int:
        """Number of stored objects of ``kind``."""
        return len(self._objects.get(kind, {}))

    # -- instant commits (no latency, no faults) --------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def new_uid(self) -> str:
        """A UUID drawn from the cluster's generator (deterministic per seed)."""
        return _uuid4_text(self.ctx.rng.getrandbits(128))

    def new_token(self) -> str:
        """A sandbox's envd access token: a UUID, as upstream's.

        Drawn from the seeded generator like :meth:`new_uid` (a test can know
        it), unless a :attr:`token_source` is set: a server open to several
        teams (``kruise-agents serve``) draws tokens from ``secrets``, or anyone
        running the same config with the same seed would know them. The seeded
        draw is made either way, so the run (ids, names, timings, event log)
        stays the same whatever the tokens' source. A source that returns
        anything but a ``str`` raises :class:`InvalidError` naming it, before
        the token is used.
        """
        seeded = self.new_uid()
        if self.token_source is None:
            return seeded
        token = self.token_source()
        if not isinstance(token, str):
            raise InvalidError("token_source", f"must return a str, got {token!r}")
        return token

    def _generate_name(self, kind: str, namespace: str, prefix: str) -> str:
        """``prefix`` plus 5 random characters, the prefix cut to 58 so the name fits in 63.

        As the API server's ``SimpleNameGenerator`` (``maxGeneratedNameLength``):
        a name made from a long ``generateName`` stays a valid label value.
        """
        store = self._objects.get(kind, {})
        rng = self.ctx.rng
        prefix = prefix[: 63 - 5]
        while True:
            suffix = "".join([rng.choice(_NAME_ALPHABET) for _ in range(5)])
            name = prefix + suffix
            if (namespace, name) not in store:
                return name

    @overload
    def commit_create(self, obj: Sandbox) -> Sandbox: ...
    @overload
    def commit_create(self, obj: SandboxSet) -> SandboxSet: ...
    @overload
    def commit_create(self, obj: SandboxClaim) -> SandboxClaim: ...
    @overload
    def commit_create(self, obj: SandboxTemplate) -> SandboxTemplate: ...
    @overload
    def commit_create(self, obj: Pod) -> Pod: ...
    @overload
    def commit_create(self, obj: KubeObject) -> KubeObject: ...
    def commit_create(self, obj: Any) -> Any:
        """Store a new object; fill name, uid, resourceVersion, generation, creationTimestamp.

        Annotations over 256 KiB are refused (422 Invalid), before anything is drawn.
        Returns the stored object: of ``obj``'s model (a :class:`Sandbox` for a
        Sandbox, and so on; a :data:`KubeObject` for an object typed as any).
        """
        kind = obj.kind
        store = self._objects.setdefault(kind, {})
        # The store takes ownership of ``obj`` (callers pass fresh objects);
        # only the metadata it fills in is copied, so the caller's view is untouched.
        # What it fills in is copied in at once (``shallow_copy`` with the changes, which
        # marks them set as assigning them would; ``model_copy(update=)`` would first check
        # the names, which here are the store's own: a call fewer on every write).
        meta = obj.metadata
        name = meta.name
        _check_metadata(kind, name or meta.generate_name, meta)
        filled: dict[str, Any] = {}
        if not name:
            if not meta.generate_name:
                raise ApiError(
                    422, "Invalid", f"{kind}: metadata.name or metadata.generateName is required"
                )
            name = filled["name"] = self._generate_name(kind, meta.namespace, meta.generate_name)
        key = (meta.namespace, name)
        if key in store:
            raise ApiError(409, "AlreadyExists", f'{_resource(kind)} "{name}" already exists')
        parts: dict[str, Any] = {}
        if kind == "Pod":
            spec = parts["spec"] = default_requests(obj.spec)
            why = pod_create_error(spec)
            if why is not None:
                raise ApiError(422, "Invalid", f'Pod "{name}" is invalid: {why}')
        filled["uid"] = self.new_uid()
        filled["resource_version"] = self._next_rv()
        filled["generation"] = 1
        filled["creation_timestamp"] = self.ctx.now_dt().replace(microsecond=0)
        filled["deletion_timestamp"] = None
        parts["metadata"] = shallow_copy(meta, filled)
        obj = shallow_copy(obj, parts)
        meta = obj.metadata
        self._share_fields_sets(obj)
        store[key] = obj
        self._by_namespace.setdefault(kind, {}).setdefault(key[0], {})[key] = obj
        refs = meta.owner_references
        if refs:
            dep = (kind, meta.namespace, meta.name)
            dependents = self._dependents
            for ref in refs:
                dependents.setdefault(ref.uid, {})[dep] = None
        self.writes += 1
        self._notify("ADDED", kind, None, obj)
        if refs:
            self._collect_if_orphan(kind, meta)
        return obj

    def _collect_if_orphan(self, kind: str, meta: Any) -> None:
        """Have the garbage collector look at the object if one of its owners is no live one.

        A controller acting on a cache that still holds a deleted owner can
        create (or re-own) an object for it; Kubernetes' GC then finds the
        owner gone (or waiting for its dependents' deletion) and deletes the
        dependent, or only removes the reference if another owner lives.
        """
        namespace = meta.namespace
        for ref in meta.owner_references:
            if self._owner_state(ref, namespace) is not _SOLID:
                gc = self.ctx.env.timeout(0)
                gc.callbacks.append(_CollectOrphan(self, kind, namespace, meta.name, meta.uid))
                return

    @overload
    def commit_update(
        self, obj: Sandbox, *, subresource: str | None = None, check_rv: bool = True
    ) -> Sandbox: ...
    @overload
    def commit_update(
        self, obj: SandboxSet, *, subresource: str | None = None, check_rv: bool = True
    ) -> SandboxSet: ...
    @overload
    def commit_update(
        self, obj: SandboxClaim, *, subresource: str | None = None, check_rv: bool = True
    ) -> SandboxClaim: ...
    @overload
    def commit_update(
        self, obj: SandboxTemplate, *, subresource: str | None = None, check_rv: bool = True
    ) -> SandboxTemplate: ...
    @overload
    def commit_update(
        self, obj: Pod, *, subresource: str | None = None, check_rv: bool = True
    ) -> Pod: ...
    @overload
    def commit_update(
        self, obj: KubeObject, *, subresource: str | None = None, check_rv: bool = True
    ) -> KubeObject: ...
    def commit_update(
        self, obj: Any, *, subresource: str | None = None, check_rv: bool = True
    ) -> Any:
        """Replace a stored object (compare-and-swap on resourceVersion when ``check_rv``).

        Returns the stored object, of ``obj``'s model (as :meth:`commit_create`).

        A main-resource write (an update, a patch) whose annotations pass 256 KiB
        is refused (422 Invalid); a status write keeps the stored metadata; a main-resource
        write keeps the stored status, but a ``binding`` one. A write that would
        store what is stored already is no write: the stored object is the answer,
        with its resourceVersion, and no watch event goes out.
        """
        kind = obj.kind
        meta = obj.metadata
        store = self._objects.get(kind, {})
        key = (meta.namespace, meta.name)
        old = store.get(key)
        if old is None:
            raise _not_found(kind, meta.name)
        if (
            check_rv
            and meta.resource_version is not None
            and (meta.resource_version != old.metadata.resource_version)
            and is_precondition(meta.resource_version)
        ):
            raise _conflict(kind, meta.name, _MODIFIED)
        # Ownership of ``obj`` and its parts passes to the store: callers build
        # their writes from copies and do not touch them afterwards. Copying only
        # the envelope and metadata keeps a write cheap (pod templates are big);
        # each is copied with its changes at once (``shallow_copy``, as in
        # :meth:`commit_create`), not assigned field by field afterwards.
        if subresource == "status":
            status = obj.status
            if status is old.status or same_fields(status, old.status):
                return old  # a no-op: nothing written (etcd3's GuaranteedUpdate)
            new_meta = shallow_copy(old.metadata, {"resource_version": self._next_rv()})
            new = shallow_copy(old, {"status": obj.status, "metadata": new_meta})
        else:
            old_meta = old.metadata
            if meta.annotations is not old_meta.annotations:
                _check_metadata(kind, meta.name, meta)
            gen = old_meta.generation or 1
            changed = obj.spec is not old.spec and obj.spec != old.spec
            if changed and kind == "Pod":
                why = pod_update_refusal(old, obj)
                if why is not None:
                    raise ApiError(422, "Invalid", f'Pod "{meta.name}" is invalid: {why}')
            if (
                not changed
                and _writers_meta(meta) == _writers_meta(old_meta)
                and (subresource != "binding" or obj.status == old.status)
            ):
                # A no-op, as etcd3's GuaranteedUpdate finds the new bytes equal to the
                # stored ones: no new resourceVersion, no watch event, the stored answer.
                return old
            new_meta = shallow_copy(
                meta,
                {
                    "uid": old_meta.uid,
                    "creation_timestamp": old_meta.creation_timestamp,
                    "deletion_timestamp": old_meta.deletion_timestamp,
                    # ``pods/binding`` writes nodeName in storage, past the pod strategy's
                    # ``PrepareForUpdate`` that bumps a pod's generation: a bound pod stays at 1.
                    "generation": gen + 1 if changed and subresource != "binding" else gen,
                    "resource_version": self._next_rv(),
                },
            )
            parts = {"metadata": new_meta}
            if kind not in _NO_STATUS and subresource != "binding":
                # The status subresource is separate: a main-resource update keeps it.
                parts["status"] = old.status
            new = shallow_copy(obj, parts)
        if new.metadata.deletion_timestamp is not None and not new.metadata.finalizers:
            self._remove(kind, key, new)
            return new
        self._share_fields_sets(new)
        store[key] = new
        self._by_namespace[kind][key[0]][key] = new
        # The same owner-reference list (most writes share it): the same owners.
        old_refs = old.metadata.owner_references
        new_refs = new.metadata.owner_references
        reowned = new_refs is not old_refs
        adopted = reowned and self._reown(kind, key, old_refs, new_refs)
        self.writes += 1
        self._notify("MODIFIED", kind, old, new)
        if adopted:
            self._collect_if_orphan(kind, new.metadata)
        if reowned and self._foreground:
            self._unblock(old_refs, new_refs)
        return new

    def _undepend(self, uid: str, dep: tuple[str, str, str]) -> None:
        """``dep`` no longer has the owner ``uid``; an owner left with none loses its entry.

        Kept, the entry of an owner deleted before its last dependent (an
        orphan made for a gone owner, then collected) would stay for ever.
        """
        deps = self._dependents.get(uid)
        if deps is not None:
            deps.pop(dep, None)
            if not deps:
                del self._dependents[uid]

    def _reown(self, kind: str, key: ObjKey, old_refs: Any, new_refs: Any) -> bool:
        """File the object under its owners if they changed; whether it has one it had not.

        A reference that names another owner (kind, apiVersion or name) under a
        uid the object had is a new owner too: the owner it names now may be
        gone (a ConfigMap reference, live as unserved, made a deleted
        SandboxTemplate's), and only a look at it tells.
        """
        dep = (kind, key[0], key[1])
        # Lists of one reference or none (a claim takes a sandbox from its pool,
        # a recycle gives it back): plain loops, no sets, no generators (no calls).
        for ref in old_refs:
            uid = ref.uid
            for kept in new_refs:
                if kept.uid == uid:
                    break
            else:
                self._undepend(uid, dep)
        adopted = False
        for ref in new_refs:
            uid = ref.uid
            for before in old_refs:
                if before.uid == uid:
                    if (before.kind, before.api_version, before.name) != (
                        ref.kind,
                        ref.api_version,
                        ref.name,
                    ):
                        adopted = True
                    break
            else:
                self._dependents.setdefault(uid, {})[dep] = None
                adopted = True
        return adopted

    @overload
    def commit_delete(
        self,
        kind: Literal["Sandbox"],
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
        propagation: Propagation | None = None,
        requester: str = USER_REQUESTER,
    ) -> Sandbox | None: ...
    @overload
    def commit_delete(
        self,
        kind: Literal["SandboxSet"],
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
        propagation: Propagation | None = None,
        requester: str = USER_REQUESTER,
    ) -> SandboxSet | None: ...
    @overload
    def commit_delete(
        self,
        kind: Literal["SandboxClaim"],
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
        propagation: Propagation | None = None,
        requester: str = USER_REQUESTER,
    ) -> SandboxClaim | None: ...
    @overload
    def commit_delete(
        self,
        kind: Literal["SandboxTemplate"],
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
        propagation: Propagation | None = None,
        requester: str = USER_REQUESTER,
    ) -> SandboxTemplate | None: ...
    @overload
    def commit_delete(
        self,
        kind: Literal["Pod"],
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
        propagation: Propagation | None = None,
        requester: str = USER_REQUESTER,
    ) -> Pod | None: ...
    @overload
    def commit_delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
        propagation: Propagation | None = None,
        requester: str = USER_REQUESTER,
    ) -> KubeObject | None: ...
    def commit_delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
        propagation: Propagation | None = None,
        requester: str = USER_REQUESTER,
    ) -> Any | None:
        """Delete (or mark for deletion when finalizers remain); return the object or None.

        The object returned is the one still stored, marked (its kind's model when
        ``kind`` is written out, ``"Sandbox"``: a :class:`Sandbox`, as :meth:`peek`);
        ``None`` when it is gone.

        ``uid`` (``DeleteOptions.preconditions.uid``) deletes only that object:
        one deleted and made anew under its name answers
        :class:`UIDConflictError` and stays. ``propagation`` sets the garbage
        collector's finalizers first, as the generic registry does for
        ``DeleteOptions.propagationPolicy`` (``Orphan`` and ``Foreground`` hold
        the object until the GC is done); without it the object's own
        finalizers decide. ``requester`` is who asks, for the pod-delete
        webhook (:func:`pod_delete_refusal`): a refusal raises
        :class:`ForbiddenError` and changes nothing.
        """
        store = self._objects.get(kind, {})
        key = (namespace, name)
        old = store.get(key)
        if old is None:
            raise _not_found(kind, name)
        meta = old.metadata
        # The registry checks the preconditions (BeforeDelete), UID first, before
        # the storage runs the admission webhooks' delete validation.
        if uid is not None and uid != meta.uid:
            raise UIDConflictError(kind, name, uid, meta.uid)
        if resource_version is not None and resource_version != meta.resource_version:
            raise _conflict(
                kind,
                name,
                f"Precondition failed: ResourceVersion in precondition: {resource_version}, "
                f"ResourceVersion in object meta: {meta.resource_version}",
            )
        if kind == "Pod":
            why = pod_delete_refusal(old, requester)
            if why is not None:
                raise ForbiddenError(POD_DELETE_WEBHOOK, why)
        finalizers = meta.finalizers
        if propagation is not None:
            finalizers = _propagated(finalizers, propagation)
        if (
            kind == "Pod"
            and POD_FINALIZER in finalizers
            and meta.deletion_timestamp is None
            and (not old.spec.get("nodeName") or old.status.phase in _POD_TERMINAL)
        ):
            # CheckGracefulDelete: a pod no node runs, or whose containers have all
            # ended, is deleted at once, whatever its grace period (no kubelet has
            # anything to stop; the kubelet lets its resources go at the DELETED event).
            finalizers = [f for f in finalizers if f != POD_FINALIZER]
        if not finalizers:
            self._remove(kind, key, old)
            return None
        deleting = meta.deletion_timestamp is not None
        if deleting and finalizers is meta.finalizers:
            return old
        update: dict[str, Any] = {"resource_version": self._next_rv()}
        if finalizers is not meta.finalizers:
            update["finalizers"] = finalizers
        if not deleting:
            # As the generic registry's ``markAsDeleting`` (and ``BeforeDelete`` for
            # a graceful delete): the first mark also bumps ``generation``.
            gen = meta.generation
            update["deletion_timestamp"] = self.ctx.now_dt().replace(microsecond=0)
            update["generation"] = gen + 1 if gen else gen
        new = shallow_copy(old, {"metadata": shallow_copy(meta, update)})
        self._share_fields_sets(new)
        store[key] = new
        self._by_namespace[kind][key[0]][key] = new
        self.writes += 1
        self._notify("MODIFIED", kind, old, new)
        if not _GC_FINALIZERS.isdisjoint(finalizers):
            self._start_gc(kind, new, meta.finalizers if deleting else ())
        return new

    def _remove(self, kind: str, key: ObjKey, last: Any) -> None:
        store = self._objects[kind]
        old = store.pop(key)
        in_namespace = self._by_namespace[kind]
        namespace = in_namespace[key[0]]
        del namespace[key]
        if not namespace:
            del in_namespace[key[0]]
        refs = old.metadata.owner_references
        dep = (kind, key[0], key[1])
        for ref in refs:
            self._undepend(ref.uid, dep)
        self.writes += 1
        self._notify("DELETED", kind, old, None)
        # Garbage collection (background cascading deletion): each dependent of
        # this object goes too, unless another of its owners still lives.
        uid = last.metadata.uid
        deps = None if uid is None else self._dependents.pop(uid, None)
        if not deps:
            self._forget(uid, refs)
            return
        # Queued, not called: each dependent's delete may remove its own, and
        # so on down an owner chain of any length (see ``_collect``).
        work = self._gc_work
        work.append(partial(self._forget, uid, refs))
        for dep_kind, ns, name in reversed(deps):
            work.append(partial(self._attempt_to_delete, dep_kind, ns, name, gone=uid))
        self._collect()

    def _forget(self, uid: str | None, refs: Any) -> None:
        """An object removed (and its dependents dealt with): it waits no more, blocks no owner."""
        if self._foreground:
            self._foreground.pop(uid or "", None)
            self._unblock(refs, ())

    # -- the garbage collector --------------------------------------------------------
    #
    # Upstream's GC works from watch events, a moment after each write; this
    # one acts within the write that calls for it (an object created for an
    # owner already gone: at the same instant, once the create has answered).
    #
    # A step that would set off another (a delete that removes dependents, a
    # finalizer dropped that lets an owner go) queues it on ``_gc_work`` rather
    # than calling it, and the outermost write runs the queue: the Python stack
    # stays flat however long the owner chain.

    def _collect(self) -> None:
        """Run the garbage collector's queued steps, unless an outer call is running them.

        The queue is a stack, and a step queues what comes after it first: the
        steps run in the order the recursion they replace had, depth first
        (each dependent's own dependents before the next dependent), so the
        writes, their resourceVersions and the watch events stay the same.
        """
        if self._collecting:
            return
        self._collecting = True
        work = self._gc_work
        try:
            while work:
                work.pop()()
        except BaseException:
            # As an error raised through the recursion did: the rest is not done
            # (and not left for the next write to do).
            work.clear()
            raise
        finally:
            self._collecting = False

    def _owner_state(self, ref: Any, namespace: str, gone: str | None = None) -> object:
        """``classifyReferences`` for one reference: solid, dangling or waiting.

        An owner of a kind this server does not serve at the reference's
        apiVersion (a user's custom resource, a ConfigMap, a ``v1 SandboxSet``,
        an ``apps/v1 Pod``) is solid, even when an object of that uid goes: it
        cannot be stored here, so its absence says nothing, and upstream's GC,
        with no REST mapping for the group, version and kind, re-queues the
        dependent rather than deleting it.
        """
        kind = ref.kind
        if (kind, ref.api_version) not in _SERVED:
            return _SOLID
        if ref.uid == gone:
            return _DANGLING
        owner = self._objects.get(kind, {}).get((namespace, ref.name))
        if owner is None or owner.metadata.uid != ref.uid:
            return _DANGLING
        meta = owner.metadata
        if meta.deletion_timestamp is not None and FOREGROUND in meta.finalizers:
            return _WAITING
        return _SOLID

    def _attempt_to_delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        gone: str | None = None,
        uid: str | None = None,
        why: str | None = None,
    ) -> None:
        """``attemptToDeleteItem``: delete the object if none of its owners lives.

        An object with a live owner loses only its references to owners that
        are gone or waiting for their dependents' deletion. One without is
        deleted, in the foreground when an owner waits for it and it has
        dependents of its own. ``gone`` is the uid of an owner just removed;
        ``uid`` the object's (a later object of the same name is left alone);
        ``why``, the event to record when the object is deleted.
        """
        obj = self._objects.get(kind, {}).get((namespace, name))
        if obj is None:
            return
        meta = obj.metadata
        refs = meta.owner_references
        if not refs or meta.deletion_timestamp is not None or (uid is not None and meta.uid != uid):
            return
        policy: Propagation | None = None
        only = refs[0]
        # The common case, its only owner gone, needs no look at the owners.
        if len(refs) != 1 or only.uid != gone or (only.kind, only.api_version) not in _SERVED:
            states = [(ref.uid, self._owner_state(ref, namespace, gone)) for ref in refs]
            if any(state is _SOLID for _, state in states):
                stale = {owner for owner, state in states if state is not _SOLID}
                if stale:
                    self._drop_owner_refs(obj, stale)
                return
            if any(state is _WAITING for _, state in states) and self._dependents.get(
                meta.uid or ""
            ):
                policy = "Foreground"
        if why is not None:
            self.ctx.record(why, f"{kind}/{namespace}/{name}")
        if policy is not None:
            # Queued first, so it runs once the delete's own cascade is done.
            self._gc_work.append(partial(self._break_cycle, kind, namespace, name, meta.uid or ""))
        self.commit_delete(kind, namespace, name, propagation=policy, requester=GARBAGE_COLLECTOR)
        self._collect()

    def _break_cycle(self, kind: str, namespace: str, name: str, uid: str) -> None:
        """Stop the object ``uid``, deleted in the foreground, blocking its owners if it must.

        Upstream's cycle detection: owners and dependents waiting for each
        other would wait for ever, so this one stops blocking its owners.
        (Upstream unblocks before the delete; here the delete comes first so
        that the owners this frees do not remove it under the delete.)
        """
        if self._waits_for_a_waiting_dependent(uid):
            self._unblock_owner_refs(kind, namespace, name)

    def _waits_for_a_waiting_dependent(self, uid: str) -> bool:
        """Whether a dependent of ``uid`` is itself being deleted in the foreground."""
        for dep_kind, ns, name in self._dependents.get(uid, ()):
            dep = self._objects.get(dep_kind, {}).get((ns, name))
            if dep is not None and dep.metadata.uid in self._foreground:
                return True
        return False

    def _unblock_owner_refs(self, kind: str, namespace: str, name: str) -> None:
        """Set ``blockOwnerDeletion: false`` on the object's owner references."""
        obj = self._objects.get(kind, {}).get((namespace, name))
        if obj is None:
            return
        meta = obj.metadata
        refs = [
            r.model_copy(update={"block_owner_deletion": False}) if r.block_owner_deletion else r
            for r in meta.owner_references
        ]
        new = obj.model_copy(
            update={"metadata": meta.model_copy(update={"owner_references": refs})}
        )
        self.commit_update(new, check_rv=False)

    def _start_gc(self, kind: str, obj: Any, before: Any) -> None:
        """An object marked for deletion with a GC finalizer it did not have: act on it."""
        meta = obj.metadata
        key = (kind, meta.namespace, meta.name)
        uid = meta.uid or ""
        work = self._gc_work
        # Queued in reverse: the orphaning (had both been allowed) runs first.
        if FOREGROUND in meta.finalizers and FOREGROUND not in before:
            work.append(partial(self._delete_dependents, key, uid))
        if ORPHAN in meta.finalizers and ORPHAN not in before:
            work.append(partial(self._orphan_dependents, key, uid))
        self._collect()

    def _delete_dependents(self, key: tuple[str, str, str], uid: str) -> None:
        """A step: delete the dependents of ``uid``, then finish its foreground deletion."""
        self._foreground[uid] = key
        work = self._gc_work
        work.append(partial(self._finish_foreground, uid))
        for dep_kind, ns, name in reversed(list(self._dependents.get(uid, ()))):
            work.append(partial(self._attempt_to_delete, dep_kind, ns, name))

    def _orphan_dependents(self, key: tuple[str, str, str], uid: str) -> None:
        """A step, ``orphanDependents``: remove the owner's references from its dependents,
        then ``orphan``."""
        work = self._gc_work
        work.append(partial(self._drop_finalizer, key, uid, ORPHAN))
        for dep in reversed(list(self._dependents.get(uid, ()))):
            work.append(partial(self._orphan_one, dep, uid))

    def _orphan_one(self, dep: tuple[str, str, str], uid: str) -> None:
        """A step: remove the references to ``uid`` from the object ``dep``, if still there."""
        dep_kind, ns, name = dep
        obj = self._objects.get(dep_kind, {}).get((ns, name))
        if obj is not None:
            self._drop_owner_refs(obj, {uid})

    def _unblock(self, old_refs: Any, new_refs: Any) -> None:
        """Owners waiting in the foreground that these references no longer block: finish them.

        Each is a step of its own: whether the owner still waits is asked when
        its turn comes, after the cascade the ones before it set off.
        """
        work = self._gc_work
        queued = False
        for ref in reversed(old_refs):
            uid = ref.uid
            if ref.block_owner_deletion and not any(
                r.uid == uid and r.block_owner_deletion for r in new_refs
            ):
                work.append(partial(self._finish_foreground, uid))
                queued = True
        if queued:
            self._collect()

    def _finish_foreground(self, uid: str) -> None:
        """``processDeletingDependentsItem``: no blocking dependent left, remove ``foregroundDeletion``."""
        key = self._foreground.get(uid)
        if key is None:
            return
        for dep_kind, ns, name in self._dependents.get(uid, ()):
            dep = self._objects.get(dep_kind, {}).get((ns, name))
            if dep is not None and any(
                r.uid == uid and r.block_owner_deletion for r in dep.metadata.owner_references
            ):
                return
        del self._foreground[uid]
        self._drop_finalizer(key, uid, FOREGROUND)

    def _drop_owner_refs(self, obj: Any, uids: set[str]) -> None:
        """Remove the references to ``uids`` from ``obj`` (the GC's patch of its dependents)."""
        meta = obj.metadata
        refs = [r for r in meta.owner_references if r.uid not in uids]
        new = obj.model_copy(
            update={"metadata": meta.model_copy(update={"owner_references": refs})}
        )
        self.commit_update(new, check_rv=False)

    def _drop_finalizer(self, key: tuple[str, str, str], uid: str, finalizer: str) -> None:
        """Remove one of the GC's finalizers from the object ``key`` (if still that object)."""
        kind, namespace, name = key
        obj = self._objects.get(kind, {}).get((namespace, name))
        if obj is None or obj.metadata.uid != uid or finalizer not in obj.metadata.finalizers:
            return
        meta = obj.metadata
        kept = [f for f in meta.finalizers if f != finalizer]
        new = obj.model_copy(update={"metadata": meta.model_copy(update={"finalizers": kept})})
        self.commit_update(new, check_rv=False)

    def _notify(self, event_type: str, kind: str, old: Any, new: Any) -> None:
        ctx = self.ctx
        env = ctx.env
        now = env.now
        faults = ctx.faults
        faulty = faults.injected
        draws: Sequence[tuple[Fault, float]] = ()
        draw_lag = ctx.draw["watch.lag"]
        for inf in self._watchers.get(kind, ()):
            lag = base = draw_lag()
            if faulty:
                draws = faults.latency_draws("watch_lag", informer=inf.name)
                extra = 0.0
                for _, draw in draws:
                    extra += draw
                lag += extra
            # SimPy schedules a timeout at ``now + delay``: with ``delay = lag`` that is
            # ``own`` exactly. An event raised to the arrival of the one ahead of it
            # needs a delay whose sum with ``now`` is no less than that arrival (the
            # sum of ``now`` and ``floor - now`` can round one step below it); a tie
            # then goes in scheduling order, so deliveries to a cache keep their order.
            own = at = now + lag
            floor = inf.last_delivery
            if at < floor:
                lag = _delay_to(now, floor)
                at = now + lag
            inf.last_delivery = at
            timer = env.timeout(lag)
            queue = self._held.get(inf) if self._held else None
            if not draws and queue is None:
                # A partial, not an object of our own: its call is the informer's apply
                # (two calls fewer per delivery than a class's __init__ and __call__).
                timer.callbacks.append(partial(inf.apply, event_type, kind, old, new))
                continue
            # Held back by a watch_lag (or in order behind one that is): tracked,
            # so that the fault's end lets it go early (:meth:`_release_held`).
            if queue is None:
                queue = self._held[inf] = _HeldQueue(self, inf, floor)
            held = _Held(inf, event_type, kind, old, new, now + base, own, at, draws)
            queue.items.append(held)
            timer.callbacks.append(partial(queue.fire, held, held.version))
            for f, _ in draws:
                self._release_at_window_end(f, at)

    def _release_at_window_end(self, fault: Fault, at: float) -> None:
        """Let go what ``fault`` (a ``watch_lag`` or an ``api_latency``) holds when its window
        ends, if that comes before ``at``."""
        if fault.duration is None or id(fault) in self._window_ends:
            return
        end = (fault.start or 0.0) + fault.duration
        env = self.ctx.env
        if end >= at:
            return
        self._window_ends.add(id(fault))
        timer = env.timeout(max(end - env.now, 0.0))
        timer.callbacks.append(partial(self._window_ended, fault))

    def _window_ended(self, fault: Fault, _event: simpy.Event) -> None:
        self._window_ends.discard(id(fault))
        if fault.kind == "api_latency":
            self._release_requests()
        else:
            self._release_held()

    def _on_faults_cleared(self, removed: list[Fault]) -> None:
        if self._held and any(f.kind == "watch_lag" for f in removed):
            self._release_held()
        if self._held_requests and any(f.kind == "api_latency" for f in removed):
            self._release_requests()

    def _release_held(self) -> None:
        """Reschedule the held watch events without the draws of the faults that have ended.

        A removed fault's effect ends at that moment (as removing a Toxiproxy
        latency toxic lets the data it holds through): an event it held
        arrives now, or when it would have arrived without it if that is later.
        """
        faults = self.ctx.faults
        now = self.ctx.env.now

        def ended(f: Fault) -> bool:
            return not faults.in_force(f) or f.window_closed(now)

        for inf, queue in self._held.items():
            inf.last_delivery = queue.release(now, ended)

    def _release_requests(self) -> None:
        """Re-time the requests ``api_latency`` faults hold without the draws of those that
        have ended: each goes on now, or when it would have without them if that is later."""
        faults = self.ctx.faults
        now = self.ctx.env.now

        def ended(f: Fault) -> bool:
            return not faults.in_force(f) or f.window_closed(now)

        for held in list(self._held_requests):
            held.release(ended)

    # -- verbs with latency, throttling and faults --------------------------------

    def held(self, client: Client) -> Op:
        """Return once no ``controller_stall`` holds the component behind ``client``
        (at once for a client no stall holds).

        A stalled component makes no progress: each request it would send, and
        each step of its work under way, waits here until the stall lets go.
        """
        if client.stall_name is not None:
            yield from self._stall_gate.wait(client.stall_name)

    def _request(self, client: Client, verb: str, kind: str) -> Op:
        ctx = self.ctx
        faults = ctx.faults
        if faults.injected and client.stall_name is not None:
            # Not sent while its component is stalled (a request already sent goes on).
            yield from self._stall_gate.wait(client.stall_name)
        wait = client.bucket.reserve()
        delay = wait + ctx.draw[_VERB_LATENCY[verb]]()
        if faults.injected:
            draws = faults.latency_draws("api_latency", verb=verb, kind=kind, client=client.name)
            if draws:
                yield from self._held_request(delay, draws)
                delay = 0.0  # waited
        if delay > 0:
            yield ctx.env.timeout(delay)
        if faults.injected:
            f = faults.check("api_error", verb=verb, kind=kind, client=client.name)
            if f is not None:
                reason = "TooManyRequests" if f.code == 429 else "InternalError"
                raise ApiError(f.code, reason, f"injected {f.code} on {verb} {kind}")
            if verb in ("update", "update_status", "patch"):
                f = faults.check("api_conflict", verb=verb, kind=kind, client=client.name)
                if f is not None:
                    raise ApiError(409, "Conflict", f"injected conflict on {verb} {kind}")

    def _held_request(self, base: float, draws: Sequence[tuple[Fault, float]]) -> Op:
        """Wait ``base`` seconds plus the ``api_latency`` draws, less those of the faults that
        end meanwhile (:class:`~simulator.heldrequest.HeldRequest`)."""
        extra = 0.0
        for _, draw in draws:
            extra += draw
        delay = base + extra
        if delay <= 0:
            return None
        held = HeldRequest(self.ctx.env, base, draws, delay)
        self._held_requests[held] = None
        for f, _ in draws:
            self._release_at_window_end(f, held.due)
        try:
            yield held.gate
        finally:
            # Also when the request's process is interrupted mid-wait (a claim cancelled).
            del self._held_requests[held]
        return None

    @overload
    def create(self, client: Client, obj: Sandbox) -> OpOf[Sandbox]: ...
    @overload
    def create(self, client: Client, obj: SandboxSet) -> OpOf[SandboxSet]: ...
    @overload
    def create(self, client: Client, obj: SandboxClaim) -> OpOf[SandboxClaim]: ...
    @overload
    def create(self, client: Client, obj: SandboxTemplate) -> OpOf[SandboxTemplate]: ...
    @overload
    def create(self, client: Client, obj: Pod) -> OpOf[Pod]: ...
    @overload
    def create(self, client: Client, obj: KubeObject) -> OpOf[KubeObject]: ...
    def create(self, client: Client, obj: Any) -> Op:
        """``POST``: create ``obj``; return the stored object, of ``obj``'s model.

        Typed as :meth:`commit_create` (``OpOf[Sandbox]`` for a Sandbox).
        """
        yield from self._request(client, "create", obj.kind)
        return self.commit_create(obj)

    @overload
    def update(self, client: Client, obj: Sandbox) -> OpOf[Sandbox]: ...
    @overload
    def update(self, client: Client, obj: SandboxSet) -> OpOf[SandboxSet]: ...
    @overload
    def update(self, client: Client, obj: SandboxClaim) -> OpOf[SandboxClaim]: ...
    @overload
    def update(self, client: Client, obj: SandboxTemplate) -> OpOf[SandboxTemplate]: ...
    @overload
    def update(self, client: Client, obj: Pod) -> OpOf[Pod]: ...
    @overload
    def update(self, client: Client, obj: KubeObject) -> OpOf[KubeObject]: ...
    def update(self, client: Client, obj: Any) -> Op:
        """``PUT``: full update, compare-and-swap on ``obj.metadata.resourceVersion``.

        Returns the stored object, of ``obj``'s model (as :meth:`commit_update`).
        """
        yield from self._request(client, "update", obj.kind)
        return self.commit_update(obj)

    @overload
    def update_status(self, client: Client, obj: Sandbox) -> OpOf[Sandbox]: ...
    @overload
    def update_status(self, client: Client, obj: SandboxSet) -> OpOf[SandboxSet]: ...
    @overload
    def update_status(self, client: Client, obj: SandboxClaim) -> OpOf[SandboxClaim]: ...
    @overload
    def update_status(self, client: Client, obj: SandboxTemplate) -> OpOf[SandboxTemplate]: ...
    @overload
    def update_status(self, client: Client, obj: Pod) -> OpOf[Pod]: ...
    @overload
    def update_status(self, client: Client, obj: KubeObject) -> OpOf[KubeObject]: ...
    def update_status(self, client: Client, obj: Any) -> Op:
        """``PUT .../status``: replace the status, compare-and-swap on resourceVersion.

        Returns the stored object, of ``obj``'s model (as :meth:`commit_update`).
        """
        yield from self._request(client, "update_status", obj.kind)
        return self.commit_update(obj, subresource="status")

    @overload
    def patch(
        self,
        client: Client,
        kind: Literal["Sandbox"],
        namespace: str,
        name: str,
        mutate: Callable[[Sandbox], None],
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
        uid: str | None = None,
        shallow: bool = False,
    ) -> OpOf[Sandbox]: ...
    @overload
    def patch(
        self,
        client: Client,
        kind: Literal["SandboxSet"],
        namespace: str,
        name: str,
        mutate: Callable[[SandboxSet], None],
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
        uid: str | None = None,
        shallow: bool = False,
    ) -> OpOf[SandboxSet]: ...
    @overload
    def patch(
        self,
        client: Client,
        kind: Literal["SandboxClaim"],
        namespace: str,
        name: str,
        mutate: Callable[[SandboxClaim], None],
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
        uid: str | None = None,
        shallow: bool = False,
    ) -> OpOf[SandboxClaim]: ...
    @overload
    def patch(
        self,
        client: Client,
        kind: Literal["SandboxTemplate"],
        namespace: str,
        name: str,
        mutate: Callable[[SandboxTemplate], None],
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
        uid: str | None = None,
        shallow: bool = False,
    ) -> OpOf[SandboxTemplate]: ...
    @overload
    def patch(
        self,
        client: Client,
        kind: Literal["Pod"],
        namespace: str,
        name: str,
        mutate: Callable[[Pod], None],
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
        uid: str | None = None,
        shallow: bool = False,
    ) -> OpOf[Pod]: ...
    @overload
    def patch(
        self,
        client: Client,
        kind: str,
        namespace: str,
        name: str,
        mutate: Callable[[KubeObject], None],
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
        uid: str | None = None,
        shallow: bool = False,
    ) -> OpOf[KubeObject]: ...
    def patch(
        self,
        client: Client,
        kind: str,
        namespace: str,
        name: str,
        mutate: Callable[[Any], None],
        *,
        subresource: str | None = None,
        resource_version: str | None = None,
        uid: str | None = None,
        shallow: bool = False,
    ) -> Op:
        """``PATCH`` (merge): apply ``mutate`` to a copy of the latest stored object.

        ``subresource="binding"`` (a pod's ``pods/binding``) writes the spec and the
        status at once. With ``resource_version`` the patch is an optimistic lock (409 if stale).
        With ``uid`` (a patch carrying ``metadata.uid``) it applies only to
        that object: one deleted and made anew under its name answers
        :class:`UIDConflictError`.
        ``shallow`` promises that ``mutate`` only assigns fields (or keys) of
        the metadata and of the spec or status, never changes their values in
        place: then those parts are copied one level deep instead of whole.

        Returns the stored object. Typed by ``kind`` as :meth:`peek` (``"Pod"``: a
        :class:`Pod`, and ``mutate`` takes a Pod; a ``str``: any stored object).
        """
        yield from self._request(client, "patch", kind)
        current = self._objects.get(kind, {}).get((namespace, name))  # peek(), on every patch
        if current is None:
            raise _not_found(kind, name)
        if uid is not None and uid != current.metadata.uid:
            # Checked before the resourceVersion, as ``Preconditions.Check`` does.
            raise UIDConflictError(kind, name, uid, current.metadata.uid)
        if (
            resource_version is not None
            and resource_version != current.metadata.resource_version
            and is_precondition(resource_version)
        ):
            # The patched object carries the version: the update's own answer.
            raise _conflict(kind, name, _MODIFIED)
        # Copy only what the patch may change: metadata always, then the status
        # for a status patch or the spec for a main-resource patch.
        # (The metadata is a model: copied one level deep without _one_level's dispatch.)
        meta = shallow_copy(current.metadata) if shallow else deep_copy(current.metadata)
        part = "status" if subresource == "status" else "spec"
        copy = _one_level if shallow else deep_copy
        parts = {"metadata": meta, part: copy(getattr(current, part))}
        if subresource == "binding" and not shallow:
            # pods/binding: sets nodeName and the PodScheduled condition in one write (a
            # shallow mutate assigns a new status, so the stored one needs no copy).
            parts["status"] = deep_copy(current.status)
        new = shallow_copy(current, parts)
        mutate(new)
        return self.commit_update(new, subresource=subresource, check_rv=False)

    @overload
    def delete(
        self,
        client: Client,
        kind: Literal["Sandbox"],
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
    ) -> OpOf[Sandbox | None]: ...
    @overload
    def delete(
        self,
        client: Client,
        kind: Literal["SandboxSet"],
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
    ) -> OpOf[SandboxSet | None]: ...
    @overload
    def delete(
        self,
        client: Client,
        kind: Literal["SandboxClaim"],
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
    ) -> OpOf[SandboxClaim | None]: ...
    @overload
    def delete(
        self,
        client: Client,
        kind: Literal["SandboxTemplate"],
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
    ) -> OpOf[SandboxTemplate | None]: ...
    @overload
    def delete(
        self,
        client: Client,
        kind: Literal["Pod"],
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
    ) -> OpOf[Pod | None]: ...
    @overload
    def delete(
        self,
        client: Client,
        kind: str,
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
    ) -> OpOf[KubeObject | None]: ...
    def delete(
        self,
        client: Client,
        kind: str,
        namespace: str,
        name: str,
        *,
        resource_version: str | None = None,
        uid: str | None = None,
    ) -> Op:
        """``DELETE`` as ``client``: delete or mark for deletion; 404 if absent, 403 if denied.

        ``resource_version`` and ``uid`` are preconditions (:meth:`commit_delete`).
        Returns what :meth:`commit_delete` returns, typed as it is: the object still
        stored, marked (``"Sandbox"``: a :class:`Sandbox`), or ``None`` when it is gone.
        """
        yield from self._request(client, "delete", kind)
        return self.commit_delete(
            kind,
            namespace,
            name,
            resource_version=resource_version,
            uid=uid,
            requester=client.name,
        )

    @overload
    def get(
        self, client: Client, kind: Literal["Sandbox"], namespace: str, name: str
    ) -> OpOf[Sandbox]: ...
    @overload
    def get(
        self, client: Client, kind: Literal["SandboxSet"], namespace: str, name: str
    ) -> OpOf[SandboxSet]: ...
    @overload
    def get(
        self, client: Client, kind: Literal["SandboxClaim"], namespace: str, name: str
    ) -> OpOf[SandboxClaim]: ...
    @overload
    def get(
        self, client: Client, kind: Literal["SandboxTemplate"], namespace: str, name: str
    ) -> OpOf[SandboxTemplate]: ...
    @overload
    def get(self, client: Client, kind: Literal["Pod"], namespace: str, name: str) -> OpOf[Pod]: ...
    @overload
    def get(self, client: Client, kind: str, namespace: str, name: str) -> OpOf[KubeObject]: ...
    def get(self, client: Client, kind: str, namespace: str, name: str) -> Op:
        """``GET`` from the API server (not a cache): the latest object, or 404.

        Typed by ``kind`` as :meth:`peek`, without the ``None`` (``"Sandbox"``: a
        :class:`Sandbox`; a ``str``: any stored object).
        """
        yield from self._request(client, "get", kind)
        obj = self.peek(kind, namespace, name)
        if obj is None:
            raise _not_found(kind, name)
        return obj


POD_FINALIZER: Final = "kubelet.kruise-sim/cleanup"
"""Finalizer on sandbox pods: a delete only marks them; the kubelet removes them after stopping.
A pod no node runs has no kubelet to wait for: its delete drops it (:meth:`ApiServer.commit_delete`)."""

_POD_TERMINAL: Final = ("Failed", "Succeeded")

ANN_GRACE_SECONDS: Final = "sim.kruise.io/grace-seconds"
"""Pod annotation overriding the grace period of its deletion (seconds): the model's stand-in
for DeleteOptions.gracePeriodSeconds, which upstream passes with the delete."""
_STAND_INS: Final = frozenset({ANN_GRACE_SECONDS})
"""The model's own annotations that stand in for what upstream passes elsewhere."""


def _check_metadata(kind: str, name: str, meta: Any) -> None:
    """Refuse a write whose metadata the API server's validation refuses (422 Invalid).

    Only the annotations' total size is checked here (``ValidateAnnotationsSize``,
    with the rule every earlier check asks: ``annotations_size_problem``): the
    other rules of the metadata are checked where objects enter the model
    (manifests, E2B metadata), and the components write only valid keys.
    """
    annotations = meta.annotations
    if annotations_size_problem(annotations) is None:
        return
    # The model's own stand-ins (a delete's grace period, which upstream passes in
    # DeleteOptions) are no annotations upstream writes: not counted. Only those keys:
    # a user's own key of the same prefix counts as any other.
    if not _STAND_INS.isdisjoint(annotations):
        annotations = {k: v for k, v in annotations.items() if k not in _STAND_INS}
    if annotations_size_problem(annotations) is not None:
        raise ApiError(
            422,
            "Invalid",
            f'{kind} "{name}" is invalid: metadata.annotations: '
            f"Too long: must have at most {ANNOTATIONS_MAX} bytes",
        )


def pod_update_refusal(old: Any, new: Any, *, bind: bool = True) -> str | None:
    """Why the API server refuses to update pod ``old`` into ``new`` (a 422), or ``None``.

    The spec is immutable but for what :func:`pod_spec_change_problem` lets
    change; ``bind`` lets an unset ``spec.nodeName`` be set, as the model's
    scheduler binds with a plain write (a user's apply may not). Then only a
    change of the containers can break the in-place resize rules; the
    answer is ``"<field>: <reason>"``.
    """
    if new.spec is old.spec:
        return None
    problem = pod_spec_change_problem(old.spec, new.spec, bind=bind)
    if problem is not None:
        return f"{problem[0]}: {problem[1]}"
    before = old.spec.get("containers")
    after = new.spec.get("containers")
    if after is before or after == before:
        return None
    return pod_update_error(old.spec, new.spec)


def pod_delete_refusal(pod: Any, requester: str) -> str | None:
    """Why the pod-delete webhook denies ``requester`` deleting ``pod``, or ``None``.

    Pods a sandbox created (label ``agents.kruise.io/created-by: sandbox``)
    may be deleted only by the sandbox controller, and by the garbage
    collector: here the GC's cascade is how a deleted Sandbox's pod goes
    (upstream's controller deletes it itself before dropping the Sandbox's
    finalizer, and the reference does not say whether the GC would pass).
    A pod no Sandbox owns any more (its Sandbox deleted with ``Orphan``
    propagation) is let through: nothing would ever delete it otherwise, and
    a Sandbox made anew under its name would wait for it for ever.
    """
    meta = pod.metadata
    if meta.labels.get(keys.LABEL_CREATED_BY) != "sandbox" or requester in _POD_DELETERS:
        return None
    if not any(ref.kind == "Sandbox" for ref in meta.owner_references):
        return None
    return (
        f"pod {meta.namespace}/{meta.name} belongs to a sandbox: only the sandbox controller "
        f'may delete it, not "{requester}" (delete the Sandbox instead)'
    )


def is_precondition(resource_version: str) -> bool:
    """Whether an update's ``resourceVersion`` is a precondition (compare-and-swap).

    As ``Store.Update``: a version that parses to 0, or none at all, asks for
    an unconditional update, which pods and custom resources allow.
    """
    return resource_version.strip("0") != ""


def _propagated(finalizers: list[str], policy: Propagation) -> list[str]:
    """The finalizers after a delete with ``policy`` (``deletionFinalizersForGarbageCollection``).

    The same list when nothing changes.
    """
    kept = [f for f in finalizers if f not in _GC_FINALIZERS]
    if policy == "Orphan":
        kept.append(ORPHAN)
    elif policy == "Foreground":
        kept.append(FOREGROUND)
    return finalizers if set(kept) == set(finalizers) else kept


_SERVED: Final = frozenset(API_VERSIONS.items())
"""``(kind, apiVersion)`` of what this server stores: an owner of another is never known to be gone."""

_SOLID: Final = object()
_DANGLING: Final = object()
_WAITING: Final = object()


def _uuid4_text(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))`` for 128 random ``bits``, without the UUID object.

    The same bits set (variant RFC 4122, version 4) and the same text: every
    object the model creates draws a UID, and the object's ``__init__`` and
    ``__str__`` were two of the calls of each.
    """
    n = (bits & ~(0xC000 << 48) | 0x8000 << 48) & ~(0xF000 << 64) | 4 << 76
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _delay_to(now: float, at: float) -> float:
    """The delay from ``now`` that a SimPy timeout fires after at the moment ``at`` or the
    float just after it, never before.

    SimPy fires a timeout at ``now + delay``; with ``delay = at - now`` that
    sum can round one step below ``at`` (when ``now`` is below half of
    ``at`` the subtraction is inexact), and an event meant to wait for the
    one due at ``at`` would overtake it.
    """
    delay = at - now
    while now + delay < at:
        delay = math.nextafter(delay, math.inf)
    return delay


def _one_level(value: Any) -> Any:
    """A copy one level deep: a model's fields, or a dict's or list's items, are shared."""
    # Models first: a patch copies the metadata and a status or spec, mostly models.
    if isinstance(value, BaseModel):
        return shallow_copy(value)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    if value is None:
        return None
    return shallow_copy(value)


class _CollectOrphan:
    """The garbage collector looking at an object created (or re-owned) for an owner gone."""

    __slots__ = ("api", "kind", "name", "namespace", "uid")

    def __init__(self, api: ApiServer, kind: str, namespace: str, name: str, uid: str) -> None:
        self.api = api
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.uid = uid

    def __call__(self, _event: simpy.Event) -> None:
        self.api._attempt_to_delete(
            self.kind, self.namespace, self.name, uid=self.uid, why="gc.orphan_deleted"
        )


class _Held:
    """A watch event in flight to one informer, held back by ``watch_lag`` faults (``draws``)
    or in order behind one that is."""

    __slots__ = (
        "at",
        "base",
        "delivered",
        "delivery",
        "draws",
        "own",
        "version",
    )

    def __init__(
        self,
        informer: Informer,
        event_type: str,
        kind: str,
        old: Any,
        new: Any,
        base: float,
        own: float,
        at: float,
        draws: Sequence[tuple[Fault, float]],
    ) -> None:
        self.delivery = partial(informer.apply, event_type, kind, old, new)
        self.base = base
        """When it would arrive without any fault: stored, plus the ordinary lag."""
        self.own = own
        """When it would arrive but for the events before it: ``base`` plus the draws."""
        self.at = at
        """When it is due: ``own``, or the arrival of the event before it if that is later."""
        self.draws = draws
        self.version = 0
        """Bumped at each reschedule: the timers of earlier versions are stale."""
        self.delivered = False


class _HeldQueue:
    """The watch events in flight to one informer while a ``watch_lag`` holds one back, in order.

    Events stay in order: a release moves an event no earlier than the one
    before it, and the timer of an event delivers, first, any before it still
    queued (a rescheduled event's new timer may fire after an older one set
    for the same moment).
    """

    def __init__(self, api: ApiServer, informer: Informer, floor: float) -> None:
        self.api = api
        self.informer = informer
        self.floor = floor
        """The arrival of the last event delivered (or of the untracked ones before the first)."""
        self.items: deque[_Held] = deque()

    def fire(self, held: _Held, version: int, _event: simpy.Event) -> None:
        """Deliver the queued events up to ``held`` (a SimPy callback of its timer)."""
        if held.delivered or held.version != version:
            return  # rescheduled, or delivered already with one behind it
        items = self.items
        while items:
            first = items.popleft()
            first.delivered = True
            self.floor = first.at
            first.delivery(_event)
            if first is held:
                break
        if not items and self.api._held.get(self.informer) is self:
            del self.api._held[self.informer]

    def release(self, now: float, ended: Callable[[Fault], bool]) -> float:
        """Drop the draws of the ``ended`` faults, move the events they held earlier, and
        return when the last queued event is due."""
        env = self.api.ctx.env
        prev = self.floor
        for held in self.items:
            if any(ended(f) for f, _ in held.draws):
                held.draws = [(f, d) for f, d in held.draws if not ended(f)]
                own = held.base
                for _, draw in held.draws:
                    own += draw
                held.own = own
            due = max(held.own, now, prev)
            if due < held.at:
                delay = _delay_to(now, due)
                held.at = now + delay  # when SimPy fires it: no earlier than ``due``
                held.version += 1
                timer = env.timeout(delay)
                timer.callbacks.append(partial(self.fire, held, held.version))
            prev = held.at
        return prev
