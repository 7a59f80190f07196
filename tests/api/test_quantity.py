"""Kubernetes quantities: parsing, CPU millicores, memory bytes, and the positive checks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pytest_kruise_agents.api.quantity import (
    cpu_millis,
    decode_quantity,
    memory_bytes,
    parse_quantity,
    positive_cpu,
    positive_memory,
)


@pytest.mark.parametrize(
    ("text", "millis"), [("500m", 500), ("2", 2000), ("0.1", 100), ("1e-3", 1)]
)
def test_cpu_quantities_in_millicores(text: str, millis: int) -> None:
    """Suffix ``m``, plain numbers, fractions and exponents; rounded up as Kubernetes does."""
    assert cpu_millis(text) == millis


@pytest.mark.parametrize(("text", "size"), [("512Mi", 512 * 2**20), ("1G", 10**9), ("1k", 1000)])
def test_memory_quantities_in_bytes(text: str, size: int) -> None:
    """Binary (``Mi``) and decimal (``G``, ``k``) suffixes."""
    assert memory_bytes(text) == size


def test_the_positive_checks_name_the_resource_and_the_value() -> None:
    """Zero, negative or malformed: ValueError; a positive quantity is returned as given."""
    assert positive_cpu("250m") == "250m" and positive_memory("1Gi") == "1Gi"
    with pytest.raises(ValueError, match=r"must be a positive CPU quantity, got '0'"):
        positive_cpu("0")
    with pytest.raises(ValueError, match=r"must be a positive memory quantity, got '-1Gi'"):
        positive_memory("-1Gi")
    with pytest.raises(ValueError, match=r"invalid quantity 'lots'"):
        positive_cpu("lots")


def test_surrounding_whitespace_is_trimmed_as_the_api_server_trims_it() -> None:
    """``Quantity.UnmarshalJSON`` trims the JSON string before parsing it."""
    assert memory_bytes(" 512Mi\n") == 512 * 2**20


@pytest.mark.parametrize("text", ["\u0661", "\uff12Gi", "5\u0660\u0660m", "1 Gi"])
def test_only_ascii_digits_make_a_quantity(text: str) -> None:
    """Go reads '0'..'9': Arabic-Indic or full-width digits, or inner blanks, are malformed."""
    with pytest.raises(ValueError, match="invalid quantity"):
        cpu_millis(text)


@pytest.mark.parametrize("text", ["1e3m", "8e2m", "1E+3Mi", "5e-1k", "1e3k", "2e0Gi"])
def test_an_exponent_and_a_suffix_together_are_malformed(text: str) -> None:
    """``resource.ParseQuantity`` takes one suffix: an SI or binary one, or an exponent, not both."""
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(text)


@pytest.mark.parametrize("text", [" 750m", "750m ", "\t1"])
def test_parse_quantity_takes_no_blanks_as_parse_quantity_takes_none(text: str) -> None:
    """Only JSON decoding trims (``decode_quantity``): a string parsed as it is, as the E2B
    manager parses its ``cpu-request`` metadata, may not have a blank around it."""
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(text)
    assert decode_quantity(text) == parse_quantity(text.strip())


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("m", Decimal(0)),
        ("+", Decimal(0)),
        (".", Decimal(0)),
        ("e3", Decimal(0)),
        ("1e-100", Decimal("1e-9")),
        ("-1e-100", Decimal("-1e-9")),
        ("67Ei", Decimal(2**63 - 1)),
        ("12345678901234567890", Decimal("12345678901234567890")),
        ("1.5Gi", Decimal("1.5") * 2**30),
    ],
)
def test_go_corner_cases_parse_as_go_parses_them(text: str, value: Decimal) -> None:
    """No digits is zero, a non-zero value rounds up to a nano-unit, and only a binary suffix
    is capped at 2^63 - 1 (what apimachinery v0.31 answers for each)."""
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    ("suffix", "factor"),
    [
        ("n", Decimal("1e-9")),
        ("u", Decimal("1e-6")),
        ("m", Decimal("1e-3")),
        ("k", Decimal(10**3)),
        ("M", Decimal(10**6)),
        ("G", Decimal(10**9)),
        ("T", Decimal(10**12)),
        ("P", Decimal(10**15)),
        ("E", Decimal(10**18)),
        ("Ki", Decimal(2**10)),
        ("Mi", Decimal(2**20)),
        ("Gi", Decimal(2**30)),
        ("Ti", Decimal(2**40)),
        ("Pi", Decimal(2**50)),
        ("Ei", Decimal(2**60)),
    ],
)
def test_every_suffix_scales_as_kubernetes_scales_it(suffix: str, factor: Decimal) -> None:
    """apimachinery's SI (``n`` .. ``E``) and binary (``Ki`` .. ``Ei``) suffixes."""
    assert parse_quantity("3" + suffix) == 3 * factor


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.0000000001", Decimal("1e-9")),
        ("1e-10", Decimal("1e-9")),
        ("15e-10", Decimal("2e-9")),
        ("1e4294967296", Decimal(1)),
        ("1e4294967299", Decimal(1000)),
    ],
)
def test_below_a_nano_unit_rounds_up_and_an_exponent_wraps_at_32_bits(
    text: str, value: Decimal
) -> None:
    """A tenth of a nano-unit is one (``inf.RoundUp``); Go reads an exponent as an int64 and
    keeps its low 32 bits (``int32(parsed)``), so ``e4294967296`` is ``e0``."""
    assert parse_quantity(text) == value


@pytest.mark.parametrize(("cpu", "millis"), [("1n", 1), ("100u", 1), ("1001u", 2), ("0.0004", 1)])
def test_a_fraction_of_a_millicore_counts_as_a_whole_one(cpu: str, millis: int) -> None:
    """``MilliValue`` rounds up: a container asking any CPU asks at least 1m."""
    assert cpu_millis(cpu) == millis


@pytest.mark.parametrize(("memory", "size"), [("1m", 1), ("0.4", 1), ("1.5", 2), ("1500m", 2)])
def test_a_fraction_of_a_byte_counts_as_a_whole_one(memory: str, size: int) -> None:
    """``Value`` rounds up: a fraction of a byte is a byte."""
    assert memory_bytes(memory) == size


def test_a_boolean_is_no_quantity() -> None:
    """``cpu: true`` in YAML is a boolean, which Kubernetes refuses as a quantity."""
    with pytest.raises(ValueError, match=r"invalid quantity True"):
        cpu_millis(True)


@pytest.mark.parametrize("text", ["e-10", "-e-10", ".e-12"])
def test_no_digits_below_a_nano_unit_is_malformed(text: str) -> None:
    """No digits reads as zero only where Go's fast path takes the quantity; below a
    nano-unit its slow path parses the number part again and finds none."""
    with pytest.raises(ValueError, match="no digits"):
        parse_quantity(text)
