"""The API server's rules for names, keys and label values, and errors that point below a field.

Kubernetes checks the same few shapes everywhere (``k8s.io/apimachinery``
``util/validation``): object names are DNS-1123 subdomains, namespaces and
container names DNS-1123 labels, label and annotation keys and finalizers
qualified names (``example.com/name``), label values short and plain. Each
``*_problem`` function returns why a value is not of its shape, or ``None``.

A validator that checks a whole structure (a pod template, a label map) raises
:class:`FieldProblem` to say which part below its field is wrong; the manifest
loader appends :attr:`FieldProblem.loc` to the field's path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pytest_kruise_agents.api.problems import format_path, kind_and_value

__all__ = [
    "ANNOTATIONS_MAX",
    "FieldProblem",
    "annotations_size",
    "annotations_size_problem",
    "check_annotations",
    "check_env_vars",
    "check_finalizers",
    "check_labels",
    "check_string_keys",
    "dns_label_problem",
    "dns_subdomain_problem",
    "env_name_problem",
    "generate_name_problem",
    "label_value_problem",
    "name_as_label_problem",
    "qualified_name_problem",
]

_DNS_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN: Final = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
_NAME_PART: Final = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")

_NAME_PART_RULE: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
ANNOTATIONS_MAX: Final = 256 * 1024
"""``TotalAnnotationSizeLimitB``: the bytes all annotation keys and values may take."""
GENERATED_PREFIX_MAX: Final = 63 - 5
"""``SimpleNameGenerator``'s ``maxGeneratedNameLength``: a prefix is cut to this length."""
_GENERATED_SUFFIX: Final = "x" * 5
"""Stands for the 5 random lowercase alphanumeric characters the generator appends."""


class FieldProblem(ValueError):
    """A validation error about a part of the value being validated.

    ``loc`` is the path from the validated field to the offending part
    (``("spec", "containers", 1, "name")``) and ``reason`` says what is wrong;
    ``str()`` is both, ``spec.containers[1].name: ...``, for callers that
    show the message whole.
    """

    def __init__(self, loc: Sequence[int | str], reason: str) -> None:
        self.loc = tuple(loc)
        self.reason = reason
        super().__init__(f"{format_path(self.loc)}: {reason}" if self.loc else reason)


def dns_label_problem(value: str, *, what: str = "label") -> str | None:
    """Why ``value`` is no RFC 1123 label (``my-name``, at most 63 characters), or ``None``."""
    if len(value) <= 63 and _DNS_LABEL.fullmatch(value):
        return None
    return (
        f"invalid value {value!r}: a lowercase RFC 1123 {what} must consist of lower case "
        "alphanumeric characters or '-', start and end with an alphanumeric character, "
        "and have at most 63 characters"
    )


def dns_subdomain_problem(value: str) -> str | None:
    """Why ``value`` is no RFC 1123 subdomain (``a.b-c``, at most 253 characters), or ``None``."""
    if len(value) <= 253 and _DNS_SUBDOMAIN.fullmatch(value):
        return None
    return (
        f"invalid value {value!r}: a lowercase RFC 1123 subdomain must consist of lower case "
        "alphanumeric characters, '-' or '.', start and end with an alphanumeric character, "
        "and have at most 253 characters"
    )


def generate_name_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a ``generateName`` (``base-``), or ``None``.

    The API server checks the prefix itself (``NameIsDNSSubdomain(prefix,
    true)``, whose ``maskTrailingDash`` replaces the last two characters of a
    prefix that ends in '-' with an 'a', after a first one: ``-`` alone is
    refused), then the name generated from it (the prefix cut to 58
    characters, plus 5): ``a.-`` passes the first check, and makes no name.
    """
    masked = prefix[:-2] + "a" if len(prefix) > 1 and prefix.endswith("-") else prefix
    generated = prefix[:GENERATED_PREFIX_MAX] + _GENERATED_SUFFIX
    if dns_subdomain_problem(masked) is None and dns_subdomain_problem(generated) is None:
        return None
    return (
        f"invalid prefix {prefix!r}: names made from it must be lowercase RFC 1123 "
        "subdomains (lower case alphanumeric characters, '-' or '.', starting and "
        "ending with an alphanumeric character)"
    )


# Cached: every object the model builds checks the same few keys and values.
@functools.lru_cache(maxsize=4096)
def qualified_name_problem(value: str) -> str | None:
    """Why ``value`` is no qualified name (``name`` or ``example.com/name``), or ``None``."""
    prefix, slash, name = value.rpartition("/")
    if slash and not prefix:
        return f"invalid key {value!r}: the prefix before '/' must not be empty"
    if prefix:
        if "/" in prefix:
            return (
                f"invalid key {value!r}: a qualified name is a name with an optional "
                "DNS subdomain prefix and one '/'"
            )
        if dns_subdomain_problem(prefix) is not None:
            return f"invalid key {value!r}: the prefix {prefix!r} must be a lowercase DNS subdomain"
    if not name:
        return f"invalid key {value!r}: the name part must not be empty"
    if len(name) > 63:
        return f"invalid key {value!r}: the name part must be at most 63 characters"
    if _NAME_PART.fullmatch(name) is None:
        return f"invalid key {value!r}: the name part {_NAME_PART_RULE}"
    return None


@functools.lru_cache(maxsize=4096)
def label_value_problem(value: str) -> str | None:
    """Why ``value`` is no label value (empty, or a name part of at most 63), or ``None``."""
    if len(value) > 63:
        return f"invalid value {value[:20]!r}...: must be at most 63 characters, got {len(value)}"
    if value and _NAME_PART.fullmatch(value) is None:
        return f"invalid value {value!r}: a label value {_NAME_PART_RULE}"
    return None


def name_as_label_problem(name: str, label: str) -> str | None:
    """Why an object's ``name`` cannot be the value of the ``label`` its controller writes, or ``None``.

    A name (an RFC 1123 subdomain) is a valid label value when it is at most
    63 characters long.
    """
    if len(name) <= 63:
        return None
    return (
        f"must be at most 63 characters, got {len(name)}: "
        f"the name becomes the value of each sandbox's {label!r} label"
    )


def check_labels(labels: Mapping[Any, Any], loc: Sequence[int | str] = ()) -> None:
    """Raise :class:`FieldProblem` at ``loc`` + the key for a bad label key or value.

    Only keys and values that are strings are checked: a value of another
    kind is a type error reported by whoever decodes the map.
    """
    for key, value in labels.items():
        if not isinstance(key, str):
            continue
        why = qualified_name_problem(key)
        if why is None and isinstance(value, str):
            why = label_value_problem(value)
        if why is not None:
            raise FieldProblem((*loc, key), why)


def check_annotations(annotations: Mapping[Any, Any], loc: Sequence[int | str] = ()) -> None:
    """Raise :class:`FieldProblem` for a bad annotation key, or annotations over 256 KiB.

    The case of a key does not matter (``Example.COM/owner`` is fine): apimachinery's
    ``ValidateAnnotations`` checks ``IsQualifiedName(strings.ToLower(k))``,
    where label keys and finalizers are checked as written.
    """
    for key in annotations:
        if not isinstance(key, str):
            continue
        if qualified_name_problem(_go_lower(key)) is not None:
            # Quote the key as written (it is invalid in any case, so as written too).
            why = qualified_name_problem(key) or f"invalid key {key!r}"
            raise FieldProblem((*loc, key), why)
    too_big = annotations_size_problem(annotations)
    if too_big is not None:
        raise FieldProblem(loc, too_big)


def annotations_size(annotations: Mapping[Any, Any]) -> int:
    """The bytes ``annotations`` take against the limit: each key and value in UTF-8.

    A value that is no string counts nothing (it is a type error reported by
    whoever decodes the map).
    """
    # surrogatepass: a lone surrogate (read as U+FFFD later, as Go does) is 3 bytes too.
    return sum(
        _utf8_size(key) + (_utf8_size(value) if isinstance(value, str) else 0)
        for key, value in annotations.items()
        if isinstance(key, str)
    )


def annotations_size_problem(annotations: Mapping[Any, Any]) -> str | None:
    """Why ``annotations`` are too big to store (over 256 KiB in all), or ``None``.

    The one size rule (apimachinery's ``ValidateAnnotationsSize``): the API
    server refuses every create, update and patch that breaks it, and the
    checks made before a write (a manifest, an E2B create, a SandboxClaim's
    env vars) ask the same function of what the write would store.
    """
    # Characters first: a character is at most 4 bytes in UTF-8, so maps of up to a
    # quarter of the limit in characters (every map the model writes in a usual run)
    # need no encoding at all; this runs on each write of the API server.
    try:
        # Two C-level passes (len of a non-string sized value only overestimates: the
        # exact count below then decides).
        chars = sum(map(len, annotations)) + sum(map(len, annotations.values()))
    except TypeError:  # a key or value without a length (an int): count the strings only
        chars = sum(len(k) for k in annotations if isinstance(k, str)) + sum(
            len(v) for v in annotations.values() if isinstance(v, str)
        )
    if chars * 4 <= ANNOTATIONS_MAX:
        return None
    size = annotations_size(annotations)
    if size <= ANNOTATIONS_MAX:
        return None
    return f"may not be more than 256 KiB in total, got {size} bytes"


def _go_lower(text: str) -> str:
    """``text`` as Go's ``strings.ToLower`` makes it: each character's own lower case.

    Python's ``str.lower`` makes two characters of one (``İ`` becomes
    ``i̇``) where Go's ``unicode.ToLower`` keeps one (``i``).
    """
    if text.isascii():
        return text.lower()
    return "".join([c.lower()[:1] or c for c in text])


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def check_finalizers(finalizers: Sequence[Any], loc: Sequence[int | str] = ()) -> None:
    """Raise :class:`FieldProblem` for a finalizer that is no qualified name.

    As apimachinery's ``ValidateFinalizers``, the garbage collector's
    ``orphan`` and ``foregroundDeletion`` cannot both be set: the dependents
    would be both kept and deleted.
    """
    for i, name in enumerate(finalizers):
        if isinstance(name, str):
            why = qualified_name_problem(name)
            if why is not None:
                raise FieldProblem((*loc, i), why.replace("invalid key", "invalid finalizer"))
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        raise FieldProblem(loc, "finalizer orphan and foregroundDeletion cannot be both set")


def check_string_keys(value: Any, loc: Sequence[int | str] = ()) -> None:
    """Raise :class:`FieldProblem` at the mapping that has a key which is no string.

    A manifest is JSON on the wire, where every key is a string; YAML also
    writes ``{1: a}`` or ``{true: a}``. Such a key in a free-form part (a pod
    template's ``nodeSelector``) would only fail later, when the controller
    hashes or copies the template, so it is refused where it is written.
    A mapping or list reached twice (a YAML alias) is checked once.
    """
    seen: set[int] = set()
    pending: list[tuple[Any, tuple[int | str, ...]]] = [(value, tuple(loc))]
    while pending:
        node, where = pending.pop()
        if not isinstance(node, dict | list) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, list):
            pending.extend((item, (*where, i)) for i, item in reversed(list(enumerate(node))))
            continue
        for key in node:
            if not isinstance(key, str):
                raise FieldProblem(where, f"a key must be a string, got {kind_and_value(key)}")
        pending.extend((item, (*where, key)) for key, item in reversed(list(node.items())))


def env_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an environment variable, or ``None`` if it can.

    A process gets its environment as ``NAME=value`` C strings (``execve``): a
    name holding ``=`` is read back as another name (Go's ``exec`` writes
    ``{"A=B": "1"}`` as ``A=B=1``, which is ``A`` = ``B=1``), a NUL cannot
    travel at all, and an empty name is no variable anybody can read.
    """
    if not name:
        return "a name must not be empty"
    if "=" in name:
        return "a name must not contain '='"
    if "\0" in name:
        return "a name must not contain a NUL character"
    return None


def check_env_vars(env: Mapping[Any, Any], loc: Sequence[int | str] = ()) -> None:
    """Raise :class:`FieldProblem` for the first entry of ``env`` no process can carry.

    The one rule for env vars that reach a sandbox's processes (an E2B
    create's ``envVars``, a SandboxClaim's ``spec.envVars``, envd's ``/init``
    and commands): a bad name is reported at ``loc`` (``invalid variable name
    'A=B': a name must not contain '='``), a value holding a NUL at ``loc`` +
    the name (``must not contain a NUL character``).
    """
    for name, value in env.items():
        if not isinstance(name, str):
            raise FieldProblem(loc, f"a variable name must be a string, got {kind_and_value(name)}")
        why = env_name_problem(name)
        if why is not None:
            raise FieldProblem(loc, f"invalid variable name {name!r}: {why}")
        if not isinstance(value, str):
            raise FieldProblem((*loc, name), f"must be a string, got {kind_and_value(value)}")
        if "\0" in value:
            raise FieldProblem((*loc, name), "must not contain a NUL character")
