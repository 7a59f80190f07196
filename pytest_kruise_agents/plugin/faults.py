"""``kruise_faults``: latency and faults injected by name, for a ``with`` block or the test.

Fault kinds are the fake cluster's (``runtime_init_failure``, ``api_latency``,
``image_pull_slow``, ``node_loss``, ...: :data:`simulator.faults.FAULT_KINDS`);
latencies are its named distributions (``runtime.init``, ``image.pull``, ...:
:data:`simulator.profile.LATENCY_DOCS`). Whatever is still in force at the
end of the test is cleared, and changed latencies are restored (those of a ``with``
block still open too).

:meth:`KruiseFaults.inject` and :meth:`KruiseFaults.fault` hand back the fault
as a plain dict (JSON-ready, as :meth:`KruiseFaults.active` lists them: it can be
recorded, sent, compared), taken when it was injected; :meth:`KruiseFaults.view`
gives a :class:`FaultView` of it: the fault in force, read live (its ``fired``
counts as it acts), by key as a mapping (``v["fired"]``) or by attribute as the
cluster's :class:`~simulator.faults.Fault` (``v.fired``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.backends.base import ResourceNotFound
from pytest_kruise_agents.backends.sim import SimBackend
from simulator.faults import Fault
from simulator.latency import Latency

__all__ = ["FaultView", "KruiseFaults"]


class FaultView(Mapping[str, Any]):
    """A fault injected through ``kruise_faults``, read live and read-only.

    As a mapping it reads as :meth:`KruiseFaults.active` lists the fault (its
    JSON fields: ``f["id"]``, ``f["fired"]``), but each read is of the fault
    now, not of the moment it was injected. Attributes are those of
    :attr:`fault`, the cluster's own read-only view (``Cluster.inject``
    returns the same): ``f.fired``, ``f.kind``, ``f.model_copy()``. A cleared
    fault still reads what it did.
    """

    __slots__ = ("_fault",)

    def __init__(self, fault: Fault) -> None:
        self._fault = fault

    @property
    def fault(self) -> Fault:
        """The cluster's read-only, live view of the fault (setting a field raises)."""
        return self._fault

    def _fields(self) -> dict[str, Any]:
        # Dumped at each read: the mapping follows the fault as it acts.
        return self._fault.model_dump(mode="json")

    def __getitem__(self, key: str) -> Any:
        return self._fields()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields())

    def __len__(self) -> int:
        return len(self._fields())

    def __getattr__(self, name: str) -> Any:
        # Only for names not found on the view itself: the fault's fields and methods.
        # Never a private name: copy and pickle probe them on a view without _fault.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._fault, name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Fault):
            return self._fault == other
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # it changes as the fault acts

    def __repr__(self) -> str:
        return f"FaultView({self._fields()!r})"


class KruiseFaults:
    """Fault and latency injection into one test's cluster (see the module docstring)."""

    def __init__(self, backend: SimBackend) -> None:
        self._backend = backend
        # Each latency changed (by set_latency or a latency block) with the value it had
        # before its first change: what reset puts back.
        self._saved: dict[str, Latency] = {}
        self._resets = 0  # reset calls so far: a block ending after one leaves the latency be
        self._injected: list[tuple[dict[str, Any], Fault]] = []

    def inject(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Inject a fault for the rest of the test; return it (with its ``id``) as a dict.

        ``fields`` are the fault's: ``probability``, ``start`` (the cluster's
        virtual time, as ``Cluster.inject`` takes it), ``duration``,
        ``selector``, ``latency``, ``code``, ``count``. The dict is taken now
        (JSON-ready, so it can be recorded under xdist): :meth:`view` reads the
        fault live.
        """
        return self._inject(kind, fields)[0]

    def _inject(self, kind: str, fields: dict[str, Any]) -> tuple[dict[str, Any], Fault]:
        """:meth:`inject`, with the cluster's live view of the fault."""
        fault = self._backend.inject_fault(kind, **fields)
        snapshot = fault.model_dump(mode="json")
        self._injected.append((snapshot, fault))
        return snapshot, fault

    @contextmanager
    def fault(self, kind: str, **fields: Any) -> Iterator[dict[str, Any]]:
        """A fault in force for the ``with`` block only (the dict :meth:`inject` gives).

        The end of the block clears this fault, if it is still in force: not a
        fault injected later under the same id (a clear frees its id), as
        ``Cluster.fault`` does.
        """
        snapshot, fault = self._inject(kind, fields)
        try:
            yield snapshot
        finally:
            self._backend.clear_fault(fault)

    def view(self, fault: str | Mapping[str, Any]) -> FaultView:
        """The live view of a fault this fixture injected, by the dict it gave or by id.

        The dict names its own fault even when a later one took the same id (an
        id names the latest). Raises :class:`KeyError` naming the id for any
        other (the marker's faults are listed by :meth:`active`, or live by
        ``kruise_cluster.faults``).
        """
        for snapshot, injected in reversed(self._injected):
            if snapshot is fault:
                return FaultView(injected)
        fault_id = fault if isinstance(fault, str) else fault["id"]
        for snapshot, injected in reversed(self._injected):
            if snapshot["id"] == fault_id:
                return FaultView(injected)
        raise KeyError(f"no fault {fault_id!r} was injected through kruise_faults")

    def clear(self, fault_id: str | None = None, *, missing_ok: bool = False) -> None:
        """Clear one fault by id, or all of them."""
        try:
            self._backend.clear_faults(fault_id)
        except ResourceNotFound:
            if not missing_ok:
                raise

    def active(self) -> list[dict[str, Any]]:
        """The faults in force, as they are now (snapshots: JSON-ready mappings)."""
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
        self._saved.setdefault(name, old)

    @contextmanager
    def latency(self, name: str, value: Any) -> Iterator[None]:
        """The named latency replaced for the ``with`` block only.

        :meth:`reset` restores it too, should the block still be open then (a yield
        fixture's block ends after the fixtures set up after it are torn down, and
        ``kruise_e2b``'s teardown kills run after a reset); the block's end then leaves
        the latency as the reset put it.
        """
        old = self._current(name)
        self._backend.set_latency(name, value)
        self._saved.setdefault(name, old)
        resets = self._resets
        try:
            yield
        finally:
            if self._resets == resets:
                self._backend.set_latency(name, old)

    def reset(self) -> None:
        """Clear every fault and restore every latency changed through this fixture
        (:meth:`set_latency`, a :meth:`latency` block still open) to its value before."""
        self._resets += 1
        saved, self._saved = self._saved, {}
        for name, old in saved.items():
            self._backend.set_latency(name, old)
        self._backend.clear_faults()
