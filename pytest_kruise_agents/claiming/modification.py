"""The claim modification and sandbox construction (§5.1, §5.2 steps 4-5 and 7, §3 creation).

:func:`modify_for_claim` builds the object of the claim's single full-object
Update (the optimistic lock): owner references cleared, claim labels and
annotations, timeouts, in-place image/CPU, runtime-init request, and the lock
itself. :func:`new_sandbox_from_sandboxset` builds a pool sandbox (controller)
or a no-stock sandbox (claim). Inputs are never mutated: each returns a new object.
"""

from __future__ import annotations

import functools
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, NamedTuple

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.base import format_time
from pytest_kruise_agents.api.copying import deep_copy, with_parts
from pytest_kruise_agents.api.meta import ObjectMeta, OwnerReference
from pytest_kruise_agents.api.quantity import parse_quantity
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxSpec
from pytest_kruise_agents.api.sandboxclaim import CSIMountConfig
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.api.validation import (
    ANNOTATIONS_MAX,
    annotations_size,
    annotations_size_problem,
)
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.selection import (
    DEFAULT_CANDIDATE_WINDOW,
    MAX_CANDIDATE_WINDOW,
)
from pytest_kruise_agents.claiming.timeouts import format_retention, later, truncate

__all__ = [
    "AGENT_RUNTIME",
    "ANN_CLEANUP_ENABLED",
    "ANN_CLEANUP_RETAIN_ON_FAILURE",
    "CLAIM_PRIORITY",
    "INPLACE_OPTION_NAMES",
    "MAX_GENERATE_NAME",
    "PRESERVED_INTERNAL_KEYS",
    "RUNTIME_INIT_CONTAINER",
    "RUNTIME_INIT_OPTION_NAMES",
    "UUID_STAND_IN",
    "ClaimOptions",
    "InitRuntimeRequest",
    "InplaceNames",
    "RuntimeInitNames",
    "check_inplace_target",
    "claim_annotations",
    "claim_annotations_problem",
    "failed_sandbox_cleanup",
    "modify_for_claim",
    "needs_wait_ready",
    "new_sandbox_from_sandboxset",
    "pod_template_revision",
    "sandboxset_has_agent_runtime",
    "sandboxset_owner_reference",
    "sandboxset_revision",
    "validate_claim_options",
]

ANN_CLEANUP_ENABLED: Final = keys.ANN_CLEANUP_ENABLED
ANN_CLEANUP_RETAIN_ON_FAILURE: Final = keys.ANN_CLEANUP_RETAIN_ON_FAILURE
PRESERVED_INTERNAL_KEYS: Final = frozenset({ANN_CLEANUP_ENABLED, ANN_CLEANUP_RETAIN_ON_FAILURE})
"""Internal keys a new sandbox keeps from its pod template (``InternalKeysPreservedOnCreation``)."""

AGENT_RUNTIME: Final = "agent-runtime"
RUNTIME_INIT_CONTAINER: Final = "runtime"
CLAIM_PRIORITY: Final = "100"
"""``sandbox-priority`` of sandboxes created by a claim (pool sandboxes have none, i.e. 0)."""
MAX_GENERATE_NAME: Final = 58


_GO_ESCAPES: Final = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def _go_json(doc: Any) -> str:
    """``doc`` as Go's ``json.Marshal`` writes it, the text upstream stores in an annotation.

    Compact, UTF-8 written as is (Python's default escapes every non-ASCII
    character, 6 to 12 bytes where Go writes 2 to 4), and ``<``, ``>``, ``&``,
    U+2028 and U+2029 escaped as Go's HTML-safe encoder does: the bytes the
    256 KiB limit counts are Go's.
    """
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).translate(_GO_ESCAPES)


@dataclass(frozen=True)
class InitRuntimeRequest:
    """The body of the agent-runtime ``POST /init``: env vars and the envd access token."""

    env_vars: dict[str, str] = field(default_factory=dict)
    access_token: str = ""

    def to_json(self) -> str:
        """``{"envVars":{...},"accessToken":"..."}``, compact, env keys sorted (as Go writes it)."""
        env = _go_json(dict(sorted(self.env_vars.items())))
        return f'{{"envVars":{env},"accessToken":{_go_json(self.access_token)}}}'

    @classmethod
    def from_json(cls, text: str) -> InitRuntimeRequest:
        """Parse the persisted ``init-runtime-request`` annotation."""
        data = json.loads(text)
        return cls(
            env_vars=dict(data.get("envVars") or {}), access_token=data.get("accessToken", "")
        )


class InplaceNames(NamedTuple):
    """What the request calls its in-place image, CPU request and CPU limit: its errors name these."""

    image: str
    cpu_request: str
    cpu_limit: str


INPLACE_OPTION_NAMES: Final = InplaceNames("inplace_image", "cpu_request", "cpu_limit")
"""The :class:`ClaimOptions` fields themselves, for options not made from a request."""


class RuntimeInitNames(NamedTuple):
    """What the request calls its CSI mounts, and why it has no runtime init: a refusal says both."""

    csi_mounts: str
    no_init: str


RUNTIME_INIT_OPTION_NAMES: Final = RuntimeInitNames("csi_mounts", "init_runtime is not set")
"""The :class:`ClaimOptions` fields themselves, for options not made from a request."""


@dataclass(frozen=True)
class ClaimOptions:
    """Everything one claim needs (``infra.ClaimSandboxOptions``).

    ``namespace`` ``""`` searches every namespace (E2B admin). ``user`` is the
    owner (API-key ID or SandboxClaim UID). ``reserve_failed_for``: ``None``
    or zero deletes a sandbox whose post-processing failed, positive keeps it
    that long, negative forever. ``pod_labels``/``pod_annotations`` go only to
    the pod template; ``label_pod_with_sandbox_name`` adds the pod label
    ``sandbox-name=<picked sandbox's name>`` (E2B; empty for a no-stock
    sandbox, which has only a generateName then). ``claim_timeout`` and
    ``wait_ready_timeout`` ``None`` mean unbounded. ``inplace_names`` are the
    request's names of ``inplace_image``, ``cpu_request`` and ``cpu_limit``
    (E2B keys, a SandboxClaim's fields), which an error about them names;
    ``runtime_init_names`` name its CSI mounts and say why it has no runtime
    init (a SandboxClaim's ``skipInitRuntime``, or its pool without the agent
    runtime), for the refusal of CSI mounts without it.
    """

    namespace: str
    user: str
    template: str
    lock_string: str
    candidate_count: int = DEFAULT_CANDIDATE_WINDOW
    claim_name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    pod_labels: dict[str, str] = field(default_factory=dict)
    shutdown_time: datetime | None = None
    pause_time: datetime | None = None
    paused_retention: timedelta | None = None
    reserve_failed_for: timedelta | None = None
    inplace_image: str | None = None
    cpu_request: str | None = None
    cpu_limit: str | None = None
    init_runtime: InitRuntimeRequest | None = None
    csi_mounts: list[CSIMountConfig] = field(default_factory=list)
    claim_timeout: timedelta | None = None
    wait_ready_timeout: timedelta | None = None
    create_on_no_stock: bool = True
    pod_annotations: dict[str, str] = field(default_factory=dict)
    label_pod_with_sandbox_name: bool = False
    inplace_names: InplaceNames = INPLACE_OPTION_NAMES
    runtime_init_names: RuntimeInitNames = RUNTIME_INIT_OPTION_NAMES

    @property
    def inplace_update(self) -> bool:
        """Whether an in-place image or CPU change is requested."""
        return (
            self.inplace_image is not None
            or self.cpu_request is not None
            or self.cpu_limit is not None
        )

    def with_lock(self, lock_string: str) -> ClaimOptions:
        """The same options with a fresh lock string (one per attempt)."""
        return self._with("lock_string", lock_string)

    def with_init_runtime(self, init_runtime: InitRuntimeRequest | None) -> ClaimOptions:
        """The same options with another runtime-init request (an E2B create's, with its token)."""
        return self._with("init_runtime", init_runtime)

    def _with(self, name: str, value: object) -> ClaimOptions:
        """The same options with field ``name`` set to ``value`` (a field, already valid)."""
        # The fields copied as they are: ``dataclasses.replace`` would ``getattr``
        # all two dozen and pass them through ``__init__`` again, on every claim
        # attempt and E2B create.
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        object.__setattr__(new, name, value)
        return new


def _check_cpu(name: str, value: str | None) -> None:
    if value is None:
        return
    try:
        q = parse_quantity(value)
    except ValueError as exc:
        raise BadRequestError(f"{name}: {exc}", field=name) from exc
    if q <= 0:
        raise BadRequestError(f"{name}: must be greater than 0, got {value!r}", field=name)


def validate_claim_options(opts: ClaimOptions) -> None:
    """Reject invalid options with a :class:`BadRequestError` naming the field.

    Upstream's ``ValidateAndInitClaimOptions``: user and template required,
    CSI mounts need runtime init, CPU quantities positive, and a candidate
    window a pick can read (at most :data:`MAX_CANDIDATE_WINDOW`). The CSI
    mounts, image and CPU are named as the request names them
    (``opts.runtime_init_names``, ``opts.inplace_names``).
    """
    if not opts.user:
        raise BadRequestError("user: required", field="user")
    if not opts.template:
        raise BadRequestError("template: required", field="template")
    if not 1 <= opts.candidate_count <= MAX_CANDIDATE_WINDOW:
        raise BadRequestError(
            f"candidate_count: must be from 1 to {MAX_CANDIDATE_WINDOW}", field="candidate_count"
        )
    if opts.csi_mounts and opts.init_runtime is None:
        mounts, why = opts.runtime_init_names
        raise BadRequestError(
            f"{mounts}: CSI mounts need the runtime to be initialised, but {why}", field=mounts
        )
    names = opts.inplace_names
    if opts.inplace_image is not None and not opts.inplace_image:
        raise BadRequestError(f"{names.image}: must not be empty", field=names.image)
    _check_cpu(names.cpu_request, opts.cpu_request)
    _check_cpu(names.cpu_limit, opts.cpu_limit)


def _template_metadata(spec: SandboxSpec, part: Literal["labels", "annotations"]) -> dict[str, Any]:
    assert spec.template is not None
    meta = spec.template.get("metadata")
    if not isinstance(meta, dict):
        meta = spec.template["metadata"] = {}
    values = meta.get(part)
    if not isinstance(values, dict):
        values = meta[part] = {}
    return values


def _first_container(sbx: Sandbox, field_name: str) -> dict[str, Any]:
    containers = ((sbx.spec.template or {}).get("spec") or {}).get("containers") or []
    if not containers or not isinstance(containers[0], dict):
        raise BadRequestError(
            f"{field_name}: in-place update needs a sandbox with an inline pod template "
            f"(sandbox {sbx.metadata.namespace}/{sbx.metadata.name} has none)",
            field=field_name,
        )
    first: dict[str, Any] = containers[0]
    return first


def _first_inplace_name(opts: ClaimOptions) -> str | None:
    """The name of the first in-place change ``opts`` asks for (image, then CPU), if any."""
    names = opts.inplace_names
    if opts.inplace_image is not None:
        return names.image
    if opts.cpu_request is not None:
        return names.cpu_request
    if opts.cpu_limit is not None:
        return names.cpu_limit
    return None


def check_inplace_target(sbx: Sandbox, opts: ClaimOptions) -> None:
    """Refuse (400) the in-place update ``opts`` asks of ``sbx`` if it has no container to change.

    A sandbox of a ``templateRef`` pool keeps the reference and has no inline
    pod template: the claim's image or CPU has nowhere to go. The error names
    the first change asked for as the request names it, and the sandbox;
    :func:`modify_for_claim` raises the same one.
    """
    name = _first_inplace_name(opts)
    if name is not None:
        _first_container(sbx, name)


def _apply_inplace(sbx: Sandbox, opts: ClaimOptions) -> None:
    names = opts.inplace_names
    if opts.inplace_image is not None:
        _first_container(sbx, names.image)["image"] = opts.inplace_image
    for field_name, part, value in (
        (names.cpu_request, "requests", opts.cpu_request),
        (names.cpu_limit, "limits", opts.cpu_limit),
    ):
        if value is None:
            continue
        resources = _first_container(sbx, field_name).get("resources")
        section = (resources or {}).get(part) if isinstance(resources, dict) else None
        # Only a CPU value the container already has is changed: resizing
        # cannot add a request or limit (that would change the pod's QoS class).
        if isinstance(section, dict) and "cpu" in section:
            section["cpu"] = value


def modify_for_claim(sbx: Sandbox, opts: ClaimOptions, now: datetime) -> Sandbox:
    """The claimed copy of ``sbx`` the lock Update writes (§5.2 steps 4-5); ``sbx`` is untouched.

    In upstream's order: the caller's modifier (claim-name label, user labels
    and annotations, which may overwrite it (#311), times, retention), in-place
    image/CPU, owner references cleared, ``sandbox-claimed=true``,
    ``claim-timestamp``, runtime-init request and token, CSI config, the
    ``updated-metadata-in-claim`` record, and last the lock (``lock``, ``owner``
    annotations and the pod-template ``owner`` label).

    The copy has its own metadata, spec and pod template; its status and the
    spec's other parts are ``sbx``'s own (replace them, do not change them in
    place).
    """
    # Only the metadata and the spec's fields and pod template change; a deep
    # copy of the whole sandbox was a tenth of the simulator's work per claim.
    spec = with_parts(sbx.spec, template=deep_copy(sbx.spec.template))
    out = with_parts(sbx, metadata=deep_copy(sbx.metadata), spec=spec)
    meta = out.metadata
    has_template = isinstance(out.spec.template, dict)

    # The modifier.
    if opts.claim_name:
        meta.labels[keys.LABEL_CLAIM_NAME] = opts.claim_name
    meta.labels.update(opts.labels)
    # Every annotation the claim writes, at once: the same keys and values, in the
    # same order, as writing them step by step below would.
    meta.annotations.update(claim_annotations(opts, now))
    if has_template:
        pod_labels = _template_metadata(out.spec, "labels")
        pod_labels.update(opts.labels)
        pod_labels.update(opts.pod_labels)
        if opts.label_pod_with_sandbox_name:
            pod_labels[keys.LABEL_SANDBOX_NAME] = meta.name
        if opts.pod_annotations:
            _template_metadata(out.spec, "annotations").update(opts.pod_annotations)
    if opts.shutdown_time is not None:
        out.spec.shutdown_time = truncate(opts.shutdown_time)
    if opts.pause_time is not None:
        out.spec.pause_time = truncate(opts.pause_time)

    if opts.inplace_update:
        _apply_inplace(out, opts)

    meta.owner_references = []
    meta.labels[keys.LABEL_SANDBOX_CLAIMED] = "true"

    # The lock (its annotations are among claim_annotations').
    if has_template:
        _template_metadata(out.spec, "labels")[keys.LABEL_OWNER] = opts.user
    return out


def claim_annotations(opts: ClaimOptions, now: datetime) -> dict[str, str]:
    """The annotations the claim's lock write sets on the sandbox it picks, in upstream's order.

    The caller's annotations, the paused retention, ``claim-timestamp``, the
    runtime-init request and token, the CSI config, the
    ``updated-metadata-in-claim`` record, and last the lock (``lock``,
    ``owner``). The picked sandbox keeps its own annotations besides these.
    """
    out = dict(opts.annotations)
    if opts.paused_retention is not None:
        out[keys.ANN_RESERVE_PAUSED_DURATION] = format_retention(opts.paused_retention)
    out[keys.ANN_CLAIM_TIMESTAMP] = format_time(truncate(now))
    if opts.init_runtime is not None:
        out[keys.ANN_INIT_RUNTIME_REQUEST] = opts.init_runtime.to_json()
        out[keys.ANN_RUNTIME_ACCESS_TOKEN] = opts.init_runtime.access_token
    if opts.csi_mounts:
        out[keys.ANN_CSI_VOLUME_CONFIG] = _go_json([m.to_dict() for m in opts.csi_mounts])
    if opts.labels or opts.annotations:
        # Recycle deletes exactly these keys when the sandbox returns to its pool.
        out[keys.ANN_UPDATED_METADATA_IN_CLAIM] = _go_json(
            {"labels": sorted(opts.labels), "annotations": sorted(opts.annotations)}
        )
    out[keys.ANN_LOCK] = opts.lock_string
    out[keys.ANN_OWNER] = opts.user
    return out


UUID_STAND_IN: Final = "00000000-0000-4000-8000-000000000000"
"""Stands for a UUID not drawn yet (a lock string, an access token, a new claim's UID): its
text is as long as every UUID's, so what it is written into weighs what the real one will."""
_TIMESTAMP_STAND_IN: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""Stands for the claim time: ``claim-timestamp`` is 20 characters whatever the time."""


def claim_annotations_problem(opts: ClaimOptions) -> tuple[int, str] | None:
    """Why every lock write of this claim would be refused for its annotations, or ``None``.

    The API server refuses annotations over 256 KiB on any write
    (:func:`~pytest_kruise_agents.api.validation.annotations_size_problem`);
    this asks that rule of :func:`claim_annotations` alone, the least any
    picked sandbox would carry, so what it refuses the commit would refuse
    too. A lock string not drawn yet (``""``) counts as a UUID's. Returns the
    bytes the claim itself adds and the rule's reason.
    """
    if _surely_fits(opts):
        return None
    if not opts.lock_string:
        opts = opts.with_lock(UUID_STAND_IN)
    written = claim_annotations(opts, _TIMESTAMP_STAND_IN)
    why = annotations_size_problem(written)
    return None if why is None else (annotations_size(written), why)


_FIXED_BYTES: Final = 4096
"""More than the claim's own keys, a retention, a timestamp, a lock and the JSON around them."""


def _surely_fits(opts: ClaimOptions) -> bool:
    """Whether the claim's annotations are far enough under 256 KiB not to be built to check.

    A character takes at most 6 bytes in them (UTF-8 is at most 4; Go's JSON
    escapes write ``<`` or a control character as 6), so the caller's keys and
    values at 6 bytes each (as often as they are written), plus the fixed keys,
    bound the whole. CSI mounts are
    always built (their JSON is not counted here).
    """
    if opts.csi_mounts:
        return False
    # An annotation's key is written twice: as itself and in updated-metadata-in-claim.
    chars = 2 * sum(map(len, opts.annotations)) + sum(map(len, opts.annotations.values()))
    chars += sum(map(len, opts.labels)) + len(opts.lock_string) + len(opts.user)
    init = opts.init_runtime
    if init is not None:
        env = init.env_vars
        chars += sum(map(len, env)) + sum(map(len, env.values())) + 2 * len(init.access_token)
    return 6 * chars + _FIXED_BYTES <= ANNOTATIONS_MAX


def _strip_internal(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {
        k: str(v)
        for k, v in (values or {}).items()
        if not k.startswith(keys.INTERNAL_PREFIX) or k in PRESERVED_INTERNAL_KEYS
    }


def _canonical_json(doc: Any) -> str:
    """``doc`` as JSON with sorted keys and no blanks: the same text in every process."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def pod_template_revision(template: Mapping[str, Any]) -> str:
    """The revision a pod made from ``template`` is labelled with (``pod-template-hash``).

    CRC-32 (hex) of the template's canonical JSON: pods made from the same
    template share it, a changed template (an in-place image, a SandboxTemplate
    edit) gives another. Upstream hashes otherwise; only the key is its.
    """
    return format(zlib.crc32(_canonical_json(template).encode()), "08x")


def sandboxset_revision(sbs: SandboxSet) -> str:
    """The SandboxSet's update revision: FNV-32a (hex) of the canonical JSON of its template.

    Covers ``template``/``templateRef``, ``persistentContents``, ``runtimes``
    and ``pauseStrategy``; deterministic across processes (sorted keys).
    """
    spec = sbs.spec
    doc: dict[str, Any] = {
        "template": spec.template,
        "templateRef": spec.template_ref.to_dict() if spec.template_ref else None,
        "persistentContents": spec.persistent_contents,
        "runtimes": [r.to_dict() for r in spec.runtimes] if spec.runtimes is not None else None,
        "pauseStrategy": spec.pause_strategy.to_dict() if spec.pause_strategy else None,
    }
    canonical = _canonical_json({k: v for k, v in doc.items() if v is not None})
    h = 0x811C9DC5
    for byte in canonical.encode():
        h ^= byte
        h = (h * 0x01000193) & 0xFFFFFFFF
    return format(h, "x")


def new_sandbox_from_sandboxset(
    sbs: SandboxSet,
    *,
    for_claim: bool,
    revision: str | None = None,
    share: bool = False,
    resolved: dict[str, Any] | None = None,
    keep_reference: bool = False,
) -> Sandbox:
    """A new Sandbox built from ``sbs`` (``NewSandboxFromSandboxSet``); ``sbs`` is untouched.

    ``generateName`` ``<sbs>-`` (at most 58 characters), the pool labels, the
    pod template's labels and annotations without internal keys (except the
    cleanup ones), and copies of the template, persistent contents, runtimes,
    pause strategy and volume claim templates. A pool sandbox
    (``for_claim=False``) gets ``template-hash=<revision>`` (default: the
    computed revision) and a controller owner reference to ``sbs``; a no-stock
    sandbox (``for_claim=True``) gets ``sandbox-priority=100`` and neither.

    ``share=True`` makes the sandbox share the set's template, the other spec
    parts and the owner reference instead of copying them: for stores whose
    objects are never changed in place (a pool of 100,000 then holds one
    template, not 100,000).

    ``resolved`` is the pod template of the SandboxTemplate a ``templateRef``
    set names: the sandbox takes its labels and annotations, as from an inline
    template (reference §2), and embeds a copy of it (and no reference), as the
    sandbox-manager's create does. With ``keep_reference`` it keeps the
    reference instead, as the controller's pool sandboxes do (§3), and the
    Sandbox controller resolves it when it makes the pod: pool and no-stock
    sandboxes of one set then carry the same metadata. Without ``resolved``
    the sandbox keeps the reference and takes no template metadata. An inline
    set ignores both: its own template wins.
    """
    spec = sbs.spec if share else sbs.spec.model_copy(deep=True)
    name = sbs.metadata.name
    template, template_ref = spec.template, spec.template_ref
    # The pod template the metadata comes from (its keys are copied below, never shared).
    source = template
    if resolved is not None and template_ref is not None:
        source = resolved
        if not keep_reference:
            template, template_ref = deep_copy(resolved), None
    template_meta = (source or {}).get("metadata") or {}
    labels = _strip_internal(template_meta.get("labels"))
    annotations = _strip_internal(template_meta.get("annotations"))
    labels[keys.LABEL_SANDBOX_POOL] = name
    labels[keys.LABEL_SANDBOX_TEMPLATE] = spec.template_ref.name if spec.template_ref else name
    labels[keys.LABEL_SANDBOX_CLAIMED] = "false"
    owner_references: list[OwnerReference] = []
    if for_claim:
        annotations[keys.ANN_SANDBOX_PRIORITY] = CLAIM_PRIORITY
    else:
        labels[keys.LABEL_TEMPLATE_HASH] = (
            revision if revision is not None else sandboxset_revision(sbs)
        )
        ref = _set_owner_ref(name, sbs.metadata.uid or "")
        owner_references.append(ref if share else ref.model_copy())
    return Sandbox(
        metadata=ObjectMeta(
            name="",
            generate_name=f"{name}-"[:MAX_GENERATE_NAME],
            namespace=sbs.metadata.namespace,
            labels=labels,
            annotations=annotations,
            owner_references=owner_references,
        ),
        spec=SandboxSpec(
            pause_strategy=spec.pause_strategy,
            persistent_contents=spec.persistent_contents,
            runtimes=spec.runtimes,
            template_ref=template_ref,
            template=template,
            volume_claim_templates=spec.volume_claim_templates,
        ),
    )


def sandboxset_owner_reference(sbs: SandboxSet) -> OwnerReference:
    """The controller owner reference a pool sandbox of ``sbs`` carries (a copy of its own)."""
    return _set_owner_ref(sbs.metadata.name, sbs.metadata.uid or "").model_copy()


@functools.lru_cache(maxsize=256)
def _set_owner_ref(name: str, uid: str) -> OwnerReference:
    # Shared by the sandboxes of a pool (see ``share``); copied otherwise.
    return OwnerReference(
        api_version=keys.API_VERSION,
        kind="SandboxSet",
        name=name,
        uid=uid,
        controller=True,
        block_owner_deletion=True,
    )


def needs_wait_ready(
    lock_type: Literal["update", "create", "speculate"], opts: ClaimOptions
) -> bool:
    """Whether post-processing waits for readiness: a created sandbox, or an in-place update."""
    return lock_type in ("create", "speculate") or opts.inplace_update


def failed_sandbox_cleanup(
    sbx: Sandbox, reserve_failed_for: timedelta | None, now: datetime
) -> Sandbox | None:
    """What to do with a sandbox whose claim failed after the lock (``clearFailedSandbox``).

    ``None`` means delete it (no reservation, or zero). Otherwise the reserved
    copy: label ``reserved-failed-sandbox=true`` and, for a positive duration,
    ``shutdownTime = now + d`` (at most
    :data:`~pytest_kruise_agents.claiming.timeouts.LATEST`); a negative duration
    ("forever") keeps its existing ``shutdownTime``, so it is kept for ever only
    if it has none.
    """
    if reserve_failed_for is None or reserve_failed_for == timedelta(0):
        return None
    out = sbx.model_copy(deep=True)
    out.metadata.labels[keys.LABEL_RESERVED_FAILED] = "true"
    if reserve_failed_for > timedelta(0):
        # Clamped as every deadline is: a Go duration (292 years) from a late clock
        # would pass the last date a timestamp holds.
        out.spec.shutdown_time = later(now, reserve_failed_for)
    return out


def sandboxset_has_agent_runtime(sbs: SandboxSet, resolved: dict[str, Any] | None = None) -> bool:
    """Whether the pool runs the agent runtime.

    True when ``runtimes`` lists ``agent-runtime`` or the pod template (the
    set's own, else ``resolved``: that of the SandboxTemplate its
    ``templateRef`` names) has an init container named ``runtime``.
    """
    if any(r.name == AGENT_RUNTIME for r in sbs.spec.runtimes or []):
        return True
    template = sbs.spec.template if sbs.spec.template is not None else resolved
    init_containers = ((template or {}).get("spec") or {}).get("initContainers") or []
    return any(
        isinstance(c, dict) and c.get("name") == RUNTIME_INIT_CONTAINER for c in init_containers
    )
