"""Per-batch aggregation of live counters (pure): many events → one compact Redis flush.

A flush covers consecutive records of one partition. Counters are summed here assuming no
duplicates; the Lua script de-dups every event id (SET NX, 8-day TTL) and subtracts the few
duplicates' contributions, all in the same atomic step that advances the offset fence.

What counts (docs/money-rules.md, "Live metrics"): ``views`` = joins; ``clicks``; ``add_to_carts``;
clicks per product; unique viewers = the viewers that sent a view; ``viewers_now`` from each
viewer's last join/heartbeat and last leave (a late, older heartbeat never revives a viewer who left);
and per creator (contract "Per-creator conversion, live") the counted clicks on the creator's links
and in the creator's streams, in total and per stream, campaign and link.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from liveledger.storage import redis_keys as K
from schemas.time import to_ms, utc_day
from schemas.wire import DecodedEvents, WireAddToCartEvent, WireClickEvent

Increment = tuple[str, str]  # (key, hash field), +1 per event


@dataclass(slots=True)
class StreamPart:
    """One stream's presence share of a flush (the counters are plain increments)."""

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
    inc: Counter[Increment] = field(default_factory=Counter)
    # what one event adds (an event's "group", shared by the many events that add the same) and,
    # per event, [dedup key, group position (1-based, 0: nothing)]: a duplicate subtracts its group
    groups: dict[tuple[Increment, ...], int] = field(default_factory=dict)
    ev: list[tuple[str, int]] = field(default_factory=list)
    creators: set[tuple[str, str]] = field(default_factory=set)  # (brand, creator) with counted clicks
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

    def _count(self, dedup: str, adds: tuple[Increment, ...]) -> None:
        group = 0
        if adds:
            self.inc.update(adds)
            group = self.groups.setdefault(adds, len(self.groups) + 1)
        self.ev.append((dedup, group))

    def _click(self, brand: str, e: WireClickEvent) -> tuple[Increment, ...]:
        p, q = self.prefix, self.partition
        adds: list[Increment] = []
        s = e.stream_id
        if s is not None:
            counts = K.stream_counts(p, q, s)
            adds.append((counts, "clicks"))
            if e.product_id:
                adds.append((K.stream_products(p, q, s), f"clicks|{e.product_id}"))
        if e.creator_id:
            conv = K.creator_conversion(p, q, brand, e.creator_id)
            self.creators.add((brand, e.creator_id))
            adds.append((conv, "clicks"))
            adds.append((conv, f"day|{utc_day(e.occurred_at)}|clicks"))
            if s is not None:
                adds.append((conv, f"stream|{s}|clicks"))
            if e.campaign_id:
                adds.append((conv, f"campaign|{e.campaign_id}|clicks"))
            if e.link_code:
                adds.append((conv, f"link|{e.link_code}|clicks"))
        return tuple(adds)

    def add_events(self, batch: DecodedEvents) -> None:
        p, q, brand = self.prefix, self.partition, batch.brand_id
        for e in batch.events:
            self.valid += 1
            dedup = K.dedup(p, q, brand, e.event_id)
            if isinstance(e, WireClickEvent):
                if e.stream_id is not None:
                    self._part(e.stream_id)
                self._count(dedup, self._click(brand, e))
            elif isinstance(e, WireAddToCartEvent):
                self._part(e.stream_id)
                self._count(dedup, ((K.stream_counts(p, q, e.stream_id), "add_to_carts"),))
            else:
                part = self._part(e.stream_id)
                part.viewers.add(e.viewer_id)
                slot = part.presence.setdefault(e.viewer_id, [0, 0])
                ms = to_ms(e.occurred_at)
                i = 1 if e.action == "leave" else 0
                if ms > slot[i]:
                    slot[i] = ms
                if ms > part.max_ts:
                    part.max_ts = ms
                self._count(dedup, ((K.stream_counts(p, q, e.stream_id), "views"),) if e.action == "join" else ())

    def count(self, stat: str, n: int = 1) -> None:
        self.stats[stat] += n

    def stream_ids(self) -> set[str]:
        return set(self.streams)

    def to_script_arg(self, now_ms: int, *, jump: bool = False) -> dict[str, Any]:
        """The JSON argument of :data:`liveledger.storage.lua.LIVE_FLUSH` (key names included; all
        in the partition's hash slot, ``off`` first: the key the call is routed and declared by)."""
        p, q = self.prefix, self.partition
        streams = []
        for s in sorted(self.streams):
            part = self.streams[s]
            streams.append({
                "k": {"c": K.stream_counts(p, q, s), "v": K.stream_viewers(p, q, s), "n": K.stream_now(p, q, s),
                      "l": K.stream_left(p, q, s)},
                "uv": sorted(part.viewers), "vw": [[v, t[0], t[1]] for v, t in part.presence.items()],
                "ts": part.max_ts,
            })
        return {
            "off": K.offsets(p, q, self.consumer),
            "stats": K.stats(p, q),
            "tp": f"{self.topic}:{self.partition}",
            "first": self.first_offset,
            "last": self.last_offset,
            "jump": jump,
            "ttl": K.DEDUP_TTL_S,
            "valid": self.valid,
            "inc": [[k, f, n] for (k, f), n in sorted(self.inc.items())],
            "groups": list(self.groups),  # tuples serialise as JSON arrays
            "ev": self.ev,
            "streams": streams,
            "creators": [[K.brand_creators(p, q, b), c, K.creator_conversion(p, q, b, c)]
                         for b, c in sorted(self.creators)],
            "now": now_ms,
            "st": dict(self.stats),
        }
