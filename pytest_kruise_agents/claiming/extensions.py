"""E2B create metadata: the ``e2b.agents.kruise.io/*`` extension keys and the rest (§5.5, §6.6).

:func:`parse_create_metadata` splits the ``metadata`` of ``POST /sandboxes``
into typed options, Sandbox labels (``label:<key>`` entries) and the Sandbox
annotations left over. Every bad value is one :class:`BadRequestError` (400)
whose message names the key and the reason. :func:`e2b_claim_options` turns
the parsed request into the options of the shared claim path (§5.1), with a
stand-in access token; :func:`with_access_token` puts the real one in once
nothing is left to refuse, so that a refused create draws no token.

The request itself is one value, :class:`CreateRequest`, whatever path it
comes by (the cluster's keywords, the Backend seam, the E2B server):
:func:`create_spec` checks its kinds once (:func:`check_create_request`) and
makes the :class:`CreateSpec` the sandbox-manager is handed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.durations import parse_duration
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.quantity import parse_quantity
from pytest_kruise_agents.api.sandboxclaim import CSIMountConfig
from pytest_kruise_agents.api.validation import (
    FieldProblem,
    check_annotations,
    check_env_vars,
    label_value_problem,
)
from pytest_kruise_agents.claiming.csi import parse_csi_config
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.modification import (
    UUID_STAND_IN,
    ClaimOptions,
    InitRuntimeRequest,
    InplaceNames,
    claim_annotations_problem,
)
from pytest_kruise_agents.claiming.timeouts import DEFAULT_TIMEOUT_S, FOREVER, create_times

__all__ = [
    "BAD_EXTENSION_PREFIX",
    "BAD_METADATA_PREFIX",
    "E2B_INPLACE_NAMES",
    "KEY_CLAIM_TIMEOUT_SECONDS",
    "KEY_CPU_LIMIT",
    "KEY_CPU_REQUEST",
    "KEY_CREATE_ON_NO_STOCK",
    "KEY_CSI_MOUNT_POINT",
    "KEY_CSI_SUBPATH",
    "KEY_CSI_VOLUME_CONFIG",
    "KEY_CSI_VOLUME_NAME",
    "KEY_IMAGE",
    "KEY_MEMORY_LIMIT",
    "KEY_MEMORY_REQUEST",
    "KEY_NEVER_TIMEOUT",
    "KEY_RESERVE_FAILED_SANDBOX",
    "KEY_RESERVE_FAILED_SANDBOX_FOR",
    "KEY_RESERVE_PAUSED_SANDBOX_DURATION",
    "KEY_RETURN_SANDBOX_IP",
    "KEY_SANDBOX_GENERATE_NAME",
    "KEY_SANDBOX_IP",
    "KEY_SANDBOX_NAME",
    "KEY_SANDBOX_RESOURCE",
    "KEY_SKIP_INIT_RUNTIME",
    "KEY_WAIT_READY_TIMEOUT_SECONDS",
    "KNOWN_KEYS",
    "LABEL_PREFIX",
    "MAX_DURATION_S",
    "RESERVE_FOREVER",
    "TOKEN_STAND_IN",
    "CreateRequest",
    "CreateSpec",
    "E2BCreateOptions",
    "EnvVarProblem",
    "check_create_request",
    "check_env_vars_request",
    "check_string_map",
    "check_timeout_seconds",
    "create_spec",
    "e2b_claim_options",
    "env_vars_problem",
    "image_reference_name",
    "is_blacklisted",
    "is_dns1123_label",
    "is_image_reference",
    "is_label_value",
    "is_qualified_name",
    "parse_create_metadata",
    "with_access_token",
]

_E2B = keys.E2B_PREFIX
KEY_CLAIM_TIMEOUT_SECONDS: Final = _E2B + "claim-timeout-seconds"
KEY_WAIT_READY_TIMEOUT_SECONDS: Final = _E2B + "wait-ready-timeout-seconds"
KEY_CREATE_ON_NO_STOCK: Final = _E2B + "create-on-no-stock"
KEY_SKIP_INIT_RUNTIME: Final = _E2B + "skip-init-runtime"
KEY_NEVER_TIMEOUT: Final = _E2B + "never-timeout"
KEY_RESERVE_FAILED_SANDBOX: Final = _E2B + "reserve-failed-sandbox"
KEY_RESERVE_FAILED_SANDBOX_FOR: Final = _E2B + "reserve-failed-sandbox-for"
KEY_RESERVE_PAUSED_SANDBOX_DURATION: Final = _E2B + "reserve-paused-sandbox-duration"
KEY_IMAGE: Final = _E2B + "image"
KEY_CPU_REQUEST: Final = _E2B + "cpu-request"
KEY_CPU_LIMIT: Final = _E2B + "cpu-limit"
KEY_MEMORY_REQUEST: Final = _E2B + "memory-request"
KEY_MEMORY_LIMIT: Final = _E2B + "memory-limit"
KEY_CSI_VOLUME_CONFIG: Final = _E2B + "csi-volume-config"
KEY_CSI_VOLUME_NAME: Final = _E2B + "csi-volume-name"
KEY_CSI_MOUNT_POINT: Final = _E2B + "csi-mount-point"
KEY_CSI_SUBPATH: Final = _E2B + "csi-subpath"
KEY_RETURN_SANDBOX_IP: Final = _E2B + "return-sandbox-ip"
KEY_SANDBOX_NAME: Final = _E2B + "sandbox-name"
KEY_SANDBOX_GENERATE_NAME: Final = _E2B + "sandbox-generate-name"
KEY_SANDBOX_RESOURCE: Final = _E2B + "sandbox-resource"
"""Response-only: ``<namespace>/<name>`` of the delivered sandbox."""
KEY_SANDBOX_IP: Final = _E2B + "sandbox-ip"
"""Response-only: the pod IP, when ``return-sandbox-ip`` was asked for."""

E2B_INPLACE_NAMES: Final = InplaceNames(KEY_IMAGE, KEY_CPU_REQUEST, KEY_CPU_LIMIT)
"""The keys of an E2B create's in-place image and CPU, which a refusal of them names."""

KNOWN_KEYS: Final[tuple[str, ...]] = (
    KEY_CLAIM_TIMEOUT_SECONDS,
    KEY_WAIT_READY_TIMEOUT_SECONDS,
    KEY_CREATE_ON_NO_STOCK,
    KEY_SKIP_INIT_RUNTIME,
    KEY_NEVER_TIMEOUT,
    KEY_RESERVE_FAILED_SANDBOX,
    KEY_RESERVE_FAILED_SANDBOX_FOR,
    KEY_RESERVE_PAUSED_SANDBOX_DURATION,
    KEY_IMAGE,
    KEY_CPU_REQUEST,
    KEY_CPU_LIMIT,
    KEY_MEMORY_REQUEST,
    KEY_MEMORY_LIMIT,
    KEY_CSI_VOLUME_CONFIG,
    KEY_CSI_VOLUME_NAME,
    KEY_CSI_MOUNT_POINT,
    KEY_CSI_SUBPATH,
    KEY_RETURN_SANDBOX_IP,
    KEY_SANDBOX_NAME,
    KEY_SANDBOX_GENERATE_NAME,
    KEY_SANDBOX_RESOURCE,
    KEY_SANDBOX_IP,
)
"""Every ``e2b.agents.kruise.io/*`` metadata key upstream knows, request or response side."""

LABEL_PREFIX: Final = "label:"
BAD_EXTENSION_PREFIX: Final = "Bad extension param: "
BAD_METADATA_PREFIX: Final = "Bad metadata: "

TOKEN_STAND_IN: Final = UUID_STAND_IN
"""The access token :func:`e2b_claim_options` is given before the real one is drawn: a
UUID's text, as upstream's tokens (and this model's) are, so its size counts as theirs."""

RESERVE_FOREVER: Final = timedelta(seconds=-1)
"""``reserve_failed_for`` meaning "keep the failed sandbox forever" (any negative value does)."""

# Matched whole (fullmatch), as Go's anchored regexps match: Python's ``$``
# also matches before a final newline, so ``"x\n"`` would pass as ``"x"``.
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_GO_INT = re.compile(r"[+-]?[0-9]+")

# The grammar of github.com/distribution/reference, without IPv6 hosts.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?",
    re.ASCII,  # Go's \w is [0-9A-Za-z_]; Python's also takes any letter ("3.12é")
)
_MAX_IMAGE_NAME = 255

# Go's strconv.ParseBool.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def is_dns1123_label(value: str) -> bool:
    """Whether ``value`` is an RFC 1123 label (lowercase alphanumerics and ``-``, ≤ 63)."""
    return len(value) <= 63 and _DNS1123_LABEL.fullmatch(value) is not None


def is_qualified_name(key: str) -> bool:
    """Whether ``key`` is a Kubernetes qualified name: ``[prefix/]name``.

    ``name`` is at most 63 alphanumerics, ``-``, ``_`` or ``.``, starting and
    ending alphanumeric; the optional ``prefix`` is a DNS-1123 subdomain of at
    most 253 characters.
    """
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or _DNS1123_SUBDOMAIN.fullmatch(prefix) is None):
        return False
    return 0 < len(name) <= 63 and _QUALIFIED_NAME_PART.fullmatch(name) is not None


def is_label_value(value: str) -> bool:
    """Whether ``value`` is a valid Kubernetes label value (may be empty, ≤ 63)."""
    return len(value) <= 63 and _LABEL_VALUE.fullmatch(value) is not None


def is_blacklisted(key: str) -> bool:
    """Whether ``key`` uses a reserved prefix (``agents.kruise.io/``, ``e2b.agents.kruise.io/``)."""
    return key.startswith(keys.BLACKLISTED_PREFIXES)


def is_image_reference(value: str) -> bool:
    """Whether ``value`` is a container image reference: ``[host[:port]/]path[:tag][@digest]``."""
    name = image_reference_name(value)
    return name is not None and len(name) <= _MAX_IMAGE_NAME


def image_reference_name(value: str) -> str | None:
    """The name (``[host[:port]/]path``) of ``value`` read as an image reference, whatever its
    length; ``None`` if ``value`` has no such form (distribution/reference's ``ReferenceRegexp``)."""
    m = _IMAGE_REFERENCE.fullmatch(value)
    return None if m is None else m.group("name")


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """``POST /sandboxes`` (v1) / ``POST /v2/sandboxes`` after JSON decoding.

    ``timeout`` ``None`` means the manager's default (300 s). ``metadata`` still
    carries the ``e2b.agents.kruise.io/*`` extension keys and ``label:`` keys:
    the backend parses them with the claim rules.
    """

    template: str
    timeout: int | None = None
    auto_pause: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    env_vars: Mapping[str, str] = field(default_factory=dict)
    volume_mounts: Sequence[Mapping[str, str]] | None = None
    allow_internet_access: bool | None = None


@dataclass(frozen=True, slots=True)
class CreateSpec:
    """One create as every create path hands it to the sandbox-manager: who asks, and what.

    ``namespace`` is the caller's team (``""``: admin), ``user`` its API key id
    (the sandbox's owner). Made by :func:`create_spec`, its request holds
    copies of the caller's mappings: a create may run after its caller has
    changed them, or many creates (a burst) may share one spec.
    """

    namespace: str
    user: str
    request: CreateRequest


def create_spec(namespace: str, user: str, request: CreateRequest) -> CreateSpec:
    """The spec of a create by ``namespace``/``user``, checked and detached from the caller.

    Arguments of the wrong kind (typed or not, a Python caller may pass
    anything) raise :class:`InvalidError` (see :func:`check_create_request`);
    values the sandbox-manager judges (a timeout's range, metadata keys, a
    template that exists) are its 400s.
    """
    check_create_request(namespace, user, request)
    metadata: Mapping[str, str] | None = request.metadata
    env_vars: Mapping[str, str] | None = request.env_vars
    mounts = request.volume_mounts
    # Copies: the caller's may change before the create runs (a SimPy process, a
    # realtime server's pending call). None, where a mapping is typed, reads as empty.
    detached = dataclasses.replace(
        request,
        metadata={} if metadata is None else dict(metadata),
        env_vars={} if env_vars is None else dict(env_vars),
        volume_mounts=None if mounts is None else tuple(dict(v) for v in mounts),
    )
    return CreateSpec(namespace=namespace, user=user, request=detached)


def check_create_request(namespace: object, user: object, request: CreateRequest) -> None:
    """Refuse a create whose caller or fields are of the wrong kind, naming the field.

    What the E2B API's JSON could carry: a template name, a namespace,
    text metadata (its keys' own rules are the manager's: a 400 as upstream
    answers), whole seconds, text env vars, true or false. Raises
    :class:`InvalidError`; nothing is read, drawn or recorded. The fields are
    checked in this order, so that the first wrong one is the one named.
    """
    if not isinstance(request.template, str):
        raise InvalidError("template", f"must be a template name, got {request.template!r}")
    if not isinstance(namespace, str):
        raise InvalidError("namespace", f"must be a namespace name, got {namespace!r}")
    # Metadata is text, as the E2B API's map of strings (its keys' own rules are the
    # manager's: a 400, as upstream answers).
    check_string_map("metadata", request.metadata, "key to value")
    if request.timeout is not None:
        check_timeout_seconds(request.timeout)
    # The owner is an API key's id upstream (a UUID): it becomes the sandbox's owner label.
    if not isinstance(user, str) or not user or (why := label_value_problem(user)):
        reason = why if isinstance(user, str) and user else "must be a non-empty string"
        raise InvalidError("user", f"{reason} (it becomes the owner label of the sandbox)")
    # Environment variables are text, as the E2B API's envVars: 1 is not "1".
    check_string_map("env_vars", request.env_vars, "variable name to value")
    if not isinstance(request.auto_pause, bool):
        raise InvalidError("auto_pause", f"must be true or false, got {request.auto_pause!r}")
    internet: object = request.allow_internet_access
    if internet is not None and not isinstance(internet, bool):
        raise InvalidError(
            "allow_internet_access", f"must be true, false or None, got {internet!r}"
        )
    _check_volume_mounts(request.volume_mounts)


def _check_volume_mounts(volume_mounts: object) -> None:
    """Refuse volume mounts that are not a list of mappings of text (a missing part is the manager's 400)."""
    if volume_mounts is None:
        return
    if isinstance(volume_mounts, str | bytes | Mapping) or not isinstance(volume_mounts, Sequence):
        raise InvalidError("volume_mounts", f"must be a list of mappings, got {volume_mounts!r}")
    for i, mount in enumerate(volume_mounts):
        if not isinstance(mount, Mapping):
            raise InvalidError(f"volume_mounts[{i}]", f"must be a mapping, got {mount!r}")
        for part in ("name", "path"):
            # A missing one is the manager's 400 (volumeMounts[i].path: required).
            value = mount.get(part)
            if value is not None and not isinstance(value, str):
                raise InvalidError(f"volume_mounts[{i}].{part}", f"must be a string, got {value!r}")


def check_timeout_seconds(timeout: object) -> None:
    """Refuse a sandbox ``timeout`` that is not whole seconds (its range is the manager's 400)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int):
        raise InvalidError("timeout", f"must be an integer number of seconds, got {timeout!r}")


def check_string_map(field: str, value: object, what: str) -> None:
    """Refuse ``value`` (``None`` allowed) unless it maps strings to strings, naming ``field``.

    ``what`` says what it maps, for the message (``"variable name to value"``).
    """
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise InvalidError(field, f"must be a mapping of {what}, got {value!r}")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidError(field, f"keys and values must be strings, got {k!r}: {v!r}")


@dataclass(frozen=True)
class E2BCreateOptions:
    """What the metadata of one ``POST /sandboxes`` asks for, parsed.

    ``reserve_failed_for``: ``None`` deletes a failed sandbox, a positive
    duration keeps it that long, a negative one keeps it forever.
    ``annotations`` is the user metadata left after removing every extension
    key; ``labels`` come from ``label:<key>`` entries.
    """

    claim_timeout_seconds: int | None = None
    wait_ready_timeout_seconds: int | None = None
    create_on_no_stock: bool = True
    skip_init_runtime: bool = False
    never_timeout: bool = False
    reserve_failed_for: timedelta | None = None
    reserve_paused_duration: timedelta | None = None
    image: str | None = None
    cpu_request: str | None = None
    cpu_limit: str | None = None
    csi_mounts: list[CSIMountConfig] = field(default_factory=list)
    return_sandbox_ip: bool = False
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    sandbox_name: str | None = None
    sandbox_generate_name: str | None = None

    @property
    def inplace_update(self) -> bool:
        """Whether an in-place image or CPU change was asked for."""
        return self.image is not None or self.cpu_request is not None or self.cpu_limit is not None


def _bad(key: str, reason: str) -> BadRequestError:
    return BadRequestError(f"{BAD_EXTENSION_PREFIX}{key}: {reason}", field=key)


def _parse_bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise _bad(key, f"invalid boolean {value!r}, expected 'true' or 'false'")


def _parse_int(key: str, value: str) -> int:
    if _GO_INT.fullmatch(value) is None:
        raise _bad(key, f"invalid integer {value!r}")
    return int(value)


MAX_DURATION_S: Final = (2**63 - 1) // 10**9
"""The most whole seconds a Go ``time.Duration`` (int64 nanoseconds) holds."""


_MIN_GO_INT: Final = -(2**63)


def _parse_positive_seconds(key: str, value: str) -> int | None:
    seconds = _parse_int(key, value)
    if seconds < _MIN_GO_INT:
        # strconv.Atoi fails ("value out of range"): upstream's 400, not an ignored value.
        raise _bad(key, f"{value} is out of range (a Go int64)")
    if seconds > MAX_DURATION_S:
        # Upstream's Duration(n) * time.Second would overflow into garbage.
        raise _bad(key, f"{value} seconds is out of range (at most {MAX_DURATION_S})")
    # A non-positive timeout is ignored (upstream: "> 0 else ignored").
    return seconds if seconds > 0 else None


def _parse_duration(key: str, value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _bad(key, str(exc)) from exc


def _parse_reserve_failed_for(key: str, value: str) -> timedelta | None:
    text = value.strip()
    if text == "never":
        return None
    if text == "forever":
        return RESERVE_FOREVER
    d = _parse_duration(key, text)
    if d < timedelta(0):
        raise _bad(key, f"must be 'never', 'forever' or a duration >= 0, got {value!r}")
    return d if d > timedelta(0) else None


def _parse_paused_duration(key: str, value: str) -> timedelta:
    if value.strip() == "forever":
        return FOREVER
    d = _parse_duration(key, value.strip())
    if d <= timedelta(0):
        raise _bad(key, f"must be 'forever' or a positive duration, got {value!r}")
    return d


def _parse_cpu(key: str, value: str) -> str:
    try:
        q = parse_quantity(value)
    except ValueError as exc:
        raise _bad(key, str(exc)) from exc
    if q <= 0:
        raise _bad(key, f"must be a positive quantity, got {value!r}")
    return value


def _parse_csi_config(key: str, value: str) -> list[CSIMountConfig]:
    try:
        return parse_csi_config(value)
    except ValueError as exc:
        raise _bad(key, str(exc)) from exc


def _volume_mounts(volume_mounts: Sequence[Mapping[str, str]]) -> list[CSIMountConfig]:
    mounts: list[CSIMountConfig] = []
    for i, vm in enumerate(volume_mounts):
        for part in ("name", "path"):
            where = f"volumeMounts[{i}].{part}"
            value = vm.get(part)
            if not value:
                raise BadRequestError(f"{where}: required", field=where)
            if not isinstance(value, str):
                # JSON's schema gives strings; a Python caller may not (the mount's
                # model would name its own field, pv_name, not what was sent).
                raise BadRequestError(
                    f"{where}: must be a string, got {type(value).__name__} {value!r}", field=where
                )
        mounts.append(CSIMountConfig(pv_name=vm["name"], mount_path=vm["path"]))
    return mounts


class EnvVarProblem(NamedTuple):
    """What is wrong with an env var entry: the field it is in (``envVars.A``), the whole message."""

    field: str
    message: str


def env_vars_problem(field: str, env: Mapping[str, str]) -> EnvVarProblem | None:
    """The first entry of ``env`` no process can carry, or ``None`` if all can.

    :func:`~pytest_kruise_agents.api.validation.check_env_vars`'s rule, worded
    for a request: the message starts with the field (``envVars``,
    ``process.envs``, ...) and names the key: ``"envVars: invalid variable
    name 'A=B': a name must not contain '='"``, ``"envVars.A: must not
    contain a NUL character"``.
    """
    try:
        check_env_vars(env)
    except FieldProblem as exc:
        where = field + "".join(f".{part}" for part in exc.loc)
        return EnvVarProblem(where, f"{where}: {exc.reason}")
    return None


def check_env_vars_request(env: Mapping[str, str], field: str = "envVars") -> None:
    """Raise the :class:`BadRequestError` (400) of :func:`env_vars_problem`, if any.

    Every create path checks its env vars with it before anything changes:
    kept, they would fail every command the sandbox runs.
    """
    problem = env_vars_problem(field, env)
    if problem is not None:
        raise BadRequestError(problem.message, field=problem.field)


def parse_create_metadata(
    metadata: Mapping[str, str] | None,
    *,
    volume_mounts: Sequence[Mapping[str, str]] | None = None,
    for_clone: bool = False,
) -> E2BCreateOptions:
    """Parse the ``metadata`` (and ``volumeMounts``) of ``POST /sandboxes`` (§5.5).

    Raises :class:`BadRequestError` (400) for the first bad entry, with a
    message starting ``Bad extension param: `` for extension and ``label:``
    keys, or ``Bad metadata: `` for other keys. ``sandbox-name`` and
    ``sandbox-generate-name`` are accepted only when ``for_clone``.
    """
    md = dict(metadata or {})
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for key, value in md.items():
        if not isinstance(key, str) or not isinstance(value, str):
            # JSON gives strings; a Python caller may not (E2B metadata is map[string]string).
            # The reason names the part that is not one: the key, else the value.
            bad, part = (key, "key") if not isinstance(key, str) else (value, "value")
            raise BadRequestError(
                f"{BAD_METADATA_PREFIX}{key!r}: keys and values must be strings, "
                f"got the {part} {bad!r} ({type(bad).__name__})",
                field=str(key),
            )
        if key.startswith(LABEL_PREFIX):
            label = key[len(LABEL_PREFIX) :]
            if not is_qualified_name(label):
                raise _bad(key, f"label key {label!r} is not a valid qualified name")
            if is_blacklisted(label):
                raise _bad(key, f"label key {label!r} uses a reserved prefix")
            if not is_label_value(value):
                raise _bad(key, f"invalid label value {value!r}")
            labels[label] = value
        elif key.startswith(keys.E2B_PREFIX):
            if key not in KNOWN_KEYS or key in (KEY_SANDBOX_RESOURCE, KEY_SANDBOX_IP):
                raise _bad(key, "unknown or reserved extension key")
        elif not is_qualified_name(key):
            raise BadRequestError(
                f"{BAD_METADATA_PREFIX}key {key!r} is not a valid qualified name", field=key
            )
        elif is_blacklisted(key):
            raise BadRequestError(
                f"{BAD_METADATA_PREFIX}key {key!r} uses a reserved prefix", field=key
            )
        else:
            annotations[key] = value
    try:
        # Stored as the sandbox's annotations: the API server would refuse the lock
        # write of more than 256 KiB (upstream answers 500, or 400 for a no-stock
        # create); said here first, naming the metadata.
        check_annotations(annotations)
    except FieldProblem as exc:
        raise BadRequestError(f"{BAD_METADATA_PREFIX}{exc.reason}", field="metadata") from None

    get = md.get

    for key in (KEY_MEMORY_REQUEST, KEY_MEMORY_LIMIT):
        if get(key) is not None:
            raise _bad(key, "memory resize is not supported, only cpu")

    sandbox_name = get(KEY_SANDBOX_NAME)
    generate_name = get(KEY_SANDBOX_GENERATE_NAME)
    for key, name in ((KEY_SANDBOX_NAME, sandbox_name), (KEY_SANDBOX_GENERATE_NAME, generate_name)):
        if name is None:
            continue
        if not for_clone:
            raise _bad(key, "only supported when cloning from a checkpoint")
        # A generateName gets a random suffix, so it may end in '-'.
        candidate = name + "x" if key == KEY_SANDBOX_GENERATE_NAME else name
        if not is_dns1123_label(candidate):
            raise _bad(key, f"{name!r} is not a valid DNS-1123 label")

    claim_timeout = wait_ready = None
    if (v := get(KEY_CLAIM_TIMEOUT_SECONDS)) is not None:
        claim_timeout = _parse_positive_seconds(KEY_CLAIM_TIMEOUT_SECONDS, v)
    if (v := get(KEY_WAIT_READY_TIMEOUT_SECONDS)) is not None:
        wait_ready = _parse_positive_seconds(KEY_WAIT_READY_TIMEOUT_SECONDS, v)

    create_on_no_stock = True
    if (v := get(KEY_CREATE_ON_NO_STOCK)) is not None:
        create_on_no_stock = _parse_bool(KEY_CREATE_ON_NO_STOCK, v)
    skip_init = False
    if (v := get(KEY_SKIP_INIT_RUNTIME)) is not None:
        skip_init = _parse_bool(KEY_SKIP_INIT_RUNTIME, v)
    never_timeout = False
    if (v := get(KEY_NEVER_TIMEOUT)) is not None:
        never_timeout = _parse_bool(KEY_NEVER_TIMEOUT, v)
    return_ip = False
    if (v := get(KEY_RETURN_SANDBOX_IP)) is not None:
        return_ip = _parse_bool(KEY_RETURN_SANDBOX_IP, v)

    reserve_failed: timedelta | None = None
    if (v := get(KEY_RESERVE_FAILED_SANDBOX)) is not None and _parse_bool(
        KEY_RESERVE_FAILED_SANDBOX, v
    ):
        reserve_failed = RESERVE_FOREVER
    if (v := get(KEY_RESERVE_FAILED_SANDBOX_FOR)) is not None:
        # The duration form takes precedence over the boolean.
        reserve_failed = _parse_reserve_failed_for(KEY_RESERVE_FAILED_SANDBOX_FOR, v)

    reserve_paused = None
    if (v := get(KEY_RESERVE_PAUSED_SANDBOX_DURATION)) is not None:
        reserve_paused = _parse_paused_duration(KEY_RESERVE_PAUSED_SANDBOX_DURATION, v)

    image = get(KEY_IMAGE)
    if image is not None and not is_image_reference(image):
        raise _bad(KEY_IMAGE, f"invalid image reference {image!r}")
    cpu_request = cpu_limit = None
    if (v := get(KEY_CPU_REQUEST)) is not None:
        cpu_request = _parse_cpu(KEY_CPU_REQUEST, v)
    if (v := get(KEY_CPU_LIMIT)) is not None:
        cpu_limit = _parse_cpu(KEY_CPU_LIMIT, v)

    csi: list[CSIMountConfig] = []
    if (v := get(KEY_CSI_VOLUME_CONFIG)) is not None:
        csi.extend(_parse_csi_config(KEY_CSI_VOLUME_CONFIG, v))
    volume_name = get(KEY_CSI_VOLUME_NAME)
    mount_point = get(KEY_CSI_MOUNT_POINT)
    subpath = get(KEY_CSI_SUBPATH)
    if volume_name is not None or mount_point is not None or subpath is not None:
        if not volume_name:
            raise _bad(KEY_CSI_VOLUME_NAME, f"required together with {KEY_CSI_MOUNT_POINT}")
        if not mount_point:
            raise _bad(KEY_CSI_MOUNT_POINT, f"required together with {KEY_CSI_VOLUME_NAME}")
        csi.append(
            CSIMountConfig(pv_name=volume_name, mount_path=mount_point, sub_path=subpath or None)
        )
    if volume_mounts:
        csi.extend(_volume_mounts(volume_mounts))

    return E2BCreateOptions(
        claim_timeout_seconds=claim_timeout,
        wait_ready_timeout_seconds=wait_ready,
        create_on_no_stock=create_on_no_stock,
        skip_init_runtime=skip_init,
        never_timeout=never_timeout,
        reserve_failed_for=reserve_failed,
        reserve_paused_duration=reserve_paused,
        image=image,
        cpu_request=cpu_request,
        cpu_limit=cpu_limit,
        csi_mounts=csi,
        return_sandbox_ip=return_ip,
        annotations=annotations,
        labels=labels,
        sandbox_name=sandbox_name,
        sandbox_generate_name=generate_name,
    )


def _check_stored_size(opts: ClaimOptions) -> None:
    """Refuse a create whose lock write the API server would refuse, whatever sandbox it picks.

    The metadata, the env vars (in the runtime-init request) and the
    manager's own keys are written into the picked sandbox's annotations by
    the lock write, which the API server refuses over 256 KiB (422 Invalid):
    upstream then answers 500 (a raw update error) or, for a no-stock create,
    400. Refused here as a 400 naming ``envVars`` (or ``metadata`` when no
    env vars are sent), before anything is picked: the same rule the API
    server applies, asked of the least the write would store
    (:func:`~pytest_kruise_agents.claiming.modification.claim_annotations_problem`).
    """
    problem = claim_annotations_problem(opts)
    if problem is None:
        return
    _, why = problem
    if opts.init_runtime is not None and opts.init_runtime.env_vars:
        raise BadRequestError(
            f"envVars: with the metadata, the sandbox's annotations {why}", field="envVars"
        )
    raise BadRequestError(
        f"{BAD_METADATA_PREFIX}with the sandbox-manager's own keys, the sandbox's annotations {why}",
        field="metadata",
    )


def e2b_claim_options(
    opts: E2BCreateOptions,
    *,
    namespace: str,
    user: str,
    template: str,
    lock_string: str,
    access_token: str,
    now: datetime,
    timeout_s: int = DEFAULT_TIMEOUT_S,
    auto_pause: bool = False,
    env_vars: Mapping[str, str] | None = None,
    allow_internet_access: bool | None = None,
    candidate_count: int = 100,
    default_claim_timeout_s: float | None = None,
    default_wait_ready_timeout_s: float | None = None,
) -> ClaimOptions:
    """The claim options of one ``POST /sandboxes`` claim (E2B column of §5.1, §6.5, §6.6).

    ``namespace`` is the API key's team (``""`` for admin), ``user`` the API key
    ID. Times follow :func:`~pytest_kruise_agents.claiming.timeouts.create_times`;
    the paused retention and ``return-sandbox-ip`` are persisted as annotations
    when asked for. The runtime is always initialised unless
    ``skip-init-runtime`` (upstream does not check that the pool has the agent
    runtime). Claim and wait-ready timeouts not given take the defaults
    (``None``: unbounded at HEAD; v0.3.0 used 60 s for both).

    Everything upstream's ``ValidateAndInitClaimOptions`` would refuse later is
    refused here, named as the request names it: CSI mounts with
    ``skip-init-runtime``; and so is what no process or lock write could
    carry: env var names with ``=`` (:func:`check_env_vars_request`), and
    annotations the lock write would take over 256 KiB. Pass :data:`TOKEN_STAND_IN` as ``access_token`` to check a
    request before its token is drawn, then :func:`with_access_token`.
    """
    if opts.csi_mounts and opts.skip_init_runtime:
        # ValidateAndInitClaimOptions: a CSI mount is made by the runtime's /init.
        raise _bad(
            KEY_SKIP_INIT_RUNTIME,
            f"CSI mounts (volumeMounts, {KEY_CSI_VOLUME_NAME} or {KEY_CSI_VOLUME_CONFIG}) "
            "are made by the runtime init that 'true' skips",
        )
    shutdown, pause = create_times(
        now,
        timeout_s,
        auto_pause=auto_pause,
        never_timeout=opts.never_timeout,
        paused_retention=opts.reserve_paused_duration,
    )
    annotations = dict(opts.annotations)
    if opts.return_sandbox_ip:
        annotations[keys.ANN_RETURN_SANDBOX_IP] = "true"
    labels = dict(opts.labels)
    pod_labels: dict[str, str] = {}
    if allow_internet_access is not None:
        value = "true" if allow_internet_access else "false"
        labels[keys.LABEL_ALLOW_INTERNET_ACCESS] = value
        pod_labels[keys.LABEL_ALLOW_INTERNET_ACCESS] = value
    if env_vars:
        check_env_vars_request(env_vars)
    init_runtime = None
    if not opts.skip_init_runtime:
        init_runtime = InitRuntimeRequest(env_vars=dict(env_vars or {}), access_token=access_token)
    claim_s = opts.claim_timeout_seconds or default_claim_timeout_s
    wait_s = opts.wait_ready_timeout_seconds or default_wait_ready_timeout_s
    claim = ClaimOptions(
        namespace=namespace,
        user=user,
        template=template,
        lock_string=lock_string,
        candidate_count=candidate_count,
        labels=labels,
        annotations=annotations,
        pod_labels=pod_labels,
        label_pod_with_sandbox_name=True,
        shutdown_time=shutdown,
        pause_time=pause,
        paused_retention=opts.reserve_paused_duration,
        reserve_failed_for=opts.reserve_failed_for,
        inplace_image=opts.image,
        cpu_request=opts.cpu_request,
        cpu_limit=opts.cpu_limit,
        inplace_names=E2B_INPLACE_NAMES,
        init_runtime=init_runtime,
        csi_mounts=list(opts.csi_mounts),
        claim_timeout=timedelta(seconds=claim_s) if claim_s else None,
        wait_ready_timeout=timedelta(seconds=wait_s) if wait_s else None,
        create_on_no_stock=opts.create_on_no_stock,
    )
    _check_stored_size(claim)
    return claim


def with_access_token(opts: ClaimOptions, access_token: str) -> ClaimOptions:
    """``opts`` (made by :func:`e2b_claim_options`) with the envd access token drawn for it.

    The annotations' size was checked with the token they were made with; it
    is checked again with this one, which fails only for a token longer than
    a UUID (a ``token_source`` of another shape): refused as
    :func:`e2b_claim_options` refuses it.
    """
    init = opts.init_runtime
    if init is None:
        return opts
    new = opts.with_init_runtime(
        InitRuntimeRequest(env_vars=init.env_vars, access_token=access_token)
    )
    _check_stored_size(new)
    return new
