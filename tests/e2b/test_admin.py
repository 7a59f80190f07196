"""The admin API under /_kruise: resources, faults, latency, clock and records, behind the admin key."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from e2b import Sandbox
from e2b.exceptions import SandboxException
from fastapi.routing import APIRoute

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.e2b import admin

from .conftest import ALICE, Served, pool_yaml, serve


def test_apply_a_sandboxset_and_claim_from_it(server: Served) -> None:
    r = server.admin("POST", "/apply", content=pool_yaml("py312", 2).encode())

    assert r.status_code == 200, r.text
    (applied,) = r.json()["items"]
    assert applied["kind"] == "SandboxSet"
    assert applied["metadata"]["name"] == "py312"
    server.advance(60)  # the pool fills
    pool = server.admin("GET", "/resources/sandboxsets/default/py312").json()
    assert pool["status"]["availableReplicas"] == 2
    assert Sandbox.create(template="py312", **server.sdk()).sandbox_id.startswith("default--py312-")


def test_apply_takes_json_too(server: Served) -> None:
    doc = {
        "apiVersion": "agents.kruise.io/v1alpha1",
        "kind": "SandboxSet",
        "metadata": {"name": "from-json", "namespace": "other"},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [{"name": "c", "image": "python:3.12"}]}},
        },
    }

    r = server.admin("POST", "/apply", content=json.dumps(doc).encode())

    assert r.status_code == 200, r.text
    assert server.admin("GET", "/resources/sbs/other/from-json").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            "kind: SandboxSet\napiVersion: agents.kruise.io/v1alpha1\nmetadata: {name: x}\n"
            "spec: {replicas: -1}",
            "SandboxSet/x spec.replicas",
        ),
        ("kind: Nope\napiVersion: v1\nmetadata: {name: x}", "kind"),
        ("{{{", "manifest"),
        ("", "body"),
    ],
)
def test_a_bad_manifest_is_400_naming_the_field_and_applies_nothing(
    server: Served, body: str, field: str
) -> None:
    before = server.admin("GET", "/resources/sbs").json()["items"]

    r = server.admin("POST", "/apply", content=body.encode())

    assert r.status_code == 400, r.text
    assert field in r.json()["message"]
    assert server.admin("GET", "/resources/sbs").json()["items"] == before


def test_an_apply_whose_body_is_not_utf8_is_400_and_applies_nothing(server: Served) -> None:
    """Manifests are read as kubectl reads YAML: a Latin-1 byte is refused, not stored as
    U+FFFD (the control plane's JSON bodies are read as Go reads them; an apply is no such)."""
    body = (
        pool_yaml("enc", 0)
        .encode()
        .replace(b"metadata:\n", b'metadata:\n  annotations: {note: "caf\xe9"}\n', 1)
    )
    offset = body.index(b"\xe9")

    r = server.admin("POST", "/apply", content=body)

    assert r.status_code == 400, r.text
    assert r.json()["field"] == "body"
    assert r.json()["message"] == f"body: not UTF-8 text: byte 0xe9 at offset {offset}"
    assert server.admin("GET", "/resources/sbs/default/enc").status_code == 404


@pytest.mark.parametrize("body", [b"", b"  \n\t\n"])
def test_an_apply_of_nothing_but_blanks_is_400_naming_the_body(server: Served, body: bytes) -> None:
    r = server.admin("POST", "/apply", content=body)

    assert r.status_code == 400, r.text
    assert r.json()["field"] == "body"
    assert r.json()["message"] == "body: empty; send YAML or JSON manifests"


def test_applying_a_stale_resource_version_is_409_and_changes_nothing(server: Served) -> None:
    """kubectl's optimistic lock: a manifest with an old resourceVersion is a conflict."""
    (stored,) = [
        p
        for p in server.admin("GET", "/resources/sbs").json()["items"]
        if p["metadata"]["name"] == "base"
    ]
    stale = {**stored, "metadata": {**stored["metadata"], "resourceVersion": "1"}}
    stale["spec"] = {**stored["spec"], "replicas": 7}

    r = server.admin("POST", "/apply", content=json.dumps(stale).encode())

    assert r.status_code == 409, r.text
    assert r.json()["field"] == "SandboxSet/base metadata.resourceVersion"
    (after,) = [
        p
        for p in server.admin("GET", "/resources/sbs").json()["items"]
        if p["metadata"]["name"] == "base"
    ]
    assert after["spec"]["replicas"] == stored["spec"]["replicas"]


def test_a_dump_of_another_object_is_not_applied(server: Served) -> None:
    """A manifest naming another uid is a 409 (the UID precondition); one carrying a
    resourceVersion for an object that does not exist is a 400: neither writes."""
    (stored,) = [
        p
        for p in server.admin("GET", "/resources/sbs").json()["items"]
        if p["metadata"]["name"] == "base"
    ]
    other = {**stored, "metadata": {**stored["metadata"], "uid": "not-the-stored-uid"}}
    del other["metadata"]["resourceVersion"]
    r = server.admin("POST", "/apply", content=json.dumps(other).encode())
    assert r.status_code == 409, r.text
    assert r.json()["field"] == "SandboxSet/base metadata.uid"

    gone = {**stored, "metadata": {**stored["metadata"], "name": "gone"}}
    del gone["metadata"]["uid"]
    r = server.admin("POST", "/apply", content=json.dumps(gone).encode())
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "SandboxSet/gone metadata.resourceVersion"
    names = [p["metadata"]["name"] for p in server.admin("GET", "/resources/sbs").json()["items"]]
    assert "gone" not in names


def test_list_resources_as_json_yaml_and_table(server: Served) -> None:
    Sandbox.create(template="base", **server.sdk())

    as_json = server.admin("GET", "/resources/sbs", params={"namespace": "default"}).json()
    as_yaml = server.admin("GET", "/resources/SandboxSet", params={"format": "yaml"})
    table = server.admin("GET", "/resources/sbx", params={"format": "table"})

    assert as_json["kind"] == "List"
    assert [o["metadata"]["name"] for o in as_json["items"]] == ["base", "code-interpreter-v1"]
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    assert "kind: List" in as_yaml.text
    assert table.headers["content-type"].startswith("text/plain")
    header = table.text.splitlines()[0].split()
    assert header[:2] == ["NAMESPACE", "NAME"]
    sandboxes = server.admin("GET", "/resources/sbx").json()["items"]
    assert len(table.text.splitlines()) == 1 + len(sandboxes)
    assert len(sandboxes) >= 8  # both pools, and the claimed one
    assert (
        server.admin("GET", "/resources/sandboxes", params={"namespace": "other"}).json()["items"]
        == []
    )
    # An empty namespace= is no namespace given: all of them, as omitting it.
    everywhere = server.admin("GET", "/resources/sbx", params={"namespace": ""}).json()["items"]
    assert everywhere == sandboxes


def sorted_everywhere(value: object) -> bool:
    if isinstance(value, dict):
        return list(value) == sorted(value) and all(map(sorted_everywhere, value.values()))
    if isinstance(value, list):
        return all(map(sorted_everywhere, value))
    return True


def test_resources_read_with_keys_sorted_as_kubectl_prints_them(server: Served) -> None:
    """kubectl get -o json prints Go maps: the List's keys and every object's, at every level."""
    server.advance(30)
    listed = server.admin("GET", "/resources/pods").json()
    got = server.admin("GET", "/resources/sbs/default/base").json()

    assert list(listed) == ["apiVersion", "items", "kind", "metadata"]
    assert listed["items"] and sorted_everywhere(listed)
    assert sorted_everywhere(got) and next(iter(got["metadata"])) == "creationTimestamp"


def test_get_and_delete_one_resource(server: Served) -> None:
    got = server.admin("GET", "/resources/sbs/default/base")
    deleted = server.admin("DELETE", "/resources/sbs/default/base")
    again = server.admin("GET", "/resources/sbs/default/base")

    assert got.status_code == 200 and got.json()["spec"]["replicas"] == 4
    assert deleted.status_code == 200
    assert deleted.json()["details"] == {
        "kind": "SandboxSet",
        "namespace": "default",
        "name": "base",
    }
    assert again.status_code == 404
    assert again.json()["message"] == "SandboxSet default/base not found"
    assert server.admin("DELETE", "/resources/sbs/default/base").status_code == 404


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("kind", ["sbs", "sbx", "pods"])
def test_an_absent_object_is_404_naming_name_and_changes_nothing(
    server: Served, method: str, kind: str
) -> None:
    """As an unknown ``{kind}`` names ``kind`` and an unknown latency ``name``: the path's
    ``{name}`` is what names nothing, and the error says so in ``field``."""
    before = server.admin("GET", f"/resources/{kind}").json()

    r = server.admin(method, f"/resources/{kind}/default/nope")

    assert r.status_code == 404, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["field"] == "name"
    assert r.json()["message"].endswith(" default/nope not found")
    assert server.admin("GET", f"/resources/{kind}").json() == before


def test_deleting_a_sandboxs_pod_is_refused_by_the_webhook_403_and_changes_nothing(
    server: Served,
) -> None:
    """Only the Sandbox controller may delete a sandbox's pod (reference §4, pod_delete.go):
    the admin API is the user, so the webhook's denial is a 403 and the pod stays."""
    name = server.admin("GET", "/resources/sbx").json()["items"][0]["metadata"]["name"]
    before = server.admin("GET", f"/resources/pods/default/{name}").json()

    r = server.admin("DELETE", f"/resources/pods/default/{name}")

    assert r.status_code == 403
    assert r.json()["message"].startswith(
        'admission webhook "vpod-delete.agents.kruise.io" denied the request: '
    )
    after = server.admin("GET", f"/resources/pods/default/{name}").json()
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_an_unknown_kind_is_404_naming_the_known_ones(server: Served) -> None:
    r = server.admin("GET", "/resources/widgets")

    assert r.status_code == 404
    assert "sbs" in r.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/resources/deployments"),
        ("GET", "/resources/deployments?format=table"),
        ("GET", "/resources/widgets/default/base"),
        ("DELETE", "/resources/widgets/default/base"),
    ],
)
def test_an_unknown_kind_is_a_resource_path_not_served_404_on_every_route(
    server: Served, method: str, path: str
) -> None:
    """As the API server answers a resource it does not serve (404), naming ``kind``; nothing changes."""
    r = server.admin(method, path)

    assert r.status_code == 404, r.text
    assert r.json()["field"] == "kind"
    assert r.json()["message"].startswith("the server doesn't have a resource type ")
    assert server.admin("GET", "/resources/sbs/default/base").status_code == 200


def test_the_unknown_kinds_404_is_documented_apart_from_bad_input() -> None:
    """docs/server.md says "bad input answers 400": an unknown ``{kind}`` is the documented exception."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()
    text = " ".join(doc.split())

    assert (
        "Any other `{kind}` is a resource path the server does not serve, and answers 404" in text
    )


def test_the_admin_api_needs_the_admin_key(server: Served) -> None:
    assert server.request("GET", "/_kruise/clock", key=None).status_code == 401
    assert server.request("GET", "/_kruise/clock", key="e2b_nope").status_code == 401
    forbidden = server.request("POST", "/_kruise/clock/advance", key=ALICE, json={"seconds": 9})
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == 403


def test_faults_inject_list_and_clear(server: Served) -> None:
    r = server.admin(
        "POST",
        "/faults",
        json={"kind": "runtime_init_failure", "selector": {"template": "base"}},
    )
    assert r.status_code == 201, r.text
    fault = r.json()
    assert fault["kind"] == "runtime_init_failure" and fault["id"]
    assert [f["id"] for f in server.admin("GET", "/faults").json()] == [fault["id"]]

    with pytest.raises(SandboxException) as info:
        Sandbox.create(
            template="base",
            metadata={"e2b.agents.kruise.io/claim-timeout-seconds": "3"},
            **server.sdk(),
        )
    assert str(info.value).startswith("500: ")

    assert server.admin("DELETE", f"/faults/{fault['id']}").status_code == 204
    assert server.admin("GET", "/faults").json() == []
    assert server.admin("DELETE", f"/faults/{fault['id']}").status_code == 404
    server.advance(30)  # the pool refills after the failed attempts
    assert Sandbox.create(template="base", **server.sdk()).sandbox_id


def test_clearing_an_unknown_fault_is_404_naming_fault_id_and_clears_nothing(
    server: Served,
) -> None:
    """The path's ``{fault_id}`` names no fault in force: 404, field ``fault_id``."""
    kept = server.admin("POST", "/faults", json={"kind": "api_conflict", "probability": 0}).json()

    r = server.admin("DELETE", "/faults/nope")

    assert r.status_code == 404, r.text
    assert r.json()["field"] == "fault_id"
    assert r.json()["message"] == "Fault nope not found"
    assert [f["id"] for f in server.admin("GET", "/faults").json()] == [kept["id"]]


def test_a_faults_latency_reads_back_as_text_it_can_be_sent_again(server: Served) -> None:
    """A fault's latency is listed as the latency table lists one, in its text form (not a
    mapping of parameters), and that text injects the same fault again."""
    sent = {"kind": "watch_lag", "latency": {"kind": "uniform", "low": 0.1, "high": 0.25}}
    made = server.admin("POST", "/faults", json=sent)
    assert made.status_code == 201, made.text
    assert made.json()["latency"] == "uniform(100ms, 250ms)"
    (listed,) = server.admin("GET", "/faults").json()
    assert listed["latency"] == "uniform(100ms, 250ms)"

    again = server.admin(
        "POST", "/faults", json={"kind": "watch_lag", "latency": listed["latency"]}
    )
    assert again.status_code == 201, again.text
    assert again.json()["latency"] == listed["latency"]
    server.admin("DELETE", "/faults")


def test_clear_all_faults(server: Served) -> None:
    for kind in ("api_conflict", "watch_lag"):
        body = {"kind": kind, "probability": 0.5}
        if kind == "watch_lag":
            body["latency"] = "1s"
        assert server.admin("POST", "/faults", json=body).status_code == 201

    assert server.admin("DELETE", "/faults").status_code == 204
    assert server.admin("GET", "/faults").json() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "meteor_strike"}, "kind"),
        ({"kind": "api_error", "probability": 7}, "probability"),
        ({"probability": 1}, "kind"),
        ({"kind": "watch_lag", "selector": {"informer": "manager"}}, "selector"),
        ({"kind": "pod_kill", "selector": {"verb": "update"}}, "selector"),
        # Ids name faults in DELETE /_kruise/faults/{id}: one that no path can carry is
        # refused ("." was rewritten by clients to DELETE /_kruise/faults: clear all).
        ({"kind": "api_error", "id": "a/b"}, "id"),
        ({"kind": "api_error", "id": "."}, "id"),
        ({"kind": "api_error", "id": ".."}, "id"),
        ({"kind": "api_error", "id": "with space"}, "id"),
        # Past the clock's end (9900-01-24T23:59:59Z): a fault that could never act.
        ({"kind": "pod_kill", "start": 1e300}, "start"),
        ({"kind": "node_loss", "start": 60, "duration": 1e15}, "duration"),
    ],
)
def test_a_bad_fault_is_400(server: Served, body: dict[str, object], field: str) -> None:
    r = server.admin("POST", "/faults", json=body)

    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(field)
    assert server.admin("GET", "/faults").json() == []


def test_latency_can_be_replaced(server: Served) -> None:
    ok = server.admin("PUT", "/latency/image.pull", json={"value": "exp(2s)"})

    assert ok.status_code == 200 and ok.json() == {"name": "image.pull", "value": "exp(2s)"}
    assert server.admin("GET", "/latency/image.pull").json()["value"] == "exp(2s)"


def test_a_put_of_an_unknown_latency_is_404_naming_name_as_get_and_delete_answer(
    server: Served,
) -> None:
    r = server.admin("PUT", "/latency/teleport", json={"value": "1s"})

    assert r.status_code == 404, r.text
    assert r.json()["field"] == "name"
    assert r.json()["message"] == server.admin("GET", "/latency/teleport").json()["message"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("soonish", "value: invalid latency 'soonish': expected a duration"),
        # Every parameter finite, but the draws and the mean not: it wedged the cluster
        # (its controllers died of an OverflowError) and every later call answered 500.
        (
            "lognormal(median=1ms, p99=1e300)",
            "value: invalid latency 'lognormal(median=1ms, p99=1e300)': p99 (1e+300) must be "
            "at most 5.49e+34 s",
        ),
    ],
    ids=["malformed", "draws-past-a-float"],
)
def test_a_put_of_a_bad_value_is_400_naming_value_and_changes_nothing(
    server: Served, value: str, message: str
) -> None:
    """The body's field is at fault: ``value``, with the reason once (the path names the
    latency)."""
    before = server.admin("GET", "/latency/image.pull").json()

    r = server.admin("PUT", "/latency/image.pull", json={"value": value})

    assert r.status_code == 400, r.text
    assert r.json()["field"] == "value"
    assert r.json()["message"].startswith(message)
    assert server.admin("GET", "/latency/image.pull").json() == before


def test_latencies_are_read_one_or_all_with_what_changed(server: Served) -> None:
    """GET /_kruise/latency[/{name}]: the value in force, the profile's, and whether they differ."""
    assert server.admin("PUT", "/latency/image.pull", json={"value": "exp(2s)"}).status_code == 200

    one = server.admin("GET", "/latency/image.pull")
    every = server.admin("GET", "/latency")

    assert one.status_code == 200, one.text
    assert one.json() == {
        "name": "image.pull",
        "value": "exp(2s)",
        "profile": "lognormal(median=5s, p99=30s)",
        "changed": True,
    }
    assert every.status_code == 200, every.text
    assert [e["name"] for e in every.json() if e["changed"]] == ["image.pull"]
    assert {e["name"] for e in every.json()} >= {"pod.create", "image.pull", "runtime.init"}
    unchanged = next(e for e in every.json() if e["name"] == "pod.create")
    assert unchanged["value"] == unchanged["profile"] and not unchanged["changed"]


def test_a_latency_is_restored_to_the_profiles_value(server: Served) -> None:
    """DELETE /_kruise/latency/{name} puts the profile's value back; DELETE /_kruise/latency all."""
    for name, value in (("image.pull", "exp(2s)"), ("runtime.init", "3s")):
        assert server.admin("PUT", f"/latency/{name}", json={"value": value}).status_code == 200

    one = server.admin("DELETE", "/latency/image.pull")

    assert one.status_code == 200, one.text
    assert one.json() == {
        "name": "image.pull",
        "value": "lognormal(median=5s, p99=30s)",
        "profile": "lognormal(median=5s, p99=30s)",
        "changed": False,
    }
    assert str(server.backend.cluster.profile.latency("image.pull")) == one.json()["value"]
    changed = [e["name"] for e in server.admin("GET", "/latency").json() if e["changed"]]
    assert changed == ["runtime.init"]

    every = server.admin("DELETE", "/latency")

    assert every.status_code == 200, every.text
    assert not any(e["changed"] for e in every.json())
    assert server.admin("GET", "/clock").json()["profile"] == "openkruise-head"


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_an_unknown_latency_is_404_and_changes_nothing(server: Served, method: str) -> None:
    assert server.admin("PUT", "/latency/image.pull", json={"value": "exp(2s)"}).status_code == 200

    r = server.admin(method, "/latency/teleport")

    assert r.status_code == 404, r.text
    body = r.json()
    assert body["code"] == 404 and body["field"] == "name"
    assert (
        body["message"].startswith("unknown latency 'teleport'") and "image.pull" in body["message"]
    )
    assert server.admin("GET", "/latency/image.pull").json()["value"] == "exp(2s)"


def test_clearing_the_faults_leaves_the_latencies(server: Served) -> None:
    """docs/server.md: faults and latencies are apart; DELETE /_kruise/faults clears faults only."""
    assert server.admin("POST", "/faults", json={"kind": "api_conflict"}).status_code == 201
    assert server.admin("PUT", "/latency/image.pull", json={"value": "exp(2s)"}).status_code == 200

    assert server.admin("DELETE", "/faults").status_code == 204

    assert server.admin("GET", "/faults").json() == []
    assert server.admin("GET", "/latency/image.pull").json()["changed"] is True


def test_the_clock_reads_and_advances(server: Served) -> None:
    before = server.admin("GET", "/clock").json()
    after = server.admin("POST", "/clock/advance", json={"seconds": 90}).json()

    assert before["mode"] == "virtual"
    delta = datetime.fromisoformat(after["now"]) - datetime.fromisoformat(before["now"])
    assert delta.total_seconds() == pytest.approx(90)


@pytest.mark.parametrize("seconds", [-1, "soon", None])
def test_a_bad_advance_is_400(server: Served, seconds: object) -> None:
    r = server.admin("POST", "/clock/advance", json={"seconds": seconds})

    assert r.status_code == 400
    assert r.json()["field"] == "seconds"


@pytest.mark.parametrize("seconds", ["5", "1_000", "1e3", True, False, [5], {"s": 5}])
def test_an_advance_by_anything_but_a_json_number_is_400_and_moves_nothing(
    server: Served, seconds: object
) -> None:
    """Strings and booleans are no seconds, as ``kruise_clock.advance`` refuses them too."""
    before = server.admin("GET", "/clock").json()
    r = server.admin("POST", "/clock/advance", json={"seconds": seconds})

    assert r.status_code == 400, r.text
    assert r.json()["field"] == "seconds"
    assert server.admin("GET", "/clock").json() == before


@pytest.mark.parametrize("literal", [b"Infinity", b"-Infinity", b"NaN"])
def test_an_advance_by_a_non_finite_number_is_400_and_moves_nothing(
    server: Served, literal: bytes
) -> None:
    """Python's JSON reader takes these literals (Go's does not): no time is that far."""
    before = server.admin("GET", "/clock").json()
    r = server.admin(
        "POST",
        "/clock/advance",
        content=b'{"seconds": ' + literal + b"}",
        headers={"Content-Type": "application/json"},
    )

    assert r.status_code == 400, r.text
    assert r.json()["field"] == "seconds"
    assert server.admin("GET", "/clock").json() == before


def test_an_advance_by_zero_runs_what_is_due_and_keeps_the_time(server: Served) -> None:
    """``{"seconds": 0}`` runs the events due now, as ``advance(0)`` does in Python."""
    with server.backend.locked() as cluster:
        fired: list[float] = []
        cluster.env.timeout(0).callbacks.append(lambda _ev: fired.append(cluster.now))
        now = cluster.now
    before = server.admin("GET", "/clock").json()
    r = server.admin("POST", "/clock/advance", json={"seconds": 0})

    assert r.status_code == 200, r.text
    assert r.json() == before
    assert fired == [now]


def test_an_advance_past_the_year_9999_is_400_and_the_server_goes_on(server: Served) -> None:
    """Refused before the clock moves: every later request still answers."""
    before = server.admin("GET", "/clock").json()
    for seconds in (3e11, 1e300):
        r = server.admin("POST", "/clock/advance", json={"seconds": seconds})

        assert r.status_code == 400
        # The documented limit, whatever the step.
        assert r.json()["field"] == "seconds"
        assert r.json()["message"].startswith(
            "seconds: would move the clock past 9900-01-24T23:59:59Z: "
        )
    assert server.admin("GET", "/clock").json() == before
    assert server.request("GET", "/v2/sandboxes").status_code == 200


def test_advancing_a_realtime_clock_is_409(tmp_path: Path) -> None:
    backend = SimBackend.default(seed=2, replicas=1, clock="realtime")
    thread, served = serve(tmp_path, backend=backend)
    try:
        r = served.admin("POST", "/clock/advance", json={"seconds": 5})
        assert r.status_code == 409
        assert "realtime" in r.json()["message"]
        assert served.admin("GET", "/clock").json()["mode"] == "realtime"
    finally:
        thread.stop()
        backend.close()


def test_record_times_are_seconds_since_the_clocks_epoch(tmp_path: Path) -> None:
    """``GET /_kruise/clock`` answers the ``epoch`` record times count from (server.md).

    A realtime server's epoch is a wall-clock instant just before it opened:
    without it, a record's ``delivered`` could not be placed in time.
    """
    backend = SimBackend.default(seed=2, replicas=1, clock="realtime")
    thread, served = serve(tmp_path, backend=backend)
    try:
        sbx = Sandbox.create(template="base", timeout=120, **served.sdk())
        started = sbx.get_info().started_at
        clock = served.admin("GET", "/clock").json()
        record = served.admin("GET", "/records").json()[-1]
        epoch = datetime.fromisoformat(clock["epoch"])
        delivered = epoch + timedelta(seconds=record["delivered"])
        # startedAt is the claim's lock time cut to whole seconds; delivery follows the lock
        # by the rest of the claim path (wait-ready, /init): well under a second more.
        assert 0 <= (delivered - started).total_seconds() < 2
        assert epoch < datetime.fromisoformat(clock["now"])
    finally:
        thread.stop()
        backend.close()


def test_a_virtual_clocks_epoch_is_fixed(server: Served) -> None:
    assert server.admin("GET", "/clock").json()["epoch"] == "2026-01-01T00:00:00Z"


def test_records_show_every_claim(server: Served) -> None:
    Sandbox.create(template="base", **server.sdk())
    with pytest.raises(SandboxException):
        Sandbox.create(template="nope", **server.sdk())

    records = server.admin("GET", "/records").json()

    assert [r["template"] for r in records] == ["base", "nope"]
    assert records[0]["warm"] is True and records[0]["owner"] == "alice"
    assert records[1]["error_code"] == 400


def test_a_body_without_a_json_content_type_is_still_json(server: Served) -> None:
    # curl -d sends application/x-www-form-urlencoded; the Go server decodes JSON regardless.
    r = server.admin(
        "POST",
        "/clock/advance",
        content=b'{"seconds": 5}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    assert r.status_code == 200, r.text


def test_every_admin_route_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "server.md").read_text()

    for route in admin.router.routes:
        assert isinstance(route, APIRoute) and route.methods
        for method in route.methods:
            assert f"| {method} | `{route.path}` |" in doc, f"{method} {route.path}"
