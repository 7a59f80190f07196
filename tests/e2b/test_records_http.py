"""Claim records and metrics agree with what the E2B SDK's callers saw over HTTP (hypothesis).

One server on the virtual clock (its default pools, 2 sandboxes each) takes, per example, a
drawn fault (through the admin API) and a few creates through the real ``e2b`` SDK with drawn
options (timeout, ``create-on-no-stock``, ``skip-init-runtime``, an in-place image, a claim
timeout, an unknown template). Then, read back over HTTP:

- each SDK call left exactly one record (``GET /_kruise/records``), in call order;
- a delivered record names the sandbox the SDK got, warm exactly when it was a pool's
  (``lock_type`` ``update``); a failed one carries the HTTP status the SDK got and the
  message it was answered with;
- ``GET /metrics`` parses with ``prometheus_client``'s parser, and its
  ``sandbox_claim_creation_responses_total``, ``sandbox_claim_total`` and
  ``sandbox_claim_failures_total`` grew by exactly what the records of the example derive.

The records of the model itself are checked further by tests/simulator/test_records_machine.py;
this test is about the HTTP layer between them and the caller.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from e2b import Sandbox
from e2b.exceptions import SandboxException
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from pytest_kruise_agents.backends import SimBackend
from pytest_kruise_agents.claiming.extensions import (
    KEY_CLAIM_TIMEOUT_SECONDS,
    KEY_CREATE_ON_NO_STOCK,
    KEY_IMAGE,
    KEY_SKIP_INIT_RUNTIME,
)
from tests.machines import machine_settings

from .conftest import Served, serve

FAULTS: list[dict[str, Any] | None] = [
    None,
    {"kind": "api_conflict", "selector": {"client": "sandbox-manager"}, "probability": 0.5},
    {"kind": "api_error", "selector": {"client": "sandbox-manager"}, "code": 503},
    {"kind": "runtime_init_failure", "code": 500},
    {"kind": "runtime_unreachable", "probability": 0.5},
    {"kind": "image_pull_failure"},
    {"kind": "controller_stall", "selector": {"controller": "sandboxset"}},
]

Outcome = tuple[str, ...]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    backend = SimBackend.default(seed=5, replicas=2)
    thread, served = serve(tmp_path_factory.mktemp("records"), backend=backend)
    try:
        yield served
    finally:
        thread.stop()
        backend.close()


def _series(text: str, name: str) -> Counter[tuple[tuple[str, str], ...]]:
    out: Counter[tuple[tuple[str, str], ...]] = Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = int(s.value)
    return out


def _metrics(served: Served) -> dict[str, Counter[tuple[tuple[str, str], ...]]]:
    r = served.request("GET", "/metrics")
    assert r.status_code == 200, r.text
    return {
        name: _series(r.text, name)
        for name in (
            "sandbox_claim_creation_responses_total",
            "sandbox_claim_total",
            "sandbox_claim_failures_total",
        )
    }


create_options = st.fixed_dictionaries(
    {
        "template": st.sampled_from(["base"] * 5 + ["nope"]),
        "timeout": st.sampled_from([None, 60, 600]),
        "claim_timeout": st.sampled_from([None, 2, 10]),
        "no_stock": st.sampled_from([None, "true", "false"]),
        "skip_init": st.booleans(),
        "image": st.booleans(),
    }
)


@machine_settings(12, 1)
@given(
    fault=st.sampled_from(FAULTS),
    creates=st.lists(create_options, min_size=1, max_size=4),
)
def test_records_and_metrics_say_what_the_sdk_callers_got(
    served: Served, fault: dict[str, Any] | None, creates: list[dict[str, Any]]
) -> None:
    """Each SDK create leaves one record telling what the caller got; the metrics count it."""
    assert served.admin("DELETE", "/faults").status_code == 204
    served.advance(120)  # the pools refill, earlier claims end
    before_records = served.admin("GET", "/records").json()
    before = _metrics(served)
    if fault is not None:
        r = served.admin("POST", "/faults", json=fault)
        assert r.status_code == 201, r.text
    got: list[Outcome] = []
    for options in creates:
        metadata: dict[str, str] = {}
        if options["claim_timeout"] is not None:
            metadata[KEY_CLAIM_TIMEOUT_SECONDS] = str(options["claim_timeout"])
        if options["no_stock"] is not None:
            metadata[KEY_CREATE_ON_NO_STOCK] = options["no_stock"]
        if options["skip_init"]:
            metadata[KEY_SKIP_INIT_RUNTIME] = "true"
        if options["image"]:
            metadata[KEY_IMAGE] = "registry.example.com/e2b/base:v2"
        kwargs: dict[str, Any] = {"metadata": metadata, **served.sdk()}
        if options["timeout"] is not None:
            kwargs["timeout"] = options["timeout"]
        try:
            sbx = Sandbox.create(options["template"], **kwargs)
        except SandboxException as err:
            code = getattr(err, "status_code", None)
            text = str(err)
            got.append(("failed", str(code), text))
        else:
            info = sbx.get_info()
            resource = info.metadata["e2b.agents.kruise.io/sandbox-resource"]
            got.append(("delivered", resource))
    records = served.admin("GET", "/records").json()[len(before_records) :]
    assert len(records) == len(creates), records
    told: list[Outcome] = []
    for r in records:
        assert r["path"] == "e2b" and (r["delivered"] is None) != (r["failed"] is None), r
        if r["delivered"] is not None:
            told.append(("delivered", r["sandbox"]))
        else:
            told.append(("failed", str(r["error_code"]), r["error"]))
    assert [t[:2] for t in told] == [g[:2] for g in got], (told, got)
    for t, g in zip(told, got, strict=True):
        if t[0] == "failed":
            # The SDK writes "<code>: <message>" (with a hint of its own for a 503).
            assert g[2].startswith(f"{t[1]}: ") and g[2].endswith(t[2]), (t, g)
    after = _metrics(served)
    responses: Counter[tuple[tuple[str, str], ...]] = Counter()
    claims: Counter[tuple[tuple[str, str], ...]] = Counter()
    failures: Counter[tuple[tuple[str, str], ...]] = Counter()
    for r in records:
        template = "" if r["attempts"] == 0 and r["error_code"] == 400 else r["template"]
        base = {"namespace": r["namespace"], "template": template}
        if r["delivered"] is not None:
            code = "201"
            claims[tuple(sorted({**base, "path": "e2b", "lock_type": r["lock_type"]}.items()))] += 1
        else:
            code = str(r["error_code"])
            labels = {**base, "path": "e2b", "reason": r["error_reason"]}
            failures[tuple(sorted(labels.items()))] += 1
        responses[tuple(sorted({**base, "code": code}.items()))] += 1
    for name, want in (
        ("sandbox_claim_creation_responses_total", responses),
        ("sandbox_claim_total", claims),
        ("sandbox_claim_failures_total", failures),
    ):
        grew = after[name] - before[name]
        assert grew == want, (name, grew, want)
