"""``kubectl apply`` against the simulated API server: plan every write, then commit.

An apply is all or nothing: every check the API server would make at commit
time (a name given twice, a non-zero ``resourceVersion`` on a create, a
stale one or one that is no unsigned integer on an update, a ``uid`` other
than the stored object's, an immutable field, a pod update it refuses, a
finalizer added to an object being deleted) runs while planning, against the stored objects, so that one
bad document raises one :class:`InvalidError` before anything has changed.

An update replaces the labels, annotations and spec of the stored object with
the manifest's (a pod keeps the ``spec.nodeName`` its binding set if the
manifest states none), and its finalizers and owner references when the manifest
states them (``null`` states none); status and the other metadata stay the
API server's. An update that changes nothing is
not written (no new ``resourceVersion``, no watch event), as the API server
skips a no-op update. An object needs a name (``kubectl apply`` refuses one
with only a ``generateName``); a plan for ``kubectl create`` takes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pytest_kruise_agents.api.copying import deep_copy, shallow_copy
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.manifest import KubeObject
from pytest_kruise_agents.api.meta import OwnerReference
from pytest_kruise_agents.api.pod import default_requests, validate_pod_spec
from pytest_kruise_agents.api.problems import format_path
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate
from pytest_kruise_agents.api.validation import FieldProblem
from simulator.apiserver import ApiServer, is_precondition, pod_update_refusal
from simulator.errors import ConflictError

__all__ = ["Write", "commit", "plan"]


@dataclass(frozen=True, slots=True)
class Write:
    """One planned write: ``new`` to create (``existing`` is None) or to replace ``existing``.

    ``new`` is None for an update that changes nothing.
    """

    existing: Any | None
    new: Any | None


def plan(api: ApiServer, objs: list[KubeObject], *, create: bool = False) -> list[Write]:
    """Check every object against the store and build its write; raise before any change.

    ``create`` plans ``kubectl create``: every object is a new one (an object
    named by ``generateName`` only is welcome), and one that exists is refused.
    Without it, ``kubectl apply``: an object must have a name.
    """
    seen: dict[tuple[str, str, str], int] = {}
    writes: list[Write] = []
    for index, obj in enumerate(objs):
        meta = obj.metadata
        where = f"{obj.kind}/{meta.name or meta.generate_name or '?'}"
        if not meta.name and not meta.generate_name:
            raise InvalidError(f"{where} metadata.name", "is required")
        if not meta.name and not create:
            # kubectl apply refuses it ("cannot use generate name with apply"):
            # each apply of the manifest would make one more object.
            raise InvalidError(
                f"{where} metadata.name",
                "is required: apply needs a name (with only generateName, "
                "each apply would make a new object), as kubectl apply does",
            )
        if obj.kind == "Pod":
            _check_pod_spec(where, obj.spec)
        if not meta.name:  # generateName: each document is a new object
            writes.append(Write(None, _fresh(where, obj)))
            continue
        key = (obj.kind, meta.namespace, meta.name)
        if key in seen:
            # kubectl would create the object, then configure it with the second
            # document; one apply naming an object twice is a mistake: refuse it.
            raise InvalidError(
                f"{where} metadata.name",
                f"{meta.name!r} is given twice in one apply "
                f"(objects {seen[key] + 1} and {index + 1})",
            )
        seen[key] = index
        existing = api.peek(obj.kind, meta.namespace, meta.name)
        if existing is None:
            writes.append(Write(None, _fresh(where, obj)))
        elif create:
            # The API server's 409 AlreadyExists, raised before any write.
            raise ConflictError(
                f"{where} metadata.name",
                f"{meta.name!r} already exists in namespace {meta.namespace}",
            )
        else:
            writes.append(Write(existing, _update(where, existing, obj)))
    return writes


def commit(api: ApiServer, writes: list[Write]) -> list[Any]:
    """Make the planned writes; return the stored result of each (the stored object if unchanged).

    Updates that complete a deletion (the last finalizer removed) go last: the
    garbage collection they start must not remove an object that a later
    document of the same apply updates.
    """
    out: list[Any] = [w.existing for w in writes]
    order = sorted(range(len(writes)), key=lambda i: _completes_deletion(writes[i]))
    for i in order:
        write = writes[i]
        if write.new is None:
            continue
        if write.existing is None:
            out[i] = api.commit_create(write.new)
        else:
            out[i] = api.commit_update(write.new, check_rv=False)
    return out


def _completes_deletion(write: Write) -> bool:
    new = write.new
    return (
        new is not None
        and new.metadata.deletion_timestamp is not None
        and not (new.metadata.finalizers)
    )


def _fresh(where: str, obj: KubeObject) -> Any:
    """The object to create from ``obj``; refused if it claims to be a stored version."""
    if obj.metadata.resource_version and is_precondition(obj.metadata.resource_version):
        # The API server's answer: the manifest is a dump of an object that
        # no longer exists (``kubectl get -o yaml``, delete, apply); creating
        # it would pass an old version off as current. Drop the field to create.
        # (etcd3's ``store.Create`` refuses a non-zero version only: "0" is none.)
        raise InvalidError(
            f"{where} metadata.resourceVersion",
            f"should not be set on objects to be created, got {obj.metadata.resource_version!r}",
        )
    fresh = deep_copy(obj)
    if not isinstance(fresh, SandboxTemplate):  # the only kind without a status
        fresh.status = type(fresh.status)()
    return fresh


def _update(where: str, existing: Any, obj: KubeObject) -> Any | None:
    """The object that replaces ``existing``, or None if ``obj`` changes nothing."""
    meta, old = obj.metadata, existing.metadata
    if meta.uid and meta.uid != old.uid:
        # The manifest is of another object of the same name (one deleted and
        # made anew since): the API server's UID precondition refuses it.
        raise ConflictError(
            f"{where} metadata.uid",
            f"Precondition failed: UID in precondition: {meta.uid}, UID in object meta: {old.uid}",
        )
    rv = meta.resource_version
    # An empty resourceVersion is no precondition, as on a create, and one
    # that parses to 0 asks for an unconditional update (``Store.Update``),
    # which compares the parsed numbers: "007" is version 7.
    if (
        rv
        and rv != old.resource_version
        and _parse_version(where, rv) not in (0, int(old.resource_version or 0))
    ):
        # kubectl sends the manifest's resourceVersion: an optimistic lock.
        raise ConflictError(
            f"{where} metadata.resourceVersion",
            f"the object has been modified (stored {old.resource_version}, manifest {rv}); "
            "please apply your changes to the latest version and try again",
        )
    if (
        isinstance(existing, SandboxClaim)
        and isinstance(obj, SandboxClaim)
        and existing.spec.replicas != obj.spec.replicas
    ):
        raise InvalidError(f"{where} spec.replicas", "field is immutable")
    if isinstance(existing, SandboxTemplate):
        _check_materialized(where, existing, obj)
    finalizers = _finalizers(where, existing, obj)
    owners = _owner_references(existing, obj)
    spec = _pod_spec(existing, obj.spec) if obj.kind == "Pod" else obj.spec
    if (
        meta.labels == old.labels
        and meta.annotations == old.annotations
        and finalizers == old.finalizers
        and owners is old.owner_references
        and spec == existing.spec
    ):
        return None
    new = shallow_copy(existing)
    new.metadata = shallow_copy(old)
    new.metadata.labels = dict(meta.labels)
    new.metadata.annotations = dict(meta.annotations)
    new.metadata.finalizers = finalizers
    new.metadata.owner_references = owners
    new.spec = deep_copy(spec)
    if obj.kind == "Pod":
        why = pod_update_refusal(existing, new, bind=False)
        if why is not None:
            field, _, reason = why.partition(": ")
            raise InvalidError(f"{where} {field}", reason)
    return new


_MAX_VERSION = 2**64 - 1
"""The largest resourceVersion: the API server parses one as a uint64."""


def _parse_version(where: str, rv: str) -> int:
    """``rv`` as the API server parses it (``strconv.ParseUint``, base 10); refused if it is none.

    ``ParseResourceVersion`` answers such a version Invalid, naming the field:
    no retry of the same manifest could ever go through.
    """
    if rv.isascii() and rv.isdigit() and int(rv) <= _MAX_VERSION:
        return int(rv)
    raise InvalidError(
        f"{where} metadata.resourceVersion",
        f"must be a resourceVersion the API server gave (an unsigned integer), got {rv!r}",
    )


def _pod_spec(existing: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec an apply of a Pod's manifest ``spec`` writes over the stored pod ``existing``.

    The API server defaults every write alike (a limit with no request
    requests it), and a ``nodeName`` the manifest leaves out stays the one the
    scheduler's binding set, as ``kubectl apply`` leaves the fields it does
    not manage: else every apply of a pod's own manifest would change its
    node once it is scheduled, which the pod-update rules refuse. A
    ``nodeName`` the manifest states (``null`` too) is compared by those rules.
    """
    spec = default_requests(spec)
    node = existing.spec.get("nodeName")
    if node is not None and "nodeName" not in spec:
        spec = {**spec, "nodeName": node}
    return spec


def _check_pod_spec(where: str, spec: dict[str, Any]) -> None:
    """Refuse a Pod's spec as the API server does on a create or an update (``ValidatePodSpec``).

    A pod the model stored with a bad spec would run: with no container, or
    a negative request that makes its node's allocation negative.
    """
    try:
        validate_pod_spec(spec)
    except FieldProblem as problem:
        raise InvalidError(f"{where} {format_path(problem.loc)}", problem.reason) from None


def _finalizers(where: str, existing: Any, obj: KubeObject) -> list[str]:
    """The finalizers after the update: the manifest's if it states them, else the stored ones.

    A manifest that does not mention finalizers leaves those of the
    controllers (a pod's, a sandbox's) in place, as kubectl apply leaves the
    fields it does not manage; ``finalizers: []`` removes them all, and so
    does ``finalizers: null`` (loaded as a stated empty list).
    """
    meta, old = obj.metadata, existing.metadata
    if "finalizers" not in meta.model_fields_set and not meta.finalizers:
        return list(old.finalizers)
    added = [f for f in meta.finalizers if f not in old.finalizers]
    if added and old.deletion_timestamp is not None:
        raise InvalidError(
            f"{where} metadata.finalizers",
            f"no new finalizers can be added if the object is being deleted, found {added}",
        )
    return list(meta.finalizers)


def _owner_references(existing: Any, obj: KubeObject) -> list[OwnerReference]:
    """The owner references after the update: the manifest's if it states them, else the stored.

    The stored list itself when they are equal: the API server files an
    object under its owners anew (and its garbage collector looks at it)
    only when the list changed. Not stated, the controllers' references stay,
    as kubectl apply leaves the fields it does not manage; ``[]`` or ``null``
    removes them all (an object taken out of its owner's hands).
    """
    meta, stored = obj.metadata, existing.metadata.owner_references
    if "owner_references" not in meta.model_fields_set and not meta.owner_references:
        return stored  # type: ignore[no-any-return]
    if meta.owner_references == stored:
        return stored  # type: ignore[no-any-return]
    return [deep_copy(ref) for ref in meta.owner_references]


def _check_materialized(where: str, existing: SandboxTemplate, obj: KubeObject) -> None:
    """Refuse a spec change of a template a SandboxSet materialised (upstream's webhook does)."""
    ref = existing.metadata.controller_ref()
    if ref is None or ref.kind != "SandboxSet" or obj.spec == existing.spec:
        return
    spec = existing.spec
    for name, info in type(spec).model_fields.items():
        if getattr(obj.spec, name) != getattr(spec, name):
            raise InvalidError(
                f"{where} spec.{info.alias or name}",
                f"field is immutable: the template is revision {existing.metadata.name!r} "
                f"of SandboxSet {ref.name!r}; change the SandboxSet instead",
            )
