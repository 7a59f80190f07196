"""Specification of the route ownership rule and its 404 (reference §6.1)."""

from __future__ import annotations

import pytest

from pytest_kruise_agents.claiming.errors import NotFoundError
from pytest_kruise_agents.claiming.ownership import (
    ROUTE_NOT_FOUND,
    owns_route,
    route_not_found,
    route_not_found_message,
)

SID = "default--base-x7k2p"


@pytest.mark.parametrize(
    ("namespace", "user", "route_namespace", "route_owner", "owned"),
    [
        ("default", "alice", "default", "alice", True),
        ("", "alice", "team-b", "alice", True),  # the admin team spans every namespace
        ("default", "alice", None, None, False),  # no route
        ("default", "alice", None, "alice", False),
        ("other", "alice", "default", "alice", False),  # another team's namespace
        ("default", "bob", "default", "alice", False),  # another key's sandbox
        ("", "bob", "default", "alice", False),  # no admin bypass of the owner
        ("default", "alice", "default", None, False),  # a pool sandbox is nobody's
    ],
)
def test_a_route_is_the_callers_in_its_namespace_and_with_its_key(
    namespace: str, user: str, route_namespace: str | None, route_owner: str | None, owned: bool
) -> None:
    """The route exists, is in the caller's namespace (any, for the admin team ``""``) and is
    owned by the caller's key; the admin team does not bypass the owner."""
    assert owns_route(namespace, user, route_namespace, route_owner) is owned


def test_the_404_names_the_sandbox() -> None:
    """The manager's 404 is a NotFoundError with upstream's message and the sandbox id."""
    message = f"Sandbox route not found, maybe it is crashed or killed: {SID}"
    assert route_not_found_message(SID) == message == f"{ROUTE_NOT_FOUND}: {SID}"
    err = route_not_found(SID)
    assert isinstance(err, NotFoundError)
    assert err.code == 404 and str(err) == message
