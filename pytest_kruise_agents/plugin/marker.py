"""``@pytest.mark.kruise(...)``: one test's own cluster, over the run-wide options.

The marker takes keyword arguments only; markers on the module, the class and
the function merge, the closest winning per keyword (as pytest-httpx and kmock
merge theirs). What the marker does not set comes from the run-wide options,
then the cluster config file, then the defaults.

============  ===========================================================================
keyword       value
============  ===========================================================================
seed          an int: the fake cluster's seed
profile       a profile name (``openkruise-head``, ``openkruise-v0.3.0``)
config        a config file path, relative to the test file's directory
clock         ``"virtual"``, ``"realtime"`` or ``"realtime:<speed>"``
nodes         an int: that many identical nodes
pools         an int (the default pools, each with that many sandboxes), a mapping
              ``{name: replicas}`` (default-shaped pools), SandboxSet YAML text, or a
              list of manifests; replaces the config's pools (``{}`` means none)
faults        a list of faults (mappings with ``kind``), injected once the pools are
              ready; replaces the config's faults
latencies     ``{name: distribution}``, merged over the config's
knobs         ``{knob: value}`` profile knobs, merged over the config's
============  ===========================================================================

This module imports only the standard library (see :mod:`.options`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from pytest_kruise_agents.plugin.options import ClockMode, KruiseOptions, not_a_file, parse_clock

__all__ = ["MARKER_KEYWORDS", "ClusterSpec", "MarkerError", "cluster_spec"]

MARKER_KEYWORDS: Final = (
    "seed",
    "profile",
    "config",
    "clock",
    "nodes",
    "pools",
    "faults",
    "latencies",
    "knobs",
)


class MarkerError(ValueError):
    """A bad ``@pytest.mark.kruise`` keyword: ``<keyword>: <reason>``."""

    def __init__(self, keyword: str, reason: str) -> None:
        self.keyword = keyword
        self.reason = reason
        super().__init__(f"{keyword}: {reason}" if keyword else reason)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """Everything one test's cluster is built from; hashable, so built recipes can be cached.

    ``None`` means "not set: the config file's value, else the plugin default".
    Structured values (pools, faults, latencies, knobs) are kept as canonical
    JSON text.
    """

    backend: str = "sim"
    config: Path | None = None
    seed: int | None = None
    profile: str | None = None
    clock: ClockMode | None = None
    speed: float | None = None
    nodes: int | None = None
    pools: str | None = None
    faults: str | None = None
    latencies: str | None = None
    knobs: str | None = None

    @classmethod
    def from_options(cls, opts: KruiseOptions) -> ClusterSpec:
        """The spec of a test without a marker."""
        return cls(
            backend=opts.backend,
            config=opts.config,
            seed=opts.seed,
            profile=opts.profile,
            clock=opts.clock,
            speed=opts.speed,
        )


def _canonical(value: Any, keyword: str) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise MarkerError(
            keyword, f"must be plain data (str, int, float, lists, mappings): {exc}"
        ) from None


def _int(value: Any, keyword: str, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MarkerError(keyword, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise MarkerError(keyword, f"must be at least {minimum}, got {value!r}")
    return value


def _pools(value: Any) -> str:
    if isinstance(value, bool):
        raise MarkerError("pools", f"must be an int, a mapping, YAML text or a list, got {value!r}")
    if isinstance(value, int):
        _int(value, "pools", 0)
    elif isinstance(value, Mapping):
        for name, replicas in value.items():
            if not isinstance(name, str) or not name:
                raise MarkerError("pools", f"pool names must be non-empty strings, got {name!r}")
            _int(replicas, f"pools[{name!r}]", 0)
    elif not isinstance(value, str | list | tuple):
        raise MarkerError("pools", f"must be an int, a mapping, YAML text or a list, got {value!r}")
    return _canonical(value, "pools")


def _faults(value: Any) -> str:
    if isinstance(value, Mapping) or not isinstance(value, Sequence) or isinstance(value, str):
        raise MarkerError("faults", f"must be a list of mappings with a 'kind', got {value!r}")
    for i, fault in enumerate(value):
        if not isinstance(fault, Mapping) or not isinstance(fault.get("kind"), str):
            raise MarkerError(f"faults[{i}]", f"must be a mapping with a 'kind', got {fault!r}")
    return _canonical(list(value), "faults")


def _mapping(value: Any, keyword: str) -> str:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise MarkerError(keyword, f"must be a mapping of names to values, got {value!r}")
    return _canonical(dict(value), keyword)


def cluster_spec(
    opts: KruiseOptions, markers: Iterable[tuple[Sequence[Any], Mapping[str, Any]]], test_dir: Path
) -> ClusterSpec:
    """The spec of one test: ``opts`` with its markers' ``(args, kwargs)`` applied, farthest first.

    Raise :class:`MarkerError` for a positional argument, an unknown keyword
    or a bad value. The profile name and the config file are checked when the
    recipe is built (that needs the simulator).
    """
    merged: dict[str, Any] = {}
    for args, kwargs in markers:
        if args:
            # Not this plugin's marker, then: a project's own ``kruise`` marker, on a test
            # that also asks for a fixture of the plugin (alone, it is left alone).
            raise MarkerError(
                "",
                f"takes keyword arguments only, got positional {list(args)!r}; a project's own "
                "kruise marker cannot mark a test that uses a pytest-kruise-agents fixture",
            )
        for key in kwargs:
            if key not in MARKER_KEYWORDS:
                import difflib  # only on the way to an error message

                close = difflib.get_close_matches(key, MARKER_KEYWORDS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise MarkerError(
                    key, f"unknown keyword{hint}; known: {', '.join(MARKER_KEYWORDS)}"
                )
        merged.update(kwargs)
    spec = ClusterSpec.from_options(opts)
    for key, value in merged.items():
        if value is None:
            continue
        if key == "seed":
            # At least 0: random.Random seeds with abs(), -5 would be seed 5's cluster.
            spec = replace(spec, seed=_int(value, key, 0))
        elif key == "profile":
            if not isinstance(value, str) or not value:
                raise MarkerError(key, f"must be a profile name, got {value!r}")
            spec = replace(spec, profile=value)
        elif key == "config":
            if not isinstance(value, str | Path) or not str(value):
                raise MarkerError(key, f"must be a path, got {value!r}")
            path = Path(value).expanduser()
            path = path if path.is_absolute() else test_dir / path
            problem = not_a_file(path)
            if problem is not None:
                raise MarkerError(key, problem)
            spec = replace(spec, config=path)
        elif key == "clock":
            if not isinstance(value, str):
                raise MarkerError(key, f"must be 'virtual' or 'realtime[:SPEED]', got {value!r}")
            try:
                mode, speed = parse_clock(value)
            except ValueError as exc:
                raise MarkerError(key, str(exc)) from None
            spec = replace(spec, clock=mode, speed=speed)
        elif key == "nodes":
            spec = replace(spec, nodes=_int(value, key, 1))
        elif key == "pools":
            spec = replace(spec, pools=_pools(value))
        elif key == "faults":
            spec = replace(spec, faults=_faults(value))
        elif key == "latencies":
            spec = replace(spec, latencies=_mapping(value, key))
        elif key == "knobs":
            spec = replace(spec, knobs=_mapping(value, key))
    return spec
