"""The pytest plugin (entry point ``kruise_agents``): options, the ``kruise`` marker, fixtures.

Installed plugins load in every pytest run, so this module is thin and inert:
it imports pytest and the standard-library option and report modules, and
every fixture imports what it needs (the simulator, the E2B server, the SDK)
when a test first uses it. A suite that uses no fixture pays for two small
imports and a handful of options (``tests/plugin/test_inert.py`` pins the
modules such a run imports).

Fixtures (each documented in ``docs/plugin.md`` with an example):

- ``kruise_cluster``: a fresh fake cluster for the test (:class:`simulator.cluster.Cluster`);
- ``kruise_cluster_factory``: one more such cluster at each call (one per Hypothesis example);
- ``kruise_backend``: that cluster behind the Backend seam (thread-safe);
- ``kruise_e2b``: that cluster served over HTTP on a free loopback port, with
  ``E2B_API_URL``, ``E2B_SANDBOX_URL`` and ``E2B_API_KEY`` set for the test (and the
  loopback hosts added to ``NO_PROXY``/``no_proxy``);
  sandboxes left behind are killed at teardown and reported;
- ``sandboxset``, ``sandbox_claim``, ``e2b_sandbox``: factories;
- ``kruise_clock``, ``kruise_faults``: time and fault injection;
- ``delivery_benchmark``: warm-pool delivery measurements;
- ``kruise_options``: the options this test's cluster is built from.

The type of each fixture's value is exported here for annotations
(``def test_a(kruise_e2b: KruiseE2B)``): :class:`Cluster`, :class:`SimBackend`,
:class:`KruiseE2B`, :class:`KruiseClock`, :class:`KruiseFaults`, the factories,
:class:`DeliveryBenchmark` and :class:`ClusterSpec`. They are imported when first
named, not with the plugin, so that it stays light in suites that use none of it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_kruise_agents.plugin.options import (
    OPTIONS,
    ClockMode,
    KruiseOptions,
    Option,
    OptionError,
    RawValue,
    check_config,
    file_clock,
    resolve,
)
from pytest_kruise_agents.plugin.reporting import JUNIT_INI, ReportCollector, fresh_attempt

if TYPE_CHECKING:
    from pytest_kruise_agents.backends.sim import SimBackend
    from pytest_kruise_agents.plugin.benchmark import DeliveryBenchmark
    from pytest_kruise_agents.plugin.clock import KruiseClock
    from pytest_kruise_agents.plugin.factories import (
        ClusterFactory,
        E2BSandboxFactory,
        SandboxClaimFactory,
        SandboxSetFactory,
    )
    from pytest_kruise_agents.plugin.faults import KruiseFaults
    from pytest_kruise_agents.plugin.marker import ClusterSpec
    from pytest_kruise_agents.plugin.recipe import Recipe, RecipeBook
    from pytest_kruise_agents.plugin.server import FactoryMade, KruiseE2B, SessionServer
    from simulator.cluster import Cluster

__all__ = [
    "Cluster",
    "ClusterFactory",
    "ClusterSpec",
    "DeliveryBenchmark",
    "E2BSandboxFactory",
    "KruiseClock",
    "KruiseE2B",
    "KruiseFaults",
    "SandboxClaimFactory",
    "SandboxSetFactory",
    "SimBackend",
    "delivery_benchmark",
    "e2b_sandbox",
    "kruise_backend",
    "kruise_clock",
    "kruise_cluster",
    "kruise_cluster_factory",
    "kruise_e2b",
    "kruise_faults",
    "kruise_options",
    "pytest_addoption",
    "pytest_collection_finish",
    "pytest_configure",
    "pytest_report_header",
    "pytest_runtest_setup",
    "pytest_unconfigure",
    "sandbox_claim",
    "sandboxset",
]

_FIXTURE_TYPES = {
    "Cluster": "simulator.cluster",
    "ClusterFactory": "pytest_kruise_agents.plugin.factories",
    "ClusterSpec": "pytest_kruise_agents.plugin.marker",
    "DeliveryBenchmark": "pytest_kruise_agents.plugin.benchmark",
    "E2BSandboxFactory": "pytest_kruise_agents.plugin.factories",
    "KruiseClock": "pytest_kruise_agents.plugin.clock",
    "KruiseE2B": "pytest_kruise_agents.plugin.server",
    "KruiseFaults": "pytest_kruise_agents.plugin.faults",
    "SandboxClaimFactory": "pytest_kruise_agents.plugin.factories",
    "SandboxSetFactory": "pytest_kruise_agents.plugin.factories",
    "SimBackend": "pytest_kruise_agents.backends.sim",
}
"""The fixtures' value types exported here → the module each lives in (imported when named)."""

if not TYPE_CHECKING:
    # Hidden from type checkers, which see the imports above instead: a misspelt
    # name must stay an error there, not become whatever this returns.

    def __getattr__(name: str) -> object:
        """Import a fixture's value type when it is first named (PEP 562)."""
        module = _FIXTURE_TYPES.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        problem = _shadowed()
        if problem is not None:  # each type's module imports the simulator
            raise ImportError(f"pytest-kruise-agents: {problem}", name=__name__)
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # once imported, an attribute like any other
        return value


MARKER_HELP = (
    "kruise(*, seed=None, profile=None, config=None, clock=None, nodes=None, pools=None, "
    "faults=None, latencies=None, knobs=None): give this test its own fake cluster "
    "(pytest-kruise-agents)."
)
"""The marker's line in ``pytest --markers`` (its keywords: :mod:`.marker`)."""

OPTIONS_KEY = pytest.StashKey[KruiseOptions]()
CONFIG_KEY = pytest.StashKey[RawValue]()
"""On the config: the config file option as found, until :func:`check_config` has read it."""
PROBLEM_KEY = pytest.StashKey[str]()
"""On the config: a bad option's message, kept instead of stopping a run that shows only."""
SHADOWED_KEY = pytest.StashKey[str]()
"""On an xdist worker's config: why ``simulator`` is not ours, for each test using the plugin."""
RECIPES_KEY: pytest.StashKey[RecipeBook] = pytest.StashKey()
FAULTS_KEY: pytest.StashKey[KruiseFaults] = pytest.StashKey()
MADE_KEY: pytest.StashKey[FactoryMade] = pytest.StashKey()
"""On a test item: its ``kruise_faults`` value, which ``kruise_e2b`` resets before reaping."""
REPORTER_NAME = "kruise-agents-reports"
FIXTURES: Final = frozenset(
    {
        "kruise_options",
        "kruise_cluster",
        "kruise_cluster_factory",
        "kruise_backend",
        "kruise_e2b",
        "kruise_clock",
        "kruise_faults",
        "sandboxset",
        "sandbox_claim",
        "e2b_sandbox",
        "delivery_benchmark",
    }
)
"""The plugin's fixtures: a test asking for one (or marked ``kruise``) uses the simulator."""
RELAY_NAME = "kruise-agents-sigterm-relay"


# -- hooks ----------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    """Each option as ``--kruise-<name>`` and ini ``kruise_<name>`` (env ``PYTEST_KRUISE_<NAME>``)."""
    group = parser.getgroup(
        "kruise-agents", "pytest-kruise-agents (fake OpenKruise Agents cluster)"
    )
    for opt in OPTIONS:
        group.addoption(
            opt.cli,
            dest=opt.dest,
            default=None,
            metavar=opt.metavar,
            help=f"{opt.help}. Also ini {opt.ini}, env {opt.env}.",
        )
        parser.addini(
            opt.ini, help=f"pytest-kruise-agents: {opt.help}", type=_ini_type(opt), default=""
        )
    parser.addini(
        JUNIT_INI,
        help="pytest-kruise-agents: write the sandboxes left behind and the delivery benchmarks "
        "as JUnit XML properties of their tests, values as JSON (default: true)",
        type="bool",
        default=True,
    )


INT_OPTIONS: Final = frozenset({"seed"})
"""Options whose value is an integer: a native TOML ini value may be one (``kruise_seed = 7``)."""


def _ini_type(opt: Option) -> Any:
    """``int | str`` for an integer option where pytest takes a union type (9.2+), else a string.

    pytest 9's native TOML configuration (``[tool.pytest]``) passes values as
    typed, and refuses an int for a string option; with the union it takes
    ``7`` and ``"7"`` alike (the option's own check then says what is wrong).
    """
    if opt.name in INT_OPTIONS and pytest.version_tuple >= (9, 2):
        return int | str
    return "string"


def _overridden(config: pytest.Config) -> set[str]:
    """The ini keys given with ``-o``/``--override-ini`` (``key=value``)."""
    given = config.getoption("override_ini", None) or []
    # The key as pytest takes it, unstripped: ``-o "kruise_seed =5"`` sets an unknown
    # option ``kruise_seed `` and leaves the ini file's ``kruise_seed`` in force.
    return {item.split("=", 1)[0] for item in given if "=" in item}


def _lookup(config: pytest.Config) -> Iterator[tuple[Option, RawValue | None]]:
    """Each option's raw value from the layer that wins: flag, ``-o``, environment, ini file."""
    cwd = config.invocation_params.dir
    inipath = config.inipath
    ini_base = inipath.parent if inipath is not None else config.rootpath
    ini_source = f"ini file {inipath}" if inipath is not None else "ini file"
    overridden = _overridden(config)
    for opt in OPTIONS:
        cli = config.getoption(opt.dest)
        if cli is not None:
            yield opt, RawValue(str(cli), "command line", opt.cli, cwd)
            continue
        ini = config.getini(opt.ini)
        given = ini not in ("", None)
        if given and opt.ini in overridden:
            # ``-o`` is typed on the command line, as a flag is: it wins over the
            # environment (a CI job's setting), is named so, and is relative to the cwd.
            yield opt, RawValue(str(ini), "command line -o", opt.ini, cwd)
            continue
        env = os.environ.get(opt.env, "")
        if env:
            yield opt, RawValue(env, "environment", opt.env, cwd)
            continue
        yield opt, RawValue(str(ini), ini_source, opt.ini, ini_base) if given else None


def _junit_properties(config: pytest.Config) -> tuple[bool, str | None]:
    """``kruise_junit_properties`` (true if unreadable), and what is wrong with it, if anything:
    ``<option> (<source>): <reason>``, as every other option of the plugin says it."""
    try:
        return bool(config.getini(JUNIT_INI)), None
    except pytest.UsageError as exc:
        # Of a text, pytest's bool conversion says only "invalid truth value 'maybe'" (of a
        # TOML value that is no bool, it names the option and the file: left as it is).
        truth = "invalid truth value "
        if not str(exc).startswith(truth):
            raise
        if JUNIT_INI in _overridden(config):
            source = "command line -o"
        elif config.inipath is not None:
            source = f"ini file {config.inipath}"
        else:
            source = "ini file"
        quoted = str(exc).removeprefix(truth)
        reason = f"must be true or false (or yes/no, on/off, 1/0), got {quoted}"
        return True, str(OptionError(JUNIT_INI, source, reason))


SHOW_ONLY: Final = ("help", "markers", "showfixtures", "show_fixtures_per_test")
"""pytest's options (``--help``, ``--markers``, ``--fixtures``, ``--fixtures-per-test``) that
show something and run no test: a bad option of ours must not hide what they show."""


def _shows_only(config: pytest.Config) -> bool:
    return any(getattr(config.option, name, False) for name in SHOW_ONLY)


def _shadowed() -> str | None:
    """Why ``simulator`` is not this distribution's package (a project's own hides it), or ``None``."""
    from pytest_kruise_agents.shadowing import shadowing_simulator

    return shadowing_simulator()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; resolve and validate the options once (a bad one stops the run)."""
    config.addinivalue_line("markers", MARKER_HELP)
    found = dict(_lookup(config))
    # A run that sets an option uses the plugin: a project's own `simulator` that hides
    # ours stops it now (an xdist controller's check of a config file imports it). Only if
    # it is on sys.path by now: plain `pytest` adds a test's directory as it collects it,
    # and that is checked once the tests are collected, as a run that sets no option is.
    problem = _shadowed() if any(found.values()) else None
    if problem is None:
        try:
            config.stash[OPTIONS_KEY] = resolve(lambda opt: found[opt])
            raw_config = found[next(opt for opt in OPTIONS if opt.name == "config")]
            if raw_config is not None and not hasattr(config, "workerinput"):
                config.stash[CONFIG_KEY] = raw_config
                if getattr(config.option, "dist", "no") != "no" and not _shows_only(config):
                    # An xdist controller collects nothing, and a worker's usage error is an
                    # internal error: a distributed run reads the file now, once, here.
                    check_config(config.stash[OPTIONS_KEY], raw_config)
        except OptionError as exc:
            problem = str(exc)
    junit_properties, junit_problem = _junit_properties(config)
    problem = problem or junit_problem
    if problem is not None:
        if not _shows_only(config):
            raise pytest.UsageError(f"pytest-kruise-agents: {problem}")
        # No test runs: the help (or the list) is shown, and the header says what is wrong.
        config.stash[PROBLEM_KEY] = problem
    config.pluginmanager.register(ReportCollector(junit_properties=junit_properties), REPORTER_NAME)
    if getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput"):
        # An xdist controller: a SIGTERM sent to it alone must reach the serving workers.
        # Imported here: a run that is not distributed has no use for it.
        from pytest_kruise_agents.plugin.interrupt import SigtermRelay

        config.pluginmanager.register(SigtermRelay(), RELAY_NAME)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop the run at once if a test uses the plugin and a project's own ``simulator`` hides ours.

    Checked after collection, when the test modules (and whatever they put on
    ``sys.path`` or imported) are loaded; a run that uses no fixture of the
    plugin is left alone, whatever its ``simulator`` is.
    """
    if _shows_only(session.config) or not any(_uses_plugin(item) for item in session.items):
        return
    problem = _shadowed()
    if problem is None:
        return
    if hasattr(session.config, "workerinput"):
        # An xdist worker that stops before running its tests breaks the controller
        # (an internal error that hides the message): each test using the plugin
        # errors with it instead.
        session.config.stash[SHADOWED_KEY] = problem
        return
    raise pytest.UsageError(f"pytest-kruise-agents: {problem}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Drop the report collector (and an xdist controller's SIGTERM relay) of configure time."""
    collector = config.pluginmanager.get_plugin(REPORTER_NAME)
    if collector is not None:
        config.pluginmanager.unregister(collector)
    relay = config.pluginmanager.get_plugin(RELAY_NAME)
    if relay is not None:
        relay.close()
        config.pluginmanager.unregister(relay)


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The options, when any was set (reproducibility: the seed, profile and clock)."""
    problem = config.stash.get(PROBLEM_KEY, None)
    if problem is not None:
        return [f"kruise-agents: {problem}"]
    opts = config.stash.get(OPTIONS_KEY, None)
    if opts is None or not opts.sources:
        return []
    return [f"kruise-agents: {opts.describe(_run_clock(opts))}"]


def _run_clock(opts: KruiseOptions) -> tuple[ClockMode, float | None]:
    """The clock the run's unmarked tests get: the option's, else the config file's, else virtual."""
    if opts.config is None:
        return opts.clock or "virtual", opts.speed
    # The header comes before the file is validated (only a run that uses the plugin reads
    # it in full): a glance at its clock (recipe.run_clock's rule) keeps the simulator unloaded.
    mode, speed = file_clock(opts.config)
    return opts.clock or mode or "virtual", opts.speed if opts.speed is not None else speed


def _ours(marker: pytest.Mark) -> bool:
    """Whether a ``kruise`` marker is this plugin's to check: keywords, and no positional
    argument (a project's own ``kruise`` marker: ``@pytest.mark.kruise("v1.6")``)."""
    return bool(marker.kwargs) and not marker.args


def _uses_plugin(item: pytest.Item) -> bool:
    """Whether a test uses the simulator: it asks for a fixture of the plugin, or carries
    this plugin's ``kruise`` marker (keywords) and no project's own (positional)."""
    if not FIXTURES.isdisjoint(getattr(item, "fixturenames", ())):
        return True
    markers = list(item.iter_markers("kruise"))
    return any(_ours(m) for m in markers) and not any(m.args for m in markers)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Read the config file once the run has selected a test that uses it: a bad one stops
    the run before any test, as a bad option does; a run that uses none never loads it."""
    raw = config.stash.get(CONFIG_KEY, None)
    opts = config.stash.get(OPTIONS_KEY, None)
    if raw is None or opts is None or _shows_only(config):
        return
    if not any(_uses_plugin(item) for item in items):
        return
    try:
        check_config(opts, raw)
    except OptionError as exc:
        raise pytest.UsageError(f"pytest-kruise-agents: {exc}") from None
    del config.stash[CONFIG_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Start the attempt afresh; check the ``kruise`` marker of a test that asks for no fixture.

    pytest-rerunfailures runs the same item again: what the plugin kept on it
    (the facts reported, the factories' record, the faults handle) belongs to
    the attempt that made it, and goes before the next one sets up.

    A test that asks for a fixture has its marker checked by ``kruise_options``;
    one that does not would otherwise pass with a typo (``sed=3``) unnoticed.
    A marker with a positional argument is not this plugin's (its keywords
    only): a project's own ``kruise`` marker, left alone on a test that uses
    no fixture of the plugin. A bare ``@pytest.mark.kruise`` has nothing to check.
    On an xdist worker that found ``simulator`` hidden, a test using the plugin
    errors with why.
    """
    fresh_attempt(item)
    _forget_fixture_state(item)
    shadowed = item.config.stash.get(SHADOWED_KEY, None)
    if shadowed is not None and _uses_plugin(item):
        pytest.fail(f"pytest-kruise-agents: {shadowed}", pytrace=False)
    markers = list(item.iter_markers("kruise"))
    if not any(_ours(m) for m in markers) or any(m.args for m in markers):
        return
    if "kruise_options" in getattr(item, "fixturenames", ()):
        return
    # The recipe too: the profile name, knobs, latencies, pools and faults are
    # checked there (it is cached, and built only for a test with a marker).
    _recipe(item.config, _marker_spec(item.config, item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    """Once the test's fixtures are torn down, forget what they kept on its item.

    Items live as long as the session: a ``kruise_faults`` handle left in the
    stash kept the test's backend, hence its whole cluster, until the run ended.
    (The facts reported stay: the teardown report, made after this, carries them.)
    """
    try:
        return (yield)
    finally:
        _forget_fixture_state(item)


def _forget_fixture_state(item: pytest.Item) -> None:
    """Drop what this test's fixtures keep on its item (the faults handle, the factories' record)."""
    if MADE_KEY in item.stash:
        del item.stash[MADE_KEY]
    if FAULTS_KEY in item.stash:
        del item.stash[FAULTS_KEY]


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def kruise_options(request: pytest.FixtureRequest) -> ClusterSpec:
    """The options this test's cluster is built from: the run's, with ``@pytest.mark.kruise`` applied."""
    return _marker_spec(request.config, request.node)


def _marker_spec(config: pytest.Config, node: pytest.Item) -> ClusterSpec:
    """The run's options with ``node``'s ``kruise`` markers applied; a bad marker fails ``node``."""
    from pytest_kruise_agents.plugin.marker import MarkerError, cluster_spec

    opts = config.stash[OPTIONS_KEY]
    markers = [(m.args, m.kwargs) for m in reversed(list(node.iter_markers("kruise")))]
    try:
        return cluster_spec(opts, markers, node.path.parent)
    except MarkerError as exc:
        problem = str(exc)  # failed outside the except block: no chained traceback
    # The form every setup error of the plugin takes (the recipe's say where a value came
    # from the same way); pytest's report names the test.
    pytest.fail(f"pytest-kruise-agents: @pytest.mark.kruise {problem}", pytrace=False)


def _book(config: pytest.Config) -> RecipeBook:
    """The run's recipe book (made at first use)."""
    from pytest_kruise_agents.plugin.recipe import RecipeBook

    book = config.stash.get(RECIPES_KEY, None)
    if book is None:
        book = config.stash[RECIPES_KEY] = RecipeBook()
    return book


def _recipe(config: pytest.Config, spec: ClusterSpec) -> Recipe:
    from pytest_kruise_agents.plugin.recipe import RecipeError

    try:
        return _book(config).recipe(spec)
    except RecipeError as exc:
        problem = str(exc)
    pytest.fail(f"pytest-kruise-agents: {problem}", pytrace=False)


@pytest.fixture
def kruise_cluster(request: pytest.FixtureRequest, kruise_options: ClusterSpec) -> Cluster:
    """A fresh fake cluster, pools ready: the default one, the config file's, or the marker's."""
    from pytest_kruise_agents.plugin.recipe import RecipeError

    recipe = _recipe(request.config, kruise_options)
    try:
        return recipe.build()
    except RecipeError as exc:
        problem = str(exc)
    pytest.fail(f"pytest-kruise-agents: {problem}", pytrace=False)


@pytest.fixture
def kruise_cluster_factory(
    request: pytest.FixtureRequest, kruise_options: ClusterSpec
) -> ClusterFactory:
    """``kruise_cluster_factory()``: one more fresh cluster, as ``kruise_cluster``'s, at each call.

    For Hypothesis: ``@given`` runs many examples in one test, and the test's
    fixtures (``kruise_cluster`` and the rest) are shared by all of them; a
    cluster made in the example is its own.
    """
    from pytest_kruise_agents.plugin.factories import ClusterFactory

    return ClusterFactory(_recipe(request.config, kruise_options))


@pytest.fixture
def kruise_backend(
    request: pytest.FixtureRequest, kruise_options: ClusterSpec, kruise_cluster: Cluster
) -> Iterator[SimBackend]:
    """The test's cluster behind the Backend seam, in the configured clock mode."""
    from pytest_kruise_agents.backends.sim import SimBackend

    recipe = _recipe(request.config, kruise_options)
    backend = SimBackend(kruise_cluster, clock=recipe.clock, speed=recipe.speed)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def _kruise_e2b_server() -> Iterator[SessionServer]:
    """One uvicorn per session (per xdist worker), on a free loopback port; SIGTERM cleans up
    as Ctrl-C does while it runs (under xdist, one sent to the controller alone too)."""
    from pytest_kruise_agents.plugin.interrupt import sigterm_as_interrupt
    from pytest_kruise_agents.plugin.server import SessionServer

    with sigterm_as_interrupt():
        server = SessionServer()
        try:
            yield server
        finally:
            server.close()


@pytest.fixture
def kruise_e2b(
    request: pytest.FixtureRequest,
    kruise_options: ClusterSpec,
    kruise_backend: SimBackend,
    _kruise_e2b_server: SessionServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[KruiseE2B]:
    """The test's cluster as an E2B server, with the SDK's environment set; leftovers killed and reported."""
    from pytest_kruise_agents.plugin.reporting import LEAKS, record
    from pytest_kruise_agents.plugin.server import KruiseE2B

    recipe = _recipe(request.config, kruise_options)
    _kruise_e2b_server.mount(kruise_backend, recipe.settings)
    handle = KruiseE2B(
        url=_kruise_e2b_server.url,
        api_key=recipe.api_key,
        admin_key=recipe.admin_key,
        backend=kruise_backend,
    )
    # With NO_PROXY/no_proxy: a proxy in the environment (HTTP_PROXY) would get
    # every call, and cannot reach the server on this host's loopback.
    for name, value in handle.env.items():
        monkeypatch.setenv(name, value)
    # Either would send the SDK elsewhere than the URLs above.
    monkeypatch.delenv("E2B_DOMAIN", raising=False)
    monkeypatch.delenv("E2B_DEBUG", raising=False)
    try:
        yield handle
    finally:
        try:
            _lift_faults(request, kruise_backend)
            made = request.node.stash.get(MADE_KEY, None)
            own = made.ids(kruise_backend) if made is not None else set()
            # Killed all the same (their processes must stop before the app goes), but
            # reported only if their kill failed: the factories made them, not the test.
            leaked = [leak for leak in handle.reap() if leak[0] not in own or leak[2] is not None]
        finally:
            _kruise_e2b_server.unmount()
        if leaked:
            entries = [
                [sid, state] if error is None else [sid, state, error]
                for sid, state, error in leaked
            ]
            record(request.node, LEAKS, entries)


def _lift_faults(request: pytest.FixtureRequest, backend: SimBackend) -> None:
    """Clear every fault in force and restore ``kruise_faults``' latencies, before teardown kills."""
    # The test is over: faults still in force (an API error, a stalled
    # controller) would fail the teardown's kills, and its sandboxes would go
    # unreported. kruise_faults' reset also restores its latencies; it may be
    # torn down after this fixture, and resetting twice is harmless.
    faults = request.node.stash.get(FAULTS_KEY, None)
    if faults is not None:
        faults.reset()
    else:
        backend.clear_faults()


@pytest.fixture
def kruise_clock(kruise_backend: SimBackend) -> KruiseClock:
    """``now()``, ``advance(seconds)``, ``run_until(predicate)`` on the test's cluster."""
    from pytest_kruise_agents.plugin.clock import KruiseClock

    return KruiseClock(kruise_backend)


@pytest.fixture
def kruise_faults(
    request: pytest.FixtureRequest, kruise_backend: SimBackend
) -> Iterator[KruiseFaults]:
    """Inject faults and latencies by name; all cleared (latencies restored) at teardown."""
    from pytest_kruise_agents.plugin.faults import KruiseFaults

    faults = KruiseFaults(kruise_backend)
    request.node.stash[FAULTS_KEY] = faults
    yield faults
    faults.reset()


@pytest.fixture
def sandboxset(kruise_backend: SimBackend, kruise_clock: KruiseClock) -> SandboxSetFactory:
    """``sandboxset(name, replicas=3, ...)``: apply a pool and wait until it is ready."""
    from pytest_kruise_agents.plugin.factories import SandboxSetFactory

    return SandboxSetFactory(kruise_clock, kruise_backend)


@pytest.fixture
def sandbox_claim(
    request: pytest.FixtureRequest, kruise_backend: SimBackend, kruise_clock: KruiseClock
) -> SandboxClaimFactory:
    """``sandbox_claim(template, replicas=1, wait=True, ...)``: apply a SandboxClaim."""
    from pytest_kruise_agents.plugin.factories import SandboxClaimFactory

    return SandboxClaimFactory(kruise_clock, kruise_backend, _made(request))


def _made(request: pytest.FixtureRequest) -> FactoryMade:
    """The test's record of what the plugin's factories made (see ``kruise_e2b``'s teardown)."""
    from pytest_kruise_agents.plugin.server import FactoryMade

    made: FactoryMade = request.node.stash.setdefault(MADE_KEY, FactoryMade())
    return made


@pytest.fixture
def e2b_sandbox(
    request: pytest.FixtureRequest, kruise_e2b: KruiseE2B
) -> Iterator[E2BSandboxFactory]:
    """``e2b_sandbox(template)`` / ``await e2b_sandbox.acreate(template)``: SDK sandboxes, killed at teardown."""
    from pytest_kruise_agents.plugin.factories import E2BSandboxFactory

    factory = E2BSandboxFactory(kruise_e2b)
    yield factory
    _lift_faults(request, kruise_e2b.backend)
    # A sandbox it fails to kill is left to kruise_e2b's teardown, which reports it.
    factory.close()


@pytest.fixture
def delivery_benchmark(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> DeliveryBenchmark:
    """``delivery_benchmark(Burst(20))``: measure warm-pool delivery; CSV, JSON, terminal summary."""
    from pytest_kruise_agents.plugin.benchmark import DeliveryBenchmark

    configured = request.config.stash[OPTIONS_KEY].report_dir

    def report_dir() -> Path:
        if configured:
            return configured
        base = tmp_path_factory.getbasetemp()
        # An xdist worker's base is <basetemp>/popen-gwN: the run's one report
        # directory is beside the workers', as it is without xdist.
        if hasattr(request.config, "workerinput"):
            base = base.parent
        return base / "kruise-agents"

    return DeliveryBenchmark(request, report_dir, _made(request))
