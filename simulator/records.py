"""Claim records: one per claim, with the virtual time of each phase.

Benchmarks, reports and assertions read these. Phase names follow the manager's
``ClaimMetrics`` (reference §5.3) and DESIGN.md's record list.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, overload

from pytest_kruise_agents.api.errors import InvalidError

__all__ = ["COLD_REASONS", "PHASES", "ClaimRecord", "ClaimRecords", "ColdReason"]

PHASES = (
    "requested",
    "worker_acquired",
    "picked",
    "locked",
    "ready",
    "runtime_initialized",
    "mounted",
    "delivered",
    "failed",
)
"""Phase timestamps in the order a successful claim passes them."""

ColdReason = Literal["NoStock", "AllCandidatesPicked"]
"""Why an attempt created a sandbox instead of taking one from the pool (§5.2 step 2).

The pick's own reasons, named as the :class:`~pytest_kruise_agents.claiming.errors.NoAvailableError`
an attempt without create-on-no-stock raises for them: ``NoStock``, the manager's cache held no
candidate at all (the pool was empty as that manager saw it); ``AllCandidatesPicked``, the window
held candidates but concurrent attempts of the same manager were picking every one of them, so a
sandbox was created while stock remained.
"""

COLD_REASONS: tuple[ColdReason, ...] = ("NoStock", "AllCandidatesPicked")
"""The values of :attr:`ClaimRecord.cold_reason`, in the order reports list them."""


@dataclass(slots=True)
class ClaimRecord:
    """What happened to one claim (an E2B create, or one sandbox of a SandboxClaim)."""

    id: int
    path: Literal["e2b", "sandboxclaim"]
    namespace: str
    template: str
    owner: str
    requested: float
    claim_name: str | None = None
    worker_acquired: float | None = None
    picked: float | None = None
    locked: float | None = None
    ready: float | None = None
    runtime_initialized: float | None = None
    mounted: float | None = None
    delivered: float | None = None
    failed: float | None = None
    lock_type: Literal["update", "create"] | None = None
    sandbox: str | None = None
    attempts: int = 0
    pick_failures: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    error_reason: str | None = None
    error_code: int | None = None
    cold_reason: ColdReason | None = None
    """Why the last attempt created its sandbox (``lock_type == "create"``), or ``None``.

    Last among the fields so that every listing of records keeps its earlier columns in order.
    """

    @property
    def warm(self) -> bool | None:
        """True when delivered from the warm pool, False when created on no stock; ``None``
        until delivered (``lock_type`` still says what a failed claim's last attempt did)."""
        if self.lock_type is None or self.delivered is None:
            return None
        return self.lock_type == "update"

    @property
    def retries(self) -> int:
        """Attempts after the first."""
        return max(0, self.attempts - 1)

    @property
    def latency(self) -> float | None:
        """Seconds from request to delivery, or ``None`` if not delivered."""
        return None if self.delivered is None else self.delivered - self.requested

    @property
    def done(self) -> bool:
        """Delivered or failed."""
        return self.delivered is not None or self.failed is not None

    def as_dict(self) -> dict[str, Any]:
        """Plain fields plus ``warm``, ``retries`` and ``latency``."""
        d = asdict(self)
        d["warm"] = self.warm
        d["retries"] = self.retries
        d["latency"] = self.latency
        return d


class ClaimRecords(Sequence[ClaimRecord]):
    """The claim records of a run, in request order: a read-only sequence (a slice is a list).

    :param limit: keep only the latest ``limit`` records (``None``: all). A
        server that stays up for weeks would otherwise grow by a record per
        claim; the older ones are dropped (:attr:`dropped` counts them) and
        record ids keep counting.
    """

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise ValueError(f"limit must be a whole number >= 1 or None, got {limit!r}")
        if limit is not None and limit > sys.maxsize:
            # deque(maxlen=) takes a C size: a larger limit ended in an OverflowError.
            raise ValueError(f"limit must be at most {sys.maxsize}, got {limit}")
        self._records: deque[ClaimRecord] = deque(maxlen=limit)
        self._next_id = 1
        self._listeners: list[Callable[[ClaimRecord], None]] = []

    @property
    def dropped(self) -> int:
        """Records dropped to keep within the limit (since the last :meth:`clear`)."""
        return self._next_id - 1 - len(self._records)

    @property
    def limit(self) -> int | None:
        """The most records kept, or ``None`` for all."""
        return self._records.maxlen

    def __repr__(self) -> str:
        """Counts by outcome, not the records (it is a sequence of them)."""
        delivered = sum(r.delivered is not None for r in self._records)
        failed = sum(r.failed is not None for r in self._records)
        open_ = len(self._records) - delivered - failed
        text = (
            f"<ClaimRecords: {len(self._records):,} records ({delivered:,} delivered, "
            f"{failed:,} failed, {open_:,} open)"
        )
        if self.limit is not None:
            text += f", the latest {self.limit:,} kept ({self.dropped:,} dropped)"
        return text + ">"

    def new(
        self,
        *,
        path: Literal["e2b", "sandboxclaim"],
        namespace: str,
        template: str,
        owner: str,
        requested: float,
        claim_name: str | None = None,
    ) -> ClaimRecord:
        """Start a record."""
        rec = ClaimRecord(
            id=self._next_id,
            path=path,
            namespace=namespace,
            template=template,
            owner=owner,
            requested=requested,
            claim_name=claim_name,
        )
        self._next_id += 1
        self._records.append(rec)
        for listener in tuple(self._listeners):
            listener(rec)
        return rec

    def listen(self, listener: Callable[[ClaimRecord], None]) -> Callable[[], None]:
        """Call ``listener`` with each record started from now on; return what stops it.

        A run that must see all of its own records holds them this way: with a
        limit, the older records may be dropped before it reads them, and
        positions in the kept ones shift as they are (records are updated in
        place, so a record held stays current). :class:`InvalidError` names a
        ``listener`` that cannot be called (taken, it failed every later claim).
        """
        if not callable(listener):
            raise InvalidError(
                "listener", f"must be a function taking a ClaimRecord, got {listener!r}"
            )
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop

    def __iter__(self) -> Iterator[ClaimRecord]:
        return iter(self._records)

    def __reversed__(self) -> Iterator[ClaimRecord]:
        # Sequence's own would index the deque from each end inwards: quadratic.
        return reversed(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @overload
    def __getitem__(self, i: int) -> ClaimRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[ClaimRecord]: ...

    def __getitem__(self, i: int | slice) -> ClaimRecord | list[ClaimRecord]:
        """The kept record at ``i``, or a list of the kept records a slice takes."""
        if isinstance(i, slice):
            # A deque takes no slice: a list's slice of a copy (as long as the kept
            # records, and let go at once).
            return list(self._records)[i]
        return self._records[i]

    def delivered(self) -> list[ClaimRecord]:
        """Records of delivered claims."""
        return [r for r in self._records if r.delivered is not None]

    def failed(self) -> list[ClaimRecord]:
        """Records of failed claims."""
        return [r for r in self._records if r.failed is not None]

    def clear(self) -> None:
        """Forget all records (e.g. after a warm-up); ids start again at 1."""
        self._records.clear()
        self._next_id = 1
