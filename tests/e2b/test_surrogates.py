"""Lone UTF-16 surrogates in request bodies are read as U+FFFD, as Go's JSON decoder reads them.

``"\\ud800"`` is valid JSON. Python decodes it to a string no UTF-8 encoder
accepts; upstream's Go decoder to U+FFFD. Kept as is, one such string made
its create answer 500 after claiming a sandbox, and every later list that
showed the sandbox 500 too. The SDK cannot send one (its encoder refuses),
so these requests are raw HTTP.
"""

from __future__ import annotations

from typing import Any

from e2b import Sandbox

from pytest_kruise_agents.e2b.errors import WireJSONResponse

from .conftest import ADMIN, Served

JSON = {"content-type": "application/json"}


def create(server: Served, body: bytes) -> Any:
    """``POST /v2/sandboxes`` with ``body`` as it is."""
    return server.request("POST", "/v2/sandboxes", content=body, headers=JSON)


def test_a_lone_surrogate_in_metadata_is_stored_and_answered_as_u_fffd(server: Served) -> None:
    """The create answers 201; its list, the SDK's list and the admin listing all show U+FFFD."""
    r = create(server, b'{"templateID": "base", "metadata": {"k": "a\\ud800b"}}')

    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["k"] == "a\ufffdb"
    listed = server.request("GET", "/v2/sandboxes")
    assert listed.status_code == 200, listed.text
    assert [s["metadata"]["k"] for s in listed.json()] == ["a\ufffdb"]
    found = Sandbox.list(**server.sdk()).next_items()
    assert [s.metadata["k"] for s in found] == ["a\ufffdb"]
    assert server.admin("GET", "/resources/sbx").status_code == 200


def test_a_lone_surrogate_in_a_metadata_key_is_the_key_checks_400(server: Served) -> None:
    """The key ``"\\udc80k"`` is read as ``"\\ufffdk"``: not a qualified name, 400, nothing claimed."""
    r = create(server, b'{"templateID": "base", "metadata": {"\\udc80k": "v"}}')

    assert r.status_code == 400, r.text
    assert r.json()["field"] == "\ufffdk"
    assert "\ufffdk" in r.json()["message"]
    pool = server.admin("GET", "/resources/sbs/default/base").json()
    assert pool["status"]["availableReplicas"] == 4  # nothing was claimed
    assert server.request("GET", "/v2/sandboxes").json() == []


def test_a_lone_surrogate_in_env_vars_reaches_commands_as_u_fffd(server: Served) -> None:
    """Accepted as U+FFFD, the variable does not break the sandbox's commands."""
    r = create(server, b'{"templateID": "base", "envVars": {"GREETING": "hi\\udfff"}}')
    assert r.status_code == 201, r.text

    sbx = Sandbox.connect(r.json()["sandboxID"], **server.sdk())

    assert sbx.commands.run('printf %s "$GREETING"').stdout == "hi\ufffd"


def test_a_pair_of_escapes_is_one_character_not_two_replacements(server: Served) -> None:
    """``"\\ud83d\\ude00"`` is one character (😀), as in Go: only lone halves are replaced."""
    r = create(server, b'{"templateID": "base", "metadata": {"k": "\\ud83d\\ude00\\ud83d"}}')

    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["k"] == "\U0001f600\ufffd"


def test_admin_bodies_read_lone_surrogates_as_u_fffd(server: Served) -> None:
    """An applied manifest is stored with U+FFFD and reads back as JSON and YAML."""
    manifest = (
        b'{"apiVersion": "agents.kruise.io/v1alpha1", "kind": "SandboxSet",'
        b' "metadata": {"name": "odd", "namespace": "default",'
        b' "annotations": {"note": "x\\ud800"}},'
        b' "spec": {"replicas": 0, "template": {"spec": {"containers":'
        b' [{"name": "c", "image": "i"}]}}}}'
    )

    applied = server.admin("POST", "/apply", content=manifest)

    assert applied.status_code == 200, applied.text
    assert applied.json()["items"][0]["metadata"]["annotations"]["note"] == "x\ufffd"
    got = server.admin("GET", "/resources/sbs/default/odd")
    assert got.json()["metadata"]["annotations"]["note"] == "x\ufffd"
    assert server.admin("GET", "/resources/sbs/default/odd?format=yaml").status_code == 200
    fault = server.request(
        "POST",
        "/_kruise/faults",
        key=ADMIN,
        content=b'{"kind": "pod_kill", "probability": 0.5, "selector": {"template": "\\ud800"}}',
        headers=JSON,
    )
    # Read as U+FFFD, which no template label can hold: the fault is refused, and the answer,
    # JSON, quotes the character as read.
    assert fault.status_code == 400, fault.text
    assert fault.json()["field"] == "selector"
    assert fault.json()["message"].startswith("selector: template='\ufffd' can never match")


def test_an_answer_holding_a_lone_surrogate_is_still_json() -> None:
    """The net under every JSON answer: a string that reached it anyway renders as U+FFFD."""
    answer = WireJSONResponse({"message": "bad \ud800 key", "items": [{"\udc80": "v"}]})

    assert bytes(answer.body).decode("utf-8") == (
        '{"message":"bad \ufffd key","items":[{"\ufffd":"v"}]}'
    )


def test_bytes_that_are_not_utf8_are_read_as_u_fffd(server: Served) -> None:
    """A body with an invalid byte is not refused whole: the byte reads as U+FFFD, as in Go."""
    r = create(server, b'{"templateID": "base", "metadata": {"k": "a\xffb"}}')

    assert r.status_code == 201, r.text
    assert r.json()["metadata"]["k"] == "a\ufffdb"
    assert server.request("GET", "/v2/sandboxes").status_code == 200
