"""``kruise_faults``: latency and faults injected by name, for a ``with`` block or the test.

Fault kinds are the fake cluster's (``runtime_init_failure``, ``api_latency``,
``image_pull_slow``, ``node_loss``, ...: :data:`simulator.faults.FAULT_KINDS`);
latencies are its named distributions (``runtime.init``, ``image.pull``, ...:
:data:`simulator.profile.LATENCY_DOCS`). Whatever is still in force at the
end of the test is cleared, and changed latencies are restored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.backends.base import ResourceNotFound
from pytest_kruise_agents.backends.sim import SimBackend
from simulator.latency import Latency

__all__ = ["KruiseFaults"]


class KruiseFaults:
    """Fault and latency injection into one test's cluster (see the module docstring)."""

    def __init__(self, backend: SimBackend) -> None:
        self._backend = backend
        self._saved: list[tuple[str, Latency]] = []

    def inject(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Inject a fault for the rest of the test; return it (with its ``id``).

        ``fields`` are the fault's: ``probability``, ``start``, ``duration``,
        ``selector``, ``latency``, ``code``, ``count``.
        """
        return self._backend.inject(kind, **fields)

    @contextmanager
    def fault(self, kind: str, **fields: Any) -> Iterator[dict[str, Any]]:
        """A fault in force for the ``with`` block only."""
        injected = self.inject(kind, **fields)
        try:
            yield injected
        finally:
            self.clear(injected["id"], missing_ok=True)

    def clear(self, fault_id: str | None = None, *, missing_ok: bool = False) -> None:
        """Clear one fault by id, or all of them."""
        try:
            self._backend.clear_faults(fault_id)
        except ResourceNotFound:
            if not missing_ok:
                raise

    def active(self) -> list[dict[str, Any]]:
        """The faults in force."""
        return self._backend.faults()

    def _current(self, name: str) -> Latency:
        with self._backend.locked() as cluster:
            try:
                return cluster.profile.latency(name)
            except ValueError as exc:
                raise InvalidError(f"latencies.{name}", str(exc)) from None

    def set_latency(self, name: str, value: Any) -> None:
        """Replace the named latency distribution for the rest of the test (e.g. ``"2s"``, ``"exp(3s)"``)."""
        old = self._current(name)
        self._backend.set_latency(name, value)
        self._saved.append((name, old))

    @contextmanager
    def latency(self, name: str, value: Any) -> Iterator[None]:
        """The named latency replaced for the ``with`` block only."""
        old = self._current(name)
        self._backend.set_latency(name, value)
        try:
            yield
        finally:
            self._backend.set_latency(name, old)

    def reset(self) -> None:
        """Clear every fault and restore every latency changed with :meth:`set_latency`."""
        while self._saved:
            name, old = self._saved.pop()
            self._backend.set_latency(name, old)
        self._backend.clear_faults()
