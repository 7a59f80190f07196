"""Errors the fake cluster raises to its Python callers."""

from __future__ import annotations

from pytest_kruise_agents.api.errors import InvalidError

__all__ = ["ConflictError", "NotFoundError"]


class NotFoundError(LookupError):
    """A resource does not exist (HTTP 404)."""

    code = 404

    def __init__(self, kind: str, namespace: str, name: str) -> None:
        self.kind = kind
        self.namespace = namespace
        self.name = name
        # kubectl names the resource by its plural: sandboxes, sandboxsets, pods.
        plural = "sandboxes" if kind == "Sandbox" else f"{kind.lower()}s"
        super().__init__(f'{plural} "{name}" not found in namespace "{namespace}"')


class ConflictError(InvalidError):
    """A write based on an old ``metadata.resourceVersion`` (HTTP 409 Conflict).

    An :class:`InvalidError` too: bad input that names its field and changed
    nothing, so a caller that handles one handles both.
    """

    code = 409
