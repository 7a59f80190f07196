"""The base of every Kubernetes-shaped model: camelCase on the wire, strict fields."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Self, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

from pytest_kruise_agents.api.copying import deep_copy, shallow_copy
from pytest_kruise_agents.api.durations import format_duration, parse_duration
from pytest_kruise_agents.rfc3339 import parse_rfc3339

__all__ = [
    "MANIFEST",
    "Duration",
    "KubeModel",
    "Time",
    "enum_from_text",
    "format_time",
    "from_manifest",
    "parse_time",
]

MANIFEST: Final[dict[str, bool]] = {"manifest": True}
"""The validation context of a decoded manifest (``model_validate(..., context=MANIFEST)``).

Manifests are decoded as the API server decodes JSON: no value changes kind
(``"3"`` is no integer, ``1`` no boolean, ``30`` no duration) and a ``null``
field is an unset one. Python callers, without this context, keep the
conveniences (a number of seconds for a duration).
"""


def from_manifest(info: ValidationInfo) -> bool:
    """Whether the value being validated comes from a manifest (see :data:`MANIFEST`)."""
    return info.context is MANIFEST


class KubeModel(BaseModel):
    """Pydantic base for Kubernetes objects: camelCase aliases, unknown fields rejected.

    Unknown fields are rejected (as ``kubectl apply`` does with strict field
    validation) so that a typo answers with the field's name instead of being
    silently pruned.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_default=False,
        ser_json_timedelta="iso8601",
        # A NaN or an infinity set by attribute (never validated) stays a float in the
        # JSON dump, for the strict load to name its field: pydantic's default writes
        # it as null, which a manifest reads as unset (``replicas`` back to 1).
        ser_json_inf_nan="strings",
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any, info: ValidationInfo) -> Any:
        # The API server prunes a null field before defaulting it: Helm's
        # ``labels:`` with nothing after it means "no labels", not an error.
        if info.context is MANIFEST and isinstance(data, dict) and None in data.values():
            return {key: value for key, value in data.items() if value is not None}
        return data

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """Copy the model with the fast copies of :mod:`.copying`, then apply ``update``.

        As pydantic's own ``model_copy``: ``update`` values are neither
        validated nor copied, and they count as explicitly set fields.
        """
        if update:
            # extra="forbid": every key must be a field, as pydantic would store it.
            # (The class's field table itself: ``model_fields`` is a property that
            # costs three calls on a path every write of the simulator takes.)
            fields = type(self).__pydantic_fields__
            for name in update:
                if name not in fields:
                    raise ValueError(f"{type(self).__name__} has no field {name!r}")
        if not deep:
            return shallow_copy(self, update)
        new = deep_copy(self)
        if update:
            new.__dict__.update(update)
            new.__pydantic_fields_set__.update(update)
        return new

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a user would ``kubectl apply`` (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_time(value: Any) -> datetime:
    """A time as an aware UTC datetime, read leniently from text (or taken from a datetime).

    Lenient on purpose, for Python callers (a model's time fields outside a
    manifest) and the E2B list's ``startedAfter``: it reads every RFC 3339
    §5.6 ``date-time`` (``T`` and ``Z`` in either case), and besides what
    :meth:`datetime.fromisoformat` reads: a bare date (midnight), a space or
    another one-character separator for the ``T``, a time without seconds or
    minutes, an offset without its colon, basic (``20260102T030405Z``) and
    week (``2026-W01-5``) forms; more than 6 fraction digits are cut to 6.
    A time without an offset is taken as UTC. Surrounding blanks are ignored.
    Manifests are read strictly (:func:`pytest_kruise_agents.rfc3339.parse_rfc3339`,
    as ``metav1.Time`` reads them). Anything else raises :class:`ValueError`.
    """
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            # RFC 3339 §5.6 allows a lower-case "z"; fromisoformat takes only "Z".
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"invalid RFC 3339 time {value!r}") from exc
    else:
        raise ValueError(f"invalid time {value!r}: expected an RFC 3339 string")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _to_utc(dt)


_EARLIEST: Final = datetime.min.replace(tzinfo=UTC)
_LATEST: Final = datetime.max.replace(microsecond=0, tzinfo=UTC)


def _to_utc(dt: datetime) -> datetime:
    """``dt`` in UTC, clamped to the years 1 to 9999 that a ``datetime`` holds.

    Go's ``time.Time`` reaches further: ``9999-12-31T23:59:59-01:00`` is a
    valid ``metav1.Time`` whose UTC instant is in the year 10000. Such a time
    becomes the nearest one a ``datetime`` holds, as every deadline the model
    computes is clamped (``claiming.timeouts.LATEST``); the clock cannot get
    near either end.
    """
    try:
        return dt.astimezone(UTC)
    except OverflowError:
        offset = dt.utcoffset()
        # Only a time within a day of either end overflows: east of UTC near
        # year 1 it falls before it, west of UTC near 9999 it falls after.
        return _EARLIEST if offset is not None and offset > timedelta(0) else _LATEST


def _parse_time_field(value: Any, info: ValidationInfo) -> datetime:
    if isinstance(value, str) and from_manifest(info):
        # metav1.Time reads exactly time.RFC3339: no bare date, no space for the
        # "T", no missing offset (Python callers keep fromisoformat's leniency).
        try:
            parsed = parse_rfc3339(value, go=True)
        except ValueError as exc:
            raise ValueError(f"invalid RFC 3339 time {value!r}: {exc}") from None
        return _to_utc(parsed)
    return parse_time(value)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix, whole seconds unless there is a fraction."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # as parse_time reads a time without an offset
    # isoformat, not strftime: glibc's %Y writes year 1 as "1", which no parser reads back.
    value = _to_utc(value).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds") + "Z"


def _parse_duration_field(value: Any, info: ValidationInfo) -> timedelta:
    if isinstance(value, timedelta) and not from_manifest(info):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and not from_manifest(info):
        # A bare number is taken as seconds: convenient from Python. The API
        # server refuses one in a manifest, and so does the manifest loader.
        return timedelta(seconds=value)
    return parse_duration(value)


_E = TypeVar("_E", bound=StrEnum)


def enum_from_text(enum: type[_E]) -> Callable[[Any], Any]:
    """A before-validator turning the text of a :class:`StrEnum` member into the member.

    Strict (manifest) validation accepts only members; a manifest has text.
    """
    allowed = " or ".join(repr(member.value) for member in enum)

    def convert(value: Any) -> Any:
        if isinstance(value, str) and not isinstance(value, enum):
            try:
                return enum(value)
            except ValueError:
                raise ValueError(f"unsupported value {value!r}: must be {allowed}") from None
        return value

    return convert


def _format_time_field(value: Any) -> Any:
    # A field set by attribute is not validated: anything but a datetime is
    # written as it is, for the strict load of the dump to name the field.
    return format_time(value) if isinstance(value, datetime) else value


Time = Annotated[
    datetime,
    BeforeValidator(_parse_time_field),
    PlainSerializer(_format_time_field, return_type=str, when_used="json"),
]
"""An RFC 3339 timestamp field (``metav1.Time``)."""


def _format_duration_field(value: Any) -> Any:
    # A field set by attribute is not validated: from Python a bare number is
    # seconds (as when validated), and anything else is written as it is for
    # the strict load of the dump to name the field.
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return format_duration(timedelta(seconds=value))
        except (OverflowError, ValueError):
            return value
    return value


Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration_field),
    PlainSerializer(_format_duration_field, return_type=str, when_used="json"),
]
"""A Go duration field (``metav1.Duration``), e.g. ``"1m"``."""
