"""Running a blocking call on a thread of its own, for tests that must not hang on it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["held_elsewhere", "in_thread", "outcome_within"]


def in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Start ``call()`` on a daemon thread; the list gets its value or its error."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def outcome_within(seconds: float, call: Callable[[], object]) -> object:
    """``call()``'s value or error, given ``seconds`` of wall time (a hang fails the test)."""
    thread, outcome = in_thread(call)
    thread.join(timeout=seconds)
    assert outcome, f"{call} still waits after {seconds:g} s"
    return outcome[0]


@contextmanager
def held_elsewhere(backend: Any) -> Iterator[None]:
    """Another thread holds ``backend``'s model lock while the block runs (as a long call
    would): the realtime driver stands still, and ``attempt`` finds the lock taken."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with backend.locked():
            held.set()
            release.wait(timeout=30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(timeout=30)
        yield
    finally:
        release.set()
        holder.join(timeout=30)
