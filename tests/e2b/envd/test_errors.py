"""Specification: every bad request to envd gets one clear JSON error and the server stays up."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from e2b.envd.process import process_connect, process_pb

from pytest_kruise_agents.e2b.envd import make_envd_app
from pytest_kruise_agents.e2b.server import ServerThread
from pytest_kruise_agents.e2b.workspace import Workspaces
from tests.e2b.envd.conftest import Envd


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "says"),
    [
        ("/process.Process/List", b"{not json", 400, "invalid_argument", "ListRequest"),
        ("/process.Process/Start", b"{}", 415, "invalid_argument", "connect+json"),
        (
            "/process.Process/Update",
            b'{"process": {"pid": "abc"}}',
            400,
            "invalid_argument",
            "UpdateRequest",
        ),
        (
            "/process.Process/SendSignal",
            b'{"process": {"pid": 1}}',
            400,
            "invalid_argument",
            "signal",
        ),
        ("/process.Process/SendInput", b'{"process": {}}', 400, "invalid_argument", "pid or a tag"),
        ("/process.Process/CloseStdin", b'{"process": {"pid": 1}}', 404, "not_found", "pid 1"),
        ("/process.Process/Update", b'{"process": {"tag": "t"}}', 404, "not_found", "tag 't'"),
        (
            "/filesystem.Filesystem/Stat",
            b'{"path": "/home/user/none"}',
            404,
            "not_found",
            "/home/user/none",
        ),
        ("/filesystem.Filesystem/GetWatcherEvents", b'{"watcherId": "w9"}', 404, "not_found", "w9"),
        ("/filesystem.Filesystem/RemoveWatcher", b'{"watcherId": "w9"}', 404, "not_found", "w9"),
        ("/filesystem.Filesystem/Remove", b'{"path": "/"}', 403, "permission_denied", "root"),
        ("/filesystem.Filesystem/Nope", b"{}", 404, "unimplemented", "no such RPC method"),
    ],
)
def test_bad_rpcs_answer_connect_errors(
    envd: Envd, path: str, body: bytes, status: int, code: str, says: str
) -> None:
    with envd.http() as http:
        r = http.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == status, r.text
        assert r.json()["code"] == code
        assert says in r.json()["message"]
        assert http.get("/health").status_code == 204


def test_a_bad_stream_request_ends_the_stream_with_an_error(envd: Envd) -> None:
    client = process_connect.ProcessClientSync(envd.url, http_client=None)
    request = process_pb.StartRequest(process=process_pb.ProcessConfig(cmd="/nonexistent/cmd"))
    with pytest.raises(Exception, match="failed to start"):
        list(client.start(request, headers={"E2b-Sandbox-Id": "sbx-default"}))


def test_unknown_routes_and_methods_are_json_errors(envd: Envd) -> None:
    with envd.http() as http:
        unknown = http.get("/nowhere")
        assert (unknown.status_code, unknown.json()["code"]) == (404, 404)
        assert http.delete("/files", params={"path": "x"}).json() == {
            "code": 405,
            "message": "method DELETE not allowed on /files",
        }
        assert http.get("/init").status_code == 405
        missing = http.get("/files")
        assert (missing.status_code, missing.json()["code"]) == (400, 400)


def test_without_a_workspace_in_scope_the_app_answers_500_json(tmp_path: Path) -> None:
    with ServerThread(make_envd_app(Workspaces(tmp_path))) as server:
        r = httpx.get(server.url + "/health")
    assert r.status_code == 500
    assert "kruise_workspace" in r.json()["message"]
