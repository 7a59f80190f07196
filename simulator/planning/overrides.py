"""Overrides: change one field of a scenario by its path (``--set path=value``).

Paths use the scenario's field names, dots between levels and ``[n]`` for
list items; a list item may also be named by its ``name`` (or a workload by
its ``template``, a fault by its ``kind``), after a dot or in brackets. A
name may hold dots (a pool ``web.v2``): in brackets it is taken whole, after
a dot the longest name that matches is taken (``pools.web.v2.replicas``
names ``web.v2`` rather than ``web``); digits in brackets are an index::

    pools.base.replicas=40
    pools[web.v2].replicas=40
    workloads[0].arrivals.rate=300/min
    cluster.profile=openkruise-v0.3.0
    cluster.latencies.image.pull=lognormal(median=10s, p99=1m)

Under ``latencies``, ``knobs``, ``selector`` and ``metadata`` the rest of the
path is one key (latency names contain dots). Values are read as YAML
scalars (``40`` is a number, ``true`` a boolean, ``exp(5s)`` a string);
``--set`` takes several values separated by commas (commas inside brackets,
parentheses or a quoted string do not separate: ``name="Hello, world"`` is
one value). A value YAML cannot read (``"Hello``, ``a: b: c``) is refused.

A value keeps the kind YAML gives it, as in the file: ``true`` is refused
where a number is wanted (pydantic alone would read it as 1), ``1`` where a
boolean is, ``1.5`` and ``3.0`` where an integer is, and quoted digits
(``'"3"'``) wherever a number is. Fields that take text take it (durations,
rates, shares, latencies, and quantities, which take numbers too).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from pytest_kruise_agents.api.goyaml import YamlLoader
from simulator.planning.arrivals import TraceArrivals
from simulator.planning.errors import ScenarioError
from simulator.planning.loading import revalidate_scenario
from simulator.planning.scenario import Scenario

__all__ = [
    "Axis",
    "apply_overrides",
    "canonical_path",
    "parse_axis",
    "parse_value",
    "repeated_value",
    "show_value",
    "split_path",
]

_SOURCE = "--set"
_MAP_FIELDS = frozenset({"latencies", "knobs", "selector", "metadata"})
_TOKEN = re.compile(r"\[(\d+)\]|\[([^\[\]]+)\]|([^.\[\]]+)")


class _ItemName(str):
    """A list item's name written in brackets (``pools[web.v2]``): one name, dots and all."""

    __slots__ = ()


@dataclass(frozen=True)
class Axis:
    """One ``--set``: a field path and the values it takes."""

    path: str
    values: tuple[Any, ...]


def split_path(path: str) -> list[str | int]:
    """``pools.base.replicas`` → ``["pools", "base", "replicas"]``; ``[0]`` → ``0``.

    ``[web.v2]`` is one part, ``"web.v2"``: the name of a list item.
    """
    text = path.strip()
    if not text:
        raise ScenarioError(_SOURCE, path, "empty path")
    parts: list[str | int] = []
    pos = 0
    while pos < len(text):
        if text[pos] == ".":
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ScenarioError(_SOURCE, path, f"cannot read the path at {text[pos:]!r}")
        if m.group(1) is not None:
            parts.append(int(m.group(1)))
        elif m.group(2) is not None:
            parts.append(_ItemName(m.group(2)))
        else:
            token = m.group(3)
            if parts and parts[-1] in _MAP_FIELDS:
                # The rest of the path is one key of the mapping.
                parts.append(text[pos:])
                return parts
            parts.append(token)
        pos = m.end()
    return parts


def parse_value(text: str) -> Any:
    """A value as a YAML scalar (numbers, booleans, null, quoted or plain text).

    Read as the scenario file is read (go-yaml's rules, :class:`YamlLoader`), so a value
    means the same in ``--set`` as in the file: ``n`` is false, ``1:30`` is text.
    Raise :class:`ScenarioError` for text YAML cannot read (``"Hello``): taking it as
    it stands would give a value, stray quote and all, that nobody typed.
    """
    try:
        value = yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ScenarioError(
            _SOURCE, "", f"cannot read {text!r} as a YAML value: {problem}"
        ) from None
    return (
        text
        if isinstance(value, dict | list) and not text.strip().startswith(("{", "["))
        else value
    )


def show_value(value: Any) -> str:
    """``value`` as it is typed after ``--set path=``: ``true``, ``null``, ``'3'`` for text that reads as 3."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if not isinstance(value, str):
        return str(value)
    try:
        same = parse_value(value) == value
    except ScenarioError:
        same = False  # text YAML cannot read (from a file's sweep list): quoted, as typed
    return str(value) if same else repr(value)


_OPENS_QUOTE = frozenset("([{,:=")
"""What may come before a quote that opens a quoted string (a value's start aside)."""


def _split_values(text: str) -> list[str]:
    """``v1,v2,...`` split at the commas outside brackets, parentheses and quoted strings.

    A quote opens a string only where YAML reads one (at a value's start, or after a
    bracket, a comma, a colon): the quote of ``it's`` is a letter. Inside single
    quotes ``''`` is a quote; inside double quotes a backslash escapes.
    """
    out: list[str] = []
    depth = 0
    cur = ""
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if quote == '"' and ch == "\\" and i + 1 < len(text):
                cur += text[i : i + 2]
                i += 2
                continue
            if ch == quote and quote == "'" and text[i + 1 : i + 2] == "'":
                cur += "''"
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"'" and (not cur.strip() or cur.rstrip()[-1] in _OPENS_QUOTE):
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0 and not quote:
            out.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    out.append(cur)
    return [v.strip() for v in out]


def parse_axis(text: str) -> Axis:
    """``path=v1,v2,...`` → an :class:`Axis`; ScenarioError names a malformed option."""
    path, sep, values = text.partition("=")
    if not sep or not path.strip():
        raise ScenarioError(_SOURCE, text, "expected path=value[,value...]")
    split_path(path)
    raw = _split_values(values)
    if any(v == "" for v in raw):
        # Named as typed, as every refused override is.
        raise ScenarioError(f"{_SOURCE} {text}", path.strip(), "empty value")
    try:
        parsed = tuple(parse_value(v) for v in raw)
    except ScenarioError as exc:
        # Named as typed: the one option whose value YAML cannot read.
        raise ScenarioError(f"{_SOURCE} {text}", path.strip(), exc.reason) from None
    twice = repeated_value(parsed)
    if twice is not None:
        raise ScenarioError(
            f"{_SOURCE} {text}",
            path.strip(),
            f"value {show_value(twice)} given twice (a sweep runs each value once)",
        )
    return Axis(path=path.strip(), values=parsed)


def repeated_value(values: Sequence[Any]) -> Any | None:
    """The first value ``values`` holds twice (of the same kind: ``1`` is not ``true``), or None.

    A sweep would run such a value as two points with the same labels, which its
    table, its ``summary.json`` and its ``claims.csv`` could not tell apart.
    """
    seen: list[tuple[type, Any]] = []
    for value in values:
        key = (type(value), value)
        if key in seen:
            return value
        seen.append(key)
    return None


def _match(items: list[Any], parts: list[str | int], at: int, path: str) -> tuple[int, int]:
    """The item ``parts[at]`` names (an index or a name), and how many parts the name took.

    A name after a dot may hold dots of its own: the parts up to the next
    index or bracket are tried, the longest name that matches first
    (``pools.web.v2.replicas`` names ``web.v2`` before ``web``).
    """
    key = parts[at]
    if isinstance(key, int):
        if 0 <= key < len(items):
            return key, 1
        raise ScenarioError(_SOURCE, path, f"index {key} out of range (the list has {len(items)})")
    bracketed = isinstance(key, _ItemName)
    for name, taken in [(key, 1)] if bracketed else _dotted_names(parts, at):
        for i, item in enumerate(items):
            if isinstance(item, dict) and name in (
                item.get("name"),
                item.get("template"),
                item.get("kind"),
            ):
                return i, taken
    names = [
        str(item.get("name") or item.get("template") or item.get("kind"))
        for item in items
        if isinstance(item, dict)
    ]
    reason = f"no item named {key!r} (items: {', '.join(names)})"
    dotted = next((n for n in names if "." in n), None)
    if dotted is not None and not bracketed:
        reason += f"; a name with dots may be written in brackets: {parts[at - 1]}[{dotted}]"
    raise ScenarioError(_SOURCE, path, reason)


def _dotted_names(parts: list[str | int], at: int) -> list[tuple[str, int]]:
    """The names the plain parts from ``at`` may spell (joined by their dots), longest first.

    Each comes with the number of parts it takes; a plain part holds no dot,
    and an index or a bracketed name ends the run.
    """
    end = at
    while end < len(parts) and _is_plain(parts[end]):
        end += 1
    plain = [str(p) for p in parts[at:end]]
    return [(".".join(plain[:n]), n) for n in range(len(plain), 0, -1)]


def _is_plain(part: str | int) -> bool:
    """Whether ``part`` was written after a dot (not an index, not a name in brackets)."""
    return isinstance(part, str) and not isinstance(part, _ItemName)


def _set(data: dict[str, Any], path: str, value: Any) -> str:
    """Set ``path`` in ``data``; return the path with every list item by index."""
    parts = split_path(path)
    node: Any = data
    resolved: list[str | int] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if isinstance(node, list):
            idx, taken = _match(node, parts, i, path)
            resolved.append(idx)
            i += taken
            if i == len(parts):
                node[idx] = value
                break
            node = node[idx]
        elif isinstance(node, dict):
            if isinstance(part, int):
                raise ScenarioError(_SOURCE, path, "an index where a field name is expected")
            if isinstance(part, _ItemName):
                raise ScenarioError(
                    _SOURCE, path, f"a list item's name where a field name is expected: [{part}]"
                )
            resolved.append(part)
            i += 1
            if i == len(parts):
                node[part] = value
                break
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise ScenarioError(_SOURCE, path, f"cannot descend into a {type(node).__name__}")
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in resolved).lstrip(".")


def canonical_path(scenario: Scenario, path: str) -> str:
    """``pools.base.replicas`` → ``pools[0].replicas``: the field ``path`` names in ``scenario``.

    Raise :class:`ScenarioError` when the path names no item.
    """
    # Setting on a throwaway copy resolves the names exactly as an override would.
    return _set(scenario.model_dump(mode="python"), path, None)


def apply_overrides(
    scenario: Scenario,
    sets: Sequence[tuple[str, Any]],
    *,
    typed: Sequence[str] | None = None,
) -> Scenario:
    """A copy of ``scenario`` with each ``(path, value)`` set, validated again.

    A bad path or value raises :class:`ScenarioError` whose source is the one
    override at fault, as it was typed: ``typed[i]`` names ``sets[i]`` (e.g.
    ``--seed -5``), by default ``--set path=value``. A value refused only in
    combination (no override's field is the one refused) names them all.
    """
    if not sets:
        return scenario
    names = list(typed) if typed is not None else []
    names += [f"--set {p}={show_value(v)}" for p, v in sets[len(names) :]]
    data = scenario.model_dump(mode="python")
    fields: list[str] = []
    for (path, value), name in zip(sets, names, strict=True):
        try:
            field = _set(data, path, value)
            _refuse_written_rows(data, field)
            fields.append(field)
        except ScenarioError as exc:
            # Name the override as it was typed, as a value refused below does.
            raise ScenarioError(name, exc.path, exc.reason) from None
    _forget_replaced_traces(data, scenario)
    try:
        return revalidate_scenario(data, source=_SOURCE, base_dir=scenario.base_dir)
    except ScenarioError as exc:
        at_fault = _at_fault(names, fields, exc.path if exc.source == _SOURCE else "")
        if exc.source != _SOURCE:
            # A bad row of a trace file: keep the file and line that name it.
            raise ScenarioError(at_fault, "", str(exc)) from None
        raise ScenarioError(at_fault, exc.path, exc.reason) from None


def _within(inner: str, outer: str) -> bool:
    """Whether the field path ``inner`` is ``outer`` or a part of it."""
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def _refuse_written_rows(data: dict[str, Any], field: str) -> None:
    """Refuse an override that writes a trace's ``rows``, as a scenario file is refused.

    The rows are read from the trace's ``file`` at loading, where each row is
    checked (and the rows sorted): rows an override wrote would skip that. An
    override writes them when it sets them (or a row), or sets an ``arrivals``
    (a workload, the workloads) whose value has them; one that sets the
    ``file`` or another field leaves the rows read at loading in place.
    """
    workloads = data.get("workloads")
    if not isinstance(workloads, list):
        return
    for i, wl in enumerate(workloads):
        rows = f"workloads[{i}].arrivals.rows"
        arrivals = wl.get("arrivals") if isinstance(wl, dict) else None
        carried = _within(rows, field) and isinstance(arrivals, dict) and "rows" in arrivals
        if _within(field, rows) or carried:
            raise ScenarioError(
                _SOURCE, rows, "unknown field (a trace's rows are read from its file)"
            )


def _at_fault(names: Sequence[str], fields: Sequence[str], refused: str) -> str:
    """The override(s) that set the ``refused`` field, or inside or above it.

    The last one counts (it overrode the earlier ones); when none did (a value
    refused for what the others set with it), every override is named.
    """
    hits = [
        n
        for n, f in zip(names, fields, strict=True)
        if refused and (_within(refused, f) or _within(f, refused))
    ]
    if hits:
        return hits[-1]
    return ", ".join(names)


def _forget_replaced_traces(data: dict[str, Any], scenario: Scenario) -> None:
    """Drop the loaded rows of every trace workload whose ``file`` an override changed.

    The dump carries the rows read from the old file; without them the new
    file is read (and a missing one refused) as when the scenario was loaded.
    """
    workloads = data.get("workloads")
    if not isinstance(workloads, list):
        return
    for i, wl in enumerate(workloads):
        arrivals = wl.get("arrivals") if isinstance(wl, dict) else None
        if not isinstance(arrivals, dict) or "rows" not in arrivals:
            continue
        before = scenario.workloads[i].arrivals if i < len(scenario.workloads) else None
        if not isinstance(before, TraceArrivals) or before.file != arrivals.get("file"):
            del arrivals["rows"]
