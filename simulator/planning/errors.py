"""The errors of capacity planning: a bad scenario, a bad option, a run that cannot start."""

from __future__ import annotations

__all__ = [
    "FieldError",
    "PathError",
    "PlanningError",
    "PoolFillError",
    "RunError",
    "ScenarioError",
]


class PlanningError(ValueError):
    """Base of the planning errors: one message that says what is wrong and where."""


class ScenarioError(PlanningError):
    """A scenario (or an override of one) is invalid.

    :param source: the file (or ``--set``, ``<string>``) the bad value came from.
    :param path: the field path inside the scenario, e.g. ``workloads[0].arrivals.rate``.
    :param reason: why the value is refused.
    :param line: the 1-based line in ``source``, when known.
    """

    def __init__(self, source: str, path: str, reason: str, *, line: int | None = None) -> None:
        self.source = source
        self.path = path
        self.reason = reason
        self.line = line
        # The arguments: ``type(e)(*e.args)`` (pickle, as a Dask worker's error comes
        # back) builds it again; pickle restores ``line`` with the rest of its state.
        super().__init__(source, path, reason)

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.path}: {self.reason}" if self.path else f"{where}: {self.reason}"


class RunError(PlanningError):
    """A run could not proceed (e.g. a pool that never fills on the scenario's nodes)."""


class PoolFillError(RunError):
    """A pool never filled: the scenario's nodes cannot hold the pools at these sizes.

    ``plan`` reads it as a verdict on the size it tried (it does not fit), not as
    a bad scenario: a smaller pool may fit.
    """


class FieldError(ValueError):
    """Raised inside a model validator: the problem is at ``field`` (relative to the model)."""

    def __init__(self, field: str | tuple[str | int, ...], reason: str) -> None:
        self.field: tuple[str | int, ...] = (field,) if isinstance(field, str) else field
        self.reason = reason
        super().__init__(f"{'.'.join(map(str, self.field))}: {reason}")


class PathError(ValueError):
    """Raised inside a model validator: the problem is at ``path`` (from the scenario's root)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")
