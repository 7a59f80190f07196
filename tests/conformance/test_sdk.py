"""``sdk``: which SDK generation the installed one is, and the status behind an SDK error."""

from __future__ import annotations

import pytest
from e2b import SandboxException

from pytest_kruise_agents.conformance.sdk import api_status, uses_v2_routes


@pytest.mark.parametrize(
    ("version", "v2"),
    [
        ("2.8.1", False),
        ("2.50.0", False),
        ("2.51.0", True),
        ("2.63.0", True),
        ("2.51.0rc1", False),
        ("a local build", True),  # not a release the suite knows: the newest SDKs' routes
    ],
)
def test_the_v2_routes_are_those_of_e2b_2_51_on(version: str, v2: bool) -> None:
    """E2B §2.6; PEP 440 order: a 2.51 release candidate comes before 2.51."""
    assert uses_v2_routes(version) is v2


def test_the_status_of_an_sdk_error_is_its_status_code_else_the_one_in_its_message() -> None:
    assert api_status(SandboxException("400: template not found", status_code=400)) == 400
    assert api_status(SandboxException("404: template 'x' not found")) == 404  # e2b 2.8
    assert api_status(SandboxException("no status here")) is None
    assert api_status(ValueError("1234: not a status")) is None
