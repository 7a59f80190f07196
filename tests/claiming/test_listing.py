"""Specification of the ``GET /v2/sandboxes`` rules: filters, order, page tokens (§6.7)."""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.listing import (
    decode_next_token,
    encode_next_token,
    page,
    started_after_key,
    validate_list_query,
)
from pytest_kruise_agents.claiming.view import e2b_state

from .builders import NOW, make_sandbox

T = TypeVar("T")

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


@pytest.mark.parametrize(
    ("started_after", "key"),
    [
        (datetime(2026, 1, 1, 0, 0, 35, tzinfo=UTC), "2026-01-01T00:00:35Z"),
        (datetime(2026, 1, 1, 0, 0, 35, 900_000, tzinfo=UTC), "2026-01-01T00:00:36Z"),
        (datetime(2026, 1, 1, 0, 0, 35, 1, tzinfo=UTC), "2026-01-01T00:00:36Z"),
        (datetime(2026, 1, 1, 0, 0, 59, 500_000, tzinfo=UTC), "2026-01-01T00:01:00Z"),
        (
            datetime(2026, 1, 1, 2, 0, 35, 500_000, tzinfo=timezone(timedelta(hours=2))),
            "2026-01-01T00:00:36Z",
        ),
        (datetime(2026, 1, 1, 0, 0, 35, 500_000), "2026-01-01T00:00:36Z"),
    ],
)
def test_started_after_lists_claims_at_or_after_the_instant(
    started_after: datetime, key: str
) -> None:
    """``startedAfter`` is inclusive (e2b-protocol.md §8) and compared as an instant with the
    claim's whole-second stamp: a claim stamped 35 s started before 35.9 s, so the first
    stamp listed is 36 s; a whole second lists its own second. (Naive: UTC.)"""
    assert started_after_key(started_after) == key


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


# -- the cost of a page ---------------------------------------------------------------------------


def reference_page(
    items: Sequence[tuple[str, str, T]],
    *,
    limit: int,
    next_token: str | None = None,
    order: Literal["asc", "desc"] = "asc",
) -> tuple[list[T], str | None]:
    """The page function as it was (a full sort per page): the answers page() must give."""
    desc = order == "desc"
    ordered = sorted(items, key=lambda item: (item[0], item[1]), reverse=desc)
    if next_token:
        cursor = decode_next_token(next_token)
        if desc:
            ordered = [item for item in ordered if (item[0], item[1]) < cursor]
        else:
            ordered = [item for item in ordered if (item[0], item[1]) > cursor]
    chunk = ordered[:limit]
    token = encode_next_token(chunk[-1][0], chunk[-1][1]) if len(ordered) > limit else None
    return [item[2] for item in chunk], token


CLAIM_TIMES = [f"2026-01-01T00:00:0{i}Z" for i in range(4)]
ORDERS: list[Literal["asc", "desc"]] = ["asc", "desc"]
sandbox_specs = st.tuples(
    st.sampled_from(CLAIM_TIMES),  # few claim times: ties are the rule
    st.sampled_from(["a", "b", "c", "d"]),  # and so are equal (time, id) pairs
    st.sampled_from(["running", "paused", "not-ready", "dead"]),
    st.sampled_from(["x", "y"]),  # the "team" metadata
)
cursors = st.one_of(
    st.none(),
    st.builds(encode_next_token, st.sampled_from(["", *CLAIM_TIMES]), st.sampled_from("abcde")),
    st.sampled_from([*CLAIM_TIMES, "2026-01-01T00:00:01.5Z", "not a token", "e30"]),
)


def _listed_sandbox(pos: int, started: str, state: str, team: str) -> Sandbox:
    return make_sandbox(
        f"s{pos}",
        owned=False,  # claimed: out of its pool
        paused=state == "paused",
        ready=state != "not-ready",
        deleted=state == "dead",
        annotations={"agents.kruise.io/claim-timestamp": started, "team": team},
    )


@given(
    specs=st.lists(sandbox_specs, max_size=14),
    states=st.sampled_from([("running", "paused"), ("running",), ("paused",)]),
    team=st.sampled_from([None, "x", "y"]),
    limit=st.integers(min_value=1, max_value=6),
    order=st.sampled_from(ORDERS),
    cursor=cursors,
)
def test_a_page_answers_as_sorting_everything_did(
    specs: list[tuple[str, str, str, str]],
    states: tuple[str, ...],
    team: str | None,
    limit: int,
    order: Literal["asc", "desc"],
    cursor: str | None,
) -> None:
    """Over random sandboxes, states, metadata filters, limits, orders and cursors, page()
    with the state filter passed as ``keep`` gives the items and token the full sort gave
    (the old way: every state computed, then sorted, then sliced after the cursor)."""
    sandboxes = [_listed_sandbox(pos, t, state, tm) for pos, (t, _, state, tm) in enumerate(specs)]
    ids = [sid for _, sid, _, _ in specs]
    matching = [
        (sbx.metadata.annotations["agents.kruise.io/claim-timestamp"], sid, sbx)
        for sid, sbx in zip(ids, sandboxes, strict=True)
        if team is None or sbx.metadata.annotations["team"] == team
    ]

    def shown(sbx: Sandbox) -> bool:
        return e2b_state(sbx, NOW) in states

    old = reference_page(
        [item for item in matching if shown(item[2])],
        limit=limit,
        next_token=cursor,
        order=order,
    )
    new = page(matching, limit=limit, next_token=cursor, order=order, keep=shown)
    assert [s.metadata.name for s in new[0]] == [s.metadata.name for s in old[0]]
    assert new[1] == old[1]


@given(
    kept=st.lists(st.booleans(), max_size=40),
    limit=st.integers(min_value=1, max_value=5),
    order=st.sampled_from(ORDERS),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_keep_is_asked_only_of_the_page_in_order(
    kept: list[bool], limit: int, order: Literal["asc", "desc"], seed: int
) -> None:
    """``keep`` is asked of items in page order, of none past the (limit+1)-th it keeps:
    a costly filter costs what the page holds, not what the list holds."""
    items = [
        (f"t{random.Random(seed + i).randrange(5)}", f"id{i:02d}", i) for i in range(len(kept))
    ]
    asked: list[int] = []

    def keep(i: int) -> bool:
        asked.append(i)
        return kept[i]

    page(items, limit=limit, order=order, keep=keep)
    in_order = [i for _, _, i in sorted(items, key=lambda x: (x[0], x[1]), reverse=order == "desc")]
    assert asked == in_order[: len(asked)]
    enough = [i for i in in_order if kept[i]][: limit + 1]
    assert asked == (
        in_order[: in_order.index(enough[-1]) + 1] if len(enough) > limit else in_order
    )


class CountedKey(str):
    """A claim time that counts how often it is ordered against another."""

    compared = 0

    def __lt__(self, other: str) -> bool:
        CountedKey.compared += 1
        return str.__lt__(self, other)

    def __gt__(self, other: str) -> bool:
        CountedKey.compared += 1
        return str.__gt__(self, other)

    __hash__ = str.__hash__


@pytest.mark.parametrize("order", ORDERS)
def test_a_page_costs_linear_comparisons_not_a_sort(order: Literal["asc", "desc"]) -> None:
    """A page of 1 from 1000 shuffled items orders claim times about 1000 times (a
    selection), not the ~9000 times a sort takes; with a cursor, about 1000 more."""
    n = 1000
    items = [
        (CountedKey(f"2026-01-01T{i // 60:02d}:{i % 60:02d}:00Z"), f"s{i}", i) for i in range(n)
    ]
    random.Random(3).shuffle(items)
    CountedKey.compared = 0
    first, token = page(items, limit=1, order=order)
    assert first == [0 if order == "asc" else n - 1]
    assert CountedKey.compared < 1.2 * n
    CountedKey.compared = 0
    second, _ = page(items, limit=1, next_token=token, order=order)
    assert second == [1 if order == "asc" else n - 2]
    assert CountedKey.compared < 2.2 * n


def test_a_limit_below_one_is_refused_naming_the_field() -> None:
    """page() itself refuses a limit below 1 (it would have no last item to name)."""
    with pytest.raises(BadRequestError) as err:
        page(ITEMS, limit=0)
    assert err.value.message.startswith("limit")
