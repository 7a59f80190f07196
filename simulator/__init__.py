"""The SimPy fake cluster: OpenKruise Agents' claim system in virtual time.

The public surface is small: build a :class:`Cluster`, apply pools and
claims, claim sandboxes, move time, inject faults, read records.

PYTEST_DONT_REWRITE: installed from a wheel, this package is marked for pytest's
assertion rewriting with the plugin's (see :mod:`pytest_kruise_agents`); a
script that imports it before ``pytest.main()`` must not get a warning for it.

The names below are imported when first used (PEP 562): ``from simulator.erlang
import erlang_c`` loads that module alone, not the cluster, pydantic and SimPy;
``from simulator import Cluster`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.cluster import DEFAULT_USER, Cluster, default_nodes
    from simulator.erlang import erlang_b, erlang_c, min_servers_for_loss
    from simulator.errors import ConflictError, NoAnswerError, NotFoundError, PoolTimeoutError
    from simulator.faults import FAULT_KINDS, Fault
    from simulator.nodes import NodeSpec
    from simulator.profile import LATENCY_DOCS, PROFILES, Profile, get_profile
    from simulator.records import PHASES, ClaimRecord, ClaimRecords
    from simulator.workloads import PoissonWorkload, WorkloadStats

__all__ = [
    "DEFAULT_USER",
    "FAULT_KINDS",
    "LATENCY_DOCS",
    "PHASES",
    "PROFILES",
    "ClaimRecord",
    "ClaimRecords",
    "Cluster",
    "ConflictError",
    "Fault",
    "NoAnswerError",
    "NodeSpec",
    "NotFoundError",
    "PoissonWorkload",
    "PoolTimeoutError",
    "Profile",
    "WorkloadStats",
    "default_nodes",
    "erlang_b",
    "erlang_c",
    "get_profile",
    "min_servers_for_loss",
]

_LAZY = {
    "DEFAULT_USER": "simulator.cluster",
    "Cluster": "simulator.cluster",
    "default_nodes": "simulator.cluster",
    "erlang_b": "simulator.erlang",
    "erlang_c": "simulator.erlang",
    "min_servers_for_loss": "simulator.erlang",
    "ConflictError": "simulator.errors",
    "NoAnswerError": "simulator.errors",
    "NotFoundError": "simulator.errors",
    "PoolTimeoutError": "simulator.errors",
    "FAULT_KINDS": "simulator.faults",
    "Fault": "simulator.faults",
    "NodeSpec": "simulator.nodes",
    "LATENCY_DOCS": "simulator.profile",
    "PROFILES": "simulator.profile",
    "Profile": "simulator.profile",
    "get_profile": "simulator.profile",
    "PHASES": "simulator.records",
    "ClaimRecord": "simulator.records",
    "ClaimRecords": "simulator.records",
    "PoissonWorkload": "simulator.workloads",
    "WorkloadStats": "simulator.workloads",
}
"""Each name of ``__all__`` → the module it lives in."""

if not TYPE_CHECKING:
    # Hidden from type checkers, which see the imports above: a misspelt name stays an error.

    def __getattr__(name: str) -> object:
        """Import a name of the package when it is first used (PEP 562)."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        """The module's attributes and every name of ``__all__``, imported or not."""
        return sorted({*globals(), *__all__})
