"""A project's own top-level ``simulator`` hides the fake cluster's: a run using the plugin says so.

The fake cluster is the top-level package ``simulator`` (fixed by the design).
A user's ``simulator.py`` or ``simulator/`` on ``sys.path`` first (pytest's
rootdir, ``python -m``'s current directory) would fail every fixture with
``No module named 'simulator.cluster'``; instead the run stops with one
message naming the file, and a run that uses nothing of the plugin is left
alone. Real user projects in a temporary directory, real pytest subprocesses
(in-process, this run's own ``simulator`` is already imported).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import pytest_kruise_agents.plugin as plugin
from pytest_kruise_agents.shadowing import our_simulator, shadowing_simulator

pytest_plugins = ["pytester"]

MINE = "from simulator import simulate\n\ndef test_mine():\n    assert simulate() == 1\n"
USES = "\ndef test_cluster(kruise_cluster):\n    assert kruise_cluster.create_sandbox('base')\n"


def own_module(project: pytest.Pytester) -> Path:
    return project.makepyfile(simulator="def simulate():\n    return 1\n")


def own_package(project: pytest.Pytester) -> Path:
    package = project.mkpydir("simulator")
    (package / "__init__.py").write_text("def simulate():\n    return 1\n")
    return package


def run(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    """``python -m pytest`` in the project: the current directory first on sys.path."""
    return project.runpytest_subprocess("-p", "no:cacheprovider", *args)


@pytest.mark.parametrize("make", [own_module, own_package], ids=["simulator.py", "simulator/"])
def test_a_run_using_the_plugin_stops_before_any_test_naming_the_file(
    suite: pytest.Pytester, make: Callable[[pytest.Pytester], Path]
) -> None:
    mine = make(suite)
    suite.makepyfile(test_clash=MINE + USES)

    result = run(suite)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "ERROR: pytest-kruise-agents: the top-level name 'simulator' is taken by" in err
    shown = f"{mine}/" if mine.is_dir() else str(mine)
    assert f" {shown}, which hides pytest-kruise-agents' own simulator package " in err
    assert "Rename yours" in err
    assert "No module named" not in result.stdout.str() + err
    assert "passed" not in result.stdout.str()  # not even the user's own test ran


def test_a_run_that_uses_no_fixture_of_the_plugin_is_left_alone(suite: pytest.Pytester) -> None:
    own_module(suite)
    suite.makepyfile(test_mine=MINE)

    run(suite).assert_outcomes(passed=1)


def test_a_run_setting_an_option_stops_at_configure(suite: pytest.Pytester) -> None:
    """An option of the plugin is a use of it: stopped before its options are checked."""
    own_module(suite)
    suite.makepyfile(test_mine=MINE)

    result = run(suite, "--kruise-profile", "fast")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "pytest-kruise-agents: the top-level name 'simulator' is taken" in result.stderr.str()


def plain_pytest(project: pytest.Pytester, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``pytest`` command in the project (not ``python -m pytest``): the current directory
    is not on sys.path, and a test's directory joins it only as the test is collected."""
    repo = Path(plugin.__file__).resolve().parents[2]  # this checkout, not the venv's install
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(repo)
    command = Path(sys.executable).with_name("pytest")
    return subprocess.run(
        [str(command), "-p", "no:cacheprovider", *args],
        cwd=project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_under_plain_pytest_an_option_stops_the_run_only_once_the_module_is_on_sys_path(
    suite: pytest.Pytester,
) -> None:
    """docs/plugin.md: at configure, plain ``pytest`` has not yet put the test directory on
    sys.path, so the option's check finds ours there; a ``conftest.py`` beside the module,
    loaded before configure, puts it there. A test using the plugin stops the run either way."""
    own_module(suite)
    suite.makepyfile(test_clash=MINE + USES)
    taken = "ERROR: pytest-kruise-agents: the top-level name 'simulator' is taken"

    other = plain_pytest(suite, "--kruise-seed=1", "-k", "test_mine")
    assert other.returncode == pytest.ExitCode.OK, other.stdout + other.stderr
    assert "1 passed, 1 deselected" in other.stdout

    using = plain_pytest(suite, "--kruise-seed=1")
    assert using.returncode == pytest.ExitCode.USAGE_ERROR
    assert taken in using.stderr
    assert "passed" not in using.stdout  # stopped after collection: not even test_mine ran

    suite.makeconftest("")
    configure = plain_pytest(suite, "--kruise-seed=1", "-k", "test_mine")
    assert configure.returncode == pytest.ExitCode.USAGE_ERROR
    assert taken in configure.stderr


def test_a_conftest_importing_a_fixture_type_gets_the_message(suite: pytest.Pytester) -> None:
    """docs/plugin.md's typed fixtures (``from pytest_kruise_agents.plugin import Cluster``)."""
    mine = own_module(suite)
    suite.makeconftest("from pytest_kruise_agents.plugin import Cluster\n")
    suite.makepyfile(test_mine=MINE)

    result = run(suite)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "ImportError: pytest-kruise-agents: the top-level name 'simulator' is taken" in err
    assert str(mine) in err
    assert "is not a package" not in err


def test_under_xdist_each_test_using_the_plugin_errors_with_the_message(
    suite: pytest.Pytester,
) -> None:
    """A worker cannot stop the run cleanly before its tests: they error, the others run."""
    pytest.importorskip("xdist")
    own_module(suite)
    suite.makepyfile(test_clash=MINE + USES)

    result = run(suite, "-n", "2")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*pytest-kruise-agents: the top-level name 'simulator' is taken*"])
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


def test_without_a_project_simulator_is_ours() -> None:
    assert shadowing_simulator() is None
    assert our_simulator() == Path(sys.modules["simulator"].__file__ or "").parent


def test_finding_simulator_does_not_run_the_project_module(tmp_path: Path) -> None:
    """The question imports nothing: a module with side effects is found, not run."""
    (tmp_path / "simulator.py").write_text("print('ran')\n")
    code = (
        "import sys\n"
        "from pytest_kruise_agents.shadowing import shadowing_simulator\n"
        "print(shadowing_simulator())\n"
        "print('simulator' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.splitlines()

    assert out[0].startswith(f"the top-level name 'simulator' is taken by the module {tmp_path}")
    assert out[1:] == ["False"]


def test_the_fixture_list_is_every_fixture_of_the_plugin() -> None:
    """What makes a test a user of the plugin: asking for one of these (or the marker)."""
    defined = {
        name
        for name, value in vars(plugin).items()
        if type(value).__name__ == "FixtureFunctionDefinition" and not name.startswith("_")
    }
    assert defined == plugin.FIXTURES
