"""The high-volume path: a plain aiokafka consumer over the events topic, aggregating per batch.

Faust's per-record machinery costs ~60 µs; this loop instead takes whatever ``getmany`` returns
for a partition (up to thousands of events, many per record), folds it into a :class:`LiveBatch`
and applies it with one Lua call that de-dups event ids and advances the partition's offset fence
atomically. The Redis fence, not the Kafka commit, decides where a partition resumes: on
assignment we seek to ``fence + 1``. Kafka offsets are committed too, for lag monitoring.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from liveledger.settings import Settings
from liveledger.topics import topic_name
from schemas.errors import InvalidRecord
from schemas.wire import DeadLetter, Headers, decode_events_record
from streams.live import LiveBatch
from streams.redis_state import LiveStore, Notifier, now_ms

log = logging.getLogger(__name__)

CONSUMER = "live"
SendFn = Callable[[str, bytes | None, bytes | None, Headers], Awaitable[Awaitable[Any]]]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: LiveConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.owner.fences.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.owner.resume_from_fences(assigned)


class LiveConsumer:
    def __init__(self, settings: Settings, store: LiveStore, notifier: Notifier, send: SendFn, *,
                 group_id: str, max_records: int = 500) -> None:
        self.settings = settings
        self.store = store
        self.notifier = notifier
        self.send = send
        self.group_id = group_id
        self.topic = topic_name(settings, "events")
        self.dlq_topic = topic_name(settings, "dlq")
        self.max_records = max_records
        self.fences: dict[TopicPartition, int] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._events = 0
        self._flushes = 0
        self._last_log = time.monotonic()

    async def resume_from_fences(self, assigned: list[TopicPartition]) -> None:
        assert self.consumer is not None
        for tp in assigned:
            stored = await self.store.fence(CONSUMER, tp.topic, tp.partition)
            if stored is not None:
                self.fences[tp] = stored
                self.consumer.seek(tp, stored + 1)
        log.info("live consumer: partitions assigned %s", sorted(tp.partition for tp in assigned))

    async def run(self) -> None:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,  # a kill -9'd worker's partitions move after ~10 s
            heartbeat_interval_ms=2_000,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self.consumer.start()
        self.consumer.subscribe([self.topic], listener=_Rebalance(self))
        log.info("live consumer started on %s (group %s)", self.topic, self.group_id)
        try:
            while True:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=self.max_records)
                commits: dict[TopicPartition, int] = {}
                for tp, records in batches.items():
                    last = await self.process(tp, records)
                    if last is not None:
                        commits[tp] = last + 1
                if commits:
                    try:
                        await self.consumer.commit(commits)
                    except KafkaError as exc:  # the Redis fence is the truth; a lost commit only replays
                        log.info("offset commit skipped: %s", exc)
                self._log_rate()
        finally:
            try:
                await self.consumer.stop()
            except Exception as exc:  # stopping after a cancel can surface fetcher errors; nothing to save
                log.debug("live consumer stop: %s", exc)

    async def process(self, tp: TopicPartition, records: list[Any]) -> int | None:
        fence = self.fences.get(tp, -1)
        batch = LiveBatch(self.store.prefix, CONSUMER, tp.topic, tp.partition)
        deliveries: list[Awaitable[Any]] = []
        for rec in records:
            if rec.offset <= fence:
                continue
            batch.add_offset(rec.offset)
            try:
                parsed = decode_events_record(rec.value, rec.key)
            except InvalidRecord as exc:
                batch.count("records_dead_lettered")
                batch.count(f"dlq|{exc.reason}")
                deliveries.append(await self.send(
                    self.dlq_topic, rec.key, rec.value,
                    DeadLetter(exc.reason, tp.topic, tp.partition, rec.offset, detail=exc.detail).headers()))
                continue
            batch.count("events_received", len(parsed.events) + len(parsed.rejected))
            batch.add_events(parsed)
            for index, reason, raw in parsed.rejected:
                batch.count("events_dead_lettered")
                batch.count(f"dlq|{reason}")
                dead = DeadLetter(reason, tp.topic, tp.partition, rec.offset, index)
                deliveries.append(await self.send(self.dlq_topic, rec.key, raw, dead.headers()))
        if batch.first_offset < 0:
            return None
        for d in deliveries:  # dead letters durable before the fence moves past them
            await d
        applied, n = await self.store.apply_live(batch.to_script_arg(now_ms()))
        if not applied:  # someone else applied these offsets (rebalance): resume after the fence
            log.info("live consumer: %s fenced at %d; seeking", tp, n)
            self.fences[tp] = n
            assert self.consumer is not None
            self.consumer.seek(tp, n + 1)
            return None
        self.fences[tp] = batch.last_offset
        self.notifier.mark(batch.stream_ids())
        self._events += len(batch)
        self._flushes += 1
        return batch.last_offset

    def _log_rate(self) -> None:
        now = time.monotonic()
        if now - self._last_log >= 10:
            dt = now - self._last_log
            if self._events:
                log.info("live consumer: %d events in %d flushes (%.0f events/s)", self._events, self._flushes,
                         self._events / dt)
            self._events = self._flushes = 0
            self._last_log = now
