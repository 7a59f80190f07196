"""``wire``: a timestamp the SDKs can parse, or a failed check naming the field; an
``envdVersion`` the SDK takes."""

from __future__ import annotations

import datetime as dt

import pytest

from pytest_kruise_agents.conformance.expect import CheckFailed
from pytest_kruise_agents.conformance.wire import envd_version_ok, parse_time


def test_an_rfc_3339_date_time_is_its_instant() -> None:
    assert parse_time("2026-01-02T03:04:05+01:00", "startedAt") == dt.datetime(
        2026, 1, 2, 2, 4, 5, tzinfo=dt.UTC
    )


@pytest.mark.parametrize("text", ["2026-01-02 03:04:05Z", "2026-02-30T03:04:05Z", ""])
def test_what_is_not_an_rfc_3339_date_time_fails_the_check(text: str) -> None:
    """The grammar is :func:`parse_rfc3339`'s (its tests list the cases); the failure names the field."""
    with pytest.raises(CheckFailed, match="startedAt: expected an RFC 3339 timestamp"):
        parse_time(text, "startedAt")


def test_a_value_that_is_no_string_fails_the_check() -> None:
    with pytest.raises(CheckFailed, match="but saw 1767323045"):
        parse_time(1767323045, "startedAt")


@pytest.mark.parametrize("version", ["0.1.0", "0.2.10", "0.6.13", "v0.6.13", "0.6.13rc1", "1.0"])
def test_an_envd_version_the_sdk_takes_is_accepted(version: str) -> None:
    """PEP 440, compared as the SDK's ``packaging.version.Version`` compares it."""
    assert envd_version_ok(version)


@pytest.mark.parametrize("version", ["0.0.9", "0.1.0rc1", "0.1.0.dev3", "latest", "", "0.6.x"])
def test_an_envd_version_older_than_0_1_0_or_no_version_is_refused(version: str) -> None:
    assert not envd_version_ok(version)
