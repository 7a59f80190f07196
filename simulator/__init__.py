"""The SimPy fake cluster: OpenKruise Agents' claim system in virtual time.

The public surface is small: build a :class:`Cluster`, apply pools and
claims, claim sandboxes, move time, inject faults, read records.

PYTEST_DONT_REWRITE: installed from a wheel, this package is marked for pytest's
assertion rewriting with the plugin's (see :mod:`pytest_kruise_agents`); a
script that imports it before ``pytest.main()`` must not get a warning for it.
"""

from simulator.cluster import DEFAULT_USER, Cluster, default_nodes
from simulator.erlang import erlang_b, erlang_c, min_servers_for_loss
from simulator.errors import NotFoundError
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
    "Fault",
    "NodeSpec",
    "NotFoundError",
    "PoissonWorkload",
    "Profile",
    "WorkloadStats",
    "default_nodes",
    "erlang_b",
    "erlang_c",
    "get_profile",
    "min_servers_for_loss",
]
