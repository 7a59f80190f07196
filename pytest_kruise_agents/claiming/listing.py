"""``GET /v2/sandboxes``: the list filters, ordering and page tokens (reference §6.7).

Upstream validates the ``state`` filter (only ``running``/``paused``), refuses
reserved-prefix metadata keys and a ``limit`` outside 1…100 (all 400), sorts by
the claim-timestamp string then the sandbox id, and pages with a token that is
base64url of ``{"key": <claim time>, "id": <sandbox id>}`` (a legacy token is
the raw key). ``order=desc`` (which the E2B SDK may send) walks the same order
backwards.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, TypeVar

from pytest_kruise_agents.api.base import format_time
from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.extensions import is_blacklisted
from pytest_kruise_agents.claiming.timeouts import truncate

__all__ = [
    "LIST_STATES",
    "MAX_LIST_LIMIT",
    "decode_next_token",
    "encode_next_token",
    "page",
    "started_after_key",
    "validate_list_query",
]

LIST_STATES: Final = ("running", "paused")
"""The states ``GET /v2/sandboxes`` accepts and lists by default."""
MAX_LIST_LIMIT: Final = 100

T = TypeVar("T")


def encode_next_token(key: str, sid: str) -> str:
    """The list page token: base64url of ``{"key":<claim time>,"id":<sandbox id>}``."""
    raw = json.dumps({"key": key, "id": sid}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode()


def decode_next_token(token: str) -> tuple[str, str]:
    """``(key, id)`` of a page token; a legacy token is the raw key (id ``""``)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (ValueError, binascii.Error):
        return token, ""
    if isinstance(data, dict) and isinstance(data.get("key"), str):
        return data["key"], str(data.get("id") or "")
    return token, ""


def started_after_key(started_after: datetime) -> str:
    """The earliest claim timestamp (as stored: UTC, whole seconds) listed ``startedAfter``
    ``started_after`` (inclusive, e2b-protocol.md §8): the instant rounded up to a whole second.

    A claim stamped ``...:35Z`` started at 35 s: ``startedAfter=...:35.9Z`` excludes it (35 s
    is before 35.9 s), and ``...:35Z`` includes it. (A naive ``started_after`` is UTC.)
    """
    instant = started_after if started_after.tzinfo else started_after.replace(tzinfo=UTC)
    whole = truncate(instant)
    if whole < instant:
        whole += timedelta(seconds=1)
    return format_time(whole)


def validate_list_query(
    states: Sequence[str], metadata: Mapping[str, str], limit: int
) -> tuple[str, ...]:
    """Check the filters as upstream does; return the states to list (default both)."""
    wanted = tuple(states) if states else LIST_STATES
    for state in wanted:
        if state not in LIST_STATES:
            raise BadRequestError(
                f"state: invalid state {state!r}, expected running or paused", field="state"
            )
    for key in metadata:
        if is_blacklisted(key):
            raise BadRequestError(f"metadata: key {key!r} uses a reserved prefix", field="metadata")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise BadRequestError(
            f"limit: must be between 1 and {MAX_LIST_LIMIT}, got {limit}", field="limit"
        )
    return wanted


def page(
    items: Iterable[tuple[str, str, T]],
    *,
    limit: int,
    next_token: str | None = None,
    order: Literal["asc", "desc"] = "asc",
    keep: Callable[[T], bool] | None = None,
) -> tuple[list[T], str | None]:
    """One page of ``(claim time, sandbox id, item)`` triples and the token of the next page.

    The token names the last item of the page; it is ``None`` on the last page.
    ``keep`` (when given) is a filter asked of items in page order, and only of
    as many as the page needs (up to the first ``limit + 1`` it keeps): a caller
    passes its costly filters here rather than ask them of every item.

    The answer is that of sorting every item and slicing after the cursor, but
    a page selects its ``limit + 1`` first items with ``heapq`` (about one
    comparison per item) instead of sorting all n (n log n of them): a client
    pages through n items in n/limit pages, each over all n.
    """
    if limit < 1:
        raise BadRequestError(
            f"limit: must be between 1 and {MAX_LIST_LIMIT}, got {limit}", field="limit"
        )
    desc = order == "desc"
    rows = _after_cursor(items, next_token, desc=desc)
    chosen = _first_kept(rows, limit + 1, keep, desc=desc)
    if len(chosen) <= limit:
        return [row[3] for row in chosen], None
    last = chosen[limit - 1]
    return [row[3] for row in chosen[:limit]], encode_next_token(last[0], last[1])


def _after_cursor(
    items: Iterable[tuple[str, str, T]], next_token: str | None, *, desc: bool
) -> list[tuple[str, str, int, T]]:
    """The items past the cursor, as ``(key, id, rank, item)`` rows in page order.

    ``rank`` makes rows unique and keeps items of equal ``(key, id)`` in their
    given order (as a stable sort does, ascending or descending), so that rows
    compare without ever comparing items.
    """
    sign = -1 if desc else 1
    if not next_token:
        return [(key, sid, sign * pos, item) for pos, (key, sid, item) in enumerate(items)]
    cursor = decode_next_token(next_token)
    if desc:
        return [
            (key, sid, -pos, item)
            for pos, (key, sid, item) in enumerate(items)
            if (key, sid) < cursor
        ]
    return [
        (key, sid, pos, item) for pos, (key, sid, item) in enumerate(items) if (key, sid) > cursor
    ]


def _first_kept(
    rows: list[tuple[str, str, int, T]],
    count: int,
    keep: Callable[[T], bool] | None,
    *,
    desc: bool,
) -> list[tuple[str, str, int, T]]:
    """The first ``count`` rows in page order whose item ``keep`` keeps.

    Rows are taken in batches (``heapq`` selection, linear in ``len(rows)``);
    a batch that ``keep`` thins out is followed by one twice as big, so a
    filter that keeps few rows costs a few passes rather than one per row.
    """
    first = heapq.nlargest if desc else heapq.nsmallest
    if keep is None:
        return first(count, rows)
    out: list[tuple[str, str, int, T]] = []
    want = count
    while rows:
        batch = first(want, rows)
        for row in batch:
            if keep(row[3]):
                out.append(row)
                if len(out) == count:
                    return out
        if len(batch) < want:
            break
        last = batch[-1]
        rows = [row for row in rows if row < last] if desc else [row for row in rows if row > last]
        want *= 2
    return out
