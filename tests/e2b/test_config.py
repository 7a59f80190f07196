"""The cluster config file: one error naming the file, the field and the reason; a working build."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_kruise_agents.api.base import format_time
from pytest_kruise_agents.api.keys import ANN_RUNTIME_ACCESS_TOKEN
from pytest_kruise_agents.api.sandboxset import SandboxSet
from pytest_kruise_agents.backends.base import Caller, CreateRequest
from pytest_kruise_agents.claiming.view import sandbox_id
from pytest_kruise_agents.e2b.config import (
    ConfigError,
    build,
    default_config,
    load_config,
    parse_config,
)
from pytest_kruise_agents.e2b.settings import ApiKey
from simulator.cluster import DEFAULT_USER
from simulator.context import DEFAULT_EPOCH

from .conftest import pool_yaml


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"nodes": 0}, "nodes", "at least 1"),
        # Past MAX_NODES the nodes' pod ranges and host IPs are no addresses.
        ({"nodes": 5001}, "nodes", "must be at most 5000 (Kubernetes' supported cluster size)"),
        (
            {"nodes": [{"name": f"n{i}"} for i in range(5001)]},
            "nodes",
            "must list at most 5000 nodes (Kubernetes' supported cluster size), got 5001",
        ),
        ({"nodes": [{"name": "a", "cpu": "-1"}]}, "nodes[0].cpu", "positive CPU"),
        ({"nodes": [{"name": "a", "memory": "lots"}]}, "nodes[0].memory", "invalid quantity"),
        ({"nodes": [{"name": "a", "maxPods": 0}]}, "nodes[0].maxPods", "greater than or equal"),
        ({"nodes": [{"name": "a"}, {"name": "a"}]}, "nodes", "listed twice"),
        ({"nodes": [{"name": "a", "gpus": 1}]}, "nodes[0].gpus", "unknown field"),
        # A node's name and labels follow the API server's rules (ValidateNodeName, labels).
        ({"nodes": [{"name": "Worker 1"}]}, "nodes[0].name", "RFC 1123 subdomain"),
        # (Not "n": PyYAML writes it plain, and kubectl's YAML reads a plain n as false.)
        ({"nodes": [{"name": "w", "labels": {"a b": "c"}}]}, "nodes[0].labels", "invalid key"),
        # A pre-pulled image is one the kubelet can parse (docs/models.md, Nodes).
        ({"nodes": [{"name": "w", "images": ["a", "b c"]}]}, "nodes[0].images[1]", "'b c'"),
        # Other resources: container resource names, and whole GPUs.
        (
            {"nodes": [{"name": "w", "allocatable": {"nvidia.com/gpu": "1.5"}}]},
            "nodes[0].allocatable",
            "nvidia.com/gpu: Invalid value: '1.5': must be an integer",
        ),
        ({"apiKeys": [{"id": "x"}]}, "apiKeys[0].key", "required"),
        ({"apiKeys": [{"key": "k", "team": "a--b"}]}, "apiKeys[0].team", "'--'"),
        ({"apiKeys": [{"key": "k", "team": "Team A"}]}, "apiKeys[0].team", "RFC 1123 namespace"),
        ({"apiKeys": [{"key": "k", "id": "alice smith"}]}, "apiKeys[0].id", "owner label"),
        # Refused before the pools fill, not by the server's settings after.
        (
            {"apiKeys": [{"key": "k", "team": ""}, {"key": "a", "admin": True}]},
            "apiKeys[0].team",
            "must not be empty for a non-admin key",
        ),
        ({"apiKeys": [{"key": "k"}, {"key": "k"}]}, "apiKeys[1].key", "twice"),
        ({"clock": {"mode": "warp"}}, "clock.mode", "'virtual' or 'realtime'"),
        ({"clock": {"speed": 0}}, "clock.speed", "greater than 0"),
        ({"clock": {"speed": 1e308}}, "clock.speed", "less than or equal to 1000000"),
        ({"clock": {"start": "yesterday"}}, "clock.start", "not an RFC 3339 date-time"),
        ({"clock": {"start": "2026-05-01T12:00:00"}}, "clock.start", "not an RFC 3339"),
        (
            {"clock": {"start": "9950-01-01T00:00:00Z"}},
            "clock.start",
            "must be from 1970-01-01T00:00:00Z and before 9900-01-24T23:59:59Z, "
            "got 9950-01-01T00:00:00+00:00",
        ),
        (
            {"clock": {"start": "9900-01-24T23:59:59Z"}},
            "clock.start",
            "before 9900-01-24T23:59:59Z",
        ),
        ({"clock": {"start": "1969-12-31T23:59:59Z"}}, "clock.start", "1970-01-01"),
        # random.Random seeds with abs(): -5 would quietly be seed 5's cluster.
        ({"seed": -5}, "seed", "greater than or equal to 0"),
        ({"profile": "openkruise-9"}, "profile", "unknown profile"),
        ({"latencies": {"pod.create": "soonish"}}, "latencies.pod.create", "invalid"),
        (
            {"latencies": {"watch.lag": "lognormal(median=1ms, p99=1e300)"}},
            "latencies.watch.lag",
            "p99 (1e+300) must be at most 5.49e+34 s",
        ),
        ({"latencies": {"warp.drive": "1s"}}, "latencies.warp.drive", "unknown latency"),
        ({"knobs": {"claim_workers": 0}}, "knobs.claim_workers", "a whole number from 1 to"),
        ({"knobs": {"recycle_grace_s": 1e300}}, "knobs.recycle_grace_s", "(100 years)"),
        # Latencies are not knobs: they have their own mapping, and the cluster its own argument.
        (
            {"knobs": {"latencies": {"pod.create": "1s"}}},
            "knobs.latencies",
            "unknown profile knob 'latencies': set latencies by name in the latencies mapping",
        ),
        # Nor is the profile's identity: a renamed copy would say another profile ran.
        ({"knobs": {"name": "openkruise-v0.3.0"}}, "knobs.name", "the profile's name, not a knob"),
        ({"faults": [{"kind": "meteor"}]}, "faults[0].kind", "Input should be"),
        (
            {"faults": [{"kind": "api_error", "probability": 2}]},
            "faults[0].probability",
            "less than or equal to 1",
        ),
        (
            {"faults": [{"kind": "watch_lag", "selector": {"informer": "manager"}}]},
            "faults[0].selector",
            "informer='manager' names nothing",
        ),
        ({"sandboxsets": "kind: SandboxSet\n"}, "sandboxsets", "apiVersion"),
        (
            {
                "sandboxsets": [
                    pool_yaml("ok", 1),
                    "kind: Pod\napiVersion: v1\nmetadata: {name: p}\n",
                ]
            },
            "sandboxsets[1]",
            "only SandboxSets",
        ),
        ({"sandboxsets": [pool_yaml("bad", -2)]}, "sandboxsets[0]", "spec.replicas"),
        # One pool named twice is a mistake, whichever document states it the second time.
        (
            {"sandboxsets": [pool_yaml("a", 1), pool_yaml("b", 1), pool_yaml("a", 2)]},
            "sandboxsets[2]",
            "SandboxSet/a metadata.name: 'a' is given twice in namespace default "
            "(SandboxSets 1 and 3)",
        ),
        (
            {"sandboxsets": pool_yaml("a", 1) + "---\n" + pool_yaml("a", 2)},
            "sandboxsets",
            "'a' is given twice in namespace default (SandboxSets 1 and 2)",
        ),
        (
            {"nodes": 2, "faults": [{"kind": "node_loss", "selector": {"node": "node-9"}}]},
            "faults[0].selector.node",
            "no node named 'node-9' (nodes: node-1, node-2)",
        ),
        ({"domian": "x"}, "domian", "unknown field"),
    ],
)
def test_each_problem_names_the_file_and_the_field(
    tmp_path: Path, data: dict[str, Any], field: str, reason: str
) -> None:
    path = write(tmp_path, data)

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert info.value.source == str(path)
    assert info.value.field == field
    assert reason.lower() in info.value.reason.lower()
    assert str(info.value).startswith(f"{path}: {field}: ")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"seed": True}, "seed: must be an integer, got the boolean true"),
        ({"seed": 1.0}, "seed: must be an integer, got 1.0"),
        ({"nodes": True}, "nodes: must be an integer or a list, got the boolean true"),
        ({"nodes": "2"}, "nodes: must be an integer or a list, got the text '2'"),
        ({"auth": 1}, "auth: must be a boolean, got 1"),
        ({"auth": "yes"}, "auth: must be a boolean, got the text 'yes'"),
        ({"clock": {"speed": "2"}}, "clock.speed: must be a number, got the text '2'"),
        (
            {"nodes": [{"name": "a", "cpu": True}]},
            "nodes[0].cpu: must be a string, got the boolean true",
        ),
        (
            {"nodes": [{"name": "a", "maxPods": "5"}]},
            "nodes[0].maxPods: must be an integer, got the text '5'",
        ),
        (
            {"nodes": [{"name": "a", "labels": {"x": 1}}]},
            "nodes[0].labels.x: must be a string, got 1",
        ),
        (
            {"apiKeys": [{"key": "k", "admin": "yes"}]},
            "apiKeys[0].admin: must be a boolean, got the text 'yes'",
        ),
    ],
)
def test_a_value_of_the_wrong_kind_is_refused_not_converted(
    tmp_path: Path, data: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, data)

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert str(info.value) == f"{path}: {message}"


def test_quantities_may_be_numbers_as_in_kubernetes(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {"nodes": [{"name": "a", "cpu": 2, "memory": 1073741824}]}))

    assert not isinstance(cfg.nodes, int)
    assert (cfg.nodes[0].cpu, cfg.nodes[0].memory) == ("2", "1073741824")
    assert load_config(write(tmp_path, {"clock": {"speed": 2}})).clock.speed == 2.0


def test_a_file_that_is_not_a_mapping_or_not_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- just\n- a list\n"))
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(write(tmp_path, "a: [unclosed\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_an_unquoted_impossible_start_is_the_fields_error(tmp_path: Path) -> None:
    """YAML's timestamps stay text, as kubectl reads them: the field names the problem."""
    path = write(tmp_path, "clock: {mode: virtual, start: 2026-02-30T00:00:00Z}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.field == "clock.start"
    assert "day is out of range for month" in info.value.reason


def test_a_key_given_twice_is_refused_not_silently_overridden(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="duplicate key 'seed'"):
        load_config(write(tmp_path, "seed: 1\nseed: 2\n"))


def test_a_file_that_is_not_utf8_is_one_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("domain: \u00e9t\u00e9\n".encode("latin-1"))

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert str(info.value) == f"{path}: not UTF-8 text: byte 0xe9 at offset 8"


def test_an_empty_file_is_the_default_config(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == default_config()


def test_a_realtime_server_opens_at_the_wall_clocks_now() -> None:
    """Realtime (the default): dates are the clients' dates, pools filled before the opening.

    ``endAt = now + timeout`` (e2b-protocol.md §2.5) on the client's clock, and
    ``startedAfter`` filters with the client's dates.
    """
    before = datetime.now(UTC)
    backend, _ = build(default_config())
    try:
        now = backend.now()
        assert before - timedelta(seconds=1) <= now <= datetime.now(UTC) + timedelta(seconds=1)
        assert backend.cluster.now > 10  # the pools filled in virtual time before that
    finally:
        backend.close()


def test_a_virtual_server_keeps_its_fixed_reproducible_epoch() -> None:
    """The virtual clock starts at 2026-01-01: the same seed gives the same dates."""
    cfg = parse_config({"clock": {"mode": "virtual"}})
    backend, _ = build(cfg)
    try:
        assert backend.now() == DEFAULT_EPOCH + timedelta(seconds=backend.cluster.now)
    finally:
        backend.close()


@pytest.mark.parametrize("mode", ["virtual", "realtime"])
def test_clock_start_is_the_date_the_server_opens_at(tmp_path: Path, mode: str) -> None:
    """``clock.start`` (RFC 3339, quoted or a YAML timestamp) sets the opening date."""
    path = write(tmp_path, f"clock: {{mode: {mode}, start: 2030-06-01T12:00:00+02:00}}\n")
    cfg = load_config(path)
    assert cfg.clock.start == datetime(2030, 6, 1, 10, tzinfo=UTC)
    built = time.monotonic()
    backend, _ = build(cfg)
    try:
        now = backend.now()
        # A realtime clock (speed 1) moves on from the opening while this thread waits.
        since = time.monotonic() - built if mode == "realtime" else 0.0
        opened = datetime(2030, 6, 1, 10, tzinfo=UTC)
        assert opened - timedelta(seconds=1) <= now <= opened + timedelta(seconds=1 + since)
    finally:
        backend.close()
    quoted = load_config(write(tmp_path, {"clock": {"start": "2030-06-01T10:00:00Z"}}))
    assert quoted.clock.start == datetime(2030, 6, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize("mode", ["virtual", "realtime"])
def test_a_start_just_before_the_clocks_end_opens_there(mode: str) -> None:
    """Every start the field accepts opens the server, the latest too."""
    start = datetime(9900, 1, 24, 23, 59, 58, tzinfo=UTC)
    cfg = parse_config(
        {"clock": {"mode": mode, "start": "9900-01-24T23:59:58Z"}, "sandboxsets": pool_yaml("a", 1)}
    )
    backend, _ = build(cfg)
    try:
        assert start <= backend.now() <= start + timedelta(seconds=1)
    finally:
        backend.close()


def test_the_default_config_builds_ready_pools_and_two_keys() -> None:
    backend, settings = build(default_config())
    try:
        pools = {t.template_id: t for t in backend.templates(Caller(namespace="", user=""))}
        assert set(pools) == {"base", "code-interpreter-v1"}
        assert all(t.available == t.replicas > 0 for t in pools.values())
        assert [k.admin for k in settings.api_keys] == [False, True]
        assert settings.api_keys[0].team == "default"
        assert settings.api_keys[0].key.startswith("e2b_")
        assert backend.clock_mode == "realtime"  # the server's default
    finally:
        backend.close()


def test_the_default_user_key_owns_what_the_clusters_calls_make() -> None:
    """The generated user key's id is the Cluster's default owner, DEFAULT_USER.

    A sandbox made with ``Cluster.create_sandbox`` and no ``user`` then
    belongs to that key (its SDK may connect to it, kill it, list it), as the
    plugin's ``kruise_cluster`` and ``kruise_e2b`` fixtures need; it was owned
    by no key (the key's id was ``"user"``).
    """
    user, admin = default_config().keys()
    assert (user.id, user.team, user.admin) == (DEFAULT_USER, "default", False)
    assert admin.admin


def test_a_full_config_builds_what_it_says(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "seed": 7,
            "profile": "openkruise-v0.3.0",
            "clock": {"mode": "virtual"},
            "nodes": [{"name": "big", "cpu": 32, "memory": "128Gi", "maxPods": 50}],
            "sandboxsets": [pool_yaml("py", 2, namespace="team-a")],
            "apiKeys": [
                {"key": "e2b_a", "id": "a", "team": "team-a"},
                {"key": "e2b_root", "admin": True},
            ],
            "faults": [{"kind": "image_pull_slow", "latency": "5s"}],
            "latencies": {"pod.create": "100ms"},
            "domain": "sandboxes.test",
        },
    )

    backend, settings = build(load_config(path))
    try:
        assert [n.metadata.name for n in backend.list("sbs")] == ["py"]
        assert [f["kind"] for f in backend.faults()] == ["image_pull_slow"]
        assert settings.domain == "sandboxes.test"
        assert settings.key("e2b_a") is not None and settings.key("e2b_a").namespace == "team-a"  # type: ignore[union-attr]
        view = backend.create_sandbox(Caller("team-a", "a"), CreateRequest(template="py"))
        assert view.sandbox_id.startswith("team-a--py-")
    finally:
        backend.close()


def test_a_faults_start_counts_from_the_servers_opening() -> None:
    """docs/server.md, ``faults``: ``start`` (and so the window) counts from when the server opens.

    The pools fill first (some 25 virtual seconds): a fault ``start: 20``
    acts 20 s after the opening, not at 20 s of the pools' filling, which
    has passed by then (so it would act at once, or a window would be over).
    """
    cfg = parse_config(
        {
            "clock": {"mode": "virtual"},
            "faults": [
                {"kind": "pod_kill", "id": "kill", "start": 20, "count": 1},
                {
                    "kind": "node_loss",
                    "id": "loss",
                    "start": "1m",
                    "duration": "30s",
                    "selector": {"node": "node-1"},
                },
                {"kind": "image_pull_slow", "id": "now", "latency": "5s"},
            ],
        }
    )
    backend, _ = build(cfg)
    try:
        opened = backend.cluster.now
        assert opened > 20  # the pools took longer than the kill's start to fill
        windows = {f["id"]: (f["start"], f["duration"], f["fired"]) for f in backend.faults()}
        assert windows == {
            "kill": (opened + 20, None, 0),
            "loss": (opened + 60, 30.0, 0),
            "now": (opened, None, 0),
        }
        backend.advance(19.5)
        assert [f["fired"] for f in backend.faults() if f["id"] == "kill"] == [0]
        backend.advance(1)
        assert [f["fired"] for f in backend.faults() if f["id"] == "kill"] == [1]
    finally:
        backend.close()


def test_a_served_cluster_keeps_its_claim_records_but_no_event_log() -> None:
    """No route reads the event log: a server up for days must not grow it by every claim."""
    backend, _ = build(
        parse_config({"sandboxsets": pool_yaml("a", 1), "clock": {"mode": "virtual"}})
    )
    try:
        backend.cluster.create_sandbox("a")
        assert len(backend.cluster.records) == 1
        assert list(backend.cluster.log) == []
    finally:
        backend.close()


def test_a_served_clusters_envd_tokens_do_not_follow_from_its_seed() -> None:
    """Two servers of one config (same seed) give their sandboxes the same ids, not the same
    tokens: anyone can run the config, so a seeded token would be known to all of them."""

    def first_sandbox() -> tuple[str, str]:
        backend, _ = build(
            parse_config({"sandboxsets": pool_yaml("a", 1), "clock": {"mode": "virtual"}})
        )
        try:
            sbx = backend.cluster.create_sandbox("a")
            return sandbox_id(sbx), sbx.metadata.annotations[ANN_RUNTIME_ACCESS_TOKEN]
        finally:
            backend.close()

    (id_a, token_a), (id_b, token_b) = first_sandbox(), first_sandbox()
    assert id_a == id_b
    assert token_a != token_b
    assert str(uuid.UUID(token_a)) == token_a  # a UUID, as upstream's


def test_a_served_cluster_keeps_the_latest_records_limit_records() -> None:
    """``recordsLimit`` bounds what a long-lived server keeps; ids show how many went before."""
    assert parse_config({}).records_limit == 10_000
    backend, _ = build(
        parse_config(
            {"sandboxsets": pool_yaml("a", 3), "clock": {"mode": "virtual"}, "recordsLimit": 2}
        )
    )
    try:
        for _ in range(3):
            backend.cluster.create_sandbox("a")
        assert [r["id"] for r in backend.records()] == [2, 3]
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (0, "greater than or equal to 1"),
        (True, "must be an integer, got the boolean true"),
        # No sequence holds more: refused before anything is built, not an OverflowError.
        (2**63, "less than or equal to 9223372036854775807"),
    ],
)
def test_a_records_limit_out_of_range_is_refused(value: Any, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"recordsLimit": value})
    assert info.value.field == "recordsLimit"
    assert reason in info.value.reason


def test_no_api_keys_with_auth_on_is_refused() -> None:
    """Every request, the admin API's too, would answer 401: a server no one can use."""
    with pytest.raises(ConfigError) as info:
        parse_config({"apiKeys": []})
    assert (info.value.field, info.value.reason) == (
        "apiKeys",
        "no key can call the server: give at least one, or set auth: false",
    )


def test_an_empty_list_of_nodes_is_refused() -> None:
    with pytest.raises(ConfigError, match=re.escape("nodes: must list at least one node")):
        parse_config({"nodes": []})


def test_empty_lists_mean_none(tmp_path: Path) -> None:
    cfg = parse_config({"sandboxsets": [], "apiKeys": [], "auth": False})
    backend, settings = build(cfg)
    try:
        assert backend.templates(Caller(namespace="", user="")) == []
        assert settings.api_keys == ()
    finally:
        backend.close()


def test_pools_of_one_name_in_two_namespaces_are_two_pools() -> None:
    cfg = parse_config(
        {
            "clock": {"mode": "virtual"},
            "sandboxsets": [pool_yaml("a", 1), pool_yaml("a", 1, namespace="team-b")],
        }
    )
    backend, _ = build(cfg)
    try:
        pools = backend.list("sbs")
        assert all(isinstance(p, SandboxSet) for p in pools)
        assert sorted(
            (p.metadata.namespace, p.metadata.name, p.status.available_replicas)
            for p in pools
            if isinstance(p, SandboxSet)
        ) == [("default", "a", 1), ("team-b", "a", 1)]
    finally:
        backend.close()


def test_a_pool_named_by_generate_name_is_filled_under_the_name_it_gets() -> None:
    pool = pool_yaml("ignored", 2).replace("name: ignored", "generateName: gen-")
    backend, _ = build(parse_config({"clock": {"mode": "virtual"}, "sandboxsets": pool}))
    try:
        (made,) = backend.list("sbs")
        assert isinstance(made, SandboxSet)
        assert made.metadata.name.startswith("gen-")
        assert made.status.available_replicas == 2
    finally:
        backend.close()


def test_one_multi_document_string_holds_several_pools() -> None:
    cfg = parse_config({"sandboxsets": pool_yaml("a", 1) + "---\n" + pool_yaml("b", 1)})
    backend, _ = build(cfg)
    try:
        assert sorted(p.metadata.name for p in backend.list("sbs")) == ["a", "b"]
    finally:
        backend.close()


def test_the_documented_example_config_is_valid() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    (example,) = [b for b in doc.split("```yaml\n")[1:] if b.startswith("seed:")]

    cfg = parse_config(yaml.safe_load(example.split("```")[0]), source="docs/server.md")
    backend, settings = build(cfg)
    try:
        assert [t.template_id for t in backend.templates(Caller("", ""))] == ["base"]
        assert backend.clock_mode == "realtime"
        assert settings.key("e2b_alice_secret") is not None
    finally:
        backend.close()


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"team": "a--b"}, "team: 'a--b' must not contain '--'"),
        ({"team": "Team A"}, "team: invalid value 'Team A': a lowercase RFC 1123 namespace"),
        ({"id": "alice smith"}, "id: invalid value 'alice smith': a label value"),
        ({"id": "a" * 64}, "id: invalid value"),
    ],
)
def test_an_api_key_made_in_python_is_checked_as_the_config_file_is(
    kwargs: dict[str, Any], reason: str
) -> None:
    """The team is the namespace of its sandboxes, the id their owner label."""
    with pytest.raises(ValueError, match=re.escape(reason)):
        ApiKey(key="k", **kwargs)


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (" spaced ", "must not start or end with a space"),
        ("clé-secrète", "must be printable ASCII, as an HTTP header carries it; 'é' at 2"),
        ("tab\tkey", "must be printable ASCII, as an HTTP header carries it; '\\t' at 3"),
        ("\tkey", "must not start or end with a space"),  # HTTP strips tabs as well
        ("del\x7fkey", "must be printable ASCII, as an HTTP header carries it; '\\x7f' at 3"),
        ("ключ", "must be printable ASCII, as an HTTP header carries it; 'к' at 0"),
    ],
)
def test_an_api_key_no_http_client_can_send_is_refused(key: str, reason: str) -> None:
    """A key must travel in the ``X-API-Key`` header as written: else it never authenticates.

    httpx refuses a character past ASCII or a control character in a header, and the
    server strips surrounding spaces, so such a key was accepted and then locked its team
    out. Refused in Python and in the config file alike, naming the key field.
    """
    with pytest.raises(ValueError, match=re.escape(f"key: {reason}")):
        ApiKey(key=key)
    with pytest.raises(ConfigError, match=re.escape(f"apiKeys[0].key: {reason}")):
        parse_config({"apiKeys": [{"key": key}]})
    assert ApiKey(key="e2b_0123 abc~!").key == "e2b_0123 abc~!"


def test_invalid_yaml_is_one_line_naming_the_file_and_the_line(tmp_path: Path) -> None:
    """As ``simulate`` says it: ``<file>:<line>: invalid YAML: <problem>``, no caret, no
    PyYAML ``in "<unicode string>"`` lines."""
    path = write(tmp_path, "seed: 1\n  bad: [\n")

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert str(info.value) == f"{path}:2: invalid YAML: mapping values are not allowed here"
    assert info.value.line == 2
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 5000 + "]" * 5000 + "\n",
        "a:\n" + "".join("  " * i + "b:\n" for i in range(1, 500)),
        "a: &a [*a]\nnodes: *a\n",
    ],
    ids=["brackets", "mappings", "alias"],
)
def test_a_file_nested_too_deeply_is_one_error_not_a_recursion_traceback(
    tmp_path: Path, text: str
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as info:
        load_config(path)

    assert info.value.source == str(path)
    assert "\n" not in str(info.value)
    assert re.search(
        r": invalid YAML: an anchor.s value refers to the anchor itself$|: nested too deeply",
        str(info.value),
    )


def test_pools_in_a_config_file_are_read_as_kubectl_reads_them(tmp_path: Path) -> None:
    """A pool written as a mapping in the file: ``12:30`` is an argument as written (it was
    750), and ``gpu: y`` the boolean kubectl would send, which an annotation refuses."""
    text = """\
sandboxsets:
- apiVersion: agents.kruise.io/v1alpha1
  kind: SandboxSet
  metadata: {name: pool, annotations: {gpu: GPU}}
  spec:
    replicas: 1
    template:
      spec:
        containers: [{name: c, image: busybox, args: [--at, 12:30]}]
"""
    cfg = load_config(write(tmp_path, text))
    assert isinstance(cfg.sandboxsets, list)
    assert cfg.sandboxsets[0]["spec"]["template"]["spec"]["containers"][0]["args"] == [  # type: ignore[index]
        "--at",
        "12:30",
    ]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text.replace("gpu: GPU", "gpu: y")))
    assert info.value.field == "sandboxsets[0]"
    assert "metadata.annotations.gpu: must be a string, got the boolean true" in info.value.reason


def test_a_gpu_pool_fills_on_nodes_declaring_gpus_and_says_why_where_none_do() -> None:
    """Nodes declare extended resources (``allocatable``); a pool asking for a GPU no node
    has is refused at start-up with the scheduler's reason, not a guess at the node count."""
    gpu_pool = pool_yaml("gpu", 2).replace(
        'limits: {cpu: "1", memory: 512Mi}', 'limits: {cpu: "1", memory: 512Mi, nvidia.com/gpu: 1}'
    )
    nodes = [{"name": "g", "allocatable": {"nvidia.com/gpu": 2}, "labels": {"pool": "gpu"}}]
    backend, _ = build(parse_config({"nodes": nodes, "sandboxsets": gpu_pool}))
    try:
        pools = backend.templates(Caller(namespace="", user=""))
        assert [(t.template_id, t.available) for t in pools] == [("gpu", 2)]
    finally:
        backend.close()
    with pytest.raises(ConfigError) as info:
        build(parse_config({"nodes": [{"name": "c"}], "sandboxsets": gpu_pool}))
    assert (
        "a pod of it is unschedulable: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
        in str(info.value)
    )
    assert "too few nodes" not in str(info.value)


def test_a_pool_whose_pods_say_why_they_wait_is_refused_with_that_reason_and_no_guess() -> None:
    """A container that waits (a bad image) is the reason: no hint about the node count."""
    bad = pool_yaml("a", 1).replace("registry.example.com/e2b/a:v1", '"Bad Image"')

    with pytest.raises(ConfigError) as info:
        build(parse_config({"clock": {"mode": "virtual"}, "sandboxsets": [pool_yaml("b", 1), bad]}))

    assert info.value.field == "sandboxsets[1]"
    assert info.value.reason.startswith(
        "SandboxSet default/a: 0/1 available after 600s; a pod of it is not ready: "
        "container sandbox waits, InvalidImageName: "
    )
    assert "too few nodes" not in info.value.reason


def test_a_configured_fault_past_the_clocks_end_is_refused_naming_its_start() -> None:
    cfg = parse_config(
        {
            "clock": {"mode": "virtual"},
            "sandboxsets": [],
            "faults": [{"kind": "pod_kill", "start": 1e15}],
        }
    )

    with pytest.raises(ConfigError) as info:
        build(cfg)

    assert info.value.field == "faults[0].start"
    assert "where the clock stops): a fault starting later could never act" in info.value.reason


def test_a_start_too_near_1970_for_the_pools_fill_is_refused_naming_clock_start() -> None:
    """The pools are made before the opening, and their dates are Unix times: a start
    earlier than 1970 plus the fill would date them before 1970."""
    cfg = parse_config(
        {
            "clock": {"mode": "virtual", "start": "1970-01-01T00:00:00Z"},
            "sandboxsets": pool_yaml("a", 1),
        }
    )

    with pytest.raises(ConfigError) as info:
        build(cfg)

    assert info.value.field == "clock.start"
    assert re.fullmatch(
        r"must be at least (\d+) s after 1970-01-01T00:00:00Z: the pools fill for \1 s "
        r"\(rounded up\) before the opening, and the objects made then carry Unix times, "
        r"which start there; got 1970-01-01T00:00:00Z",
        info.value.reason,
    ), info.value.reason


def test_without_pools_to_fill_the_clock_may_open_at_1970() -> None:
    cfg = parse_config(
        {"clock": {"mode": "virtual", "start": "1970-01-01T00:00:00Z"}, "sandboxsets": []}
    )
    backend, _ = build(cfg)
    try:
        assert backend.now() == datetime(1970, 1, 1, tzinfo=UTC)
        assert backend.epoch >= datetime(1970, 1, 1, tzinfo=UTC)
    finally:
        backend.close()


def test_the_servers_docs_give_the_default_virtual_servers_own_fill_and_clock() -> None:
    """docs/server.md's fill time and its advance example are what ``kruise-agents serve
    --clock virtual`` (seed 0, the default config) does, which is the same every run."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    (about,) = re.findall(
        r"fill in virtual time before it opens \(about (\d+) s for the\s+defaults\)", doc
    )
    advance = re.search(r"-d '\{\"seconds\": (\d+)\}' \$URL/_kruise/clock/advance\n(\{.*\})\n", doc)
    assert advance is not None
    backend, _ = build(parse_config({"clock": {"mode": "virtual"}}))
    try:
        assert int(about) == round(backend.cluster.now)
        backend.advance(float(advance[1]))
        answered = {
            "now": format_time(backend.now()),
            "mode": backend.clock_mode,
            "speed": backend.speed,
            "epoch": format_time(backend.epoch),
            "profile": backend.cluster.profile.summary(),
        }
        assert json.loads(advance[2]) == answered
    finally:
        backend.close()
