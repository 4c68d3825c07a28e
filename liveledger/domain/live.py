"""Per-batch aggregation of live-stream events (views, clicks, add-to-carts) into per-stream deltas.

Pure: the agent turns a batch of ``ll.events`` events into :class:`StreamDelta` values and applies
them to Redis in one offset-fenced script. The order of events inside a batch does not matter.

viewers_now (docs/money-rules.md, "Live metrics"): per stream, each viewer's *latest view action*
(join / heartbeat / leave, by ``occurred_at``) is kept as ``(last_seen, present)`` with
``present = action != "leave"``. An update replaces the stored one only if it is newer (at equal
times a leave wins), so a late, older heartbeat never resurrects a viewer who left. ``viewers_now``
counts viewers with ``present`` and ``last_seen >= now - 60 s``. In Redis: a hash/ZSET
``last`` viewer -> last_seen ms (all actions, compared before writing) and a ZSET ``present``
viewer -> last_seen ms (ZREM on leave); ``ZCOUNT present (now-60000) +inf``. Clicks and carts do
not refresh presence (the contract counts view actions).

Counts: ``views`` = joins, ``clicks``, ``add_to_carts``, per-product clicks and carts, and the
viewer ids seen in the batch (any event type) for the unique-viewer set or HyperLogLog.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

from liveledger.domain.attribution import require_utc

__all__ = [
    "PRESENCE_RETENTION",
    "VIEWER_TTL",
    "LiveEvent",
    "LiveEventType",
    "PresenceUpdate",
    "StreamDelta",
    "ViewAction",
    "aggregate_batch",
    "ctr",
    "cvr",
    "expire_presence",
    "merge_presence",
    "parse_utc",
    "peak_viewers",
    "presence_wins",
    "ratio",
    "top_products",
    "viewers_now",
]

VIEWER_TTL = timedelta(seconds=60)
# How long a viewer's last view action (including a leave) is remembered so that late events
# older than it are recognised as stale. Events later than this are rare (ingest rejects
# nothing younger than 400 days, but the live path only matters for minutes).
PRESENCE_RETENTION = timedelta(hours=1)

LiveEventType = Literal["view", "click", "add_to_cart"]
ViewAction = Literal["join", "heartbeat", "leave"]

_ACTION_RANK: dict[str, int] = {"join": 0, "heartbeat": 1, "leave": 2}


def parse_utc(value: str | datetime) -> datetime:
    """An RFC 3339 string (``Z`` or an offset) or aware datetime, as a UTC datetime."""
    dt = datetime.fromisoformat(value) if isinstance(value, str) else value
    if dt.utcoffset() is None:
        raise ValueError(f"time without offset: {value!r}")
    return dt.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    event_id: str
    type: LiveEventType
    stream_id: str | None
    viewer_id: str | None
    occurred_at: datetime
    action: ViewAction | None = None
    product_id: str | None = None

    def __post_init__(self) -> None:
        require_utc(self.occurred_at, "LiveEvent.occurred_at")
        if self.type not in ("view", "click", "add_to_cart"):
            raise ValueError(f"unknown live event type {self.type!r}")
        if self.type == "view" and self.action not in _ACTION_RANK:
            raise ValueError(f"view event needs action join|heartbeat|leave, got {self.action!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LiveEvent:
        """From an event of an ``ll.events`` batch (extra keys are ignored)."""

        def opt(name: str) -> str | None:
            value = data.get(name)
            return None if value is None else str(value)

        occurred = data["occurred_at"]
        if not isinstance(occurred, str | datetime):
            raise ValueError("occurred_at must be a string or datetime")
        return cls(
            event_id=str(data["event_id"]),
            type=cast(LiveEventType, data["type"]),
            stream_id=opt("stream_id"),
            viewer_id=opt("viewer_id"),
            occurred_at=parse_utc(occurred),
            action=cast("ViewAction | None", opt("action")),
            product_id=opt("product_id"),
        )


@dataclass(frozen=True, slots=True)
class PresenceUpdate:
    """A viewer's latest view action: when, and whether it left them present (not a leave)."""

    last_seen: datetime
    present: bool


def presence_wins(new: PresenceUpdate, old: PresenceUpdate | None) -> bool:
    """Whether ``new`` replaces ``old``: strictly newer, or equally new and a leave over a presence."""
    if old is None:
        return True
    if new.last_seen != old.last_seen:
        return new.last_seen > old.last_seen
    return old.present and not new.present


@dataclass(frozen=True, slots=True)
class StreamDelta:
    stream_id: str
    views: int
    clicks: int
    add_to_carts: int
    product_clicks: Mapping[str, int]
    product_carts: Mapping[str, int]
    viewer_ids: frozenset[str]
    presence: Mapping[str, PresenceUpdate]
    first_at: datetime
    last_at: datetime


class _Acc:
    __slots__ = (
        "carts",
        "clicks",
        "first",
        "last",
        "presence",
        "product_carts",
        "product_clicks",
        "viewers",
        "views",
    )

    def __init__(self, at: datetime) -> None:
        self.views = 0
        self.clicks = 0
        self.carts = 0
        self.product_clicks: Counter[str] = Counter()
        self.product_carts: Counter[str] = Counter()
        self.viewers: set[str] = set()
        self.presence: dict[str, PresenceUpdate] = {}
        self.first = at
        self.last = at


def aggregate_batch(events: Iterable[LiveEvent | Mapping[str, object]]) -> dict[str, StreamDelta]:
    """Per-stream deltas of one batch. Events without ``stream_id`` (redirect clicks of links
    with no stream) are skipped. The result does not depend on the order of ``events``."""
    accs: dict[str, _Acc] = {}
    for raw in events:
        ev = raw if isinstance(raw, LiveEvent) else LiveEvent.from_dict(raw)
        if ev.stream_id is None:
            continue
        acc = accs.get(ev.stream_id)
        if acc is None:
            acc = accs[ev.stream_id] = _Acc(ev.occurred_at)
        acc.first = min(acc.first, ev.occurred_at)
        acc.last = max(acc.last, ev.occurred_at)
        if ev.viewer_id is not None:
            acc.viewers.add(ev.viewer_id)
        if ev.type == "view":
            if ev.action == "join":
                acc.views += 1
            if ev.viewer_id is not None:
                update = PresenceUpdate(ev.occurred_at, ev.action != "leave")
                if presence_wins(update, acc.presence.get(ev.viewer_id)):
                    acc.presence[ev.viewer_id] = update
        elif ev.type == "click":
            acc.clicks += 1
            if ev.product_id is not None:
                acc.product_clicks[ev.product_id] += 1
        else:
            acc.carts += 1
            if ev.product_id is not None:
                acc.product_carts[ev.product_id] += 1
    return {
        sid: StreamDelta(
            stream_id=sid,
            views=a.views,
            clicks=a.clicks,
            add_to_carts=a.carts,
            product_clicks=dict(a.product_clicks),
            product_carts=dict(a.product_carts),
            viewer_ids=frozenset(a.viewers),
            presence=dict(a.presence),
            first_at=a.first,
            last_at=a.last,
        )
        for sid, a in sorted(accs.items())
    }


def merge_presence(
    current: Mapping[str, PresenceUpdate], updates: Mapping[str, PresenceUpdate]
) -> dict[str, PresenceUpdate]:
    """The stored presence after applying a batch's updates (what the Redis script does)."""
    out = dict(current)
    for viewer, update in updates.items():
        if presence_wins(update, out.get(viewer)):
            out[viewer] = update
    return out


def viewers_now(presence: Mapping[str, PresenceUpdate], now: datetime, ttl: timedelta = VIEWER_TTL) -> int:
    """Viewers whose latest view action is not a leave and happened at or after ``now - ttl``."""
    require_utc(now, "now")
    since = now - ttl
    return sum(1 for p in presence.values() if p.present and p.last_seen >= since)


def expire_presence(
    presence: Mapping[str, PresenceUpdate], now: datetime, retention: timedelta = PRESENCE_RETENTION
) -> dict[str, PresenceUpdate]:
    """Forget viewers whose last view action is older than ``now - retention``."""
    require_utc(now, "now")
    since = now - retention
    return {v: p for v, p in presence.items() if p.last_seen >= since}


def peak_viewers(current_peak: int, presence: Mapping[str, PresenceUpdate], at: datetime) -> int:
    """Peak after a batch: max of the old peak and viewers_now at ``at`` (use the batch's
    ``last_at``, event time, so a replay computes the same peak)."""
    return max(current_peak, viewers_now(presence, at))


def ratio(numerator: int, denominator: int, digits: int = 4) -> float:
    """``numerator / denominator`` rounded to ``digits``; 0.0 when the denominator is 0."""
    if denominator <= 0:
        return 0.0
    return round(numerator / denominator, digits)


def ctr(clicks: int, views: int) -> float:
    """Click-through rate = clicks / views (a ratio, not money)."""
    return ratio(clicks, views)


def cvr(orders: int, clicks: int) -> float:
    """Conversion rate = orders / clicks."""
    return ratio(orders, clicks)


def top_products(
    product_clicks: Mapping[str, int], product_orders: Mapping[str, int], limit: int = 10
) -> list[tuple[str, int, int]]:
    """``(product_id, clicks, orders)`` by clicks desc, then orders desc, then id."""
    ids = set(product_clicks) | set(product_orders)
    rows = [(pid, product_clicks.get(pid, 0), product_orders.get(pid, 0)) for pid in ids]
    rows.sort(key=lambda r: (-r[1], -r[2], r[0]))
    return rows[:limit]
