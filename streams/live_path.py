"""The high-volume path: the live agent's work on one batch of ``ll.events`` records.

The Faust agent (:mod:`streams.app`) hands over what ``stream.take_events`` buffered; per
partition, the :class:`~streams.gate.OffsetGate` admits only the records that follow the Redis fence,
they fold into one :class:`~streams.live.LiveBatch` and one Lua call
(:data:`liveledger.storage.lua.LIVE_FLUSH`) de-dups every event id, applies the counters and advances
the fence atomically -- refusing a replay and a gap alike. Bad records and events go to the
dead-letter topic (durably) before the fence moves past them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from liveledger import metrics
from schemas.errors import InvalidRecord
from schemas.wire import DeadLetter, Headers, decode_events_record
from streams.gate import OffsetGate
from streams.live import LiveBatch
from streams.redis_state import LiveStore, Notifier, now_ms

log = logging.getLogger(__name__)

CONSUMER = "live"
_FLUSH_SIZE = metrics.FLUSH_SIZE.labels(CONSUMER)
_FLUSH_SECONDS = metrics.FLUSH_DURATION.labels(CONSUMER)
SendFn = Callable[[str, bytes | None, bytes | None, Headers], Awaitable[Awaitable[Any]]]


def by_partition(records: Iterable[Any]) -> dict[Any, list[Any]]:
    """Records grouped by topic-partition (``rec.tp``), each list in delivery order."""
    out: dict[Any, list[Any]] = defaultdict(list)
    for rec in records:
        out[rec.tp].append(rec)
    return out


class LivePath:
    def __init__(self, store: LiveStore, notifier: Notifier, send: SendFn, gate: OffsetGate, dlq_topic: str) -> None:
        self.store = store
        self.notifier = notifier
        self.send = send
        self.gate = gate
        self.dlq_topic = dlq_topic
        self.fences: dict[Any, int] = {}  # tp -> last offset applied (-1: none), as last seen in Redis
        self._lock = asyncio.Lock()
        self._events = 0
        self._flushes = 0
        self._last_log = time.monotonic()

    async def fence(self, tp: Any) -> int:
        if tp not in self.fences:
            stored = await self.store.fence(CONSUMER, tp.topic, tp.partition)
            self.fences[tp] = -1 if stored is None else stored
        return self.fences[tp]

    def forget(self, tps: Iterable[Any]) -> None:
        """Partitions revoked (or in doubt): re-read their fences from Redis before the next batch."""
        for tp in tps:
            self.fences.pop(tp, None)

    async def handle(self, records: Iterable[Any]) -> None:
        """Apply one buffered batch (Faust ``Message`` objects: ``tp``, ``offset``, ``key``, ``value``)."""
        async with self._lock:  # the agent's batches and the re-reads after an assignment
            # partitions are independent: while Redis runs one partition's flush script, the next
            # partition's records are decoded and folded (each task yields at its Redis call)
            await asyncio.gather(*(self.process(tp, recs) for tp, recs in by_partition(records).items()))
        self._log_rate()

    async def process(self, tp: Any, records: list[Any], *, retry: bool = True) -> int | None:
        """One partition's records → one fenced flush; the new fence, or ``None`` when nothing applied."""
        started = time.perf_counter()
        fence = await self.fence(tp)
        fresh, jumped = await self.gate.admit(tp, fence, records)
        if not fresh:
            return None
        batch = LiveBatch(self.store.prefix, CONSUMER, tp.topic, tp.partition)
        batch.stats.update(self.gate.take_stats())  # replays, gaps re-read: counted with the flush
        deliveries: list[Awaitable[Any]] = []
        for rec in fresh:
            batch.add_offset(rec.offset)
            try:
                parsed = decode_events_record(rec.value, rec.key)
            except InvalidRecord as exc:
                batch.count("records_dead_lettered")
                batch.count(f"dlq|{exc.reason}")
                dead = DeadLetter(exc.reason, tp.topic, tp.partition, rec.offset, detail=exc.detail)
                deliveries.append(await self.send(self.dlq_topic, rec.key, rec.value, dead.headers()))
                continue
            batch.count("events_received", len(parsed.events) + len(parsed.rejected))
            batch.add_events(parsed)
            for index, reason, raw in parsed.rejected:
                batch.count("events_dead_lettered")
                batch.count(f"dlq|{reason}")
                dead = DeadLetter(reason, tp.topic, tp.partition, rec.offset, index)
                deliveries.append(await self.send(self.dlq_topic, rec.key, raw, dead.headers()))
        for d in deliveries:  # dead letters durable before the fence moves past them
            await d
        applied, n = await self.store.apply_live(batch.to_script_arg(now_ms(), jump=jumped))
        if not applied:  # another member moved the fence (a rebalance): go on from the stored fence
            log.info("live path: %s refused at stored fence %d (first offset %d)", tp, n, batch.first_offset)
            self.fences[tp] = n
            return await self.process(tp, records, retry=False) if retry else None
        self.fences[tp] = batch.last_offset
        _FLUSH_SECONDS.observe(time.perf_counter() - started)
        _FLUSH_SIZE.observe(len(batch))
        metrics.count_dead_letters(CONSUMER, batch.stats)
        self.notifier.mark(batch.stream_ids())
        self.notifier.mark_brands(b for b, _ in batch.creators)
        self._events += len(batch)
        self._flushes += 1
        return batch.last_offset

    def _log_rate(self) -> None:
        now = time.monotonic()
        if now - self._last_log >= 10:
            dt = now - self._last_log
            if self._events:
                log.info("live path: %d events in %d flushes (%.0f events/s)", self._events, self._flushes,
                         self._events / dt)
            self._events = self._flushes = 0
            self._last_log = now
