"""The ledger path: a plain aiokafka consumer over the events and orders topics, state fenced in Redis.

Why not a Faust agent with Tables: faust-streaming 0.15.3's consumer skips source records on
restart/rebalance and commits past them (see docs/stream-processing.md, "Why not Faust tables").
Here Redis, not Kafka, is the source of truth for what was applied:

- group ``<app id>-ledger``, ``RangePartitionAssignor``: partition p of both topics (co-partitioned
  by brand_id, same partition count) goes to the same member;
- on assignment, partition p's state (four hashes ``<p>:lstate:<p>:<table>``) and its two fences
  (``<p>:offsets:ledger`` ``<topic>:<p>``) are loaded, a leftover outbox is re-sent, and the
  consumer seeks to fence + 1; on revocation the in-memory state is dropped (work not yet in Redis
  is replayed by the next owner);
- per ``getmany`` and partition: the records above the fences, the two topics merged by timestamp,
  go through the pure :mod:`streams.ledger`; then **one Lua step** (:data:`liveledger.storage.lua.LEDGER_STEP`)
  checks that the stored fences are still the ones loaded (a zombie member is refused), writes the
  changed state entries, applies the order snapshots to the aggregates, appends the records to
  produce to the partition's outbox and moves the fences -- atomically. Then the outbox is produced
  (acks=all, awaited), deleted if the fences did not move meanwhile, and the Kafka offsets committed
  (for lag monitoring and the drain check only).

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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError

from liveledger.settings import Settings
from liveledger.setup_state import SetupReplica
from liveledger.topics import topic_name
from schemas.errors import InvalidRecord
from schemas.wire import DeadLetter, Headers, OrderRecord, WireClickEvent, decode_events_record, decode_orders_record
from streams import ledger
from streams.ledger_state import PartitionState
from streams.redis_state import Fenced, LedgerStore, Notifier, now_ms

log = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 10_000  # a kill -9'd member's partitions move after ~10 s
HEARTBEAT_MS = 2_000


def compact(snap: dict[str, Any]) -> dict[str, Any]:
    """What the Redis aggregates need of a snapshot (None values dropped for Lua)."""
    wanted = ("brand_id", "order_id", "version", "currency", "net_minor", "commission_minor", "reversed_minor",
              "via", "creator_id", "campaign_id", "stream_id", "skus")
    return {k: snap[k] for k in wanted if snap.get(k) is not None}


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


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: LedgerConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self.owner.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.owner.on_assigned(assigned)


class LedgerConsumer:
    def __init__(self, settings: Settings, store: LedgerStore, replica: SetupReplica, notifier: Notifier,
                 producer: AIOKafkaProducer, *, group_id: str, max_records: int = 2000) -> None:
        self.settings = settings
        self.store = store
        self.replica = replica
        self.notifier = notifier
        self.producer = producer
        self.group_id = group_id
        self.max_records = max_records
        self.events_topic = topic_name(settings, "events")
        self.orders_topic = topic_name(settings, "orders")
        self.topics = [self.events_topic, self.orders_topic]
        self.ledger_topic = topic_name(settings, "ledger")
        self.dlq_topic = topic_name(settings, "dlq")
        self.parts: dict[int, PartitionState] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()  # a rebalance waits for the step in progress
        self._gap_checked: set[tuple[str, int, int]] = set()
        self._records = 0
        self._steps = 0
        self._last_log = time.monotonic()

    # -- assignment ----------------------------------------------------------------------------
    async def on_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            for tp in revoked:
                self.parts.pop(tp.partition, None)

    async def on_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self._lock:
            partitions = sorted({tp.partition for tp in assigned})
            for p in partitions:
                await self.load(p)
            log.info("ledger consumer: partitions assigned %s", partitions)

    async def load(self, p: int) -> None:
        """(Re)load partition p from Redis, re-send its outbox and seek both topics to fence + 1."""
        assert self.consumer is not None
        while True:
            state = await self.store.load(p, self.topics)
            if await self.resend_outbox(state):
                break
            log.info("ledger consumer: partition %d moved while loading; reloading", p)
        self.parts[p] = state
        for topic in self.topics:
            tp, fence = TopicPartition(topic, p), state.fence(topic)
            if fence >= 0:
                self.consumer.seek(tp, fence + 1)
            else:
                await self.consumer.seek_to_beginning(tp)

    async def resend_outbox(self, state: PartitionState) -> bool:
        """Produce what the last step of this partition committed, then DEL it (fence-checked)."""
        entries = await self.store.outbox(state.partition)
        if not entries:
            return True
        await self.produce(entries)
        log.info("ledger consumer: re-sent %d outbox records of partition %d", len(entries), state.partition)
        return await self.store.clear_outbox(state.partition, state.fences)

    async def produce(self, entries: Iterable[bytes | str]) -> None:
        futures = []
        for raw in entries:
            topic, partition, key, value, headers = parse_outbox_entry(raw)
            futures.append(await self.producer.send(topic, value, key=key, partition=partition, headers=headers))
        if futures:
            await asyncio.gather(*futures)

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=_Rebalance(self))
        log.info("ledger consumer started on %s (group %s)", ", ".join(self.topics), self.group_id)
        try:
            while True:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
                if batches:
                    commits = await self.step_all(batches)
                    if commits:
                        try:
                            await self.consumer.commit(commits)
                        except KafkaError as exc:  # the Redis fence is the truth; a lost commit only shows lag
                            log.info("offset commit skipped: %s", exc)
                self._log_rate()
        finally:
            self.parts.clear()
            try:
                await self.consumer.stop()
            except Exception as exc:  # stopping after a cancel can surface fetcher errors; nothing to save
                log.debug("ledger consumer stop: %s", exc)

    async def step_all(self, batches: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, int]:
        """Process, commit to Redis and produce every partition of one ``getmany`` → offsets to commit."""
        by_part: dict[int, list[tuple[TopicPartition, list[Any]]]] = defaultdict(list)
        for tp, records in batches.items():
            by_part[tp.partition].append((tp, records))
        commits: dict[TopicPartition, int] = {}
        async with self._lock:
            done: list[tuple[PartitionState, list[str]]] = []
            for p, lists in sorted(by_part.items()):
                state = self.parts.get(p)
                if state is None:
                    continue  # revoked meanwhile
                out = await self.step(state, lists)
                if out is not None:
                    done.append((state, out))
            await self.produce(e for _, out in done for e in out)
            for state, out in done:
                if out and not await self.store.clear_outbox(state.partition, state.fences):
                    log.info("ledger consumer: partition %d moved before its outbox was cleared", state.partition)
                for topic in self.topics:
                    if state.fence(topic) >= 0:
                        commits[TopicPartition(topic, state.partition)] = state.fence(topic) + 1
        return commits

    def _fresh(self, state: PartitionState, tp: TopicPartition, records: list[Any]) -> list[Any]:
        """Records above the fence; a jump past fence + 1 (should not happen) seeks back once."""
        fence = state.fence(tp.topic)
        fresh = [r for r in records if r.offset > fence]
        if fresh and fence >= 0 and fresh[0].offset > fence + 1:
            mark = (tp.topic, tp.partition, fence)
            if mark not in self._gap_checked:
                self._gap_checked.add(mark)
                log.warning("ledger consumer: %s jumped from fence %d to %d; seeking back", tp, fence,
                            fresh[0].offset)
                assert self.consumer is not None
                self.consumer.seek(tp, fence + 1)
                return []
        return fresh

    async def step(self, state: PartitionState, lists: list[tuple[TopicPartition, list[Any]]]) -> list[str] | None:
        """One partition's records → one Redis step → the outbox entries to produce (None: nothing done)."""
        p = state.partition
        streams: list[list[tuple[int, int, str, Any]]] = []
        new_fences = dict(state.fences)
        for tp, records in lists:
            fresh = self._fresh(state, tp, records)
            if fresh:
                order = 0 if tp.topic == self.events_topic else 1
                streams.append([(r.timestamp, order, tp.topic, r) for r in fresh])
                new_fences[f"{tp.topic}:{p}"] = fresh[-1].offset
        if not streams:
            return None
        work = StepWork()
        tables = state.ledger_tables()
        n = 0
        # the two topics merged by record timestamp; each topic's own order is kept
        for _, _, topic, rec in heapq.merge(*streams, key=lambda x: (x[0], x[1])):
            n += 1
            try:
                await self.handle(tables, work, topic, p, rec.offset, rec.key, rec.value)
            except Exception as exc:  # a bug must not stop the partition: dead-letter the record and go on
                log.exception("ledger consumer failed on %s:%d:%d", topic, p, rec.offset)
                work.outbox.append(outbox_entry(self.dlq_topic, None, rec.key, rec.value, DeadLetter(
                    "processing_error", topic, p, rec.offset, detail=repr(exc)).headers()))
        sets, dels = state.take_changes()
        expected = {f"{t}:{p}": state.fence(t) for t in self.topics}
        arg = {"part": p, "fences": {tp: [expected[tp], new_fences.get(tp, -1)] for tp in expected},
               "set": sets, "del": dels, "snaps": work.snaps, "st": work.stats, "outbox": work.outbox,
               "now": now_ms()}
        try:
            touched = await self.store.step(arg)
        except Fenced as exc:
            log.info("ledger consumer: partition %d refused (%s); reloading from Redis", p, exc)
            await self.load(p)
            return None
        state.fences = {tp: new_fences.get(tp, -1) for tp in expected}
        if touched:
            self.notifier.mark(touched)
        self._records += n
        self._steps += 1
        return work.outbox

    async def handle(self, t: ledger.Tables, work: StepWork, topic: str, partition: int, offset: int,
                     key: bytes | None, value: bytes | None) -> None:
        src = f"{topic}:{partition}:{offset}"
        setup = self.replica.state
        if topic == self.events_topic:
            try:  # anything invalid in an events record is dead-lettered by the live path
                batch = decode_events_record(value, key)
            except InvalidRecord:
                return
            for e in batch.events:
                if isinstance(e, WireClickEvent):
                    fx = ledger.on_click(t, setup, e, batch.brand_id, src)
                    self._emit(work, fx, partition, batch.brand_id.encode())
            return
        try:
            rec = decode_orders_record(value, key)
        except InvalidRecord as exc:
            work.outbox.append(outbox_entry(self.dlq_topic, None, key, value, DeadLetter(
                exc.reason, topic, partition, offset, detail=exc.detail).headers()))
            work.add(ledger.Effects(stats={"orders_dead_lettered": 1, f"dlq|{exc.reason}": 1}))
            return
        if isinstance(rec, OrderRecord):
            await self._catch_up_if_missing(t, rec)
            fx = ledger.on_order(t, self.replica.state, rec, src)
        else:
            fx = ledger.on_refund(t, self.replica.state, rec, src)
        self._emit(work, fx, partition, rec.brand_id.encode())

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
                log.info("ledger consumer: %d records in %d steps (%.0f records/s)", self._records, self._steps,
                         self._records / (now - self._last_log))
            self._records = self._steps = 0
            self._last_log = now
