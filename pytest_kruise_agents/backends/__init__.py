"""Backends: the clusters the E2B server, the fixtures and the benchmarks run against.

:class:`Backend` is the seam (see :mod:`pytest_kruise_agents.backends.base`);
:class:`SimBackend` is the embedded SimPy fake cluster.
"""

from pytest_kruise_agents.backends.base import (
    Backend,
    Caller,
    ClockMode,
    CreateRequest,
    ListQuery,
    Pending,
    ResourceForbidden,
    ResourceNotFound,
    Route,
    SandboxListener,
    SandboxView,
    TemplateView,
)
from pytest_kruise_agents.backends.sim import (
    DEFAULT_POOLS,
    ClockLag,
    SimBackend,
    default_pools_yaml,
)

__all__ = [
    "DEFAULT_POOLS",
    "Backend",
    "Caller",
    "ClockLag",
    "ClockMode",
    "CreateRequest",
    "ListQuery",
    "Pending",
    "ResourceForbidden",
    "ResourceNotFound",
    "Route",
    "SandboxListener",
    "SandboxView",
    "SimBackend",
    "TemplateView",
    "default_pools_yaml",
]
