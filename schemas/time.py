"""Times: RFC 3339 with an explicit offset, normalised to UTC at millisecond precision.

``occurred_at`` fields also pass the acceptance window (at most 5 minutes in the future, at most
400 days in the past). The reference clock comes from the pydantic validation context
``{"now": <aware datetime>}`` so that tests and replays are deterministic; without one the wall
clock is used.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, Field, PlainSerializer, PlainValidator, ValidationInfo, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_FUTURE",
    "MAX_PAST",
    "OccurredAt",
    "UtcDatetime",
    "WireDatetime",
    "check_window",
    "format_ms",
    "format_rfc3339",
    "from_ms",
    "now_from_context",
    "parse_rfc3339",
    "to_ms",
    "utc_day",
    "utcnow",
    "window_problem",
]

MAX_FUTURE: Final = timedelta(minutes=5)
MAX_PAST: Final = timedelta(days=400)

_RFC3339_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_NOT_RFC3339: Final = (
    "must be an RFC 3339 date-time with an offset, e.g. 2026-11-25T20:00:00.123Z or +01:00"
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _truncate_ms(dt: datetime) -> datetime:
    return dt.replace(microsecond=dt.microsecond - dt.microsecond % 1000)


def parse_rfc3339(s: str) -> datetime:
    """``"2026-11-25T21:00:00.1234+01:00"`` → ``datetime(2026,11,25,20,0,0,123000, UTC)``.

    Raises ``ValueError`` for naive times, date-only or basic-format ISO 8601, leap seconds,
    out-of-range fields, or anything that is not RFC 3339.
    """
    if not isinstance(s, str) or len(s) > 40 or _RFC3339_RE.fullmatch(s) is None:
        raise ValueError(_NOT_RFC3339)
    if s[-1] == "Z" and (len(s) == 24 or len(s) == 20) and s[10] == "T":
        # fast path for the canonical forms "...:00.123Z" / "...:00Z" (already UTC, <= ms)
        try:
            return datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(_NOT_RFC3339 + " (a field is out of range)") from None
    text = s.replace("t", "T").replace("z", "Z")
    if "." in text:  # fromisoformat takes at most 6 fractional digits: cut to milliseconds first
        head, _, rest = text.partition(".")
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        text = head + "." + rest[:i][:3].ljust(3, "0") + rest[i:]
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(_NOT_RFC3339 + " (a field is out of range)") from None
    try:
        return dt.astimezone(UTC) if dt.utcoffset() else dt.replace(tzinfo=UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is after year 9999 in UTC
        raise ValueError(_NOT_RFC3339 + " (outside the years 1-9999 in UTC)") from None


def format_rfc3339(dt: datetime) -> str:
    """Aware datetime → ``"2026-11-25T20:00:00.123Z"`` (UTC, milliseconds, ``Z``)."""
    offset = dt.utcoffset()
    if offset is None:
        raise ValueError("naive datetime: an offset is required")
    u = dt if not offset else dt.astimezone(UTC)
    # isoformat is C code: ~0.3 µs against ~3 µs for field-by-field formatting (hot path)
    return u.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)


def to_ms(dt: datetime) -> int:
    """Aware datetime → integer epoch milliseconds, exactly (no float rounding)."""
    return (dt - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    """Epoch milliseconds → aware UTC datetime."""
    return _EPOCH + timedelta(milliseconds=ms)


def utc_day(dt: datetime) -> str:
    """The UTC calendar day of an aware datetime, ``YYYY-MM-DD``."""
    offset = dt.utcoffset()
    return (dt if not offset else dt.astimezone(UTC)).date().isoformat()


def format_ms(ms: int) -> str:
    """Epoch milliseconds → ``"2026-11-25T20:00:00.123Z"`` (:func:`format_rfc3339`)."""
    return format_rfc3339(from_ms(ms))


def _to_utc(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            return parse_rfc3339(value)
        except ValueError as exc:
            raise PydanticCustomError("rfc3339", "{reason}", {"reason": str(exc)}) from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PydanticCustomError("rfc3339", "naive date-time: an offset is required")
        try:
            return _truncate_ms(value.astimezone(UTC))
        except OverflowError:
            raise PydanticCustomError("rfc3339", "outside the years 1-9999 in UTC") from None
    raise PydanticCustomError("rfc3339", "{reason}", {"reason": _NOT_RFC3339})


def now_from_context(info: ValidationInfo | None) -> datetime:
    """The reference clock: ``context["now"]`` when given (aware), else the wall clock."""
    ctx = info.context if info is not None else None
    if isinstance(ctx, dict):
        now = ctx.get("now")
        if isinstance(now, datetime):
            if now.tzinfo is None:
                raise TypeError("validation context 'now' must be timezone-aware")
            return now
    return utcnow()


def window_problem(dt: datetime, now: datetime) -> str | None:
    """``None`` when ``dt`` is inside the acceptance window around ``now``, else the reason."""
    if dt > now + MAX_FUTURE:
        return "more than 5 minutes in the future"
    if dt < now - MAX_PAST:
        return "more than 400 days in the past"
    return None


def check_window(dt: datetime, info: ValidationInfo) -> datetime:
    """Pydantic after-validator applying :func:`window_problem` with the context clock."""
    problem = window_problem(dt, now_from_context(info))
    if problem is not None:
        raise PydanticCustomError("time_window", problem)
    return dt


def _to_utc_in_window(value: Any, info: ValidationInfo) -> datetime:
    return check_window(_to_utc(value), info)


_SERIALIZE: Final = PlainSerializer(format_rfc3339, return_type=str, when_used="json")
_SCHEMA: Final = WithJsonSchema({"type": "string", "format": "date-time"})

UtcDatetime = Annotated[datetime, PlainValidator(_to_utc), _SERIALIZE, _SCHEMA]
"""RFC 3339 with offset (or an aware datetime) -> UTC, ms precision; JSON: ``...123Z``."""

OccurredAt = Annotated[datetime, PlainValidator(_to_utc_in_window), _SERIALIZE, _SCHEMA]

WireDatetime = Annotated[AwareDatetime, Field(strict=False), _SERIALIZE, _SCHEMA]
"""The time fields of Kafka records: parsed by pydantic-core (no Python call per event: the
decode path of every event) and required to carry an offset; kept at the precision and offset the
producer wrote (our producers write UTC with milliseconds). Not strict, so a Python ``str`` is
parsed as well as a JSON one (the ledger validates clicks from already-parsed JSON). Compare and convert with
:func:`to_ms` / :func:`format_rfc3339`, which are exact for any offset."""
""":data:`UtcDatetime` that must also lie in [now - 400 days, now + 5 minutes]."""
