"""The plugin's run-wide options: one table, layered and validated once, at start.

Every option is read, lowest precedence first, from its default, the ini file
(``kruise_seed = 7`` in ``[tool.pytest]``, ``pytest.ini`` or ``tox.ini``), the
environment (``PYTEST_KRUISE_SEED=7``) and the command line (the ini key given
with ``-o kruise_seed=7``, then ``--kruise-seed=7``); ``@pytest.mark.kruise(...)``
then overrides some of them for one test
(:mod:`pytest_kruise_agents.plugin.marker`). A bad value
fails the run at start with one message naming the option as spelled in its
source, the source, and the reason.

Options left unset keep the cluster config file's value (``seed``,
``profile`` and ``clock`` are fields of that file too), then the default.

This module imports only the standard library: the plugin loads it in every
pytest run, including runs that never use a fixture, and a value set in a
project's ini file is checked in every run of that project. So the profile
names and the fake cluster's speed limit are constants here (a test holds them
equal to the simulator's), and the config file is only looked for here: its
content is read and validated (YAML, pydantic, the simulator) by
:func:`check_config`, which the plugin calls once the run has collected a
test that uses it, before any test runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "BACKENDS",
    "CLOCK_MODES",
    "MAX_SPEED",
    "OPTIONS",
    "PROFILE_NAMES",
    "ClockMode",
    "KruiseOptions",
    "Option",
    "OptionError",
    "RawValue",
    "check_config",
    "file_clock",
    "not_a_file",
    "parse_clock",
    "resolve",
]

BACKENDS: Final = ("sim", "kube")
"""Backend names the ``backend`` option knows (``kube`` is announced, not available yet)."""

CLOCK_MODES: Final = ("virtual", "realtime")

ClockMode = Literal["virtual", "realtime"]

PROFILE_NAMES: Final = ("openkruise-head", "openkruise-v0.3.0")
"""The names of :data:`simulator.profile.PROFILES`, in its order (a test holds them equal)."""

MAX_SPEED: Final = 1e6
"""The fake cluster's fastest realtime clock: :data:`pytest_kruise_agents.backends.sim.MAX_SPEED`
(a test holds them equal)."""


class OptionError(ValueError):
    """A bad option value: ``<option> (<source>): <reason>``."""

    def __init__(self, option: str, source: str, reason: str) -> None:
        self.option = option
        self.source = source
        self.reason = reason
        super().__init__(f"{option} ({source}): {reason}")


@dataclass(frozen=True, slots=True)
class Option:
    """One option of the table: its name and help; the spellings derive from the name."""

    name: str
    help: str
    metavar: str

    @property
    def cli(self) -> str:
        """The command-line flag, e.g. ``--kruise-report-dir``."""
        return "--kruise-" + self.name.replace("_", "-")

    @property
    def dest(self) -> str:
        """The argparse destination, e.g. ``kruise_report_dir``."""
        return "kruise_" + self.name

    @property
    def ini(self) -> str:
        """The ini key, e.g. ``kruise_report_dir``."""
        return "kruise_" + self.name

    @property
    def env(self) -> str:
        """The environment variable, e.g. ``PYTEST_KRUISE_REPORT_DIR``."""
        return "PYTEST_KRUISE_" + self.name.upper()


OPTIONS: Final = (
    Option(
        "backend",
        "cluster behind the fixtures: sim (the embedded fake cluster; default). "
        "kube (a real cluster) is not available yet",
        "NAME",
    ),
    Option("seed", "seed of the fake cluster, >= 0 (default: the config file's, else 0)", "INT"),
    Option(
        "profile",
        "model profile: openkruise-head or openkruise-v0.3.0 "
        "(default: the config file's, else openkruise-head)",
        "NAME",
    ),
    Option(
        "config",
        "cluster config file, the YAML of `kruise-agents serve --config` "
        "(nodes, SandboxSets, API keys, faults, latencies, knobs)",
        "PATH",
    ),
    Option(
        "clock",
        "virtual (time moves only when asked; default) or realtime[:SPEED] "
        "(virtual time follows the wall clock times SPEED, at most 1e6)",
        "MODE",
    ),
    Option(
        "report_dir",
        "directory for the delivery benchmark's CSV and JSON files "
        "(default: kruise-agents/ under pytest's temporary directory)",
        "DIR",
    ),
)
"""The option table (README's configuration table lists the same rows)."""


@dataclass(frozen=True, slots=True)
class RawValue:
    """A value as found, with where it was found and what relative paths are relative to."""

    text: str
    source: str
    spelling: str
    base: Path


@dataclass(frozen=True, slots=True)
class KruiseOptions:
    """The resolved run-wide options; ``None`` means "not set: the config file's, else the default"."""

    backend: str = "sim"
    seed: int | None = None
    profile: str | None = None
    config: Path | None = None
    clock: ClockMode | None = None
    speed: float | None = None
    report_dir: Path | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    """Option name → where its value came from (only options that were set)."""

    def describe(self, clock: tuple[ClockMode, float | None] | None = None) -> str:
        """One line for the report header: every set option and its value, and the clock.

        :param clock: the clock mode and speed the tests get, worked out with the
            config file (default: this option's, else virtual); said even when
            the option is unset, a realtime one with its speed if known.
        """
        mode, speed = clock if clock is not None else (self.clock or "virtual", self.speed)
        parts = [f"backend={self.backend}"]
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        if self.profile is not None:
            parts.append(f"profile={self.profile}")
        parts.append(f"clock={mode}" + (f":{speed:g}" if speed and mode == "realtime" else ""))
        if self.config is not None:
            parts.append(f"config={self.config}")
        if self.report_dir is not None:
            parts.append(f"report-dir={self.report_dir}")
        return " ".join(parts)


def parse_clock(text: str) -> tuple[ClockMode, float | None]:
    """``virtual``, ``realtime`` or ``realtime:<speed>`` → (mode, speed); ``ValueError`` otherwise."""
    name, sep, speed_text = text.strip().partition(":")
    if name not in CLOCK_MODES:
        raise ValueError(f"must be virtual or realtime[:SPEED], got {text!r}")
    mode: ClockMode = "virtual" if name == "virtual" else "realtime"
    if not sep:
        return mode, None
    if mode != "realtime":
        raise ValueError(f"only realtime takes a speed, got {text!r}")
    try:
        speed = float(speed_text)
    except ValueError:
        raise ValueError(f"speed must be a number, got {speed_text!r}") from None
    if not (speed > 0 and speed != float("inf")):
        raise ValueError(f"speed must be a positive finite number, got {speed_text!r}")
    # The backend's own bound, checked here so that a bad speed stops the run (or errors
    # the marked test) at once, not every test at setup.
    if speed > MAX_SPEED:
        raise ValueError(
            f"speed must be at most {MAX_SPEED:g} (the fake cluster's limit), got {speed_text!r}"
        )
    return "realtime", speed


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    import difflib  # only on the way to an error message

    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _backend(raw: RawValue) -> str:
    name = raw.text.strip()
    if name == "kube":
        raise OptionError(
            raw.spelling,
            raw.source,
            "the kube backend (a real Kubernetes cluster) is not available yet; use 'sim'",
        )
    if name not in BACKENDS:
        raise OptionError(
            raw.spelling,
            raw.source,
            f"unknown backend {name!r}{_suggest(name, BACKENDS)}; known: sim, kube",
        )
    return name


def _seed(raw: RawValue) -> int:
    try:
        seed = int(raw.text.strip())
    except ValueError:
        raise OptionError(
            raw.spelling, raw.source, f"must be an integer, got {raw.text!r}"
        ) from None
    if seed < 0:
        # random.Random seeds with abs(): -5 would quietly run seed 5's cluster.
        raise OptionError(raw.spelling, raw.source, f"must be at least 0, got {raw.text!r}")
    return seed


def _profile(raw: RawValue) -> str:
    name = raw.text.strip()
    if name not in PROFILE_NAMES:
        names = list(PROFILE_NAMES)
        raise OptionError(
            raw.spelling,
            raw.source,
            f"unknown profile {name!r}{_suggest(name, names)}; available: {', '.join(names)}",
        )
    return name


def _path(raw: RawValue) -> Path:
    text = raw.text.strip()
    if not text:
        raise OptionError(raw.spelling, raw.source, "must not be empty")
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else raw.base / path


def not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be a config file (``config file '...' is a directory``), else ``None``.

    The reason is the true one: ``does not exist``, ``is a directory``, ``is a
    broken symbolic link to '...'`` or ``is not a regular file`` (a device such
    as ``/dev/null``, a pipe such as a shell's ``<(...)``).
    """
    if path.is_file():
        return None
    if path.is_dir():
        why = "is a directory"
    elif path.is_symlink():  # a link, but to nothing that is there (or to itself)
        why = f"is a broken symbolic link to {os.readlink(path)!r}"
    elif path.exists():
        # Read more than once (checked at start, read again where clusters are
        # built, in each xdist worker): a pipe would be empty by then.
        why = "is not a regular file"
    else:
        why = "does not exist"
    return f"config file {str(path)!r} {why}"


def _config(raw: RawValue) -> Path:
    path = _path(raw)
    problem = not_a_file(path)
    if problem is not None:
        raise OptionError(raw.spelling, raw.source, problem)
    return path


def check_config(opts: KruiseOptions, raw: RawValue) -> None:
    """Read and validate the config file ``opts.config`` that ``raw`` named; raise
    :class:`OptionError` (naming the option as ``raw`` spells it) if it is no config file.

    Apart from :func:`resolve`, which only looks for the file: this imports the server's
    config module (YAML, pydantic, the simulator), for runs that use a fixture.
    """
    if opts.config is None:
        return
    from pytest_kruise_agents.e2b.config import ConfigError, load_config

    try:
        load_config(opts.config)
    except ConfigError as exc:
        raise OptionError(raw.spelling, raw.source, str(exc)) from None


def _report_dir(raw: RawValue) -> Path:
    path = _path(raw)
    if path.exists() and not path.is_dir():
        raise OptionError(raw.spelling, raw.source, f"{str(path)!r} exists and is not a directory")
    # The directory is made at the first benchmark, after its whole run: a file on the way
    # there, or a place where nothing can be written (/proc, a read-only mount), must fail now.
    nearest = next(p for p in (path, *path.parents) if p.exists())  # the root, at worst
    if not nearest.is_dir():
        raise OptionError(
            raw.spelling,
            raw.source,
            f"{str(path)!r} cannot be a directory: {str(nearest)!r} is a file",
        )
    try:
        # A probe in the nearest directory there is (the report directory, or where it is to
        # be made), not the directory made and removed: xdist's processes check at once, and
        # one would remove the directory another's probe is writing in.
        with tempfile.TemporaryFile(dir=nearest, prefix=".kruise-agents-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise OptionError(
            raw.spelling, raw.source, f"cannot write in {str(path)!r}: {reason}"
        ) from None
    return path


def file_clock(path: Path) -> tuple[ClockMode | None, float]:
    """The clock mode and speed the config file at ``path`` asks for, at a glance (for the
    report header, which comes before the file is validated): its ``clock.mode`` if it sets
    a valid one, else ``None``; its ``clock.speed`` if valid, else 1 (the default).

    Only the YAML is read (PyYAML, which the plugin's other dependencies load anyway): a
    file that cannot be read says nothing here; :func:`check_config` says what is wrong.
    """
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, yaml.YAMLError, RecursionError):
        return None, 1.0
    clock = data.get("clock") if isinstance(data, dict) else None
    if not isinstance(clock, dict):
        return None, 1.0
    mode = clock.get("mode")
    speed = clock.get("speed", 1.0)
    good_speed = (
        isinstance(speed, int | float) and not isinstance(speed, bool) and 0 < speed <= MAX_SPEED
    )
    return (
        "realtime" if mode == "realtime" else "virtual" if mode == "virtual" else None,
        float(speed) if good_speed else 1.0,
    )


def resolve(lookup: Callable[[Option], RawValue | None]) -> KruiseOptions:
    """Validate what ``lookup`` finds for each option (the highest-precedence source, or None).

    Raise :class:`OptionError` for the first bad value. The config file is only looked
    for: :func:`check_config` reads it.
    """
    found = {opt.name: raw for opt in OPTIONS if (raw := lookup(opt)) is not None}
    opts = KruiseOptions(sources={name: raw.source for name, raw in found.items()})
    if "backend" in found:
        opts = replace(opts, backend=_backend(found["backend"]))
    if "seed" in found:
        opts = replace(opts, seed=_seed(found["seed"]))
    if "profile" in found:
        opts = replace(opts, profile=_profile(found["profile"]))
    if "clock" in found:
        raw = found["clock"]
        try:
            mode, speed = parse_clock(raw.text)
        except ValueError as exc:
            raise OptionError(raw.spelling, raw.source, str(exc)) from None
        opts = replace(opts, clock=mode, speed=speed)
    if "report_dir" in found:
        opts = replace(opts, report_dir=_report_dir(found["report_dir"]))
    if "config" in found:
        opts = replace(opts, config=_config(found["config"]))
    return opts
