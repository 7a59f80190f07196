"""Specification of the ``GET /v2/sandboxes`` rules: filters, order, page tokens (§6.7)."""

from __future__ import annotations

import base64

import pytest

from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.listing import (
    decode_next_token,
    encode_next_token,
    page,
    validate_list_query,
)

ITEMS = [(f"2026-01-01T00:00:0{i}Z", f"ns--s{i}", i) for i in (3, 1, 2, 0)]


def test_token_round_trips_and_legacy_tokens_are_raw_keys() -> None:
    token = encode_next_token("2026-01-01T00:00:00Z", "ns--a")
    assert decode_next_token(token) == ("2026-01-01T00:00:00Z", "ns--a")
    assert decode_next_token("2026-01-01T00:00:00Z") == ("2026-01-01T00:00:00Z", "")
    assert base64.urlsafe_b64decode(token).startswith(b'{"key":')


def test_pages_walk_the_claim_order_and_the_last_page_has_no_token() -> None:
    first, token = page(ITEMS, limit=3)
    assert first == [0, 1, 2]
    assert token is not None
    rest, token = page(ITEMS, limit=3, next_token=token)
    assert (rest, token) == ([3], None)


def test_descending_order_walks_backwards() -> None:
    first, token = page(ITEMS, limit=2, order="desc")
    assert first == [3, 2]
    rest, token = page(ITEMS, limit=2, next_token=token, order="desc")
    assert (rest, token) == ([1, 0], None)


def test_ties_on_claim_time_break_by_id() -> None:
    items = [("t", "b", "B"), ("t", "a", "A")]
    assert page(items, limit=10) == (["A", "B"], None)


@pytest.mark.parametrize(
    ("states", "metadata", "limit", "field"),
    [
        (("dead",), {}, 10, "state"),
        ((), {"agents.kruise.io/owner": "x"}, 10, "metadata"),
        ((), {"e2b.agents.kruise.io/image": "x"}, 10, "metadata"),
        ((), {}, 0, "limit"),
        ((), {}, 101, "limit"),
    ],
)
def test_bad_filters_answer_400_naming_the_field(
    states: tuple[str, ...], metadata: dict[str, str], limit: int, field: str
) -> None:
    with pytest.raises(BadRequestError) as err:
        validate_list_query(states, metadata, limit)
    assert err.value.code == 400
    assert err.value.message.startswith(field)


def test_states_default_to_running_and_paused() -> None:
    assert validate_list_query((), {"k": "v"}, 100) == ("running", "paused")
    assert validate_list_query(("paused",), {}, 1) == ("paused",)
