"""``kruise-agents conformance``: the pytest command line it builds and its option errors."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest

from pytest_kruise_agents.conformance.runner import PLUGIN, RunOptions, pytest_args

from .conftest import KRUISE_AGENTS


def test_the_command_line_runs_the_package_with_the_plugin_and_every_given_option() -> None:
    args = pytest_args(
        RunOptions(
            api_url="http://h:1",
            api_key="k",
            template="base",
            sandbox_url="http://h:2",
            levels="core,envd",
            junit=Path("out.xml"),
        )
    )
    assert args[:4] == ["--pyargs", "pytest_kruise_agents.conformance", "-p", PLUGIN]
    assert args[args.index("-c") + 1] == os.devnull
    pairs = dict(itertools.pairwise(args))
    assert pairs["--e2b-api-url"] == "http://h:1"
    assert pairs["--e2b-sandbox-url"] == "http://h:2"
    assert pairs["--e2b-levels"] == "core,envd"
    assert pairs["--e2b-junit"] == "out.xml"
    assert "--e2b-domain" not in args and "--e2b-report" not in args


def test_an_unknown_level_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="unknown level 'nope'"):
        pytest_args(RunOptions(api_url="http://h:1", levels="core,nope"))
    proc = subprocess.run(
        [
            str(KRUISE_AGENTS),
            "conformance",
            "--api-url",
            "http://127.0.0.1:9",
            "--template",
            "base",
            "--levels",
            "nope",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--levels: unknown level 'nope'" in proc.stderr
