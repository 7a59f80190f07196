"""The UIDs the API server draws: version-4 UUIDs from the cluster's seeded generator."""

from __future__ import annotations

import random
import uuid

from hypothesis import given
from hypothesis import strategies as st

from simulator.apiserver import _uuid4_text
from simulator.context import SimContext
from simulator.profile import get_profile
from simulator.world import World


@given(st.integers(min_value=0, max_value=(1 << 128) - 1))
def test_a_uid_is_the_text_of_a_version_4_uuid_of_the_bits_drawn(bits: int) -> None:
    """The text ``uuid.UUID(int=bits, version=4)`` gives, variant and version bits set."""
    assert _uuid4_text(bits) == str(uuid.UUID(int=bits, version=4))


def test_new_uid_draws_128_bits_from_the_seeded_generator() -> None:
    """One draw of 128 bits per UID: the same seed gives the same UIDs."""
    world = World(SimContext(seed=11, profile=get_profile("openkruise-head")))
    rng = random.Random(11)
    for _ in range(5):
        uid = world.api.new_uid()
        assert uid == str(uuid.UUID(int=rng.getrandbits(128), version=4))
        assert uuid.UUID(uid).version == 4
