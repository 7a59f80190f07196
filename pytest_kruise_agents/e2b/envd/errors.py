"""envd errors: Connect errors for RPCs, ``{"code": int, "message": str}`` JSON for HTTP.

Every RPC handler runs under :func:`guard_unary` / :func:`guard_stream`, which
turn the exceptions of path resolution and file operations into the Connect
codes the SDK maps to its exceptions (``not_found`` ->
``FileNotFoundException``, ``invalid_argument`` -> ``InvalidArgumentException``
...) and anything unexpected into ``internal``, so no request ever crashes
the server.
"""

from __future__ import annotations

import errno
import functools
import logging
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from connectrpc.code import Code
from connectrpc.codec import Codec
from connectrpc.compression import Compression
from connectrpc.errors import ConnectError
from starlette.responses import JSONResponse

from pytest_kruise_agents.e2b.envd import context
from pytest_kruise_agents.e2b.nesting import depth_over, too_deep_message
from pytest_kruise_agents.e2b.workspace import PathEscapeError, SandboxStopped, shorten

__all__ = [
    "DISK_FULL_ERRNOS",
    "HOST_RESOURCE_ERRNOS",
    "HTTP_STATUS",
    "GuardedCodec",
    "GuardedCompression",
    "connect_error",
    "fs_error",
    "guard_stream",
    "guard_unary",
    "http_error",
    "http_status_of",
    "message_too_large",
]

_log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")

# How file-system errno values read to an SDK user.
_ERRNO_CODES: dict[int, Code] = {
    errno.ENOENT: Code.NOT_FOUND,
    errno.EEXIST: Code.ALREADY_EXISTS,
    errno.EACCES: Code.PERMISSION_DENIED,
    errno.EPERM: Code.PERMISSION_DENIED,
    errno.ENOTDIR: Code.INVALID_ARGUMENT,
    errno.EISDIR: Code.INVALID_ARGUMENT,
    errno.ENOTEMPTY: Code.FAILED_PRECONDITION,
    errno.ELOOP: Code.INVALID_ARGUMENT,
    errno.ENAMETOOLONG: Code.INVALID_ARGUMENT,
    errno.EINVAL: Code.INVALID_ARGUMENT,
    errno.EXDEV: Code.INVALID_ARGUMENT,
}
"""Connect codes of the errno values a caller can act on; any other answers ``internal``."""

DISK_FULL_ERRNOS: frozenset[int] = frozenset({errno.ENOSPC, errno.EDQUOT})
"""errno values of a full disk or quota: 507 on ``/files``, ``internal`` on an RPC.

An RPC has no code of its own for them: ``resource_exhausted`` would read to
the SDK as a rate limit to wait out, so they answer ``internal`` (the SDK's
``SandboxException`` naming the cause), as envd answers an unexpected failure.
"""

HOST_RESOURCE_ERRNOS: frozenset[int] = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.ENOBUFS}
)
"""errno values that say the host ran short (descriptors, memory, processes), not the caller erred.

They read as ``internal`` (HTTP 500): an SDK reporting them as
``InvalidArgumentException`` would send its user looking for a mistake in
the call. (``resource_exhausted`` is no better on RPCs: the SDK words it as a
rate limit to wait out.)
"""

HTTP_STATUS: dict[Code, int] = {
    Code.INVALID_ARGUMENT: 400,
    Code.UNAUTHENTICATED: 401,
    Code.PERMISSION_DENIED: 403,
    Code.NOT_FOUND: 404,
    Code.ALREADY_EXISTS: 409,
    Code.FAILED_PRECONDITION: 412,
    Code.RESOURCE_EXHAUSTED: 507,
    Code.UNIMPLEMENTED: 501,
    Code.INTERNAL: 500,
}
"""HTTP status of a Connect code on the plain HTTP routes (``/files``)."""


def connect_error(exc: BaseException) -> ConnectError:
    """The Connect error an exception from a handler answers with."""
    if isinstance(exc, ConnectError):
        return exc
    if isinstance(exc, PathEscapeError):
        return ConnectError(Code.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, SandboxStopped):
        # What the proxy answers a request for a sandbox that is not running
        # (502, which Connect reads as unavailable): the SDK reports it gone.
        return ConnectError(Code.UNAVAILABLE, str(exc))
    if isinstance(exc, OSError):
        # No file name: it would be a host path, and sandbox paths are what
        # users see (handlers that know the path use fs_error instead).
        return fs_error(exc, None)
    _log.exception("envd handler failed", exc_info=exc)
    return ConnectError(Code.INTERNAL, f"internal error: {type(exc).__name__}: {shorten(str(exc))}")


def fs_error(exc: OSError, path: str | None) -> ConnectError:
    """The Connect error of a failed file operation on sandbox ``path``."""
    code = _ERRNO_CODES.get(exc.errno or 0, Code.INTERNAL)
    what = (exc.strerror or type(exc).__name__).lower()
    return ConnectError(code, f"{what}: {path}" if path else what)


def http_status_of(exc: OSError) -> int:
    """HTTP status of a failed file operation on envd's plain routes (``/files``).

    A full disk or quota (``ENOSPC``, ``EDQUOT``) answers 507, which the SDK
    raises as ``NotEnoughSpaceException``; a host short of resources
    (:data:`HOST_RESOURCE_ERRNOS`) 500; everything else is the request's
    doing (a path that is not a directory, a name too long...) and answers 400.
    """
    number = exc.errno or 0
    if number in HOST_RESOURCE_ERRNOS:
        return HTTP_STATUS[Code.INTERNAL]
    if number in DISK_FULL_ERRNOS:
        return HTTP_STATUS[Code.RESOURCE_EXHAUSTED]
    return HTTP_STATUS[Code.INVALID_ARGUMENT]


def guard_unary(
    fn: Callable[Concatenate[S, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Wrap a unary handler so every failure leaves as a Connect error."""

    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(self, *args, **kwargs)
        except Exception as exc:
            raise connect_error(exc) from exc

    functools.update_wrapper(wrapper, fn)
    return wrapper


def guard_stream(
    fn: Callable[Concatenate[S, P], AsyncIterator[R]],
) -> Callable[Concatenate[S, P], AsyncIterator[R]]:
    """Wrap a server-stream handler so every failure ends the stream as a Connect error."""

    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> AsyncIterator[R]:
        try:
            async for item in fn(self, *args, **kwargs):
                yield item
        except Exception as exc:
            raise connect_error(exc) from exc

    functools.update_wrapper(wrapper, fn)
    return wrapper


def message_too_large(limit: int, *, stdin: bool = True) -> ConnectError:
    """The error of an RPC request message over envd's ``limit`` (bytes): not worth a retry.

    ``invalid_argument``, where connectrpc answers ``resource_exhausted``,
    which the SDK words as a rate limit to wait out. ``stdin``: the call
    carries a command's input (the hint then says how to send less).
    """
    hint = "send stdin in smaller pieces, or write a file" if stdin else "no such call needs more"
    return ConnectError(
        Code.INVALID_ARGUMENT,
        f"the request message is larger than envd's limit of {limit} bytes ({hint})",
    )


def http_error(status: int, message: str, *, allow: str | None = None) -> JSONResponse:
    """The JSON error body of envd's plain HTTP routes; ``allow`` is a 405's ``Allow``."""
    headers = {"Allow": allow} if allow is not None else None
    return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)


class GuardedCodec:
    """A codec whose decode failures are ``invalid_argument`` (not an unhandled 500).

    A JSON message nested deeper than
    :data:`~pytest_kruise_agents.e2b.nesting.MAX_JSON_DEPTH` is refused before
    it is parsed: protobuf-py's JSON parser recurses on the C stack without a
    limit (30,000 levels crashed the process), where connect-go's protojson
    stops at 10,000 with an error. Its binary parser stops at 100 by itself.
    """

    def __init__(self, inner: Codec[Any, Any]) -> None:
        self._inner = inner
        self._json = inner.name() == "json"

    def name(self) -> str:
        return self._inner.name()

    def encode(self, message: Any) -> bytes:
        return self._inner.encode(message)

    def decode(self, data: bytes | bytearray, message_class: type[Any]) -> Any:
        depth = depth_over(data) if self._json else None
        if depth is not None:
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"invalid {message_class.__name__} message: {too_deep_message(depth)}",
            )
        try:
            return self._inner.decode(data, message_class)
        except ConnectError:
            raise
        except Exception as exc:
            # Shortened: a parser's message may quote the (unbounded) input.
            raise ConnectError(
                Code.INVALID_ARGUMENT,
                f"invalid {message_class.__name__} message: {shorten(str(exc))}",
            ) from exc


class GuardedCompression:
    """A compression whose inflate failures are ``invalid_argument`` (not an unhandled 500).

    connectrpc lets the ``zlib.error`` / ``EOFError`` of a body that is not
    gzip escape as ``unknown`` (HTTP 500, with a traceback); connect-go
    answers ``invalid_argument`` "decompress: ...". A message that inflates
    past the size limit is :func:`message_too_large`, not connectrpc's
    ``resource_exhausted``.
    """

    def __init__(self, inner: Compression) -> None:
        self._inner = inner

    def name(self) -> str:
        return self._inner.name()

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        return self._inner.compress(data)

    def decompress(
        self, data: bytes | bytearray | memoryview, read_max_bytes: int | None = None
    ) -> bytes:
        # The call's own bound (a Stat's path is small, a stdin chunk may be big):
        # inflation stops as soon as it is passed, before the message is whole.
        limit = context.message_limit(read_max_bytes)
        try:
            return self._inner.decompress(data, limit)
        except ConnectError as exc:
            if exc.code == Code.RESOURCE_EXHAUSTED and limit is not None:
                # The app's own limit is the one of the stdin calls (the others' is lower).
                raise message_too_large(limit, stdin=limit == read_max_bytes) from exc
            raise
        except (zlib.error, EOFError, OSError) as exc:  # gzip.BadGzipFile is an OSError
            raise ConnectError(
                Code.INVALID_ARGUMENT, f"decompress: invalid {self.name()} data: {exc}"
            ) from exc
