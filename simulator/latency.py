"""Named latency distributions: how long each step of the fake cluster takes.

Every wait in the model is a draw from one of these distributions, in seconds,
from the cluster's seeded :class:`random.Random`. They are pydantic models
tagged by ``kind`` (a discriminated union, :data:`Latency`), so profiles and
scenario files carry them as plain data, and each has a compact string form
for docs and the command line::

    fixed(1s)                      Fixed(value=1.0)
    uniform(100ms, 500ms)          Uniform(low=0.1, high=0.5)
    exp(2s)                        Exponential(mean=2.0)
    lognormal(median=5s, p99=30s)  LogNormal(median=5.0, p99=30.0)
    normal(mean=1s, stddev=200ms)  Normal(mean=1.0, stddev=0.2)
    empirical(10ms, 20ms, 80ms)    Empirical(samples=[0.01, 0.02, 0.08])

Unlike kwok's ``delay``/``jitter`` pair, whose jitter is an upper bound rather
than a spread (kwok issue #906), every parameter here means what its name
says. A sample is never negative, and never more than :data:`MAX_DRAW_S`: a
spec that could draw more, or whose mean would be more, is refused when it is
made, naming the parameter and its bound (a draw or a mean past what a float
holds failed the model as an ``OverflowError``, mid-run). A distribution is
immutable, an empirical one's samples too (a tuple): profiles, and so
clusters, share them.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator, Mapping
from decimal import ROUND_FLOOR, Context, Decimal
from fractions import Fraction
from statistics import NormalDist
from typing import Annotated, Any, Final, Literal, Self, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from pytest_kruise_agents.api.durations import parse_duration_nanos
from pytest_kruise_agents.api.problems import brief, kind_and_value

__all__ = [
    "MAX_DRAW_S",
    "Empirical",
    "Exponential",
    "Fixed",
    "Latency",
    "LogNormal",
    "Normal",
    "Seconds",
    "Uniform",
    "format_seconds",
    "parse_latency",
    "parse_seconds",
]

Z_99 = 2.3263478740408408
"""The standard normal's 99th percentile: ``p99 = median · exp(Z_99 · sigma)``."""

_STANDARD_NORMAL = NormalDist()

MAX_DRAW_S: Final = 1e300
"""The most a latency may draw, in seconds, and the most its mean may be.

Far past the clock's end (a wait that long never ends), and far enough below
the largest float (about 1.8e308) that a draw, a mean, and sums of a few of
them (faults' latencies add up, planning adds up means) stay finite.
"""

# The furthest the draws of ``random`` reach, rounded up. normalvariate's z
# (Kinderman-Monahan) has z²/4 <= -ln(u) with u >= 2**-53, so |z| <= sqrt(212·ln 2)
# = 12.12; expovariate's -ln(1 - random()) is at most 53·ln 2 = 36.74 means.
_NORMAL_TAIL: Final = 12.2
_EXP_TAIL: Final = 36.8
_LOG_MAX_DRAW: Final = math.log(MAX_DRAW_S)


_NANOS_PER_S = 1_000_000_000
_MAX_NANOS = 2**63 - 1
"""The longest Go duration: a longer time is written as a bare number of seconds."""


def parse_seconds(value: Any) -> float:
    """Seconds from a number or a Go duration string (``"250ms"``, ``"1.5s"``, ``"100ns"``, ``"2"``).

    A duration is read to the nanosecond, as Go reads it, then to the nearest float.
    """
    if isinstance(value, bool):
        raise ValueError(
            f"expected seconds or a duration like '100ms', got {kind_and_value(value)}"
        )
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str):
            text = value.strip()
            try:
                seconds = float(text)
            except ValueError:
                # int / int is correctly rounded: "123.4us" is the float nearest 0.0001234.
                seconds = parse_duration_nanos(text) / _NANOS_PER_S
        else:
            raise ValueError(
                f"expected seconds or a duration like '100ms', got {kind_and_value(value)}"
            )
    except OverflowError:  # an integer past what a float holds: infinite as a duration
        seconds = math.inf
    if not math.isfinite(seconds):
        raise ValueError(f"expected a finite duration, got {brief(value)}")
    return seconds


_UNITS = (
    ("h", 3_600 * _NANOS_PER_S),
    ("m", 60 * _NANOS_PER_S),
    ("s", _NANOS_PER_S),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
)


def format_seconds(seconds: float) -> str:
    """The shortest readable duration for ``seconds``: ``100ns``, ``500us``, ``20ms``, ``1.5s``, ``5m``.

    :func:`parse_seconds` reads it back as the same float. A time that is
    not a whole number of nanoseconds (or beyond Go's longest duration) is
    written as a bare number of seconds, as ``repr`` writes it (``1e-12``,
    ``0.30000000000000004``, ``10000000000.0``, ``1e+16``), which reads back
    exactly too.
    """
    if seconds == 0:
        return "0s"
    nanos = _whole_nanos(seconds)
    if nanos is None:
        return repr(float(seconds))
    sign = "-" if nanos < 0 else ""
    magnitude = abs(nanos)
    for unit, size in _UNITS:
        # h and m only when whole (90 s stays 90s); the smaller units take a fraction.
        if magnitude >= size and (size <= _NANOS_PER_S or magnitude % size == 0):
            return f"{sign}{_decimal(magnitude, size)}{unit}"
    raise AssertionError("unreachable: 0 < magnitude and the last unit is 1 ns")


def _whole_nanos(seconds: float) -> int | None:
    """``seconds`` as integer nanoseconds if that number reads back as the same float."""
    if not math.isfinite(seconds) or abs(seconds) > _MAX_NANOS / _NANOS_PER_S:
        return None
    # The shortest decimal that reads back as ``seconds`` (its repr), if it is whole
    # nanoseconds; else the nearest nanosecond, if that reads back.
    shortest = Decimal(repr(float(seconds))).scaleb(9)
    if shortest == shortest.to_integral_value():
        nanos = int(shortest)
    else:
        nanos = round(Fraction(seconds) * _NANOS_PER_S)
    if nanos == 0 or abs(nanos) > _MAX_NANOS or nanos / _NANOS_PER_S != seconds:
        return None
    return nanos


def _decimal(value: int, size: int) -> str:
    """``value / size`` written exactly (``size`` a power of ten, or a whole divisor)."""
    whole, rest = divmod(value, size)
    if rest == 0:
        return str(whole)
    places = len(str(size)) - 1
    return f"{whole}.{f'{rest:0{places}d}'.rstrip('0')}"


Seconds = Annotated[float, BeforeValidator(parse_seconds)]
"""A time in seconds; accepts numbers and duration strings when validated."""


def _at_most_max_draw(value: float) -> float:
    if value > MAX_DRAW_S:
        raise ValueError(f"must be at most {MAX_DRAW_S:g} s (the most a latency may draw)")
    return value


_Drawn = Annotated[Seconds, AfterValidator(_at_most_max_draw)]
"""A latency parameter: seconds, at most :data:`MAX_DRAW_S`."""


class _Distribution(BaseModel):
    """Common base: immutable, strict about unknown fields, finite numbers only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def model_post_init(self, context: Any, /) -> None:
        self._prepare()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy (``update`` is not validated, as in pydantic) with derived constants redone."""
        copy = super().model_copy(update=update, deep=deep)
        copy._prepare()
        return copy

    def _prepare(self) -> None:
        """Precompute what :meth:`sample` needs, so that a draw stays cheap."""

    def _derive(self, **constants: float) -> None:
        # Derived constants are declared as private attributes (PrivateAttr: no
        # field, no __init__ argument, for pydantic and for a type checker alike)
        # but their values go straight into the instance dict rather than into
        # pydantic's private storage: that is read through __getattr__, which
        # costs more than the random draw itself. They stay out of dumps,
        # equality and validation.
        self.__dict__.update(constants)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Show ``mean=`` rather than the Python-side ``mean_s=`` (the name
        # ``mean`` is taken by the method).
        for name, value in super().__repr_args__():
            field = type(self).model_fields.get(name) if name else None
            yield (field.alias or name) if field else name, value


class Fixed(_Distribution):
    """Always ``value`` seconds (draws no random number)."""

    kind: Literal["fixed"] = "fixed"
    value: _Drawn = Field(ge=0)

    def sample(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        return self.value

    def mean(self) -> float:
        """The expected draw, in seconds."""
        return self.value

    def __str__(self) -> str:
        return f"fixed({format_seconds(self.value)})"


class Uniform(_Distribution):
    """Uniform between ``low`` and ``high`` seconds."""

    kind: Literal["uniform"] = "uniform"
    low: _Drawn = Field(ge=0)
    high: _Drawn = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    def sample(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        # ``rng.uniform(low, high)``, whose very formula this is, without its
        # call: every watch delivery and API request draws one.
        return self.low + (self.high - self.low) * rng.random()

    def mean(self) -> float:
        """The expected draw, in seconds."""
        return (self.low + self.high) / 2

    def __str__(self) -> str:
        return f"uniform({format_seconds(self.low)}, {format_seconds(self.high)})"


class Exponential(_Distribution):
    """Exponential with the given ``mean`` seconds (memoryless waits, Poisson gaps)."""

    kind: Literal["exponential"] = "exponential"
    # The method mean() owns the name, so the attribute is mean_s; the
    # constructor and the wire still say "mean".
    mean_s: Seconds = Field(gt=0, alias="mean")

    model_config = ConfigDict(serialize_by_alias=True)

    # Derived in _prepare; private, so neither a field nor an __init__ argument.
    _rate: float = PrivateAttr()

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        bound = _round_down(MAX_DRAW_S / _EXP_TAIL)
        if self.mean_s > bound:
            raise ValueError(
                f"mean ({self.mean_s}) must be at most {bound:g} s: a draw can be "
                f"{_EXP_TAIL:g} times the mean, and none may be over {MAX_DRAW_S:g} s"
            )
        return self

    def _prepare(self) -> None:
        self._derive(_rate=1.0 / self.mean_s)

    def sample(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        return rng.expovariate(self._rate)

    def mean(self) -> float:
        """The expected draw, in seconds."""
        return self.mean_s

    def __str__(self) -> str:
        return f"exp({format_seconds(self.mean_s)})"


class LogNormal(_Distribution):
    """Log-normal given by its ``median`` and ``p99`` seconds, optionally capped at ``cap``.

    ``mu = ln(median)`` and ``sigma = (ln(p99) - ln(median)) / Z_99``: the two
    numbers people quote for long-tailed waits such as image pulls.
    """

    kind: Literal["lognormal"] = "lognormal"
    median: _Drawn = Field(gt=0)
    p99: _Drawn = Field(gt=0)
    cap: _Drawn | None = Field(default=None, gt=0)

    # Derived in _prepare (see Exponential._rate).
    _mu: float = PrivateAttr()
    _sigma: float = PrivateAttr()

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.p99 < self.median:
            raise ValueError(f"p99 ({self.p99}) must be >= median ({self.median})")
        if self.cap is not None and self.cap < self.median:
            # Every draw would be the cap: the median and p99 named would mean nothing.
            raise ValueError(f"cap ({self.cap}) must be >= median ({self.median})")
        bound = self._widest_p99()
        if self.p99 > bound:
            # The cap does not help: the draw is made (and overflowed) before it is capped.
            raise ValueError(
                f"p99 ({self.p99}) must be at most {bound:g} s with median {self.median:g} s: "
                f"a wider spread draws, or averages, over {MAX_DRAW_S:g} s"
            )
        return self

    def _widest_p99(self) -> float:
        """The largest ``p99`` whose draws and mean stay within :data:`MAX_DRAW_S` (3 digits).

        A draw is at most ``exp(mu + _NORMAL_TAIL·sigma)`` and the mean is
        ``exp(mu + sigma²/2)``: the widest sigma keeps both logs within
        ``ln(MAX_DRAW_S)``. Worked in logs, where nothing overflows.
        """
        mu = math.log(self.median)
        room = max(_LOG_MAX_DRAW - mu, 0.0)
        sigma = min(room / _NORMAL_TAIL, math.sqrt(2 * room))
        return max(_round_down(math.exp(mu + Z_99 * sigma)), self.median)

    def _prepare(self) -> None:
        mu = math.log(self.median)
        self._derive(_mu=mu, _sigma=(math.log(self.p99) - mu) / Z_99)

    @property
    def mu(self) -> float:
        """Mean of the underlying normal (log seconds)."""
        return self._mu

    @property
    def sigma(self) -> float:
        """Standard deviation of the underlying normal (log seconds)."""
        return self._sigma

    def sample(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        value = rng.lognormvariate(self._mu, self._sigma)
        return value if self.cap is None or value < self.cap else self.cap

    def mean(self) -> float:
        """The expected draw, in seconds (of the capped distribution when capped)."""
        mu, sigma = self._mu, self._sigma
        uncapped = math.exp(mu + sigma * sigma / 2)
        if self.cap is None:
            return uncapped
        if sigma == 0:
            return min(math.exp(mu), self.cap)
        # E[min(X, c)] = E[X; X < c] + c·P(X ≥ c) for X = exp(N(mu, sigma²)).
        log_cap = math.log(self.cap)
        below = uncapped * _STANDARD_NORMAL.cdf((log_cap - mu - sigma * sigma) / sigma)
        above = self.cap * (1 - _STANDARD_NORMAL.cdf((log_cap - mu) / sigma))
        return below + above

    def __str__(self) -> str:
        text = f"lognormal(median={format_seconds(self.median)}, p99={format_seconds(self.p99)}"
        if self.cap is not None:
            text += f", cap={format_seconds(self.cap)}"
        return text + ")"


class Normal(_Distribution):
    """Normal with ``mean`` and ``stddev`` seconds, clamped below at ``floor`` (≥ 0)."""

    kind: Literal["normal"] = "normal"
    # As in Exponential: the attribute is mean_s, the constructor and the wire say "mean".
    # Not negative: no draw is, so a negative mean would not be the mean of the draws.
    mean_s: _Drawn = Field(ge=0, alias="mean")
    stddev: _Drawn = Field(ge=0)
    floor: _Drawn = Field(default=0.0, ge=0)

    model_config = ConfigDict(serialize_by_alias=True)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.stddev == 0 and self.floor > self.mean_s:
            # With no spread every draw would be the floor, not the mean named.
            raise ValueError(
                f"floor ({self.floor}) must be <= mean ({self.mean_s}) when stddev is 0"
            )
        bound = _round_down((MAX_DRAW_S - self.mean_s) / _NORMAL_TAIL)
        if self.stddev > bound:
            raise ValueError(
                f"stddev ({self.stddev}) must be at most {bound:g} s with mean "
                f"{self.mean_s:g} s: a draw can be the mean plus {_NORMAL_TAIL:g} stddevs, "
                f"and none may be over {MAX_DRAW_S:g} s"
            )
        return self

    def sample(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        value = rng.normalvariate(self.mean_s, self.stddev)
        return value if value > self.floor else self.floor

    def mean(self) -> float:
        """The expected draw, in seconds (of the clamped distribution)."""
        if self.stddev == 0:
            return max(self.mean_s, self.floor)
        # E[max(X, f)] = f·Φ(a) + mean·(1 - Φ(a)) + stddev·φ(a), a = (f - mean) / stddev.
        a = (self.floor - self.mean_s) / self.stddev
        cdf = _STANDARD_NORMAL.cdf(a)
        return self.floor * cdf + self.mean_s * (1 - cdf) + self.stddev * _STANDARD_NORMAL.pdf(a)

    def __str__(self) -> str:
        text = f"normal(mean={format_seconds(self.mean_s)}, stddev={format_seconds(self.stddev)}"
        if self.floor:
            text += f", floor={format_seconds(self.floor)}"
        return text + ")"


class Empirical(_Distribution):
    """One of ``samples`` seconds, each equally likely (replay measured latencies)."""

    kind: Literal["empirical"] = "empirical"
    # A tuple (a list is read into one): a latency is shared by every profile, and so
    # every cluster, that holds it, and a list would be editable in place under them.
    samples: tuple[Annotated[_Drawn, Field(ge=0)], ...] = Field(min_length=1)

    def sample(self, rng: random.Random) -> float:
        """One draw, in seconds."""
        return rng.choice(self.samples)

    def mean(self) -> float:
        """The expected draw, in seconds."""
        return math.fsum(self.samples) / len(self.samples)

    def __str__(self) -> str:
        return f"empirical({', '.join(format_seconds(s) for s in self.samples)})"


_THREE_DIGITS_DOWN: Final = Context(prec=3, rounding=ROUND_FLOOR)


def _round_down(bound: float) -> float:
    """``bound`` cut to 3 significant digits, so that the bound a message shows is the one
    checked, and a value written as shown is accepted."""
    return float(_THREE_DIGITS_DOWN.plus(Decimal(bound)))


Latency: TypeAlias = Annotated[
    Fixed | Uniform | Exponential | LogNormal | Normal | Empirical,
    Field(discriminator="kind"),
]
"""Any latency distribution; the ``kind`` field tells which."""

_ADAPTER: TypeAdapter[Latency] = TypeAdapter(Latency)
_MODELS = (Fixed, Uniform, Exponential, LogNormal, Normal, Empirical)

# Function name in the string form → (kind, positional parameter names).
_FORMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fixed": ("fixed", ("value",)),
    "uniform": ("uniform", ("low", "high")),
    "exp": ("exponential", ("mean",)),
    "exponential": ("exponential", ("mean",)),
    "lognormal": ("lognormal", ("median", "p99", "cap")),
    "normal": ("normal", ("mean", "stddev", "floor")),
    "empirical": ("empirical", ()),
}
_KIND_ALIASES = {name: kind for name, (kind, _) in _FORMS.items()}
_CALL = re.compile(r"^\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.DOTALL)
_SYNTAX = (
    "expected a duration ('100ms'), seconds (0.1), or one of fixed(1s), uniform(100ms, 500ms), "
    "exp(2s), lognormal(median=200ms, p99=2s), normal(mean=1s, stddev=200ms), "
    "empirical(10ms, 20ms)"
)


def parse_latency(value: Any) -> Latency:
    """A latency from a model, a mapping with ``kind``, a number of seconds, or a string.

    Strings are a duration (``"100ms"``, a fixed latency) or a call such as
    ``"uniform(100ms, 500ms)"``, ``"exp(2s)"`` or
    ``"lognormal(median=200ms, p99=2s)"``. Raise :class:`ValueError` naming
    the problem.
    """
    if isinstance(value, _MODELS):
        return value
    if isinstance(value, bool):
        raise ValueError(f"invalid latency, {kind_and_value(value)}: {_SYNTAX}")
    if isinstance(value, int | float):
        return _validate({"kind": "fixed", "value": value}, value)
    if isinstance(value, str):
        return _parse_text(value)
    if isinstance(value, Mapping):
        data = dict(value)
        if "kind" not in data:
            raise ValueError(
                f"invalid latency {brief(value)}: missing 'kind' "
                f"(one of {', '.join(sorted(set(_KIND_ALIASES.values())))})"
            )
        kind = data["kind"]
        if isinstance(kind, str) and kind in _KIND_ALIASES:
            data["kind"] = _KIND_ALIASES[kind]
        return _validate(data, value)
    raise ValueError(f"invalid latency, {kind_and_value(value)}: {_SYNTAX}")


def _parse_text(text: str) -> Latency:
    match = _CALL.match(text)
    if match is None:
        try:
            seconds = parse_seconds(text)
        except ValueError:
            raise ValueError(f"invalid latency {brief(text)}: {_SYNTAX}") from None
        return _validate({"kind": "fixed", "value": seconds}, text)
    name = match.group(1).lower()
    if name not in _FORMS:
        raise ValueError(
            f"invalid latency {brief(text)}: unknown distribution {match.group(1)!r}, "
            f"expected one of {', '.join(_FORMS)}"
        )
    kind, positional = _FORMS[name]
    body = match.group(2).strip()
    args = [a.strip() for a in body.split(",")] if body else []
    data: dict[str, Any] = {"kind": kind}
    samples: list[float] = []
    for index, arg in enumerate(args):
        key, sep, raw = arg.partition("=")
        if not sep:
            key, raw = "", arg
        key = key.strip()
        if sep and not key:
            # A typo, not a positional argument: which parameter was meant is unknown.
            raise ValueError(
                f"invalid latency {brief(text)}: argument {brief(arg)}: missing parameter name"
            )
        try:
            seconds = parse_seconds(raw)
        except ValueError as exc:
            raise ValueError(
                f"invalid latency {brief(text)}: argument {brief(arg)}: {exc}"
            ) from None
        if kind == "empirical":
            if key:
                raise ValueError(f"invalid latency {brief(text)}: empirical takes only values")
            samples.append(seconds)
            continue
        if not key:
            if index >= len(positional):
                raise ValueError(
                    f"invalid latency {brief(text)}: {name} takes at most {len(positional)} "
                    f"argument(s): {', '.join(positional)}"
                )
            key = positional[index]
        if key not in positional:
            raise ValueError(
                f"invalid latency {brief(text)}: {name} has no parameter {key!r} "
                f"(parameters: {', '.join(positional)})"
            )
        if key in data:
            raise ValueError(f"invalid latency {brief(text)}: {key!r} given twice")
        data[key] = seconds
    if kind == "empirical":
        data["samples"] = samples
    return _validate(data, text)


def _validate(data: dict[str, Any], original: Any) -> Latency:
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        # Drop the union tag pydantic puts first (``uniform.low`` → ``low``).
        loc = [str(part) for part in error["loc"][1:]]
        where = f"{'.'.join(loc)}: " if loc else ""
        ctx = error.get("ctx") or {}
        if error["type"] == "missing":
            reason = "required"
        elif error["type"] == "extra_forbidden":
            reason = "unknown parameter"
        elif error["type"] == "union_tag_invalid":
            reason = f"unknown kind {ctx['tag']!r}, expected one of {ctx['expected_tags']}"
        elif error["type"] == "too_short":
            reason = "must not be empty"
        elif "error" in ctx:
            reason = str(ctx["error"])
        else:
            reason = error["msg"].replace("Input should be", "must be")
        raise ValueError(f"invalid latency {brief(original)}: {where}{reason}") from None
