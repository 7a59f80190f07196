"""Environment variables a process can carry: one rule for create, ``/init``, commands and code.

A process gets its environment as ``NAME=value`` C strings (``execve``), so:

* a NUL, in a name or a value, cannot travel at all: Python's ``subprocess``
  refuses it, and so does Go's ``exec`` (with ``EINVAL``) under the real envd;
* a name holding ``=`` does not survive the trip: Go's ``exec`` writes
  ``{"A=B": "1"}`` as ``A=B=1``, which every reader takes for ``A`` = ``B=1``
  (Python refuses it outright);
* an empty name is no variable anybody can read back (``getenv("")``).

The server therefore refuses such entries where they arrive (the create's
``envVars``, envd's ``/init``, a command's ``envs``, ``run_code``'s
``env_vars``) with one 400 naming the field and the key, rather than keep
them and fail every later command and kernel of the sandbox.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

__all__ = ["EnvVarProblem", "env_name_problem", "env_vars_problem", "sandbox_identity_env"]


class EnvVarProblem(NamedTuple):
    """What is wrong with an entry: the field it is in (``envVars.A``) and the whole message."""

    field: str
    message: str


def env_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an environment variable, or ``None`` if it can."""
    if not name:
        return "a name must not be empty"
    if "=" in name:
        return "a name must not contain '='"
    if "\0" in name:
        return "a name must not contain a NUL character"
    return None


def env_vars_problem(field: str, env: Mapping[str, str]) -> EnvVarProblem | None:
    """The first entry of ``env`` no process can carry, or ``None`` if all can.

    The message starts with the field (``envVars``, ``process.envs``...) and
    names the key: ``"envVars: invalid variable name 'A=B': a name must not
    contain '='"``, ``"envVars.A: must not contain a NUL character"``.
    """
    for name, value in env.items():
        why = env_name_problem(name)
        if why is not None:
            return EnvVarProblem(field, f"{field}: invalid variable name {name!r}: {why}")
        if "\0" in value:
            return EnvVarProblem(
                f"{field}.{name}", f"{field}.{name}: must not contain a NUL character"
            )
    return None


def sandbox_identity_env(sandbox_id: str) -> dict[str, str]:
    """What tells code it runs in an E2B sandbox, and which: ``E2B_SANDBOX``, ``E2B_SANDBOX_ID``.

    Commands (envd) and code-interpreter kernels both start from these; the
    sandbox's env vars may replace them.
    """
    return {"E2B_SANDBOX": "true", "E2B_SANDBOX_ID": sandbox_id}
