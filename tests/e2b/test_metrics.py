"""``GET /metrics``: the cluster's Prometheus metrics on the server's port, without an API key,
as the sandbox-manager serves them (reference §6.1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from e2b import Sandbox
from prometheus_client import CONTENT_TYPE_LATEST

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.backends.base import ClockMode
from pytest_kruise_agents.backends.sim import default_pools_yaml
from pytest_kruise_agents.claiming.errors import ClaimError
from simulator.cluster import Cluster
from tests.prometheus import Scrape

from .conftest import ALICE, Served, serve

BASE = {"namespace": "default", "template": "base"}


def scrape(served: Served, key: str | None = None) -> Scrape:
    r = served.request("GET", "/metrics", key=key)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == CONTENT_TYPE_LATEST
    return Scrape(r.text)


@pytest.mark.parametrize("clock", ["virtual", "realtime"])
def test_an_sdk_create_and_kill_show_in_the_counters(tmp_path: Path, clock: ClockMode) -> None:
    backend = SimBackend.default(seed=2, replicas=2, clock=clock)
    thread, served = serve(tmp_path, backend=backend)
    try:
        before = scrape(served)
        assert (
            before.value("sandboxset_available_replicas", namespace="default", sandboxset="base")
            == 2
        )

        sbx = Sandbox.create("base", **served.sdk())
        sbx.kill()

        after = scrape(served)
        assert after.value("sandbox_claim_creation_responses_total", code="201", **BASE) == 1
        assert after.value("sandbox_claim_total", path="e2b", lock_type="update", **BASE) == 1
        assert (
            after.value(
                "sandbox_claim_duration_seconds_count", path="e2b", lock_type="update", **BASE
            )
            == 1
        )
        assert after.value("sandbox_delete_total", namespace="default", result="success") == 1
        assert (
            after.value(
                "sandboxset_sandboxes_claimed_total", namespace="default", sandboxset="base"
            )
            == 1
        )
    finally:
        thread.stop()
        backend.close()


def test_a_refused_create_shows_its_code(server: Served) -> None:
    r = server.request("POST", "/sandboxes", json={"templateID": "nope"})
    assert r.status_code == 400

    s = scrape(server)
    # Under template="": the name is the client's, no pool's (no series per name sent).
    refused = {"namespace": "default", "template": ""}
    assert s.value("sandbox_claim_creation_responses_total", code="400", **refused) == 1


@pytest.mark.parametrize("key", [None, ALICE, "not-a-key"])
def test_metrics_need_no_api_key_and_ignore_one(server: Served, key: str | None) -> None:
    """Upstream serves ``/metrics`` outside the E2B routes' auth: Prometheus scrapes without a key."""
    s = scrape(server, key)

    assert s.types["sandbox_claim_duration_seconds"] == "histogram"


def test_metrics_are_served_on_the_native_path_only(server: Served) -> None:
    """Not an E2B route: there is no ``/kruise/api/metrics`` (upstream registers it once)."""
    assert server.request("GET", "/kruise/api/metrics", key=None).status_code == 404


def _documented() -> dict[str, tuple[str, set[str]]]:
    """docs/server.md's Metrics table: each name's type and labels."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    table = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) < 3:
            continue
        labels = set(re.findall(r"`(\w+)`", cells[2]))
        for name in re.findall(r"`(\w+)`", cells[0]):
            rows[name] = (cells[1], labels)
    return rows


def test_every_family_is_documented_with_its_type_and_labels() -> None:
    """docs/server.md lists each family as a scrape shows it (a counter by its ``_total``
    sample), with the labels of its samples, after calls that count in every family."""
    cluster = Cluster(seed=2)
    cluster.apply(default_pools_yaml(replicas=2))
    cluster.wait_for_pool("base")
    sid = cluster.sandbox_id(cluster.create_sandbox("base"))
    cluster.pause(sid)
    cluster.connect(sid, 60)
    cluster.kill(sid)
    with pytest.raises(ClaimError):
        cluster.create_sandbox("nope")
    s = Scrape(cluster.metrics_text())

    shown = {}
    for family, kind in s.types.items():
        sample = f"{family}_total" if kind == "counter" else family
        suffix = "_count" if kind == "histogram" else ""
        (labels, *_) = s.labels(sample + suffix) or [{}]
        shown[sample] = (kind, set(labels))
    assert _documented() == shown


def test_the_documented_scrape_is_what_the_documented_server_answers(tmp_path: Path) -> None:
    """docs/server.md's example scrape, after three creates from ``base`` on a server whose
    pools hold 2 sandboxes each (the virtual clock, seed 0: the same numbers every run), is
    what ``grep`` of the served text prints. It showed ``base``'s pool empty, which it is not
    by the time the third create is answered: the pool refilled while that create waited for
    its sandbox made on no stock."""
    import httpx
    import yaml

    from pytest_kruise_agents.e2b.app import create_app
    from pytest_kruise_agents.e2b.config import build, parse_config
    from pytest_kruise_agents.e2b.server import ServerThread

    text = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    metrics = text.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    console = metrics.split("```console\n", 1)[1].split("```", 1)[0]
    commands = re.split(r"^\$ ", console, flags=re.MULTILINE)[1:]
    assert len(commands) == 2
    config = {"clock": {"mode": "virtual"}, "sandboxsets": default_pools_yaml(replicas=2)}
    backend, settings = build(parse_config(yaml.safe_load(yaml.safe_dump(config))))
    (key,) = [k.key for k in settings.api_keys if not k.admin]
    try:
        with ServerThread(create_app(backend, settings)) as server:
            for _ in range(3):
                r = httpx.post(
                    server.url + "/v2/sandboxes",
                    headers={"X-API-Key": key},
                    json={"templateID": "base"},
                    timeout=60,
                )
                assert r.status_code == 201, r.text
            served = httpx.get(server.url + "/metrics").text.splitlines()
    finally:
        backend.close()
    for command in commands:
        line, *shown = command.rstrip("\n").split("\n")
        if found := re.search(r"grep -E '([^']+)'", line):
            printed = [s for s in served if re.search(found.group(1), s)]
        else:
            after = re.search(r"grep -A(\d+) '([^']+)'", line)
            assert after, line
            at = next(i for i, s in enumerate(served) if after.group(2) in s)
            printed = served[at : at + 1 + int(after.group(1))]
        assert shown == printed, line
