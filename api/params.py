"""The one range check of every time the API takes from a caller (docs/api.md "Limits": dates).

Query strings (``from``, ``to``, ``as_of``, CSV ``occurred_at``) go through :func:`parse_instant`;
typed fields use :data:`ApiDate` (a date in a body, e.g. ``period_end``) or :data:`EpochMs` (the
series ``since``). All of them accept times from :data:`EARLIEST` to :data:`LATEST` (dates
2000-01-01 .. 2099-12-31): inside what ClickHouse ``DateTime`` holds (1970..2106) and what Python's
``datetime`` converts without overflow, so a year 1 or 9999 is a ``422`` naming the field, never a
``500`` from the database or an overflowing offset.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator

from liveledger.errors import invalid

__all__ = ["EARLIEST", "LATEST", "ApiDate", "EpochMs", "in_range", "parse_instant", "parse_window"]

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)  # inclusive: `to=2100-01-01` ends the last day
_RANGE = "between 2000-01-01 and 2100-01-01 (UTC)"
EARLIEST_MS = int(EARLIEST.timestamp() * 1000)
LATEST_MS = int(LATEST.timestamp() * 1000)


def in_range(dt: datetime) -> bool:
    """Whether an aware datetime lies in the accepted range."""
    return EARLIEST <= dt <= LATEST


def parse_instant(value: str | None, field: str) -> datetime | None:
    """RFC 3339 with an offset, or a bare date ``YYYY-MM-DD`` (00:00 UTC), in the accepted range;
    empty is ``None``. Anything else is ``422`` with ``field`` in the details."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            dt: datetime | None = datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        else:
            dt = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        dt = None
    if dt is None or dt.utcoffset() is None:
        raise invalid(f"{field} must be an RFC 3339 time with an offset or a date", field,
                      "expected e.g. 2026-11-25T20:00:00Z or 2026-11-25")
    try:
        dt = dt.astimezone(UTC)
    except OverflowError:  # year 1 with +01:00, year 9999 with -05:00
        dt = None
    if dt is None or not in_range(dt):
        raise invalid(f"{field} must be {_RANGE}", field, f"must be {_RANGE}")
    return dt


def parse_window(from_: str | None, to: str | None) -> tuple[datetime | None, datetime | None]:
    """The ``from``/``to`` query parameters (:func:`parse_instant`); ``from`` must be before ``to``."""
    since, until = parse_instant(from_, "from"), parse_instant(to, "to")
    if since is not None and until is not None and since >= until:
        raise invalid("from must be before to", "from", "must be before to")
    return since, until


def _date_in_range(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError("must be between 2000-01-01 and 2099-12-31")
    return value


def _epoch_ms_in_range(value: int) -> int:
    if value != 0 and not EARLIEST_MS <= value <= LATEST_MS:
        raise ValueError(f"must be 0 (the default) or epoch milliseconds {_RANGE}")
    return value


ApiDate = Annotated[date, AfterValidator(_date_in_range)]
"""A calendar date from a caller (body or query), 2000-01-01 .. 2099-12-31; else ``422``."""

EpochMs = Annotated[int, AfterValidator(_epoch_ms_in_range)]
"""Epoch milliseconds from a caller: 0 (meaning "the default") or inside the accepted range."""
