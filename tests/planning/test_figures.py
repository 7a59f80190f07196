"""How planning writes a number (``simulator.planning.figures``)."""

from __future__ import annotations

import pytest

from simulator.planning.figures import three_figures


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.01234, "0.0123"),
        (1.5, "1.5"),
        (12.34, "12.3"),
        (999.4, "999"),
        (999.5, "1,000"),  # where ".3g" would write "1e+03"
        (1234.5, "1,234"),  # not "1.23e+03"
        (2_000_000.0, "2,000,000"),
        (-1234.0, "-1,234"),
    ],
)
def test_three_significant_figures_below_a_thousand_whole_from_there(
    value: float, text: str
) -> None:
    assert three_figures(value) == text
