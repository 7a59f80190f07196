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
import json
from collections.abc import Mapping, Sequence
from typing import Final, Literal, TypeVar

from pytest_kruise_agents.claiming.errors import BadRequestError
from pytest_kruise_agents.claiming.extensions import is_blacklisted

__all__ = [
    "LIST_STATES",
    "MAX_LIST_LIMIT",
    "decode_next_token",
    "encode_next_token",
    "page",
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
    items: Sequence[tuple[str, str, T]],
    *,
    limit: int,
    next_token: str | None = None,
    order: Literal["asc", "desc"] = "asc",
) -> tuple[list[T], str | None]:
    """One page of ``(claim time, sandbox id, item)`` triples and the token of the next page.

    The token names the last item of the page; it is ``None`` on the last page.
    """
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
