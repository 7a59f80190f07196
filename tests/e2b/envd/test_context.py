"""Specification of the request state envd's handlers run against (``envd.context``)."""

from __future__ import annotations

from pytest_kruise_agents.e2b.envd.context import RequestState
from tests.e2b.envd.conftest import Envd


def test_a_listener_added_after_the_client_left_is_called_at_once(envd: Envd) -> None:
    """A stream that starts listening after the disconnect must still hear it (or wait forever)."""
    state = RequestState(envd.workspace())
    state.mark_disconnected()
    heard: list[str] = []
    unregister = state.on_disconnect(lambda: heard.append("gone"))
    assert heard == ["gone"]
    unregister()  # a no-op, and safe
    state.mark_disconnected()
    assert heard == ["gone"]


def test_listeners_are_called_once_and_not_after_they_unregistered(envd: Envd) -> None:
    state = RequestState(envd.workspace())
    heard: list[str] = []
    state.on_disconnect(lambda: heard.append("a"))
    unregister = state.on_disconnect(lambda: heard.append("b"))
    unregister()
    state.mark_disconnected()
    state.mark_disconnected()
    assert heard == ["a"]
