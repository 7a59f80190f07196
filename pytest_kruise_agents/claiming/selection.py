"""Candidate selection: which pool sandbox one claim attempt picks (§5.2 step 2, §9 item 5).

The first ``window`` (100) eligible sandboxes in cache order form the
candidates; the current revision is preferred; within a group the pick starts
at a uniformly random index and probes linearly, skipping sandboxes this
process is already claiming. Randomness spreads concurrent claims of one
process over the window; the optimistic lock, not the pick, guarantees
exclusivity.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Container, Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Final

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxState
from pytest_kruise_agents.claiming.errors import NoAvailableError
from pytest_kruise_agents.claiming.rng import RandomSource
from pytest_kruise_agents.claiming.state import pod_ip, sandbox_key, sandbox_state

__all__ = [
    "DEFAULT_CANDIDATE_WINDOW",
    "MAX_CANDIDATE_WINDOW",
    "REASON_ALL_PICKED",
    "REASON_NO_STOCK",
    "PickResult",
    "is_candidate",
    "is_pickable",
    "no_available_error",
    "pick_choices",
    "select_candidate",
]

DEFAULT_CANDIDATE_WINDOW: Final = 100
MAX_CANDIDATE_WINDOW: Final = sys.maxsize
"""The widest candidate window a pick can read (it reads the pool with ``itertools.islice``)."""

REASON_NO_STOCK: Final = "no stock"
REASON_ALL_PICKED: Final = "all candidates are picked"

_SECOND: Final = timedelta(seconds=1)


@dataclass(frozen=True)
class PickResult:
    """The picked sandbox, or ``None`` and why: ``"no stock"`` or ``"all candidates are picked"``.

    ``candidates`` is how many eligible sandboxes the window held.
    """

    sandbox: Sandbox | None
    reason: str
    candidates: int = 0


def is_pickable(sbx: Sandbox) -> bool:
    """The state-independent part of :func:`is_candidate`: unlocked, created, with a pod IP."""
    if sbx.metadata.annotations.get(keys.ANN_LOCK):
        return False
    if sbx.metadata.creation_timestamp is None:
        return False
    return pod_ip(sbx) is not None


def is_candidate(
    sbx: Sandbox, now: datetime, *, is_fresh: Callable[[Sandbox], bool] | None = None
) -> bool:
    """Whether ``sbx`` may be picked: available, unlocked, created, with a pod IP, and fresh.

    ``is_fresh`` is the caller's resourceVersion expectation check (the cached
    copy is not older than this process's own last write).
    """
    if sandbox_state(sbx, now)[0] != SandboxState.AVAILABLE:
        return False
    if not is_pickable(sbx):
        return False
    return is_fresh is None or is_fresh(sbx)


def _probe(group: Sequence[Sandbox], in_flight: Set[str], rng: RandomSource) -> Sandbox | None:
    if not group:
        return None
    start = rng.randrange(len(group))
    for i in range(len(group)):
        sbx = group[(start + i) % len(group)]
        if sandbox_key(sbx) not in in_flight:
            return sbx
    return None


def _window(
    pool: Iterable[Sandbox],
    window: int,
    now: datetime,
    is_fresh: Callable[[Sandbox], bool] | None,
    prefiltered: bool,
    suspects: Container[str] | None,
) -> list[Sandbox]:
    """The first ``window`` candidates of ``pool`` in order (see :func:`select_candidate`).

    ``pool`` is read in slices of as many sandboxes as candidates are still
    missing, so that no sandbox after the last candidate is read (nor asked
    ``is_fresh``, which may drop an expired expectation); a slice is filtered
    in one comprehension: this runs for every claim over the whole window.
    """
    out: list[Sandbox] = []
    items = iter(pool)
    # A shutdown time counts in whole seconds (§9 item 10), as in
    # ``sandbox_state``: ``now <= truncate(t)`` is ``ceil(now) <= t``, computed
    # once here rather than a truncation per sandbox.
    ceil_now = now.replace(microsecond=0) + _SECOND if now.microsecond else now
    while len(out) < window:
        chunk = list(islice(items, window - len(out)))
        if not chunk:
            break
        if not prefiltered:
            out += [s for s in chunk if is_candidate(s, now, is_fresh=is_fresh)]
        elif is_fresh is None:
            out += [
                s for s in chunk if s.spec.shutdown_time is None or ceil_now <= s.spec.shutdown_time
            ]
        else:
            # Only what the passing of time can change is checked again (the
            # shutdown time), and the freshness of the suspects (all if none given).
            out += [
                s
                for s in chunk
                if (s.spec.shutdown_time is None or ceil_now <= s.spec.shutdown_time)
                and ((suspects is not None and s.metadata.uid not in suspects) or is_fresh(s))
            ]
    return out


def select_candidate(
    pool: Iterable[Sandbox],
    *,
    update_revision: str | None,
    in_flight: Set[str],
    rng: RandomSource,
    now: datetime,
    window: int = DEFAULT_CANDIDATE_WINDOW,
    is_fresh: Callable[[Sandbox], bool] | None = None,
    prefiltered: bool = False,
    suspects: Container[str] | None = None,
) -> PickResult:
    """Pick one sandbox of ``pool`` for a claim attempt; ``in_flight`` is not modified.

    Walks ``pool`` in order and stops as soon as ``window`` candidates are
    collected (the rest of the iterable is never read). Candidates whose
    ``template-hash`` label equals ``update_revision`` are tried first, then the
    others. No candidate at all gives reason ``"no stock"``; candidates that are
    all in ``in_flight`` (keys ``"ns/name"``) give ``"all candidates are picked"``.
    The caller marks the pick in flight.

    ``prefiltered`` says that ``pool`` holds only sandboxes that were
    candidates when last changed (an incrementally kept candidate index):
    then only what the passing of time can change is checked again, the
    shutdown time, and the freshness; with ``suspects`` (UIDs) as well, only
    sandboxes whose UID is a suspect are asked ``is_fresh`` (a caller's
    pending expectations: nothing else can be stale).
    """
    cands = _window(pool, window, now, is_fresh, prefiltered, suspects)
    count = len(cands)
    if count == 0:
        return PickResult(None, REASON_NO_STOCK, 0)
    for group in _groups(cands, update_revision):
        picked = _probe(group, in_flight, rng)
        if picked is not None:
            return PickResult(picked, "", count)
    return PickResult(None, REASON_ALL_PICKED, count)


def _groups(cands: list[Sandbox], update_revision: str | None) -> tuple[list[Sandbox], ...]:
    """The candidates of the update revision, then the others (all one group with no revision)."""
    if update_revision is None:
        return ([], cands)
    hash_key = keys.LABEL_TEMPLATE_HASH
    updated = [s for s in cands if s.metadata.labels.get(hash_key) == update_revision]
    if len(updated) == len(cands):
        return (updated, [])
    return (updated, [s for s in cands if s.metadata.labels.get(hash_key) != update_revision])


def pick_choices(
    pool: Iterable[Sandbox],
    *,
    update_revision: str | None,
    in_flight: Set[str],
    now: datetime,
    window: int = DEFAULT_CANDIDATE_WINDOW,
    is_fresh: Callable[[Sandbox], bool] | None = None,
    prefiltered: bool = False,
    suspects: Container[str] | None = None,
) -> list[Sandbox]:
    """Every sandbox :func:`select_candidate` could pick with the same arguments, drawing nothing.

    The members not in ``in_flight`` of the first group (the update
    revision's, then the others) that has any, in pool order: the random
    start of the probe decides which of them the pick takes. Empty when the
    pick would take none. A check that must not draw from the run's
    generator (a create refused on arrival) asks this instead of picking.
    """
    cands = _window(pool, window, now, is_fresh, prefiltered, suspects)
    for group in _groups(cands, update_revision):
        free = [s for s in group if sandbox_key(s) not in in_flight]
        if free:
            return free
    return []


def no_available_error(result: PickResult) -> NoAvailableError:
    """The retriable error for a failed pick when no-stock creation is off."""
    return NoAvailableError(result.reason or REASON_NO_STOCK)
