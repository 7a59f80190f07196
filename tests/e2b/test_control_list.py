"""Listing sandboxes: metadata and state filters, order, pagination with ``X-Next-Token``."""

from __future__ import annotations

import urllib.parse

import httpx
import pytest
from e2b import Sandbox, SandboxQuery, SandboxState
from e2b.exceptions import SandboxException

from .conftest import ADMIN, ALICE, BOB, CAROL, Served


def make(server: Served, count: int, **metadata: str) -> list[str]:
    """``count`` sandboxes one virtual second apart (distinct start times)."""
    ids = []
    for _ in range(count):
        ids.append(Sandbox.create(template="base", metadata=metadata, **server.sdk()).sandbox_id)
        server.advance(1)
    return ids


def test_list_filters_by_metadata(server: Served) -> None:
    red = make(server, 3, color="red")
    blue = make(server, 1, color="blue")

    found = Sandbox.list(query=SandboxQuery(metadata={"color": "red"}), **server.sdk())

    assert sorted(s.sandbox_id for s in found.next_items()) == sorted(red)
    assert not found.has_next
    only_blue = Sandbox.list(query=SandboxQuery(metadata={"color": "blue"}), **server.sdk())
    assert [s.sandbox_id for s in only_blue.next_items()] == blue


def test_list_filters_by_state(server: Served) -> None:
    first, second, third = make(server, 3)
    Sandbox.pause(second, **server.sdk())

    paused = Sandbox.list(query=SandboxQuery(state=[SandboxState.PAUSED]), **server.sdk())
    running = Sandbox.list(query=SandboxQuery(state=[SandboxState.RUNNING]), **server.sdk())
    both = Sandbox.list(**server.sdk())

    assert [s.sandbox_id for s in paused.next_items()] == [second]
    assert sorted(s.sandbox_id for s in running.next_items()) == sorted([first, third])
    assert len(both.next_items()) == 3


def test_pagination_walks_every_page_with_limit_2(server: Served) -> None:
    # Pools hold 4 sandboxes; the fifth claim creates one on no stock.
    ids = make(server, 5, batch="p")
    paginator = Sandbox.list(query=SandboxQuery(metadata={"batch": "p"}), limit=2, **server.sdk())

    pages = []
    while paginator.has_next:
        pages.append([s.sandbox_id for s in paginator.next_items()])

    assert [len(p) for p in pages] == [2, 2, 1]
    assert [sid for page in pages for sid in page] == ids  # ascending start time, no repeats


def test_the_last_page_has_no_next_token_header(server: Served) -> None:
    make(server, 3)

    first = server.request("GET", "/v2/sandboxes", params={"limit": 2})
    token = first.headers.get("x-next-token")
    last = server.request("GET", "/v2/sandboxes", params={"limit": 2, "nextToken": token})

    assert first.status_code == 200 and len(first.json()) == 2
    assert token
    assert last.status_code == 200 and len(last.json()) == 1
    assert "x-next-token" not in last.headers


def test_order_desc_lists_the_newest_first(server: Served) -> None:
    """Without ``order`` (the SDK then sends none) the list is ascending, as upstream's manager
    sorts it, where E2B's own API lists newest first (docs/fidelity.md)."""
    ids = make(server, 3)

    default = Sandbox.list(query=SandboxQuery(), **server.sdk()).next_items()
    asc = Sandbox.list(query=SandboxQuery(), order="asc", **server.sdk()).next_items()
    desc = Sandbox.list(query=SandboxQuery(), order="desc", **server.sdk()).next_items()

    assert [s.sandbox_id for s in default] == [s.sandbox_id for s in asc] == ids
    assert [s.sandbox_id for s in desc] == ids[::-1]


def test_list_filters_by_template_and_start_time(server: Served) -> None:
    base = make(server, 2)
    ci = Sandbox.create(template="code-interpreter-v1", **server.sdk()).sandbox_id
    cut = Sandbox.get_info(base[1], **server.sdk()).started_at

    by_template = Sandbox.list(query=SandboxQuery(template="code-interpreter-v1"), **server.sdk())
    after = Sandbox.list(query=SandboxQuery(started_after=cut), **server.sdk())

    assert [s.sandbox_id for s in by_template.next_items()] == [ci]
    assert sorted(s.sandbox_id for s in after.next_items()) == sorted([base[1], ci])


def test_metadata_filters_are_decoded_three_times_like_the_sdk_encodes_them(
    server: Served,
) -> None:
    value = "a b&c=d+e%f/g"
    sid = Sandbox.create(template="base", metadata={"note": value}, **server.sdk()).sandbox_id
    make(server, 1, note="other")
    # What the SDK sends: urlencode({quote(k): quote(v)}), encoded once more by httpx.
    encoded = urllib.parse.urlencode({"note": urllib.parse.quote(value)})

    r = server.request("GET", "/v2/sandboxes", params={"metadata": encoded})
    sdk = Sandbox.list(query=SandboxQuery(metadata={"note": value}), **server.sdk())

    assert r.status_code == 200, r.text
    assert [s["sandboxID"] for s in r.json()] == [sid]
    assert [s.sandbox_id for s in sdk.next_items()] == [sid]


def test_unknown_query_keys_are_metadata_filters(server: Served) -> None:
    red = make(server, 2, color="red")
    make(server, 1, color="blue")

    r = server.request("GET", "/v2/sandboxes", params={"color": "red"})

    assert sorted(s["sandboxID"] for s in r.json()) == sorted(red)


def test_a_list_without_limit_returns_pages_of_100(server: Served) -> None:
    """Without ``limit`` a page holds up to 100 sandboxes (the SDK sends none unless given).

    openkruise-agents.md §6.7: "``limit``: 1…100, default 100";
    e2b-protocol.md §2.3: "spec: 1-100, default 100". 101 sandboxes: one full page, then one.
    """
    with httpx.Client(base_url=server.url, headers={"X-API-Key": ALICE}, timeout=30) as http:
        for _ in range(101):  # one client: a new one per request builds an SSL context (~0.1 s)
            r = http.post("/v2/sandboxes", json={"templateID": "base"})
            assert r.status_code == 201, r.text

    paginator = Sandbox.list(**server.sdk())
    first = paginator.next_items()
    assert (len(first), paginator.has_next) == (100, True)
    last = paginator.next_items()
    assert (len(last), paginator.has_next) == (1, False)
    assert len({s.sandbox_id for s in first + last}) == 101


@pytest.mark.parametrize(
    ("state", "listed"),
    [
        ("running,", ["running"]),
        (",running", ["running"]),
        ("paused,,", ["paused"]),
        ("running,,paused", ["paused", "running"]),
        ("", ["paused", "running"]),
        (" , ", ["paused", "running"]),
    ],
)
def test_empty_items_of_state_are_skipped(server: Served, state: str, listed: list[str]) -> None:
    """docs/server.md (Control plane): "empty items of ``state`` are skipped, and any other
    value answers 400"; a ``state`` of empty items only filters nothing."""
    running, paused = make(server, 2)
    Sandbox.pause(paused, **server.sdk())
    ids = {"running": running, "paused": paused}

    r = server.request("GET", "/v2/sandboxes", params={"state": state})

    assert r.status_code == 200, r.text
    assert sorted(s["sandboxID"] for s in r.json()) == sorted(ids[name] for name in listed)


@pytest.mark.parametrize("started_after", ["", "  "])
def test_an_empty_or_blank_started_after_is_taken_as_not_given(
    server: Served, started_after: str
) -> None:
    """docs/server.md (Control plane): "an empty ``startedAfter``, taken as not given" (the
    document publishes it as the pattern ``^\\s*$``): every sandbox is listed, no 400."""
    ids = make(server, 2)

    r = server.request("GET", "/v2/sandboxes", params={"startedAfter": started_after})

    assert r.status_code == 200, r.text
    assert [s["sandboxID"] for s in r.json()] == ids


def test_listed_items_carry_every_required_field(server: Served) -> None:
    make(server, 1)

    (item,) = server.request("GET", "/v2/sandboxes").json()

    required = {"templateID", "sandboxID", "clientID", "startedAt", "endAt", "cpuCount"}
    required |= {"memoryMB", "diskSizeMB", "state", "envdVersion"}
    assert required <= item.keys()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"state": "running,sleeping"}, "state"),
        ({"order": "sideways"}, "order"),
        ({"startedAfter": "yesterday"}, "startedAfter"),
        ({"startedAfter": "1e-308"}, "startedAfter"),
        ({"": "x"}, "metadata"),
        ({"metadata": "novalue"}, "metadata"),
        ({"metadata": "agents.kruise.io%2Fowner%3Dx"}, "metadata"),
    ],
)
def test_bad_list_queries_are_400_naming_the_parameter(
    server: Served, params: dict[str, object], field: str
) -> None:
    r = server.request("GET", "/v2/sandboxes", params=params)

    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(f"{field}: ")


def test_the_sdk_reports_a_bad_query(server: Served) -> None:
    with pytest.raises(SandboxException) as info:
        Sandbox.list(limit=500, **server.sdk()).next_items()
    assert str(info.value).startswith("400: limit")


def test_a_key_lists_only_its_own_sandboxes(server: Served) -> None:
    make(server, 2)

    for key in (BOB, CAROL, ADMIN):
        assert Sandbox.list(**server.sdk(key)).next_items() == []
    assert len(Sandbox.list(**server.sdk()).next_items()) == 2


# --------------------------------------------------------------------------- the list right after a write


def test_a_killed_sandbox_leaves_the_list_at_once(server: Served) -> None:
    """On the virtual clock a kill is answered once the manager's cache has seen it.

    Before, the list (read from that cache) kept showing the sandbox as running,
    while ``get_info`` answered 404, until something moved the clock.
    """
    kept = Sandbox.create(template="base", **server.sdk())
    killed = Sandbox.create(template="base", **server.sdk())

    killed.kill()

    listed = Sandbox.list(**server.sdk()).next_items()
    assert [(s.sandbox_id, s.state) for s in listed] == [(kept.sandbox_id, SandboxState.RUNNING)]


def test_a_new_timeout_shows_in_the_list_at_once(server: Served) -> None:
    """The list shows the sandbox with its new end at once (before, it left the list)."""
    other = Sandbox.create(template="base", **server.sdk())
    sbx = Sandbox.create(template="base", **server.sdk())

    sbx.set_timeout(3000)

    listed = {s.sandbox_id: s.end_at for s in Sandbox.list(**server.sdk()).next_items()}
    assert listed == {
        other.sandbox_id: other.get_info().end_at,
        sbx.sandbox_id: sbx.get_info().end_at,
    }
    assert listed[sbx.sandbox_id] > listed[other.sandbox_id]


def test_a_resumed_sandbox_is_listed_running_at_once(server: Served) -> None:
    """The deprecated ``/resume`` waits for the cache like connect does."""
    sbx = Sandbox.create(template="base", **server.sdk())
    sbx.pause()

    r = server.request("POST", f"/sandboxes/{sbx.sandbox_id}/resume", json={"timeout": 600})

    assert r.status_code == 204, r.text
    listed = Sandbox.list(**server.sdk()).next_items()
    assert [(s.sandbox_id, s.state) for s in listed] == [(sbx.sandbox_id, SandboxState.RUNNING)]


def test_empty_pairs_of_a_metadata_filter_are_skipped(server: Served) -> None:
    """Go's query parsing skips empty ``&``-separated pairs: ``color=red&`` filters on color."""
    red = make(server, 2, color="red")
    make(server, 1, color="blue")

    r = server.request("GET", "/v2/sandboxes", params={"metadata": "&color=red&"})

    assert r.status_code == 200, r.text
    assert sorted(s["sandboxID"] for s in r.json()) == sorted(red)


def test_a_metadata_filter_with_an_empty_key_is_400_naming_metadata(server: Served) -> None:
    make(server, 1, color="red")

    r = server.request("GET", "/v2/sandboxes", params={"metadata": "=red"})

    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("metadata: invalid filter")


def test_an_unencoded_plus_of_a_started_after_offset_is_read_as_plus(server: Served) -> None:
    """``startedAfter=...+00:00`` sent unencoded arrives as a space; it is the offset's ``+``."""
    ids = make(server, 2)

    r = server.request("GET", "/v2/sandboxes?startedAfter=2000-01-01T00:00:00+00:00")

    assert r.status_code == 200, r.text
    assert [s["sandboxID"] for s in r.json()] == ids


def test_an_empty_template_filter_is_taken_as_not_given(server: Served) -> None:
    ids = make(server, 2)

    r = server.request("GET", "/v2/sandboxes", params={"template": ""})

    assert r.status_code == 200, r.text
    assert [s["sandboxID"] for s in r.json()] == ids
