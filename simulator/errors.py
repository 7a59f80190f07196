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
        super().__init__(f'{kind.lower()}s "{name}" not found in namespace "{namespace}"')
