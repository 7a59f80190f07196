"""Validation errors for Kubernetes objects and their fields."""

from __future__ import annotations

__all__ = ["InvalidError"]


class InvalidError(ValueError):
    """An object or value is invalid: names the field path and the reason.

    Mirrors a Kubernetes ``422 Invalid`` answer (``StatusReasonInvalid``): one
    field, one reason, and nothing was changed.
    """

    code = 422

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")
