"""The Backend seam's plain values: callers, not-found errors, list queries, template views."""

from __future__ import annotations

from pytest_kruise_agents.backends import Caller, ListQuery, ResourceNotFound, TemplateView


def test_the_admin_is_the_caller_without_a_namespace() -> None:
    """The admin team (namespace ``""``) spans all namespaces, whatever its key id."""
    assert Caller("", "admin").admin
    assert Caller("", "").admin
    assert not Caller("default", "").admin
    assert not Caller("team-a", "admin").admin


def test_not_found_names_the_object_with_its_namespace_if_it_has_one() -> None:
    """``SandboxSet default/nope not found``; a cluster-wide object (a fault) by its name alone."""
    err = ResourceNotFound("SandboxSet", "default", "nope")
    assert str(err) == "SandboxSet default/nope not found"
    assert (err.kind, err.namespace, err.name) == ("SandboxSet", "default", "nope")
    assert str(ResourceNotFound("Fault", None, "f-1")) == "Fault f-1 not found"


def test_a_list_query_defaults_to_the_e2b_lists_defaults() -> None:
    """``GET /v2/sandboxes`` without parameters: running and paused, 100 a page, oldest first."""
    query = ListQuery()
    assert (query.states, query.limit, query.order) == (("running", "paused"), 100, "asc")
    assert (query.metadata, query.next_token, query.template, query.started_after) == (
        {},
        None,
        None,
        None,
    )


def test_a_template_view_is_not_being_deleted_unless_said() -> None:
    view = TemplateView("base", "default", 1, 512, 0, None, replicas=2, available=2)
    assert view.deleting is False
