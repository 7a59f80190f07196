"""envd authentication: the access token, the Basic-auth user, signed file URLs.

A sandbox created with an access token (``envdAccessToken``) wants it in
``X-Access-Token`` on every request except ``GET /health`` and ``POST
/init``; ``/files`` also accepts a URL signed with it (``download_url()`` /
``upload_url()``, see ``e2b/sandbox/signature.py``). The user of an RPC comes
from ``Authorization: Basic base64("<user>:")``, of ``/files`` from the
``username`` query parameter; the sandbox knows ``user`` and ``root``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time

from pytest_kruise_agents.e2b.workspace import SandboxWorkspace

__all__ = [
    "DEFAULT_USER",
    "USERS",
    "AuthError",
    "check_token",
    "file_signature",
    "user_from_basic",
    "user_from_name",
    "verify_signature",
]

DEFAULT_USER = "user"
USERS = frozenset({"user", "root"})


class AuthError(Exception):
    """A request failed authentication (401 / ``unauthenticated``)."""


def check_token(ws: SandboxWorkspace, presented: str | None) -> bool:
    """Whether ``presented`` (the ``X-Access-Token`` header) satisfies the sandbox's token."""
    if not ws.access_token:
        return True
    return presented is not None and hmac.compare_digest(
        presented.encode("utf-8", "surrogateescape"), ws.access_token.encode()
    )


def user_from_name(name: str | None) -> str:
    """The user named by a ``username`` parameter (default user when empty)."""
    if not name:
        return DEFAULT_USER
    if name not in USERS:
        raise AuthError(f"unknown user {name!r}: the sandbox has users 'user' and 'root'")
    return name


def user_from_basic(header: str | None) -> str:
    """The user of an ``Authorization: Basic base64("<user>:")`` header (default when absent)."""
    if not header:
        return DEFAULT_USER
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise AuthError("Authorization must be 'Basic base64(<user>:)'")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise AuthError("Authorization Basic credentials are not valid base64") from exc
    return user_from_name(decoded.partition(":")[0])


def file_signature(
    path: str, operation: str, username: str, token: str, expiration: int | None
) -> str:
    """The ``v1_`` signature of a file URL, as ``e2b.sandbox.signature.get_signature`` makes it."""
    raw = f"{path}:{operation}:{username}:{token}"
    if expiration is not None:
        raw += f":{expiration}"
    digest = hashlib.sha256(raw.encode("utf-8")).digest()
    return "v1_" + base64.b64encode(digest).rstrip(b"=").decode("ascii")


def verify_signature(
    ws: SandboxWorkspace,
    *,
    path: str,
    operation: str,
    username: str,
    signature: str,
    expiration: str | None,
    now: float | None = None,
) -> None:
    """Check a signed ``/files`` URL; raise :class:`AuthError` saying why it is refused."""
    if not ws.access_token:
        return
    expires: int | None = None
    if expiration:
        try:
            expires = int(expiration)
        except ValueError as exc:
            raise AuthError("signature_expiration must be a Unix timestamp") from exc
        if expires < (time.time() if now is None else now):
            raise AuthError("the file URL signature has expired")
    expected = file_signature(path, operation, username, ws.access_token, expires)
    if not hmac.compare_digest(signature.encode("utf-8", "surrogateescape"), expected.encode()):
        raise AuthError("invalid file URL signature")
