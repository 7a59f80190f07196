"""Specification of how a sandbox's stop reaches its open streams (``envd.streams``)."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.e2b.envd.streams import OpenStreams
from tests.e2b.envd.conftest import Envd


@pytest.mark.asyncio
async def test_a_stream_that_joins_after_the_stop_is_woken_at_once(envd: Envd) -> None:
    """Else a stream opened in the instant of the stop would wait for a wake that never comes."""
    streams = OpenStreams(envd.workspace())
    woken: list[str] = []
    streams.join(lambda: woken.append("early"))
    await streams.aclose()
    leave = streams.join(lambda: woken.append("late"))
    assert woken == ["early", "late"]
    leave()  # a no-op, and safe
