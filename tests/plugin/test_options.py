"""Run-wide options: default < ini < environment < command line (``-o`` too) < marker, validated at start."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_kruise_agents.plugin.options import file_clock, not_a_file

from .conftest import INNER_INI

pytest_plugins = ["pytester"]

LAYERED_TEST = """
import pytest

{marker}
def test_cluster(kruise_cluster, kruise_backend):
    got = (kruise_cluster.ctx.seed, kruise_cluster.profile.name, kruise_backend.clock_mode)
    assert got == {expected!r}
"""

LAYERS = [
    pytest.param({}, (0, "openkruise-head", "virtual"), id="default"),
    pytest.param({"ini": True}, (1, "openkruise-v0.3.0", "realtime"), id="ini"),
    pytest.param({"ini": True, "env": True}, (2, "openkruise-head", "virtual"), id="env"),
    pytest.param(
        {"ini": True, "env": True, "override": True},
        (5, "openkruise-v0.3.0", "realtime"),
        id="override-ini",
    ),
    pytest.param(
        {"ini": True, "env": True, "cli": True}, (3, "openkruise-v0.3.0", "realtime"), id="cli"
    ),
    pytest.param(
        {"ini": True, "env": True, "override": True, "cli": True},
        (3, "openkruise-head", "virtual"),
        id="cli-over-override-ini",
    ),
    pytest.param(
        {"ini": True, "env": True, "cli": True, "marker": True},
        (4, "openkruise-head", "virtual"),
        id="marker",
    ),
]


@pytest.mark.parametrize(("layers", "expected"), LAYERS)
def test_each_layer_overrides_the_ones_below(
    suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    layers: dict[str, bool],
    expected: tuple[int, str, str],
) -> None:
    if layers.get("ini"):
        suite.makeini(
            INNER_INI
            + "kruise_seed = 1\nkruise_profile = openkruise-v0.3.0\nkruise_clock = realtime:50\n"
        )
    if layers.get("env"):
        monkeypatch.setenv("PYTEST_KRUISE_SEED", "2")
        monkeypatch.setenv("PYTEST_KRUISE_PROFILE", "openkruise-head")
        monkeypatch.setenv("PYTEST_KRUISE_CLOCK", "virtual")
    args: list[str] = []
    if layers.get("override"):
        # ``-o`` is given on the command line: it wins over the environment.
        args += ["-o", "kruise_seed=5", "-o", "kruise_profile=openkruise-v0.3.0"]
        args += ["-o", "kruise_clock=realtime:50"]
    if layers.get("cli"):
        profile, clock = (
            ("openkruise-head", "virtual")
            if layers.get("override")
            else ("openkruise-v0.3.0", "realtime:50")
        )
        args += ["--kruise-seed=3", f"--kruise-profile={profile}", f"--kruise-clock={clock}"]
    marker = ""
    if layers.get("marker"):
        marker = '@pytest.mark.kruise(seed=4, profile="openkruise-head", clock="virtual")'
    suite.makepyfile(LAYERED_TEST.format(marker=marker, expected=expected))
    suite.runpytest(*args).assert_outcomes(passed=1)


def test_unset_options_keep_the_config_files_values(suite: pytest.Pytester) -> None:
    suite.makefile(
        ".yaml",
        cluster="""
seed: 5
profile: openkruise-v0.3.0
nodes: 2
sandboxsets: |
  apiVersion: agents.kruise.io/v1alpha1
  kind: SandboxSet
  metadata: {name: tiny, namespace: default}
  spec:
    replicas: 2
    template: {spec: {containers: [{name: c, image: i}]}}
apiKeys:
  - {key: e2b_from_config, id: alice}
""",
    )
    suite.makepyfile(
        test_inner="""
        import os

        def test_from_file(kruise_cluster, kruise_e2b):
            assert kruise_cluster.ctx.seed == 5
            assert kruise_cluster.profile.name == "openkruise-v0.3.0"
            assert [p.metadata.name for p in kruise_cluster.list("sbs")] == ["tiny"]
            assert len(kruise_cluster.nodes.specs) == 2
            assert os.environ["E2B_API_KEY"] == "e2b_from_config"

        def test_seed_from_the_command_line_wins(kruise_cluster):
            assert kruise_cluster.ctx.seed == 6
        """
    )
    result = suite.runpytest("--kruise-config=cluster.yaml", "-k", "from_file")
    result.assert_outcomes(passed=1, deselected=1)
    result = suite.runpytest("--kruise-config=cluster.yaml", "--kruise-seed=6", "-k", "wins")
    result.assert_outcomes(passed=1, deselected=1)


def test_ini_paths_are_relative_to_the_ini_file(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite.mkdir("conf").joinpath("cluster.yaml").write_text("seed: 9\n")
    suite.makeini(INNER_INI + "kruise_config = conf/cluster.yaml\n")
    test = suite.makepyfile(
        "def test_a(kruise_cluster):\n    assert kruise_cluster.ctx.seed == 9\n"
    )
    monkeypatch.chdir(suite.mkdir("elsewhere"))  # conf/cluster.yaml is not under the cwd
    result = suite.runpytest(
        str(test), f"--rootdir={suite.path}", "-c", str(suite.path / "tox.ini")
    )
    result.assert_outcomes(passed=1)


def test_an_o_whose_key_pytest_does_not_take_leaves_the_ini_files_value_as_it_is(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest takes ``-o key=value`` by the key as typed: ``-o "kruise_config =x"`` sets no
    ``kruise_config`` (pytest warns of an unknown option ``kruise_config ``), and the ini
    file's value stays in force. It is the ini file's, relative to its directory, not a
    ``command line -o`` value relative to the current one (which named no file here)."""
    suite.mkdir("conf").joinpath("cluster.yaml").write_text("seed: 9\n")
    suite.makeini(
        INNER_INI.replace("filterwarnings = error\n", "") + "kruise_config = conf/cluster.yaml\n"
    )
    test = suite.makepyfile(
        "def test_a(kruise_cluster):\n    assert kruise_cluster.ctx.seed == 9\n"
    )
    monkeypatch.chdir(suite.mkdir("elsewhere"))
    result = suite.runpytest(
        str(test),
        f"--rootdir={suite.path}",
        "-c",
        str(suite.path / "tox.ini"),
        "-o",
        "kruise_config =elsewhere.yaml",
    )
    result.assert_outcomes(passed=1)


BAD = [
    pytest.param(
        ["--kruise-seed=abc"],
        {},
        "",
        "--kruise-seed (command line): must be an integer, got 'abc'",
        id="seed-cli",
    ),
    pytest.param(
        [],
        {"PYTEST_KRUISE_CLOCK": "fast"},
        "",
        "PYTEST_KRUISE_CLOCK (environment): must be virtual or realtime[:SPEED], got 'fast'",
        id="clock-env",
    ),
    pytest.param(
        ["--kruise-clock=realtime:0"],
        {},
        "",
        "--kruise-clock (command line): speed must be a positive finite number, got '0'",
        id="speed-cli",
    ),
    pytest.param(
        ["--kruise-clock=virtual:5"],
        {},
        "",
        # docs/plugin.md: the clock is `virtual` or `realtime[:SPEED]`; a virtual clock moves
        # only when asked, so a speed with it is refused, not taken as realtime at that speed.
        "--kruise-clock (command line): only realtime takes a speed, got 'virtual:5'",
        id="speed-with-virtual",
    ),
    pytest.param(
        ["--kruise-clock=realtime:2e6"],
        {},
        "",
        "--kruise-clock (command line): speed must be at most 1e+06 (the fake cluster's "
        "limit), got '2e6'",
        id="speed-above-the-fake-clusters-limit",
    ),
    pytest.param(
        ["--kruise-clock=realtime:inf"],
        {},
        "",
        "--kruise-clock (command line): speed must be a positive finite number, got 'inf'",
        id="speed-infinite",
    ),
    pytest.param(
        ["--kruise-report-dir="],
        {},
        "",
        # Not the current directory, which an empty path would otherwise name.
        "--kruise-report-dir (command line): must not be empty",
        id="report-dir-empty",
    ),
    pytest.param(
        ["--kruise-seed=-5"],
        {},
        "",
        "--kruise-seed (command line): must be at least 0, got '-5'",
        id="seed-negative-cli",
    ),
    pytest.param(
        [],
        {"PYTEST_KRUISE_SEED": "-5"},
        "",
        "PYTEST_KRUISE_SEED (environment): must be at least 0, got '-5'",
        id="seed-negative-env",
    ),
    pytest.param(
        [],
        {},
        "kruise_seed = -5\n",
        "kruise_seed (ini file *tox.ini): must be at least 0, got '-5'",
        id="seed-negative-ini",
    ),
    pytest.param(
        ["-o", "kruise_seed=-5"],
        {},
        "",
        "kruise_seed (command line -o): must be at least 0, got '-5'",
        id="seed-negative-override-ini",
    ),
    pytest.param(
        [],
        {},
        "kruise_profile = openkruise-hed\n",
        "kruise_profile (ini file *tox.ini): unknown profile 'openkruise-hed' "
        "(did you mean 'openkruise-head'?); available: openkruise-head, openkruise-v0.3.0",
        id="profile-ini",
    ),
    pytest.param(
        ["-o", "kruise_seed=abc"],
        {},
        "kruise_seed = 4\n",
        "kruise_seed (command line -o): must be an integer, got 'abc'",
        id="seed-override-ini",
    ),
    pytest.param(
        ["-o", "kruise_seed=abc"],
        {"PYTEST_KRUISE_SEED": "3"},
        "",
        "kruise_seed (command line -o): must be an integer, got 'abc'",
        id="seed-override-ini-over-env",
    ),
    pytest.param(
        ["--kruise-backend=kube"],
        {},
        "",
        "--kruise-backend (command line): the kube backend (a real Kubernetes cluster) is not "
        "available yet; use 'sim'",
        id="kube-not-yet",
    ),
    pytest.param(
        [],
        {"PYTEST_KRUISE_BACKEND": "simm"},
        "",
        "PYTEST_KRUISE_BACKEND (environment): unknown backend 'simm' (did you mean 'sim'?); "
        "known: sim, kube",
        id="backend-env",
    ),
    pytest.param(
        ["--kruise-config=missing.yaml"],
        {},
        "",
        "--kruise-config (command line): config file '*missing.yaml' does not exist",
        id="config-missing",
    ),
    pytest.param(
        ["--kruise-config=bad.yaml"],
        {},
        "",
        "--kruise-config (command line): *bad.yaml: nodes: must be at least 1",
        id="config-invalid",
    ),
    pytest.param(
        ["--kruise-report-dir=bad.yaml"],
        {},
        "",
        "--kruise-report-dir (command line): '*bad.yaml' exists and is not a directory",
        id="report-dir-file",
    ),
    pytest.param(
        ["--kruise-report-dir=bad.yaml/sub/dir"],
        {},
        "",
        "--kruise-report-dir (command line): '*bad.yaml/sub/dir' cannot be a directory: "
        "'*bad.yaml' is a file",
        id="report-dir-under-a-file",
    ),
    pytest.param(
        [],
        {"PYTEST_KRUISE_REPORT_DIR": "bad.yaml/sub"},
        "",
        "PYTEST_KRUISE_REPORT_DIR (environment): '*bad.yaml/sub' cannot be a directory: "
        "'*bad.yaml' is a file",
        id="report-dir-under-a-file-env",
    ),
    pytest.param(
        [],
        {},
        "kruise_report_dir = bad.yaml/sub\n",
        "kruise_report_dir (ini file *tox.ini): '*bad.yaml/sub' cannot be a directory: "
        "'*bad.yaml' is a file",
        id="report-dir-under-a-file-ini",
    ),
    pytest.param(
        ["--kruise-config=latin1.yaml"],
        {},
        "",
        "--kruise-config (command line): *latin1.yaml: not UTF-8 text: byte 0xe9 at offset 8",
        id="config-not-utf8",
    ),
    pytest.param(
        ["--kruise-config=."],
        {},
        "",
        "--kruise-config (command line): config file '*' is a directory",
        id="config-directory",
    ),
    pytest.param(
        ["--kruise-config=/dev/null"],
        {},
        "",
        "--kruise-config (command line): config file '/dev/null' is not a regular file",
        id="config-not-a-regular-file",
    ),
    pytest.param(
        ["--kruise-config=dangling.yaml"],
        {},
        "",
        "--kruise-config (command line): config file '*dangling.yaml' is a broken symbolic "
        "link to 'gone.yaml'",
        id="config-broken-link",
    ),
    pytest.param(
        ["-o", "kruise_junit_properties=maybe"],
        {},
        "",
        "kruise_junit_properties (command line -o): must be true or false "
        "(or yes/no, on/off, 1/0), got 'maybe'",
        id="junit-properties-o",
    ),
    pytest.param(
        [],
        {},
        "kruise_junit_properties = nope\n",
        "kruise_junit_properties (ini file *tox.ini): must be true or false "
        "(or yes/no, on/off, 1/0), got 'nope'",
        id="junit-properties-ini",
    ),
]


@pytest.mark.parametrize(("args", "env", "ini", "message"), BAD)
def test_a_bad_value_stops_the_run_naming_option_and_source(
    suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    ini: str,
    message: str,
) -> None:
    suite.makefile(".yaml", bad="nodes: 0\n")
    (suite.path / "latin1.yaml").write_bytes("domain: \u00e9t\u00e9\n".encode("latin-1"))
    (suite.path / "dangling.yaml").symlink_to("gone.yaml")
    if ini:
        suite.makeini(INNER_INI + ini)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # A config file's content is read once a selected test uses the plugin (a test that
    # asks for a fixture, or a kruise marker); every other option at start.
    suite.makepyfile("def test_never_runs(kruise_cluster):\n    pass\n")
    result = suite.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-kruise-agents: {message}"])
    assert "test_never_runs" not in result.stdout.str().split("collected", 1)[-1]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--kruise-report-dir=/proc/kruise-agents-reports"],
            {},
            "--kruise-report-dir (command line): cannot write in "
            "'/proc/kruise-agents-reports': No such file or directory",
        ),
        (
            [],
            {"PYTEST_KRUISE_REPORT_DIR": "/sys/kruise-agents-reports"},
            "PYTEST_KRUISE_REPORT_DIR (environment): cannot write in "
            "'/sys/kruise-agents-reports': *",
        ),
    ],
    ids=["proc", "sys-env"],
)
def test_a_report_dir_where_nothing_can_be_written_stops_the_run_before_any_benchmark(
    suite: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    """Not only a file, or a path under one: a place where the directory cannot be made (a
    read-only or virtual file system) is refused at start too, instead of every benchmark
    running its whole workload and then failing in ``write_csv`` with a bare ``OSError``."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    suite.makepyfile(
        "from pytest_kruise_agents.delivery import Burst\n"
        "def test_never_runs(delivery_benchmark):\n"
        "    delivery_benchmark(Burst(1))\n"
    )
    result = suite.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-kruise-agents: {message}"])
    assert "test_never_runs" not in result.stdout.str().split("collected", 1)[-1]


def test_a_report_dir_still_to_be_made_is_not_made_at_start(suite: pytest.Pytester) -> None:
    """Checked by writing a probe where it would be made, not by making it: made at the first
    benchmark, as before."""
    suite.makepyfile("def test_uses_no_benchmark():\n    pass\n")
    result = suite.runpytest(f"--kruise-report-dir={suite.path / 'reports' / 'bench'}")
    assert result.ret == pytest.ExitCode.OK
    assert not (suite.path / "reports").exists()
    assert [p.name for p in suite.path.iterdir() if p.name.startswith(".kruise")] == []


UNUSED = """\
import sys


def test_uses_no_fixture():
    heavy = ("simulator", "simpy", "pydantic", "fastapi", "starlette", "uvicorn", "e2b")
    assert [m for m in sys.modules if m.split(".")[0] in heavy] == []
"""


@pytest.mark.parametrize(
    "ini",
    [
        "kruise_seed = 7",
        "kruise_profile = openkruise-v0.3.0",
        "kruise_clock = realtime:5",
        "kruise_config = cluster.yaml",
    ],
)
def test_an_option_in_the_ini_file_loads_nothing_heavy_in_a_run_that_uses_no_fixture(
    suite: pytest.Pytester, ini: str
) -> None:
    """docs/plugin.md: the plugin is inert until a test asks for a fixture, also in a project
    that pins its cluster in its ini file (``pytest tests/unit``, ``--collect-only``)."""
    suite.makeini(INNER_INI + ini + "\n")
    suite.makefile(".yaml", cluster="seed: 42\nnodes: 2\nclock: {mode: realtime, speed: 3}\n")
    suite.makepyfile(UNUSED)
    result = suite.runpytest_subprocess("-p", "no:hypothesispytest", "-p", "no:schemathesis")
    result.assert_outcomes(passed=1)
    if "config" in ini:
        # The header still names the file's clock: a glance at its YAML, not its validation.
        result.stdout.fnmatch_lines(["kruise-agents: backend=sim clock=realtime:3 config=*"])


def test_a_bad_config_file_stops_only_a_run_that_selects_a_test_using_the_plugin(
    suite: pytest.Pytester,
) -> None:
    suite.makefile(".yaml", bad="nodes: 0\n")
    suite.makeini(INNER_INI + "kruise_config = bad.yaml\n")
    suite.makepyfile(
        test_unit="def test_unit():\n    pass\n",
        test_e2e="def test_e2e(kruise_e2b):\n    pass\n",
        test_marked=(
            "import pytest\n\n@pytest.mark.kruise(seed=3)\ndef test_marked():\n    pass\n"
        ),
    )
    problem = "ERROR: pytest-kruise-agents: kruise_config (ini file *tox.ini): *bad.yaml*nodes*"
    for args in (["test_e2e.py"], ["test_marked.py"], []):
        result = suite.runpytest(*args)
        assert result.ret == pytest.ExitCode.USAGE_ERROR, args
        result.stderr.fnmatch_lines([problem])
    suite.runpytest("test_unit.py").assert_outcomes(passed=1)
    # Deselected, the tests that use it do not read it either.
    suite.runpytest("-k", "unit").assert_outcomes(passed=1, deselected=2)


def test_a_bad_config_file_stops_a_distributed_run_at_start(suite: pytest.Pytester) -> None:
    """Under xdist the controller collects nothing (and a worker's usage error would be an
    internal error): the controller reads the file at start, as every run did before."""
    suite.makefile(".yaml", bad="nodes: 0\n")
    suite.makeini(INNER_INI + "kruise_config = bad.yaml\n")
    suite.makepyfile("def test_e2e(kruise_cluster):\n    pass\n")
    result = suite.runpytest_subprocess("-n", "2", "-p", "no:hypothesispytest")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-kruise-agents: kruise_config (*bad.yaml: nodes*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_the_profile_names_and_the_speed_limit_are_the_simulators() -> None:
    """The plugin checks them without importing the simulator; these are its own."""
    from pytest_kruise_agents.backends import sim
    from pytest_kruise_agents.plugin import options
    from simulator.profile import PROFILES

    assert tuple(PROFILES) == options.PROFILE_NAMES
    assert options.MAX_SPEED == sim.MAX_SPEED


@pytest.mark.skipif(pytest.version_tuple < (9, 2), reason="union ini types are pytest 9.2's")
@pytest.mark.parametrize(
    ("value", "header", "error"),
    [
        ("7", "seed=7", None),
        ('"7"', "seed=7", None),
        ("-1", None, "kruise_seed (ini file *pyproject.toml): must be at least 0, got '-1'"),
        ('"x"', None, "kruise_seed (ini file *pyproject.toml): must be an integer, got 'x'"),
    ],
)
def test_a_native_toml_seed_may_be_an_int_or_a_string(
    suite: pytest.Pytester, value: str, header: str | None, error: str | None
) -> None:
    """pytest 9's ``[tool.pytest]`` passes TOML values as typed: ``kruise_seed = 7`` is taken."""
    (suite.path / "tox.ini").unlink()
    suite.makepyprojecttoml(
        "[tool.pytest]\n"
        'asyncio_mode = "strict"\n'
        'asyncio_default_fixture_loop_scope = "function"\n'
        'filterwarnings = ["error"]\n'
        f"kruise_seed = {value}\n"
    )
    suite.makepyfile("def test_a():\n    pass\n")
    result = suite.runpytest()
    if header is not None:
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines([f"kruise-agents: backend=sim {header} clock=virtual"])
    else:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: pytest-kruise-agents: {error}"])


def test_an_ini_files_seed_is_still_text_read_as_an_integer(suite: pytest.Pytester) -> None:
    suite.makeini(INNER_INI + "kruise_seed = 07\n")
    suite.makepyfile("def test_a():\n    pass\n")
    suite.runpytest().stdout.fnmatch_lines(["kruise-agents: backend=sim seed=7 clock=virtual"])
    bad = suite.runpytest("-o", "kruise_seed=seven")
    bad.stderr.fnmatch_lines(
        [
            "ERROR: pytest-kruise-agents: kruise_seed (command line -o): must be an integer, got 'seven'"
        ]
    )


def test_the_report_header_shows_the_options_that_were_set(suite: pytest.Pytester) -> None:
    suite.makepyfile("def test_a():\n    pass\n")
    result = suite.runpytest("--kruise-seed=3", "--kruise-clock=realtime:2")
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim seed=3 clock=realtime:2"])
    quiet = suite.runpytest()
    assert "kruise-agents: " not in quiet.stdout.str()


def test_the_report_header_names_the_clock_the_tests_get(suite: pytest.Pytester) -> None:
    """The header line names the clock mode even when the clock option is unset: the config
    file's mode if it sets one, else virtual (a speed only with realtime, the one it runs at)."""
    suite.makefile(".yaml", start='clock: {start: "2030-01-01T00:00:00Z"}\n')
    suite.makefile(".yaml", fast="clock: {mode: realtime, speed: 5}\n")
    suite.makepyfile("def test_a():\n    pass\n")
    result = suite.runpytest("--kruise-seed=3")
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim seed=3 clock=virtual"])
    result = suite.runpytest("--kruise-config=start.yaml")
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim clock=virtual config=*start.yaml"])
    result = suite.runpytest("--kruise-config=fast.yaml")
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim clock=realtime:5 config=*fast.yaml"])
    result = suite.runpytest("--kruise-config=fast.yaml", "--kruise-clock=realtime")
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim clock=realtime:5 config=*fast.yaml"])
    result = suite.runpytest("--kruise-config=fast.yaml", "--kruise-clock=realtime:2")
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim clock=realtime:2 config=*fast.yaml"])
    result = suite.runpytest("--kruise-config=fast.yaml", "--kruise-clock=virtual")
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim clock=virtual config=*fast.yaml"])


def test_a_speed_of_exactly_the_fake_clusters_limit_is_taken(suite: pytest.Pytester) -> None:
    """docs/plugin.md: SPEED is "a number > 0 and at most 1e6": ``realtime:1e6`` runs the
    tests on a realtime clock at that speed (the bound is inclusive)."""
    suite.makepyfile(
        "def test_clock(kruise_backend):\n"
        "    assert (kruise_backend.clock_mode, kruise_backend.speed) == ('realtime', 1e6)\n"
    )
    result = suite.runpytest("--kruise-clock=realtime:1e6")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim clock=realtime:1e+06"])


CLOCK_TEST = """
def test_clock(kruise_backend, kruise_clock):
    assert (kruise_backend.clock_mode, kruise_backend.speed) == {expected!r}
    assert kruise_clock.now_dt().year == {year}
"""

FILE_CLOCKS = [
    pytest.param('{start: "2030-01-01T00:00:00Z"}', [], ("virtual", 1.0), 2030, id="start"),
    pytest.param("{speed: 5}", [], ("virtual", 5.0), 2026, id="speed"),
    pytest.param(
        "{speed: 5}", ["--kruise-clock=realtime"], ("realtime", 5.0), None, id="speed-cli"
    ),
    pytest.param("{mode: realtime}", [], ("realtime", 1.0), None, id="mode"),
    pytest.param(
        "{mode: realtime, speed: 5}",
        ["--kruise-clock=virtual"],
        ("virtual", 5.0),
        2026,
        id="mode-under-the-option",
    ),
    pytest.param(
        '{mode: virtual, start: "2030-01-01T00:00:00Z"}', [], ("virtual", 1.0), 2030, id="both"
    ),
]


@pytest.mark.parametrize(("clock", "args", "expected", "year"), FILE_CLOCKS)
def test_a_config_files_clock_mode_counts_only_if_the_file_sets_it(
    suite: pytest.Pytester,
    clock: str,
    args: list[str],
    expected: tuple[str, float],
    year: int | None,
) -> None:
    """docs/plugin.md: tests run in virtual time unless a config file sets ``clock.mode`` (its
    ``start`` sets the opening date of either mode; its ``speed`` is the speed of a realtime
    clock, should one be asked for, and asks for none itself)."""
    import datetime

    suite.makefile(".yaml", cluster=f"nodes: 4\nclock: {clock}\n")
    opening = year if year is not None else datetime.datetime.now(datetime.UTC).year
    suite.makepyfile(CLOCK_TEST.format(expected=expected, year=opening))
    suite.runpytest("--kruise-config=cluster.yaml", *args).assert_outcomes(passed=1)


def test_a_bad_option_does_not_hide_help_markers_or_fixtures(suite: pytest.Pytester) -> None:
    """``--help``, ``--markers``, ``--fixtures`` and ``--fixtures-per-test`` run no test: they
    still show what they show (the fixtures' header says what is wrong); a run still stops."""
    suite.makeini(INNER_INI + "kruise_profile = openkruise-hed\n")
    suite.makepyfile("def test_a(kruise_cluster):\n    pass\n")
    problem = "kruise_profile (ini file *tox.ini): unknown profile 'openkruise-hed'*"
    result = suite.runpytest("--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*--kruise-seed=INT*"])
    result = suite.runpytest("--markers")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["@pytest.mark.kruise(*"])
    result = suite.runpytest("--fixtures")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines([f"kruise-agents: {problem}", "*kruise_cluster*"])
    result = suite.runpytest("--fixtures-per-test")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*kruise_cluster*"])
    result = suite.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest-kruise-agents: {problem}"])


def test_options_are_listed_in_help(suite: pytest.Pytester) -> None:
    result = suite.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "pytest-kruise-agents (fake OpenKruise Agents cluster):",
            "*--kruise-backend=NAME*",
            "*--kruise-seed=INT*",
            "*--kruise-profile=NAME*",
            "*--kruise-config=PATH*",
            "*--kruise-clock=MODE*",
            "*--kruise-report-dir=DIR*",
        ]
    )
    # pytest 9.2 takes a union ini type: a TOML int or a string.
    seed_type = "int | string" if pytest.version_tuple >= (9, 2) else "string"
    result.stdout.fnmatch_lines([f"*kruise_seed ({seed_type}):*", "*kruise_profile (string):*"])


def test_a_config_path_that_names_no_regular_file_is_refused_for_its_true_reason(
    tmp_path: Path,
) -> None:
    """Each path that cannot be a config file is refused saying why: a pipe (what a shell's
    ``<(...)`` gives, readable once, where xdist's workers read the file each), a device and
    a link whose target is gone all exist, and none is said not to."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    (tmp_path / "link.yaml").symlink_to("config.yaml")
    (tmp_path / "dir-link").symlink_to(tmp_path)
    (tmp_path / "config.yaml").write_text("nodes: 2\n")

    def why(name: str) -> str | None:
        path = tmp_path / name
        problem = not_a_file(path)
        return None if problem is None else problem.removeprefix(f"config file {str(path)!r} ")

    assert why("config.yaml") is None
    assert why("link.yaml") is None  # a link to a file is that file
    assert why("missing.yaml") == "does not exist"
    assert why(".") == "is a directory"
    assert why("dir-link") == "is a directory"  # a link to one is one, not a broken link
    assert why("fifo") == "is not a regular file"
    assert why("dangling.yaml") == f"is a broken symbolic link to {str(tmp_path / 'gone.yaml')!r}"
    assert not_a_file(Path("/dev/null")) == "config file '/dev/null' is not a regular file"


def test_a_seed_of_zero_is_a_seed_set(suite: pytest.Pytester) -> None:
    """0 is a seed like any other (an integer >= 0): set, it wins over the config file's."""
    suite.makefile(".yaml", cluster="seed: 5\n")
    suite.makepyfile(
        "import pytest\n\n"
        "def test_option(kruise_cluster):\n"
        "    assert kruise_cluster.ctx.seed == 0\n\n"
        "@pytest.mark.kruise(seed=0)\n"
        "def test_marker(kruise_cluster):\n"
        "    assert kruise_cluster.ctx.seed == 0\n"
    )
    result = suite.runpytest("--kruise-config=cluster.yaml", "--kruise-seed=0", "-k", "option")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim seed=0 clock=virtual config=*"])
    result = suite.runpytest("--kruise-config=cluster.yaml", "-k", "marker")
    result.assert_outcomes(passed=1, deselected=1)


def test_a_path_from_the_home_directory_is_expanded(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``~/cluster.yaml`` (an environment variable is not expanded by a shell) names the
    file in the home directory, not a directory called ``~``."""
    home = suite.mkdir("home")
    home.joinpath("cluster.yaml").write_text("seed: 13\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PYTEST_KRUISE_CONFIG", "~/cluster.yaml")
    suite.makepyfile("def test_a(kruise_cluster):\n    assert kruise_cluster.ctx.seed == 13\n")
    suite.runpytest().assert_outcomes(passed=1)


def test_an_empty_environment_variable_is_as_if_unset(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``PYTEST_KRUISE_SEED=`` (a CI job's variable left empty) sets nothing: the ini file's
    value stays, and no "must be an integer, got ''" stops the run."""
    suite.makeini(INNER_INI + "kruise_seed = 4\n")
    monkeypatch.setenv("PYTEST_KRUISE_SEED", "")
    suite.makepyfile("def test_a():\n    pass\n")
    result = suite.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["kruise-agents: backend=sim seed=4 clock=virtual"])


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        ("{mode: realtime}", ("realtime", 1.0)),
        ("{mode: realtime, speed: 1000000}", ("realtime", 1e6)),
        ("{mode: realtime, speed: 1000001}", ("realtime", 1.0)),
        ("{speed: 0}", (None, 1.0)),
        ("{mode: fast}", (None, 1.0)),
    ],
    ids=["no-speed", "the-limit", "past-the-limit", "zero", "bad-mode"],
)
def test_the_headers_glance_at_a_config_files_clock(
    tmp_path: Path, clock: str, expected: tuple[str | None, float]
) -> None:
    """The header reads the file's clock before the file is validated: a mode it sets, and a
    speed within the fake cluster's limits (at most 1e6, as the option's), else the default 1."""
    path = tmp_path / "cluster.yaml"
    path.write_text(f"clock: {clock}\n")
    assert file_clock(path) == expected
