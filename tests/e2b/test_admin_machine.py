"""The admin API under ``/_kruise/`` interleaved with E2B SDK calls, as a Hypothesis state machine.

The rules drive one real server (uvicorn on 127.0.0.1, the virtual clock) over HTTP:
faults injected (harmless ones, and ones that fail the sandbox-manager's Sandbox updates or
deletes, with windows open now, ahead, closed already or never reached), cleared one by one
or all; latencies replaced, read and restored; the clock advanced; SandboxSets applied, read
and deleted; and each admin route sent bad input: wrong types, unknown fields, unknown fault
kinds, bad windows, unknown latency names, bad distributions, negative or huge advances,
unknown kinds and names, bodies that are not JSON, not UTF-8, too deep or over 1 MiB, under
any content type. Between them the real ``e2b`` SDK creates, kills, lists and sets the timeout
of sandboxes of team ``default``. After every rule the model is checked (docs/server.md,
Admin API; docs/profiles-and-faults.md):

- every error is one JSON body, ``{"code", "message", "field", "request_id"}``, with the
  documented status and the field named, and changes nothing: the faults (``fired`` too),
  the latencies, the clock, the records and every resource read the same after it;
- ``GET /_kruise/faults`` lists exactly the faults injected and not cleared, each as it was
  sent (``start``, ``duration``, ``probability``, ``selector``, ``code`` read back as given,
  or their defaults); a fault that can never fire (probability 0, a window closed before it
  was injected or far ahead) never does, and ``fired`` never goes down;
- ``GET /_kruise/latency`` reads each latency as it was last set (in its text form), or the
  profile's once restored, with ``changed`` saying which differ;
- an advance moves the clock by exactly its seconds, and nothing else of the admin API moves it;
- a fault failing the manager's Sandbox updates makes a create and a ``set_timeout`` answer
  500 while its window is surely open, a delete fault a kill; neither acts once its window
  has closed or it was cleared (calls at a window's edge may go either way);
- each create adds exactly one claim record (its error code 500 when it failed);
- the server logs no warning and no traceback.

Default run: a few derandomized examples (about 10 s). ``KRUISE_MACHINE_HUNT=1`` with
``KRUISE_MACHINE_EXAMPLES`` / ``KRUISE_MACHINE_STEPS`` (tests/machines.py) hunts longer.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from e2b import Sandbox
from e2b.exceptions import NotFoundException, SandboxException
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.machines import machine_settings

from .conftest import ADMIN, ALICE, LogErrors, Served, serve_logged

LAG = 5.0
"""How far from a window's edge (virtual seconds) a call may land on either side of it:
the manager's write follows the request by its API latency, a pick or two."""
FAR = 1e7
"""A start no advance of the machine reaches (virtual seconds from now)."""
EPOCH = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
POOL = "base"
SCRATCH = ("scratch-a", "scratch-b")
"""SandboxSets the machine applies and deletes (namespace ``other``, no replicas)."""
MAX_BODY = 1024 * 1024

UPDATE = {"client": "sandbox-manager", "verb": "update", "kind": "Sandbox"}
"""Fails the manager's lock of a pool sandbox (a create) and its timeout writes."""
DELETE = {"client": "sandbox-manager", "verb": "delete"}
"""Fails the manager's delete of a killed sandbox."""

LATENCY_NAMES = ("image.pull", "pod.create", "container.start", "scheduler.bind", "pod.stop")
"""Latencies of the pool's refill: any value here keeps a warm claim as it is. (A
``runtime.init`` over the manager's 1 s ``/init`` timeout fails every claim.)"""
LATENCY_VALUES: list[tuple[Any, str]] = [
    (0.25, "fixed(250ms)"),
    (3, "fixed(3s)"),
    (0, "fixed(0s)"),
    ("1.5s", "fixed(1.5s)"),
    ("exp(500ms)", "exp(500ms)"),
    ("uniform(0, 2s)", "uniform(0s, 2s)"),
    ("uniform(100ms, 500ms)", "uniform(100ms, 500ms)"),
    ("lognormal(median=200ms, p99=2s)", "lognormal(median=200ms, p99=2s)"),
    ("normal(mean=1s, stddev=200ms)", "normal(mean=1s, stddev=200ms)"),
    ("empirical(10ms, 20ms)", "empirical(10ms, 20ms)"),
    ({"kind": "fixed", "value": 1.5}, "fixed(1.5s)"),
    ({"kind": "exponential", "mean": 0.5}, "exp(500ms)"),
]
"""A value a PUT may send, and the text form GET reads back."""

CONTENT_TYPES: list[str | None] = [
    None,
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
]
"""The admin API reads JSON whatever the request says it is (as curl -d sends it)."""
THEN = st.sampled_from([None, "create", "set_timeout", "kill", "list"])
"""An E2B call made right after a rule that changes the faults or the time: whether the
faults act on it (or no longer do)."""


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def seconds_of(when: str) -> float:
    """Virtual seconds since the epoch of an RFC 3339 answer (microseconds)."""
    return (datetime.fromisoformat(when.replace("Z", "+00:00")) - EPOCH).total_seconds()


@dataclass(frozen=True, repr=False)
class Bad:
    """A request the admin API refuses: its ``status``, and the ``field`` its error names;
    ``says``, how the message starts (the field, by default; ``request body`` for the 413 of
    the body limit)."""

    method: str
    path: str
    body: bytes | None
    status: int
    field: str | None
    says: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:  # a body of 1 MiB is shown by its start and its length
        body = self.body if self.body is None or len(self.body) <= 80 else self.body[:60]
        more = "" if body is self.body else f"... ({len(self.body or b'')} bytes)"
        query = f"?{self.params}" if self.params else ""
        return f"Bad({self.method} {self.path}{query} {body!r}{more} -> {self.status} {self.field})"


def bad(
    method: str, path: str, body: Any, status: int, field: str | None, says: str | None = None
) -> Bad:
    raw = body if isinstance(body, bytes) or body is None else j(body)
    return Bad(method, path, raw, status, field, says)


FAULTS_BAD: list[tuple[Any, int, str | None]] = [
    ({"kind": "meteor_strike"}, 400, "kind"),
    ({"kind": "api_errors"}, 400, "kind"),
    ({"kind": 5}, 400, "kind"),
    ({"kind": None}, 400, "kind"),
    ({}, 400, "kind"),
    ({"probability": 1}, 400, "kind"),
    ({"kind": "api_error", "probability": 7}, 400, "probability"),
    ({"kind": "api_error", "probability": -0.1}, 400, "probability"),
    ({"kind": "api_error", "probability": "0.5"}, 400, "probability"),
    ({"kind": "api_error", "probability": True}, 400, "probability"),
    (b'{"kind": "api_error", "probability": NaN}', 400, "probability"),
    ({"kind": "api_error", "bogus": 1}, 400, "bogus"),
    ({"kind": "api_error", "probabilty": 0.5}, 400, "probabilty"),
    ({"kind": "pod_kill", "duration": 0}, 400, "duration"),
    ({"kind": "pod_kill", "duration": -1}, 400, "duration"),
    ({"kind": "pod_kill", "duration": "soon"}, 400, "duration"),
    ({"kind": "api_error", "duration": 1e-300}, 400, "duration"),
    ({"kind": "node_loss", "start": 60, "duration": 1e15}, 400, "duration"),
    ({"kind": "pod_kill", "start": -1}, 400, "start"),
    ({"kind": "pod_kill", "start": 1e300}, 400, "start"),
    ({"kind": "api_error", "start": "x"}, 400, "start"),
    (b'{"kind": "api_error", "start": Infinity}', 400, "start"),
    ({"kind": "api_error", "code": 200}, 400, "code"),
    ({"kind": "api_error", "code": "500"}, 400, "code"),
    ({"kind": "pod_kill", "code": 503}, 400, "code"),
    ({"kind": "controller_stall", "count": 1}, 400, "count"),
    ({"kind": "pod_kill", "count": 0}, 400, "count"),
    ({"kind": "api_error", "count": 1.5}, 400, "count"),
    ({"kind": "api_error", "id": "a/b"}, 400, "id"),
    ({"kind": "api_error", "id": ".."}, 400, "id"),
    ({"kind": "api_error", "id": 5}, 400, "id"),
    ({"kind": "api_error", "fired": 3}, 400, "fired"),
    ({"kind": "api_error", "selector": None}, 400, "selector"),
    ({"kind": "api_error", "selector": {"client": "kubelet/node-9"}}, 400, "selector.client"),
    ({"kind": "pod_kill", "selector": {"verb": "update"}}, 400, "selector"),
    ({"kind": "watch_lag"}, 400, "latency"),
    ({"kind": "watch_lag", "latency": "soon"}, 400, "latency"),
    ({"kind": "pod_kill", "latency": "1s"}, 400, "latency"),
    ([1, 2], 400, "body"),
    ("api_error", 400, "body"),
    (None, 400, "body"),
    (b"", 400, "body"),
    (b"{", 400, "body"),
    (b"kind=api_error", 400, "body"),
    (b"\xff\xfe{}", 400, "body"),
    ('{"kind": "x"}'.encode("utf-16"), 400, "body"),
    (b'{"kind": "api_error", "probability": 0, "x": ' + nested(300) + b"}", 400, "body"),
    (b'{"kind": "api_error", "pad": "' + b"x" * MAX_BODY + b'"}', 413, "body"),
]

ADVANCES_BAD: list[tuple[Any, int, str | None]] = [
    ({"seconds": -1}, 400, "seconds"),
    ({"seconds": -1e-9}, 400, "seconds"),
    ({"seconds": "5"}, 400, "seconds"),
    ({"seconds": True}, 400, "seconds"),
    ({"seconds": None}, 400, "seconds"),
    ({"seconds": [5]}, 400, "seconds"),
    ({"seconds": {"s": 5}}, 400, "seconds"),
    ({"seconds": 3e11}, 400, "seconds"),
    ({"seconds": 1e300}, 400, "seconds"),
    ({"seconds": 10**30}, 400, "seconds"),
    (b'{"seconds": NaN}', 400, "seconds"),
    (b'{"seconds": Infinity}', 400, "seconds"),
    (b'{"seconds": -Infinity}', 400, "seconds"),
    (b'{"seconds": 1e400}', 400, "seconds"),
    ({}, 400, "seconds"),
    ({"seconds": 1, "minutes": 1}, 400, "minutes"),
    ([1], 400, "body"),
    (b"", 400, "body"),
    (b"\xff", 400, "body"),
    (b"seconds=5", 400, "body"),
    (b'{"seconds": 1, "x": ' + nested(250) + b"}", 400, "body"),
    (b'{"seconds": 1, "pad": "' + b"x" * MAX_BODY + b'"}', 413, "body"),
]

LATENCY_BODIES_BAD: list[tuple[Any, int, str | None]] = [
    ({"value": "1s", "extra": 1}, 400, "extra"),
    ({}, 400, "value"),
    ([], 400, "body"),
    ("1s", 400, "body"),
    (b"", 400, "body"),
    (b"\xff", 400, "body"),
    (b"value=1s", 400, "body"),
    (b'{"value": ' + nested(300) + b"}", 400, "body"),
    (b'{"value": "' + b"1" * MAX_BODY + b'"}', 413, "body"),
]
"""Bodies refused before the path's name is looked at (whatever the name)."""

LATENCY_VALUES_BAD: list[Any] = [
    "soonish",
    None,
    True,
    [1],
    -1,
    "1e300s",
    "uniform(3s, 1s)",
    "exp(0s)",
    "fixed(-1s)",
    "lognormal(median=1ms, p99=1e300)",
    "exp(1e300)",
    {"dist": "exp", "mean": 2},
    {"kind": "nope"},
    "\udcff",
]
"""Values refused 400 naming ``value`` (a known name), 404 naming ``name`` (an unknown one)."""

UNKNOWN_LATENCIES = ("teleport", "image.pul", "IMAGE.PULL", "image.pull.x", "%C3%A9")

APPLIES_BAD: list[tuple[bytes, int, str | None]] = [
    (b"", 400, "body"),
    (b"  \n\t\n", 400, "body"),
    (b"kind: SandboxSet\nmetadata: {name: caf\xe9}\n", 400, "body"),
    (b"{{{", 400, "manifest"),
    (b"a: b: c", 400, "manifest"),
    (b"\x00", 400, "manifest"),
    (b"!!python/object:os.system {}", 400, "manifest"),
    (b"kind: Nope\napiVersion: v1\nmetadata: {name: x}", 400, "document[0] kind"),
    (b"- 1\n- 2", 400, "document[0][0]"),
    (b"42", 400, "document[0]"),
    (b"{}", 400, "document[0] kind"),
    (b"kind: SandboxSet", 400, "document[0] apiVersion"),
    (
        b"kind: SandboxSet\napiVersion: agents.kruise.io/v1alpha1\nmetadata: {name: scratch-a,"
        b" namespace: other}\nspec: {replicas: -1}",
        400,
        "SandboxSet/scratch-a spec.replicas",
    ),
    (
        b'{"kind": "SandboxSet", "apiVersion": "agents.kruise.io/v1alpha1", '
        b'"metadata": {"name": "scratch-a", "namespace": "other", "bogus": 1}}',
        400,
        "SandboxSet/scratch-a metadata.bogus",
    ),
    (b'{"kind": "SandboxSet", "x": ' + nested(300) + b"}", 400, "body"),
    (nested(300), 400, "body"),
    (b"x" * (MAX_BODY + 1), 413, "body"),
]

KINDS = ("sbs", "sandboxsets", "SandboxSet", "sbx", "sbc", "sbt", "pods", "po")
UNKNOWN_KINDS = ("widgets", "deployments", "sandboxsetz", "Sandboxes2", "x")
ABSENT = ("nope", "scratch-zz", "UPPER", "x" * 300)

BAD: dict[str, list[Bad]] = {
    "inject": [bad("POST", "/faults", b, s, f) for b, s, f in FAULTS_BAD],
    "clear": [
        bad("DELETE", f"/faults/{i}", None, 404, "fault_id", "Fault ")
        for i in ("nope", "api_error-999999", "%20", "a.b", "%C3%A9")
    ],
    "advance": [bad("POST", "/clock/advance", b, s, f) for b, s, f in ADVANCES_BAD],
    "latency body": [
        bad("PUT", f"/latency/{n}", b, s, f)
        for n in ("image.pull", "teleport")
        for b, s, f in LATENCY_BODIES_BAD
    ],
    "latency value": [
        bad("PUT", f"/latency/{n}", {"value": v}, 400, "value")
        for n in LATENCY_NAMES[:2]
        for v in LATENCY_VALUES_BAD
    ],
    "latency name": [
        bad(
            m, f"/latency/{n}", {"value": v} if m == "PUT" else None, 404, "name", "unknown latency"
        )
        for n in UNKNOWN_LATENCIES
        for m in ("GET", "PUT", "DELETE")
        for v in ("1s", "soonish")
    ],
    "apply": [bad("POST", "/apply", b, s, f) for b, s, f in APPLIES_BAD],
    "kind": [
        bad(m, p, None, 404, "kind", "the server doesn't have a resource type")
        for k in UNKNOWN_KINDS
        for m, p in (
            ("GET", f"/resources/{k}"),
            ("GET", f"/resources/{k}/default/{POOL}"),
            ("DELETE", f"/resources/{k}/default/{POOL}"),
        )
    ],
    "name": [
        bad(m, f"/resources/{k}/default/{n}", None, 404, "name", "")
        for k in KINDS
        for n in ABSENT
        for m in ("GET", "DELETE")
    ],
    "format": [
        *(
            Bad("GET", p, None, 400, "format", params=(("format", f),))
            for k in KINDS
            for f in ("xml", "", "JSON")
            for p in (f"/resources/{k}", f"/resources/{k}/default/{POOL}")
        ),
        *(
            Bad(
                "GET",
                f"/resources/{k}/default/{POOL}",
                None,
                400,
                "format",
                params=(("format", "table"),),
            )
            for k in KINDS
        ),
    ],
}
"""Every refused request the machine sends, by what is wrong (drawn evenly)."""
A_BAD = st.sampled_from(sorted(BAD)).flatmap(lambda what: st.sampled_from(BAD[what]))


@dataclass
class FaultModel:
    """One injected fault: what it read back as, and whether it can fire at all."""

    body: dict[str, Any]  # the fault as POST answered it, without ``fired``
    inert: bool  # probability 0, or a window closed before it was injected, or far ahead
    blocks: str | None  # "update" or "delete": the manager's writes it fails
    fired: int = 0

    @property
    def start(self) -> float:
        return float(self.body["start"])

    @property
    def end(self) -> float:
        d = self.body["duration"]
        return math.inf if d is None else self.start + float(d)

    def open_over(self, t: float) -> bool:
        """Surely open for a call made at ``t``: from before it to :data:`LAG` past it."""
        return not self.inert and self.start <= t and t + LAG < self.end

    def touches(self, t0: float, t1: float) -> bool:
        """May have been open at some moment of a call from ``t0`` to ``t1``."""
        return not self.inert and self.start <= t1 + LAG and t0 - LAG < self.end


@dataclass
class Box:
    """One sandbox of alice's: its end lies between ``end_lo`` and ``end_hi``."""

    sid: str
    end_lo: float
    end_hi: float


HARMLESS: list[dict[str, Any]] = [
    # Probability 0: consulted, never fires.
    {"kind": "api_conflict", "probability": 0},
    {"kind": "api_error", "probability": 0, "selector": UPDATE},
    {"kind": "pod_start_failure", "probability": 0, "selector": {"template": POOL}},
    {"kind": "runtime_init_failure", "probability": 0.0, "code": 503},
    {"kind": "runtime_unreachable", "probability": 0},
    {"kind": "csi_mount_failure", "probability": 0},
    {"kind": "watch_lag", "probability": 0, "latency": "1s"},
    {"kind": "api_latency", "probability": 0, "latency": 2},
    {"kind": "image_pull_slow", "probability": 0, "latency": "exp(2s)"},
    # A window no advance of the machine reaches (10,000 hours from the epoch).
    {"kind": "node_loss", "start": "10000h", "duration": "2m"},
    {"kind": "pod_kill", "start": "10000h", "count": 2},
    {"kind": "controller_stall", "start": "10000h", "duration": 30},
    {"kind": "api_error", "start": "10000h", "code": 503, "selector": DELETE},
]
"""Faults that never fire here, whatever the machine does."""

VERB = st.sampled_from(["update", "delete"])
CODE = st.sampled_from([None, 500, 503, 429, 502])
WINDOW = st.sampled_from(
    [
        (None, 30),  # from now (first: the examples Hypothesis draws first are its simplest)
        (None, None),  # from now, until cleared
        (None, "1m30s"),
        (-200.0, 100),  # closed before it was injected
        (-10.0, 100),  # opened in the past, still open
        (20.0, 40),  # opens ahead
        (5.0, None),
    ]
)
"""A blocking fault's window: its start from now, and its duration."""
OUTLIVE = st.sampled_from([True, True, False])
"""Whether the clock then passes the window's close, where the fault fails nothing."""

DURATIONS: dict[Any, float | None] = {
    None: None,
    30: 30.0,
    100: 100.0,
    40: 40.0,
    "2m": 120.0,
    "1m30s": 90.0,
}
"""A ``duration`` sent, and the seconds it reads back as."""


class AdminMachine(RuleBasedStateMachine):
    """One server: its admin API and alice's sandboxes, against a model."""

    served: ClassVar[Served]
    log: ClassVar[LogErrors]

    def __init__(self) -> None:
        super().__init__()
        self.faults: list[FaultModel] = []
        self.latency: dict[str, str] = {}
        self.profile: dict[str, str] = {}
        self.now = 0.0
        self.record_id = 0
        self.boxes: dict[str, Box] = {}
        self.scratch: dict[str, str | None] = {}  # name -> its note; None: being deleted
        self.http = httpx.Client(
            base_url=self.served.url + "/_kruise", headers={"X-API-Key": ADMIN}, timeout=60
        )

    # -- helpers ------------------------------------------------------------------------------

    def admin(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content: bytes | None = None,
        content_type: str | None = None,
        params: Any = None,
    ) -> httpx.Response:
        """An admin call: ``body`` as JSON, or ``content`` under ``content_type`` (or none)."""
        headers = {}
        if body is not None:
            content, content_type = j(body), content_type or "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        return self.http.request(method, path, headers=headers, content=content, params=params)

    def ok(self, r: httpx.Response, status: int = 200) -> Any:
        assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
        if status == 204:
            assert r.content == b""
            return None
        assert r.headers["content-type"] == "application/json", r.headers
        return r.json()

    def clock(self) -> float:
        return seconds_of(self.ok(self.admin("GET", "/clock"))["now"])

    def records(self) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = self.ok(self.admin("GET", "/records"))
        return got

    def snapshot(self) -> dict[str, Any]:
        """Everything a refused request must leave as it was."""
        resources = {
            kind: [
                (
                    o["metadata"].get("namespace"),
                    o["metadata"]["name"],
                    o["metadata"]["resourceVersion"],
                )
                for o in self.ok(self.admin("GET", f"/resources/{kind}"))["items"]
            ]
            for kind in ("sbs", "sbc", "sbt", "sbx")
        }
        records = self.records()
        return {
            "faults": self.ok(self.admin("GET", "/faults")),
            "latency": self.ok(self.admin("GET", "/latency")),
            "clock": self.ok(self.admin("GET", "/clock")),
            "records": records[-1]["id"] if records else 0,
            "resources": resources,
        }

    def stock(self) -> int:
        pool = self.ok(self.admin("GET", f"/resources/sbs/default/{POOL}"))
        return int(pool["status"].get("availableReplicas") or 0)

    def blocking(self, verb: str) -> list[FaultModel]:
        return [f for f in self.faults if f.blocks == verb]

    def failed_by_fault(self, verb: str, t0: float, t1: float, message: str) -> None:
        """A call from ``t0`` to ``t1`` answered an injected error: 500, from a fault of ``verb``
        that may have been open then and that fired for it."""
        assert message.startswith("500: ") and "injected" in message, message
        after = {f["id"]: f["fired"] for f in self.ok(self.admin("GET", "/faults"))}
        grew = [
            f
            for f in self.blocking(verb)
            if f.touches(t0, t1) and after.get(f.body["id"], 0) > f.fired
        ]
        assert grew, (verb, message, "no fault of it was open and fired", t0, t1, after)

    def not_failed(self, verb: str, t: float) -> None:
        """A call made at ``t`` went through: no fault of ``verb`` was surely open."""
        surely = [f.body for f in self.blocking(verb) if f.open_over(t)]
        assert not surely, (verb, "went through a fault surely open", t, surely)

    def surely_gone(self, box: Box, t: float) -> bool:
        return t > box.end_hi + LAG

    def surely_live(self, box: Box, t: float) -> bool:
        return t < box.end_lo - LAG

    # -- setup --------------------------------------------------------------------------------

    @initialize(
        verb=VERB,
        code=CODE,
        window=WINDOW,
        content_type=st.sampled_from(CONTENT_TYPES),
        outlive=OUTLIVE,
    )
    def start(
        self,
        verb: str,
        code: int | None,
        window: tuple[float | None, Any],
        content_type: str | None,
        outlive: bool,
    ) -> None:
        """The server as it opened, and a fault failing the manager's writes, tried at once
        (so that every example tries one)."""
        self.log.records.clear()
        self.ok(self.admin("DELETE", "/faults"), 204)
        table = self.ok(self.admin("DELETE", "/latency"))
        self.latency = {e["name"]: e["value"] for e in table}
        self.profile = {e["name"]: e["profile"] for e in table}
        assert all(not e["changed"] and e["value"] == e["profile"] for e in table), table
        for name in SCRATCH:
            self.admin("DELETE", f"/resources/sbs/other/{name}")
        for left in Sandbox.list(**self.served.sdk(ALICE)).next_items():
            Sandbox.kill(left.sandbox_id, **self.served.sdk(ALICE))
        # The pool refills, a scratch set deleted in the last example goes.
        self.ok(self.admin("POST", "/clock/advance", {"seconds": 60}))
        self.now = self.clock()
        records = self.records()
        self.record_id = records[-1]["id"] if records else 0
        self.inject_blocking(verb, code, window, content_type, outlive)

    # -- faults -------------------------------------------------------------------------------

    @rule(fault=st.sampled_from(HARMLESS), content_type=st.sampled_from(CONTENT_TYPES))
    def inject_harmless(self, fault: dict[str, Any], content_type: str | None) -> None:
        """A fault that never fires here: listed as sent, its ``fired`` stays 0."""
        got = self.admin("POST", "/faults", content=j(fault), content_type=content_type)
        self.injected(self.ok(got, 201), fault, inert=True, blocks=None)

    @precondition(lambda self: len(self.faults) < 12)
    @rule(
        verb=VERB,
        code=CODE,
        window=WINDOW,
        content_type=st.sampled_from(CONTENT_TYPES),
        outlive=OUTLIVE,
    )
    def inject_blocking(
        self,
        verb: str,
        code: int | None,
        window: tuple[float | None, Any],
        content_type: str | None,
        outlive: bool,
    ) -> None:
        """A fault failing the manager's Sandbox updates (a create's lock, a timeout) or its
        deletes (a kill), with a window open now, ahead, or closed already."""
        offset, duration = window
        fault: dict[str, Any] = {
            "kind": "api_error",
            "selector": UPDATE if verb == "update" else DELETE,
        }
        if code is not None:
            fault["code"] = code
        if offset is not None:
            fault["start"] = self.now + offset
        if duration is not None:
            fault["duration"] = duration
        got = self.ok(
            self.admin("POST", "/faults", content=j(fault), content_type=content_type), 201
        )
        closed = got["duration"] is not None and got["start"] + got["duration"] <= self.now
        self.injected(got, fault, inert=closed, blocks=verb)
        self.probe(verb)  # failed if its window is open now
        if outlive:  # then past its window's close, where it fails nothing
            self.to_window_edge(len(self.faults) - 1, "close", True, only=self.faults[-1])

    def injected(
        self, got: dict[str, Any], sent: dict[str, Any], *, inert: bool, blocks: str | None
    ) -> None:
        """The fault reads back as sent (its defaults where omitted)."""
        assert got["kind"] == sent["kind"] and got["fired"] == 0, got
        assert got["probability"] == float(sent.get("probability", 1)), got
        assert got["selector"] == sent.get("selector", {}), got
        assert got["code"] == sent.get("code", 500), got
        assert got["count"] == sent.get("count"), got
        start = sent.get("start")
        if start is None:  # now
            assert abs(got["start"] - self.now) <= 1e-6, (got, self.now)
        elif isinstance(start, str):
            assert got["start"] == float(start.removesuffix("h")) * 3600, got
        else:
            assert got["start"] == float(start), got
        assert got["duration"] == DURATIONS[sent.get("duration")], got
        assert (got["latency"] is None) == ("latency" not in sent), got
        self.faults.append(
            FaultModel({k: v for k, v in got.items() if k != "fired"}, inert, blocks)
        )

    @precondition(lambda self: self.faults)
    @rule(pick=st.integers(0, 100), again=st.booleans(), then=THEN)
    def clear_one(self, pick: int, again: bool, then: str | None) -> None:
        """A fault cleared by id; once cleared, its id is unknown (404), or taken afresh."""
        fault = self.faults.pop(pick % len(self.faults))
        fault_id = fault.body["id"]
        self.ok(self.admin("DELETE", f"/faults/{fault_id}"), 204)
        before = self.snapshot()
        if again:
            self.refused(
                self.admin("DELETE", f"/faults/{fault_id}"),
                Bad("DELETE", "", None, 404, "fault_id", "Fault "),
                before,
            )
        else:
            reuse = {"kind": "api_conflict", "probability": 0, "id": fault_id}
            got = self.ok(self.admin("POST", "/faults", reuse), 201)
            assert got["id"] == fault_id, got
            self.injected(got, reuse, inert=True, blocks=None)
            before = self.snapshot()
            self.refused(
                self.admin("POST", "/faults", reuse), Bad("POST", "", None, 400, "id"), before
            )
        self.then(then)

    # What rules are enabled must not depend on the server's answers (Hypothesis replays
    # examples against a server whose history has moved on): a rule that finds nothing to
    # act on (no sandbox, no open window) does nothing instead.
    @rule(pick=st.integers(0, 100), edge=st.sampled_from(["open", "close"]), past=st.booleans())
    def to_window_edge(
        self, pick: int, edge: str, past: bool, only: FaultModel | None = None
    ) -> None:
        """The clock moved to just before or just past an edge of a blocking fault's window
        (its opening or its close), then the calls it fails made: failed while the window
        is surely open, answered once it has surely closed."""
        faults = [f for f in self.faults if f.blocks and not f.inert and only in (None, f)]
        if not faults:
            return
        fault = faults[pick % len(faults)]
        at = fault.start if edge == "open" else fault.end
        target = at + (LAG + 1 if past else -(LAG + 1))
        if math.isfinite(target) and target > self.now:
            self.advance(round(target - self.now, 3), None)
        self.probe(fault.blocks)

    @rule(then=THEN)
    def clear_all(self, then: str | None) -> None:
        self.ok(self.admin("DELETE", "/faults"), 204)
        self.faults.clear()
        self.then(then)

    # -- latency ------------------------------------------------------------------------------

    @rule(
        name=st.sampled_from(LATENCY_NAMES),
        value=st.sampled_from(LATENCY_VALUES),
        content_type=st.sampled_from(CONTENT_TYPES),
    )
    def set_latency(self, name: str, value: tuple[Any, str], content_type: str | None) -> None:
        """A latency replaced: answered as sent, read back in its text form, which reads back
        as itself."""
        sent, text = value
        r = self.admin(
            "PUT", f"/latency/{name}", content=j({"value": sent}), content_type=content_type
        )
        assert self.ok(r) == {"name": name, "value": sent}
        self.latency[name] = text
        one = self.ok(self.admin("GET", f"/latency/{name}"))
        changed = text != self.profile[name]
        assert one == {
            "name": name,
            "value": text,
            "profile": self.profile[name],
            "changed": changed,
        }
        assert self.ok(self.admin("PUT", f"/latency/{name}", {"value": text}))["value"] == text

    @rule(name=st.sampled_from((None, *LATENCY_NAMES)))
    def restore(self, name: str | None) -> None:
        """One latency or all put back to the profile's."""
        if name is None:
            table = self.ok(self.admin("DELETE", "/latency"))
            self.latency = dict(self.profile)
            assert [e["name"] for e in table] == list(self.profile)
            assert not any(e["changed"] for e in table)
            return
        got = self.ok(self.admin("DELETE", f"/latency/{name}"))
        self.latency[name] = self.profile[name]
        profile = self.profile[name]
        assert got == {"name": name, "value": profile, "profile": profile, "changed": False}

    # -- clock --------------------------------------------------------------------------------

    @rule(seconds=st.sampled_from([0, 0.5, 1, 7, 25, 30, 61, 120, 299, 301]), then=THEN)
    def advance(self, seconds: float, then: str | None) -> None:
        """The clock moves by exactly ``seconds``; a scratch SandboxSet deleted is gone."""
        before = self.served.backend.cluster.now
        got = self.ok(self.admin("POST", "/clock/advance", {"seconds": seconds}))
        after = self.served.backend.cluster.now
        assert after == before + seconds, (before, seconds, after)
        assert abs(seconds_of(got["now"]) - (self.now + seconds)) <= 1e-6, (got, self.now)
        assert got == self.ok(self.admin("GET", "/clock"))
        self.now = seconds_of(got["now"])
        for name, note in list(self.scratch.items()):
            if note is None and seconds >= 1:
                r = self.admin("GET", f"/resources/sbs/other/{name}")
                assert r.status_code == 404, r.text
                del self.scratch[name]
        self.then(then)

    # -- resources ----------------------------------------------------------------------------

    @precondition(lambda self: all(v is not None for v in self.scratch.values()))
    @rule(
        name=st.sampled_from(SCRATCH),
        note=st.sampled_from(["a", "b", "caf\u00e9", "\ud800"]),
        as_json=st.booleans(),
    )
    def apply(self, name: str, note: str, as_json: bool) -> None:
        """A SandboxSet of no replicas applied (created or updated), as JSON or YAML."""
        doc = {
            "apiVersion": "agents.kruise.io/v1alpha1",
            "kind": "SandboxSet",
            "metadata": {"name": name, "namespace": "other", "annotations": {"note": note}},
            "spec": {
                "replicas": 0,
                "template": {"spec": {"containers": [{"name": "c", "image": "python:3.12"}]}},
            },
        }
        content = j(doc) if as_json else yaml.safe_dump(doc).encode()
        got = self.ok(self.admin("POST", "/apply", content=content))
        stored = "\ufffd" if note == "\ud800" else note
        (item,) = got["items"]
        assert item["metadata"]["annotations"]["note"] == stored, item
        self.scratch[name] = stored
        assert self.ok(self.admin("GET", f"/resources/sbs/other/{name}")) == item

    @precondition(lambda self: any(v is not None for v in self.scratch.values()))
    @rule(pick=st.integers(0, 10))
    def delete_scratch(self, pick: int) -> None:
        names = sorted(n for n, v in self.scratch.items() if v is not None)
        name = names[pick % len(names)]
        got = self.ok(self.admin("DELETE", f"/resources/sandboxsets/other/{name}"))
        assert got["details"] == {"kind": "SandboxSet", "namespace": "other", "name": name}
        self.scratch[name] = None

    # -- refused ------------------------------------------------------------------------------

    @rule(
        bads=st.lists(
            st.tuples(A_BAD, st.sampled_from(CONTENT_TYPES)),
            min_size=1,
            max_size=6,
        )
    )
    def refuse(self, bads: list[tuple[Bad, str | None]]) -> None:
        """Bad input of any route, under any content type: each one JSON error, and together
        they changed nothing."""
        before = self.snapshot()
        for bad, content_type in bads:
            r = self.admin(
                bad.method, bad.path, content=bad.body, content_type=content_type, params=bad.params
            )
            self.refused(r, bad)
        assert self.snapshot() == before, bads

    def refused(self, r: httpx.Response, bad: Bad, before: dict[str, Any] | None = None) -> None:
        """``r`` is one JSON error of ``bad.status`` naming ``bad.field``; nothing changed
        since ``before`` (if given)."""
        what = (r.request.method, str(r.request.url)[:120], r.status_code, r.text[:500])
        assert r.status_code == bad.status, what
        assert r.headers["content-type"] == "application/json", what
        body = r.json()
        assert isinstance(body, dict) and body["code"] == bad.status, what
        assert isinstance(body["request_id"], str) and body["request_id"], what
        assert isinstance(body["message"], str) and body["message"], what
        assert body.get("field") == bad.field, what
        says = bad.says if bad.says is not None else bad.field
        if bad.says is None and bad.status == 413:
            says = "request body"  # "request body is larger than the limit of ... bytes"
        assert body["message"].startswith(says or ""), what
        assert set(body) <= {"code", "message", "field", "request_id"}, what
        if before is not None:
            assert self.snapshot() == before, what

    # -- E2B ----------------------------------------------------------------------------------

    def probe(self, verb: str | None) -> None:
        """The calls the faults of ``verb`` fail: a create and a timeout (update), a kill
        (delete: of a sandbox created for it if there is none)."""
        self.create(120)
        if verb == "update":
            self.set_timeout(0, 90)
        elif verb == "delete":
            self.kill(0)

    def then(self, call: str | None) -> None:
        """The E2B call a rule draws to follow it (each does nothing if it cannot be made)."""
        if call == "create":
            self.create(120)
        elif call == "set_timeout":
            self.set_timeout(0, 90)
        elif call == "kill":
            self.kill(0)
        elif call == "list":
            self.list_sandboxes()

    @rule(timeout=st.sampled_from([60, 120, 300, 600]))
    def create(self, timeout: int) -> None:
        """A create: failed 500 by an update fault surely open; else delivered (with stock)."""
        if len(self.boxes) >= 3:  # the pool's 4 stay enough
            return
        stock = self.stock()
        t0 = self.clock()
        try:
            sbx = Sandbox.create(template=POOL, timeout=timeout, **self.served.sdk(ALICE))
        except SandboxException as exc:
            t1 = self.clock()
            if "injected" in str(exc) or stock:
                self.failed_by_fault("update", t0, t1, str(exc))
            else:
                # No stock by the claim timeout.
                assert str(exc).startswith("500: "), exc
            self.recorded(failed=True)
        else:
            t1 = self.clock()
            if stock:
                self.not_failed("update", t0)
            self.boxes[sbx.sandbox_id] = Box(sbx.sandbox_id, t0 + timeout, t1 + timeout)
            self.recorded(failed=False)
        self.now = t1

    def recorded(self, *, failed: bool) -> None:
        """The create made one claim record, the next id."""
        new = [r for r in self.records() if r["id"] > self.record_id]
        assert [r["id"] for r in new] == [self.record_id + 1], [r["id"] for r in new]
        (rec,) = new
        assert rec["template"] == POOL and rec["owner"] == "alice", rec
        if failed:
            assert rec["error_code"] == 500 and rec["delivered"] is None, rec
        else:
            assert rec["error_code"] is None and rec["delivered"] is not None, rec
        self.record_id = rec["id"]

    @rule(pick=st.integers(0, 10))
    def kill(self, pick: int) -> None:
        """A kill: failed 500 by a delete fault surely open (the sandbox stays); else done."""
        if not self.boxes:
            return
        box = sorted(self.boxes.values(), key=lambda b: b.sid)[pick % len(self.boxes)]
        t0 = self.clock()
        try:
            killed = Sandbox.kill(box.sid, **self.served.sdk(ALICE))
        except SandboxException as exc:
            t1 = self.clock()
            self.failed_by_fault("delete", t0, t1, str(exc))
            if self.surely_gone(box, t1):
                del self.boxes[box.sid]
        else:
            t1 = self.clock()
            if self.surely_live(box, t1):
                assert killed, box
                self.not_failed("delete", t0)
            if self.surely_gone(box, t0):
                assert not killed, box
            del self.boxes[box.sid]
        self.now = t1

    @rule(pick=st.integers(0, 10), timeout=st.sampled_from([30, 90, 400]))
    def set_timeout(self, pick: int, timeout: int) -> None:
        """A new timeout: failed 500 by an update fault surely open; else the new end."""
        if not self.boxes:
            return
        box = sorted(self.boxes.values(), key=lambda b: b.sid)[pick % len(self.boxes)]
        t0 = self.clock()
        try:
            Sandbox.set_timeout(box.sid, timeout, **self.served.sdk(ALICE))
        except NotFoundException:
            assert not self.surely_live(box, t0), box
            del self.boxes[box.sid]
        except SandboxException as exc:
            self.failed_by_fault("update", t0, self.clock(), str(exc))
        else:
            t1 = self.clock()
            assert not self.surely_gone(box, t0), box
            # End times are whole seconds (truncated, as metav1.Time): a timeout that ends in
            # the second the sandbox already ends in writes nothing (the manager's mutate
            # returns nil), so no fault on its writes can fail it.
            same = math.floor(t0 + timeout - 1e-6) <= math.floor(box.end_hi + 1e-6) and (
                math.floor(box.end_lo - 1e-6) <= math.floor(t1 + timeout + 1e-6)
            )
            if not same:
                self.not_failed("update", t0)
            box.end_lo, box.end_hi = t0 + timeout, t1 + timeout
        self.now = self.clock()

    @rule()
    def list_sandboxes(self) -> None:
        """The list shows every sandbox surely live, and no other than those maybe live."""
        listed = {s.sandbox_id for s in Sandbox.list(**self.served.sdk(ALICE)).next_items()}
        t = self.clock()
        surely = {b.sid for b in self.boxes.values() if self.surely_live(b, t)}
        maybe = {b.sid for b in self.boxes.values() if not self.surely_gone(b, t)}
        assert surely <= listed <= maybe, (listed, surely, maybe)
        for sid, box in list(self.boxes.items()):
            if self.surely_gone(box, t):
                del self.boxes[sid]

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def agrees(self) -> None:
        """Faults, latencies and the clock read as the model has them (the records: at each
        create, and around each refused request)."""
        faults = self.ok(self.admin("GET", "/faults"))
        assert [{k: v for k, v in f.items() if k != "fired"} for f in faults] == [
            m.body for m in self.faults
        ]
        for f, m in zip(faults, self.faults, strict=True):
            assert f["fired"] >= m.fired, (f, m.fired)
            assert f["fired"] == 0 or not m.inert, f
            m.fired = f["fired"]
        table = self.ok(self.admin("GET", "/latency"))
        assert table == [
            {"name": n, "value": v, "profile": self.profile[n], "changed": v != self.profile[n]}
            for n, v in self.latency.items()
        ]
        assert abs(self.clock() - self.now) <= 1e-6

    @invariant()
    def no_server_error(self) -> None:
        bad = [
            f"{r.name}: {r.getMessage()}"
            + (f"\n{logging.Formatter().formatException(r.exc_info)}" if r.exc_info else "")
            for r in self.log.records
        ]
        assert bad == [], "\n".join(bad)

    def teardown(self) -> None:
        self.admin("DELETE", "/faults")
        self.admin("DELETE", "/latency")
        for box in self.boxes.values():
            Sandbox.kill(box.sid, **self.served.sdk(ALICE))
        self.http.close()


@pytest.fixture
def machine_server(tmp_path: Path) -> Iterator[Served]:
    """One server for all the examples, with every warning it logs kept."""
    with serve_logged(tmp_path) as (served, log):
        AdminMachine.served = served
        AdminMachine.log = log
        yield served


def test_admin_calls_interleaved_with_sdk_calls_agree_with_the_model(
    machine_server: Served,
) -> None:
    run_state_machine_as_test(AdminMachine, settings=machine_settings(4, 25, shrink=False))
