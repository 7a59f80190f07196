"""The errors of the claim path, their HTTP status codes and whether a retry may help.

Every error the claim rules raise is a :class:`ClaimError`. It carries the
status code the real sandbox-manager answers with (reference §6.9), whether the
retry loop of §5.3 goes on after it (``retriable``), a short CamelCase
``reason`` for machines and a ``message`` for people.

Retriable errors carry code 500: they only reach a client when they are the
last error of an exhausted retry loop, and then the manager answers 500.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BadRequestError",
    "CSIMountError",
    "ClaimCanceledError",
    "ClaimError",
    "ClaimTimeoutError",
    "ConflictError",
    "InitRuntimeError",
    "InternalError",
    "LockConflictError",
    "NoAvailableError",
    "NotFoundError",
    "PickFailure",
    "QuotaExceededError",
    "RawError",
    "RetryExhaustedError",
    "StartContainerFailedError",
    "TokenError",
    "UnauthorizedError",
    "WaitReadyTimeoutError",
    "add_pick_failure",
    "create_http_code",
    "create_lock_error",
    "http_code",
    "update_lock_error",
    "wrapped_raw_error",
]


class ClaimError(Exception):
    """An error of the claim path: HTTP ``code``, ``retriable``, ``reason`` and ``message``.

    Subclasses set the defaults; any of them can be overridden per instance.
    ``field`` names the offending input field when there is one.
    """

    code: int = 500
    retriable: bool = False
    reason: str = "InternalError"
    default_message: str = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: int | None = None,
        retriable: bool | None = None,
        reason: str | None = None,
        field: str | None = None,
    ) -> None:
        self.message: str = message if message is not None else self.default_message
        if code is not None:
            self.code = code
        if retriable is not None:
            self.retriable = retriable
        if reason is not None:
            self.reason = reason
        self.field: str | None = field
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code}, "
            f"retriable={self.retriable}, reason={self.reason!r})"
        )


class BadRequestError(ClaimError):
    """The request is malformed or asks for something not allowed (400, terminal)."""

    code = 400
    reason = "BadRequest"
    default_message = "bad request"


class UnauthorizedError(ClaimError):
    """The caller is not authenticated, or may not do this (401, terminal)."""

    code = 401
    reason = "Unauthorized"
    default_message = "unauthorized"


class QuotaExceededError(ClaimError):
    """The API key's quota does not admit another sandbox (403, terminal)."""

    code = 403
    reason = "QuotaExceeded"
    default_message = "quota exceeded"


class NotFoundError(ClaimError):
    """The sandbox, template or route does not exist or is not the caller's (404, terminal)."""

    code = 404
    reason = "NotFound"
    default_message = "not found"


class ConflictError(ClaimError):
    """A conflicting operation won (409, terminal): pause/resume race, AlreadyExists on create."""

    code = 409
    reason = "Conflict"
    default_message = "conflict"


class InternalError(ClaimError):
    """Anything else that went wrong and will not get better by retrying (500, terminal)."""

    code = 500
    reason = "InternalError"
    default_message = "internal error"


class RawError(InternalError):
    """An error that is no typed manager error (§5.2 step 5: a non-conflict update of the
    lock), terminal. The retry loop wraps it as Internal with the last error and the pick
    failures (§5.3 "Final error"): :func:`wrapped_raw_error`."""


def wrapped_raw_error(
    err: RawError, last_error: ClaimError | None, pick_failures: Sequence[PickFailure]
) -> InternalError:
    """§5.3 "Final error" of an untyped error: ``<err>, last error: <…>, pick sandbox failures: [...]``."""
    last = str(last_error) if last_error is not None else "<nil>"
    return InternalError(
        f"{err}, last error: {last}, "
        f"pick sandbox failures: {_format_pick_failures(list(pick_failures))}",
        reason=err.reason,
    )


# The pick reasons of §5.2 step 2 and the NoAvailableError reason each maps to.
_PICK_REASONS: Final[dict[str, str]] = {
    "no stock": "NoStock",
    "all candidates are picked": "AllCandidatesPicked",
    "sandbox creation is not allowed by rate limiter": "RateLimited",
}
_NO_AVAILABLE_MESSAGES: Final[dict[str, str]] = {v: k for k, v in _PICK_REASONS.items()}


class NoAvailableError(ClaimError):
    """No sandbox could be picked or created this attempt (retriable).

    ``reason`` is ``"NoStock"`` (the pool is empty), ``"AllCandidatesPicked"``
    (every candidate is being claimed by this process) or ``"RateLimited"``
    (the create limiter denied a no-stock creation). Given only the upstream
    message (``"no stock"``...), the reason is derived from it.
    """

    retriable = True
    reason = "NoStock"
    default_message = "no stock"

    def __init__(
        self,
        message: str | None = None,
        *,
        reason: str | None = None,
        code: int | None = None,
        field: str | None = None,
    ) -> None:
        if reason is None and message is not None:
            reason = _PICK_REASONS.get(message)
        if message is None and reason is not None:
            message = _NO_AVAILABLE_MESSAGES.get(reason)
        super().__init__(message, code=code, reason=reason, field=field)


class LockConflictError(ClaimError):
    """The optimistic-lock Update of a picked sandbox answered 409 (retriable)."""

    retriable = True
    reason = "LockConflict"
    default_message = "the sandbox was modified concurrently"


class WaitReadyTimeoutError(ClaimError):
    """The claimed sandbox was not ready before the wait-ready timeout (retriable)."""

    retriable = True
    reason = "WaitReadyTimeout"
    default_message = "sandbox is not ready before wait timeout"

    @classmethod
    def diagnose(
        cls, namespace: str, name: str, *, reason: str, state: str, ready: bool
    ) -> WaitReadyTimeoutError:
        """The error with upstream's diagnosis message for sandbox ``namespace/name``."""
        return cls(
            f"sandbox {namespace}/{name} is not ready before wait timeout: "
            f"reason={reason}, state={state}, ready={str(ready).lower()}"
        )


class StartContainerFailedError(ClaimError):
    """The sandbox's Ready condition says a container failed to start (retriable, fails fast)."""

    retriable = True
    reason = "StartContainerFailed"
    default_message = "sandbox container failed to start"


class InitRuntimeError(ClaimError):
    """The agent-runtime ``/init`` call failed after its own retries (retriable)."""

    retriable = True
    reason = "InitRuntimeFailed"
    default_message = "failed to init sandbox runtime"


class TokenError(ClaimError):
    """Issuing the security identity or traffic access token failed (retriable)."""

    retriable = True
    reason = "TokenFailed"
    default_message = "failed to issue sandbox token"


class CSIMountError(ClaimError):
    """A dynamic CSI mount failed (500, terminal: upstream does not retry it)."""

    reason = "CSIMountFailed"
    default_message = "failed to mount csi volume"


class ClaimCanceledError(ClaimError):
    """The request's context was cancelled (its client went away) before delivery (500, terminal).

    Go's ``context.Canceled``: the retry loop stops, and what the attempt in
    progress had locked is cleaned up. The client no longer reads the answer;
    the code is what the manager would log.
    """

    reason = "Canceled"
    default_message = "context canceled"


class ClaimTimeoutError(ClaimError):
    """The claim's context deadline passed before a sandbox was delivered (500, terminal)."""

    reason = "ClaimTimeout"
    default_message = "context deadline exceeded"


@dataclass(frozen=True)
class PickFailure:
    """How often picking sandbox ``key`` (``"ns/name"``) failed, and why the last time."""

    key: str
    reason: str
    count: int = 1

    def to_dict(self) -> dict[str, str | int]:
        """The JSON object upstream logs: ``{"key", "reason", "count"}``."""
        return {"key": self.key, "reason": self.reason, "count": self.count}


def add_pick_failure(failures: Sequence[PickFailure], key: str, reason: str) -> list[PickFailure]:
    """A new failure list with one more failure of ``key`` (count bumped, reason replaced)."""
    out: list[PickFailure] = []
    found = False
    for f in failures:
        if f.key == key:
            out.append(PickFailure(key, reason, f.count + 1))
            found = True
        else:
            out.append(f)
    if not found:
        out.append(PickFailure(key, reason))
    return out


def _format_pick_failures(failures: Iterable[PickFailure]) -> str:
    # Go's json.Marshal: compact, fields in declaration order.
    return json.dumps([f.to_dict() for f in failures], separators=(",", ":"))


class RetryExhaustedError(ClaimError):
    """The retry loop gave up (500, terminal).

    ``cause`` is what stopped the loop (apimachinery's ``"timed out waiting for
    the condition"`` when the attempts ran out, or the context error); the
    message has upstream's shape
    ``<cause>, last error: <last>, pick sandbox failures: [{"key":...,"reason":...,"count":n}]``.
    """

    reason = "RetryExhausted"

    def __init__(
        self,
        cause: str = "timed out waiting for the condition",
        *,
        last_error: ClaimError | None = None,
        pick_failures: Sequence[PickFailure] = (),
    ) -> None:
        self.cause = cause
        self.last_error = last_error
        self.pick_failures: list[PickFailure] = list(pick_failures)
        last = str(last_error) if last_error is not None else "<nil>"
        super().__init__(
            f"{cause}, last error: {last}, "
            f"pick sandbox failures: {_format_pick_failures(self.pick_failures)}"
        )


def http_code(err: BaseException) -> int:
    """The HTTP status code for ``err``: a :class:`ClaimError`'s code, else 500."""
    if isinstance(err, ClaimError):
        return err.code
    return 500


def create_http_code(err: BaseException) -> int:
    """The status ``POST /sandboxes`` answers for ``err`` (``mapInfraErrorToApiError``, §6.9).

    BadRequest and NotFound answer 400, Conflict 409, QuotaExceeded 403,
    Unauthorized 401; everything else (no stock, retry exhaustion, timeouts,
    CSI failures, unknown errors) answers 500.
    """
    if isinstance(err, BadRequestError | NotFoundError):
        return 400
    if isinstance(err, ConflictError):
        return 409
    if isinstance(err, QuotaExceededError):
        return 403
    if isinstance(err, UnauthorizedError):
        return 401
    return 500


def update_lock_error(status: int, message: str, *, reason: str = "") -> ClaimError:
    """Classify a failed update-type lock write (§5.2 step 5).

    409 is the optimistic lock losing a race and is retriable; any other
    failure (NotFound, ...) is a raw, terminal error (:class:`RawError`) that surfaces as 500.
    """
    if status == 409:
        return LockConflictError(message)
    return RawError(message, reason=reason or "LockFailed")


def create_lock_error(status: int, message: str, *, reason: str = "") -> ClaimError:
    """Classify a failed create-type lock (a no-stock ``Create``, §5.2 step 5); all terminal.

    AlreadyExists is a Conflict (409); Invalid/BadRequest a BadRequest (400);
    Forbidden/Unauthorized/NotFound/MethodNotSupported a platform configuration
    issue (500); timeouts, 5xx, other conflicts and network errors Internal (500).
    """
    if reason == "AlreadyExists":
        return ConflictError(message, reason="AlreadyExists")
    if status in (400, 422) or reason in ("Invalid", "BadRequest"):
        return BadRequestError(message)
    if status in (401, 403, 404, 405):
        return InternalError(
            f"platform configuration issue: {message}", reason=reason or "PlatformConfiguration"
        )
    return InternalError(message, reason=reason or "InternalError")
