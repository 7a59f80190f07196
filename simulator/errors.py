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
        # The arguments as given: ``type(e)(*e.args)`` (pickle, SimPy) builds it again.
        super().__init__(kind, namespace, name)

    def __str__(self) -> str:
        # kubectl names the resource by its plural: sandboxes, sandboxsets, pods.
        plural = "sandboxes" if self.kind == "Sandbox" else f"{self.kind.lower()}s"
        return f'{plural} "{self.name}" not found in namespace "{self.namespace}"'


class ConflictError(InvalidError):
    """A write based on an old ``metadata.resourceVersion`` (HTTP 409 Conflict).

    An :class:`InvalidError` too: bad input that names its field and changed
    nothing, so a caller that handles one handles both.
    """

    code = 409
