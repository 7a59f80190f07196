"""Specification of the SandboxSet reconcile decisions (reference §3)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.sandbox import SandboxPhase
from pytest_kruise_agents.api.sandboxset import SandboxSet, ScaleStrategy
from pytest_kruise_agents.claiming.errors import ConflictError
from pytest_kruise_agents.claiming.sandboxset import (
    SetStatusCounts,
    can_lock_for_scale_down,
    compute_replicas,
    creation_batches,
    group_sandboxes,
    is_owned_by,
    lock_for_scale_down,
    rolling_update_deletions,
    rollout_blocked,
    scale_delta,
    scale_down_order,
    scale_up_blocked,
    scale_up_limit,
    selector_for,
    updated_counts,
)

from .builders import NOW, make_sandbox, make_sandboxset


def ago(minutes: int) -> datetime:
    """A creation time ``minutes`` before NOW."""
    return NOW - timedelta(minutes=minutes)


class TestCreationBatches:
    """DoItSlowly batch sizes."""

    def test_reference_example(self) -> None:
        """100 creations go out as 16, 32, 52."""
        assert creation_batches(100) == [16, 32, 52]

    @pytest.mark.parametrize(
        ("n", "batches"),
        [(0, []), (1, [1]), (16, [16]), (17, [16, 1]), (48, [16, 32]), (112, [16, 32, 64])],
    )
    def test_small_cases(self, n: int, batches: list[int]) -> None:
        """Batches start at 16 and double, capped by what is left."""
        assert creation_batches(n) == batches

    def test_custom_initial(self) -> None:
        """The initial batch size is configurable."""
        assert creation_batches(10, initial=2) == [2, 4, 4]

    @given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=1, max_value=64))
    def test_batches_sum_to_n_and_double(self, n: int, initial: int) -> None:
        """Batches sum to n, are positive, and each full one doubles the last."""
        batches = creation_batches(n, initial)
        assert sum(batches) == n
        assert all(b > 0 for b in batches)
        for i, b in enumerate(batches[:-1]):
            assert b == initial * 2**i


class TestCounting:
    """Status counting: claimed sandboxes never count."""

    def test_replicas_are_creating_available_and_unobserved(self) -> None:
        """replicas = creating + available + unobserved creates; dead ones do not count."""
        counts = SetStatusCounts(creating=2, available=3, dead=4, unobserved_creates=1)
        assert compute_replicas(counts) == (6, 3)

    def test_grouping_by_state(self) -> None:
        """Owned sandboxes group by derived state; claimed ones are used, not counted."""
        groups = group_sandboxes(
            [
                make_sandbox("a"),
                make_sandbox("b", phase=SandboxPhase.PENDING),
                make_sandbox("c", phase=SandboxPhase.FAILED),
                make_sandbox("d", owned=False),
            ],
            NOW,
        )
        assert [s.metadata.name for s in groups.available] == ["a"]
        assert [s.metadata.name for s in groups.creating] == ["b"]
        assert [s.metadata.name for s in groups.dead] == ["c"]
        assert [s.metadata.name for s in groups.used] == ["d"]
        assert compute_replicas(groups.counts(unobserved_creates=2)) == (4, 1)

    def test_a_claimed_paused_sandbox_is_used_not_dead(self) -> None:
        """Used is every claimed sandbox still alive, running or paused: neither is counted."""
        paused = make_sandbox("p", owned=False, paused=True)
        groups = group_sandboxes([paused, make_sandbox("r", owned=False)], NOW)
        assert [s.metadata.name for s in groups.used] == ["r", "p"]
        assert groups.dead == [] and groups.counts() == SetStatusCounts()

    def test_owned_by_uid(self) -> None:
        """Ownership is the controller ref's UID."""
        sbs = make_sandboxset()
        assert is_owned_by(make_sandbox(), sbs)
        assert not is_owned_by(make_sandbox(owned=False), sbs)
        other = make_sandboxset()
        other.metadata.uid = "someone-else"
        assert not is_owned_by(make_sandbox(), other)

    def test_updated_counts(self) -> None:
        """Updated replicas count creating and available ones of the revision; available only."""
        sandboxes = [
            make_sandbox("a", revision="r1"),
            make_sandbox("b", revision="r1", phase=SandboxPhase.PENDING),
            make_sandbox("c", revision="r0"),
            make_sandbox("d", revision="r1", owned=False),
        ]
        assert updated_counts(sandboxes, "r1", NOW) == (2, 1)


class TestScaling:
    """delta and the scale-up limit."""

    def test_no_limit(self) -> None:
        """Without scaleStrategy.maxUnavailable there is no scale-up limit."""
        assert scale_up_limit(10, 4, 2, None) is None
        assert scale_delta(10, SetStatusCounts(creating=2, available=2), None) == 6

    def test_limit_counts_creating(self) -> None:
        """The limit is maxUnavailable minus what is already creating."""
        assert scale_up_limit(10, 4, 2, 3) == 1
        assert scale_delta(10, SetStatusCounts(creating=2, available=2), 3) == 1

    def test_percent_limit_rounds_up(self) -> None:
        """A percentage maxUnavailable rounds up (code, not the CRD comment)."""
        assert scale_up_limit(10, 0, 0, "25%") == 3
        assert scale_delta(10, SetStatusCounts(), "25%") == 3

    def test_exhausted_limit_does_not_scale_down(self) -> None:
        """When more are creating than allowed, the delta is zero, not negative."""
        assert scale_up_limit(10, 5, 0, 2) == -3
        assert scale_delta(10, SetStatusCounts(creating=5), 2) == 0

    def test_scale_down_is_negative(self) -> None:
        """Too many unused sandboxes give a negative delta, unaffected by the limit."""
        assert scale_delta(2, SetStatusCounts(creating=1, available=4), 1) == -3

    def test_unobserved_creates_prevent_double_creation(self) -> None:
        """Creates issued but not yet seen count toward replicas."""
        assert scale_delta(5, SetStatusCounts(available=2, unobserved_creates=3), None) == 0

    @given(
        spec=st.integers(min_value=0, max_value=200),
        creating=st.integers(min_value=0, max_value=100),
        available=st.integers(min_value=0, max_value=100),
        unobserved=st.integers(min_value=0, max_value=20),
        limit=st.none() | st.integers(min_value=0, max_value=50),
    )
    def test_delta_never_overshoots(
        self, spec: int, creating: int, available: int, unobserved: int, limit: int | None
    ) -> None:
        """After applying delta, replicas never exceed spec when scaling up, nor fall below it."""
        counts = SetStatusCounts(creating, available, 0, unobserved)
        replicas, _ = compute_replicas(counts)
        delta = scale_delta(spec, counts, limit)
        if replicas <= spec:
            assert 0 <= delta <= spec - replicas
            if limit is not None:
                assert creating + unobserved + delta <= max(limit, creating + unobserved)
        else:
            assert delta == spec - replicas


class TestScaleDownOrder:
    """Which sandboxes a scale-down deletes first."""

    def test_old_revision_first_creating_then_available_in_list_order(self) -> None:
        """Old-revision sandboxes go first: creating ones, then available ones, as listed."""
        sandboxes = [
            make_sandbox("new-avail", revision="r1"),
            make_sandbox("old-avail-1", revision="r0"),
            make_sandbox("old-creating", revision="r0", phase=SandboxPhase.PENDING),
            make_sandbox("old-avail-2", revision="r0"),
        ]
        order = [s.metadata.name for s in scale_down_order(sandboxes, "r1", NOW)]
        assert order == ["old-creating", "old-avail-1", "old-avail-2", "new-avail"]

    def test_updated_tiers(self) -> None:
        """Updated: Pending < recycled (most first) < Running-not-Ready < available; older first."""
        sandboxes = [
            make_sandbox("avail-young", created=ago(1)),
            make_sandbox("avail-old", created=ago(10)),
            make_sandbox("not-ready", ready=False),
            make_sandbox("recycled-1", recycled=1),
            make_sandbox("recycled-3", recycled=3),
            make_sandbox("pending", phase=SandboxPhase.PENDING),
        ]
        order = [s.metadata.name for s in scale_down_order(sandboxes, "rev1", NOW)]
        assert order == [
            "pending",
            "recycled-3",
            "recycled-1",
            "not-ready",
            "avail-old",
            "avail-young",
        ]

    def test_an_updated_sandbox_still_creating_goes_before_available_ones(self) -> None:
        """A sandbox neither Pending nor Running (its phase not set yet) and not Ready is still
        creating: deleted with the not-ready ones, before any fresh available sandbox."""
        sandboxes = [
            make_sandbox("avail-old", created=ago(10)),
            make_sandbox("no-phase", phase=None, ready=False, created=ago(1)),
        ]
        order = [s.metadata.name for s in scale_down_order(sandboxes, "rev1", NOW)]
        assert order == ["no-phase", "avail-old"]

    def test_dead_and_claimed_are_not_listed(self) -> None:
        """Only creating and available sandboxes are scale-down candidates."""
        sandboxes = [
            make_sandbox("dead", phase=SandboxPhase.FAILED),
            make_sandbox("claimed", owned=False),
            make_sandbox("ok"),
        ]
        assert [s.metadata.name for s in scale_down_order(sandboxes, "rev1", NOW)] == ["ok"]


class TestScaleDownLock:
    """Lock-then-delete."""

    def test_unlocked_can_be_locked(self) -> None:
        """An unlocked sandbox is locked with owner __manager_scale_down, on a copy."""
        sbx = make_sandbox()
        out = lock_for_scale_down(sbx, "uuid-1")
        assert out.metadata.annotations[keys.ANN_LOCK] == "uuid-1"
        assert out.metadata.annotations[keys.ANN_OWNER] == "__manager_scale_down"
        assert keys.ANN_LOCK not in sbx.metadata.annotations

    def test_relock_by_scale_down_is_allowed(self) -> None:
        """A sandbox already locked by a scale-down can be locked again."""
        sbx = make_sandbox(locked="x", annotations={keys.ANN_OWNER: "__manager_scale_down"})
        assert can_lock_for_scale_down(sbx)

    def test_claim_lock_wins(self) -> None:
        """A sandbox locked by a claim is skipped with a conflict."""
        sbx = make_sandbox(locked="x", annotations={keys.ANN_OWNER: "alice"})
        assert not can_lock_for_scale_down(sbx)
        with pytest.raises(ConflictError, match="alice"):
            lock_for_scale_down(sbx, "uuid-2")


class TestRollingUpdate:
    """Rolling update deletions."""

    def test_old_creating_always_deleted_old_available_within_budget(self) -> None:
        """All old creating go; old available go oldest first within maxUnavailable - updating."""
        old_creating = [make_sandbox("oc", revision="r0", phase=SandboxPhase.PENDING)]
        old_available = [
            make_sandbox("young", revision="r0", created=ago(1)),
            make_sandbox("oldest", revision="r0", created=ago(30)),
            make_sandbox("middle", revision="r0", created=ago(10)),
        ]
        out = rolling_update_deletions(0, old_creating, old_available, 10, "20%")
        assert [s.metadata.name for s in out] == ["oc", "oldest", "middle"]

    def test_updated_creating_use_the_budget(self) -> None:
        """Updated sandboxes still creating use up the unavailability budget."""
        old_available = [make_sandbox(f"o{i}", revision="r0") for i in range(5)]
        assert rolling_update_deletions(2, [], old_available, 10, "20%") == []
        assert len(rolling_update_deletions(1, [], old_available, 10, "20%")) == 1
        assert rolling_update_deletions(5, [], old_available, 10, 2) == []

    def test_default_budget_is_twenty_percent_rounded_up(self) -> None:
        """Without a maxUnavailable the webhook default 20% applies, rounded up."""
        old_available = [make_sandbox(f"o{i}", revision="r0") for i in range(5)]
        assert len(rolling_update_deletions(0, [], old_available, 3, None)) == 1
        assert len(rolling_update_deletions(0, [], old_available, 10, None)) == 2  # not 25%'s 3


class TestScaleUpBlocked:
    """Why a set creates no sandbox though it has fewer than it wants (``wait_for_pool``'s reason)."""

    @staticmethod
    def limited(max_unavailable: int | str | None, replicas: int = 3) -> SandboxSet:
        """A set of ``replicas`` with ``scaleStrategy.maxUnavailable``."""
        sbs = make_sandboxset(replicas=replicas)
        sbs.spec.scale_strategy = ScaleStrategy(max_unavailable=max_unavailable)
        return sbs

    @pytest.mark.parametrize("value", [0, "0%", "10%"])
    def test_a_scale_up_budget_of_0_is_named_while_sandboxes_are_missing(
        self, value: int | str
    ) -> None:
        """A maxUnavailable that resolves to 0 (10% of 3, rounded up, is 1: not 0) stops a
        set missing sandboxes; the reason names the field and its value."""
        blocked = scale_up_blocked(self.limited(value), available=1)
        if value == "10%":
            assert blocked is None
        else:
            assert blocked == f"scaleStrategy.maxUnavailable {value} lets no sandbox be created"

    def test_a_set_missing_nothing_is_not_blocked(self) -> None:
        """With every replica available there is nothing to create, so no reason, whatever
        the budget; nor without a scaleStrategy (no limit)."""
        assert scale_up_blocked(self.limited(0), available=3) is None
        assert scale_up_blocked(self.limited(0), available=4) is None
        assert scale_up_blocked(make_sandboxset(replicas=3), available=0) is None
        assert scale_up_blocked(self.limited(None), available=0) is None


class TestRolloutBlocked:
    """Why a rolling update replaces no more old sandboxes (``Cluster.wait_for_pool``'s reason)."""

    @staticmethod
    def rolling(max_unavailable: int | str | None, replicas: int = 2) -> SandboxSet:
        """A set of ``replicas`` whose update revision is ``r1``."""
        sbs = make_sandboxset(replicas=replicas)
        sbs.spec.update_strategy.max_unavailable = max_unavailable
        sbs.status.update_revision = "r1"
        return sbs

    @pytest.mark.parametrize("value", [0, "0%"])
    def test_a_max_unavailable_of_0_lets_no_old_sandbox_go(self, value: int | str) -> None:
        """Upstream accepts 0, and its rolling update then deletes no old available sandbox."""
        old = [make_sandbox(f"o{i}", revision="r0") for i in range(2)]
        assert rolling_update_deletions(0, [], old, 2, value) == []
        assert rollout_blocked(self.rolling(value), old, NOW) == (
            f"updateStrategy.maxUnavailable {value} lets no old sandbox be replaced"
        )

    def test_an_old_sandbox_locked_by_another_owner_is_named(self) -> None:
        """The update would delete it next, but skips it (and none past it in the budget)."""
        locked = make_sandbox(
            "oldest",
            revision="r0",
            created=ago(30),
            locked="x",
            annotations={keys.ANN_OWNER: "bob"},
        )
        old = [make_sandbox("young", revision="r0", created=ago(1)), locked]
        assert rollout_blocked(self.rolling(1), old, NOW) == (
            "old sandbox default/oldest is locked by bob"
        )

    def test_nothing_blocks_a_rollout_that_can_go_on_or_is_done(self) -> None:
        """An old sandbox the update may delete, or none left of an old revision: no reason."""
        old = [make_sandbox(f"o{i}", revision="r0") for i in range(2)]
        new = [make_sandbox(f"n{i}", revision="r1") for i in range(2)]
        assert rollout_blocked(self.rolling(None), old, NOW) is None
        assert rollout_blocked(self.rolling(0), new, NOW) is None
        # The budget is taken by new sandboxes being created: the update waits for them.
        creating = [make_sandbox("n0", revision="r1", phase=SandboxPhase.PENDING)]
        assert rollout_blocked(self.rolling(1), [*creating, *old], NOW) is None


def test_selector() -> None:
    """The status selector picks the set's unclaimed sandboxes."""
    assert selector_for(make_sandboxset("web")) == (
        "agents.kruise.io/sandbox-pool=web,agents.kruise.io/sandbox-claimed=false"
    )
