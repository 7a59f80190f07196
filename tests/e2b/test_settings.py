"""Specification of the server's settings: which hosts are loopback, what may be exposed."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.e2b.settings import ApiKey, Settings, is_loopback


@pytest.mark.parametrize(
    "host", ["localhost", "LocalHost", "app.localhost", "127.0.0.1", "127.8.9.10", "::1", "[::1]"]
)
def test_names_of_this_machine_are_loopback(host: str) -> None:
    """``*.localhost`` names this machine too (RFC 6761 6.3)."""
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "", "::", "example.com", "localhost.example.com", "10.0.0.1"]
)
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_a_body_limit_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="max_body_bytes: must be >= 1"):
        Settings(max_body_bytes=0)
    assert Settings(max_body_bytes=1).max_body_bytes == 1


def test_a_public_host_needs_authentication_and_api_keys() -> None:
    """Settings made in Python (``create_app``) are checked as ``serve`` checks its config."""
    with pytest.raises(ValueError, match="with authentication disabled"):
        Settings(host="0.0.0.0", auth_enabled=False).check_exposure()
    with pytest.raises(ValueError, match="without API keys"):
        Settings(host="0.0.0.0").check_exposure()
    Settings(host="0.0.0.0", api_keys=[ApiKey(key="k")]).check_exposure()
    Settings(host="127.0.0.1", auth_enabled=False).check_exposure()


def test_the_admin_key_is_the_first_admin_key_listed() -> None:
    first, second = ApiKey(key="a1", admin=True), ApiKey(key="a2", id="a2", admin=True)

    assert Settings(api_keys=[ApiKey(key="u"), first, second]).admin_key == first
    assert Settings(api_keys=[ApiKey(key="u")]).admin_key is None
