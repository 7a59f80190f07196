"""Installed but unused, the plugin stays out of the way: light to import, silent, removable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import INNER_INI

pytest_plugins = ["pytester"]

HEAVY = ("simulator", "simpy", "pydantic", "fastapi", "uvicorn", "e2b", "httpx", "yaml")


def test_importing_the_plugin_loads_nothing_heavy() -> None:
    code = (
        "import sys, pytest\n"
        "before = set(sys.modules)\n"
        "import pytest_kruise_agents.plugin\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.split()
    assert "pytest_kruise_agents.plugin" in loaded
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []
    assert [m for m in loaded if m.startswith("pytest_kruise_agents.") and "plugin" not in m] == []


UNUSED_RUN_MODULES = [
    "pytest_kruise_agents",
    "pytest_kruise_agents.conformance",
    "pytest_kruise_agents.conformance.plugin",
    "pytest_kruise_agents.conformance.registry",
    "pytest_kruise_agents.plugin",
    "pytest_kruise_agents.plugin.options",
    "pytest_kruise_agents.plugin.reporting",
]
"""docs/plugin.md, first paragraph: the seven modules of its own a run that uses none of the
plugin imports (the package; the fixtures' plugin, its options, its report collector; the
conformance suite's package, plugin and check catalogue)."""

OWN_MODULES = """\
import sys


def test_uses_no_fixture():
    print("OWN", sorted(m for m in sys.modules if m.split(".")[0] == "pytest_kruise_agents"))
"""


@pytest.mark.parametrize(
    ("ini", "more"),
    [
        ("", []),
        # A run that sets an option uses the plugin: it asks, at configure, whether a
        # project's own `simulator` hides ours.
        ("kruise_seed = 7\n", ["pytest_kruise_agents.shadowing"]),
    ],
    ids=["no-option", "an-option-set"],
)
def test_a_run_that_uses_no_fixture_imports_exactly_the_documented_modules(
    suite: pytest.Pytester, ini: str, more: list[str]
) -> None:
    """In a fresh process (pytester's in-process runs share this one's modules)."""
    suite.makeini(INNER_INI + ini)
    suite.makepyfile(OWN_MODULES)
    result = suite.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    own = [line.split("OWN ", 1)[1] for line in result.outlines if "OWN [" in line]
    assert own == [repr(sorted(UNUSED_RUN_MODULES + more))]


def test_a_suite_that_uses_no_fixture_sees_nothing(suite: pytest.Pytester) -> None:
    suite.makepyfile("def test_a():\n    pass\n")
    result = suite.runpytest()
    result.assert_outcomes(passed=1)
    assert "kruise-agents: " not in result.stdout.str()
    assert "kruise-agents-0.1.0" in result.stdout.str()  # listed among the plugins, nothing more


def test_the_plugin_is_the_kruise_agents_entry_point(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        def test_registered(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("kruise_agents")

        def test_uses(kruise_cluster):
            pass
        """
    )
    suite.runpytest().assert_outcomes(passed=2)
    off = suite.runpytest("-p", "no:kruise_agents")
    off.assert_outcomes(failed=1, errors=1)
    off.stdout.fnmatch_lines(["*fixture 'kruise_cluster' not found*"])


@pytest.mark.parametrize(
    "source",
    [
        "import nonexistent_module\n",  # a collection error interrupts the run
        "import pytest\n\ndef test_a():\n    pytest.exit('stop')\n",
        "def test_a():\n    raise KeyboardInterrupt\n",
    ],
    ids=["collection-error", "pytest-exit", "ctrl-c"],
)
def test_an_interrupted_run_that_selected_no_check_prints_no_conformance_table(
    suite: pytest.Pytester, source: str
) -> None:
    suite.makepyfile(source)
    result = suite.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    output = result.stdout.str()
    assert "E2B conformance" not in output
    assert "0 passed, 0 failed" not in output


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["-p", "kruise_agents"], {}),
        ([], {"PYTEST_PLUGINS": "pytest_kruise_agents.plugin"}),
    ],
    ids=["-p-entry-point-name", "PYTEST_PLUGINS"],
)
def test_with_autoloading_off_the_plugin_is_enabled_by_name(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]
) -> None:
    suite.makeini("[pytest]\n")  # pytest-asyncio's options are unknown without it
    suite.makepyfile("def test_uses(kruise_cluster):\n    assert kruise_cluster.now >= 0\n")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    off = suite.runpytest_subprocess("-p", "no:cacheprovider")
    off.assert_outcomes(errors=1)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    on = suite.runpytest_subprocess("-p", "no:cacheprovider", *args)
    on.assert_outcomes(passed=1)
