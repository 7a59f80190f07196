"""The source of randomness the claim rules take as an argument.

The rules never own a generator: the simulator passes its seeded one (any
:class:`random.Random` fits), tests pass a scripted one, so a draw is always
reproducible from the caller's seed.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["RandomSource"]


class RandomSource(Protocol):
    """The three draws the claim rules need; :class:`random.Random` satisfies it.

    The parameters are positional-only: ``random.Random.randrange`` names its
    first parameter ``start``, so a keyword-capable ``stop`` would not match it.
    """

    def random(self) -> float:
        """A float in ``[0, 1)``."""
        ...

    def randrange(self, stop: int, /) -> int:
        """An int in ``[0, stop)``."""
        ...

    def uniform(self, a: float, b: float, /) -> float:
        """A float in ``[a, b]``."""
        ...
