"""The example suite: fixtures for the agent under test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agent import Agent, AgentConfig

from pytest_kruise_agents.plugin.server import KruiseE2B


@pytest.fixture
def agent(kruise_e2b: KruiseE2B) -> Iterator[Agent]:
    """An agent session against the test's fake cluster (``kruise_e2b`` sets the environment)."""
    session = Agent(AgentConfig(sandbox_timeout=120, claim_timeout=10))
    yield session
    session.close()
