"""A claim attempt cut short by its context, and the error of the wait it cut.

Upstream runs each attempt under the claim's context (reference §5.3,
``claimCtx``): when its deadline passes, or its client goes away, the wait in
progress returns with an error, which the retry loop keeps as its last error
before it answers the context's own (``context deadline exceeded, last error:
<…>, pick sandbox failures: [...]``). Here an attempt is a SimPy process its
caller interrupts; :class:`AttemptCut` is that interrupt once the cut wait has
said what it was waiting for.
"""

from __future__ import annotations

import simpy

from pytest_kruise_agents.claiming.errors import ClaimCanceledError, ClaimError

__all__ = ["AttemptCut", "context_error", "cut"]


class AttemptCut(simpy.Interrupt):
    """The interrupt that stopped a claim attempt, with the ``error`` of the wait it stopped.

    Still a :class:`simpy.Interrupt`: a caller that handles only those (a
    cancelled create) handles it as before.
    """

    def __init__(self, cause: object, error: ClaimError) -> None:
        super().__init__(cause)
        self.error = error


def context_error(interrupt: simpy.Interrupt) -> ClaimError:
    """The context error ``interrupt`` stands for: its cause when that is a :class:`ClaimError`
    (the manager's deadline gives :class:`~pytest_kruise_agents.claiming.errors.ClaimTimeoutError`),
    else a cancel's (a client that went away)."""
    cause = interrupt.cause
    return cause if isinstance(cause, ClaimError) else ClaimCanceledError()


def cut(interrupt: simpy.Interrupt, error: ClaimError) -> AttemptCut:
    """``interrupt`` as an :class:`AttemptCut` whose wait reported ``error``.

    One already cut keeps its error: the innermost wait knows best what it waited for.
    """
    if isinstance(interrupt, AttemptCut):
        return interrupt
    return AttemptCut(interrupt.cause, error)
