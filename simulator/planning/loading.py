"""Loading a scenario: YAML text or a file to a validated :class:`Scenario`, or one clear error.

Every problem becomes one :class:`~simulator.planning.errors.ScenarioError`
naming the file (and line), the field path and the reason; trace CSV files
are read here, relative to the scenario file, and a bad row names the CSV
file, its line and its column.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from pytest_kruise_agents.api.goyaml import YamlLoader
from simulator.planning import arrivals as arrival_models
from simulator.planning import scenario as scenario_models
from simulator.planning.arrivals import TraceFormatError, load_trace
from simulator.planning.errors import ScenarioError
from simulator.planning.messages import first_problem, line_of
from simulator.planning.scenario import Scenario

__all__ = ["load_scenario", "parse_scenario", "revalidate_scenario", "shipped_scenarios"]

_HERE = Path(__file__).resolve().parent

_SHIPPED_DIRS = (_HERE / "scenarios", _HERE.parents[1] / "scenarios")
"""Where the shipped scenarios are: inside the installed package (the wheel puts them
there), else the ``scenarios/`` of the source tree the package runs from."""


def _shipped_dir() -> Path | None:
    for candidate in _SHIPPED_DIRS:
        if (candidate / "steady.yaml").is_file():
            return candidate
    return None


def shipped_scenarios() -> dict[str, Path]:
    """The scenarios shipped with the package, by name (``steady``: ``.../steady.yaml``)."""
    where = _shipped_dir()
    if where is None:
        return {}
    return {p.stem: p for p in sorted(where.glob("*.yaml"))}


def _resolve(path: str | Path) -> Path:
    """``path``, or the shipped scenario it names when no such file exists.

    ``steady``, ``steady.yaml`` and ``scenarios/steady.yaml`` all name the
    shipped ``steady`` scenario, so the documented commands work from an
    installed package as from a source checkout.
    """
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    parts = p.parts
    if len(parts) == 2 and parts[0] == "scenarios":
        parts = parts[1:]
    if len(parts) != 1:
        return p
    name = parts[0].removesuffix(".yaml")
    return shipped_scenarios().get(name, p)


def _field_names() -> list[str]:
    """Every field name of the scenario models (for "did you mean" suggestions)."""
    names: set[str] = set()
    for module in (scenario_models, arrival_models):
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseModel)
                and obj.__module__ == module.__name__
            ):
                names.update(obj.model_fields)
    return sorted(names)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; raise :class:`ScenarioError` on any problem.

    A relative path that names no file but a shipped scenario (``steady``,
    ``scenarios/steady.yaml``) reads the shipped one (:func:`shipped_scenarios`).
    """
    if str(path) == "":
        # Path("") is the current directory: "cannot read the file: Is a directory".
        listed = ", ".join(shipped_scenarios())
        shipped = f", or a shipped scenario by name: {listed}" if listed else ""
        raise ScenarioError("scenario", "", f"must not be empty (a scenario file{shipped})")
    p = _resolve(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        reason = f"cannot read the file: {exc.strerror or exc}"
        names = shipped_scenarios()
        if names and not Path(path).exists():
            reason += f" (shipped scenarios, by name: {', '.join(names)})"
        raise ScenarioError(str(path), "", reason) from None
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), "", f"cannot read the file: {_not_utf8(exc)}") from None
    return parse_scenario(text, source=str(path), base_dir=p.parent, default_name=p.stem)


def parse_scenario(
    source_text: str | Mapping[str, Any],
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    default_name: str | None = None,
) -> Scenario:
    """Validate a scenario from YAML text or a mapping; raise :class:`ScenarioError`.

    Trace files are read relative to ``base_dir`` (default: the working directory).
    """
    return _guarded(source_text, source, base_dir, default_name, loaded=False)


def revalidate_scenario(data: Mapping[str, Any], *, source: str, base_dir: Path | None) -> Scenario:
    """Validate again a scenario dumped after loading (an override changed it).

    A trace's ``rows`` read at loading are kept (an override of its ``file``
    drops them, so the new file is read); in a scenario as written they are
    refused, see :func:`parse_scenario`.
    """
    return _guarded(data, source, base_dir, None, loaded=True)


def _guarded(
    source_text: str | Mapping[str, Any],
    source: str,
    base_dir: Path | None,
    default_name: str | None,
    *,
    loaded: bool,
) -> Scenario:
    try:
        return _parse(source_text, source, base_dir, default_name, loaded=loaded)
    except RecursionError:
        # The YAML reader, the validation and the line lookup all recurse
        # into nested values: hundreds of levels exhaust Python's stack.
        raise ScenarioError(
            source, "", "cannot read the file: nested too deeply (a scenario needs a few levels)"
        ) from None


def _parse(
    source_text: str | Mapping[str, Any],
    source: str,
    base_dir: Path | None,
    default_name: str | None,
    *,
    loaded: bool,
) -> Scenario:
    root: yaml.Node | None = None
    if isinstance(source_text, str):
        try:
            # Read as kubectl reads YAML (a pool's ``manifest:`` is one): go-yaml's
            # scalars (``12:30`` and dates are text), merge keys, no key twice.
            root = yaml.compose(source_text, Loader=YamlLoader)
            data = yaml.load(source_text, Loader=YamlLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "malformed YAML"
            raise ScenarioError(
                source,
                "",
                f"invalid YAML: {problem}",
                line=mark.line + 1 if mark else None,
            ) from None
        except yaml.YAMLError as exc:
            raise ScenarioError(source, "", f"invalid YAML: {exc}") from None
    else:
        data = dict(source_text)
    if not isinstance(data, dict):
        raise ScenarioError(source, "", "must be a mapping of scenario fields")
    data = dict(data)
    if default_name and "name" not in data:
        data["name"] = default_name
    _read_traces(data, source, base_dir or Path.cwd(), root, loaded=loaded)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        path, reason = first_problem(exc.errors(), _field_names(), Scenario)
        raise ScenarioError(source, path, reason, line=line_of(root, path)) from None
    # Overrides (and the sweep checked below) read a changed trace file from here too.
    scenario._base_dir = base_dir
    _check_sweep(scenario, source, root)
    return scenario


def _check_sweep(scenario: Scenario, source: str, root: yaml.Node | None) -> None:
    """Every value of the scenario's own sweep must make a valid scenario."""
    if not scenario.sweep:
        return
    from simulator.planning.overrides import (
        apply_overrides,
        canonical_path,
        repeated_value,
        show_value,
    )

    swept: dict[str, str] = {}
    for path, values in scenario.sweep.items():
        where = f"sweep[{path!r}]"
        if not values:
            raise ScenarioError(
                source, where, "must list at least one value", line=line_of(root, where)
            )
        for value in values:
            try:
                apply_overrides(scenario.model_copy(update={"sweep": {}}), [(path, value)])
            except ScenarioError as exc:
                raise ScenarioError(
                    source,
                    where,
                    f"value {value!r}: {exc.path}: {exc.reason}" if exc.path else str(exc.reason),
                    line=line_of(root, "sweep"),
                ) from None
        # Each value is valid; one given twice would be two points labelled alike.
        twice = repeated_value(values)
        if twice is not None:
            raise ScenarioError(
                source,
                where,
                f"value {show_value(twice)} given twice (a sweep runs each value once)",
                line=line_of(root, where),
            )
        # pools.base.replicas and pools[0].replicas are one field: the values of the
        # second would replace the first's in every point, as for two --set options.
        field = canonical_path(scenario, path)
        if field in swept:
            raise ScenarioError(
                source,
                where,
                f"{field} is already swept by sweep[{swept[field]!r}] (a sweep varies a "
                "field once)",
                line=line_of(root, where),
            )
        swept[field] = path


def _not_utf8(exc: UnicodeDecodeError) -> str:
    """Why a file is not text the planner reads (the codec's own words name no file)."""
    return f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"


def _read_traces(
    data: dict[str, Any], source: str, base_dir: Path, root: yaml.Node | None, *, loaded: bool
) -> None:
    """Load the rows of every ``trace`` workload (errors name the CSV file and line).

    ``loaded``: ``data`` is a scenario dumped after loading, whose rows stand.
    """
    workloads = data.get("workloads")
    if not isinstance(workloads, list):
        return
    workloads = data["workloads"] = list(workloads)
    for i, wl in enumerate(workloads):
        arrivals = wl.get("arrivals") if isinstance(wl, dict) else None
        if not isinstance(arrivals, dict) or arrivals.get("kind") != "trace":
            continue
        if "rows" in arrivals:
            if loaded:
                # Read from the file at loading (an override of the file drops
                # the rows, see ``apply_overrides``).
                continue
            # Rows written in the scenario would stand for a file never read
            # and skip every check of a trace row.
            where = f"workloads[{i}].arrivals.rows"
            raise ScenarioError(
                source,
                where,
                "unknown field (a trace's rows are read from its file)",
                line=line_of(root, where),
            )
        file = arrivals.get("file")
        where = f"workloads[{i}].arrivals.file"
        if not isinstance(file, str) or not file:
            raise ScenarioError(source, where, "required value: the trace CSV file")
        trace = Path(file) if Path(file).is_absolute() else base_dir / file
        try:
            # Checked here, where the row's line is known (the rows are sorted).
            rows = load_trace(trace, template_required=wl.get("template") is None)
        except OSError as exc:
            raise ScenarioError(
                source,
                where,
                f"cannot read trace {str(trace)!r}: {exc.strerror or exc}",
                line=line_of(root, where),
            ) from None
        except UnicodeDecodeError as exc:
            raise ScenarioError(
                source,
                where,
                f"cannot read trace {str(trace)!r}: {_not_utf8(exc)}",
                line=line_of(root, where),
            ) from None
        except TraceFormatError as exc:
            raise ScenarioError(str(trace), exc.column, exc.reason, line=exc.line) from None
        if not rows:
            raise ScenarioError(str(trace), "", "the trace has no rows")
        arrivals = dict(arrivals)
        arrivals["rows"] = [r.model_dump() for r in rows]
        wl = dict(wl)
        wl["arrivals"] = arrivals
        workloads[i] = wl
