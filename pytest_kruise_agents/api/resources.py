"""Compute resource names and amounts beyond CPU and memory, as the API server validates them.

A container may request ``cpu``, ``memory``, ``ephemeral-storage``, ``hugepages-<size>``
and *extended resources* (``nvidia.com/gpu``: a fully qualified name outside the
``kubernetes.io`` domain). The rules are ``ValidateContainerResourceRequirements``'
(``pkg/apis/core/validation``) and its helpers (``pkg/apis/core/helper``): extended
resources and huge pages cannot be overcommitted (a request must equal its limit, and a
request needs a limit), and an extended resource is counted in whole units.
"""

from __future__ import annotations

from decimal import ROUND_CEILING
from typing import Any

from pytest_kruise_agents.api.quantity import decode_quantity
from pytest_kruise_agents.api.validation import qualified_name_problem

__all__ = [
    "EPHEMERAL_STORAGE",
    "amount",
    "container_resource_problem",
    "is_extended",
    "is_hugepages",
    "node_resource_problem",
    "overcommit_allowed",
    "quantity_value_problem",
]

EPHEMERAL_STORAGE = "ephemeral-storage"
_CONTAINER_STANDARD = ("cpu", "memory", EPHEMERAL_STORAGE)
_HUGEPAGES = "hugepages-"
_REQUESTS_PREFIX = "requests."


def is_hugepages(name: str) -> bool:
    """Whether ``name`` is a huge page resource (``hugepages-2Mi``)."""
    return name.startswith(_HUGEPAGES)


def _is_native(name: str) -> bool:
    """``IsNativeResource``: no domain, or one in ``kubernetes.io``."""
    return "/" not in name or "kubernetes.io/" in name


def is_extended(name: str) -> bool:
    """``IsExtendedResourceName``: a fully qualified name outside ``kubernetes.io`` (``nvidia.com/gpu``)."""
    if _is_native(name) or name.startswith(_REQUESTS_PREFIX):
        return False
    return qualified_name_problem(_REQUESTS_PREFIX + name) is None


def overcommit_allowed(name: str) -> bool:
    """``IsOvercommitAllowed``: native resources but huge pages (a request may be below its limit)."""
    return _is_native(name) and not is_hugepages(name)


def container_resource_problem(name: str) -> str | None:
    """Why ``name`` is no resource a container may request or limit, or ``None``
    (``validateContainerResourceName``)."""
    why = qualified_name_problem(name)
    if why is not None:
        return why
    if "/" not in name:
        if name not in _CONTAINER_STANDARD and not is_hugepages(name):
            return f"Invalid value: {name!r}: must be a standard resource for containers"
    elif not _is_native(name) and not is_extended(name):
        return f"Invalid value: {name!r}: doesn't follow extended resource name standard"
    return None


def node_resource_problem(name: str) -> str | None:
    """Why ``name`` cannot be one of a node's ``allocatable`` resources here, or ``None``.

    CPU, memory and pods are the node's own fields (``cpu``, ``memory``, ``max_pods``).
    """
    if name in ("cpu", "memory", "pods"):
        field = "max_pods" if name == "pods" else name
        return f"{name!r} is the node's own field {field!r}, not an allocatable entry"
    return container_resource_problem(name)


def quantity_value_problem(name: str, value: Any) -> str | None:
    """Why ``value`` (a valid quantity) is no amount of ``name``: an extended resource is
    counted in whole units (``ValidateResourceQuantityValue``)."""
    if is_extended(name) and (decode_quantity(str(value)) * 1000) % 1000 != 0:
        return f"Invalid value: {str(value)!r}: must be an integer"
    return None


def amount(value: Any) -> int:
    """A quantity as a whole number of its unit, rounded up (``Quantity.Value``): bytes of
    ephemeral storage or huge pages, units of an extended resource."""
    return int(decode_quantity(str(value)).to_integral_value(rounding=ROUND_CEILING))
