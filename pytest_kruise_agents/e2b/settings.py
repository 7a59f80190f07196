"""Settings of the E2B-compatible server: API keys, domain, envd version, limits.

An :class:`ApiKey` belongs to a team, and the team is a Kubernetes namespace
(reference §6.1); an admin key spans every namespace and may use the admin
API under ``/_kruise/``. :class:`Settings` is immutable: build a new one to
change it.
"""

from __future__ import annotations

import ipaddress
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pytest_kruise_agents.api.validation import dns_label_problem, label_value_problem

__all__ = [
    "ADMIN_KEY_ID",
    "DEFAULT_ENVD_VERSION",
    "DEFAULT_MAX_BODY_BYTES",
    "ApiKey",
    "Settings",
    "api_key_problem",
    "generate_key",
    "is_loopback",
]

ADMIN_KEY_ID: Final = "550e8400-e29b-41d4-a716-446655440000"
"""Upstream's admin key id: the caller of every request when auth is disabled."""

DEFAULT_ENVD_VERSION: Final = "0.6.13"
"""The ``envdVersion`` reported: new enough that the SDK takes no legacy code paths.
(Upstream's sandbox-manager reports a static ``"0.2.10"``.)"""

DEFAULT_MAX_BODY_BYTES: Final = 1 << 20
"""Control-plane request bodies larger than this answer 413 (sandbox traffic is not limited)."""


def generate_key() -> str:
    """A fresh API key in the SDK-compatible ``e2b_<hex>`` form."""
    return f"e2b_{secrets.token_hex(20)}"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key: the secret ``key``, its ``id`` (sandbox owner), its ``team`` (namespace).

    ``admin`` keys act for the admin team (namespace ``""``, every namespace)
    and may call the admin API.
    """

    key: str
    team: str = "default"
    id: str = ""
    admin: bool = False

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("key: must not be empty")
        if problem := api_key_problem(self.key):
            raise ValueError(f"key: {problem}")
        if not self.id:
            # A stable id derived from the key: the same key owns the same sandboxes.
            object.__setattr__(self, "id", str(uuid.uuid5(uuid.NAMESPACE_URL, self.key)))
        if not self.admin and not self.team:
            raise ValueError("team: must not be empty for a non-admin key")
        if "--" in self.team:
            raise ValueError(f"team: {self.team!r} must not contain '--'")
        # The team is a namespace; the id becomes its sandboxes' owner label.
        if self.team and (problem := dns_label_problem(self.team, what="namespace")):
            raise ValueError(f"team: {problem}")
        if problem := label_value_problem(self.id):
            raise ValueError(f"id: {problem} (it becomes the owner label of its sandboxes)")

    @property
    def namespace(self) -> str:
        """The namespace the key acts in: ``""`` (all) for admin keys."""
        return "" if self.admin else self.team


def api_key_problem(key: str) -> str | None:
    """Why no HTTP client could present ``key`` in ``X-API-Key`` as written, or ``None``.

    A header value is sent as bytes: httpx refuses any character past ASCII
    and any control character, and every server strips the spaces around it,
    so such a key would be accepted here and then never authenticate.
    """
    if key != key.strip(" \t"):
        return "must not start or end with a space (HTTP strips them from a header)"
    for char in key:
        if not " " <= char <= "~":
            return (
                f"must be printable ASCII, as an HTTP header carries it; "
                f"{char!r} at {key.index(char)} is not"
            )
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Settings:
    """How the server behaves (see the module docstring).

    :param api_keys: the keys accepted in ``X-API-Key``.
    :param auth_enabled: ``False`` makes every caller the admin team with
        :data:`ADMIN_KEY_ID` (upstream's ``--e2b-enable-auth=false``).
    :param domain: the ``domain`` of create/connect responses; ``None``
        derives it from the request's ``Host`` (reference §6.8).
    :param envd_version: the ``envdVersion`` reported.
    :param max_body_bytes: the largest control-plane request body.
    :param workspace_root: where sandbox workspaces live; ``None`` is a
        temporary directory removed at shutdown.
    :param host: the address the server binds to (for the safety check).
    """

    api_keys: Sequence[ApiKey] = ()
    auth_enabled: bool = True
    domain: str | None = None
    envd_version: str = DEFAULT_ENVD_VERSION
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    workspace_root: Path | None = None
    host: str = "127.0.0.1"
    _by_key: dict[str, ApiKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        keys = tuple(self.api_keys)
        object.__setattr__(self, "api_keys", keys)
        by_key: dict[str, ApiKey] = {}
        for k in keys:
            if k.key in by_key:
                raise ValueError(f"api_keys: key of id {k.id!r} is listed twice")
            by_key[k.key] = k
        object.__setattr__(self, "_by_key", by_key)
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes: must be >= 1")

    def key(self, secret: str) -> ApiKey | None:
        """The API key whose secret is ``secret``, or ``None``."""
        return self._by_key.get(secret)

    @property
    def admin_key(self) -> ApiKey | None:
        """The first admin key, if any."""
        return next((k for k in self.api_keys if k.admin), None)

    def check_exposure(self) -> None:
        """Refuse to serve a non-loopback ``host`` without authentication (``ValueError``)."""
        if is_loopback(self.host):
            return
        if not self.auth_enabled:
            raise ValueError(
                f"refusing to listen on {self.host!r} with authentication disabled: fake "
                "sandboxes run code on this host; bind to 127.0.0.1 or enable auth"
            )
        if not self.api_keys:
            raise ValueError(
                f"refusing to listen on {self.host!r} without API keys: fake sandboxes run "
                "code on this host; configure apiKeys or bind to 127.0.0.1"
            )
