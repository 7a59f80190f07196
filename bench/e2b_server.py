"""Speed and memory of the E2B-compatible server, through the real e2b SDK.

Prints, measured in one run:

1. sequential ``Sandbox.create()`` + ``kill()`` against a warm pool (virtual
   clock): p50 / p99 of create, and creates per second; next to the same SDK
   calls against a bare route on the same stack (FastAPI + uvicorn answering a
   canned 201 and 204 from ``async def`` handlers, as the real routes are: no
   worker-thread hop on either side), and the ratio of the rates
   (goals: p50 < 5 ms, p99 < 20 ms, rate >= 0.5x the bare route); the two
   servers take turns in blocks of calls, so both see the same machine load;
2. where the server's part of a create and a kill goes: the same calls made
   in-process on the ASGI app (no HTTP, no SDK) over the same cluster, split
   into the backend call (the simulation) and the rest of the app (routing,
   auth, parsing, rendering, middleware), p50 in microseconds (the median of
   each series on its own: the parts' medians do not add up exactly to the
   whole's);
3. ``commands.run("true")`` p50 and p99 in one sandbox;
4. the server's resident memory added by 1,000 idle claimed sandboxes
   (goal < 50 MiB: nothing is started for a sandbox until it is used).

The server under test runs in a child process, so its memory is its own and the
client's CPU time is not counted in it. ``--creates``, ``--commands`` and
``--idle`` set the counts (each at least 1).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from bench_options import positive_int

CANNED_SANDBOX = {
    "templateID": "base",
    "sandboxID": "default--base-canned",
    "clientID": "",
    "envdVersion": "0.6.13",
    "envdAccessToken": "token",
    "domain": None,
}
API_KEY = "e2b_bench_key_000000000000000000000000000000"
SDK_HEADERS = [  # what e2b 2.63.0 sends with Sandbox.create() and kill()
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"lang", b"python"),
    (b"lang_version", b"3.11.7"),
    (b"package_version", b"2.63.0"),
    (b"publisher", b"e2b"),
    (b"sdk_runtime", b"python"),
    (b"system", b"Linux"),
    (b"user-agent", b"e2b-python-sdk/2.63.0"),
    (b"x-api-key", API_KEY.encode()),
]
SDK_CREATE_BODY = b'{"templateID":"base","metadata":{},"envVars":{}}'


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def bare_app() -> Any:
    """The baseline: the same FastAPI + uvicorn stack answering canned bodies.

    ``async def`` handlers, the cheapest way FastAPI answers: a sync ``def``
    would add a worker-thread hop the real routes do not make.
    """
    from fastapi import FastAPI, Response
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/v2/sandboxes")
    async def create() -> JSONResponse:
        return JSONResponse(CANNED_SANDBOX, status_code=201)

    @app.delete("/sandboxes/{sandbox_id}")
    async def kill(sandbox_id: str) -> Response:
        return Response(status_code=204)

    return app


def serve(kind: str, replicas: int, conn: Connection) -> None:
    """Child process: serve the real app (or the bare one) until told to stop."""
    from pytest_kruise_agents.backends import SimBackend
    from pytest_kruise_agents.e2b.app import create_app
    from pytest_kruise_agents.e2b.server import ServerThread
    from pytest_kruise_agents.e2b.settings import ApiKey, Settings

    backend = None
    if kind == "bare":
        app = bare_app()
    else:
        # Both default pools request 1 CPU per sandbox; nodes have 64.
        backend = SimBackend.default(seed=1, replicas=replicas, nodes=replicas // 25 + 4)
        app = create_app(backend, Settings(api_keys=[ApiKey(key=API_KEY, team="default")]))
    with ServerThread(app) as server:
        conn.send(server.url)
        conn.recv()
    if backend is not None:
        backend.close()


class Child:
    """A server in a child process."""

    def __init__(self, kind: str, replicas: int = 0) -> None:
        ctx = mp.get_context("spawn")
        self.parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=serve, args=(kind, replicas, child), daemon=True)
        self.proc.start()
        self.url: str = self.parent.recv()

    def rss_mib(self) -> float:
        assert self.proc.pid is not None
        return _rss_kib(self.proc.pid) / 1024

    def stop(self) -> None:
        self.parent.send("stop")
        self.proc.join(timeout=30)


def server_breakdown(n: int, replicas: int) -> dict[str, float]:
    """Child process: ``n`` create + kill on the ASGI app in-process; server time split (µs).

    The backend's ``create_sandbox`` and ``kill`` are timed from inside the
    app's call to them; everything else the app does for the request (outer
    middleware, routing, auth, body parsing, rendering) is "app". No HTTP
    server, no client: uvicorn's and the SDK's share is in the bare route.
    """
    from starlette.types import Message

    from pytest_kruise_agents.backends import SimBackend
    from pytest_kruise_agents.e2b.app import create_app
    from pytest_kruise_agents.e2b.settings import ApiKey, Settings

    backend = SimBackend.default(seed=1, replicas=replicas, nodes=replicas // 25 + 4)
    app = create_app(backend, Settings(api_keys=[ApiKey(key=API_KEY, team="default")]))
    inside = [0.0]

    def timed(fn: Any) -> Any:
        def call(*args: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args)
            finally:
                inside[0] += time.perf_counter() - t

        return call

    backend.create_sandbox = timed(backend.create_sandbox)  # type: ignore[method-assign]
    backend.kill = timed(backend.kill)  # type: ignore[method-assign]

    async def request(method: str, path: str, body: bytes) -> list[Message]:
        headers = [*SDK_HEADERS, (b"host", b"127.0.0.1:8000")]
        if body:
            headers += [(b"content-type", b"application/json"), (b"content-length", b"48")]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "root_path": "",
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
            "state": {},
        }
        sent: list[Message] = []
        delivered = False

        async def receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never goes away
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent

    async def run() -> list[tuple[float, float, float, float]]:
        out = []
        for i in range(n + 20):  # the first 20 warm up
            inside[0] = 0.0
            t0 = time.perf_counter()
            created = await request("POST", "/v2/sandboxes", SDK_CREATE_BODY)
            t1 = time.perf_counter()
            create_backend, inside[0] = inside[0], 0.0
            assert created[0]["status"] == 201, created
            sid = json.loads(created[1]["body"])["sandboxID"]
            killed = await request("DELETE", f"/sandboxes/{sid}", b"")
            await asyncio.sleep(0)  # the workspace cleanup the kill queued
            t2 = time.perf_counter()
            assert killed[0]["status"] == 204, killed
            if i >= 20:
                out.append((t1 - t0, create_backend, t2 - t1, inside[0]))
        await app.aclose()
        return out

    rows = asyncio.run(run())
    backend.close()

    def p50(values: list[float]) -> float:
        return statistics.median(values) * 1e6

    return {
        "create_us": p50([r[0] for r in rows]),
        "create_backend_us": p50([r[1] for r in rows]),
        "create_app_us": p50([r[0] - r[1] for r in rows]),
        "kill_us": p50([r[2] for r in rows]),
        "kill_backend_us": p50([r[3] for r in rows]),
        "kill_app_us": p50([r[2] - r[3] for r in rows]),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def create_kill(urls: dict[str, str], n: int, blocks: int = 20) -> dict[str, dict[str, float]]:
    """``n`` sequential create + kill through the SDK on each server; create latencies in ms.

    The servers take turns in ``blocks`` blocks, so that a change in the
    machine's load during the run weighs on each of them alike (the machine
    is shared). A server's rate is its creates over the time of its own blocks.
    """
    from e2b import Sandbox

    opts: dict[str, dict[str, Any]] = {
        name: {"api_key": API_KEY, "api_url": url, "sandbox_url": url} for name, url in urls.items()
    }
    for o in opts.values():
        for _ in range(20):  # warm up connections and code paths
            Sandbox.create(**o).kill()
    lat: dict[str, list[float]] = {name: [] for name in urls}
    wall = dict.fromkeys(urls, 0.0)
    for block in range(blocks):
        count = n // blocks + (1 if block < n % blocks else 0)
        for name, o in opts.items():
            t0 = time.perf_counter()
            for _ in range(count):
                t = time.perf_counter()
                sbx = Sandbox.create(**o)
                lat[name].append((time.perf_counter() - t) * 1000)
                sbx.kill()
            wall[name] += time.perf_counter() - t0
    return {
        name: {
            "p50_ms": statistics.median(lat[name]),
            "p99_ms": percentile(lat[name], 0.99),
            "per_s": n / wall[name],
        }
        for name in urls
    }


def commands(url: str, n: int) -> dict[str, float]:
    """``n`` sequential ``commands.run("true")`` in one sandbox (ms)."""
    from e2b import Sandbox

    sbx = Sandbox.create(api_key=API_KEY, api_url=url, sandbox_url=url)
    for _ in range(5):
        sbx.commands.run("true")
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        sbx.commands.run("true")
        lat.append((time.perf_counter() - t) * 1000)
    sbx.kill()
    return {"p50_ms": statistics.median(lat), "p99_ms": percentile(lat, 0.99)}


def idle_memory(count: int) -> dict[str, float]:
    """Server RSS before and after ``count`` claims that are never used."""
    from e2b import Sandbox

    child = Child("real", replicas=count + 50)
    try:
        opts: dict[str, Any] = {"api_key": API_KEY, "api_url": child.url, "sandbox_url": child.url}
        for _ in range(20):
            Sandbox.create(**opts).kill()
        before = child.rss_mib()
        for _ in range(count):
            Sandbox.create(**opts, timeout=3600)
        after = child.rss_mib()
    finally:
        child.stop()
    return {"before_mib": before, "after_mib": after, "added_mib": after - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--creates", type=positive_int, default=1000, help="create+kill calls (default 1,000)"
    )
    parser.add_argument(
        "--commands",
        type=positive_int,
        default=300,
        help='commands.run("true") calls (default 300)',
    )
    parser.add_argument(
        "--idle", type=positive_int, default=1000, help="idle claimed sandboxes (default 1,000)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    real = Child("real", replicas=args.creates + 100)
    bare = Child("bare")
    try:
        both = create_kill({"real": real.url, "bare": bare.url}, args.creates)
        sdk, base = both["real"], both["bare"]
        cmd = commands(real.url, args.commands)
    finally:
        real.stop()
        bare.stop()
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        split = pool.submit(server_breakdown, args.creates, args.creates + 100).result()
    mem = idle_memory(args.idle)

    out = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "create_kill": sdk,
        "bare_create_kill": base,
        "rate_ratio": sdk["per_s"] / base["per_s"],
        "server_in_process": split,
        "commands_run_true": cmd,
        "idle_sandboxes": args.idle,
        "idle_memory": mem,
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"machine: {out['machine']}, Python {out['python']}")
    print(
        f"Sandbox.create()+kill() x{args.creates}, warm pool, virtual clock: "
        f"create p50 {sdk['p50_ms']:.2f} ms, p99 {sdk['p99_ms']:.2f} ms, "
        f"{sdk['per_s']:.0f} create+kill/s   (goals: p50 < 5 ms, p99 < 20 ms)"
    )
    print(
        f"bare route (canned 201/204, same FastAPI+uvicorn stack): "
        f"create p50 {base['p50_ms']:.2f} ms, p99 {base['p99_ms']:.2f} ms, "
        f"{base['per_s']:.0f} create+kill/s"
    )
    print(f"rate ratio real/bare: {out['rate_ratio']:.2f}   (goal >= 0.5)")
    # Each figure is the median of its own series: the parts' medians need not add up
    # to the whole's, so the line says so rather than writing a sum.
    print(
        f"server side, in-process ASGI (no HTTP, no SDK), p50: create {split['create_us']:.0f} us: "
        f"backend (simulation) {split['create_backend_us']:.0f}, app {split['create_app_us']:.0f}; "
        f"kill {split['kill_us']:.0f} us: backend {split['kill_backend_us']:.0f}, app "
        f"{split['kill_app_us']:.0f} (each the median of its own series: the parts do not add up "
        "exactly)"
    )
    print(
        f'commands.run("true") x{args.commands}: p50 {cmd["p50_ms"]:.2f} ms, '
        f"p99 {cmd['p99_ms']:.2f} ms"
    )
    print(
        f"{args.idle} idle claimed sandboxes: server RSS {mem['before_mib']:.1f} -> "
        f"{mem['after_mib']:.1f} MiB, added {mem['added_mib']:.1f} MiB   (goal < 50 MiB)"
    )


if __name__ == "__main__":
    main()
