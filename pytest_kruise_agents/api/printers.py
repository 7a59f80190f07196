"""``kubectl get`` tables: the printer columns of each kind, and kubectl's AGE format.

The columns are the CRDs' ``additionalPrinterColumns`` (reference §1.1; none
has a priority, so ``-o wide`` adds nothing to them) and,
for pods, kubectl's own (``NAME READY STATUS RESTARTS AGE``, and ``IP NODE
NOMINATED NODE READINESS GATES`` with ``-o wide``; READY, STATUS and RESTARTS
read from the container statuses as ``printPod`` reads them). Layout follows kubectl's
tab writer: left-aligned cells padded by three spaces, a minimum cell width
of six, the last column unpadded, and ``<none>`` where a column's JSONPath
finds nothing. A cell ends at its first line break, followed by ``...``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pytest_kruise_agents.api.base import format_time
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.keys import LABEL_SANDBOX_CLAIMED
from pytest_kruise_agents.api.manifest import API_VERSIONS, KINDS, KubeObject, resolve_kind
from pytest_kruise_agents.api.meta import find_condition
from pytest_kruise_agents.api.pod import (
    ContainerStateTerminated,
    ContainerStatus,
    Pod,
    first_sync_statuses,
    is_sidecar,
)
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.api.sandboxclaim import SandboxClaim
from pytest_kruise_agents.api.sandboxset import SandboxSet

__all__ = ["Table", "format_age", "printer_columns", "render_table"]


class Table(str):
    """The text of a table: a ``str`` (compare it, print it, write it) that IPython and
    Jupyter show as its lines, as ``print`` would, rather than as a one-line literal."""

    __slots__ = ()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """IPython's hook (``text/plain`` in a notebook): the table as printed."""
        p.text(str(self).rstrip("\n"))


_NONE = "<none>"
# What kubectl prints for a column whose JSONPath finds nothing.


_MAX_DURATION_US = (2**63 - 1) // 1000
"""Go's longest ``time.Duration`` (2^63 - 1 ns, about 292.5 years), in whole microseconds."""


def format_age(delta: timedelta) -> str:
    """A duration as kubectl's AGE column shows it (apimachinery ``duration.HumanDuration``).

    ``90s``, ``5m30s``, ``45m``, ``3h20m``, ``20h``, ``2d5h``, ``400d``,
    ``3y20d``, ``10y``: the further back, the coarser. A slightly negative
    delta (clock skew up to 2 s) reads ``0s``; anything earlier ``<invalid>``.
    Past about 292 years it reads ``292y``: kubectl's ``time.Since`` saturates
    at Go's longest ``Duration``. A ``delta`` that is no ``timedelta`` (seconds
    as a number, a Go duration string) raises :class:`InvalidError` naming ``delta``.
    """
    if not isinstance(delta, timedelta):
        raise InvalidError("delta", f"must be a datetime.timedelta, got {type(delta).__name__}")
    micros = min(delta // timedelta(microseconds=1), _MAX_DURATION_US)
    # Go's int(d.Seconds()) truncates toward zero, also for negative values.
    seconds = micros // 1_000_000 if micros >= 0 else -(-micros // 1_000_000)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


# A cell getter takes the object and "now" and returns the text, or None when
# the JSONPath would find nothing (printed as <none>).
_Getter = Callable[[KubeObject, datetime], str | None]


@dataclass(frozen=True)
class _Column:
    header: str
    get: _Getter
    wide_only: bool = False


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)


def _age(obj: KubeObject, now: datetime) -> str:
    created = obj.metadata.creation_timestamp
    # metatable.ConvertToHumanReadableDateType prints a zero time as <unknown>.
    return "<unknown>" if created is None else format_age(now - created)


def _name(obj: KubeObject, now: datetime) -> str:
    return obj.metadata.name


def _sandbox(get: Callable[[Sandbox], object]) -> _Getter:
    return lambda obj, now: _text(get(obj)) if isinstance(obj, Sandbox) else None


def _sandboxset(get: Callable[[SandboxSet], object]) -> _Getter:
    return lambda obj, now: _text(get(obj)) if isinstance(obj, SandboxSet) else None


def _claim(get: Callable[[SandboxClaim], object]) -> _Getter:
    return lambda obj, now: _text(get(obj)) if isinstance(obj, SandboxClaim) else None


def _pod(get: Callable[[Pod], object]) -> _Getter:
    return lambda obj, now: _text(get(obj)) if isinstance(obj, Pod) else None


_NODE_LOST = "NodeLost"
"""The reason of a pod on an unreachable node (``node.NodeUnreachablePodReason``)."""


@dataclass(frozen=True)
class _PodCells:
    """The READY, STATUS and RESTARTS cells of a pod row."""

    ready: str
    status: str
    restarts: str


def _pod_statuses(pod: Pod) -> tuple[list[ContainerStatus], list[ContainerStatus]]:
    """The pod's ``(initContainerStatuses, containerStatuses)``, as a kubelet would have them.

    The model's kubelet makes its first status write when the pod's containers
    run (or fail), not when it takes the pod: a bound Pending pod without any
    container status reads as the kubelet's first sync writes it in a real
    cluster, each container waiting (``ContainerCreating``, ``PodInitializing``).
    """
    st = pod.status
    if (
        st.container_statuses
        or st.init_container_statuses
        or st.phase != "Pending"
        or not pod.spec.get("nodeName")
    ):
        return st.init_container_statuses, st.container_statuses
    return first_sync_statuses(pod.spec)


def _finished_at(status: ContainerStatus) -> datetime | None:
    term = status.last_state.terminated
    return None if term is None else term.finished_at


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    return a if b is None or a >= b else b


def _terminated_reason(term: ContainerStateTerminated, prefix: str = "") -> str:
    if term.reason:
        return prefix + term.reason
    if term.signal:
        return f"{prefix}Signal:{term.signal}"
    return f"{prefix}ExitCode:{term.exit_code}"


def _condition_true(pod: Pod, type_: str) -> bool:
    cond = find_condition(pod.status.conditions, type_)
    return cond is not None and cond.status == "True"


def _pod_cells(pod: Pod, now: datetime) -> _PodCells:
    """kubectl's ``printPod``: READY, STATUS and RESTARTS from the container statuses.

    STATUS starts as the pod's ``reason``, else its phase; the first init
    container not done gives ``Init:<reason>`` or ``Init:<i>/<n>``; once
    initialised, a container's waiting or terminated reason wins (the last
    container's first). READY counts running ready containers and started
    ready sidecars; RESTARTS sums restart counts, with the age of the latest
    ``lastState.terminated.finishedAt`` once there is a restart.
    """
    spec = pod.spec
    init_spec = [c for c in spec.get("initContainers") or [] if isinstance(c, dict)]
    sidecars = {str(c.get("name")) for c in init_spec if is_sidecar(c)}
    total = len(spec.get("containers") or []) + sum(1 for c in init_spec if is_sidecar(c))
    ready = restarts = sidecar_restarts = 0
    last: datetime | None = None
    sidecar_last: datetime | None = None
    reason = pod.status.reason or pod.status.phase
    init_statuses, statuses = _pod_statuses(pod)
    initializing = False
    for i, c in enumerate(init_statuses):
        restarts += c.restart_count
        last = _later(last, _finished_at(c))
        sidecar = c.name in sidecars
        if sidecar:
            sidecar_restarts += c.restart_count
            sidecar_last = _later(sidecar_last, _finished_at(c))
        term, waiting = c.state.terminated, c.state.waiting
        if term is not None and term.exit_code == 0:
            continue
        if sidecar and c.started:
            if c.ready:
                ready += 1
            continue
        initializing = True
        if term is not None:
            reason = _terminated_reason(term, "Init:")
        elif waiting is not None and waiting.reason and waiting.reason != "PodInitializing":
            reason = "Init:" + waiting.reason
        else:
            reason = f"Init:{i}/{len(init_spec)}"
        break
    if not initializing or _condition_true(pod, "Initialized"):
        # Only the sidecars' restarts count beside the containers' (as printPod does).
        restarts, last = sidecar_restarts, sidecar_last
        running = False
        for c in reversed(statuses):
            restarts += c.restart_count
            last = _later(last, _finished_at(c))
            term, waiting = c.state.terminated, c.state.waiting
            if waiting is not None and waiting.reason:
                reason = waiting.reason
            elif term is not None:
                reason = _terminated_reason(term)
            elif c.ready and c.state.running is not None:
                running = True
                ready += 1
        if reason == "Completed" and running:
            reason = "Running" if _condition_true(pod, "Ready") else "NotReady"
    # A pod being deleted reads "Unknown" if its node was lost, and "Terminating"
    # unless it has already ended (since 1.27: a Failed pod being deleted keeps
    # its reason, "Killed", "Evicted"...).
    if pod.metadata.deletion_timestamp is not None:
        if pod.status.reason == _NODE_LOST:
            reason = "Unknown"
        elif pod.status.phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    shown = str(restarts)
    if restarts and last is not None:
        shown = f"{restarts} ({format_age(now - last)} ago)"
    return _PodCells(f"{ready}/{total}", reason, shown)


def _pod_cell(get: Callable[[_PodCells], str]) -> _Getter:
    return lambda obj, now: get(_pod_cells(obj, now)) if isinstance(obj, Pod) else None


def _pod_readiness_gates(pod: Pod) -> str | None:
    # "<true>/<gates>": how many of spec.readinessGates have a True condition.
    gates = pod.spec.get("readinessGates")
    if not isinstance(gates, list) or not gates:
        return None
    true = {c.type for c in pod.status.conditions if c.status == "True"}
    met = sum(1 for g in gates if isinstance(g, dict) and g.get("conditionType") in true)
    return f"{met}/{len(gates)}"


# The CRDs' columns have no priority: ``-o wide`` shows them and no more.
_COLUMNS: dict[str, tuple[_Column, ...]] = {
    "Sandbox": (
        _Column("NAME", _name),
        _Column("STATUS", _sandbox(lambda s: s.status.phase)),
        _Column("AGE", _age),
        _Column("CLAIMED", _sandbox(lambda s: s.metadata.labels.get(LABEL_SANDBOX_CLAIMED))),
        _Column("SHUTDOWN_TIME", _sandbox(lambda s: s.spec.shutdown_time)),
        _Column("PAUSE_TIME", _sandbox(lambda s: s.spec.pause_time)),
        _Column("RECYCLEDCOUNT", _sandbox(lambda s: s.status.recycled_count)),
        _Column("MESSAGE", _sandbox(lambda s: s.status.message)),
    ),
    "SandboxSet": (
        _Column("NAME", _name),
        _Column("REPLICAS", _sandboxset(lambda s: s.status.replicas)),
        _Column("AVAILABLE", _sandboxset(lambda s: s.status.available_replicas)),
        _Column("UPDATEDREPLICAS", _sandboxset(lambda s: s.status.updated_replicas)),
        _Column(
            "UPDATEDAVAILABLEREPLICAS", _sandboxset(lambda s: s.status.updated_available_replicas)
        ),
        _Column("UPDATEREVISION", _sandboxset(lambda s: s.status.update_revision)),
        _Column("AGE", _age),
    ),
    "SandboxClaim": (
        _Column("NAME", _name),
        _Column("PHASE", _claim(lambda c: c.status.phase)),
        _Column("TEMPLATE", _claim(lambda c: c.spec.template_name)),
        _Column("DESIRED", _claim(lambda c: c.spec.replicas)),
        _Column("CLAIMED", _claim(lambda c: c.status.claimed_replicas)),
        _Column("AGE", _age),
    ),
    # No additionalPrinterColumns: kubectl prints the name and the age.
    "SandboxTemplate": (
        _Column("NAME", _name),
        _Column("AGE", _age),
    ),
    # kubectl's own pod columns (podColumnDefinitions); the wide ones have priority 1.
    "Pod": (
        _Column("NAME", _name),
        _Column("READY", _pod_cell(lambda cells: cells.ready)),
        _Column("STATUS", _pod_cell(lambda cells: cells.status)),
        _Column("RESTARTS", _pod_cell(lambda cells: cells.restarts)),
        _Column("AGE", _age),
        _Column("IP", _pod(lambda p: p.status.pod_ip or None), wide_only=True),
        _Column("NODE", _pod(lambda p: p.spec.get("nodeName") or None), wide_only=True),
        # The model has no preemption, hence no nominated node.
        _Column("NOMINATED NODE", lambda obj, now: None, wide_only=True),
        _Column("READINESS GATES", _pod(_pod_readiness_gates), wide_only=True),
    ),
}

# kubectl's tab writer: minwidth 6, padding 3 (printers.GetNewTabWriter).
_MIN_WIDTH = 6
_PADDING = 3


_MODELS: tuple[type[KubeObject], ...] = tuple(KINDS.values())
"""The models a table prints: one of each kind."""

_KIND_NAMES: tuple[str, ...] = tuple(KINDS)


def printer_columns(kind: str, *, wide: bool = False, all_namespaces: bool = False) -> list[str]:
    """The column headers ``kubectl get`` prints for ``kind``.

    ``wide`` adds the columns kept for ``-o wide``: kubectl's for a pod (IP,
    node, nominated node, readiness gates), none for the other kinds (their
    CRDs' printer columns have no priority, so ``-o wide`` adds none);
    ``all_namespaces`` puts NAMESPACE first, as ``-A`` does. ``kind`` is any
    name :func:`resolve_kind` takes (``sbx``, ``sandboxes``, ``Sandbox``);
    another raises :class:`InvalidError` naming ``kind``.
    """
    if kind not in _COLUMNS:
        try:
            kind = resolve_kind(kind)
        except InvalidError as err:
            raise InvalidError("kind", err.reason) from None
    headers = [c.header for c in _COLUMNS[kind] if wide or not c.wide_only]
    return ["NAMESPACE", *headers] if all_namespaces else headers


def render_table(
    objects: Sequence[KubeObject],
    now: datetime,
    *,
    all_namespaces: bool = False,
    wide: bool = False,
    namespace: str = "default",
) -> str:
    """The text ``kubectl get`` prints for ``objects``, their AGE measured at ``now``.

    Rows keep the order given. Objects of several kinds print as one table per
    kind, in order of first appearance, separated by a blank line, with names
    qualified as ``sandbox.agents.kruise.io/<name>`` (as ``kubectl get sbx,sbs``
    does). No objects print ``No resources found in <namespace> namespace.``
    A ``now`` that is no timezone-aware ``datetime`` (``datetime.now()`` is
    naive) raises :class:`InvalidError` naming ``now``: the objects' times are aware.
    """
    if not isinstance(now, datetime):
        raise InvalidError(
            "now", f"must be a timezone-aware datetime.datetime, got {type(now).__name__}"
        )
    if now.utcoffset() is None:
        raise InvalidError(
            "now", "must be a timezone-aware datetime.datetime, got a naive one (no tzinfo)"
        )
    if not objects:
        if all_namespaces:
            return "No resources found\n"
        return f"No resources found in {namespace} namespace.\n"
    by_kind: dict[str, list[KubeObject]] = {}
    for i, obj in enumerate(objects):
        if not isinstance(obj, _MODELS):
            raise InvalidError(
                f"objects[{i}]",
                f"must be a {', '.join(_KIND_NAMES[:-1])} or {_KIND_NAMES[-1]} model, "
                f"got {type(obj).__name__}",
            )
        by_kind.setdefault(obj.kind, []).append(obj)
    qualify = len(by_kind) > 1
    tables = [
        _table(kind, rows, now, all_namespaces=all_namespaces, wide=wide, qualify=qualify)
        for kind, rows in by_kind.items()
    ]
    return "\n".join(tables)


_LINE_BREAK = re.compile(r"[\n\r\f]")
"""What ends a table cell: a line break, or a form feed (a line break to the tab writer)."""


def _cell(text: str) -> str:
    """``text`` as cli-runtime's ``printRows`` writes a string cell.

    Cut at its first line break with ``...`` appended, so that a multi-line
    message cannot break the table, and ESC shown as ``^[``
    (``printers.EscapeTerminal``), so that a cell cannot drive the terminal.
    """
    cut = _LINE_BREAK.search(text)
    shown = (text if cut is None else text[: cut.start()]).replace("\x1b", "^[")
    return shown if cut is None else shown + "..."


def _qualified(kind: str) -> str:
    group = API_VERSIONS[kind].rpartition("/")[0]
    return f"{kind.lower()}.{group}" if group else kind.lower()


def _table(
    kind: str,
    objects: Sequence[KubeObject],
    now: datetime,
    *,
    all_namespaces: bool,
    wide: bool,
    qualify: bool,
) -> str:
    columns = [c for c in _COLUMNS[kind] if wide or not c.wide_only]
    rows = [printer_columns(kind, wide=wide, all_namespaces=all_namespaces)]
    for obj in objects:
        cells = [_NONE if (v := c.get(obj, now)) is None else _cell(v) for c in columns]
        if qualify:
            cells[0] = f"{_qualified(kind)}/{cells[0]}"
        rows.append([obj.metadata.namespace, *cells] if all_namespaces else cells)
    widths = [
        max(_MIN_WIDTH, max(len(row[i]) for row in rows) + _PADDING) for i in range(len(rows[0]))
    ]
    lines = []
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("".join(padded) + row[-1])
    return "\n".join(lines) + "\n"
