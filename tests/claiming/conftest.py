"""Fixtures of the claim-rule tests."""

from __future__ import annotations

import random

import pytest


@pytest.fixture
def rng() -> random.Random:
    """A seeded generator, the same in every test."""
    return random.Random(1234)
