"""``kruise-agents serve``: a real server process a real SDK can use, and the refusals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from e2b import CommandHandle, Sandbox, SandboxNotRunningException
from e2b_code_interpreter import Sandbox as CodeSandbox
from typer.testing import CliRunner

from pytest_kruise_agents.backends.sim import MAX_SPEED
from pytest_kruise_agents.cli import app
from pytest_kruise_agents.e2b.config import ConfigError
from pytest_kruise_agents.e2b.serve import (
    ACCEPT_OUT_OF_RESOURCE,
    CLIENT_MAX_CONNECTIONS,
    AcceptErrorLog,
    ServeOptions,
    base_url,
    bind,
    client_exports,
    configure,
)
from pytest_kruise_agents.e2b.settings import ApiKey, Settings

from .conftest import KEYS, Served, eventually, pool_yaml

USER_KEY = "e2b_serve_user_000000000000000000000000000001"
ADMIN_KEY = "e2b_serve_admin_00000000000000000000000000002"


def write_config(tmp_path: Path, **data: object) -> Path:
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path,
        seed=4,
        nodes=2,
        sandboxsets=[pool_yaml("base", 2)],
        apiKeys=[
            {"key": USER_KEY, "id": "user", "team": "default"},
            {"key": ADMIN_KEY, "id": "root", "admin": True},
        ],
    )


def serve_command(config: Path, *options: str) -> list[str]:
    """``kruise-agents serve --port 0`` of ``config`` (plus ``options``) as a command line."""
    return [
        sys.executable,
        "-c",
        "from pytest_kruise_agents.cli import main; main()",
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        "--log-level",
        "warning",
        *options,
    ]


def read_exports(proc: subprocess.Popen[str]) -> dict[str, str]:
    """The variables a starting ``serve`` prints, read until it serves."""
    assert proc.stdout is not None and proc.stderr is not None
    exports: dict[str, str] = {}
    for line in proc.stdout:
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").strip().partition("=")
            exports[name] = value
        if line.startswith("# fake sandboxes run code on this host"):
            return exports
    pytest.fail(f"serve exited early ({proc.wait()}): {proc.stderr.read()}")


@pytest.fixture
def served(config: Path) -> Iterator[dict[str, str]]:
    """``kruise-agents serve --port 0`` as a child process; yields the variables it printed."""
    with subprocess.Popen(
        serve_command(config), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            yield read_exports(proc)
        finally:
            errors = stop(proc)
    # Ctrl-C: uvicorn shuts down gracefully, then exits as interrupted (130), quietly.
    assert proc.returncode in (0, 130), errors
    assert "Traceback" not in errors


def test_serve_prints_the_client_environment_and_serves_the_sdk(
    served: dict[str, str],
) -> None:
    url = served["E2B_API_URL"]
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    assert served["E2B_SANDBOX_URL"] == url
    assert served["E2B_API_KEY"] == USER_KEY
    assert served["KRUISE_ADMIN_KEY"] == ADMIN_KEY

    sbx = Sandbox.create(template="base", api_key=USER_KEY, api_url=url, sandbox_url=url)

    assert sbx.get_info().template_id == "base"
    clock = httpx.get(url + "/_kruise/clock", headers={"X-API-Key": ADMIN_KEY}, timeout=10)
    assert clock.json()["mode"] == "realtime"  # the server's default
    assert sbx.kill() is True


def test_serve_says_which_profile_runs(tmp_path: Path) -> None:
    """The banner and ``/_kruise/clock`` name the profile, with what the config changed."""
    path = write_config(
        tmp_path,
        seed=4,
        nodes=1,
        profile="openkruise-v0.3.0",
        knobs={"retry": "exponential"},
        sandboxsets=[pool_yaml("base", 1)],
        apiKeys=[{"key": ADMIN_KEY, "id": "root", "admin": True}],
    )
    with subprocess.Popen(
        serve_command(path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            banner = proc.stdout.readline()
            url = read_exports(proc)["E2B_API_URL"]
            clock = httpx.get(url + "/_kruise/clock", headers={"X-API-Key": ADMIN_KEY}, timeout=10)
        finally:
            stop(proc)
    said = "openkruise-v0.3.0 (changed: retry)"
    assert f"profile {said}, pools: base" in banner
    assert clock.json()["profile"] == said


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["serve", *args])
    return result.exit_code, result.output


def test_serve_refuses_a_public_host_without_auth(tmp_path: Path) -> None:
    path = write_config(tmp_path, auth=False)

    code, output = invoke("--config", str(path), "--host", "0.0.0.0", "--port", "0")

    assert code == 2
    assert "refusing to listen on '0.0.0.0' with authentication disabled" in output
    assert f"{path}: auth: " in output


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_serve_refuses_a_config_without_api_keys_on_any_host(tmp_path: Path, host: str) -> None:
    """With auth on, no key could call it: refused before the pools fill."""
    path = write_config(tmp_path, apiKeys=[])

    code, output = invoke("--config", str(path), "--host", host, "--port", "0")

    assert code == 2
    assert "apiKeys: no key can call the server" in output


def test_serve_names_the_bad_field_of_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, nodes=0)

    code, output = invoke("--config", str(path), "--port", "0")

    assert code == 2
    assert f"error: {path}: nodes: must be at least 1" in output


def test_a_cluster_that_fails_to_build_past_every_check_is_one_line_calling_it_a_bug(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config the loader accepts must build; should it not (a check missing, a bug of
    the model), the user gets the traceback for a report and, last, one line saying so."""
    path = write_config(tmp_path, nodes=1)

    def broken_build(*args: object, **kwargs: object) -> None:
        # No config still reaches such an error: stand in for the next missing check.
        raise TypeError("Cluster() got multiple values for keyword argument 'latencies'")

    monkeypatch.setattr("pytest_kruise_agents.e2b.serve.build", broken_build)

    code, output = invoke("--config", str(path), "--port", "0")

    assert code == 1
    assert "Traceback (most recent call last)" in output
    assert output.rstrip().splitlines()[-1] == (
        f"error: {path}: the cluster could not be built: TypeError: Cluster() got multiple "
        "values for keyword argument 'latencies' (a bug of pytest-kruise-agents: the config "
        "passed every check; the traceback above is for its report)"
    )


def test_serve_refuses_an_unknown_clock() -> None:
    code, output = invoke("--clock", "sundial", "--port", "0")

    assert code == 2
    assert "--clock: must be realtime or virtual" in output


def test_serve_reports_a_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        code, output = invoke("--config", str(write_config(tmp_path, nodes=1)), "--port", str(port))

    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in output


def test_the_socket_listens_before_serve_prints_its_url() -> None:
    """``serve`` prints its URL once its socket is bound: a client that connects as soon as it
    reads the URL, while the server still starts, waits in the backlog instead of being
    refused (ECONNREFUSED for the few milliseconds of the startup, before)."""
    with bind("127.0.0.1", 0) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        with socket.create_connection(sock.getsockname(), timeout=5):
            pass


def test_command_line_overrides_win_over_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, seed=1, clock={"mode": "virtual", "speed": 2.0})

    cfg, source = configure(
        ServeOptions(config=path, clock="realtime", speed=10.0, seed=99, host="localhost")
    )

    assert (cfg.seed, cfg.clock.mode, cfg.clock.speed) == (99, "realtime", 10.0)
    assert source == str(path)
    with pytest.raises(ConfigError, match="must be a finite number > 0"):
        configure(ServeOptions(speed=0.0))


@pytest.mark.parametrize("speed", ["inf", "nan", "-1", "0"])
def test_serve_refuses_a_speed_that_is_not_a_finite_positive_number(speed: str) -> None:
    """``--speed inf`` would have the realtime clock fire every timer at once: exit 2, named."""
    code, output = invoke("--clock", "realtime", "--speed", speed, "--port", "0")

    assert code == 2
    assert "error: --speed: must be a finite number > 0" in output


@pytest.mark.parametrize("speed", ["1e308", "2e6"])
def test_serve_refuses_a_speed_past_what_the_model_can_follow(speed: str) -> None:
    """``--speed 1e308`` moved the clock past the year 9999 at once: every request a 500."""
    code, output = invoke("--clock", "realtime", "--speed", speed, "--port", "0")

    assert code == 2
    assert "error: --speed: must be a finite number > 0 and at most 1e+06" in output


@pytest.mark.parametrize("port", ["70000", "65536", "-1"])
def test_serve_refuses_a_port_out_of_range(port: str) -> None:
    """A port outside 0-65535 is a bad option (exit 2 and one line), not a traceback."""
    code, output = invoke("--port", port)

    assert code == 2
    assert f"error: --port: must be between 0 and 65535, got {port}" in output
    assert "Traceback" not in output


def test_a_public_host_with_keys_is_allowed() -> None:
    cfg, _ = configure(ServeOptions(host="0.0.0.0"))

    assert cfg.auth and cfg.api_keys is None  # fresh keys are generated at build time


def test_client_exports_and_urls() -> None:
    settings = Settings(
        api_keys=[
            ApiKey(key="k1", id="a"),
            ApiKey(key="k2", id="b", team="t2"),
            ApiKey(key="root", admin=True),
        ]
    )

    lines = client_exports(settings, "http://127.0.0.1:5")

    assert lines[:4] == [
        "export E2B_API_URL=http://127.0.0.1:5",
        "export E2B_SANDBOX_URL=http://127.0.0.1:5",
        "export E2B_API_KEY=k1",
        "export KRUISE_ADMIN_KEY=root",
    ]
    assert "k2" in lines[4] and "team t2" in lines[4]
    assert base_url("0.0.0.0", 80) == "http://127.0.0.1:80"
    assert base_url("", 82) == "http://127.0.0.1:82"  # "" binds every address too
    assert base_url("::1", 81) == "http://[::1]:81"


def test_the_first_admin_key_is_the_one_printed() -> None:
    settings = Settings(
        api_keys=[ApiKey(key="root1", admin=True), ApiKey(key="root2", id="r2", admin=True)]
    )

    assert "export KRUISE_ADMIN_KEY=root1" in client_exports(settings, "http://127.0.0.1:5")


def test_the_bounds_of_port_and_speed_are_allowed() -> None:
    """65535 is a port and ``MAX_SPEED`` a speed: the bounds are inclusive, as documented."""
    cfg, _ = configure(ServeOptions(port=65535, clock="realtime", speed=MAX_SPEED))

    assert cfg.clock.speed == MAX_SPEED


def test_accept_failures_at_the_limit_are_reported_once_per_interval_with_their_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    handler = AcceptErrorLog(10.0, clock=lambda: now[0])
    loop = asyncio.new_event_loop()
    context = {"message": ACCEPT_OUT_OF_RESOURCE, "exception": OSError(24, "Too many open files")}
    try:
        with caplog.at_level("ERROR", logger="uvicorn.error"):
            for at in (100.0, 101.0, 105.0, 110.0, 111.0, 119.9, 120.0):
                now[0] = at
                handler(loop, context)
    finally:
        loop.close()

    counts = [
        r.getMessage().split("Too many open files (")[1].split(" ")[0] for r in caplog.records
    ]
    # At 100 the first; 101 and 105 held back; at 110 (the interval's end) the next,
    # counting the three since the last report; 111 and 119.9 held; 120 the third.
    assert counts == ["1", "3", "3"]


def processes_with(argument: str) -> list[int]:
    """Pids of the live (not zombie) processes with ``argument`` on their command line."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if argument.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@contextlib.contextmanager
def following_a_command(
    config: Path, marker: str, stderr: list[str]
) -> Iterator[tuple[subprocess.Popen[str], CommandHandle]]:
    """A virtual-clock ``serve`` and the handle of a background ``sleep <marker>`` in one of
    its sandboxes (while the handle lives, its output stream stays open). Afterwards the
    server is gone (its stderr appended to ``stderr``) and so is the command, killed here if
    the server could not."""
    with subprocess.Popen(
        serve_command(config, "--clock", "virtual"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            url = read_exports(proc)["E2B_API_URL"]
            sbx = Sandbox.create(template="base", api_key=USER_KEY, api_url=url, sandbox_url=url)
            handle = sbx.commands.run(f"sleep {marker}", background=True)
            eventually(lambda: bool(processes_with(marker)), "the command runs")
            yield proc, handle
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                for pid in processes_with(marker):
                    os.kill(pid, signal.SIGKILL)
            assert proc.stderr is not None
            stderr.append(proc.stderr.read())


def test_sigterm_ends_serve_while_a_stream_is_open_and_kills_the_sandboxes_commands(
    config: Path,
) -> None:
    """SIGTERM stops ``serve`` within seconds even while a client follows a background
    command's output (an open stream), and the command dies with the server."""
    marker = str(10**9 + time.time_ns() % 10**9)  # a sleep no other process runs
    stderr: list[str] = []
    with following_a_command(config, marker, stderr) as (proc, handle):
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
        took = time.monotonic() - started
        del handle  # only now: its stream stayed open until the server was gone
    (errors,) = stderr

    # uvicorn waits 2 s for open requests, stops the sandboxes, then dies of the signal.
    assert code == -signal.SIGTERM, errors
    assert took < 10
    assert "Traceback" not in errors
    eventually(lambda: not processes_with(marker), "the command is killed", within=5)


def test_run_code_cut_by_a_kill_or_by_sigterm_logs_no_error(config: Path) -> None:
    """A stop cuts a ``run_code`` in progress on purpose: neither a kill nor the server's
    SIGTERM logs it as an app error ("returned without completing response", a traceback)."""
    with subprocess.Popen(
        serve_command(config, "--clock", "virtual"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stderr is not None
        try:
            env = read_exports(proc)
            url = env["E2B_API_URL"]
            opts = {"api_key": USER_KEY, "api_url": url, "sandbox_url": url}
            for stop in ("kill", "sigterm"):
                sbx = CodeSandbox.create(template="base", **opts)
                sbx.run_code("1")  # the kernel is up
                failure: list[BaseException] = []
                started = threading.Event()

                def run(
                    sbx: CodeSandbox = sbx,
                    failure: list[BaseException] = failure,
                    started: threading.Event = started,
                ) -> None:
                    try:
                        sbx.run_code(
                            "import time\nprint('started', flush=True)\ntime.sleep(60)",
                            on_stdout=lambda _: started.set(),
                            timeout=120,
                        )
                    except Exception as exc:  # the cut, looked at below
                        failure.append(exc)

                runner = threading.Thread(target=run)
                runner.start()
                # The stop comes while the code runs: after a fixed second, on a loaded
                # machine the code may not have started, and the stop cut nothing.
                assert started.wait(timeout=30), "the code never started"
                if stop == "kill":
                    sbx.kill()
                    runner.join(timeout=30)
                    assert failure and "killed" in str(failure[0]), failure
                else:
                    proc.send_signal(signal.SIGTERM)
                    assert proc.wait(timeout=20) == -signal.SIGTERM
                    runner.join(timeout=30)
                    assert failure, "the run ended with the server"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        errors = proc.stderr.read()
    assert "without completing response" not in errors, errors
    assert "Traceback" not in errors, errors


def test_serve_refuses_an_unknown_log_level_before_it_prints_anything() -> None:
    """uvicorn would raise KeyError only once the exports are printed: exit 2, one line."""
    code, output = invoke("--log-level", "loud", "--port", "0")

    assert code == 2
    assert "error: --log-level: must be one of critical, error, warning, info, debug, trace, " in (
        output
    )
    assert "got 'loud'" in output
    assert "export" not in output
    assert "Traceback" not in output


def test_serve_refuses_an_empty_config_naming_the_option() -> None:
    """``--config "$CFG"`` with ``CFG`` unset: not ``.: cannot read: Is a directory``."""
    code, output = invoke("--config", "", "--port", "0")

    assert (code, output) == (2, "error: --config: must not be empty\n")


def test_serve_names_a_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("domain: \u00e9t\u00e9\n".encode("latin-1"))

    code, output = invoke("--config", str(path), "--port", "0")

    assert code == 2
    assert f"error: {path}: not UTF-8 text: byte 0xe9 at offset 8" in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed: 1\n  bad: [\n", ":2: invalid YAML: mapping values are not allowed here"),
        ("[" * 5000 + "]" * 5000 + "\n", ": nested too deeply to be a config file"),
    ],
    ids=["invalid", "deep"],
)
def test_serve_refuses_a_config_that_is_no_yaml_in_one_line(
    tmp_path: Path, text: str, message: str
) -> None:
    """No PyYAML caret lines, no RecursionError traceback: one ``error:`` line, exit 2."""
    path = tmp_path / "cluster.yaml"
    path.write_text(text)

    code, output = invoke("--config", str(path), "--port", "0")

    assert code == 2
    assert output == f"error: {path}{message}\n"


def serve_in_a_terminal(config: Path, env: dict[str, str]) -> str:
    """What ``kruise-agents serve`` writes to a terminal (a pty) until it logs that it
    started, then Ctrl-C."""
    import pty
    import select

    leader, follower = pty.openpty()
    command = [str(Path(sys.executable).with_name("kruise-agents"))]
    with subprocess.Popen(
        [*command, "serve", "--config", str(config), "--port", "0"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    ) as proc:
        os.close(follower)
        seen = b""
        deadline = time.monotonic() + 60
        try:
            while b"startup complete" not in seen and time.monotonic() < deadline:
                if select.select([leader], [], [], 1)[0]:
                    seen += os.read(leader, 65536)
        finally:
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(OSError):
                while select.select([leader], [], [], 5)[0]:
                    chunk = os.read(leader, 65536)
                    if not chunk:
                        break
                    seen += chunk
            proc.wait(timeout=30)
            os.close(leader)
    return seen.decode(errors="replace")


@pytest.mark.parametrize("no_color", ["1", ""], ids=["NO_COLOR=1", "NO_COLOR empty"])
def test_serve_in_a_terminal_honours_no_color(config: Path, no_color: str) -> None:
    """https://no-color.org: NO_COLOR set and not empty turns uvicorn's coloured log
    levels off; empty, it changes nothing (a terminal gets colour)."""
    env = {**os.environ, "NO_COLOR": no_color, "TERM": "xterm"}

    text = serve_in_a_terminal(config, env)

    assert "Application startup complete" in text, text
    coloured = "\x1b[32mINFO\x1b[0m" in text
    assert coloured == (not no_color), text


def test_the_client_environment_lifts_the_sdks_cap_of_200_connections() -> None:
    """Over plain HTTP/1.1 each open stream holds a connection, all to the one server
    address: the SDKs' default caps would hang the 201st stream's client. The Python SDK
    reads ``E2B_MAX_CONNECTIONS``; the JavaScript SDK ``E2B_ENVD_RPC_CONNECTIONS`` (envd's
    RPCs, 200) and ``E2B_API_CONNECTIONS`` (the control plane, 100)."""
    lines = client_exports(Settings(api_keys=[ApiKey(key="k1", id="a")]), "http://127.0.0.1:5")

    for variable in ("E2B_MAX_CONNECTIONS", "E2B_ENVD_RPC_CONNECTIONS", "E2B_API_CONNECTIONS"):
        assert f"export {variable}={CLIENT_MAX_CONNECTIONS}" in lines
    assert CLIENT_MAX_CONNECTIONS >= 5000


JS_SDK = Path(__file__).resolve().parents[2] / ".sdk" / "js" / "node_modules" / "e2b"


def test_the_js_sdk_holds_more_than_200_streams_under_the_printed_environment(
    server: Served,
) -> None:
    """Before, only the Python SDK's pool was raised: a JavaScript client holding 200 envd
    streams had its next call wait forever for a connection."""
    node = shutil.which("node")
    if node is None or not JS_SDK.is_dir():
        pytest.skip("needs Node.js and the JavaScript SDK (`make sdks`)")
    exported = [
        line.removeprefix("export ").split("=", 1)
        for line in client_exports(Settings(api_keys=KEYS), server.url)
        if line.startswith("export ")
    ]
    sandbox = Sandbox.create(**server.sdk())
    try:
        env = {
            "PATH": os.environ.get("PATH", ""),
            **dict(exported),
            "E2B_JS_SDK": (JS_SDK / "dist" / "index.mjs").as_uri(),
            "SANDBOX_ID": sandbox.sandbox_id,
            "STREAMS": "201",
        }
        script = Path(__file__).with_name("js_held_streams.mjs")
        proc = subprocess.run(
            [node, str(script)], capture_output=True, text=True, env=env, timeout=60, check=False
        )
    finally:
        sandbox.kill()

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == {"held": 201, "after": "past the pool"}


def test_the_printed_environment_reaches_the_server_past_a_proxy(
    server: Served, dead_proxy: str
) -> None:
    """A client shell behind a proxy (``HTTP_PROXY``) would send every SDK call to it, and no
    proxy reaches this host's loopback: the lines add the server's host to ``NO_PROXY`` and
    ``no_proxy``, after the hosts the shell lists. Pasted into ``sh``, a real SDK call works."""
    lines = client_exports(Settings(api_keys=KEYS), server.url)
    client = (
        "import os\n"
        "from e2b import Sandbox\n"
        "sbx = Sandbox.create('base')\n"
        "print(sbx.commands.run('echo hi').stdout, end='')\n"
        "sbx.kill()\n"
        "print(os.environ['NO_PROXY'], os.environ['no_proxy'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("E2B_")}
    env.update({"NO_PROXY": "corp.example", "CLIENT": client})
    proc = subprocess.run(
        ["sh", "-c", "\n".join([*lines, f'exec "{sys.executable}" -c "$CLIENT"'])],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == "hi\ncorp.example,127.0.0.1 127.0.0.1\n"


def test_the_sdk_reads_the_exported_connection_cap() -> None:
    """The variable is the one the installed SDK sizes its connection pool by."""
    read = subprocess.run(
        [sys.executable, "-c", "import e2b.api as a; print(a.max_connections)"],
        env={**os.environ, "E2B_MAX_CONNECTIONS": str(CLIENT_MAX_CONNECTIONS)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert read.stdout.strip() == str(CLIENT_MAX_CONNECTIONS)


def open_files_limit(pid: int) -> tuple[int, int]:
    """The soft and hard ``Max open files`` of process ``pid``."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open-files limit")


def limited_serve(config: Path, soft: int, hard: int) -> subprocess.Popen[str]:
    """``serve`` started with ``RLIMIT_NOFILE`` set to (``soft``, ``hard``)."""
    return subprocess.Popen(
        serve_command(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    )


def stop(proc: subprocess.Popen[str]) -> str:
    """SIGINT ``proc``, wait for it, and return what it wrote on stderr."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.stderr is not None
    return proc.stderr.read()


def test_serve_raises_the_soft_open_files_limit_to_the_hard_one(config: Path) -> None:
    """A soft limit of 1024 runs out near 150 busy sandboxes (~6 descriptors each)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    hard = 4096 if hard == resource.RLIM_INFINITY else hard
    if hard <= 256:
        pytest.skip("the hard open-files limit leaves nothing to raise")
    with limited_serve(config, 256, hard) as proc:
        try:
            read_exports(proc)
            assert open_files_limit(proc.pid) == (hard, hard)
        finally:
            stop(proc)


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=2).text == "OK"
    except httpx.HTTPError:
        return False


def test_accepts_failing_at_the_open_files_limit_do_not_flood_the_log(config: Path) -> None:
    """At the limit asyncio logs every failed accept (tens of thousands of tracebacks in
    seconds): one line now stands for them, and the server serves again once
    descriptors free up."""
    with limited_serve(config, 64, 64) as proc:
        clients: list[socket.socket] = []
        try:
            url = read_exports(proc)["E2B_API_URL"]
            port = int(url.rsplit(":", 1)[1])
            eventually(lambda: healthy(url), "the server listens")
            for _ in range(120):
                clients.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            time.sleep(2.5)  # two retries of the accept loop, at least
            for client in clients:
                client.close()
            clients.clear()
            eventually(lambda: healthy(url), "the server answers again", within=10)
        finally:
            for client in clients:
                client.close()
            errors = stop(proc)
    assert 1 <= errors.count("out of system resource") <= 3, errors[:2000]
    assert "Traceback" not in errors, errors[:2000]


def test_sigterm_ends_an_open_command_stream_as_a_stop_does(config: Path) -> None:
    """A stream still open at shutdown ends with ``unavailable`` "The sandbox was not found"
    (``SandboxNotRunningException``), as a kill ends it, not cut without its end-of-stream
    message (the SDK's bare ``Exception("Command ended without an end event")``)."""
    marker = str(10**9 + time.time_ns() % 10**9 + 7)
    stderr: list[str] = []
    with following_a_command(config, marker, stderr) as (proc, handle):
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        with pytest.raises(SandboxNotRunningException, match="shutting down"):
            handle.wait()
    (errors,) = stderr
    assert "Traceback" not in errors, errors
    eventually(lambda: not processes_with(marker), "the command is killed", within=5)


def test_the_accept_retry_of_a_listener_closed_at_shutdown_is_no_error() -> None:
    """asyncio retries ``_start_serving`` a second after a failed accept and does not cancel
    it when the server closes: the retry on the closed socket is dropped, not logged with a
    traceback; any other callback's error still reaches the loop's default handler."""
    from pytest_kruise_agents.e2b.serve import AcceptErrorLog

    def _start_serving(*args: object) -> None: ...

    def other(*args: object) -> None: ...

    reported: list[dict[str, object]] = []

    class Loop:
        def default_exception_handler(self, context: dict[str, object]) -> None:
            reported.append(context)

    loop = asyncio.new_event_loop()
    closed = socket.socket()
    closed.close()
    try:
        log = AcceptErrorLog()
        for callback in (_start_serving, other):
            handle = asyncio.TimerHandle(0.0, callback, (None, closed), loop)
            log(
                Loop(),  # type: ignore[arg-type]
                {"message": "Exception in callback", "exception": ValueError(), "handle": handle},
            )
    finally:
        loop.close()

    assert [c["handle"]._callback for c in reported] == [other]  # type: ignore[attr-defined]
