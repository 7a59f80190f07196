"""Profiles: every parameter of the model, grouped, with one profile per upstream version.

A :class:`Profile` holds the knobs of the claim system (worker counts, rate
limits, batch sizes, retry policy, timeouts; reference §7 and §9.1) and one
latency distribution per named step of the fake cluster (:data:`LATENCY_DOCS`).
Two built-in profiles reproduce upstream versions whose claim semantics differ:

``openkruise-head`` (the default)
    master at 0b72c83 (2026-08-22): exponential claim retry (10 attempts,
    1 s…16 s), E2B create timeouts bounded only by the client, SandboxClaim
    searching its own namespace.
``openkruise-v0.3.0``
    tag v0.3.0 (2026-05-11): claim retry every 25 ms until a 1 min claim
    timeout, a 60 s wait-ready default, and SandboxClaim searching pools in all
    namespaces (bug #824).

Profiles are immutable, their latency table too (an edit of it raises
:class:`~pytest_kruise_agents.api.errors.InvalidError`):
:meth:`Profile.with_overrides` makes a changed copy and names any knob or
latency it does not know.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from pytest_kruise_agents.claiming.extensions import MAX_DURATION_S
from pytest_kruise_agents.claiming.selection import MAX_CANDIDATE_WINDOW
from pytest_kruise_agents.claiming.timeouts import (
    FOREVER,
    MAX_TIMEOUT_S,
    MIN_CREATE_TIMEOUT_S,
    PAUSE_WAIT_S,
)
from simulator.latency import Fixed, Latency, LogNormal, Uniform, parse_latency
from simulator.readonly import ReadOnlyDict

__all__ = [
    "DEFAULT_LATENCIES",
    "DEFAULT_PROFILE",
    "LATENCY_DOCS",
    "MAX_COUNT",
    "MAX_SECONDS",
    "PROFILES",
    "Profile",
    "get_profile",
]

LATENCY_DOCS: dict[str, str] = {
    "api.create": "API server round trip of a create",
    "api.update": "API server round trip of an update or patch (10-100 ms)",
    "api.update_status": "API server round trip of a status update",
    "api.delete": "API server round trip of a delete",
    "api.get": "API server round trip of a get (a live read, not a cache read)",
    "watch.lag": "propagation of a stored change into informer caches",
    "scheduler.bind": "scheduler picking a node and binding the pod",
    "pod.create": "kubelet creating the pod sandbox (100-500 ms)",
    "image.pull": "first pull of the image on a node",
    "image.pull_cached": "image already present on the node",
    "container.start": "container start after the image is present",
    "container.ready": "readiness probe passing after the container started",
    "runtime.init": "agent-runtime /init HTTP call (one attempt)",
    "csi.mount": "one dynamic CSI volume mount through the runtime",
    "inplace.update": "container restart with a new image, after the pull",
    "inplace.resize": "kubelet carrying out an in-place CPU resize (no restart)",
    "pod.stop": "pod termination after its grace period",
    "manager.pick": "sandbox-manager cache read and candidate walk",
    "controller.reconcile": "controller CPU time of one reconcile",
}
"""Latency name → what it is the duration of (for docs and error messages)."""

DEFAULT_LATENCIES: dict[str, Latency] = {
    "api.create": Uniform(low=0.01, high=0.05),
    "api.update": Uniform(low=0.01, high=0.1),
    "api.update_status": Uniform(low=0.01, high=0.05),
    "api.delete": Uniform(low=0.01, high=0.05),
    "api.get": Uniform(low=0.002, high=0.01),
    "watch.lag": Uniform(low=0.005, high=0.05),
    "scheduler.bind": Uniform(low=0.005, high=0.02),
    "pod.create": Uniform(low=0.1, high=0.5),
    "image.pull": LogNormal(median=5.0, p99=30.0),
    "image.pull_cached": Uniform(low=0.05, high=0.2),
    "container.start": Uniform(low=0.2, high=1.0),
    "container.ready": Uniform(low=0.1, high=0.5),
    "runtime.init": Uniform(low=0.02, high=0.1),
    "csi.mount": Uniform(low=0.1, high=3.0),
    "inplace.update": Uniform(low=0.5, high=2.0),
    "inplace.resize": Uniform(low=0.05, high=0.5),
    "pod.stop": Uniform(low=0.05, high=0.5),
    "manager.pick": Fixed(value=0.0005),
    "controller.reconcile": Fixed(value=0.001),
}
"""The latencies both built-in profiles use (upstream publishes none; these are typical)."""


MAX_COUNT: Final = 2**63 - 1
"""The largest count a knob takes: a Go ``int``, as upstream's flags and constants are."""
MAX_SECONDS: Final = int(FOREVER.total_seconds())
"""The longest duration a knob takes (3153600000 s): upstream's "forever", 100 years, the
furthest a deadline of the model may lie (the clock stops that long before the last date)."""


def _count(low: int = 1, high: int = MAX_COUNT) -> AfterValidator:
    """A whole number from ``low`` to ``high``."""

    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return value

    return AfterValidator(check)


def _rate(value: float) -> float:
    # Infinity is a rate (no limit); NaN, zero and below are none.
    if not value > 0:
        raise ValueError("must be a rate over 0 per second, or inf (no limit)")
    return value


def _seconds(*, zero: bool) -> AfterValidator:
    """A finite number of seconds up to :data:`MAX_SECONDS`, from 0 if ``zero``, else over it."""

    def check(value: float) -> float:
        # Past 100 years a timedelta, or a deadline, no longer fits: the claim or
        # controller that uses it would fail with an OverflowError.
        low_ok = value >= 0 if zero else value > 0
        if not (low_ok and value <= MAX_SECONDS):  # NaN fails both
            low = "from 0 to" if zero else "over 0, at most"
            raise ValueError(f"must be a number of seconds {low} {MAX_SECONDS} (100 years)")
        return value

    return AfterValidator(check)


def _e2b_default(key: str) -> AfterValidator:
    """None, or the seconds the E2B extension ``key`` (a whole number of seconds) takes."""

    def check(value: float | None) -> float | None:
        # A default stands in for the key: a value the key refuses (past a Go
        # time.Duration) would overflow the claim's timedelta.
        if value is not None and not 0 < value <= MAX_DURATION_S:
            raise ValueError(
                f"must be None or a number of seconds over 0, at most {MAX_DURATION_S} "
                f"(what {key} takes)"
            )
        return value

    return AfterValidator(check)


def _pause_grace(value: float) -> float:
    # An E2B pause waits PAUSE_WAIT_S for the pod to stop: a grace that long
    # (upstream's is 5 s) would make every pause a 500.
    if not 0 <= value < PAUSE_WAIT_S:
        raise ValueError(
            f"must be a number of seconds from 0 to under {PAUSE_WAIT_S:g} "
            f"(an E2B pause waits {PAUSE_WAIT_S:g} s for its pod)"
        )
    return value


_Count = Annotated[int, _count()]
_Rate = Annotated[float, AfterValidator(_rate)]
_Seconds = Annotated[float, _seconds(zero=True)]
_PositiveSeconds = Annotated[float, _seconds(zero=False)]
_ClaimTimeout = Annotated[float | None, _e2b_default("claim-timeout-seconds")]
_WaitReadyTimeout = Annotated[float | None, _e2b_default("wait-ready-timeout-seconds")]


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


_NOT_KNOBS: Final = ("latencies", "name", "description")
"""Profile fields :meth:`Profile.with_overrides` takes no keyword for: the latencies (its own
argument) and the profile's identity, which a copy keeps so that its reports name what it is
a changed copy of."""


class Profile(BaseModel):
    """Every parameter of the model: knobs by component, and named latencies.

    Defaults are upstream's HEAD defaults (reference §7, §9.1). Every number
    has a range the model serves (counts up to :data:`MAX_COUNT`, durations
    finite and up to :data:`MAX_SECONDS`, rates over 0 or infinite): a value
    outside it is refused naming the knob and the range. ``latencies``
    accepts distributions in any form :func:`~simulator.latency.parse_latency`
    reads; names left out take :data:`DEFAULT_LATENCIES`.
    """

    # Attribute docstrings become field descriptions, for docs and the CLI.
    # Strict: a knob keeps the kind its YAML or JSON gave it (``true`` is no
    # worker count, ``"5"`` no number); latencies are read from text on purpose.
    # An infinite rate (no limit) is written to JSON as ``Infinity``, which reads
    # back (pydantic's default, null, would not).
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        strict=True,
        use_attribute_docstrings=True,
        ser_json_inf_nan="constants",
    )

    name: str = Field(default="custom", min_length=1)
    description: str = ""

    # -- claim path (sandbox-manager and the shared TryClaimSandbox) ----------
    claim_workers: _Count = 500
    """Claim-worker slots per manager (``--max-claim-workers``), held for pick + lock."""
    create_qps: _Rate = 49.0
    """No-stock creations per second per manager (``--max-create-qps``)."""
    create_burst: _Count = 49
    """Burst of the no-stock creation limiter."""
    candidate_count: Annotated[int, _count(1, MAX_CANDIDATE_WINDOW)] = 100
    """Candidate window of one pick, the manager's and the SandboxClaim controller's (at most
    ``sys.maxsize``, the widest a pick reads)."""
    retry: Literal["exponential", "fixed"] = "exponential"
    """Manager claim retry: 10 attempts 1 s…16 s (HEAD) or every 25 ms (v0.3.0)."""
    e2b_default_claim_timeout_s: _ClaimTimeout = None
    """E2B claim timeout without ``claim-timeout-seconds``; None = client-bounded."""
    e2b_default_wait_ready_timeout_s: _WaitReadyTimeout = None
    """E2B wait-ready timeout without ``wait-ready-timeout-seconds``; None = unbounded."""
    init_attempts: _Count = 5
    """Attempts of the runtime ``/init`` call."""
    init_attempt_timeout_s: _PositiveSeconds = 1.0
    """Timeout of one ``/init`` attempt."""
    csi_mount_concurrency: _Count = 3
    """Concurrent CSI mounts of one claim."""
    # Upstream has no such budget: without a claim timeout its fixed retry's steps are
    # ClaimTimeout/25 ms of 100 years, so only the client's disconnect ends the loop. An
    # in-process create has no client to give up, and would retry for ever.
    fixed_retry_attempts: _Count | None = 2400
    """With ``retry='fixed'`` and no claim timeout, the most attempts of a create (2400:
    v0.3.0's 1 min of steps); None = until the client gives up, as upstream."""

    # -- controllers ------------------------------------------------------------
    sandboxset_workers: _Count = 3
    """SandboxSet controller workers (``--sandboxset-workers``)."""
    sandbox_workers: _Count = 500
    """Sandbox controller workers (``--sandbox-workers``)."""
    sandboxclaim_workers: _Count = 500
    """SandboxClaim controller workers (``--sandboxclaim-workers``)."""
    sandboxset_initial_batch: _Count = 16
    """First wave of SandboxSet creations/deletions; later waves double."""
    claim_batch_max: _Count = 50
    """Most sandboxes one SandboxClaim reconcile tries to claim."""
    claim_batch_initial: _Count = 5
    """First wave of a SandboxClaim reconcile; later waves double."""
    claim_retry_interval_s: _Seconds = 2.0
    """SandboxClaim requeue after a reconcile that claimed nothing."""
    expectation_timeout_s: _PositiveSeconds = 60.0
    """How long controllers wait for their cache to see their own writes."""
    claim_namespace_scoped: bool = True
    """SandboxClaim searches only its own namespace (False: all namespaces, bug #824)."""
    inplace_resource_resize: bool = True
    """Feature gate ``SandboxInPlaceResourceResize``; off, no CPU resize is carried out."""
    recycle_on_kill: bool = True
    """A kill of a ``cleanup-enabled`` sandbox returns it to its pool (after v0.3.0); off, deletes."""
    claim_annotations_on_pod: bool = True
    """SandboxClaim annotations also go to the pod template (after v0.3.0); off, sandbox only."""

    # -- API clients (QPS, burst) -------------------------------------------------
    manager_qps: _Rate = 500.0
    """sandbox-manager client QPS (the scheduler uses the controller's limits)."""
    manager_burst: _Count = 1000
    """sandbox-manager client burst."""
    controller_qps: _Rate = 3000.0
    """agent-sandbox-controller client QPS."""
    controller_burst: _Count = 6000
    """agent-sandbox-controller client burst."""
    kubelet_qps: _Rate = 50.0
    """Client QPS of each node's kubelet."""
    kubelet_burst: _Count = 100
    """Client burst of each node's kubelet."""

    # -- scheduler ----------------------------------------------------------------
    percentage_of_nodes_to_score: Annotated[int, _count(0, 100)] = 0
    """kube-scheduler's ``percentageOfNodesToScore``: the share of the nodes (in %) whose
    feasible ones, once found, end a pod's search; 0 = adaptive (50% less 1% per 125
    nodes, at least 5%); clusters of fewer than 100 nodes are always searched whole."""

    # -- lifecycle ----------------------------------------------------------------
    default_timeout_s: float = 300.0
    """E2B sandbox lifetime when a create, connect or resume gives none: whole seconds, 30 s
    to 30 days (what a create's ``timeout`` may be)."""
    min_resume_timeout_s: float = 300.0
    """Floor of the timeout set when connecting to a paused sandbox: whole seconds, 0 to 30 days."""
    pause_pod_grace_s: Annotated[float, AfterValidator(_pause_grace)] = 5.0
    """Grace period of the pod deletion that carries out a pause: under the pause's 60 s wait."""
    pod_delete_grace_s: _Seconds = 0.0
    """Grace period of other pod deletions."""
    recycle_grace_s: _Seconds = 10.0
    """How long a recycled sandbox stays in ``Recycling`` before it rejoins its pool."""
    recycle_timeout_s: _PositiveSeconds = 60.0
    """A recycle not finished this long after it started fails (the sandbox is deleted)."""

    latencies: Mapping[str, Latency] = Field(
        default_factory=lambda: _read_only(DEFAULT_LATENCIES), strict=False
    )
    """Latency name (see :data:`LATENCY_DOCS`) → distribution, in seconds. Read-only:
    :meth:`with_overrides` makes a changed copy."""

    @field_validator("latencies")
    @classmethod
    def _freeze_latencies(cls, value: Mapping[str, Latency]) -> Mapping[str, Latency]:
        # Frozen stops ``profile.latencies = ...`` only: the table itself is shared too.
        return _read_only(value)

    @field_validator("latencies", mode="before")
    @classmethod
    def _complete_latencies(cls, value: Any) -> dict[str, Latency]:
        if not isinstance(value, Mapping):
            raise ValueError("must be a mapping of latency name to distribution")
        merged = dict(DEFAULT_LATENCIES)
        for name, spec in value.items():
            if not isinstance(name, str):
                raise ValueError(f"latency names must be strings, got {name!r}")
            if name not in LATENCY_DOCS:
                raise ValueError(
                    f"unknown latency {name!r}{_suggest(name, LATENCY_DOCS)}; "
                    f"known: {', '.join(LATENCY_DOCS)}"
                )
            try:
                merged[name] = parse_latency(spec)
            except ValueError as exc:
                raise ValueError(f"latency {name!r}: {exc}") from None
        return merged

    @field_validator("default_timeout_s", "min_resume_timeout_s")
    @classmethod
    def _whole_e2b_seconds(cls, value: float, info: ValidationInfo) -> float:
        # Both stand for an E2B request's timeout, which is whole seconds: the
        # manager takes them as such, so a fraction would be dropped unseen, and
        # a default outside what a create may ask for would make every create
        # without a timeout a 400 naming a `timeout` the caller never sent.
        low = MIN_CREATE_TIMEOUT_S if info.field_name == "default_timeout_s" else 0
        if not (value.is_integer() and low <= value <= MAX_TIMEOUT_S):
            raise ValueError(
                f"must be a whole number of seconds from {low} to {MAX_TIMEOUT_S} (30 days)"
            )
        return value

    @classmethod
    def knob_names(cls) -> list[str]:
        """Every knob :meth:`with_overrides` accepts: the fields but ``latencies`` and the
        profile's identity (``name``, ``description``)."""
        return [name for name in cls.model_fields if name not in _NOT_KNOBS]

    @classmethod
    def knob_problem(cls, knob: str) -> str | None:
        """Why ``knob`` is no knob :meth:`with_overrides` takes, or ``None`` if it is one.

        ``latencies`` is no knob: given with the knobs as keyword arguments it
        would be taken for :meth:`with_overrides`' (or the cluster's) own
        ``latencies`` argument, or clash with it.
        """
        known = cls.knob_names()
        if knob in known:
            return None
        if knob == "latencies":
            return (
                "unknown profile knob 'latencies': set latencies by name in the latencies "
                "mapping beside the knobs"
            )
        if knob in _NOT_KNOBS:
            # A new name would make a report say another profile ran, or, being no
            # built-in one, hide every change made to it (summary() compares by name).
            return (
                f"the profile's {knob}, not a knob: choose a profile by its name "
                "(the profile setting beside the knobs)"
            )
        return f"unknown profile knob {knob!r}{_suggest(knob, known)}; known: {', '.join(known)}"

    def latency(self, name: str) -> Latency:
        """The distribution of the named latency; :class:`ValueError` names an unknown one."""
        try:
            return self.latencies[name]
        except KeyError:
            raise ValueError(
                f"unknown latency {name!r}{_suggest(name, LATENCY_DOCS)}; "
                f"known: {', '.join(LATENCY_DOCS)}"
            ) from None

    def changes(self) -> list[str]:
        """The knobs and latencies that differ from the built-in profile of this name.

        Empty for a built-in profile as it is, and for a profile whose name is no
        built-in one (there is nothing to compare it with).
        """
        base = PROFILES.get(self.name)
        if base is None:
            return []
        knobs = [k for k in self.knob_names() if getattr(self, k) != getattr(base, k)]
        lats = [n for n, lat in self.latencies.items() if lat != base.latencies.get(n)]
        return knobs + lats

    def summary(self) -> str:
        """The profile's name, with what was changed from that built-in profile, if anything.

        ``openkruise-v0.3.0`` or ``openkruise-v0.3.0 (changed: retry, image.pull)``:
        what a report says ran, since :meth:`with_overrides` keeps the name.
        """
        changed = self.changes()
        return f"{self.name} (changed: {', '.join(changed)})" if changed else self.name

    def with_overrides(self, latencies: Mapping[str, Any] | None = None, **knobs: Any) -> Profile:
        """A copy with some knobs and latencies changed, validated like a new profile.

        ``latencies`` maps latency names to anything
        :func:`~simulator.latency.parse_latency` reads (``"uniform(1s, 2s)"``,
        ``0.5``, a model). Raise :class:`ValueError` naming an unknown knob, an
        unknown latency, or the knob whose new value is invalid.
        """
        for knob in knobs:
            problem = self.knob_problem(knob)
            if problem is not None:
                raise ValueError(problem)
        data: dict[str, Any] = {
            name: getattr(self, name) for name in (*_NOT_KNOBS, *self.knob_names())
        }
        data.update(knobs)
        data["latencies"] = {**self.latencies, **(latencies or {})}
        try:
            return Profile.model_validate(data)
        except ValidationError as exc:
            raise ValueError(_describe(exc)) from None


_LATENCIES_READ_ONLY: Final = (
    "the latencies of a profile are read-only (every cluster built from a profile shares "
    "it, and so do the tests of a plugin run): make a changed copy with "
    "profile.with_overrides(latencies={name: spec}), or change a cluster's with "
    "cluster.set_latency(name, spec)"
)


def _read_only(latencies: Mapping[str, Latency]) -> ReadOnlyDict[str, Latency]:
    """``latencies`` as a table whose edits raise :class:`InvalidError` naming ``latencies``."""
    return ReadOnlyDict(latencies, field="latencies", reason=_LATENCIES_READ_ONLY)


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    knob = str(error["loc"][0]) if error["loc"] else "profile"
    ctx = error.get("ctx") or {}
    if knob == "latencies" and "error" in ctx:
        return str(ctx["error"])
    reason = str(ctx["error"]) if "error" in ctx else error["msg"]
    reason = reason.replace("Input should be", "must be")
    return f"invalid value for profile knob {knob!r}: {reason}, got {error['input']!r}"


DEFAULT_PROFILE = "openkruise-head"
"""The profile used when none is named."""

PROFILES: dict[str, Profile] = {
    "openkruise-head": Profile(
        name="openkruise-head",
        description=(
            "OpenKruise Agents master 0b72c83 (2026-08-22): exponential claim retry "
            "(10 attempts, 1 s to 16 s), client-bounded E2B create timeouts, "
            "namespace-scoped SandboxClaim"
        ),
    ),
    "openkruise-v0.3.0": Profile(
        name="openkruise-v0.3.0",
        description=(
            "OpenKruise Agents v0.3.0 (2026-05-11): claim retry every 25 ms until a 1 min "
            "claim timeout, 60 s wait-ready default, SandboxClaim searches pools in all "
            "namespaces (#824), no recycling on kill, claim annotations on the sandbox only"
        ),
        retry="fixed",
        e2b_default_claim_timeout_s=60.0,
        e2b_default_wait_ready_timeout_s=60.0,
        claim_namespace_scoped=False,
        # Both came after the tag (reference §4 recycle, §1.5 annotations, 2026-07-19).
        recycle_on_kill=False,
        claim_annotations_on_pod=False,
    ),
}
"""The built-in profiles by name."""


def get_profile(name: str) -> Profile:
    """A copy of the built-in profile ``name``; :class:`ValueError` lists the names on a miss."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}{_suggest(name, PROFILES)}; available: {', '.join(PROFILES)}"
        ) from None
    # A copy, as documented (the built-in's latency table is read-only all the same).
    return profile.model_copy(deep=True)
