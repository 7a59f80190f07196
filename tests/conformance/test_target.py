"""``target.url_problem``: which base URLs the suite accepts for a server."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.conformance.target import url_problem


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080",
        "https://api.example.com",
        "https://example.com/kruise/api",
        "http://127.0.0.1:1",
        "http://127.0.0.1:65535",
        "http://[::1]:8080",
        "http://user:pw@host:443/x",
    ],
)
def test_a_base_url_with_a_port_in_range_is_accepted(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "port"),
    [
        # httpx keeps 106939 and the socket layer wraps it: the checks would run against
        # whatever listens on port 106939 - 65536 = 41403.
        ("http://127.0.0.1:106939", "106939"),
        ("http://127.0.0.1:65536", "65536"),
        ("http://127.0.0.1:0", "0"),
        ("http://h:-1", "-1"),
        ("http://h:+80", "+80"),
        ("http://h:\uff11\uff12", "\uff11\uff12"),  # full-width digits
        ("http://[::1]:99999", "99999"),
    ],
)
def test_a_port_outside_1_to_65535_or_not_a_number_is_refused(url: str, port: str) -> None:
    assert url_problem(url) == f"port {port!r} is not a number in 1..65535: {url!r}"
