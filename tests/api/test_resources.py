"""Resource names: which are native (overcommittable, fractional) and which are extended."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.api.resources import (
    is_extended,
    overcommit_allowed,
    quantity_value_problem,
)


@pytest.mark.parametrize("name", ["kubernetes.io/widget", "example.kubernetes.io/widget", "cpu"])
def test_a_name_in_the_kubernetes_io_domain_is_native(name: str) -> None:
    """``IsNativeResource``: no domain, or one in ``kubernetes.io``. Such a resource is no
    extended one: it may be overcommitted and requested in fractions."""
    assert not is_extended(name)
    assert overcommit_allowed(name)
    assert quantity_value_problem(name, "500m") is None


def test_an_extended_resource_is_counted_in_whole_units() -> None:
    """``nvidia.com/gpu`` is extended: not overcommittable, and ``500m`` of it is refused."""
    assert is_extended("nvidia.com/gpu")
    assert not overcommit_allowed("nvidia.com/gpu")
    assert quantity_value_problem("nvidia.com/gpu", "500m") == (
        "Invalid value: '500m': must be an integer"
    )
