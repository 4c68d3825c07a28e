"""Per-batch aggregation of live counters (pure): many events → one compact Redis flush.

A flush covers consecutive records of one partition. Counters are summed here assuming no
duplicates; the Lua script de-dups every event id (SET NX, 8-day TTL) and subtracts the few
duplicates' contributions, all in the same atomic step that advances the offset fence.

What counts (docs/money-rules.md, "Live metrics"): ``views`` = joins; ``clicks``; ``add_to_carts``;
clicks per product; unique viewers = the viewers that sent a view; ``viewers_now`` from each
viewer's last join/heartbeat and last leave (a late, older heartbeat never revives a viewer who left).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from liveledger.storage import redis_keys as K
from schemas.time import to_ms
from schemas.wire import DecodedEvents, WireAddToCartEvent, WireClickEvent


@dataclass(slots=True)
class StreamPart:
    """One stream's share of a flush."""

    inc: Counter[str] = field(default_factory=Counter)
    product_clicks: Counter[str] = field(default_factory=Counter)
    viewers: set[str] = field(default_factory=set)
    presence: dict[str, list[int]] = field(default_factory=dict)  # viewer -> [last join/heartbeat ms, last leave ms]
    max_ts: int = 0


@dataclass(slots=True)
class LiveBatch:
    """Accumulates one partition's events until flushed."""

    prefix: str
    consumer: str
    topic: str
    partition: int
    first_offset: int = -1
    last_offset: int = -1
    valid: int = 0
    streams: dict[str, StreamPart] = field(default_factory=dict)
    # [dedup key, stream id ("" none), counter field ("" none), product ("" none)]
    ev: list[tuple[str, str, str, str]] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return self.valid

    def add_offset(self, offset: int) -> None:
        if self.first_offset < 0:
            self.first_offset = offset
        self.last_offset = offset

    def _part(self, stream_id: str) -> StreamPart:
        part = self.streams.get(stream_id)
        if part is None:
            part = self.streams[stream_id] = StreamPart()
        return part

    def add_events(self, batch: DecodedEvents) -> None:
        p, brand = self.prefix, batch.brand_id
        for e in batch.events:
            self.valid += 1
            dedup = K.dedup(p, brand, e.event_id)
            if isinstance(e, WireClickEvent):
                s = e.stream_id
                if s is None:
                    self.ev.append((dedup, "", "", ""))
                    continue
                part = self._part(s)
                part.inc["clicks"] += 1
                product = e.product_id or ""
                if product:
                    part.product_clicks[product] += 1
                self.ev.append((dedup, s, "clicks", product))
            elif isinstance(e, WireAddToCartEvent):
                self._part(e.stream_id).inc["add_to_carts"] += 1
                self.ev.append((dedup, e.stream_id, "add_to_carts", ""))
            else:
                part = self._part(e.stream_id)
                counter = ""
                if e.action == "join":
                    counter = "views"
                    part.inc["views"] += 1
                part.viewers.add(e.viewer_id)
                slot = part.presence.setdefault(e.viewer_id, [0, 0])
                i = 1 if e.action == "leave" else 0
                ms = to_ms(e.occurred_at)
                if ms > slot[i]:
                    slot[i] = ms
                if ms > part.max_ts:
                    part.max_ts = ms
                self.ev.append((dedup, e.stream_id, counter, ""))

    def count(self, stat: str, n: int = 1) -> None:
        self.stats[stat] += n

    def stream_ids(self) -> set[str]:
        return set(self.streams)

    def to_script_arg(self, now_ms: int) -> dict[str, Any]:
        """The JSON argument of :data:`liveledger.storage.lua.LIVE_FLUSH` (key names included)."""
        p = self.prefix
        order = sorted(self.streams)
        position = {s: i + 1 for i, s in enumerate(order)}
        streams = []
        for s in order:
            part = self.streams[s]
            streams.append({
                "k": {"c": K.stream_counts(p, s), "p": K.stream_products(p, s), "v": K.stream_viewers(p, s),
                      "n": K.stream_now(p, s), "l": K.stream_left(p, s)},
                "inc": dict(part.inc), "pc": dict(part.product_clicks), "uv": sorted(part.viewers),
                "vw": [[v, t[0], t[1]] for v, t in part.presence.items()], "ts": part.max_ts,
            })
        return {
            "off": K.offsets(p, self.consumer),
            "stats": K.stats(p),
            "tp": f"{self.topic}:{self.partition}",
            "first": self.first_offset,
            "last": self.last_offset,
            "ttl": K.DEDUP_TTL_S,
            "valid": self.valid,
            "ev": [[d, position[s] if s else 0, c, pr] for d, s, c, pr in self.ev],
            "streams": streams,
            "now": now_ms,
            "st": dict(self.stats),
        }
