"""Level ``envd``: commands and files in a sandbox, through the sandbox proxy (port 49983)."""

from __future__ import annotations

import contextlib
import json
import random
import struct
import time
import uuid
from collections.abc import Iterator
from typing import Any, Final

import httpx
import pytest
from e2b import CommandExitException, FileType, NotFoundException, Sandbox, TimeoutException
from e2b.sandbox.filesystem.filesystem import WriteEntry

from pytest_kruise_agents.conformance.expect import (
    CheckFailed,
    excerpt,
    expect,
    expect_status,
    fail,
    json_body,
    step,
)
from pytest_kruise_agents.conformance.plugin import check
from pytest_kruise_agents.conformance.sandboxes import Sandboxes
from pytest_kruise_agents.conformance.target import ENVD_PORT, Api, Target

__all__: list[str] = []  # pytest collects the checks; nothing is imported from here

CREATE_ENV = {"CONFORMANCE_CREATE_ENV": "from-create"}

BIG_FILE_BYTES: Final = 1024 * 1024
"""Size of the file ``envd.files.write-read`` writes and reads back: many chunks."""


@pytest.fixture(scope="module")
def envd_sandboxes(conformance_target: Target, conformance_api: Api) -> Iterator[Sandboxes]:
    """Sandboxes shared by the envd checks, killed after the last one."""
    made = Sandboxes(conformance_target, conformance_api)
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture(scope="module")
def sbx(envd_sandboxes: Sandboxes) -> Sandbox:
    """One running sandbox (created with envs) for the envd checks."""
    made: Sandbox = envd_sandboxes.create(timeout=3600, envs=CREATE_ENV)
    return made


@pytest.fixture(scope="module")
def sandbox_detail(sbx: Sandbox, conformance_api: Api) -> dict[str, Any]:
    """``GET /sandboxes/{id}`` of :func:`sbx`: its domain and access token."""
    what = f"GET /sandboxes/{sbx.sandbox_id}"
    resp = conformance_api.get(sbx.sandbox_id)
    expect_status(resp, 200, what)
    body = json_body(resp, what)
    if not isinstance(body, dict):
        fail(what, "a JSON object", excerpt(resp))
    return body


def _base() -> str:
    return f"conformance-{uuid.uuid4().hex[:8]}"


@check("envd.health")
def test_health(sbx: Sandbox, conformance_api: Api) -> None:
    sid = sbx.sandbox_id
    base, how = conformance_api.sandbox_base(sid, ENVD_PORT)
    what = f"GET /health of sandbox {sid} (port {ENVD_PORT}) at {base} ({how})"
    try:
        with step(what):
            resp = conformance_api.sandbox(sid, ENVD_PORT, "GET", "/health")
    except CheckFailed as exc:
        # No answer at all is what a wrong domain gives (a name that does not resolve, a
        # host nobody serves): its failure says where the URL came from too.
        raise CheckFailed(what, exc.expected, exc.seen) from exc
    expect(resp.is_success, what, "a 2xx answer", excerpt(resp))


@check("envd.routing.host")
def test_routing_by_host(
    sbx: Sandbox, conformance_api: Api, conformance_target: Target, sandbox_detail: dict[str, Any]
) -> None:
    domain = sandbox_detail.get("domain") or conformance_api.domains.get(sbx.sandbox_id)
    domain = domain or conformance_target.domain
    if conformance_target.sandbox_url and (not isinstance(domain, str) or not domain):
        # A Host naming a domain nobody gave the server would prove nothing.
        pytest.skip("the server returns no sandbox domain and no --domain was given")
    if not isinstance(domain, str) or not domain:
        domain = conformance_api.sandbox_domain(sbx.sandbox_id)[0]  # the SDK's default
    host = f"{ENVD_PORT}-{sbx.sandbox_id}.{domain}"
    resp = conformance_api.sandbox(
        sbx.sandbox_id, ENVD_PORT, "GET", "/health", by_host=True, domain=domain
    )
    expect(resp.is_success, f"GET /health with Host: {host}", "a 2xx answer", excerpt(resp))


_RPC_HEADERS: Final = {"Content-Type": "application/json", "Connect-Protocol-Version": "1"}
_STREAM_HEADERS: Final = {
    "Content-Type": "application/connect+json",
    "Connect-Protocol-Version": "1",
}
_START: Final = "/process.Process/Start"
_END_STREAM: Final = 0x02
"""Flag of the envelope that ends a Connect stream (and carries its error)."""


def _envelope(message: dict[str, Any]) -> bytes:
    """One Connect stream message: a flags byte, a big-endian length, the JSON."""
    data = json.dumps(message).encode()
    return struct.pack(">BI", 0, len(data)) + data


def _stream_refused(resp: httpx.Response) -> bool:
    """Whether a Connect stream was refused as unauthenticated: HTTP 401, or (as Connect
    servers answer a stream) HTTP 200 whose first envelope ends it with that error."""
    if resp.status_code == 401:
        return True
    body = resp.content
    if resp.status_code != 200 or len(body) < 5 or not body[0] & _END_STREAM:
        return False
    (size,) = struct.unpack(">I", body[1:5])
    try:
        end = json.loads(body[5 : 5 + size])
    except ValueError:
        return False
    error = end.get("error") if isinstance(end, dict) else None
    return isinstance(error, dict) and error.get("code") == "unauthenticated"


def _envd_calls(base: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    """``(what, request)`` of each kind of envd call the SDK makes, the ``n``-th time: every
    one that changes something leaves a path under ``base`` a refused call must not leave."""
    command = f"touch {base}/ran-{n}"
    start = {"process": {"cmd": "/bin/bash", "args": ["-l", "-c", command], "envs": {}}}
    return [
        *(
            (
                f"filesystem {rpc} RPC",
                {
                    "method": "POST",
                    "path": f"/filesystem.Filesystem/{rpc}",
                    "headers": _RPC_HEADERS,
                    "json": body,
                },
            )
            for rpc, body in (
                ("Stat", {"path": f"{base}/secret.txt"}),
                ("ListDir", {"path": base, "depth": 1}),
                ("MakeDir", {"path": f"{base}/made-{n}"}),
            )
        ),
        (
            "GET /files (download)",
            {"method": "GET", "path": "/files", "params": {"path": f"{base}/secret.txt"}},
        ),
        (
            "POST /files (upload)",
            {
                "method": "POST",
                "path": "/files",
                "params": {"path": f"{base}/up-{n}.txt"},
                "files": {"file": (f"{base}/up-{n}.txt", b"uploaded\n")},
            },
        ),
        (
            "process Start RPC",
            {
                "method": "POST",
                "path": _START,
                "headers": _STREAM_HEADERS,
                "content": _envelope({**start, "stdin": False}),
            },
        ),
    ]


def _envd_call(api: Api, sid: str, token: str | None, request: dict[str, Any]) -> httpx.Response:
    call = dict(request)
    return api.sandbox(sid, ENVD_PORT, call.pop("method"), call.pop("path"), token=token, **call)


@check("envd.auth.token")
def test_access_token(sbx: Sandbox, conformance_api: Api, sandbox_detail: dict[str, Any]) -> None:
    # The token the SDK uses: the create answer's (GET may leave it out: it is optional in
    # SandboxDetail), else the one GET shows.
    token = getattr(sbx, "_envd_access_token", None) or sandbox_detail.get("envdAccessToken")
    if not isinstance(token, str) or not token:
        pytest.skip(
            "the server returned no envdAccessToken for the sandbox (neither its create answer "
            "nor GET /sandboxes/{id})"
        )
    base = _base()
    with step(f"files.write({base}/secret.txt)"):
        sbx.files.write(f"{base}/secret.txt", "secret\n")
    sid = sbx.sandbox_id
    left: list[str] = []  # what a refused call would have made
    for n, (label, sent) in enumerate(
        (("without X-Access-Token", None), ("with a wrong X-Access-Token", "wrong-" + token))
    ):
        for what, request in _envd_calls(base, n):
            resp = _envd_call(conformance_api, sid, sent, request)
            if request["path"] == _START:
                expect(
                    _stream_refused(resp),
                    f"envd {what} {label}",
                    "HTTP 401 (or a Connect stream ending at once with error unauthenticated)",
                    excerpt(resp),
                )
            else:
                expect_status(resp, 401, f"envd {what} {label}")
        left += [f"{base}/ran-{n}", f"{base}/made-{n}", f"{base}/up-{n}.txt"]
    with step(f"files.exists of what the refused calls would have made in {base}"):
        made = [path for path in left if sbx.files.exists(path)]
    expect(not made, "envd calls refused for their token", "nothing done", f"they made {made}")
    for what, request in _envd_calls(base, 2):  # a third round, with the token
        resp = _envd_call(conformance_api, sid, token, request)
        refused = request["path"] == _START and _stream_refused(resp)
        expect(
            resp.status_code == 200 and not refused,
            f"envd {what} with the sandbox's envdAccessToken",
            "HTTP 200",
            excerpt(resp),
        )


@check("envd.commands.output")
def test_command_output(sbx: Sandbox) -> None:
    cmd = "echo out; echo err >&2"
    with step(f"commands.run({cmd!r})"):
        result = sbx.commands.run(cmd)
    seen = (result.stdout, result.stderr, result.exit_code)
    expect(seen == ("out\n", "err\n", 0), f"commands.run({cmd!r})", "('out\\n', 'err\\n', 0)", seen)


@check("envd.commands.exit-code")
def test_command_exit_code(sbx: Sandbox) -> None:
    cmd = "echo bad >&2; exit 3"
    try:
        result = sbx.commands.run(cmd)
    except CommandExitException as exc:
        seen = (exc.exit_code, exc.stderr)
        expect(seen == (3, "bad\n"), f"commands.run({cmd!r})", "exit code 3, stderr 'bad\\n'", seen)
        return
    except Exception as exc:
        fail(f"commands.run({cmd!r})", "CommandExitException", f"{type(exc).__name__}: {exc}")
    fail(f"commands.run({cmd!r})", "CommandExitException", f"exit code {result.exit_code}")


@check("envd.commands.env")
def test_command_env(sbx: Sandbox) -> None:
    cmd = 'echo "$CONFORMANCE_CREATE_ENV $CONFORMANCE_CALL_ENV"'
    with step(f"commands.run({cmd!r}, envs=...)"):
        result = sbx.commands.run(cmd, envs={"CONFORMANCE_CALL_ENV": "from-call"})
    expect(
        result.stdout == "from-create from-call\n",
        f"commands.run({cmd!r})",
        "the create envVars and the call envs: 'from-create from-call\\n'",
        result.stdout,
    )


@check("envd.commands.background")
def test_command_background(sbx: Sandbox) -> None:
    gate = f"{_base()}.go"
    # It runs until the check lets it finish, however slow the machine.
    cmd = f"while [ ! -e {gate} ]; do sleep 0.05; done; echo done"
    with step(f"commands.run({cmd!r}, background=True)"):
        handle = sbx.commands.run(cmd, background=True)
        listed = {p.pid: p for p in sbx.commands.list()}
    expect(handle.pid in listed, "commands.list()", f"the background pid {handle.pid}", listed)
    # The process's config as started (E2B §4.2 List: config {cmd, args, envs, cwd}): what
    # a client finds its commands by. The SDK runs each as bash -l -c.
    info = listed[handle.pid]
    expect(
        (info.cmd, list(info.args)) == ("/bin/bash", ["-l", "-c", cmd]),
        f"commands.list() entry of pid {handle.pid}",
        f"cmd '/bin/bash' and args {['-l', '-c', cmd]!r}",
        f"cmd {info.cmd!r} and args {list(info.args)!r}",
    )
    with step("wait() of the background command"):
        sbx.commands.run(f"touch {gate}")
        result = handle.wait()
    expect(
        result.stdout == "done\n", "wait() of the background command", "'done\\n'", result.stdout
    )


@check("envd.commands.signal")
def test_command_signal(sbx: Sandbox) -> None:
    with step("commands.run('sleep 60', background=True)"):
        handle = sbx.commands.run("sleep 60", background=True)
    with step(f"kill() of pid {handle.pid}"):
        killed = handle.kill()
    expect(killed is True, f"kill() of pid {handle.pid}", "True", repr(killed))
    deadline = time.monotonic() + 10
    pids: list[int] = []
    while time.monotonic() < deadline:
        pids = [p.pid for p in sbx.commands.list()]
        if handle.pid not in pids:
            break
        time.sleep(0.05)
    expect(handle.pid not in pids, "commands.list() after kill", f"pid {handle.pid} gone", pids)
    with step(f"commands.kill({handle.pid}) of an ended process"):
        again = sbx.commands.kill(handle.pid)
    expect(again is False, f"commands.kill({handle.pid}) of an ended process", "False", repr(again))


@check("envd.commands.timeout")
def test_command_timeout(sbx: Sandbox) -> None:
    marker = f"{_base()}.pid"
    # The process says its pid (bash's, which exec keeps for sleep): found by pid, not by its
    # command text, which a server's list may leave out.
    command = f"echo $$ > {marker}; sleep 37"
    what = f"commands.run({command!r}, timeout=1)"
    started = time.monotonic()
    try:
        sbx.commands.run(command, timeout=1)
    except TimeoutException:
        took = time.monotonic() - started
        expect(took < 15, what, "TimeoutException within 15 s", f"{took:.1f} s")
    except Exception as exc:
        fail(what, "TimeoutException", f"{type(exc).__name__}: {exc}")
    else:
        fail(what, "TimeoutException", "the command completing")
    with step(f"files.read({marker!r}): the pid the command wrote"):
        text = sbx.files.read(marker)
    expect(text.strip().isdigit(), f"files.read({marker!r})", "the command's pid", repr(text))
    pid = int(text)
    # The SDK raises on its own clock too: only a process that is gone shows that the
    # server applied Connect-Timeout-Ms.
    running = True
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with step("commands.list() after the timeout"):
            running = pid in [p.pid for p in sbx.commands.list()]
        if not running:
            return
        time.sleep(0.1)
    with contextlib.suppress(Exception):
        sbx.commands.kill(pid)
    fail(
        f"commands.list() 5 s after {what} timed out",
        f"no process {pid} (envd ends it at Connect-Timeout-Ms)",
        f"still running as pid {pid}",
    )


@check("envd.commands.cwd")
def test_command_cwd(sbx: Sandbox) -> None:
    base = _base()
    with step(f"files.write({base}/here.txt) and files.get_info({base})"):
        sbx.files.write(f"{base}/here.txt", "here\n")
        # The directory's absolute path as the sandbox names it (the home directory differs
        # from one server to the next).
        where = sbx.files.get_info(base).path
    cmd = "cat here.txt"
    what = f"commands.run({cmd!r}, cwd={where!r})"
    try:
        result = sbx.commands.run(cmd, cwd=where)
    except CommandExitException as exc:
        fail(what, "'here\\n' (the file in cwd)", f"exit code {exc.exit_code}: {exc.stderr!r}")
    except Exception as exc:
        fail(what, "success", f"{type(exc).__name__}: {exc}")
    expect(result.stdout == "here\n", what, "'here\\n' (the file in cwd)", result.stdout)


@check("envd.commands.stdin")
def test_command_stdin(sbx: Sandbox) -> None:
    cmd = "head -n1"
    what = f"commands.run({cmd!r}, background=True, stdin=True), send_stdin 'hello\\n', wait()"
    with step(f"commands.run({cmd!r}, background=True, stdin=True)"):
        # A server ignoring the input leaves head waiting: envd ends it at the timeout.
        handle = sbx.commands.run(cmd, background=True, stdin=True, timeout=10)
    with step(f"commands.send_stdin({handle.pid}, 'hello\\n')"):
        sbx.commands.send_stdin(handle.pid, "hello\n")
    try:
        result = handle.wait()
    except Exception as exc:
        fail(what, "head to print 'hello\\n' and exit", f"{type(exc).__name__}: {exc}")
    expect(result.stdout == "hello\n", what, "'hello\\n'", result.stdout)


@check("envd.commands.connect")
def test_command_connect(sbx: Sandbox) -> None:
    gate = f"{_base()}.go"
    cmd = f"while [ ! -e {gate} ]; do sleep 0.05; done; echo connected"
    with step(f"commands.run({cmd!r}, background=True)"):
        handle = sbx.commands.run(cmd, background=True)
    try:
        with step(f"disconnect from pid {handle.pid}, then commands.connect({handle.pid})"):
            handle.disconnect()
            again = sbx.commands.connect(handle.pid)
        with step(f"wait() of the command connected to by pid {handle.pid}"):
            sbx.commands.run(f"touch {gate}")
            result = again.wait()
    finally:
        with contextlib.suppress(Exception):  # let the loop end whatever failed
            sbx.commands.run(f"touch {gate}")
    expect(
        result.stdout == "connected\n",
        f"wait() of commands.connect({handle.pid})",
        "the output after connecting: 'connected\\n'",
        result.stdout,
    )


def _first_difference(a: bytes, b: bytes) -> str:
    """Where ``b`` stops being ``a``: for a failure message about megabytes."""
    if len(a) != len(b):
        return f"{len(b)} bytes (wrote {len(a)})"
    at = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    return f"{len(b)} bytes, differing from byte {at} on"


@check("envd.files.write-read")
def test_files_write_read(sbx: Sandbox) -> None:
    base = _base()
    text, data = "conformance ✓ text\n", bytes([0, 1, 2, 255, 10])
    with step(f"files.write/read of {base}/a.txt"):
        sbx.files.write(f"{base}/a.txt", text)
        read = sbx.files.read(f"{base}/a.txt")
    expect(read == text, f"files.read({base}/a.txt)", repr(text), repr(read))
    with step(f"files.write/read(format='bytes') of {base}/b.bin"):
        sbx.files.write(f"{base}/b.bin", data)
        got = bytes(sbx.files.read(f"{base}/b.bin", format="bytes"))
    expect(got == data, f"files.read({base}/b.bin, format='bytes')", repr(data), repr(got))
    # Larger than any one chunk of an upload or a download (64 KiB is common), and no
    # repeating pattern: a server keeping or sending only the first chunks shows.
    big = random.Random(base).randbytes(BIG_FILE_BYTES)
    path = f"{base}/big.bin"
    with step(f"files.write/read(format='bytes') of {path} ({BIG_FILE_BYTES} bytes)"):
        sbx.files.write(path, big)
        got = bytes(sbx.files.read(path, format="bytes"))
    if got != big:
        fail(
            f"files.read({path}, format='bytes')",
            f"the {BIG_FILE_BYTES} bytes written",
            _first_difference(big, got),
        )


@check("envd.files.stat")
def test_files_stat(sbx: Sandbox) -> None:
    path = f"{_base()}/stat.txt"
    with step(f"files.write({path!r}) then exists/get_info"):
        sbx.files.write(path, "12345")
        exists = sbx.files.exists(path)
        missing = sbx.files.exists(path + ".missing")
        info = sbx.files.get_info(path)
    expect(exists is True, f"files.exists({path!r})", "True", repr(exists))
    expect(missing is False, f"files.exists({path + '.missing'!r})", "False", repr(missing))
    seen = (info.name, info.type, info.size)
    expect(
        seen == ("stat.txt", FileType.FILE, 5),
        f"files.get_info({path!r})",
        "name 'stat.txt', type file, size 5",
        seen,
    )


@check("envd.files.list")
def test_files_list(sbx: Sandbox) -> None:
    base = _base()
    with step(f"write two files and make a directory in {base}, then files.list"):
        sbx.files.write(f"{base}/one.txt", "1")
        sbx.files.write(f"{base}/two.txt", "2")
        sbx.files.make_dir(f"{base}/sub")
        entries = sbx.files.list(base)
    seen = sorted((e.name, e.type.value if e.type else None) for e in entries)
    wanted = [("one.txt", "file"), ("sub", "dir"), ("two.txt", "file")]
    expect(seen == wanted, f"files.list({base!r})", repr(wanted), seen)


@check("envd.files.make-dir")
def test_files_make_dir(sbx: Sandbox) -> None:
    path = f"{_base()}/made"
    with step(f"files.make_dir({path!r}) twice"):
        first = sbx.files.make_dir(path)
        second = sbx.files.make_dir(path)
        info = sbx.files.get_info(path)
    expect(first is True, f"files.make_dir({path!r})", "True", repr(first))
    expect(second is False, f"files.make_dir({path!r}) when it exists", "False", repr(second))
    expect(info.type == FileType.DIR, f"files.get_info({path!r})", "a directory", info.type)


@check("envd.files.rename")
def test_files_rename(sbx: Sandbox) -> None:
    base = _base()
    src, dst = f"{base}/old.txt", f"{base}/new.txt"
    with step(f"files.rename({src!r}, {dst!r})"):
        sbx.files.write(src, "moved\n")
        sbx.files.rename(src, dst)
        seen = (sbx.files.exists(src), sbx.files.exists(dst), sbx.files.read(dst))
    expect(
        seen == (False, True, "moved\n"),
        "files.rename",
        "(src gone, dst there, content kept)",
        seen,
    )


@check("envd.files.remove")
def test_files_remove(sbx: Sandbox) -> None:
    path = f"{_base()}/gone.txt"
    with step(f"files.write then files.remove({path!r})"):
        sbx.files.write(path, "x")
        sbx.files.remove(path)
        exists = sbx.files.exists(path)
    expect(exists is False, f"files.exists({path!r}) after remove", "False", repr(exists))
    try:
        sbx.files.read(path)
    except NotFoundException:
        return
    except Exception as exc:
        fail(
            f"files.read({path!r}) after remove",
            "a not-found error",
            f"{type(exc).__name__}: {exc}",
        )
    fail(f"files.read({path!r}) after remove", "a not-found error", "the file's content")


@check("envd.files.write-many")
def test_files_write_many(sbx: Sandbox) -> None:
    base = _base()
    entries = [
        WriteEntry(path=f"{base}/one.txt", data="one\n"),
        WriteEntry(path=f"{base}/sub/two.bin", data=bytes([0, 2, 255])),
    ]
    # One multipart upload without a path (each file named by its part), as the SDK sends
    # more than one file.
    what = f"files.write_files([{base}/one.txt, {base}/sub/two.bin])"
    with step(what):
        written = sbx.files.write_files(entries)
    paths = sorted(getattr(info, "path", "") for info in written)
    expect(
        len(paths) == 2 and paths[0].endswith("/one.txt") and paths[1].endswith("/sub/two.bin"),
        what,
        "information on the two files written",
        paths,
    )
    with step(f"files.read of the two files {what} wrote"):
        seen = (
            sbx.files.read(f"{base}/one.txt"),
            bytes(sbx.files.read(f"{base}/sub/two.bin", format="bytes")),
        )
    expect(
        seen == ("one\n", bytes([0, 2, 255])), f"files.read after {what}", "each file's data", seen
    )


@check("envd.user")
def test_user_selection(sbx: Sandbox) -> None:
    # The SDK names the user of a call (user="root") in Authorization: Basic base64("root:")
    # on RPCs and in username=root on /files (E2B §4.5); with no user it sends none (envd
    # >= 0.4.0) or "user". A server must serve both users of E2B's templates.
    cmd = "echo as-root"
    with step(f"commands.run({cmd!r}, user='root')"):
        result = sbx.commands.run(cmd, user="root")
    expect(
        result.stdout == "as-root\n",
        f"commands.run({cmd!r}, user='root')",
        "'as-root\\n'",
        result.stdout,
    )
    path = f"{_base()}/as-root.txt"
    with step(f"files.write then files.read of {path!r} with user='root'"):
        sbx.files.write(path, "root\n", user="root")
        read = sbx.files.read(path, user="root")
    expect(read == "root\n", f"files.read({path!r}, user='root')", repr("root\n"), repr(read))
