"""Kubernetes resource quantities (``"500m"``, ``"2"``, ``"512Mi"``, ``"1G"``)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "cpu_millis",
    "memory_bytes",
    "parse_quantity",
    "positive_cpu",
    "positive_memory",
    "quantity_text",
]

_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
# ASCII digits only (Go's parser reads '0'..'9'); fullmatch, as ``$`` would let a "\n" end it.
_QUANTITY = re.compile(
    r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)",
    re.ASCII,
)


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a quantity into its plain value; raise :class:`ValueError` if malformed."""
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    # Surrounding whitespace is trimmed as Quantity.UnmarshalJSON trims it (strings.TrimSpace).
    m = _QUANTITY.fullmatch(value.strip())
    if m is None:
        raise ValueError(f"invalid quantity {value!r}: expected a number with an optional suffix")
    try:
        number = Decimal(m.group(1))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"invalid quantity {value!r}") from exc
    return number * _SUFFIX[m.group(2)]


def cpu_millis(value: str | int | float) -> int:
    """CPU quantity in millicores (rounded up, as Kubernetes does)."""
    q = parse_quantity(value) * 1000
    return int(q.to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(value: str | int | float) -> int:
    """Memory quantity in bytes (rounded up)."""
    return int(parse_quantity(value).to_integral_value(rounding="ROUND_CEILING"))


def positive_cpu(value: str) -> str:
    """``value`` if it is a CPU quantity above zero; else :class:`ValueError` saying why."""
    if cpu_millis(value) <= 0:
        raise ValueError(f"must be a positive CPU quantity, got {value!r}")
    return value


def positive_memory(value: str) -> str:
    """``value`` if it is a memory quantity above zero; else :class:`ValueError` saying why."""
    if memory_bytes(value) <= 0:
        raise ValueError(f"must be a positive memory quantity, got {value!r}")
    return value


def quantity_text(value: Any) -> Any:
    """A quantity written as a YAML number (``cpu: 2``) as its text, as Kubernetes reads it.

    For ``mode="before"`` validators of strict models: a boolean stays one (and is refused).
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value
