"""The ledger path: the ledger agent's work on one batch of ``ll.events`` + ``ll.orders`` records.

Redis, not Kafka or Faust, is the source of truth for what was applied:

- Faust's co-partitioning assignor gives partition p of both topics (same partition count, keyed by
  brand_id) to the same worker;
- partition p's two fences (``offsets:ledger`` ``<topic>:<p>``) are loaded when the partition is
  assigned (or first seen) and a leftover outbox is re-sent; its state is *not* loaded: each step
  reads the entries its records name (:func:`streams.ledger_state.needs`, one pipelined round trip,
  a second one for the orders a late click's ``waiting`` entry names), so an assignment costs the
  same with 1 k or 1 M clicks; on revocation the fences are dropped;
- per batch and partition: the :class:`~streams.gate.OffsetGate` admits the records that follow the
  fences (a gap seeks back); the two topics merged by timestamp go through the pure
  :mod:`streams.ledger`; then **one Lua step** (:data:`liveledger.storage.lua.LEDGER_STEP`) checks
  that the stored fences are still the ones loaded (a zombie member is refused), writes the changed
  state entries (with their TTLs: liveledger/storage/retention.py), applies the order snapshots
  to the aggregates, appends the records to produce to the
  partition's outbox and moves the fences -- atomically. Then the outbox is produced (acks=all,
  awaited) and deleted if the fences did not move meanwhile.

A crash anywhere therefore only re-sends records identical to ones already committed with the state.
"""

from __future__ import annotations

import asyncio
import base64
import heapq
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from liveledger import metrics
from liveledger.settings import Settings
from liveledger.setup_state import SetupReplica
from liveledger.topics import topic_name
from schemas.errors import InvalidRecord
from schemas.time import from_ms, utc_day
from schemas.wire import (
    CancelRecord,
    DeadLetter,
    Headers,
    OrderRecord,
    clicks_of_events_record,
    decode_orders_record,
)
from streams import ledger
from streams.gate import OffsetGate
from streams.ledger_state import PartitionState, StepState, needs, waiting_orders
from streams.redis_state import Fenced, LedgerStore, Notifier, now_ms

log = logging.getLogger(__name__)

_FLUSH_SIZE = metrics.FLUSH_SIZE.labels("ledger")
_FLUSH_SECONDS = metrics.FLUSH_DURATION.labels("ledger")


def compact(snap: dict[str, Any]) -> dict[str, Any]:
    """What the Redis aggregates need of a snapshot (None values dropped for Lua)."""
    wanted = ("brand_id", "order_id", "version", "currency", "net_minor", "commission_minor", "reversed_minor",
              "via", "creator_id", "campaign_id", "stream_id", "link_code", "occurred_ms", "skus", "lines")
    out = {k: snap[k] for k in wanted if snap.get(k) is not None}
    out["day"] = utc_day(from_ms(snap["occurred_ms"]))  # the order's UTC day: conversion per day
    return out


def _b64(v: bytes | None) -> str | None:
    return None if v is None else base64.b64encode(v).decode()


def _unb64(v: str | None) -> bytes | None:
    return None if v is None else base64.b64decode(v)


def outbox_entry(topic: str, partition: int | None, key: bytes | None, value: bytes | None,
                 headers: Headers | None = None) -> str:
    """One record to produce, as the JSON string stored in the outbox list (bytes base64-encoded)."""
    return orjson.dumps({"t": topic, "p": partition, "k": _b64(key), "v": _b64(value),
                         "h": [[k, _b64(v)] for k, v in headers or []]}).decode()


def parse_outbox_entry(raw: bytes | str) -> tuple[str, int | None, bytes | None, bytes | None, Headers]:
    e = orjson.loads(raw)
    return e["t"], e["p"], _unb64(e["k"]), _unb64(e["v"]), [(k, _unb64(v) or b"") for k, v in e["h"]]


@dataclass(slots=True)
class StepWork:
    """What processing one partition's records produced, before the Redis step."""

    snaps: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    outbox: list[str] = field(default_factory=list)

    def add(self, fx: ledger.Effects) -> None:
        self.snaps += [compact(s) for s in fx.snapshots]
        for k, n in fx.stats.items():
            self.stats[k] = self.stats.get(k, 0) + n


@dataclass(slots=True)
class Decoded:
    """One admitted record, decoded once per step (a step may run its records twice, see ``step``)."""

    topic: str
    offset: int
    key: bytes | None
    value: bytes | None
    kind: str  # clicks | order | cancel | refund | invalid (dead-lettered) | error (processing_error)
    brand: str = ""
    recs: list[Any] = field(default_factory=list)
    error: Exception | None = None

    def lookups(self) -> list[tuple[str, str, Any]]:
        """``(kind, brand, record)`` for :func:`streams.ledger_state.needs`."""
        if self.kind == "clicks":
            return [("click", self.brand, c) for c in self.recs]
        if self.kind in ("order", "cancel", "refund"):
            return [(self.kind, self.brand, self.recs[0])]
        return []


class LedgerPath:
    def __init__(self, settings: Settings, store: LedgerStore, replica: SetupReplica, notifier: Notifier,
                 producer: AIOKafkaProducer, gate: OffsetGate) -> None:
        self.settings = settings
        self.store = store
        self.replica = replica
        self.notifier = notifier
        self.producer = producer
        self.gate = gate
        self.events_topic = topic_name(settings, "events")
        self.orders_topic = topic_name(settings, "orders")
        self.topics = [self.events_topic, self.orders_topic]
        self.ledger_topic = topic_name(settings, "ledger")
        self.dlq_topic = topic_name(settings, "dlq")
        self.parts: dict[int, PartitionState] = {}
        self._lock = asyncio.Lock()  # a rebalance waits for the step in progress
        self._records = 0
        self._steps = 0
        self._last_log = time.monotonic()

    # -- assignment ----------------------------------------------------------------------------
    def on_revoked(self, revoked: Iterable[Any]) -> None:
        """Drop the revoked partitions' in-memory state (in-memory only: this runs inside Faust's
        rebalance callback, where waiting for the consumer, or for a step that may, would deadlock)."""
        revoked = [tp for tp in revoked if tp.topic in self.topics]
        for tp in revoked:
            self.parts.pop(tp.partition, None)

    async def sync(self, assigned: Iterable[Any]) -> None:
        """(Re)load newly assigned partitions and seek them to their fences (outside the callback)."""
        partitions = sorted({tp.partition for tp in assigned if tp.topic in self.topics})
        async with self._lock:
            for p in partitions:
                await self.load(p)
        if partitions:
            log.info("ledger path: partitions assigned %s", partitions)

    def fence(self, tp: Any) -> int:
        """The fence of a loaded partition's topic (-1: nothing applied, or not loaded)."""
        state = self.parts.get(tp.partition)
        return state.fence(tp.topic) if state is not None else -1

    async def load(self, p: int) -> PartitionState:
        """(Re)load partition p from Redis and re-send its outbox. Where Faust resumes the partition
        does not matter: the gate admits only what follows the fences (and re-reads the rest)."""
        while True:
            state = await self.store.load(p, self.topics)
            if await self.resend_outbox(state):
                break
            log.info("ledger path: partition %d moved while loading; reloading", p)
        self.parts[p] = state
        return state

    async def resend_outbox(self, state: PartitionState) -> bool:
        """Produce what the last step of this partition committed, then DEL it (fence-checked)."""
        entries = await self.store.outbox(state.partition)
        if not entries:
            return True
        await self.produce(entries)
        log.info("ledger path: re-sent %d outbox records of partition %d", len(entries), state.partition)
        return await self.store.clear_outbox(state.partition, state.fences)

    async def produce(self, entries: Iterable[bytes | str]) -> None:
        futures = []
        for raw in entries:
            topic, partition, key, value, headers = parse_outbox_entry(raw)
            futures.append(await self.producer.send(topic, value, key=key, partition=partition, headers=headers))
        if futures:
            await asyncio.gather(*futures)

    # -- one batch -----------------------------------------------------------------------------
    async def handle(self, records: Iterable[Any]) -> None:
        """Apply one buffered batch (Faust ``Message`` objects of both topics)."""
        by_part: dict[int, dict[Any, list[Any]]] = defaultdict(lambda: defaultdict(list))
        for rec in records:
            by_part[rec.tp.partition][rec.tp].append(rec)
        async with self._lock:
            done: list[tuple[PartitionState, list[str]]] = []
            for p, lists in sorted(by_part.items()):
                state = self.parts.get(p) or await self.load(p)
                out = await self.step(state, list(lists.items()))
                if out is not None:
                    done.append((state, out))
            await self.produce(e for _, out in done for e in out)
            for state, out in done:
                if out and not await self.store.clear_outbox(state.partition, state.fences):
                    log.info("ledger path: partition %d moved before its outbox was cleared", state.partition)
        self._log_rate()

    async def step(self, state: PartitionState, lists: list[tuple[Any, list[Any]]]) -> list[str] | None:
        """One partition's records → one Redis step → the outbox entries to produce (None: nothing done)."""
        started = time.perf_counter()
        p = state.partition
        streams: list[list[tuple[int, int, str, Any]]] = []
        new_fences = dict(state.fences)
        for tp, records in lists:
            fresh, _ = await self.gate.admit(tp, state.fence(tp.topic), records)
            if fresh:
                order = 0 if tp.topic == self.events_topic else 1
                streams.append([(r.timestamp, order, tp.topic, r) for r in fresh])
                new_fences[f"{tp.topic}:{p}"] = fresh[-1].offset
        if not streams:
            return None
        gate_stats = dict(self.gate.take_stats())
        # the two topics merged by record timestamp; each topic's own order is kept
        items = [self.decode(topic, p, rec) for _, _, topic, rec in heapq.merge(*streams, key=lambda x: (x[0], x[1]))]
        wanted, brands = needs(look for it in items for look in it.lookups())
        read = await self.store.read(p, wanted)
        later = waiting_orders(read.get("waiting", {}), brands) - wanted["orders"]
        if later:
            read.setdefault("orders", {}).update((await self.store.read(p, {"orders": later}))["orders"])
        while True:  # once, unless a record looked up an entry needs() did not name: read it, run again
            tables = StepState.from_read(read)
            work = StepWork()
            work.add(ledger.Effects(stats=gate_stats))
            errors = await self.apply_items(tables.ledger_tables(), work, p, items)
            misses = tables.misses()
            if not misses:
                break
            log.warning("ledger path: partition %d read %d more state entries", p, sum(map(len, misses.values())))
            for table, got in (await self.store.read(p, misses)).items():
                read.setdefault(table, {}).update(got)
        state.entries_read += sum(len(v) for v in read.values())
        n = len(items)
        ops = self.store.state_ops(p, tables.changes(), lambda key, click: self.click_days(brands.get(key), click))
        expected = {f"{t}:{p}": state.fence(t) for t in self.topics}
        arg = {"part": p, "fences": {tp: [expected[tp], new_fences.get(tp, -1)] for tp in expected},
               **ops, "snaps": work.snaps, "st": work.stats, "outbox": work.outbox,
               "now": now_ms()}
        try:
            touched = await self.store.step(arg)
        except Fenced as exc:
            log.info("ledger path: partition %d refused (%s); reloading from Redis", p, exc)
            await self.load(p)
            return None
        state.fences = {tp: new_fences.get(tp, -1) for tp in expected}
        _FLUSH_SECONDS.observe(time.perf_counter() - started)
        _FLUSH_SIZE.observe(n)
        metrics.count_dead_letters("ledger", [*work.stats.items(), ("dlq|processing_error", errors)])
        if touched:
            self.notifier.mark(touched)
        self.notifier.mark_brands(snap["brand_id"] for snap in work.snaps if snap.get("creator_id"))
        self._records += n
        self._steps += 1
        return work.outbox

    def decode(self, topic: str, partition: int, rec: Any) -> Decoded:
        if topic == self.events_topic:
            try:
                # only the clicks matter here; anything invalid is dead-lettered by the live path
                brand_id, clicks = clicks_of_events_record(rec.value, rec.key)
            except Exception as exc:  # dead-lettered as processing_error by apply_items
                return Decoded(topic, rec.offset, rec.key, rec.value, "error", error=exc)
            return Decoded(topic, rec.offset, rec.key, rec.value, "clicks", brand_id, clicks)
        try:
            order_rec = decode_orders_record(rec.value, rec.key)
        except InvalidRecord as exc:
            return Decoded(topic, rec.offset, rec.key, rec.value, "invalid", error=exc)
        except Exception as exc:
            return Decoded(topic, rec.offset, rec.key, rec.value, "error", error=exc)
        kind = "order" if isinstance(order_rec, OrderRecord) else "cancel" if isinstance(order_rec, CancelRecord) \
            else "refund"
        return Decoded(topic, rec.offset, rec.key, rec.value, kind, order_rec.brand_id, [order_rec])

    async def apply_items(self, t: ledger.Tables, work: StepWork, partition: int, items: list[Decoded]) -> int:
        """Run the step's records through :mod:`streams.ledger` → the number of processing errors."""
        errors = 0
        for it in items:
            try:
                await self.apply_item(t, work, partition, it)
            except Exception as exc:  # a bug must not stop the partition: dead-letter the record and go on
                log.exception("ledger path failed on %s:%d:%d", it.topic, partition, it.offset)
                errors += 1
                work.outbox.append(outbox_entry(self.dlq_topic, None, it.key, it.value, DeadLetter(
                    "processing_error", it.topic, partition, it.offset, detail=repr(exc)).headers()))
        return errors

    async def apply_item(self, t: ledger.Tables, work: StepWork, partition: int, it: Decoded) -> None:
        src = f"{it.topic}:{partition}:{it.offset}"
        setup = self.replica.state
        if it.kind == "error" and it.error is not None:
            raise it.error
        if it.kind == "invalid":
            exc = it.error
            assert isinstance(exc, InvalidRecord)
            work.outbox.append(outbox_entry(self.dlq_topic, None, it.key, it.value, DeadLetter(
                exc.reason, it.topic, partition, it.offset, detail=exc.detail).headers()))
            work.add(ledger.Effects(stats={"orders_dead_lettered": 1, f"dlq|{exc.reason}": 1}))
            return
        if it.kind == "clicks":
            for click in it.recs:
                self._emit(work, ledger.on_click(t, setup, click, it.brand, src), partition, it.brand.encode())
            return
        rec = it.recs[0]
        if isinstance(rec, OrderRecord):
            await self._catch_up_if_missing(t, rec)
            fx = ledger.on_order(t, self.replica.state, rec, src)
        elif isinstance(rec, CancelRecord):
            fx = ledger.on_cancel(t, self.replica.state, rec, src)
        else:
            fx = ledger.on_refund(t, self.replica.state, rec, src)
        self._emit(work, fx, partition, rec.brand_id.encode())

    def click_days(self, brand_id: str | None, click: dict[str, Any]) -> int | None:
        """The attribution window that applies to a click (its TTL, liveledger/storage/retention.py):
        its campaign's (fixed at creation: a PATCH cannot change it), the default one for a click without
        a campaign or of another brand's campaign, None (the longest) while the campaign is unknown."""
        campaign_id = click.get("campaign_id")
        if not campaign_id:
            return ledger.DEFAULT_WINDOW_DAYS
        camp = self.replica.state.campaigns.get(campaign_id)
        if camp is None:
            return None
        if brand_id is None or camp.get("brand_id") not in (None, brand_id):
            return max(ledger.DEFAULT_WINDOW_DAYS, int(camp.get("attribution_window_days", 0)))
        return int(camp.get("attribution_window_days", ledger.DEFAULT_WINDOW_DAYS))

    def _emit(self, work: StepWork, fx: ledger.Effects, partition: int, brand: bytes) -> None:
        for snap in fx.snapshots:
            work.outbox.append(outbox_entry(self.ledger_topic, partition, brand,
                                            ledger.ledger_fact_order(snap).to_bytes()))
        for ref in fx.refunds:
            work.outbox.append(outbox_entry(self.ledger_topic, partition, brand,
                                            ledger.ledger_fact_refund(ref).to_bytes()))
        work.add(fx)

    async def _catch_up_if_missing(self, t: ledger.Tables, o: OrderRecord) -> None:
        state = self.replica.state
        click = t.clicks.get(f"{o.brand_id}:{o.click_id}") if o.click_id else None
        missing = (click is not None and click.get("campaign_id") and click["campaign_id"] not in state.campaigns) \
            or (o.coupon_code is not None and state.link_for_coupon(o.brand_id, o.coupon_code) is None)
        if missing:
            try:
                await self.replica.catch_up()
            except TimeoutError:
                log.warning("setup catch-up timed out; attributing with what is known")

    def _log_rate(self) -> None:
        now = time.monotonic()
        if now - self._last_log >= 10:
            if self._records:
                log.info("ledger path: %d records in %d steps (%.0f records/s)", self._records, self._steps,
                         self._records / (now - self._last_log))
            self._records = self._steps = 0
            self._last_log = now
