"""Numbers as planning's sentences and tables write them: three significant figures."""

from __future__ import annotations

__all__ = ["three_figures"]


def three_figures(value: float) -> str:
    """Three significant figures below 1,000, whole with thousands separators from there
    (``12.3``, ``999``, ``1,234``): never the exponent ``.3g`` writes at 999.5 and above."""
    return f"{value:,.3g}" if abs(value) < 999.5 else f"{value:,.0f}"
