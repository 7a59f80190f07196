"""Specification of the one rule for env vars: what a process can carry, and the error naming the rest."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.e2b.envvars import (
    EnvVarProblem,
    env_name_problem,
    env_vars_problem,
    sandbox_identity_env,
)


@pytest.mark.parametrize("name", ["A", "a_b", "A B", "é", "PATH", "1X"])
def test_any_non_empty_name_without_equals_or_nul_is_carried(name: str) -> None:
    """execve only needs NAME=value C strings: POSIX's portable-name rule is not enforced."""
    assert env_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "a name must not be empty"),
        ("A=B", "a name must not contain '='"),
        ("=", "a name must not contain '='"),
        ("A\0", "a name must not contain a NUL character"),
    ],
)
def test_empty_names_and_names_with_equals_or_nul_are_not(name: str, why: str) -> None:
    assert env_name_problem(name) == why


def test_the_first_bad_entry_is_named_with_its_field() -> None:
    assert env_vars_problem("envVars", {"OK": "1", "A=B": "1", "": "2"}) == EnvVarProblem(
        "envVars", "envVars: invalid variable name 'A=B': a name must not contain '='"
    )
    assert env_vars_problem("process.envs", {"A": "x\0y"}) == EnvVarProblem(
        "process.envs.A", "process.envs.A: must not contain a NUL character"
    )


def test_values_may_hold_anything_but_nul() -> None:
    assert env_vars_problem("envVars", {"A": "", "B": "x=y", "C": "\n\t é"}) is None


def test_code_learns_it_runs_in_an_e2b_sandbox_and_which() -> None:
    """E2B sets ``E2B_SANDBOX=true`` and ``E2B_SANDBOX_ID`` in every sandbox process."""
    assert sandbox_identity_env("default--base-x") == {
        "E2B_SANDBOX": "true",
        "E2B_SANDBOX_ID": "default--base-x",
    }
