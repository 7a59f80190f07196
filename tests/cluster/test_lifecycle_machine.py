"""The E2B-level lifecycle of the fake cluster as a stateful property (hypothesis).

A ``RuleBasedStateMachine`` drives one :class:`~simulator.cluster.Cluster`
(a drawn seed) through the public API with drawn arguments: creates (among
pools with stock and without, one that recycles what a kill gives back, in two
namespaces, by two API keys, with and without auto-pause, a paused retention
or never-timeout), kills, pauses, connects, timeout changes, ``advance``
(zero, fractions, and steps that land exactly on a sandbox's end), calls made
right at an end, lists with state and metadata filters (page by page),
SandboxClaims applied
and deleted, and pools scaled. A small reference model keeps what must be
true of each sandbox the E2B API handed out (reference §1.3, §5, §6.5, §6.7):
whether it runs, is paused or is gone, its end times (whole seconds), its
owner. After every rule:

- each sandbox has one owner: no E2B create hands out a sandbox twice (but a
  recycled one, back in its pool), and none is both an E2B sandbox and a
  SandboxClaim's;
- what ``list_sandboxes`` shows (per namespace, key, state and metadata
  filter) is what the model holds live; ``describe`` agrees, with the
  model's times;
- a sandbox past its end is gone (or paused, with auto-pause);
- a killed sandbox never comes back to its caller;
- every error is a typed error with the code the docs give;
- a SandboxClaim never holds more than it asked, over its whole life (one of
  its sandboxes that ends at the claim's ``shutdownTime`` is not replaced),
  and deleting it (by hand or by its TTL) leaves its sandboxes alone;
- once load stops and time passes, each pool is back at ``spec.replicas``.

The controllers act a little after a time is reached (a timer, an API
write, a watch lag): an auto-pause is either state for :data:`SLACK_S`
after its ``pauseTime``. A shutdown is exact: the derived state is ``dead``
from the first instant past ``shutdownTime`` (§1.3 row 2). A call made at a
sandbox's last instant races the Sandbox controller's delete, which is
decided on its cache and has no precondition, as upstream's: it may answer
404, or answer and find the sandbox deleted all the same.

``derandomize=True`` keeps the suite deterministic (about 12 s of one core).
``KRUISE_MACHINE_EXAMPLES`` and ``KRUISE_MACHINE_STEPS`` raise the count while
hunting; ``KRUISE_MACHINE_HUNT=1`` draws at random, skips shrinking and reports
each distinct failure; ``KRUISE_MACHINE_PROFILE`` runs another profile
(``openkruise-v0.3.0``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from pytest_kruise_agents.api import keys
from pytest_kruise_agents.api.errors import InvalidError
from pytest_kruise_agents.api.sandbox import Sandbox
from pytest_kruise_agents.claiming.errors import (
    BadRequestError,
    ClaimError,
    ConflictError,
    InternalError,
)
from pytest_kruise_agents.claiming.errors import NotFoundError as ClaimNotFoundError
from pytest_kruise_agents.claiming.recycle import ANN_CLEANUP
from pytest_kruise_agents.claiming.state import is_controlled_by_sandboxset
from pytest_kruise_agents.claiming.timeouts import later, parse_retention
from simulator.cluster import DEFAULT_USER, Cluster
from simulator.errors import NotFoundError
from tests.machines import machine_settings

from .conftest import claim_yaml, pool_yaml

OTHER_USER = "00000000-0000-4000-8000-00000000beef"
USERS = (DEFAULT_USER, OTHER_USER)

POOLS: dict[tuple[str, str], int] = {
    ("default", "a"): 2,
    ("default", "b"): 0,
    ("team", "c"): 1,
    ("default", "r"): 1,
}
RECYCLING = ("default", "r")
"""The pool whose sandboxes a kill recycles (``cleanup-enabled``, reference §4, §8 #15)."""

RECYCLE_GRACE_S = 10.0
"""``--recycle-grace-period``: a recycled sandbox is back in its pool after it (and a reconcile)."""


def pool(namespace: str, name: str, replicas: int) -> str:
    """The manifest of pool ``name``: small pods; the recycling pool's enable recycling."""
    manifest = pool_yaml(name, replicas, namespace=namespace, cpu="100m", memory="64Mi")
    if (namespace, name) == RECYCLING:
        manifest = manifest.replace(
            "  template:\n",
            f'  template:\n    metadata:\n      annotations: {{{keys.ANN_CLEANUP_ENABLED}: "true"}}\n',
        )
    return manifest


"""(namespace, pool) -> replicas at the start."""

NAMESPACES = ("default", "team")
CLAIMS = ("c1", "c2")

CLAIM_TTL_S = 3600 - 1
"""A claim's default ``ttlAfterCompleted`` (60m), counted from its ``completionTime``, which
is stored in whole seconds: it may go up to a second before 60m after it was applied."""

SCALE_DOWN_OWNER = "__manager_scale_down"

SLACK_S = 3.0
"""How long after its ``pauseTime`` an auto-pause may still be under way."""

RETAIN = "e2b.agents.kruise.io/reserve-paused-sandbox-duration"
NEVER = "e2b.agents.kruise.io/never-timeout"
USER_METADATA = st.sampled_from([None, {"team": "x"}, {"team": "y"}, {"team": "x", "k": "v"}])
EXTENSIONS = st.sampled_from(
    [{}, {}, {}, {RETAIN: "1m"}, {RETAIN: "90s"}, {RETAIN: "forever"}, {NEVER: "true"}]
)
FILTERS = st.sampled_from([None, {"team": "x"}, {"team": "y"}, {"k": "v"}, {"team": "x", "k": "v"}])
STATES = st.sampled_from(["running", "paused", ("running", "paused"), ("running",), ("paused",)])


@dataclass
class Model:
    """What the E2B API must show of one sandbox it handed out."""

    sid: str
    namespace: str
    name: str
    user: str
    metadata: dict[str, str]
    shutdown: datetime | None
    pause: datetime | None
    retention: timedelta  # the persisted paused retention (forever by default)
    annotated: bool = False  # whether the retention is persisted as an annotation
    paused: bool = False
    killed: bool = False
    gone: bool = False
    recycling_until: datetime | None = None
    """Killed in the recycling pool: shown paused until then (at most), no longer its caller's."""
    vanish_until: datetime | None = None
    """Until when it may be gone though a call extended it: the call was made at its last
    instant, and the Sandbox controller's delete (decided on its cache, with no
    precondition, as upstream's) may land after the call's own write and answer."""
    history: list[str] = field(default_factory=list)

    def states(self, now: datetime) -> frozenset[str]:
        """The E2B states it may show at ``now`` (empty: not shown; ``gone``: it may be gone)."""
        if self.gone:
            return frozenset()
        if self.recycling_until is not None and now <= self.recycling_until:
            return frozenset({"paused", "gone"})
        if self.killed:
            return frozenset()
        if self.shutdown is not None and now > self.shutdown:
            return frozenset()
        if self.vanish_until is not None and now <= self.vanish_until:
            return self._live_states(now) | {"gone"}
        return self._live_states(now)

    def _live_states(self, now: datetime) -> frozenset[str]:
        if self.paused:
            return frozenset({"paused"})
        if self.pause is not None and now >= self.pause:
            if now <= self.pause + timedelta(seconds=SLACK_S):
                return frozenset({"running", "paused"})
            return frozenset({"paused"})
        return frozenset({"running"})

    def pauses_within(self, now: datetime, seconds: float) -> bool:
        """Whether its auto-pause is due within ``seconds`` of ``now`` (or is under way): a
        call made then may meet it, or be met by it, half-way."""
        return (
            not self.paused
            and self.pause is not None
            and self.pause - now <= timedelta(seconds=seconds)
        )

    def ends_within(self, now: datetime, seconds: float) -> bool:
        """Whether its ``shutdownTime`` passes within ``seconds`` of ``now``: a call made then
        races the Sandbox controller's delete, and may find it gone (404)."""
        return self.shutdown is not None and self.shutdown - now <= timedelta(seconds=seconds)


class LifecycleMachine(RuleBasedStateMachine):
    """One cluster, driven through its public API; the model checked after every rule."""

    sandboxes = Bundle("sandboxes")

    def __init__(self) -> None:
        super().__init__()
        self.replicas = dict(POOLS)
        self.model: dict[str, Model] = {}
        self.claims: dict[str, tuple[str, int]] = {}  # name -> (uid, replicas)
        self.claimed_at: dict[str, float] = {}  # claim name -> when applied
        # sandbox name -> uid of its deleted claim, and its own end
        self.orphans: dict[str, tuple[str, datetime | None]] = {}
        self.ever_claimed: dict[str, set[str]] = {}  # claim uid -> every sandbox it held
        self.claim_replicas: dict[str, int] = {}  # claim uid -> replicas
        self.handed_out: set[str] = set()
        self.scaled_down: dict[tuple[str, str], float] = {}  # pool -> when, as a timestamp

    # -- helpers ------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.cluster.now_dt()

    def _times(
        self, sid: str, before: datetime
    ) -> tuple[datetime | None, datetime | None, bool] | None:
        """The stored times and ``spec.paused`` after a call that answered (begun at ``before``).

        ``None`` (the model's sandbox then gone) when the sandbox is gone all the
        same: a call at its last instant races the Sandbox controller, whose delete
        (decided on its cache, with no precondition, as upstream's) may follow the
        call's own write. A call begun within the slack of the sandbox's end may see
        it vanish a moment later too (``vanish_until``).
        """
        m = self.model[sid]
        assert not m.killed, f"{sid} answered after its kill: {m}"
        after = self.now
        try:
            sbx = self.cluster.get("sbx", m.name, m.namespace)
        except NotFoundError:
            sbx = None
        if sbx is None or sbx.metadata.deletion_timestamp is not None:
            assert m.ends_within(before, SLACK_S) or "gone" in m.states(before), (
                f"{sid} answered, then was deleted: {m}"
            )
            m.gone = True
            m.history.append(f"answered, then deleted at its end, by {after}")
            event("a call at a sandbox's last instant answered; the controller deleted it")
            return None
        if m.ends_within(before, SLACK_S):
            m.vanish_until = after + timedelta(seconds=SLACK_S)
        return sbx.spec.shutdown_time, sbx.spec.pause_time, bool(sbx.spec.paused)

    def _settle_model(self) -> None:
        """Mark what time has ended: past shutdown gone, past pause + slack paused."""
        now = self.now
        for m in self.model.values():
            if m.gone or m.killed:
                continue
            if m.shutdown is not None and now > m.shutdown:
                m.gone = True
                m.history.append(f"gone at {now}")
                continue
            if m.vanish_until is not None and now > m.vanish_until:
                m.vanish_until = None
                try:
                    stored = self.cluster.get("sbx", m.name, m.namespace)
                except NotFoundError:
                    stored = None
                if stored is None or stored.metadata.deletion_timestamp is not None:
                    m.gone = True
                    m.history.append(f"deleted after the call at its end, by {now}")
                    event("a call at a sandbox's last instant answered; the controller deleted it")
                    continue
            if not m.paused and m.pause is not None and now > m.pause + timedelta(seconds=SLACK_S):
                sbx = self.cluster.get("sbx", m.name, m.namespace)
                assert sbx.spec.paused, f"{m.sid} not auto-paused by {now}: {m}"
                self._adopt_auto_pause(m, sbx)

    def _adopt_auto_pause(self, m: Model, sbx: Sandbox) -> None:
        """The controller paused ``m`` at its ``pauseTime`` (§4 step 6): check the times it
        wrote, and take them. With the retention annotation both become the pause's
        instant (within the slack) plus the retention; without it they stay."""
        assert m.pause is not None and not m.paused
        shutdown, pause = sbx.spec.shutdown_time, sbx.spec.pause_time
        if m.annotated and m.shutdown is not None:
            low = later(m.pause, m.retention)
            high = later(m.pause + timedelta(seconds=SLACK_S), m.retention)
            assert shutdown == pause and shutdown is not None, (m, shutdown, pause)
            assert low <= shutdown <= high, (low, shutdown, high, m)
        else:
            assert (shutdown, pause) == (m.shutdown, m.pause), (m, shutdown, pause)
        m.shutdown, m.pause, m.paused = shutdown, pause, True
        m.history.append(f"auto-paused by {self.now}: {shutdown}")

    def _timer_paused(self, m: Model, shutdown: datetime | None, pause: datetime | None) -> bool:
        """Whether the times are what the controller's auto-pause of ``m`` may write."""
        if not (m.annotated and m.shutdown is not None):
            return (shutdown, pause) == (m.shutdown, m.pause)
        assert m.pause is not None
        low = later(m.pause, m.retention)
        high = later(m.pause + timedelta(seconds=SLACK_S), m.retention)
        return shutdown == pause and shutdown is not None and low <= shutdown <= high

    # -- rules --------------------------------------------------------------------------------

    @initialize(seed=st.integers(0, 2**32 - 1))
    def start(self, seed: int) -> None:
        profile = os.environ.get("KRUISE_MACHINE_PROFILE", "openkruise-head")
        self.cluster = Cluster(seed=seed, nodes=2, profile=profile)
        for (ns, name), replicas in POOLS.items():
            self.cluster.apply(pool(ns, name, replicas))
        for ns, name in POOLS:
            self.cluster.wait_for_pool(name, ns)

    @rule(
        target=sandboxes,
        target_pool=st.sampled_from(
            [("default", "a"), ("default", "b"), ("team", "c"), RECYCLING] * 3
            + [("team", "a"), ("default", "c"), ("default", "nope")]
        ),
        user=st.sampled_from(USERS),
        timeout=st.sampled_from([None, 30, 31, 45, 61, 300, 3600] * 2 + [29, 2_592_001]),
        auto_pause=st.booleans(),
        metadata=USER_METADATA,
        extensions=EXTENSIONS,
    )
    def create(
        self,
        target_pool: tuple[str, str],
        user: str,
        timeout: int | None,
        auto_pause: bool,
        metadata: dict[str, str] | None,
        extensions: dict[str, str],
    ) -> object:
        namespace, template = target_pool
        before = self.now
        asked = {**(metadata or {}), **extensions} or None
        seconds = 300 if timeout is None else timeout
        try:
            sbx = self.cluster.create_sandbox(
                template,
                namespace=namespace,
                user=user,
                timeout=timeout,
                auto_pause=auto_pause,
                metadata=asked,
            )
        except ClaimError as err:
            if not 30 <= seconds <= 2_592_000:
                assert isinstance(err, BadRequestError) and err.code == 400, err
            elif (namespace, template) in self.replicas:
                # A pick from a cache that has not yet seen a scale-down delete the
                # sandbox: the lock write's 404 is terminal, a 500 (§5.3; #394).
                assert isinstance(err, InternalError) and err.code == 500, err
                assert before.timestamp() - self.scaled_down.get((namespace, template), -1e9) < 2
                event("create lost to a scale-down")
            else:
                assert isinstance(err, ClaimNotFoundError) and err.code == 400, err
            return multiple()
        assert 30 <= seconds <= 2_592_000
        assert (namespace, template) in self.replicas
        after = self.now
        sid = self.cluster.sandbox_id(sbx)
        if sid in self.handed_out:
            # Only a recycled sandbox is handed out again, once back in its pool.
            old = self.model[sid]
            assert old.recycling_until is not None and before > old.recycling_until - timedelta(
                seconds=SLACK_S
            ), f"{sid} handed out twice: {old}"
            event("a recycled sandbox handed out again")
        self.handed_out.add(sid)
        assert sbx.metadata.annotations[keys.ANN_OWNER] == user
        assert not is_controlled_by_sandboxset(sbx)
        retention = parse_retention(extensions.get(RETAIN, "forever"))
        if NEVER in extensions:
            assert (sbx.spec.shutdown_time, sbx.spec.pause_time) == (None, None)
        else:
            low = later(before, timedelta(seconds=seconds))
            high = later(after, timedelta(seconds=seconds))
            end = sbx.spec.pause_time if auto_pause else sbx.spec.shutdown_time
            assert end is not None and low <= end <= high, (low, end, high)
            if auto_pause:
                assert sbx.spec.shutdown_time == later(end, retention)
            else:
                assert sbx.spec.pause_time is None
        self.model[sid] = Model(
            sid=sid,
            namespace=namespace,
            name=sbx.metadata.name,
            user=user,
            metadata=dict(metadata or {}),
            shutdown=sbx.spec.shutdown_time,
            pause=sbx.spec.pause_time,
            retention=retention,
            annotated=RETAIN in extensions,
            history=[f"created at {after} ({timeout}, auto_pause={auto_pause}, {extensions})"],
        )
        self._settle_model()
        return sid

    @rule(sid=sandboxes, wrong_user=st.booleans())
    def kill(self, sid: str, wrong_user: bool) -> None:
        m = self.model[sid]
        user = OTHER_USER if wrong_user and m.user == DEFAULT_USER else m.user
        before = m.states(self.now)
        live = bool(before) and "gone" not in before
        try:
            self.cluster.kill(sid, namespace=m.namespace, user=user)
        except ClaimError as err:
            assert isinstance(err, ClaimNotFoundError) and err.code == 404, err
            assert user != m.user or not live, f"kill of live {sid}: {err} {m}"
            if user == m.user and "gone" in before:
                m.gone = True
            return
        assert user == m.user, "a kill by another key went through"
        states = m.states(self.now) - {"gone"}
        if "running" in states and (m.namespace, m.name.rpartition("-")[0]) == RECYCLING:
            # Recycled, not deleted, if it was running: paused for the grace period, then
            # its pool's again (no longer its caller's).
            m.recycling_until = self.now + timedelta(seconds=RECYCLE_GRACE_S + SLACK_S)
        m.killed = True
        m.history.append(f"killed at {self.now}")
        self._settle_model()

    @rule(
        sid=sandboxes,
        retention=st.sampled_from([None, timedelta(seconds=40), timedelta(hours=1)]),
    )
    def pause(self, sid: str, retention: timedelta | None) -> None:
        m = self.model[sid]
        before = self.now
        states = m.states(before)
        try:
            self.cluster.pause(sid, namespace=m.namespace, user=m.user, retention=retention)
        except ClaimError as err:
            if m.killed and "gone" in states and isinstance(err, ConflictError):
                # Killed and being recycled: "already paused (being recycled)", 409.
                assert err.code == 409, err
                return
            # Only a gone sandbox is refused (404): running or paused, it is pausable.
            assert not states or "gone" in states or m.ends_within(before, SLACK_S), (states, err)
            assert isinstance(err, ClaimNotFoundError) and err.code == 404, err
            return
        assert states, f"pause of a gone sandbox {sid} answered 204"
        after = self.now
        times = self._times(sid, before)
        if times is None:
            return
        shutdown, pause, paused = times
        assert paused
        if m.paused:
            assert (shutdown, pause) == (m.shutdown, m.pause), "a second pause moved the times"
        else:
            ret = retention if retention is not None else m.retention
            low, high = later(before, ret), later(after, ret)
            if m.shutdown is None:  # never-timeout: a pause sets no end
                assert (shutdown, pause) == (None, None), (shutdown, pause)
            elif "running" not in states or (
                m.pauses_within(before, SLACK_S) and self._timer_paused(m, shutdown, pause)
            ):
                pass  # the auto-pause came first; checked as the controller's
            else:
                assert shutdown is not None and low <= shutdown <= high, (low, shutdown, high)
                if m.pause is not None:
                    assert pause == shutdown
                else:
                    assert pause is None
            m.shutdown, m.pause = shutdown, pause
        event(f"pause {sorted(states)}")
        m.paused = True
        m.history.append(f"paused at {after} ({retention})")
        self._settle_model()

    @rule(sid=sandboxes, timeout=st.sampled_from([1, 30, 100, 300, 600, 0]))
    def connect(self, sid: str, timeout: int) -> None:
        m = self.model[sid]
        before = self.now
        states = m.states(before)
        try:
            sbx, resumed = self.cluster.connect(sid, timeout, namespace=m.namespace, user=m.user)
        except ClaimError as err:
            if timeout == 0:  # the route is checked first (see set_timeout)
                assert (isinstance(err, BadRequestError) and err.code == 400) or (
                    not states and isinstance(err, ClaimNotFoundError) and err.code == 404
                ), err
                return
            assert not states or "gone" in states or m.ends_within(before, SLACK_S), (
                sid,
                states,
                err,
            )
            assert isinstance(err, ClaimNotFoundError) and err.code == 404, err
            return
        assert timeout != 0 and states, f"connect to gone {sid} answered"
        after = self.now
        times = self._times(sid, before)
        if times is None:
            return
        shutdown, pause, paused = times
        assert not paused and not sbx.spec.paused
        if resumed:
            assert "paused" in states or m.pauses_within(before, SLACK_S), f"resumed running {sid}"
            floor = max(timeout, 300)
        else:
            assert "running" in states, f"connect did not resume a paused {sid}"
            floor = timeout
        if m.shutdown is None and m.pause is None:  # never-timeout: no end to move
            assert (shutdown, pause) == (None, None), (shutdown, pause)
            m.paused = False
            m.history.append(f"connected at {after} ({timeout}, resumed={resumed})")
            return
        end = pause if m.pause is not None else shutdown
        assert end is not None
        old = m.pause if m.pause is not None else m.shutdown
        assert old is not None
        low = later(before, timedelta(seconds=floor))
        high = later(after, timedelta(seconds=floor))
        if resumed:
            assert low <= end <= max(high, later(after, timedelta(seconds=timeout))), (
                low,
                end,
                high,
            )
        else:
            # ExtendOnly: never shortens.
            assert end == max(old, end), (old, end)
            assert end >= low or end == old, (low, end, old)
            assert end <= max(old, high), (old, end, high)
        if m.pause is not None:
            assert shutdown == later(end, m.retention)
        m.shutdown, m.pause, m.paused = shutdown, pause, False
        m.history.append(f"connected at {after} ({timeout}, resumed={resumed})")
        event(f"connect {sorted(states)} resumed={resumed}")
        self._settle_model()

    @rule(sid=sandboxes, timeout=st.sampled_from([1, 2, 30, 45, 600, 0, 2_592_001]))
    def set_timeout(self, sid: str, timeout: int) -> None:
        m = self.model[sid]
        before = self.now
        states = m.states(before)
        try:
            self.cluster.set_timeout(sid, timeout, namespace=m.namespace, user=m.user)
        except ClaimError as err:
            if not 1 <= timeout <= 2_592_000:
                # The route is checked first: a sandbox gone from it answers 404 (one
                # dead but not yet deleted still has its route).
                assert err.code == 500 or ((not states or "gone" in states) and err.code == 404), (
                    err
                )
                return
            if not states or (
                ("gone" in states or m.ends_within(before, SLACK_S)) and err.code == 404
            ):
                assert isinstance(err, ClaimNotFoundError) and err.code == 404, err
                return
            assert ("paused" in states or m.pauses_within(before, SLACK_S)) and err.code == 500, (
                states,
                err,
            )
            event(f"set_timeout of {sorted(states)}: 500")
            # Left undecided: the manager read the pause from the API server, while its
            # cache (what describe and list read) may not show it for a watch lag yet.
            return
        assert 1 <= timeout <= 2_592_000
        assert states and "running" in states, f"set_timeout of {states} {sid} answered"
        after = self.now
        times = self._times(sid, before)
        if times is None:
            return
        shutdown, pause, paused = times
        assert not paused
        if m.shutdown is None and m.pause is None:  # never-timeout: left alone
            assert (shutdown, pause) == (None, None), (shutdown, pause)
            return
        end = pause if m.pause is not None else shutdown
        low = later(before, timedelta(seconds=timeout))
        high = later(after, timedelta(seconds=timeout))
        assert end is not None and low <= end <= high, (low, end, high)
        if m.pause is not None:
            assert shutdown == later(end, m.retention)
        m.shutdown, m.pause, m.paused = shutdown, pause, False
        m.history.append(f"timeout set at {after} ({timeout})")
        self._settle_model()

    @rule(seconds=st.sampled_from([0, 0.001, 0.25, 0.5, 1, 2.5, 10, 30, 61, 301]))
    def advance(self, seconds: float) -> None:
        self.cluster.advance(seconds)
        self._settle_model()

    def _ends(self, offset: float) -> list[float]:
        """The virtual instants ``offset`` past each live sandbox's pending end, still ahead."""
        now = self.cluster.now
        to_seconds = self.cluster.ctx.to_seconds
        return sorted(
            {
                to_seconds(t) + offset
                for m in self.model.values()
                if m.states(self.now)
                for t in (m.shutdown, None if m.paused else m.pause)
                if t is not None and now <= to_seconds(t) + offset < now + 7200
            }
        )

    @rule(data=st.data(), offset=st.sampled_from([0.0, 0.001, 0.01, 0.05, 0.5, 1.0, 1.001]))
    def advance_to_an_end(self, data: st.DataObject, offset: float) -> None:
        """Land exactly on (or just past) a sandbox's shutdown or pause time."""
        ends = self._ends(offset)
        if ends:
            self.cluster.advance(data.draw(st.sampled_from(ends)) - self.cluster.now)
            self._settle_model()

    @rule(
        data=st.data(),
        offset=st.sampled_from([-0.05, 0.0, 0.001, 0.01, 0.05]),
        call=st.sampled_from(["connect", "pause", "set_timeout", "kill"]),
    )
    def call_at_an_end(self, data: st.DataObject, offset: float, call: str) -> None:
        """Call a sandbox right at one's end: the calls that race the controller's timers."""
        ends = self._ends(offset)
        if not ends:
            return
        self.cluster.advance(data.draw(st.sampled_from(ends)) - self.cluster.now)
        self._settle_model()
        sid = data.draw(st.sampled_from(sorted(self.model)))
        if call == "connect":
            self.connect(sid, data.draw(st.sampled_from([1, 30, 300])))
        elif call == "pause":
            self.pause(sid, None)
        elif call == "set_timeout":
            self.set_timeout(sid, data.draw(st.sampled_from([1, 30, 300])))
        else:
            self.kill(sid, False)

    @rule(
        name=st.sampled_from(CLAIMS),
        pool=st.sampled_from(["a", "b"]),
        replicas=st.integers(1, 3),
        ends_in=st.sampled_from([None, None, 30, 90]),
    )
    def apply_claim(self, name: str, pool: str, replicas: int, ends_in: int | None) -> None:
        current = self.claims.get(name)
        spec: dict[str, Any] = {"replicas": replicas}
        if ends_in is not None:
            # Copied to each sandbox it claims (§1.5), which then ends there.
            end = later(self.now, timedelta(seconds=ends_in))
            spec["shutdownTime"] = f'"{end.strftime("%Y-%m-%dT%H:%M:%SZ")}"'
        try:
            self.cluster.apply(claim_yaml(name, pool, **spec))
        except InvalidError as err:
            assert current is not None and current[1] != replicas, err
            assert "replicas" in err.field, err
            return
        stored = self.cluster.get("sbc", name)
        assert stored.metadata.uid is not None
        if current is not None and stored.metadata.uid != current[0]:
            # Made anew: the old one's TTL (ttlAfterCompleted 60m) deleted it first.
            assert self.cluster.now - self.claimed_at[name] >= CLAIM_TTL_S, name
            self._orphan(current[0])
        if current is None or current[0] != stored.metadata.uid:
            self.claimed_at[name] = self.cluster.now
        self.claims[name] = (stored.metadata.uid, replicas)
        self.claim_replicas[stored.metadata.uid] = replicas

    def _orphan(self, uid: str) -> None:
        """The sandboxes claim ``uid`` holds stay once it is deleted (§1.5: its deletion, by
        hand or by its TTL, never deletes them)."""
        for sbx in self.cluster.list("sbx", "default"):
            if sbx.metadata.annotations.get(keys.ANN_OWNER) == uid:
                self.orphans[sbx.metadata.name] = (uid, sbx.spec.shutdown_time)

    @rule(name=st.sampled_from(CLAIMS))
    def delete_claim(self, name: str) -> None:
        current = self.claims.pop(name, None)
        if current is not None:
            self._orphan(current[0])
        try:
            self.cluster.delete("sbc", name, "default")
        except NotFoundError:
            # Never applied, or deleted by its TTL (ttlAfterCompleted 60m after it completed).
            assert current is None or self.cluster.now - self.claimed_at[name] >= CLAIM_TTL_S, name
            return
        assert current is not None

    @rule(which=st.sampled_from(sorted(POOLS)), replicas=st.integers(0, 3))
    def scale(self, which: tuple[str, str], replicas: int) -> None:
        ns, name = which
        self.cluster.apply(pool(ns, name, replicas))
        if replicas < self.replicas[which]:
            self.scaled_down[which] = self.now.timestamp()
        self.replicas[which] = replicas

    @rule(
        namespace=st.sampled_from(NAMESPACES),
        user=st.sampled_from(USERS),
        states=STATES,
        filt=FILTERS,
        limit=st.sampled_from([1, 2, 100]),
    )
    def list_pages(
        self,
        namespace: str,
        user: str,
        states: str | tuple[str, ...],
        filt: dict[str, str] | None,
        limit: int,
    ) -> None:
        """Walk every page: together they are one listing, in claim-time order, no repeats."""
        wanted = {states} if isinstance(states, str) else set(states)
        seen: list[tuple[str, str]] = []
        token: str | None = None
        for _ in range(len(self.model) + 2):
            page, token = self.cluster.list_sandboxes(
                namespace=namespace,
                user=user,
                states=states,
                metadata=filt,
                limit=limit,
                next_token=token,
            )
            assert len(page) <= limit
            seen += [
                (s.metadata.annotations[keys.ANN_CLAIM_TIMESTAMP], self.cluster.sandbox_id(s))
                for s in page
            ]
            if token is None:
                break
        else:
            pytest.fail("the pages never ended")
        assert seen == sorted(seen) and len(set(seen)) == len(seen), seen
        now = self.now
        for sid in {sid for _, sid in seen}:
            m = self.model[sid]
            assert (m.namespace, m.user) == (namespace, user), sid
            assert not filt or all(m.metadata.get(k) == v for k, v in filt.items()), sid
            assert m.states(now) & wanted, (sid, m)
        for sid, m in self.model.items():
            if (m.namespace, m.user) != (namespace, user):
                continue
            if filt and any(m.metadata.get(k) != v for k, v in filt.items()):
                continue
            if m.states(now) and m.states(now) <= wanted:
                assert sid in {sid for _, sid in seen}, (sid, m)

    @precondition(lambda self: len(self.model) > 0 or len(self.claims) > 0)
    @rule()
    def load_stops(self) -> None:
        """Time passes with no load: every pool is back at spec.replicas."""
        self.cluster.advance(120)
        self._settle_model()
        for (ns, name), replicas in self.replicas.items():
            sbs = self.cluster.get("sbs", name, ns)
            assert (sbs.status.replicas, sbs.status.available_replicas) == (replicas, replicas), (
                ns,
                name,
                sbs.status,
            )
            pooled = [
                s
                for s in self.cluster.list("sbx", ns, labels={keys.LABEL_SANDBOX_POOL: name})
                if is_controlled_by_sandboxset(s) and s.metadata.deletion_timestamp is None
            ]
            assert len(pooled) == replicas, (ns, name, [s.metadata.name for s in pooled])

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def list_shows_the_model(self) -> None:
        now = self.now
        for ns in NAMESPACES:
            for user in USERS:
                for states, filt in (
                    (("running", "paused"), None),
                    (("running",), None),
                    (("paused",), None),
                    (("running", "paused"), {"team": "x"}),
                ):
                    page, token = self.cluster.list_sandboxes(
                        namespace=ns, user=user, states=states, metadata=filt
                    )
                    assert token is None
                    shown = {self.cluster.sandbox_id(s) for s in page}
                    assert len(shown) == len(page)
                    unknown = shown - set(self.model)
                    assert not unknown, f"listed but never handed out: {unknown}"
                    for sid, m in self.model.items():
                        if m.namespace != ns or m.user != user:
                            assert sid not in shown, f"{sid} listed to {ns}/{user}"
                            continue
                        if filt and any(m.metadata.get(k) != v for k, v in filt.items()):
                            assert sid not in shown
                            continue
                        possible = m.states(now) & set(states)
                        if not possible:
                            assert sid not in shown, (sid, states, m)
                        elif possible == m.states(now):
                            assert sid in shown, (sid, states, m)

    @invariant()
    def describe_and_the_store_agree(self) -> None:
        now = self.now
        for sid, m in self.model.items():
            states = m.states(now)
            try:
                sbx = self.cluster.describe(sid, namespace=m.namespace, user=m.user)
            except ClaimError as err:
                assert isinstance(err, ClaimNotFoundError) and err.code == 404, err
                assert not states or "gone" in states, (sid, states, m)
                if states:
                    m.gone = True
                    m.history.append(f"deleted after the call at its end, by {now}")
                continue
            states -= {"gone"}
            assert states, f"{sid} is back: {m}"
            if m.killed:  # recycling: its caller's, shown paused, until the reset
                assert sbx.metadata.annotations[keys.ANN_OWNER] == m.user
                continue
            if len(states) > 1 and sbx.spec.paused:
                self._adopt_auto_pause(m, sbx)
                states = m.states(now)
            assert sbx.metadata.annotations[keys.ANN_OWNER] == m.user
            assert sbx.spec.shutdown_time == m.shutdown, (sid, sbx.spec.shutdown_time, m)
            assert sbx.spec.pause_time == m.pause, (sid, sbx.spec.pause_time, m)
            if states == {"paused"}:
                assert sbx.spec.paused, (sid, m)
            elif states == {"running"}:
                assert not sbx.spec.paused, (sid, m)

    @invariant()
    def one_owner_each(self) -> None:
        by_claim: dict[str, int] = {}
        for sbx in self.cluster.list("sbx", None):
            ann = sbx.metadata.annotations
            owner = ann.get(keys.ANN_OWNER)
            controlled = is_controlled_by_sandboxset(sbx)
            if controlled:
                # A scale-down locks the sandbox it deletes (§3): the only owner a pool's has.
                assert owner in (None, SCALE_DOWN_OWNER), (
                    f"pool sandbox {sbx.metadata.name} has owner {owner}"
                )
                continue
            sid = self.cluster.sandbox_id(sbx)
            if sid in self.model:
                assert owner == self.model[sid].user, (sid, owner)
                assert keys.LABEL_CLAIM_NAME not in sbx.metadata.labels
            elif owner is not None and owner in self.claim_replicas:
                by_claim[owner] = by_claim.get(owner, 0) + 1
                self.ever_claimed.setdefault(owner, set()).add(sbx.metadata.name)
                end = sbx.spec.shutdown_time
                if end is not None:
                    event("a claim's sandbox with its shutdownTime")
                assert (
                    end is None
                    or self.now <= end + timedelta(seconds=SLACK_S)
                    or (sbx.metadata.deletion_timestamp is not None)
                ), f"claimed {sbx.metadata.name} outlived its shutdownTime {end}"
        for uid, replicas in self.claims.values():
            assert by_claim.get(uid, 0) <= replicas, (uid, by_claim, replicas)
        for uid, names in self.ever_claimed.items():
            # One that died is not replaced (§5.4: max(status, active)).
            assert len(names) <= self.claim_replicas[uid], (uid, names)
        for name, (uid, end) in self.orphans.items():
            try:
                sbx = self.cluster.get("sbx", name)
            except NotFoundError:
                assert end is not None and self.now > end, (
                    f"sandbox {name} of deleted claim {uid} was deleted"
                )
                event("a deleted claim's sandbox ended at its shutdownTime")
                continue
            assert sbx.metadata.annotations.get(keys.ANN_OWNER) == uid

    @invariant()
    def killed_and_ended_stay_gone(self) -> None:
        for m in self.model.values():
            if not (m.killed or m.gone):
                continue
            try:
                sbx = self.cluster.get("sbx", m.name, m.namespace)
            except NotFoundError:
                continue
            # Still stored: only while being deleted, or just dead and about to be, or
            # recycled (back in its pool, or recycling).
            if sbx.metadata.deletion_timestamp is not None:
                continue
            if m.killed and (m.namespace, m.name.rpartition("-")[0]) == RECYCLING:
                # Recycled (a kill just past its end too may set the trigger before the
                # controller's delete): recycling, or back in its pool, never its caller's.
                recycling = sbx.metadata.annotations.get(ANN_CLEANUP) == "true"
                owner = sbx.metadata.annotations.get(keys.ANN_OWNER)
                assert recycling or owner != m.user, (m, sbx.status.phase, owner)
                continue
            assert not m.killed, (
                f"killed {m.sid} is stored and not being deleted: {m}",
                sbx.status.phase,
                [line for line in self.cluster.log.text().splitlines() if m.name in line][-8:],
            )
            assert m.shutdown is not None and self.now <= m.shutdown + timedelta(seconds=SLACK_S), (
                m,
                sbx.spec,
                sbx.status,
            )


TestLifecycle = LifecycleMachine.TestCase
TestLifecycle.settings = machine_settings(160, 60)
