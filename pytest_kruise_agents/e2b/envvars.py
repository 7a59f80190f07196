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
from types import MappingProxyType
from typing import Final

from pytest_kruise_agents.api.validation import env_name_problem
from pytest_kruise_agents.claiming.extensions import EnvVarProblem, env_vars_problem

# The rule is the claim system's (every create path and SandboxClaims check it there);
# the server asks the same functions where entries arrive after the create.
__all__ = [
    "SANDBOX_LOCALE_ENV",
    "EnvVarProblem",
    "env_name_problem",
    "env_vars_problem",
    "sandbox_identity_env",
]

SANDBOX_LOCALE_ENV: Final[Mapping[str, str]] = MappingProxyType({"LANG": "C.UTF-8", "TZ": "UTC"})
"""The locale and time zone of every command and code-interpreter kernel, not the host's.

E2B's images are Debian containers in UTC (their ``/etc/localtime``) with a
UTF-8 locale; a fake sandbox runs on the host, whose zone and locale (``TZ``,
``LANG``, ``LC_*``) would make ``date`` or ``datetime.now()`` answer
differently on a laptop and in CI. ``TZ=UTC`` stands in for the image's
``/etc/localtime``. The sandbox's env vars (and a command's) may replace both.
"""


def sandbox_identity_env(sandbox_id: str) -> dict[str, str]:
    """What tells code it runs in an E2B sandbox, and which: ``E2B_SANDBOX``, ``E2B_SANDBOX_ID``.

    Commands (envd) and code-interpreter kernels both start from these; the
    sandbox's env vars may replace them.
    """
    return {"E2B_SANDBOX": "true", "E2B_SANDBOX_ID": sandbox_id}
