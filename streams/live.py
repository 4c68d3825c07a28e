"""Per-batch aggregation of live counters (pure): many events → one compact Redis flush.

A flush covers consecutive records of one partition. Counters are summed here assuming no
duplicates; the Lua script de-dups every event id (SET NX, 8-day TTL) and subtracts the few
duplicates' contributions, all in the same atomic step that advances the offset fence.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from streams.keys import DEDUP_TTL_S
from streams.records import Event

_COUNTER_FIELD = {"click": "clicks", "add_to_cart": "add_to_carts"}


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
    ev: list[list[str]] = field(default_factory=list)
    inc: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    product_clicks: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    viewers: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # stream -> viewer -> [last join/heartbeat ms, last leave ms]
    presence: defaultdict[str, dict[str, list[int]]] = field(default_factory=lambda: defaultdict(dict))
    max_ts: dict[str, int] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)

    def __len__(self) -> int:
        return self.valid

    def add_offset(self, offset: int) -> None:
        if self.first_offset < 0:
            self.first_offset = offset
        self.last_offset = offset

    def add_events(self, events: list[Event]) -> None:
        for e in events:
            self.add(e)

    def add(self, e: Event) -> None:
        self.valid += 1
        s = e.stream_id
        counter = ""
        product = ""
        if s is not None:
            if e.type == "view":
                if e.action == "join":
                    counter = "views"
                if e.viewer_id is not None:
                    self.viewers[s].add(e.viewer_id)
                    slot = self.presence[s].setdefault(e.viewer_id, [0, 0])
                    i = 1 if e.action == "leave" else 0
                    if e.occurred_ms > slot[i]:
                        slot[i] = e.occurred_ms
                if e.occurred_ms > self.max_ts.get(s, 0):
                    self.max_ts[s] = e.occurred_ms
            else:
                counter = _COUNTER_FIELD[e.type]
                if e.type == "click" and e.product_id is not None:
                    product = e.product_id
                    self.product_clicks[s][product] += 1
            if counter:
                self.inc[s][counter] += 1
        self.ev.append([f"{e.brand_id}:{e.event_id}", s or "", counter, product])

    def count(self, stat: str, n: int = 1) -> None:
        self.stats[stat] += n

    def streams(self) -> set[str]:
        return set(self.inc) | set(self.presence) | set(self.product_clicks)

    def to_script_arg(self, now_ms: int) -> dict[str, Any]:
        """The JSON argument of :data:`streams.lua.LIVE_FLUSH`."""
        return {
            "p": self.prefix,
            "c": self.consumer,
            "tp": f"{self.topic}:{self.partition}",
            "first": self.first_offset,
            "last": self.last_offset,
            "ttl": DEDUP_TTL_S,
            "valid": self.valid,
            "ev": self.ev,
            "inc": {s: dict(c) for s, c in self.inc.items()},
            "pc": {s: dict(c) for s, c in self.product_clicks.items()},
            "uv": {s: sorted(v) for s, v in self.viewers.items()},
            "vw": {s: [[v, t[0], t[1]] for v, t in d.items()] for s, d in self.presence.items()},
            "ts": self.max_ts,
            "streams": sorted(self.streams()),
            "now": now_ms,
            "st": dict(self.stats),
        }

