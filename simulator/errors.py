"""Errors the fake cluster raises to its Python callers."""

from __future__ import annotations

__all__ = ["NotFoundError"]


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
