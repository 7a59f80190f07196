"""Kubernetes resource quantities (``"500m"``, ``"2"``, ``"512Mi"``, ``"1G"``).

:func:`parse_quantity` is apimachinery's ``resource.ParseQuantity``, rule for
rule: a sign, digits with an optional fraction, then one suffix, which is
either an SI or binary suffix or a decimal exponent (``e3``), never both
(``1e3m`` is refused). Go's scanner also reads a number with no digits as
zero (``"m"``, ``"+"``, ``"."``), rounds a non-zero value up to a whole
nano-unit and caps one with a binary suffix at ``2^63 - 1``; so does this one.
"""

from __future__ import annotations

import re
from decimal import ROUND_UP, Context, Decimal
from functools import lru_cache
from typing import Any

__all__ = [
    "cpu_millis",
    "decode_quantity",
    "memory_bytes",
    "parse_quantity",
    "positive_cpu",
    "positive_memory",
    "quantity_text",
]

_DECIMAL_SUFFIXES = {
    "n": -9,
    "u": -6,
    "m": -3,
    "": 0,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_NANO = Decimal("1e-9")
_MAX_BINARY = Decimal(2**63 - 1)
"""Go caps a quantity with a binary suffix at ``maxAllowed``; a decimal one is not capped."""
# Go's scanner, as a pattern: sign, leading zeros, integer digits, an optional
# "." and fraction digits, then suffix letters, an optional sign and digits.
# ASCII digits only (Go reads '0'..'9'); fullmatch, as ``$`` would let a "\n" end it.
_SHAPE = re.compile(r"([+-]?)0*(\d*)(?:\.(\d*))?([eEinumkKMGTP]*[+-]?\d*)", re.ASCII)
_EXACT = Context(prec=999_999_999, Emax=999_999_999_999_999_999, Emin=-999_999_999_999_999_999)
"""Arithmetic with no rounding: the exponents of a quantity fit an int32."""


# Pure, and asked of the same few texts by every pod the model schedules and sizes.
@lru_cache(maxsize=4096)
def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a quantity into its plain value, as ``resource.ParseQuantity``; raise :class:`ValueError` if malformed.

    The text is taken as it is: a blank around it is malformed (only JSON
    decoding trims, see :func:`decode_quantity`).
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    shape = _SHAPE.fullmatch(value) if value else None
    suffix = _suffix(shape.group(4)) if shape is not None else None
    if shape is None or suffix is None:
        why = "expected a number with one optional suffix (an SI or binary suffix, or an exponent)"
        raise ValueError(f"invalid quantity {value!r}: {why}")
    sign, num, denom = shape.group(1), shape.group(2) or "0", shape.group(3) or ""
    base, exponent = suffix
    fast = _fast_path(num, denom, base, exponent)
    if fast is not None:
        return -fast if sign == "-" and fast else fast
    if not any(ch.isdigit() for ch in value[: shape.start(4)]):
        # Go's slow path reads the number part again (``inf.Dec``) and wants a digit.
        raise ValueError(f"invalid quantity {value!r}: no digits")
    return _slow_path(sign, num, denom, base, exponent)


def _suffix(text: str) -> tuple[int, int] | None:
    """``(base, exponent)`` of a suffix (``quantitySuffixer.interpret``), or ``None`` if unknown."""
    if text in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[text]
    if text in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[text]
    if len(text) > 1 and text[0] in "eE" and re.fullmatch(r"[+-]?\d+", text[1:], re.ASCII):
        exponent = int(text[1:])
        if -(2**63) <= exponent < 2**63:  # strconv.ParseInt(.., 64), then int32(..)
            return 10, (exponent + 2**31) % 2**32 - 2**31
    return None


def _fast_path(num: str, denom: str, base: int, exponent: int) -> Decimal | None:
    """The exact value when Go's int64 fast path takes the quantity (unsigned), else ``None``."""
    mantissa = 1
    if base == 10:
        scale, precision = exponent, 18 - len(num) - len(denom)
    elif len(denom) == 0:
        mantissa = 1 << exponent
        scale, precision = 0, 15 - len(num) - exponent * 3 // 10 - 1
    else:
        return None
    scale -= len(denom)
    if precision < 0 or scale < -9:
        return None
    # No int64 overflow to check (Go's ``int64Multiply``): the precision test above
    # keeps a decimal under 10^18 and a binary one under 2^47 (99Ti at most).
    result = int(num + denom) * mantissa
    # A tuple builds the value without a context: no rounding, no overflow.
    return Decimal((0, tuple(int(d) for d in str(result)), scale)) if result else Decimal(0)


def _slow_path(sign: str, num: str, denom: str, base: int, exponent: int) -> Decimal:
    """Go's ``inf.Dec`` path: the exact value rounded up to a whole nano-unit (binary: capped)."""
    amount = Decimal(f"{num}.{denom}")
    if base == 2:
        amount = _EXACT.multiply(amount, Decimal(1 << exponent))
    else:
        amount = amount.scaleb(exponent, _EXACT)
    if base == 2 and amount > _MAX_BINARY:
        amount = _MAX_BINARY
    elif amount:
        amount = amount.quantize(_NANO, rounding=ROUND_UP, context=_EXACT)
    return -amount if sign == "-" and amount else amount


def decode_quantity(value: str | int | float) -> Decimal:
    """:func:`parse_quantity` of a value decoded from JSON: ``Quantity.UnmarshalJSON`` trims blanks first."""
    return parse_quantity(value.strip() if isinstance(value, str) else value)


def cpu_millis(value: str | int | float) -> int:
    """CPU quantity (as stored, see :func:`decode_quantity`) in millicores, rounded up as Kubernetes does."""
    q = decode_quantity(value) * 1000
    return int(q.to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(value: str | int | float) -> int:
    """Memory quantity (as stored, see :func:`decode_quantity`) in bytes (rounded up)."""
    return int(decode_quantity(value).to_integral_value(rounding="ROUND_CEILING"))


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
