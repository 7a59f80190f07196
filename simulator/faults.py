"""Fault injection: probabilistic faults (Toxiproxy's *toxicity*) and scheduled ones.

A :class:`Fault` has a *kind* (what breaks), a *probability* (how often it
fires when consulted), a *schedule* (``start`` and ``duration`` in virtual
seconds) and a *selector* (which verb, kind, node, template or controller it
targets), the vocabulary of Chaos Mesh, Toxiproxy and kwok stages.

The model consults :meth:`FaultInjector.check` at each decision point (an API
write, an image pull, an ``/init`` call, ...). Faults that *act* at a moment
(node loss, pod kill) are delivered to listeners when their window opens.
A ``controller_stall`` holds a component through a :class:`StallGate`, which a
clear of the stall opens at once. A fault that ends (cleared, or its window
over) ends its effect then, on work already under way too: the API server
lets go the watch events a ``watch_lag`` held and the requests an
``api_latency`` held, the kubelets finish a pull an ``image_pull_slow``
slowed at the ordinary rate.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import re
from bisect import bisect_left
from collections.abc import Callable, Collection, Generator, Iterator, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

import simpy
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
)

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.problems import format_path, reason
from pytest_kruise_agents.api.validation import dns_label_problem, label_value_problem
from simulator.imageref import image_name_problem
from simulator.latency import Latency, Seconds, parse_latency
from simulator.readonly import ReadOnlyDict

__all__ = [
    "FAULT_KINDS",
    "KIND_SELECTOR_VALUES",
    "LATENCY_KINDS",
    "SELECTOR_KEYS",
    "SELECTOR_VALUES",
    "Fault",
    "FaultCode",
    "FaultCount",
    "FaultInjector",
    "FaultKind",
    "Probability",
    "ReadOnlySelector",
    "Selector",
    "StallGate",
    "check_code",
    "check_count",
    "check_latency",
    "check_node_names",
    "check_selector",
    "check_window_opens",
]

FaultKind = Literal[
    "api_conflict",
    "api_error",
    "api_latency",
    "watch_lag",
    "pod_start_failure",
    "image_pull_failure",
    "image_pull_slow",
    "node_loss",
    "pod_kill",
    "runtime_init_failure",
    "runtime_unreachable",
    "csi_mount_failure",
    "controller_stall",
]

FAULT_KINDS: dict[str, str] = {
    "api_conflict": "API writes answer 409 Conflict (selector: verb, kind, client)",
    "api_error": "API calls answer a 5xx or 429 error (param code; selector: verb, kind, client)",
    "api_latency": "extra latency on API calls (param latency; selector: verb, kind, client)",
    "watch_lag": "extra watch propagation lag into informer caches (param latency; selector: informer)",
    "pod_start_failure": "a container fails to start; kubelet retries with CrashLoopBackOff (selector: template, namespace, node, image)",
    "image_pull_failure": "image pulls fail; kubelet retries with ImagePullBackOff (selector: image, node, template, namespace)",
    "image_pull_slow": "uncached image pulls take the drawn latency instead (param latency; selector: image, node, template, namespace)",
    "node_loss": "a node (or count random nodes) goes NotReady at start: its pods fail, it takes no pods until no node_loss in force holds it (selector: node; param count)",
    "pod_kill": "running sandbox pods are killed at start (selector: template, namespace, node; param count)",
    "runtime_init_failure": "agent-runtime /init answers a 4xx or 5xx error (param code; selector: template, namespace)",
    "runtime_unreachable": "agent-runtime /init times out (selector: template, namespace)",
    "csi_mount_failure": "a dynamic CSI mount fails (selector: template, namespace)",
    "controller_stall": "a controller makes no progress until the window ends or the fault is cleared; probability is drawn once, for the window (selector: controller)",
}

_ACTING_KINDS = frozenset({"node_loss", "pod_kill"})

_API = frozenset({"verb", "kind", "client"})
_POD = frozenset({"template", "namespace", "node", "image"})
_SANDBOX = frozenset({"template", "namespace"})

SELECTOR_KEYS: dict[str, frozenset[str]] = {
    "api_conflict": _API,
    "api_error": _API,
    "api_latency": _API,
    "watch_lag": frozenset({"informer"}),
    "pod_start_failure": _POD,
    "image_pull_failure": _POD,
    "image_pull_slow": _POD,
    "node_loss": frozenset({"node"}),
    "pod_kill": frozenset({"template", "namespace", "node"}),
    "runtime_init_failure": _SANDBOX,
    "runtime_unreachable": _SANDBOX,
    "csi_mount_failure": _SANDBOX,
    "controller_stall": frozenset({"controller"}),
}
"""The selector keys each kind's decision point supplies: any other key could never match."""

SELECTOR_VALUES: dict[str, tuple[str, ...]] = {
    "verb": ("create", "update", "update_status", "patch", "delete", "get"),
    "kind": ("Sandbox", "SandboxSet", "SandboxClaim", "SandboxTemplate", "Pod"),
    "client": (
        "sandbox-manager",
        "agent-sandbox-controller",
        "kube-scheduler",
        "kubelet/<node>",
        "node-lifecycle-controller",
    ),
    "informer": ("agent-sandbox-controller", "sandbox-manager", "kube-system"),
    "controller": ("sandbox", "sandboxset", "sandboxclaim", "scheduler", "kubelet"),
}
"""The values of the selector keys that name a fixed set of things (the others are names:
templates, namespaces, nodes, images)."""

KIND_SELECTOR_VALUES: dict[str, dict[str, tuple[str, ...]]] = {
    # The API server consults api_conflict only on the writes that carry a
    # resourceVersion to compare: a create, delete or get never meets it.
    "api_conflict": {"verb": ("update", "update_status", "patch")},
}
"""The values a kind's decision point supplies, where they are fewer than :data:`SELECTOR_VALUES`."""


def check_selector(kind: str, selector: Mapping[str, str]) -> None:
    """Raise :class:`ValueError` for the first selector key or value a ``kind`` fault never matches.

    A typo in a selector would otherwise leave the fault silently idle. A name
    (``namespace``, ``template``, ``image``) is checked for its form only (see
    :func:`_name_problem`): it may name something not made yet.
    """
    allowed = SELECTOR_KEYS.get(kind)
    if allowed is None:
        return  # an unknown kind is reported by the kind field itself
    for key, value in selector.items():
        if key not in allowed:
            raise ValueError(
                f"a fault of kind {kind!r} has no selector key {key!r} (it selects by "
                f"{', '.join(sorted(allowed))})"
            )
        values = SELECTOR_VALUES.get(key)
        if values is None:
            why = _name_problem(key, value)
            if why is not None:
                raise ValueError(f"{key}={value!r} can never match: {why}")
            continue
        if value in values:
            _check_value_of_kind(kind, key, value)
            continue
        if key == "client" and value.startswith("kubelet/") and len(value) > len("kubelet/"):
            continue
        raise ValueError(f"{key}={value!r} names nothing: use one of {', '.join(values)}")


def _name_problem(key: str, value: str) -> str | None:
    """Why no object could ever carry ``value`` as its ``key`` name, or ``None``.

    A namespace is a DNS-1123 label; a template is read from the pods' and
    sandboxes' template label, so it is a label value; a pod whose image the
    kubelet cannot parse never pulls or starts (``InvalidImageName``). Whether
    such a thing exists is not asked: a fault may be injected before it.
    """
    if key == "namespace":
        return dns_label_problem(value, what="namespace")
    if key == "template":
        return label_value_problem(value)
    if key == "image":
        return image_name_problem(value)
    return None


def _check_value_of_kind(kind: str, key: str, value: str) -> None:
    """Raise :class:`ValueError` if a ``kind`` fault's decision point never supplies ``value``."""
    values = KIND_SELECTOR_VALUES.get(kind, {}).get(key)
    if values is not None and value not in values:
        raise ValueError(
            f"a fault of kind {kind!r} never matches {key}={value!r}: it is consulted only "
            f"on {key} {', '.join(values)}"
        )


def check_node_names(
    selector: Mapping[str, str], nodes: Collection[str], *, hint: str = ""
) -> None:
    """Raise :class:`InvalidError` if ``selector`` names a node outside ``nodes``.

    A typo would leave the fault silently idle. Checked wherever the node
    names are known: at injection, against the nodes the cluster has then (a
    node added later can be targeted once it is added: ``hint`` says so), and
    where a scenario, config file or recipe, which lists all its nodes, is read.
    """
    named = [("selector.node", selector.get("node"))]
    client = selector.get("client", "")
    if client.startswith("kubelet/"):
        named.append(("selector.client", client.removeprefix("kubelet/")))
    for field, node in named:
        if node is not None and node not in nodes:
            known = list(nodes)
            shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
            raise InvalidError(field, f"no node named {node!r} (nodes: {shown}){hint}")


LATENCY_KINDS: frozenset[str] = frozenset({"api_latency", "watch_lag", "image_pull_slow"})
"""The kinds whose effect is a latency: without one they would do nothing."""


def check_latency(kind: str | None, latency: object) -> None:
    """Raise :class:`ValueError` unless a latency is given exactly to the kinds that add one."""
    if kind in LATENCY_KINDS and latency is None:
        raise ValueError(f"a fault of kind {kind!r} needs a latency (e.g. 'uniform(0, 200ms)')")
    if kind is not None and kind not in LATENCY_KINDS and latency is not None:
        # It would be accepted and never used.
        raise ValueError(
            f"a fault of kind {kind!r} takes no latency "
            f"(only {', '.join(sorted(LATENCY_KINDS))} do)"
        )


_DEFAULT_CODE: Final = 500
_CODE_KINDS: Final = ("api_error", "runtime_init_failure")


def check_code(kind: str | None, code: int) -> None:
    """Raise :class:`ValueError` unless ``code`` is a status a ``kind`` fault can answer.

    The other kinds answer no status: they take only the default (500), which
    a dumped fault carries back in; another code would be accepted and never used.
    """
    if kind == "api_error" and not (code == 429 or 500 <= code <= 599):
        raise ValueError(f"a fault of kind 'api_error' answers 429 or a 5xx status, got {code}")
    if kind == "runtime_init_failure" and not 400 <= code <= 599:
        raise ValueError(
            f"a fault of kind 'runtime_init_failure' answers a 4xx or 5xx status, got {code}"
        )
    if kind == "api_conflict":
        # It answers 409 Conflict whatever its code says: 409 (and the default a dumped
        # fault carries) say so, any other would be accepted and never used.
        if code not in (409, _DEFAULT_CODE):
            raise ValueError(f"a fault of kind 'api_conflict' answers 409 Conflict, got {code}")
        return
    if kind is not None and kind not in _CODE_KINDS and code != _DEFAULT_CODE:
        raise ValueError(
            f"a fault of kind {kind!r} answers no status, so it takes no code "
            f"(only {', '.join(_CODE_KINDS)} do)"
        )


def check_count(kind: str | None, count: int | None, selector: Mapping[str, str]) -> None:
    """Raise :class:`ValueError` for a ``count`` a ``kind`` fault would not honour."""
    if count is None:
        return
    if kind == "controller_stall":
        # A stall holds its component for its window, however many reconciles
        # that is: a count would be accepted and never used.
        raise ValueError(
            "a fault of kind 'controller_stall' takes no count: it holds its component "
            "for its whole window (give a duration, or clear it)"
        )
    if kind == "node_loss" and count > 1 and "node" in selector:
        raise ValueError(
            f"a node_loss with a node selector loses that one node, got count {count} "
            "(drop the selector to lose that many nodes chosen at random)"
        )


def _code_of_kind(value: int, info: ValidationInfo) -> int:
    check_code(info.data.get("kind"), value)
    return value


FaultCode = Annotated[int, Field(ge=100, le=599), AfterValidator(_code_of_kind)]
"""A fault's HTTP status, checked against the model's ``kind`` field (declared before it)."""


def _count_of_kind(value: int | None, info: ValidationInfo) -> int | None:
    check_count(info.data.get("kind"), value, info.data.get("selector") or {})
    return value


FaultCount = Annotated[int | None, Field(ge=1), AfterValidator(_count_of_kind)]
"""How many times a fault may fire, checked against its ``kind`` and ``selector`` (declared
before it)."""


def _selector_of_kind(value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
    kind = info.data.get("kind")
    if kind is not None:  # a bad kind is reported by its own field
        check_selector(kind, value)
    return value


Selector = Annotated[dict[str, str], AfterValidator(_selector_of_kind)]
"""A fault's selector, checked against the model's ``kind`` field (declared before it)."""


def _not_nan(value: Any) -> Any:
    # NaN fails every bound, so the bounds' own check would call it too big ("<= 1.0").
    if isinstance(value, float) and math.isnan(value):
        raise ValueError(f"must be a number between 0 and 1, got {value!r}")
    return value


Probability = Annotated[float, Field(ge=0.0, le=1.0), BeforeValidator(_not_nan)]
"""How often a fault fires when consulted: a number from 0 to 1 (NaN is none)."""


_SELECTOR_READ_ONLY: Final = (
    "the selector of a fault in force is read-only: clear the fault (clear_faults) and "
    "inject one with another selector, or edit a copy (dict(selector))"
)


class ReadOnlySelector(ReadOnlyDict[str, str]):
    """The selector of a fault in force: a ``dict`` (dumped, compared and copied as one)
    whose edits raise :class:`InvalidError`.

    A fault in force is handed out as a read-only view sharing its fields: a
    plain dict there would let ``view.selector["verb"] = "put"`` change what the
    fault matches, past the checks of its inject. ``dict(selector)`` (or
    ``selector.copy()``) is an editable copy.
    """

    __slots__ = ()

    def __init__(self, selector: Mapping[str, str] | None = None, /) -> None:
        super().__init__(selector or {}, field="selector", reason=_SELECTOR_READ_ONLY)


_FAULT_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,253}")
"""What a fault id may be: one URL path segment that needs no escaping."""


class Fault(BaseModel):
    """One injected fault."""

    # Strict: ``True`` is not a probability of 1 nor the text ``'0.5'`` one of 0.5.
    # ``start``, ``duration`` and ``latency`` still take text: their parsers read it.
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = ""
    kind: FaultKind
    probability: Probability = 1.0
    start: Seconds | None = Field(default=None, ge=0.0)
    duration: Seconds | None = Field(default=None, gt=0.0)
    selector: Selector = Field(default_factory=dict)
    latency: Latency | None = Field(default=None, validate_default=True)
    code: FaultCode = 500
    count: FaultCount = None
    fired: int = 0
    """(output) How many times the fault fired: never read from input (see ``_output_only``)."""

    @field_validator("latency", mode="before")
    @classmethod
    def _parse_latency(cls, value: Any, info: ValidationInfo) -> Any:
        check_latency(info.data.get("kind"), value)
        return None if value is None else parse_latency(value)

    @field_serializer("latency", when_used="json")
    def _latency_text(self, value: Latency | None) -> str | None:
        # In JSON a distribution is its text, as GET /_kruise/latency writes one and
        # the fault's own input takes it: what a client reads back it can send again.
        return None if value is None else str(value)

    @field_validator("id")
    @classmethod
    def _addressable_id(cls, value: str) -> str:
        # The id names the fault in a URL path (DELETE /_kruise/faults/{id}): "/"
        # would not route, and "." or ".." are dot segments clients rewrite away
        # (DELETE /_kruise/faults/. reached DELETE /_kruise/faults: clear them all).
        if value and (value in (".", "..") or not _FAULT_ID.fullmatch(value)):
            raise ValueError(
                "must be 1-253 letters, digits, '.', '_' or '-' (and not '.' or '..'), "
                f"got {value!r}"
            )
        return value

    @field_validator("fired", mode="before")
    @classmethod
    def _output_only(cls, value: Any) -> Any:
        # Runs only for a given value (the default is not validated): a fault
        # injected "already fired" would start used up, dead on arrival.
        raise ValueError("is an output (how many times the fault has fired), it cannot be set")

    def window_closed(self, now: float) -> bool:
        """Whether the fault's window ended at or before ``now`` (an open-ended one never ends)."""
        return self.duration is not None and now >= (self.start or 0.0) + self.duration

    def active(self, now: float) -> bool:
        """Whether the fault's window contains ``now`` and its count is not used up."""
        start = self.start or 0.0
        if now < start:
            return False
        if self.duration is not None and now >= start + self.duration:
            return False
        return self.count is None or self.fired < self.count

    def ended(self, now: float) -> bool:
        """Whether the fault can have no effect from ``now`` on: its window has closed, or
        (a consulted kind) its ``count`` is used up. (An acting kind also ends at its moment
        unless it acted and lasts: see ``Nodes._act``.)"""
        if self.window_closed(now):
            return True
        return (
            self.count is not None and self.fired >= self.count and self.kind not in _ACTING_KINDS
        )

    def matches(self, attrs: Mapping[str, str | None]) -> bool:
        """Whether every selector entry equals the attribute of the same name."""
        return all(attrs.get(key) == want for key, want in self.selector.items())

    def fires(self, rng: random.Random) -> bool:
        """Whether the fault fires this time, by its ``probability``: a draw from ``rng``
        only when the outcome is uncertain.

        At 1 it always fires, at 0 never (Toxiproxy's ``toxicity: 0``): a draw
        there would decide nothing and only shift every later draw, so a run
        with a fault of probability 0 would differ from the run without it.
        """
        probability = self.probability
        if probability >= 1.0:
            return True
        return probability > 0.0 and rng.random() < probability


_FILING_ORDER: Final = (
    "client",
    "node",
    "informer",
    "controller",
    "template",
    "namespace",
    "kind",
    "image",
    "verb",
)
"""The selector keys a consulted fault is filed under (:class:`_Consulted`): the first of these
its selector has, those that name the fewest targets first."""

_FILING_KEYS: Final = {
    kind: tuple(key for key in _FILING_ORDER if key in keys) for kind, keys in SELECTOR_KEYS.items()
}

_Shelf = tuple[str, str] | None
"""Where a consulted fault is filed: under one ``(key, value)`` of its selector, or ``None``
(a selector naming no filing key: it can match any target)."""


class _Consulted:
    """The consulted faults of one kind, in injection order, and filed by target.

    Each fault is filed on one shelf: the first entry of its selector whose
    key is a filing key of its kind (:data:`_FILING_ORDER`), or the shelf of
    faults for any target. A fault matches a target only if that entry equals
    the target's attribute, so the faults that can match a target are on the
    shelf of any target and on the shelves of the target's own attributes:
    :meth:`candidates` merges those few shelves in injection order and
    leaves the others unread. 10,000 faults of a kind on other nodes or
    namespaces cost a decision point a few dict lookups, not 10,000
    selector comparisons.
    """

    __slots__ = ("faults", "keys", "seqs", "shelf_of", "shelves")

    def __init__(self, kind: str) -> None:
        self.keys: tuple[str, ...] = _FILING_KEYS.get(kind, ())
        self.faults: list[Fault] = []
        self.seqs: list[int] = []
        """The faults' injection numbers, in the same order (ascending)."""
        self.shelves: dict[_Shelf, tuple[list[int], list[Fault]]] = {}
        """Per shelf, its faults' injection numbers and the faults, in injection order."""
        self.shelf_of: dict[int, _Shelf] = {}

    def add(self, seq: int, f: Fault) -> None:
        """File ``f`` (number ``seq``) in injection order, on its shelf too."""
        i = bisect_left(self.seqs, seq)  # the end, unless an earlier-injected fault opened late
        self.seqs.insert(i, seq)
        self.faults.insert(i, f)
        shelf = self._shelf(f)
        seqs, faults = self.shelves.setdefault(shelf, ([], []))
        j = bisect_left(seqs, seq)
        seqs.insert(j, seq)
        faults.insert(j, f)
        self.shelf_of[seq] = shelf

    def remove(self, seq: int) -> bool:
        """Take the fault numbered ``seq`` out; whether it was here."""
        i = bisect_left(self.seqs, seq)
        if i == len(self.seqs) or self.seqs[i] != seq:
            return False
        del self.seqs[i]
        del self.faults[i]
        shelf = self.shelf_of.pop(seq)
        seqs, faults = self.shelves[shelf]
        j = bisect_left(seqs, seq)
        del seqs[j]
        del faults[j]
        if not seqs:
            del self.shelves[shelf]
        return True

    def _shelf(self, f: Fault) -> _Shelf:
        selector = f.selector
        for key in self.keys:
            value = selector.get(key)
            if isinstance(value, str):
                return key, value
        return None

    def candidates(self, attrs: Mapping[str, str | None]) -> Sequence[Fault] | Iterator[Fault]:
        """The faults that may match a target of ``attrs``, in injection order (a superset of
        those that match; only these need :meth:`Fault.matches`).

        Read it before the faults change: a merge of several shelves is lazy.
        """
        shelves = self.shelves
        found: list[tuple[list[int], list[Fault]]] = []
        shelf = shelves.get(None)
        if shelf is not None:
            found.append(shelf)
        for key in self.keys:
            value = attrs.get(key)
            if value is not None:
                shelf = shelves.get((key, value))
                if shelf is not None:
                    found.append(shelf)
        if not found:
            return ()
        if len(found) == 1:
            return found[0][1]
        # Injection numbers are unique: the merge never compares two faults.
        merged = heapq.merge(*(zip(seqs, faults, strict=True) for seqs, faults in found))
        return (f for _, f in merged)


def _used_up(f: Fault) -> bool:
    """Whether a consulted fault that just fired has used up its ``count`` (it has ended)."""
    return f.count is not None and f.fired >= f.count and f.kind not in _ACTING_KINDS


def check_window_opens(start: float, duration: float | None) -> None:
    """Raise :class:`InvalidError` for a ``duration`` that adds nothing to ``start``.

    Times are floats: under the clock's step at ``start`` (``1e-320``, or
    ``1ns`` at 1e8 s), ``start + duration == start``, and the window would
    close as it opens, as one of duration 0 (refused by the field) would.
    """
    if duration is not None and start + duration == start:
        step = math.ulp(start)
        raise InvalidError(
            "duration",
            f"must be at least {step!r} s at a start of {start:g} s (the clock's step "
            f"there), got {duration!r}: the window would close as it opens, as with 0",
        )


class FaultInjector:
    """The set of faults in force, consulted by the model at its decision points.

    Only the faults whose window has opened are consulted. One injected with a
    ``start`` ahead waits in a heap by start time and joins the consulted
    faults of its kind when a consult (or an inject) finds its start reached,
    in injection order among them; one whose window has closed leaves them the
    same way, from a heap by end time. So a schedule of many faults (a
    scenario's, injected up front, or a chaos process's) costs each API call
    the faults open now, and each inject or retire O(log F). Admitting and
    retiring happen at a consult and draw nothing: a fault examined then is
    examined, and draws, exactly when a consult of every fault would have.

    Among the open faults of a kind, a consult examines only those filed
    where its target can match (:class:`_Consulted`): 10,000 faults on other
    nodes, namespaces or clients cost an API call nothing. Those it skips
    would not have matched, and a fault that does not match draws nothing, so
    what fires and what is drawn are the same as a walk of them all. A
    ``controller_stall`` is the exception: :meth:`stall_of` walks the open
    stalls (there are few), and draws only for those that select the
    controller asking.
    """

    def __init__(self, now: Callable[[], float], rng: random.Random) -> None:
        self._now = now
        self._rng = rng
        self._faults: dict[str, Fault] = {}
        self.injected = False
        """Whether any fault is injected and not cleared (``bool(injector)``), read as a plain
        attribute: the model asks at every API request and watch event, and ``bool()`` of
        the injector is two calls. Kept by :meth:`inject` and :meth:`clear`; read-only."""
        self._ids = itertools.count(1)
        self._seqs = itertools.count()
        # id(fault) -> its injection number, for the faults in force (each object
        # is alive while it is in force, so its id() names it alone).
        self._seq_of: dict[int, int] = {}
        # The consulted faults of each kind, in injection order and filed by target.
        self._by_kind: dict[str, _Consulted] = {}
        # (start, seq, fault) of the faults whose window has not opened; an entry
        # whose seq has left ``_waiting`` (cleared, retired) is skipped when popped.
        self._pending: list[tuple[float, int, Fault]] = []
        self._waiting: set[int] = set()
        # (end, seq, fault) of the consulted faults with a window: retired at its end.
        self._closing: list[tuple[float, int, Fault]] = []
        # The earliest time either heap has something due: a consult before it skips _sync.
        self._next_change = math.inf
        self._listeners: list[Callable[[Fault], None]] = []
        self._clear_listeners: list[Callable[[list[Fault]], None]] = []
        self._validators: list[Callable[[Fault], None]] = []
        # The injection numbers of the stalls (probability < 1) whose draw came up.
        self._stalls_held: set[int] = set()

    def __len__(self) -> int:
        return len(self._faults)

    @property
    def faults(self) -> list[Fault]:
        """The faults injected and not cleared, in injection order, with what each did
        (``fired``); one that has ended stays listed until cleared, but is no longer consulted."""
        return list(self._faults.values())

    def in_force(self, fault: Fault) -> bool:
        """Whether ``fault`` (the object) is injected and not cleared."""
        return self._faults.get(fault.id or "") is fault

    def get(self, fault_id: str) -> Fault | None:
        """The fault injected with ``fault_id`` and not cleared, or ``None`` (one lookup)."""
        return self._faults.get(fault_id)

    def retire(self, fault: Fault) -> None:
        """Stop consulting a fault that has ended (it stays listed; no clear listener runs).

        A run that injects faults for ever (a chaos schedule) would otherwise
        consult every one it ever made again at every API call. A fault whose
        window has not opened yet never joins the consulted ones.
        """
        seq = self._seq_of.get(id(fault))
        if seq is None:
            return  # not in force
        if seq in self._waiting:
            self._waiting.discard(seq)  # its heap entry is skipped when popped
            return
        consulted = self._by_kind.get(fault.kind)
        if consulted is None or not consulted.remove(seq):
            return  # retired already
        if not consulted.seqs:
            del self._by_kind[fault.kind]

    def _sync(self, now: float) -> None:
        """Admit the faults whose window has opened by ``now``; retire those whose window closed."""
        pending = self._pending
        while pending and pending[0][0] <= now:
            _, seq, f = heapq.heappop(pending)
            if seq in self._waiting:
                self._waiting.discard(seq)
                self._admit(seq, f, now)
        closing = self._closing
        while closing and closing[0][0] <= now:
            f = heapq.heappop(closing)[2]
            if self.in_force(f):
                self.retire(f)
        self._reschedule()

    def _reschedule(self) -> None:
        """Set when the heaps next have something due (after they change)."""
        pending, closing = self._pending, self._closing
        self._next_change = min(
            pending[0][0] if pending else math.inf, closing[0][0] if closing else math.inf
        )

    def _admit(self, seq: int, f: Fault, now: float) -> None:
        """Make ``f`` (number ``seq``, its window open at ``now``) a consulted fault."""
        if f.window_closed(now):
            return  # opened and closed unconsulted: it has ended
        consulted = self._by_kind.get(f.kind)
        if consulted is None:
            consulted = self._by_kind[f.kind] = _Consulted(f.kind)
        consulted.add(seq, f)
        if f.duration is not None:
            heapq.heappush(self._closing, ((f.start or 0.0) + f.duration, seq, f))

    def _compact(self) -> None:
        """Drop the heap entries of cleared faults once they outnumber the faults in force.

        Faults cleared before their window would otherwise stay referenced
        until their time came; dropped here in amortised O(1) per clear.
        """
        bound = 2 * len(self._faults) + 16
        if len(self._pending) > bound:
            self._pending = [e for e in self._pending if e[1] in self._waiting]
            heapq.heapify(self._pending)
        if len(self._closing) > bound:
            self._closing = [e for e in self._closing if self.in_force(e[2])]
            heapq.heapify(self._closing)
        self._reschedule()

    def consulted(self, kind: str) -> list[Fault]:
        """The faults of ``kind`` consulted now: not cleared, their window open, not known to
        have ended."""
        self._sync(self._now())
        consulted = self._by_kind.get(kind)
        return [] if consulted is None else list(consulted.faults)

    def add_listener(self, fn: Callable[[Fault], None]) -> None:
        """Call ``fn(fault)`` for every fault added (the cluster schedules acting faults)."""
        self._listeners.append(fn)

    def add_clear_listener(self, fn: Callable[[list[Fault]], None]) -> None:
        """Call ``fn(faults)`` with the faults each :meth:`clear` removes.

        Clearing a fault ends its effect at once (as deleting a Chaos Mesh
        resource recovers the target): a lost node comes back, a stall lets go.
        """
        self._clear_listeners.append(fn)

    def add_validator(self, fn: Callable[[Fault], None]) -> None:
        """Call ``fn(fault)`` before a fault is added; an :class:`InvalidError` it raises refuses it.

        For what only the cluster knows, such as which nodes exist.
        """
        self._validators.append(fn)

    def inject(self, fault: Fault | Mapping[str, Any] | None = None, /, **fields: Any) -> Fault:
        """Add a fault (a model, a mapping, or keyword fields); return it with its id.

        ``start`` is in virtual seconds; a fault without ``start`` starts now.
        """
        if isinstance(fault, Fault):
            # A fresh count: ``fired`` is this injection's output, never its input.
            f = fault.model_copy(update={"fired": 0})
        else:
            data = dict(fault or {})
            data.update(fields)
            try:
                f = Fault.model_validate(data)
            except ValidationError as exc:
                error = exc.errors()[0]
                raise InvalidError(
                    format_path(error["loc"]) or "fault",
                    reason(error, known=tuple(Fault.model_fields)),
                ) from None
        # Its own, read-only: the caller's Fault or mapping edited later, or the
        # view of it handed out edited now, would change the fault in force.
        f.selector = ReadOnlySelector(f.selector)
        for check in self._validators:
            check(f)
        now = self._now()
        if f.start is None:
            f.start = now
        check_window_opens(f.start, f.duration)
        if not f.id:
            f.id = self._new_id(f.kind)
        if f.id in self._faults:
            raise InvalidError("id", f"fault id {f.id!r} already in use")
        self._sync(now)  # the consulted lists hold only faults that can act now
        seq = next(self._seqs)
        self._faults[f.id] = f
        self.injected = True
        self._seq_of[id(f)] = seq
        if f.start <= now:
            self._admit(seq, f, now)
        else:
            self._waiting.add(seq)
            heapq.heappush(self._pending, (f.start, seq, f))
        self._reschedule()
        for fn in self._listeners:
            fn(f)
        return f

    def _new_id(self, kind: str) -> str:
        """A ``<kind>-<n>`` id not in force.

        A caller may choose an id of that same shape; stepping over it keeps an
        inject without an id from failing on an id its caller never gave.
        """
        while True:
            candidate = f"{kind}-{next(self._ids)}"
            if candidate not in self._faults:
                return candidate

    def clear(self, fault_id: str | None = None) -> None:
        """Remove one fault by id, or all of them; their effects end now."""
        if fault_id is None:
            removed = list(self._faults.values())
            self._faults.clear()
            self.injected = False
            self._seq_of.clear()
            self._by_kind.clear()
            self._pending.clear()
            self._waiting.clear()
            self._closing.clear()
            self._stalls_held.clear()
            self._next_change = math.inf
        else:
            f = self._faults.get(fault_id)
            if f is None:
                raise KeyError(f"no fault with id {fault_id!r}")
            self.retire(f)
            del self._faults[fault_id]
            self.injected = bool(self._faults)
            self._stalls_held.discard(self._seq_of.pop(id(f)))
            self._compact()
            removed = [f]
        if removed:
            for fn in self._clear_listeners:
                fn(removed)

    def check(self, kind: str, /, **attrs: str | None) -> Fault | None:
        """The fault of ``kind`` that fires now for a target with ``attrs``, if any.

        Draws from the cluster's generator only when a matching fault is active,
        so a run without faults consumes no random numbers here. Only the faults
        filed where a target of ``attrs`` can match are examined
        (:class:`_Consulted`), in injection order: the others would not match,
        and draw nothing. A fault whose ``count`` this firing uses up is no
        longer consulted.
        """
        consulted = self._by_kind.get(kind)
        if consulted is None and not self._pending:
            return None  # none open, none to open
        now = self._now()
        if now >= self._next_change:
            self._sync(now)
            consulted = self._by_kind.get(kind)
        if consulted is None:
            return None
        ended: list[Fault] | None = None
        fired: Fault | None = None
        for f in consulted.candidates(attrs):
            if not f.active(now):
                if f.ended(now):
                    ended = [f] if ended is None else [*ended, f]
                continue
            if f.matches(attrs) and f.fires(self._rng):
                f.fired += 1
                fired = f
                if _used_up(f):
                    ended = [f] if ended is None else [*ended, f]
                break
        if ended is not None:
            for f in ended:
                self.retire(f)
        return fired

    def replacing_latency(self, kind: str, /, **attrs: str | None) -> float | None:
        """The latency draw of the ``kind`` fault that fires now (as :meth:`check` picks it), or ``None``.

        For faults whose latency *replaces* the normal one (``image_pull_slow``):
        when several match, the first injected that fires decides, as for every
        consulted kind but the additive ``api_latency`` and ``watch_lag``. A draw
        of 0 is a latency of 0, not "no fault".
        """
        hit = self.replacing_draw(kind, **attrs)
        return None if hit is None else hit[1]

    def replacing_draw(self, kind: str, /, **attrs: str | None) -> tuple[Fault, float] | None:
        """As :meth:`replacing_latency`, with the fault that fired: the caller can end its
        effect when the fault ends."""
        f = self.check(kind, **attrs)
        if f is None or f.latency is None:
            return None
        return f, f.latency.sample(self._rng)

    def extra_latency(self, kind: str, /, **attrs: str | None) -> float:
        """Sum of the latency draws of the ``kind`` faults firing now (0 if none)."""
        total = 0.0
        for _, draw in self.latency_draws(kind, **attrs):
            total += draw
        return total

    def latency_draws(self, kind: str, /, **attrs: str | None) -> Sequence[tuple[Fault, float]]:
        """The latency draw of each ``kind`` fault firing now, in injection order, with the fault.

        For the additive kinds whose effect a clear must end early (``watch_lag``,
        ``api_latency``):
        the caller knows which fault holds what back. Examines what :meth:`check`
        examines, and every one of them.
        """
        consulted = self._by_kind.get(kind)
        if consulted is None and not self._pending:
            return ()  # none open, none to open
        now = self._now()
        if now >= self._next_change:
            self._sync(now)
            consulted = self._by_kind.get(kind)
        if consulted is None:
            return ()
        draws: list[tuple[Fault, float]] = []
        ended: list[Fault] | None = None
        for f in consulted.candidates(attrs):
            if not f.active(now):
                if f.ended(now):
                    ended = [f] if ended is None else [*ended, f]
                continue
            if f.latency is not None and f.matches(attrs) and f.fires(self._rng):
                f.fired += 1
                draws.append((f, f.latency.sample(self._rng)))
                if _used_up(f):
                    ended = [f] if ended is None else [*ended, f]
        if ended is not None:
            for f in ended:
                self.retire(f)
        return draws

    def stall_of(self, controller: str) -> Fault | None:
        """The ``controller_stall`` holding ``controller`` now (the first injected), or ``None``.

        The open stalls are examined in injection order; one that selects
        another controller draws nothing (as a consulted fault that does not
        match): a stall's probability is drawn the first time a controller it
        selects meets it (:meth:`_stall_drawn`), so a stall of a component
        that never works leaves the run as it was.
        """
        consulted = self._by_kind.get("controller_stall")
        if consulted is None and not self._pending:
            return None  # none open, none to open
        now = self._now()
        if now >= self._next_change:
            self._sync(now)
            consulted = self._by_kind.get("controller_stall")
        if consulted is None:
            return None
        for f in consulted.faults:
            if f.window_closed(now):
                self.retire(f)
                return self.stall_of(controller)  # the list changed under the loop
            if now < (f.start or 0.0) or f.selector.get("controller", controller) != controller:
                continue
            if not self._stall_drawn(f):
                self.retire(f)
                return self.stall_of(controller)
            return f
        return None

    def _stall_drawn(self, f: Fault) -> bool:
        """Whether the stall ``f`` holds at all: its ``probability`` drawn once, the first time
        it is consulted in its window (as an acting fault's, at its moment).

        A stall is a state of its component for a window, not an answer per
        reconcile, so the draw decides the window, not each wait in it. A
        stall whose draw failed has ended (the caller retires it).
        """
        if f.probability >= 1.0:
            return True  # no draw: a run with certain stalls draws what it did
        seq = self._seq_of.get(id(f))
        if seq is None or seq in self._stalls_held:
            return True
        if f.fires(self._rng):
            self._stalls_held.add(seq)
            return True
        return False

    def stalled_until(self, controller: str) -> float | None:
        """End of the current stall of ``controller`` (``inf`` if open-ended), or ``None``."""
        f = self.stall_of(controller)
        if f is None:
            return None
        return float("inf") if f.duration is None else (f.start or 0.0) + f.duration


class StallGate:
    """Where a component waits out the ``controller_stall`` faults that hold it.

    A stall holds the component until its window closes or it is cleared,
    whichever comes first: a clear opens the gate at once (a SimPy event that
    all the component's waiters share), without polling. Each wait a stall
    causes counts as one firing of it (one reconcile, scheduling pass, kubelet
    pod start or stop, API request or step of work under way held), so
    ``fired`` shows whether a stall held anything.
    """

    def __init__(self, faults: FaultInjector, env: simpy.Environment) -> None:
        self._faults = faults
        self._env = env
        self._cleared: simpy.Event | None = None
        faults.add_clear_listener(self._on_clear)

    def _on_clear(self, removed: list[Fault]) -> None:
        if not any(f.kind == "controller_stall" for f in removed):
            return
        event, self._cleared = self._cleared, None
        if event is not None and not event.triggered:
            event.succeed()

    def wait(self, name: str) -> Generator[simpy.Event, Any, None]:
        """Return once no stall holds the component called ``name`` (a SimPy sub-process)."""
        faults = self._faults
        env = self._env
        counted: Fault | None = None
        while faults.injected:
            stall = faults.stall_of(name)
            if stall is None:
                return
            if stall is not counted:  # once per hold, though another stall's clear woke us
                stall.fired += 1
                counted = stall
            if self._cleared is None:
                self._cleared = env.event()
            cleared = self._cleared
            if stall.duration is None:
                yield cleared
            else:
                end = (stall.start or 0.0) + stall.duration
                yield env.any_of([env.timeout(end - env.now), cleared])
