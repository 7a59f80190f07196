"""Read and write manifests: YAML/JSON text and dicts in, typed models out, and back.

:func:`load_manifests` is what ``kubectl apply -f`` does before it talks to the
API server: split a YAML stream read as go-yaml v2 reads it (or a stream of
JSON objects), convert it as kubectl converts it to JSON (integral floats are
integers, no infinity or NaN), unwrap lists (``kind: List``, ``SandboxClaimList``), check
``apiVersion`` and ``kind``, and validate each object against its model. Every
problem becomes exactly one :class:`~pytest_kruise_agents.api.errors.InvalidError`
whose ``field`` says where (``SandboxClaim/my-claim spec.replicas``) and whose
``reason`` says what (``must be >= 1``).

:func:`dump` and :func:`dump_all` print objects the way ``kubectl get -o yaml``
and ``-o json`` do: camelCase keys sorted as Go sorts a map's (go-yaml's
order for YAML), no nulls, no empty optional lists or maps, strings quoted
where go-yaml would read them as another type, ``<``, ``>`` and ``&``
escaped in JSON as Go escapes them, and a ``kind: List`` wrapper around
several objects.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from types import UnionType
from typing import Any, Literal, TypeAlias, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticSerializationError

from pytest_kruise_agents.api.base import MANIFEST, KubeModel
from pytest_kruise_agents.api.e2b import replace_surrogates
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.goyaml import YamlLoader, resolve_scalar
from pytest_kruise_agents.api.keys import API_VERSION
from pytest_kruise_agents.api.meta import ObjectMeta
from pytest_kruise_agents.api.pod import Pod
from pytest_kruise_agents.api.problems import (
    expectation,
    format_path,
    kind_and_value,
    reason,
    show,
    type_word,
)
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.sandboxtemplate import SandboxTemplate
from pytest_kruise_agents.api.validation import FieldProblem, check_string_keys

__all__ = [
    "API_VERSIONS",
    "KINDS",
    "RESOURCE_ALIASES",
    "KubeObject",
    "ManifestSource",
    "PodKind",
    "SandboxClaimKind",
    "SandboxKind",
    "SandboxSetKind",
    "SandboxTemplateKind",
    "YamlLoader",
    "dump",
    "dump_all",
    "listing_order",
    "load_manifest",
    "load_manifests",
    "resolve_kind",
    "to_manifest_dict",
]

KubeObject: TypeAlias = Sandbox | SandboxSet | SandboxClaim | SandboxTemplate | Pod
"""Any object the fake cluster stores."""


def listing_order(obj: KubeObject) -> tuple[str, str]:
    """Namespace, then name: the order in which the API server lists objects (a sort key)."""
    meta = obj.metadata
    return meta.namespace, meta.name


# The spellings of each kind that ``resolve_kind`` accepts, as literal types, so that
# ``cluster.get("sbx", ...)`` (and a backend's ``get``) types as a Sandbox: the kind name, every kubectl name
# (singular, plural, short) and those names qualified by group (and version). Other
# casings resolve too, and type as any stored object (KubeObject).
SandboxKind: TypeAlias = Literal[
    "Sandbox",
    "sandbox",
    "sandboxes",
    "sbx",
    "sandbox.agents.kruise.io",
    "sandboxes.agents.kruise.io",
    "sbx.agents.kruise.io",
    "sandbox.v1alpha1.agents.kruise.io",
    "sandboxes.v1alpha1.agents.kruise.io",
    "sbx.v1alpha1.agents.kruise.io",
]
"""Every spelling of the ``Sandbox`` kind that types ``Cluster.get``/``list`` (and
``Backend.get``/``list``) as Sandboxes."""
SandboxSetKind: TypeAlias = Literal[
    "SandboxSet",
    "sandboxset",
    "sandboxsets",
    "sbs",
    "sandboxset.agents.kruise.io",
    "sandboxsets.agents.kruise.io",
    "sbs.agents.kruise.io",
    "sandboxset.v1alpha1.agents.kruise.io",
    "sandboxsets.v1alpha1.agents.kruise.io",
    "sbs.v1alpha1.agents.kruise.io",
]
"""Every spelling of the ``SandboxSet`` kind (see :data:`SandboxKind`)."""
SandboxClaimKind: TypeAlias = Literal[
    "SandboxClaim",
    "sandboxclaim",
    "sandboxclaims",
    "sbc",
    "sandboxclaim.agents.kruise.io",
    "sandboxclaims.agents.kruise.io",
    "sbc.agents.kruise.io",
    "sandboxclaim.v1alpha1.agents.kruise.io",
    "sandboxclaims.v1alpha1.agents.kruise.io",
    "sbc.v1alpha1.agents.kruise.io",
]
"""Every spelling of the ``SandboxClaim`` kind (see :data:`SandboxKind`)."""
SandboxTemplateKind: TypeAlias = Literal[
    "SandboxTemplate",
    "sandboxtemplate",
    "sandboxtemplates",
    "sbt",
    "sandboxtemplate.agents.kruise.io",
    "sandboxtemplates.agents.kruise.io",
    "sbt.agents.kruise.io",
    "sandboxtemplate.v1alpha1.agents.kruise.io",
    "sandboxtemplates.v1alpha1.agents.kruise.io",
    "sbt.v1alpha1.agents.kruise.io",
]
"""Every spelling of the ``SandboxTemplate`` kind (see :data:`SandboxKind`)."""
PodKind: TypeAlias = Literal["Pod", "pod", "pods", "po", "pod.v1", "pods.v1", "po.v1"]
"""Every spelling of the ``Pod`` kind (see :data:`SandboxKind`)."""

ManifestSource: TypeAlias = str | bytes | Mapping[str, Any] | KubeModel | Sequence[Any]
"""What :func:`load_manifests` accepts: text, a dict, a model, or a list of dicts/models."""

KINDS: dict[str, type[KubeObject]] = {
    "Sandbox": Sandbox,
    "SandboxSet": SandboxSet,
    "SandboxClaim": SandboxClaim,
    "SandboxTemplate": SandboxTemplate,
    "Pod": Pod,
}
"""Kind name → model class."""

API_VERSIONS: dict[str, str] = {
    "Sandbox": API_VERSION,
    "SandboxSet": API_VERSION,
    "SandboxClaim": API_VERSION,
    "SandboxTemplate": API_VERSION,
    "Pod": "v1",
}
"""Kind name → the only ``apiVersion`` the kind is served at."""

RESOURCE_ALIASES: dict[str, str] = {
    "sandbox": "Sandbox",
    "sandboxes": "Sandbox",
    "sbx": "Sandbox",
    "sandboxset": "SandboxSet",
    "sandboxsets": "SandboxSet",
    "sbs": "SandboxSet",
    "sandboxclaim": "SandboxClaim",
    "sandboxclaims": "SandboxClaim",
    "sbc": "SandboxClaim",
    "sandboxtemplate": "SandboxTemplate",
    "sandboxtemplates": "SandboxTemplate",
    "sbt": "SandboxTemplate",
    "pod": "Pod",
    "pods": "Pod",
    "po": "Pod",
}
"""Every name ``kubectl get <name>`` accepts (singular, plural, short) → kind."""

# ``kubectl get sandboxes.agents.kruise.io`` and ``pods.v1`` name the group too.
_AGENTS_SUFFIXES = (".agents.kruise.io", ".v1alpha1.agents.kruise.io")
"""``resource.group`` and ``resource.version.group``, as kubectl reads them."""

_GROUP_SUFFIXES = {
    "Sandbox": _AGENTS_SUFFIXES,
    "SandboxSet": _AGENTS_SUFFIXES,
    "SandboxClaim": _AGENTS_SUFFIXES,
    "SandboxTemplate": _AGENTS_SUFFIXES,
    "Pod": (".v1",),
}

# kubectl writes a list of objects with this envelope (``kubectl get -o yaml``).
_LIST_API_VERSION = "v1"


def resolve_kind(name: str) -> str:
    """The kind a kubectl resource name refers to (``sbx`` → ``Sandbox``).

    Names are case-insensitive, and a kind name or a group-qualified plural
    (``sandboxes.agents.kruise.io``) works too, as with kubectl.
    """
    key = name.strip().lower()
    if key in RESOURCE_ALIASES:
        return RESOURCE_ALIASES[key]
    for kind, suffixes in _GROUP_SUFFIXES.items():
        for suffix in suffixes:
            if key.endswith(suffix) and RESOURCE_ALIASES.get(key.removesuffix(suffix)) == kind:
                return kind
    for kind in KINDS:
        if key == kind.lower():
            return kind
    raise InvalidError(
        "resource",
        f"the server doesn't have a resource type {name!r}; "
        f"known: {', '.join(sorted(RESOURCE_ALIASES))}",
    )


# --------------------------------------------------------------------------- loading


def load_manifests(source: ManifestSource) -> list[KubeObject]:
    """Parse and validate every object in ``source``, in order.

    ``source`` is YAML text (several documents separated by ``---``), JSON
    text, one mapping, a sequence of mappings, or models (each checked as
    its manifest would be, and returned as a new, equal model). Any object
    with ``items`` (``kind: List``, ``SandboxClaimList``) is unwrapped. Empty
    documents are skipped. Raise one
    :class:`InvalidError` for the first problem found.
    """
    try:
        return _load_all(source)
    except RecursionError:
        # A YAML alias that contains itself, or thousands of nested brackets.
        raise InvalidError("manifest", "nested too deeply (or an alias refers to itself)") from None


def _load_all(source: ManifestSource) -> list[KubeObject]:
    if isinstance(source, bytes):
        try:
            source = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidError(
                "manifest", f"not UTF-8 text: {exc.reason} at byte {exc.start}"
            ) from None
    if isinstance(source, str):
        documents = _parse_text(source)
    elif isinstance(source, Mapping | KubeModel):
        documents = [source]
    elif isinstance(source, Sequence):
        documents = list(source)
    else:
        raise InvalidError(
            "manifest",
            f"expected YAML/JSON text, a mapping or a list of them, got {type(source).__name__}",
        )
    objects: list[KubeObject] = []
    for index, document in enumerate(documents):
        _load_node(document, f"document[{index}]", objects)
    return objects


def load_manifest(source: ManifestSource) -> KubeObject:
    """Like :func:`load_manifests`, for a source that holds exactly one object."""
    objects = load_manifests(source)
    if len(objects) != 1:
        raise InvalidError("manifest", f"expected exactly one object, got {len(objects)}")
    return objects[0]


class _DuplicateKeyError(ValueError):
    """A JSON object names a key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # ``json.loads`` keeps the last of two equal keys; the API server's strict
    # decoding refuses the object, as the YAML loader above does.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(f"invalid JSON: duplicate key {key!r}")
        out[key] = value
    return out


def _parse_text(text: str) -> list[Any]:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        # kubectl reads a text that starts with a brace as a stream of JSON
        # objects (``jq '.items[]'`` prints one). Flow-style YAML (``{kind:
        # Pod}``) starts with one too, hence the fallback for text that is no
        # JSON at all; JSON that fails otherwise (a trailing comma) is refused.
        values = _parse_json_stream(text)
        if values is not None:
            return values
    elif stripped.startswith("["):
        # YAML to kubectl; JSON first for its error messages' sake.
        try:
            return [replace_surrogates(json.loads(text, object_pairs_hook=_unique_keys))]
        except _DuplicateKeyError as exc:
            raise InvalidError("manifest", str(exc)) from None
        except json.JSONDecodeError:
            pass
    try:
        return list(yaml.load_all(text, Loader=YamlLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise InvalidError("manifest", f"invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise InvalidError("manifest", f"invalid YAML: {exc}") from None


_JSON_SPACE = " \t\n\r"

_JSON_STOPS = frozenset('{}[],:"\\')
"""Characters at which a JSON error is one of JSON, not text in another language.

A trailing comma fails at ``}``, a missing one at ``"``, a truncated text at
its end; flow-style YAML fails at an unquoted word (``{kind: Pod}``), a
quote (``'Pod'``) or a ``---``.
"""


def _parse_json_stream(text: str) -> list[Any] | None:
    """The JSON values of ``text``, one after another; None if it is no JSON but YAML."""
    decoder = json.JSONDecoder(object_pairs_hook=_unique_keys)
    values: list[Any] = []
    pos = len(text) - len(text.lstrip(_JSON_SPACE))
    while pos < len(text):
        try:
            value, pos = decoder.raw_decode(text, pos)
        except _DuplicateKeyError as exc:
            raise InvalidError("manifest", str(exc)) from None
        except json.JSONDecodeError as exc:
            at = text[exc.pos] if exc.pos < len(text) else ""
            if at and at not in _JSON_STOPS and at >= " ":
                return None
            raise InvalidError(
                "manifest", f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            ) from None
        values.append(replace_surrogates(value))
        while pos < len(text) and text[pos] in _JSON_SPACE:
            pos += 1
    return values


def _load_node(node: Any, where: str, out: list[KubeObject]) -> None:
    if node is None:
        return  # an empty YAML document, as between two ``---`` lines
    if isinstance(node, KubeModel):
        if not isinstance(node, Sandbox | SandboxSet | SandboxClaim | SandboxTemplate | Pod):
            raise InvalidError(where, f"{type(node).__name__} is not a top-level object kind")
        # Checked as its manifest would be: a model edited in place (get, change
        # the copy, apply) skipped every validator, as attribute writes do.
        out.append(_build(_manifest_of(node, where), where))
        return
    if isinstance(node, Mapping):
        # apimachinery reads any object with ``items`` as a list (``kind: List``,
        # ``SandboxClaimList``), and ``kind: List`` without them as an empty one.
        if "items" in node or node.get("kind") == "List":
            _load_list(node, where, out)
        else:
            out.append(_build(node, where))
        return
    if isinstance(node, Sequence) and not isinstance(node, str | bytes):
        for index, item in enumerate(node):
            _load_node(item, f"{where}[{index}]", out)
        return
    raise InvalidError(
        where, f"expected an object (a mapping with apiVersion and kind), got {show(node)}"
    )


def _manifest_of(obj: KubeObject, where: str) -> dict[str, Any]:
    """The manifest ``obj`` stands for, as ``kubectl get -o json`` would print it."""
    try:
        # No warnings: a value of the wrong type is written as it is (a boolean
        # in a number field once put back, below), and the strict load that
        # follows names its field.
        data = obj.model_dump(mode="json", by_alias=True, exclude_none=True, warnings=False)
    except PydanticSerializationError as exc:
        name = obj.metadata.name if isinstance(obj.metadata, ObjectMeta) else ""
        ident = f"{obj.kind}/{name}" if isinstance(name, str) and name else where
        raise InvalidError(ident, f"cannot be written as a manifest: {exc}") from None
    _write_back_booleans(obj, data)
    meta = obj.metadata
    if (
        isinstance(meta, ObjectMeta)
        and not meta.finalizers
        and "finalizers" not in meta.model_fields_set
        and isinstance(data.get("metadata"), dict)
    ):
        # A model that never stated finalizers does not state "none": applied, it
        # keeps the stored ones (as its dump, which leaves them out, would).
        data["metadata"].pop("finalizers", None)
    return data


def _write_back_booleans(model: BaseModel, data: Any) -> None:
    """Put back into ``data`` (``model``'s dump) each boolean held by a number field.

    pydantic writes ``True`` in an ``int`` field as ``1`` (a bool is an int to
    it), with no warning: ``replicas = True`` set by attribute would load as
    one replica, where the manifest it stands for (``replicas: true``) is
    refused. Written back as it is, the strict load names the field.
    """
    if not isinstance(data, dict):
        return
    fields = type(model).__pydantic_fields__
    for name, value in model.__dict__.items():
        info = fields.get(name)
        key = name if info is None else info.alias or name
        if key not in data:
            continue
        if isinstance(value, bool):
            if info is not None and _holds_number(info.annotation):
                data[key] = value
        elif isinstance(value, BaseModel):
            _write_back_booleans(value, data[key])
        elif isinstance(value, list | tuple) and isinstance(data[key], list):
            for item, out in zip(value, data[key], strict=False):
                if isinstance(item, BaseModel):
                    _write_back_booleans(item, out)
        elif isinstance(value, dict) and isinstance(data[key], dict):
            for item_key, item in value.items():
                if isinstance(item, BaseModel) and item_key in data[key]:
                    _write_back_booleans(item, data[key][item_key])


def _holds_number(annotation: Any) -> bool:
    """Whether a field of type ``annotation`` holds an ``int`` or ``float`` and no ``bool``."""
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else ()
    types = members or (annotation,)
    return bool not in types and any(t in (int, float) for t in types)


def _load_list(node: Mapping[str, Any], where: str, out: list[KubeObject]) -> None:
    items = node.get("items")
    if items is None:
        return
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise InvalidError(f"{where} items", f"must be a list, got {show(items)}")
    for index, item in enumerate(items):
        _load_node(_typed_item(node, item), f"{where}.items[{index}]", out)


def _typed_item(node: Mapping[str, Any], item: Any) -> Any:
    """``item`` of the list ``node``, with the list's type if it states none.

    The API server leaves out each item's ``apiVersion`` and ``kind`` in a
    typed list (``kind: SandboxClaimList``); apimachinery's ``UnstructuredList``
    gives an item that has neither the list's ``apiVersion`` and its kind
    minus ``List``, as ``kubectl apply`` reads it.
    """
    kind = node.get("kind")
    item_kind = kind.removesuffix("List") if isinstance(kind, str) else ""
    if not isinstance(item, Mapping) or not item_kind or _is_text(item.get("kind")):
        return item
    if _is_text(item.get("apiVersion")):
        return item
    typed = {**item, "kind": item_kind}
    if _is_text(node.get("apiVersion")):
        typed["apiVersion"] = node["apiVersion"]
    return typed


def _is_text(value: Any) -> bool:
    """Whether ``value`` is what apimachinery's ``GetKind``/``GetAPIVersion`` read as set."""
    return isinstance(value, str) and value != ""


def _build(node: Mapping[str, Any], where: str) -> KubeObject:
    kind = node.get("kind")
    if kind is None:
        raise InvalidError(f"{where} kind", f"required value: one of {', '.join(sorted(KINDS))}")
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidError(
            f"{where} kind", f"unknown kind {kind!r}: expected one of {', '.join(sorted(KINDS))}"
        )
    metadata = node.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    # An object is named by kind/name when it has a name; otherwise by its
    # position in the input, which is the only handle the user has.
    ident = f"{kind}/{name}" if isinstance(name, str) and name else where
    expected = API_VERSIONS[kind]
    api_version = node.get("apiVersion")
    if api_version is None:
        raise InvalidError(f"{ident} apiVersion", f"required value: {expected!r}")
    if api_version != expected:
        raise InvalidError(
            f"{ident} apiVersion",
            f"unsupported apiVersion {api_version!r} for kind {kind}: expected {expected!r}",
        )
    model = KINDS[kind]
    try:
        check_string_keys(node)
        node = _as_sent(node, ())
    except FieldProblem as problem:
        path = format_path(problem.loc)
        raise InvalidError(f"{ident} {path}" if path else ident, problem.reason) from None
    try:
        # Strict, as the API server decodes JSON: camelCase names only, no
        # value of the wrong kind converted, null fields unset (see MANIFEST).
        return model.model_validate(
            node, strict=True, by_alias=True, by_name=False, context=MANIFEST
        )
    except ValidationError as exc:
        path, reason = _first_problem(exc.errors(), node, model)
        field = f"{ident} {path}" if path else ident
        raise InvalidError(field, reason) from None


def _as_sent(value: Any, loc: tuple[int | str, ...]) -> Any:
    """``value`` as kubectl sends it: JSON, where a float has no infinity and no NaN.

    kubectl converts YAML to JSON (``json: unsupported value: +Inf`` for
    ``.inf``; JSON's ``NaN`` is a syntax error), and an integral float is
    written as an integer (Go writes ``float64(3)`` as ``3``): ``replicas:
    3.0``, ``1e3`` or ``!!float 3`` reach the API server as integers, in an
    integer field or a free-form map alike. A float at or past 2**63 stays
    one, as apimachinery reads it back.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            word = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
            raise FieldProblem(
                loc, f"unsupported value {word}: a manifest is sent as JSON, which has none"
            )
        if value.is_integer() and -(2**63) <= value < 2**63:
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {key: _as_sent(item, (*loc, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_sent(item, (*loc, index)) for index, item in enumerate(value)]
    return value


_NOWHERE = object()
"""What :func:`_value_at` finds where the document has nothing."""


def _value_at(node: Any, loc: Sequence[int | str]) -> Any:
    """The value of the document at ``loc``, or ``_NOWHERE``."""
    for part in loc:
        in_map = isinstance(node, Mapping) and isinstance(part, str) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_map or in_list):
            return _NOWHERE
        node = node[part]
    return node


def _first_problem(
    errors: list[ErrorDetails], node: Mapping[str, Any], model: type[BaseModel]
) -> tuple[str, str]:
    first = errors[0]
    if first["type"] == "missing":
        first = _misspelt(first, errors)
    loc = first["loc"]
    # A value that matches no member of a union (IntOrString) yields one error
    # per member, at the value's own location plus a member tag
    # (``maxUnavailable.int``, ``maxUnavailable.str``): report them as one.
    # Matched by location: the union's errors are the ones whose parent
    # location holds their input itself, not a mapping with it as a field.
    if loc and first["type"] not in ("missing", "extra_forbidden"):
        where = loc[:-1]
        siblings = [
            e
            for e in errors
            if e["loc"][:-1] == where and e["type"] not in ("missing", "extra_forbidden")
        ]
        if len(siblings) > 1 and _value_at(node, where) is first["input"]:
            wanted = " or ".join(dict.fromkeys(expectation(e) for e in siblings))
            return format_path(where), f"must be {wanted}, got {kind_and_value(first['input'])}"
    error = (first.get("ctx") or {}).get("error")
    if isinstance(error, FieldProblem):
        # A validator of a whole structure says which part of it is wrong.
        return format_path((*loc, *error.loc)), error.reason
    if type_word(first["type"]) is not None:
        # Strict decoding converts nothing: say what kind of value came instead.
        return format_path(
            loc
        ), f"must be {type_word(first['type'])}, got {kind_and_value(first['input'])}"
    return format_path(loc), reason(first, known=_field_names(model, loc[:-1]))


def _misspelt(missing: ErrorDetails, errors: list[ErrorDetails]) -> ErrorDetails:
    """The unknown field beside a missing one that is its misspelling (``template_name`` for
    ``templateName``), else the missing field's own error.

    The user did write the field: "unknown field (did you mean ...?)" says
    what to fix, where "required value" would send them looking for nothing.
    """
    where, wanted = missing["loc"][:-1], str(missing["loc"][-1])
    for error in errors:
        loc = error["loc"]
        if (
            error["type"] == "extra_forbidden"
            and loc[:-1] == where
            and difflib.get_close_matches(str(loc[-1]).lower(), [wanted.lower()], n=1)
        ):
            return error
    return missing


def _field_names(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The manifest (camelCase) field names of the model at ``loc`` below ``model``, if any.

    An unknown field is compared with them, so that ``claim_timeout`` is
    answered with "did you mean 'claimTimeout'?".
    """
    current: Any = model
    for part in loc:
        current = _unwrap_optional(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {info.alias or name: info for name, info in current.model_fields.items()}
            if not isinstance(part, str) or part not in fields:
                return []
            current = fields[part].annotation
        elif get_origin(current) is list and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return []
    current = _unwrap_optional(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` → ``X``; anything else as it is."""
    members = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(members) == 1:
        return members[0]
    return annotation


# --------------------------------------------------------------------------- dumping


def to_manifest_dict(obj: KubeModel) -> dict[str, Any]:
    """The mapping ``kubectl get -o json`` shows for ``obj``.

    camelCase keys, sorted at every level as Go sorts a map's keys (kubectl
    prints what it gets as an unstructured object: maps, not structs), and
    no nulls. An empty list or map is left out where the model cannot tell
    it from an absent one (``labels``, ``finalizers``, status
    ``conditions``: Go's ``omitempty``), and kept where it can (``runtimes:
    []``, ``inplaceUpdate: {}``), since the API server keeps a custom
    resource's ``[]`` as written and a field left out would load back as
    another value. A pod condition's empty ``reason`` and ``message`` are
    left out too (``v1.PodCondition`` marks them ``omitempty``, where the
    CRDs' ``metav1.Condition`` requires them). Free-form maps such as a pod
    template are kept as given but for their key order. So a dump loads
    back to an equal object.
    """
    data = obj.model_dump(mode="json", by_alias=True, exclude_none=True)
    _drop_empty(obj, data, top=True)
    if isinstance(obj, Pod):
        _drop_empty_pod_condition_texts(data)
    sorted_data: dict[str, Any] = _sort_keys(data)
    return sorted_data


def _drop_empty_pod_condition_texts(data: dict[str, Any]) -> None:
    status = data.get("status")
    conditions = status.get("conditions") if isinstance(status, dict) else None
    for cond in conditions if isinstance(conditions, list) else []:
        for key in ("reason", "message"):
            if cond.get(key) == "":
                del cond[key]


def _sort_keys(value: Any) -> Any:
    """``value`` with every mapping's keys in code point order (Go's byte-wise UTF-8 order)."""
    if isinstance(value, dict):
        return {key: _sort_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sort_keys(item) for item in value]
    return value


def _drop_empty(model: BaseModel, data: dict[str, Any], *, top: bool = False) -> None:
    for name, info in type(model).model_fields.items():
        key = info.alias or name
        if key not in data:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _drop_empty(value, data[key])
        elif isinstance(value, list):
            for item, item_data in zip(value, data[key], strict=True):
                if isinstance(item, BaseModel):
                    _drop_empty(item, item_data)
        # A top-level ``spec: {}`` or ``metadata: {}`` stays, as kubectl shows it.
        empty = data[key] in ({}, []) and not (top and key in ("metadata", "spec"))
        if empty and _empty_is_default(info, value):
            del data[key]


def _empty_is_default(info: FieldInfo, value: Any) -> bool:
    """Whether a field left out loads back as ``value`` (an empty list, map or model)."""
    if info.is_required():
        return False
    default = info.get_default(call_default_factory=True)
    # An empty model of an optional field (``scaleStrategy: {}``) is no default None.
    return bool(default == value)


def _go_yaml_less(a: str, b: str) -> bool:
    """go-yaml v2's map key order (``keyList.Less``), which ``kubectl get -o yaml`` prints.

    Not plain code point order: where two keys first differ, a letter sorts
    after anything else, and runs of digits compare as numbers (``item2``
    before ``item10``).
    """
    for i, (ca, cb) in enumerate(zip(a, b, strict=False)):
        if ca == cb:
            continue
        al, bl = ca.isalpha(), cb.isalpha()
        if al and bl:
            return ca < cb
        if al or bl:
            return bl
        an = bn = 0
        if ca == "0" or cb == "0":
            # A zero inside a number ("10" against "1-") is no leading zero.
            j = i - 1
            while j >= 0 and a[j].isdecimal():
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and a[ai].isdecimal():
            an = an * 10 + ord(a[ai]) - ord("0")
            ai += 1
        bi = i
        while bi < len(b) and b[bi].isdecimal():
            bn = bn * 10 + ord(b[bi]) - ord("0")
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)


def _go_yaml_compare(a: str, b: str) -> int:
    return -1 if _go_yaml_less(a, b) else (1 if _go_yaml_less(b, a) else 0)


_GO_YAML_KEY = functools.cmp_to_key(_go_yaml_compare)


class _Dumper(yaml.SafeDumper):
    """Block-style YAML like kubectl's (go-yaml v2): its key order, its quoting, ``|`` blocks.

    A string that would read as another type ("true", "", "0755") is double-quoted
    (:func:`_represent_str`), as go-yaml quotes it; one that only cannot stand plain
    (JSON text, ``a: b``, ``#x``, a leading blank) is single-quoted, as both emitters
    choose by themselves.
    """


_BASE60_FLOAT = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
"""go-yaml v2's ``isBase60Float``: text its encoder quotes though it reads it as a string."""


_BREAKS = frozenset("\x85\u2028\u2029")
"""Characters YAML 1.1 reads as line breaks, besides ``\n`` and ``\r``."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        style: str | None = "|"
    elif _BREAKS.intersection(value):
        # Line breaks to YAML 1.1 (NEL, LS, PS): PyYAML would write them raw in
        # single quotes, which folds them into a space on reading; escaped, they stay.
        style = '"'
    elif resolve_scalar(value)[0] != "str" or _BASE60_FLOAT.fullmatch(value):
        # Plain, go-yaml (and so kubectl, and load_manifests) would read it as another
        # kind: y and n (booleans), 1e3 and 08 (floats), 0o17 (an int), a date. PyYAML's
        # own resolver would leave some of those plain; quoted, a dump loads back equal.
        # go-yaml's encoder double-quotes these, and base-60 floats (12:34:56) too.
        style = '"'
    else:
        style = None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_dict(dumper: yaml.SafeDumper, value: dict[Any, Any]) -> yaml.MappingNode:
    # Every key is a string: manifests have no other (check_string_keys).
    items = sorted(value.items(), key=lambda item: _GO_YAML_KEY(item[0]))
    return dumper.represent_mapping("tag:yaml.org,2002:map", items)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(dict, _represent_dict)

_GO_JSON_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)
"""What Go's ``encoding/json`` escapes beyond ``json.dumps`` (HTML-safe by default).

These characters stand only inside strings in JSON text, so escaping them
in the whole text escapes them in the strings and changes no value.
"""


def _render(data: Any, fmt: Literal["yaml", "json"]) -> str:
    if fmt == "json":
        # kubectl indents JSON by four spaces, sorts keys as Go sorts a map's,
        # and ends with a newline.
        text = json.dumps(data, indent=4, ensure_ascii=False, sort_keys=True)
        return text.translate(_GO_JSON_ESCAPES) + "\n"
    if fmt == "yaml":
        return yaml.dump(data, Dumper=_Dumper, default_flow_style=False, allow_unicode=True)
    raise ValueError(f"unknown output format {fmt!r}: expected 'yaml' or 'json'")


def dump(obj: KubeModel, fmt: Literal["yaml", "json"] = "yaml") -> str:
    """One object as ``kubectl get <kind> <name> -o yaml`` (or ``-o json``) prints it."""
    return _render(to_manifest_dict(obj), fmt)


def dump_all(objs: Iterable[KubeModel], fmt: Literal["yaml", "json"] = "yaml") -> str:
    """Several objects as one ``kind: List``, as ``kubectl get <kind> -o yaml`` prints them."""
    data = {
        "apiVersion": _LIST_API_VERSION,
        "items": [to_manifest_dict(obj) for obj in objs],
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }
    return _render(data, fmt)
