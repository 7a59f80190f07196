"""SandboxSet reconcile decisions (§3): counting, scaling, scale-down order, rolling update.

The pool counts only what it still owns: creating and available sandboxes
(plus creates issued but not yet observed). A claim removes the owner
reference, so a claimed sandbox drops out of the count and the set creates a
replacement.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.sandbox import Sandbox, SandboxPhase, SandboxState
from pytest_kruise_agents.api.sandboxset import IntOrString, SandboxSet, scaled_value
from pytest_kruise_agents.claiming.errors import ConflictError
from pytest_kruise_agents.claiming.state import is_ready, sandbox_state

__all__ = [
    "DEFAULT_INITIAL_BATCH",
    "DEFAULT_UPDATE_MAX_UNAVAILABLE",
    "SetGroups",
    "SetStatusCounts",
    "can_lock_for_scale_down",
    "compute_replicas",
    "creation_batches",
    "group_sandboxes",
    "is_owned_by",
    "is_updated",
    "lock_for_scale_down",
    "rolling_update_deletions",
    "rollout_blocked",
    "scale_delta",
    "scale_down_order",
    "scale_up_blocked",
    "scale_up_limit",
    "selector_for",
    "updated_counts",
]

DEFAULT_INITIAL_BATCH = 16
"""``--sandboxset-initial-batch-size``."""
DEFAULT_UPDATE_MAX_UNAVAILABLE: IntOrString = "20%"
"""``updateStrategy.maxUnavailable`` as the mutating webhook defaults it."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def creation_batches(n: int, initial: int = DEFAULT_INITIAL_BATCH) -> list[int]:
    """Batch sizes of ``DoItSlowly`` for ``n`` items: ``initial``, doubling, capped by the rest."""
    batches: list[int] = []
    size = max(initial, 1)
    remaining = n
    while remaining > 0:
        batch = min(size, remaining)
        batches.append(batch)
        remaining -= batch
        size *= 2
    return batches


def is_owned_by(sbx: Sandbox, sbs: SandboxSet) -> bool:
    """Whether ``sbs`` is ``sbx``'s controller (the set's ownerRef-UID index)."""
    ref = sbx.metadata.controller_ref()
    if ref is None or ref.kind != "SandboxSet" or ref.api_version != keys.API_VERSION:
        return False
    if sbs.metadata.uid:
        return ref.uid == sbs.metadata.uid
    return ref.name == sbs.metadata.name


def is_updated(sbx: Sandbox, update_revision: str | None) -> bool:
    """Whether ``sbx`` was created from the current revision (its ``template-hash`` label)."""
    return (
        update_revision is not None
        and sbx.metadata.labels.get(keys.LABEL_TEMPLATE_HASH) == update_revision
    )


@dataclass(frozen=True)
class SetGroups:
    """A SandboxSet's owned sandboxes grouped by derived state (§3 step 1)."""

    creating: list[Sandbox]
    available: list[Sandbox]
    used: list[Sandbox]
    dead: list[Sandbox]

    def counts(self, unobserved_creates: int = 0) -> SetStatusCounts:
        """The counts the status is computed from."""
        return SetStatusCounts(
            creating=len(self.creating),
            available=len(self.available),
            dead=len(self.dead),
            unobserved_creates=unobserved_creates,
        )


def group_sandboxes(sandboxes: Iterable[Sandbox], now: datetime) -> SetGroups:
    """Group sandboxes by derived state, keeping list order within each group."""
    groups: dict[SandboxState, list[Sandbox]] = {s: [] for s in SandboxState}
    for sbx in sandboxes:
        groups[sandbox_state(sbx, now)[0]].append(sbx)
    return SetGroups(
        creating=groups[SandboxState.CREATING],
        available=groups[SandboxState.AVAILABLE],
        used=groups[SandboxState.RUNNING] + groups[SandboxState.PAUSED],
        dead=groups[SandboxState.DEAD],
    )


@dataclass(frozen=True)
class SetStatusCounts:
    """Owned sandboxes by state, plus creates issued but not yet seen in the cache."""

    creating: int = 0
    available: int = 0
    dead: int = 0
    unobserved_creates: int = 0


def compute_replicas(counts: SetStatusCounts) -> tuple[int, int]:
    """``(status.replicas, status.availableReplicas)``: claimed sandboxes never count.

    ``replicas`` is creating + available + unobserved creates.
    """
    return counts.creating + counts.available + counts.unobserved_creates, counts.available


def scale_up_limit(
    spec_replicas: int, replicas: int, available: int, max_unavailable: IntOrString | None
) -> int | None:
    """How many more may be created under ``scaleStrategy.maxUnavailable`` (``None``: unlimited).

    ``scaled(maxUnavailable, spec.replicas, round up) - (replicas - available)``;
    may be negative when more are already creating than allowed.
    """
    budget = scaled_value(max_unavailable, spec_replicas, round_up=True)
    if budget is None:
        return None
    return budget - (replicas - available)


def scale_delta(
    spec_replicas: int, counts: SetStatusCounts, max_unavailable: IntOrString | None
) -> int:
    """Sandboxes to create (positive) or delete (negative) this reconcile (§3 step 3).

    A scale-up is bounded by :func:`scale_up_limit` and never turns into a
    scale-down when the limit is exhausted.
    """
    replicas, available = compute_replicas(counts)
    delta = spec_replicas - replicas
    if delta > 0:
        limit = scale_up_limit(spec_replicas, replicas, available, max_unavailable)
        if limit is not None:
            delta = max(0, min(delta, limit))
    return delta


def _created(sbx: Sandbox) -> datetime:
    return sbx.metadata.creation_timestamp or _EPOCH


def _tier(sbx: Sandbox, state: SandboxState) -> tuple[int, int]:
    if sbx.status.phase == SandboxPhase.PENDING:
        return 0, 0
    recycled = sbx.status.recycled_count or 0
    if recycled > 0:
        return 1, -recycled
    if sbx.status.phase == SandboxPhase.RUNNING and not is_ready(sbx):
        return 2, 0
    return (3 if state == SandboxState.AVAILABLE else 2), 0


def scale_down_order(
    sandboxes: Sequence[Sandbox], update_revision: str | None, now: datetime
) -> list[Sandbox]:
    """The order a scale-down deletes in; only creating and available sandboxes are listed.

    Old-revision sandboxes first (creating, then available, in list order);
    then updated ones by tier: Pending (0) < recycled (1, higher
    ``recycledCount`` first) < Running-not-Ready (2) < available (3), ties
    older first.
    """
    old_creating: list[Sandbox] = []
    old_available: list[Sandbox] = []
    updated: list[tuple[tuple[int, int], datetime, Sandbox]] = []
    for sbx in sandboxes:
        state = sandbox_state(sbx, now)[0]
        if state not in (SandboxState.CREATING, SandboxState.AVAILABLE):
            continue
        if is_updated(sbx, update_revision):
            updated.append((_tier(sbx, state), _created(sbx), sbx))
        elif state == SandboxState.CREATING:
            old_creating.append(sbx)
        else:
            old_available.append(sbx)
    updated.sort(key=lambda item: (item[0], item[1]))
    return old_creating + old_available + [sbx for _, _, sbx in updated]


def can_lock_for_scale_down(sbx: Sandbox) -> bool:
    """Whether the set may lock ``sbx`` for deletion: unlocked, or locked by a scale-down."""
    ann = sbx.metadata.annotations
    return not ann.get(keys.ANN_LOCK) or ann.get(keys.ANN_OWNER) == keys.OWNER_MANAGER_SCALE_DOWN


def lock_for_scale_down(sbx: Sandbox, lock_string: str) -> Sandbox:
    """The copy of ``sbx`` the scale-down lock writes: ``lock`` and ``owner=__manager_scale_down``.

    Raises :class:`ConflictError` if someone else (a claim) holds the lock.
    """
    if not can_lock_for_scale_down(sbx):
        raise ConflictError(
            f"sandbox {sbx.metadata.namespace}/{sbx.metadata.name} is locked by "
            f"{sbx.metadata.annotations.get(keys.ANN_OWNER, '<unknown>')}",
            reason="Locked",
        )
    out = sbx.model_copy(deep=True)
    out.metadata.annotations[keys.ANN_LOCK] = lock_string
    out.metadata.annotations[keys.ANN_OWNER] = keys.OWNER_MANAGER_SCALE_DOWN
    return out


def rolling_update_deletions(
    updated_creating: int,
    old_creating: Sequence[Sandbox],
    old_available: Sequence[Sandbox],
    spec_replicas: int,
    max_unavailable: IntOrString | None,
) -> list[Sandbox]:
    """Old-revision sandboxes a rolling update deletes now (``rolling_update.go``).

    Every old creating one; old available ones oldest first, up to
    ``scaled(updateStrategy.maxUnavailable, spec.replicas, round up) -
    updated_creating``. ``None`` means the webhook default ``20%``.
    """
    budget = scaled_value(
        max_unavailable if max_unavailable is not None else DEFAULT_UPDATE_MAX_UNAVAILABLE,
        spec_replicas,
        round_up=True,
    )
    allowed = max(0, (budget or 0) - updated_creating)
    oldest_first = sorted(old_available, key=_created)
    return list(old_creating) + oldest_first[:allowed]


def rollout_blocked(sbs: SandboxSet, sandboxes: Iterable[Sandbox], now: datetime) -> str | None:
    """Why the rolling update of ``sbs`` replaces no more of its old available sandboxes, or ``None``.

    ``sandboxes`` are the set's own. Two causes can be told: ``updateStrategy.maxUnavailable``
    resolves to 0 (upstream accepts it, and its rolling update then deletes no old available
    sandbox), or an old sandbox the update would delete now is locked by someone else (it is
    skipped, and no other is taken in its place). ``None`` when no old available sandbox is left, or
    the update may go on (or waits for new sandboxes being created).
    """
    revision = sbs.status.update_revision
    groups = group_sandboxes(sandboxes, now)
    old_available = [s for s in groups.available if not is_updated(s, revision)]
    if not old_available:
        return None
    replicas = sbs.spec.replicas
    value = sbs.spec.update_strategy.max_unavailable
    if value is None:
        value = DEFAULT_UPDATE_MAX_UNAVAILABLE
    if not scaled_value(value, replicas, round_up=True):
        return f"updateStrategy.maxUnavailable {value} lets no old sandbox be replaced"
    updated_creating = sum(1 for s in groups.creating if is_updated(s, revision))
    for sbx in rolling_update_deletions(updated_creating, [], old_available, replicas, value):
        if not can_lock_for_scale_down(sbx):
            owner = sbx.metadata.annotations.get(keys.ANN_OWNER) or "<unknown>"
            meta = sbx.metadata
            return f"old sandbox {meta.namespace}/{meta.name} is locked by {owner}"
    return None


def scale_up_blocked(sbs: SandboxSet, available: int) -> str | None:
    """Why ``sbs`` creates no sandbox though it has fewer than ``spec.replicas`` available, or
    ``None``: ``scaleStrategy.maxUnavailable`` resolves to 0 (upstream accepts it, and its
    scale-up budget is then 0 whatever is missing). ``available`` is the set's count."""
    strategy = sbs.spec.scale_strategy
    value = None if strategy is None else strategy.max_unavailable
    if value is None or available >= sbs.spec.replicas:
        return None
    if scaled_value(value, sbs.spec.replicas, round_up=True):
        return None
    return f"scaleStrategy.maxUnavailable {value} lets no sandbox be created"


def updated_counts(
    sandboxes: Iterable[Sandbox], update_revision: str | None, now: datetime
) -> tuple[int, int]:
    """``(updatedReplicas, updatedAvailableReplicas)`` among creating and available sandboxes."""
    updated = updated_available = 0
    for sbx in sandboxes:
        state = sandbox_state(sbx, now)[0]
        if state not in (SandboxState.CREATING, SandboxState.AVAILABLE):
            continue
        if is_updated(sbx, update_revision):
            updated += 1
            if state == SandboxState.AVAILABLE:
                updated_available += 1
    return updated, updated_available


def selector_for(sbs: SandboxSet) -> str:
    """``status.selector``: ``sandbox-pool=<name>,sandbox-claimed=false``."""
    return f"{keys.LABEL_SANDBOX_POOL}={sbs.metadata.name},{keys.LABEL_SANDBOX_CLAIMED}=false"
