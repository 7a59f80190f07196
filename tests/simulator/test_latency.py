"""Latency distributions: parsing every form, sampling, means, and the compact string form."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from simulator.latency import (
    MAX_DRAW_S,
    Empirical,
    Exponential,
    Fixed,
    Latency,
    LogNormal,
    Normal,
    Uniform,
    format_seconds,
    parse_latency,
    parse_seconds,
)

DRAWS = 20_000

DISTRIBUTIONS: list[Latency] = [
    Fixed(value=0.25),
    Uniform(low=0.1, high=0.5),
    Exponential(mean=2.0),
    LogNormal(median=0.2, p99=2.0),
    LogNormal(median=5.0, p99=30.0, cap=20.0),
    Normal(mean=1.0, stddev=0.2),
    Normal(mean=0.1, stddev=0.2, floor=0.05),
    Empirical(samples=[0.01, 0.02, 0.08, 0.5]),
]


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100ms", Fixed(value=0.1)),
        ("0.25", Fixed(value=0.25)),
        ("2", Fixed(value=2.0)),
        ("fixed(1s)", Fixed(value=1.0)),
        ("uniform(100ms, 500ms)", Uniform(low=0.1, high=0.5)),
        ("uniform(low=0.1, high=1.5s)", Uniform(low=0.1, high=1.5)),
        ("exp(2s)", Exponential(mean=2.0)),
        ("exponential(mean=500ms)", Exponential(mean=0.5)),
        ("lognormal(median=200ms, p99=2s)", LogNormal(median=0.2, p99=2.0)),
        ("lognormal(5s, 30s, cap=1m)", LogNormal(median=5.0, p99=30.0, cap=60.0)),
        ("normal(mean=1s, stddev=200ms)", Normal(mean=1.0, stddev=0.2)),
        ("normal(1s, 500ms, floor=200ms)", Normal(mean=1.0, stddev=0.5, floor=0.2)),
        ("empirical(10ms, 20ms, 80ms)", Empirical(samples=[0.01, 0.02, 0.08])),
        ("  Uniform( 1ms , 2ms )  ", Uniform(low=0.001, high=0.002)),
    ],
)
def test_strings_parse_to_distributions(text: str, expected: Latency) -> None:
    """Durations, bare seconds and call forms with positional or named arguments all parse."""
    assert parse_latency(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0.5, Fixed(value=0.5)),
        (3, Fixed(value=3.0)),
        ({"kind": "uniform", "low": 0.1, "high": 0.5}, Uniform(low=0.1, high=0.5)),
        ({"kind": "exp", "mean": "2s"}, Exponential(mean=2.0)),
        ({"kind": "lognormal", "median": "5s", "p99": "30s"}, LogNormal(median=5.0, p99=30.0)),
    ],
)
def test_numbers_and_mappings_parse(value: Any, expected: Latency) -> None:
    """A number is a fixed latency in seconds; a mapping is selected by its ``kind``."""
    assert parse_latency(value) == expected


def test_a_model_parses_to_itself() -> None:
    """An already-built distribution is returned unchanged."""
    uniform = Uniform(low=0.1, high=0.2)
    assert parse_latency(uniform) is uniform


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "expected a duration"),
        ("", "expected a duration"),
        ("uniform(1s)x", "expected a duration"),
        ("gamma(1s, 2s)", "unknown distribution 'gamma'"),
        ("uniform(2s, 1s)", "must be >= low"),
        ("uniform(1s, 2s, 3s)", "at most 2 argument"),
        ("uniform(low=1s, low=2s)", "'low' given twice"),
        ("uniform(1s, width=2s)", "no parameter 'width'"),
        ("lognormal(median=1s)", "p99: required"),
        ("lognormal(median=2s, p99=1s)", "must be >= median"),
        # A cap below the median would make every draw the cap: median and p99 would mean nothing.
        ("lognormal(median=5s, p99=30s, cap=1ms)", "cap (0.001) must be >= median (5.0)"),
        ({"kind": "lognormal", "median": 5, "p99": 30, "cap": 1}, "cap (1.0) must be >= median"),
        # A negative mean is not the mean of what is drawn (no draw is negative).
        ("normal(mean=-1s, stddev=0)", "mean: must be greater than or equal to 0"),
        ("normal(-1s, 2s)", "mean: must be greater than or equal to 0"),
        # With no spread every draw is max(mean, floor): a floor above the mean overrides it.
        ("normal(mean=100ms, stddev=0, floor=1s)", "floor (1.0) must be <= mean (0.1)"),
        # An empty name before '=' is a typo, not a positional argument.
        ("fixed(=1s)", "argument '=1s': missing parameter name"),
        ("uniform(1s, =2s)", "argument '=2s': missing parameter name"),
        ("exp(0)", "mean"),
        ("-1s", "value"),
        ("fixed(nan)", "finite"),
        ("uniform(x, 1s)", "invalid duration 'x'"),
        ("normal(1s, -1s)", "stddev"),
        ("empirical()", "samples: must not be empty"),
        ("empirical(a=1s)", "only values"),
        (True, "invalid latency, the boolean true"),
        (None, "invalid latency, null"),
        ([1, 2], "invalid latency, a list"),
        ({"low": 1}, "missing 'kind'"),
        ({"kind": "gamma"}, "unknown kind 'gamma'"),
        ({"kind": "uniform", "low": 1, "high": 2, "width": 3}, "width: unknown parameter"),
        ({"kind": "fixed", "value": -1}, "value"),
    ],
)
def test_bad_inputs_raise_a_value_error_naming_the_problem(value: Any, message: str) -> None:
    """Every malformed latency is a ValueError whose message says what is wrong."""
    with pytest.raises(ValueError, match="invalid latency") as info:
        parse_latency(value)
    assert message in str(info.value)


def test_seconds_accept_numbers_and_go_durations() -> None:
    """parse_seconds reads bare seconds and Go durations, and refuses booleans."""
    assert parse_seconds(2) == 2.0
    assert parse_seconds("1.5") == 1.5
    assert parse_seconds("1m30s") == 90.0
    assert parse_seconds("250ms") == 0.25
    with pytest.raises(ValueError, match="got the boolean true"):
        parse_seconds(True)
    with pytest.raises(ValueError, match="got a list"):
        parse_seconds([1])


# --------------------------------------------------------------------------- string form


@pytest.mark.parametrize(
    ("latency", "text"),
    [
        (Fixed(value=0.0005), "fixed(500us)"),
        (Uniform(low=0.01, high=0.05), "uniform(10ms, 50ms)"),
        (Exponential(mean=2.0), "exp(2s)"),
        (LogNormal(median=5.0, p99=30.0), "lognormal(median=5s, p99=30s)"),
        (LogNormal(median=5.0, p99=30.0, cap=120.0), "lognormal(median=5s, p99=30s, cap=2m)"),
        (Normal(mean=1.0, stddev=0.2), "normal(mean=1s, stddev=200ms)"),
        (Normal(mean=1.0, stddev=0.2, floor=0.5), "normal(mean=1s, stddev=200ms, floor=500ms)"),
        (Empirical(samples=[0.01, 1.5]), "empirical(10ms, 1.5s)"),
    ],
)
def test_each_distribution_has_a_compact_string_form(latency: Latency, text: str) -> None:
    """``str()`` gives the short form used in docs and on the command line."""
    assert str(latency) == text


@pytest.mark.parametrize("latency", DISTRIBUTIONS, ids=str)
def test_the_string_form_parses_back_to_the_same_distribution(latency: Latency) -> None:
    """parse_latency(str(x)) == x."""
    assert parse_latency(str(latency)) == latency


def test_durations_are_read_to_the_nanosecond() -> None:
    """The ns and us units are exact: nothing is rounded to whole microseconds."""
    assert parse_seconds("100ns") == 1e-7
    assert parse_seconds("123.4us") == 0.0001234
    assert parse_seconds("-1.5ms") == -0.0015
    assert parse_latency("exp(100ns)") == Exponential(mean=1e-7)
    assert parse_latency("uniform(1ns, 2us)") == Uniform(low=1e-9, high=2e-6)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1e-7, "100ns"),
        (0.0001234, "123.4us"),
        (123456789.123, "123456789.123s"),
        (31_536_000, "8760h"),
        (-1.5, "-1.5s"),
        # Not whole nanoseconds, or beyond Go's longest duration: bare seconds.
        (1e-12, "1e-12"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e15, "1000000000000000.0"),
        (1e300, "1e+300"),
    ],
)
def test_seconds_format_in_a_form_that_reads_back(seconds: float, text: str) -> None:
    """No exponent glued to a unit (``1e-06us``): a duration, else a bare number."""
    assert format_seconds(seconds) == text
    assert parse_seconds(text) == seconds


_TIMES = st.floats(min_value=0, max_value=1e300, allow_nan=False, allow_infinity=False)


@given(_TIMES)
def test_every_time_formats_and_reads_back_exactly(seconds: float) -> None:
    """parse_seconds(format_seconds(x)) == x for every finite float."""
    assert parse_seconds(format_seconds(seconds)) == seconds
    assert parse_seconds(format_seconds(-seconds)) == -seconds


@given(
    st.one_of(
        st.builds(Fixed, value=_TIMES),
        st.builds(lambda a, b: Uniform(low=min(a, b), high=max(a, b)), _TIMES, _TIMES),
        # Within the bounds that keep every draw and mean finite (see the tests below).
        st.builds(Exponential, mean=_TIMES.filter(lambda x: 0 < x <= 2.71e298)),
        st.builds(
            lambda median, spread: LogNormal(median=median, p99=median * spread),
            st.floats(min_value=1e-300, max_value=1e250),
            st.floats(min_value=1, max_value=1e9),
        ),
        st.builds(Empirical, samples=st.lists(_TIMES, min_size=1, max_size=4)),
    )
)
def test_every_distribution_reads_back_from_its_string_form(latency: Latency) -> None:
    """parse_latency(str(x)) == x, whatever the parameters."""
    assert parse_latency(str(latency)) == latency


def test_seconds_format_in_the_largest_readable_unit() -> None:
    """format_seconds picks ns, us, ms, s, m or h."""
    assert [format_seconds(s) for s in (0, 2e-6, 0.02, 1.5, 90, 300, 7200)] == [
        "0s",
        "2us",
        "20ms",
        "1.5s",
        "90s",
        "5m",
        "2h",
    ]


# --------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("latency", DISTRIBUTIONS, ids=str)
def test_samples_are_never_negative_and_average_to_the_mean(latency: Latency) -> None:
    """Over 20k seeded draws every sample is >= 0 and the average is within 3% of mean()."""
    rng = random.Random(42)
    draws = [latency.sample(rng) for _ in range(DRAWS)]
    assert min(draws) >= 0
    assert math.fsum(draws) / DRAWS == pytest.approx(latency.mean(), rel=0.03)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        # sigma = ln(1e300 / 1ms) / 2.326 = 300: the mean is e**45000, and about 1% of the
        # draws overflowed lognormvariate, killing the process that drew them mid-run.
        (
            "lognormal(median=1ms, p99=1e300)",
            "p99 (1e+300) must be at most 5.49e+34 s with median 0.001 s",
        ),
        ("lognormal(median=1s, p99=1e200)", "p99 (1e+200) must be at most 3.57e+37 s"),
        # A cap does not help: the draw overflowed before it was capped.
        ("lognormal(median=1s, p99=1e200, cap=2s)", "p99 (1e+200) must be at most 3.57e+37 s"),
        ("lognormal(median=1s, p99=1e301)", "p99: must be at most 1e+300 s"),
        ("exp(1e300)", "mean (1e+300) must be at most 2.71e+298 s"),
        ("normal(mean=0, stddev=1e300)", "stddev (1e+300) must be at most 8.19e+298 s"),
        ("normal(mean=1e300, stddev=1s)", "stddev (1.0) must be at most 0 s with mean 1e+300 s"),
        ("normal(mean=1e301, stddev=0)", "mean: must be at most 1e+300 s"),
        ("fixed(1e301)", "value: must be at most 1e+300 s"),
        ("uniform(0, 1e308)", "high: must be at most 1e+300 s"),
        ("empirical(1s, 1e308)", "samples.1: must be at most 1e+300 s"),
    ],
)
def test_a_spec_that_could_draw_or_average_past_max_draw_is_refused(
    spec: str, message: str
) -> None:
    """Every parameter is finite, but a draw or the mean would not be: refused when parsed,
    naming the parameter and its bound, not as an ``OverflowError`` in the middle of a run."""
    with pytest.raises(ValueError, match="invalid latency") as info:
        parse_latency(spec)
    assert message in str(info.value)


class _FurthestDraws(random.Random):
    """A generator at the far end of every draw ``random`` can make: the normal's
    ``z = 12.12`` (``sqrt(212·ln 2)``) and the exponential's ``53·ln 2`` means."""

    def normalvariate(self, mu: float = 0.0, sigma: float = 1.0) -> float:
        return mu + math.sqrt(212 * math.log(2)) * sigma

    def expovariate(self, lambd: float = 1.0) -> float:
        return -math.log(2.0**-53) / lambd


@pytest.mark.parametrize(
    "spec",
    [
        "fixed(1e300)",
        "uniform(1e300, 1e300)",
        "exp(2.71e298)",
        "normal(mean=0, stddev=8.19e298)",
        "normal(mean=1e300, stddev=0, floor=1e300)",
        "empirical(1e300, 1e300, 1e300)",
        "lognormal(median=1ms, p99=5.49e34)",
        "lognormal(median=1s, p99=3.57e37)",
        "lognormal(median=1s, p99=3.57e37, cap=1e300)",
        "lognormal(median=1e-300, p99=1e-300)",
        "lognormal(median=1e300, p99=1e300)",
    ],
)
def test_at_its_bounds_a_latency_draws_and_averages_at_most_max_draw(spec: str) -> None:
    """The largest spec of each kind is accepted (written as the refusal shows its bound),
    and its furthest draw and its mean are finite and at most MAX_DRAW_S."""
    latency = parse_latency(spec)
    assert 0 <= latency.mean() <= MAX_DRAW_S * (1 + 1e-9)
    assert 0 <= latency.sample(_FurthestDraws()) <= MAX_DRAW_S * (1 + 1e-9)


@given(
    st.floats(min_value=5e-324, max_value=MAX_DRAW_S),
    st.floats(min_value=5e-324, max_value=MAX_DRAW_S),
)
def test_a_lognormal_either_is_refused_or_draws_and_averages_within_max_draw(
    a: float, b: float
) -> None:
    """Whatever the median and p99: a ValueError, or a finite mean and furthest draw."""
    try:
        latency = LogNormal(median=min(a, b), p99=max(a, b))
    except ValueError as exc:
        assert "must be at most" in str(exc)
        return
    assert latency.mean() <= MAX_DRAW_S * (1 + 1e-9)
    assert latency.sample(_FurthestDraws()) <= MAX_DRAW_S * (1 + 1e-9)


def test_samples_are_reproducible_from_the_seed() -> None:
    """The same seed gives the same draws."""
    latency = LogNormal(median=0.2, p99=2.0)
    first = [latency.sample(random.Random(7)) for _ in range(3)]
    again = [latency.sample(random.Random(7)) for _ in range(3)]
    assert first == again


def test_lognormal_is_parametrised_by_its_median_and_p99() -> None:
    """The empirical median and 99th percentile match the parameters."""
    latency = LogNormal(median=5.0, p99=30.0)
    rng = random.Random(1)
    draws = sorted(latency.sample(rng) for _ in range(DRAWS))
    assert draws[DRAWS // 2] == pytest.approx(5.0, rel=0.05)
    assert draws[int(0.99 * DRAWS)] == pytest.approx(30.0, rel=0.08)
    assert latency.mu == pytest.approx(math.log(5.0))
    assert latency.sigma == pytest.approx((math.log(30.0) - math.log(5.0)) / 2.3263478740408408)


def test_a_lognormal_cap_bounds_every_sample() -> None:
    """With ``cap``, no draw exceeds it."""
    latency = LogNormal(median=5.0, p99=30.0, cap=10.0)
    rng = random.Random(3)
    assert max(latency.sample(rng) for _ in range(DRAWS)) <= 10.0


def test_a_normal_floor_bounds_every_sample() -> None:
    """With ``floor``, no draw is below it."""
    latency = Normal(mean=0.1, stddev=1.0, floor=0.05)
    rng = random.Random(3)
    assert min(latency.sample(rng) for _ in range(DRAWS)) == 0.05


def test_a_fixed_latency_draws_no_random_number() -> None:
    """Fixed latencies leave the generator's state untouched."""
    rng = random.Random(5)
    state = rng.getstate()
    assert Fixed(value=1.0).sample(rng) == 1.0
    assert rng.getstate() == state


def test_empirical_draws_come_from_the_samples() -> None:
    """An empirical latency only ever returns one of its samples."""
    latency = Empirical(samples=[0.1, 0.2, 0.3])
    rng = random.Random(9)
    assert {latency.sample(rng) for _ in range(1000)} == {0.1, 0.2, 0.3}


def test_empirical_samples_cannot_be_edited_in_place() -> None:
    """An Empirical is immutable through and through: its samples are a tuple (a list, given
    in any form, is read into one), so no edit reaches the clusters that hold it. They dump as
    a list in JSON and read back equal."""
    latency = Empirical(samples=[0.1, 0.2])
    assert latency.samples == (0.1, 0.2)
    assert parse_latency("empirical(100ms, 200ms)") == latency
    assert parse_latency({"kind": "empirical", "samples": ["100ms", 0.2]}) == latency
    shared: Any = latency.samples
    with pytest.raises(TypeError):
        shared[:] = [20.0]
    with pytest.raises(AttributeError):
        shared.append(20.0)
    assert str(latency) == "empirical(100ms, 200ms)"
    assert latency.model_dump_json() == '{"kind":"empirical","samples":[0.1,0.2]}'
    assert Empirical.model_validate_json(latency.model_dump_json()) == latency


def test_a_copy_with_changed_parameters_samples_the_new_distribution() -> None:
    """model_copy(update=...) recomputes the precomputed constants."""
    latency = LogNormal(median=5.0, p99=30.0).model_copy(update={"median": 1.0, "p99": 1.0})
    assert latency.sample(random.Random(0)) == pytest.approx(1.0)


def test_the_precomputed_constants_are_private_attributes_not_fields() -> None:
    """``_rate``, ``_mu`` and ``_sigma`` are declared private (``PrivateAttr``), so that a type
    checker without pydantic's plugin does not read them as ``__init__`` arguments
    (``Exponential(mean=2.0)`` type-checks: tests/plugin/test_typing.py); they are no fields,
    no keywords, and stay out of dumps and equality, and a draw reads them as before."""
    for model, private in ((Exponential, {"_rate"}), (LogNormal, {"_mu", "_sigma"})):
        assert private <= set(model.__private_attributes__)
        assert private.isdisjoint(model.model_fields)
    with pytest.raises(ValueError, match="_rate"):
        Exponential(mean=2.0, _rate=1.0)  # type: ignore[call-arg]
    exp, log = Exponential(mean=2.0), LogNormal(median=5, p99=30)
    assert exp._rate == 0.5 and log.mu == pytest.approx(math.log(5))
    assert exp.model_dump() == {"kind": "exponential", "mean": 2.0} and exp == Exponential(mean=2)
    assert exp.sample(random.Random(3)) == random.Random(3).expovariate(0.5)


# --------------------------------------------------------------------------- serialisation


@pytest.mark.parametrize("latency", DISTRIBUTIONS, ids=str)
def test_distributions_round_trip_through_plain_data(latency: Latency) -> None:
    """model_dump() validates back into an equal distribution through the ``kind`` tag."""
    adapter: TypeAdapter[Latency] = TypeAdapter(Latency)
    data = latency.model_dump()
    assert data["kind"] == latency.kind
    assert adapter.validate_python(data) == latency
    assert adapter.validate_json(latency.model_dump_json()) == latency


def test_the_mean_parameter_is_called_mean_on_the_wire() -> None:
    """Exponential and Normal dump their mean as ``mean`` (the Python attribute is ``mean_s``)."""
    assert Exponential(mean=2.0).model_dump() == {"kind": "exponential", "mean": 2.0}
    assert Normal(mean=1.0, stddev=0.1).model_dump()["mean"] == 1.0
    assert repr(Exponential(mean=2.0)) == "Exponential(kind='exponential', mean=2.0)"


def test_distributions_are_immutable() -> None:
    """Assigning to a parameter fails; profiles share distribution objects safely."""
    latency = Uniform(low=0.1, high=0.2)
    with pytest.raises(ValueError):
        latency.low = 0.3  # type: ignore[misc]


@pytest.mark.parametrize(
    "value",
    [
        10**400,
        {"kind": "exponential", "mean": 10**400},
        f"exp({10**300}s)",
        f"uniform(low=1s, high={'9' * 500})",
        "x" * 1000,
    ],
)
def test_a_huge_latency_is_named_by_its_length_not_printed(value: object) -> None:
    """An error about a latency of hundreds of characters stays one readable line.

    Every place the value is quoted (the latency, the argument, the duration) shows its
    start and its length; before, a 401-digit number was printed whole, up to three times.
    """
    with pytest.raises(ValueError) as err:
        parse_latency(value)
    message = str(err.value)
    assert len(message) < 400, message
    assert "characters)" in message


@pytest.mark.parametrize(
    "value", [10**400, "1" + "0" * 400, -(10**400)], ids=["int", "str", "negative-int"]
)
def test_a_number_past_what_a_float_holds_is_a_value_error_not_an_overflow(value: object) -> None:
    """A 401-digit integer is refused as an infinite duration, with the field's usual error.

    Before, ``float(int)`` raised ``OverflowError``, which no caller turns into a field
    error: the admin API answered 500 and ``serve --config`` died with a traceback.
    """
    with pytest.raises(ValueError, match=r"expected a finite duration, got .*\(40\d characters\)"):
        parse_seconds(value)


def test_a_context_draw_is_its_latency_draw_and_follows_the_profile() -> None:
    """``ctx.draw[name]()`` draws what ``ctx.latency(name)`` would, from the same generator,
    and a new profile (``set_latency``) changes both at once."""
    from simulator.context import SimContext
    from simulator.profile import get_profile

    names = ["watch.lag", "api.update", "controller.reconcile", "pod.create"]
    by_latency = SimContext(seed=4, profile=get_profile("openkruise-head"))
    by_draw = SimContext(seed=4, profile=get_profile("openkruise-head"))
    for ctx in (by_latency, by_draw):
        ctx.set_profile(ctx.profile.with_overrides(latencies={"api.update": "exp(2s)"}))
    drawn = [by_draw.draw[name]() for name in names * 3]
    assert drawn == [by_latency.latency(name) for name in names * 3]
    assert by_draw.draw["api.update"]() == by_latency.latency("api.update")  # same stream
    assert by_draw.draw["controller.reconcile"]() == 0.001
