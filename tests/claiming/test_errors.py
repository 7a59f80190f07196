"""Specification of the claim errors: status codes, retriability, reasons and messages."""

from __future__ import annotations

import json

import pytest

from pytest_kruise_agents.claiming.errors import (
    BadRequestError,
    ClaimError,
    ClaimTimeoutError,
    ConflictError,
    CSIMountError,
    InitRuntimeError,
    InternalError,
    LockConflictError,
    NoAvailableError,
    NotFoundError,
    PickFailure,
    QuotaExceededError,
    RawError,
    RetryExhaustedError,
    StartContainerFailedError,
    TokenError,
    UnauthorizedError,
    WaitReadyTimeoutError,
    add_pick_failure,
    create_http_code,
    create_lock_error,
    http_code,
    update_lock_error,
    wrapped_raw_error,
)


@pytest.mark.parametrize(
    ("cls", "code", "retriable"),
    [
        (BadRequestError, 400, False),
        (UnauthorizedError, 401, False),
        (QuotaExceededError, 403, False),
        (NotFoundError, 404, False),
        (ConflictError, 409, False),
        (InternalError, 500, False),
        (NoAvailableError, 500, True),
        (LockConflictError, 500, True),
        (WaitReadyTimeoutError, 500, True),
        (StartContainerFailedError, 500, True),
        (InitRuntimeError, 500, True),
        (TokenError, 500, True),
        (CSIMountError, 500, False),
        (ClaimTimeoutError, 500, False),
        (RetryExhaustedError, 500, False),
    ],
)
def test_error_class_defaults(cls: type[ClaimError], code: int, retriable: bool) -> None:
    """Each error class has the status code and retriability of the reference."""
    err = cls()
    assert isinstance(err, ClaimError)
    assert err.code == code
    assert err.retriable is retriable
    assert http_code(err) == code
    assert err.reason and err.reason[0].isupper() and " " not in err.reason


def test_str_is_the_message() -> None:
    """str() of an error is exactly its message."""
    err = BadRequestError("timeout: must be between 30 and 2592000 seconds", field="timeout")
    assert str(err) == "timeout: must be between 30 and 2592000 seconds"
    assert err.message == str(err)
    assert err.field == "timeout"


def test_instance_overrides() -> None:
    """Code, retriability and reason can be overridden per instance without touching the class."""
    err = InternalError("boom", code=503, retriable=True, reason="Upstream")
    assert (err.code, err.retriable, err.reason) == (503, True, "Upstream")
    assert InternalError().code == 500


def test_a_retriable_error_can_be_made_terminal_per_instance() -> None:
    """``retriable=False`` overrides a retriable class for that instance only."""
    err = LockConflictError("conflict", retriable=False)
    assert not err.retriable
    assert LockConflictError().retriable


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("NoStock", "no stock"),
        ("AllCandidatesPicked", "all candidates are picked"),
        ("RateLimited", "sandbox creation is not allowed by rate limiter"),
    ],
)
def test_no_available_reason_and_message(reason: str, message: str) -> None:
    """NoAvailableError derives its message from the reason and its reason from the message."""
    assert NoAvailableError(reason=reason).message == message
    assert NoAvailableError(message).reason == reason


def test_wait_ready_diagnosis() -> None:
    """The wait-ready timeout carries upstream's diagnosis string."""
    err = WaitReadyTimeoutError.diagnose(
        "default", "demo-x", reason="PodReady", state="creating", ready=False
    )
    assert str(err) == (
        "sandbox default/demo-x is not ready before wait timeout: "
        "reason=PodReady, state=creating, ready=false"
    )
    assert err.retriable


def test_retry_exhausted_message_format() -> None:
    """Retry exhaustion names the cause, the last error and the pick failures as compact JSON."""
    failures = [PickFailure("default/demo-a", "update conflict", 2)]
    err = RetryExhaustedError(last_error=NoAvailableError(), pick_failures=failures)
    assert str(err) == (
        "timed out waiting for the condition, last error: no stock, pick sandbox failures: "
        '[{"key":"default/demo-a","reason":"update conflict","count":2}]'
    )
    assert err.last_error is not None and err.last_error.reason == "NoStock"
    assert err.pick_failures == failures
    assert not err.retriable and err.code == 500


def test_a_raw_error_is_wrapped_as_internal_keeping_its_reason() -> None:
    """§5.3 "Final error" of an untyped lock failure: a terminal 500 that keeps the raw error's
    reason, with the message ``<err>, last error: <last>, pick sandbox failures: [...]``."""
    failures = [PickFailure("default/demo-a", "update conflict", 1)]
    raw = RawError('sandboxes "demo-b" not found', reason="NotFound")
    err = wrapped_raw_error(raw, LockConflictError(), failures)
    assert type(err) is InternalError
    assert (err.code, err.retriable, err.reason) == (500, False, "NotFound")
    assert str(err) == (
        'sandboxes "demo-b" not found, last error: the sandbox was modified concurrently, '
        'pick sandbox failures: [{"key":"default/demo-a","reason":"update conflict","count":1}]'
    )
    assert str(wrapped_raw_error(raw, None, [])).endswith(
        "last error: <nil>, pick sandbox failures: []"
    )


def test_retry_exhausted_without_last_error() -> None:
    """Without a last error the message says <nil> and an empty failure list."""
    err = RetryExhaustedError("context deadline exceeded")
    assert str(err) == "context deadline exceeded, last error: <nil>, pick sandbox failures: []"
    assert json.loads(str(err).rsplit(": ", 1)[1]) == []


def test_add_pick_failure_counts_per_key() -> None:
    """Pick failures are counted per key, keep first-seen order, and the input is not changed."""
    first = add_pick_failure([], "ns/a", "conflict")
    second = add_pick_failure(first, "ns/b", "conflict")
    third = add_pick_failure(second, "ns/a", "not ready")
    assert first == [PickFailure("ns/a", "conflict", 1)]
    assert third == [PickFailure("ns/a", "not ready", 2), PickFailure("ns/b", "conflict", 1)]


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (BadRequestError(), 400),
        (NotFoundError(), 400),
        (ConflictError(), 409),
        (QuotaExceededError(), 403),
        (UnauthorizedError(), 401),
        (NoAvailableError(), 500),
        (RetryExhaustedError(), 500),
        (ClaimTimeoutError(), 500),
        (CSIMountError(), 500),
        (ValueError("x"), 500),
    ],
)
def test_create_http_code_maps_like_the_manager(err: BaseException, code: int) -> None:
    """POST /sandboxes maps BadRequest/NotFound to 400, Conflict 409, Quota 403, the rest 500."""
    assert create_http_code(err) == code


def test_http_code_of_foreign_errors_is_500() -> None:
    """An error that is not a ClaimError answers 500."""
    assert http_code(RuntimeError("boom")) == 500


def test_update_lock_conflict_is_retriable() -> None:
    """A 409 on the lock Update is a retriable LockConflictError; anything else is terminal."""
    assert isinstance(update_lock_error(409, "conflict"), LockConflictError)
    other = update_lock_error(404, "not found", reason="NotFound")
    assert not other.retriable and other.code == 500 and other.reason == "NotFound"


@pytest.mark.parametrize(
    ("status", "reason", "cls", "code"),
    [
        (409, "AlreadyExists", ConflictError, 409),
        (422, "Invalid", BadRequestError, 400),
        (422, "", BadRequestError, 400),
        (400, "BadRequest", BadRequestError, 400),
        (403, "Forbidden", InternalError, 500),
        (404, "NotFound", InternalError, 500),
        (409, "Conflict", InternalError, 500),
        (504, "Timeout", InternalError, 500),
    ],
)
def test_create_lock_errors_are_terminal(
    status: int, reason: str, cls: type[ClaimError], code: int
) -> None:
    """Create-type lock failures are classified as the reference lists, all terminal."""
    err = create_lock_error(status, "failed", reason=reason)
    assert type(err) is cls
    assert err.code == code
    assert not err.retriable


@pytest.mark.parametrize(
    ("status", "reason"),
    [(401, "Unauthorized"), (403, "Forbidden"), (404, "NotFound"), (405, "MethodNotSupported")],
)
def test_a_refused_create_lock_is_a_platform_configuration_issue(status: int, reason: str) -> None:
    """Forbidden, Unauthorized, NotFound and MethodNotSupported on the create say the platform
    is misconfigured (a 500 keeping the status's reason)."""
    err = create_lock_error(status, "failed", reason=reason)
    assert str(err) == "platform configuration issue: failed"
    assert (err.code, err.reason) == (500, reason)


def test_any_other_failed_create_lock_is_internal_keeping_its_reason() -> None:
    """A 5xx (or a network error) on the create is a plain 500 with the status's reason, or
    ``InternalError`` when it has none."""
    other = create_lock_error(503, "failed", reason="ServiceUnavailable")
    assert (str(other), other.code, other.reason) == ("failed", 500, "ServiceUnavailable")
    assert create_lock_error(0, "failed").reason == "InternalError"
