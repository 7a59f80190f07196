"""Specification of the randomness protocol the claim rules take."""

from __future__ import annotations

import random

from pytest_kruise_agents.claiming.rng import RandomSource
from pytest_kruise_agents.claiming.selection import select_candidate

from .builders import NOW, ScriptedRng, make_sandbox


def draw_all(rng: RandomSource) -> tuple[float, int, float]:
    """One draw of each kind."""
    return rng.random(), rng.randrange(10), rng.uniform(1.0, 2.0)


def test_random_random_is_a_random_source() -> None:
    """random.Random satisfies the protocol, and the same seed gives the same draws."""
    assert draw_all(random.Random(42)) == draw_all(random.Random(42))


def test_a_scripted_source_is_a_random_source() -> None:
    """Any object with the three draws fits, so a test can script exact outcomes."""
    assert draw_all(ScriptedRng(randoms=[0.25], starts=[7], uniform=0.5)) == (0.25, 7, 1.5)


def test_rules_draw_only_from_the_given_source() -> None:
    """A rule given the same seeded source makes the same choice every time."""
    pool = [make_sandbox(f"demo-{i}") for i in range(50)]

    def choose(seed: int) -> str | None:
        result = select_candidate(
            pool, update_revision="rev1", in_flight=set(), rng=random.Random(seed), now=NOW
        )
        return result.sandbox.metadata.name if result.sandbox else None

    assert [choose(s) for s in range(10)] == [choose(s) for s in range(10)]
    assert len({choose(s) for s in range(30)}) > 1
