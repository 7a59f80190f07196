"""Property-based fuzzing of the control plane from its own ``/openapi.json`` (schemathesis).

Every generated request, valid or not, gets an answer that conforms to the
published document: schemathesis' own checks of the status code, the content
type, the response headers and the response body, that data the schema
allows is accepted and data it forbids is refused. On top of them, the only
500s allowed are upstream's documented quirks (docs/fidelity.md), and every
error body is JSON with an integer ``code`` and a string ``message``. What
the checks leave out is what docs/fidelity.md lists as deliberate, each
named below.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pytest_kruise_agents.backends import SimBackend

from .conftest import ALICE_KEY, Server, start_server

Case = schemathesis.Case[Any]

# Upstream answers 500 for these (docs/fidelity.md, "The E2B server's control plane":
# "Malformed, empty or non-object JSON on create answers 500, as upstream ... Any body
# error on `/timeout` or `/resume` answers 500"). Checked here instead of schemathesis'
# not_a_server_error, which refuses every 5xx.
QUIRK_500_PATHS = ("/sandboxes", "/v2/sandboxes", "/timeout", "/resume", "/connect")

CHECKS: tuple[Callable[..., Any], ...] = (
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
)
"""schemathesis' checks run on every answer (but the exclusions below)."""

CREATES = frozenset({"POST /sandboxes", "POST /v2/sandboxes"})

EXCLUDED: dict[str, frozenset[Callable[..., Any]]] = {
    # docs/fidelity.md, "A create's 400s (timeout, metadata, volume mounts, template, CSI
    # mounts with `skip-init-runtime`, env vars no process can carry, metadata and env vars
    # that with the manager's own keys pass the 256 KiB of annotations)" and "Env vars no
    # process can carry (an empty name, a name with `=` or a NUL, a value with a NUL) are
    # refused where they arrive: the create's `envVars` (400 ...)": schema-valid creates
    # the server refuses on purpose (upstream takes such env vars).
    **{op: frozenset({positive_data_acceptance}) for op in CREATES},
    # docs/server.md, "Control plane" table, GET /v2/sandboxes: "other query keys are
    # metadata filters" (upstream's rule, reference §6.7, which no OpenAPI document can
    # state), and the /openapi.json paragraph: "empty items of `state` are skipped".
    # A negative case adding a query key, or an empty `state` item, is answered 200.
    "GET /v2/sandboxes": frozenset({negative_data_rejection}),
}
"""Checks not run on an operation, each a difference docs/fidelity.md lists as deliberate."""

_LABELS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=8)
_METADATA_FILTERS = st.dictionaries(_LABELS, _LABELS, max_size=3).map(urlencode)
"""``metadata`` filters as the SDK encodes them (e2b-protocol §2.3).

The filter's syntax (URL-encoded ``k=v`` pairs, reference §6.7) is no schema's, in
E2B's spec as here: a published plain string, so positive data is what the SDK sends.
"""


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[Server]:
    backend = SimBackend.default(seed=9, replicas=5)
    thread, srv = start_server(backend)
    try:
        yield srv
    finally:
        thread.stop()
        backend.close()


def _whole_numbers(value: Any) -> Any:
    # JSON Schema's integer includes 3838.0; Go's decoder, and so the server, refuses it
    # for an int field (docs/fidelity.md: "A valid JSON body with a wrong-typed field
    # answers 400 naming the field"). Positive data sends such a number as 3838.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def _as_clients_send(case: Case, metadata_filter: str) -> None:
    """Make a positive case what a client sends for the same values (see above)."""
    if case.body is not None and not isinstance(case.body, bytes):
        case.body = _whole_numbers(case.body)
    if case.query and "metadata" in case.query:
        case.query["metadata"] = metadata_filter


def _check_errors(case: Case, response: schemathesis.Response) -> None:
    status = response.status_code
    if status >= 400:
        body = json.loads(response.content)
        assert isinstance(body.get("code"), int), body
        assert isinstance(body.get("message"), str), body
    if status >= 500:
        path = case.formatted_path
        assert status == 500 and path.endswith(QUIRK_500_PATHS), (status, path, response.text)


def _fuzz(operation: Any, mode: GenerationMode, statuses: list[int]) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    checks = [c for c in CHECKS if c not in EXCLUDED.get(label, frozenset())]

    @given(case=operation.as_strategy(generation_mode=mode), metadata_filter=_METADATA_FILTERS)
    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case: Case, metadata_filter: str) -> None:
        if mode is GenerationMode.POSITIVE:
            _as_clients_send(case, metadata_filter)
        headers = {"X-API-Key": ALICE_KEY}
        response = case.call(headers=headers)
        statuses.append(response.status_code)
        _check_errors(case, response)
        case.validate_response(response, checks=checks, headers=headers)

    try:
        fuzz()
    except Unsatisfiable:
        # Nothing of the request can be made invalid (GET /templates takes nothing).
        assert mode is GenerationMode.NEGATIVE, label


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_answers_conform_to_the_published_schema(fuzz_server: Server, mode: GenerationMode) -> None:
    # Driven through hypothesis directly: schemathesis' pytest integration
    # does not support this pytest version.
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), [r for r in results if not isinstance(r, Ok)]
    assert len(operations) >= 10
    statuses: list[int] = []
    for operation in operations:
        _fuzz(operation, mode, statuses)
    # The fuzzer reached the error paths, and valid data the happy paths.
    assert any(400 <= s < 500 for s in statuses), sorted(set(statuses))
    if mode is GenerationMode.POSITIVE:
        assert any(200 <= s < 300 for s in statuses), sorted(set(statuses))
