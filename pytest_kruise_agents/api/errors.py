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
        # The arguments as given: ``type(e)(*e.args)`` (how pickle and SimPy copy an
        # error) builds the same error again.
        super().__init__(field, reason)

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"
