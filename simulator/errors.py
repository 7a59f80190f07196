"""Errors the fake cluster raises to its Python callers."""

from __future__ import annotations

from datetime import datetime

from pytest_kruise_agents.api.base import format_time
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.claiming.errors import ClaimCanceledError
from pytest_kruise_agents.claiming.extensions import KEY_CLAIM_TIMEOUT_SECONDS

__all__ = ["ConflictError", "NoAnswerError", "NotFoundError", "PoolTimeoutError"]


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


class PoolTimeoutError(TimeoutError):
    """A pool that did not fill in time: what was counted, and why when the pool says it.

    ``reason`` is the cause the pool gave (a rollout blocked, an unschedulable
    pod, a pod whose container waits), the part of the message after what was
    counted, or ``None``; ``explained`` is whether there is one, so that a
    caller guesses at a cause only when the pool gave none.
    """

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        # One argument, as any TimeoutError's: two would be read as (errno, strerror).
        super().__init__(f"{message}; {reason}" if reason else message)
        self.reason = reason or None

    @property
    def explained(self) -> bool:
        """Whether the pool gave a cause (:attr:`reason`)."""
        return self.reason is not None


class NoAnswerError(ClaimCanceledError):
    """A call whose answer can never come, or not within the call's bound (HTTP 500).

    The model ran out of events before the one the call waits for, or (a
    create with no claim timeout of its own) the model ran on for
    :data:`~simulator.cluster.CREATE_CALL_BOUND_S` without answering. The call
    gives up as a client going away does, hence a
    :class:`~pytest_kruise_agents.claiming.errors.ClaimCanceledError`: a claim
    it cut is cancelled and cleans up what it locked. The message names what
    was awaited.
    """

    @classmethod
    def went_idle(cls, what: str, at: datetime) -> NoAnswerError:
        """The error of the call ``what`` when the model ran out of events at ``at``."""
        return cls(
            f"{what}: no event is left that could answer it (the model went idle at {format_time(at)})"
        )

    @classmethod
    def out_of_bound(cls, what: str, bound: float) -> NoAnswerError:
        """The error of the call ``what`` once its bound of ``bound`` simulated seconds passed."""
        return cls(
            f"{what}: no answer within {bound:g} s of simulated time (the call's bound, as a "
            f"client's request timeout; set {KEY_CLAIM_TIMEOUT_SECONDS} to bound the claim itself)"
        )
