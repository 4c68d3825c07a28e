"""Where every stage records what it applied, read for the finance watermark (rules, pure, in
:mod:`liveledger.storage.watermark`; definition in docs/money-rules.md "Completeness watermark").

- live path (``ll.events``): the Redis fence ``<p>:{<p>:<partition>}:offsets:live`` field
  ``<topic>:<partition>``, the last offset applied;
- ledger path (``ll.events``, ``ll.orders``): the Redis fences ``<p>:{<p>:<partition>}:offsets:ledger``;
  the ledger facts of its last step wait in ``<p>:{<p>:<partition>}:loutbox`` until Kafka has them;
- ClickHouse sink (``ll.events``, ``ll.ledger``): its consumer group's committed offsets (committed
  only after the inserts succeeded).

One reading (:meth:`WatermarkReader.compute`), in this order: the clock; per partition, its fences
and outbox length in one Redis transaction (one hash slot, so also on a Redis Cluster); the log end
offsets of ``ll.events``, ``ll.orders`` and ``ll.ledger``; the sink group's committed offsets; then,
for every stage behind, the record at its first unapplied offset (its ``received_at`` and Kafka
timestamp; records never change, so the times are cached). A sampler task reads every
``interval_s`` (the ``ll.ledger`` mapping needs earlier readings) and
:meth:`WatermarkReader.current` answers from the last reading when it is fresh (~1 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from liveledger.settings import Settings
from liveledger.storage import redis_keys as keys
from liveledger.storage.watermark import (
    CLICKHOUSE,
    LEDGER,
    LIVE,
    LedgerSample,
    StageProgress,
    Watermark,
    combine,
    ledger_path_complete,
    prune,
)
from liveledger.topics import topic_name
from schemas.time import parse_rfc3339, to_ms

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 5.0
RECORD_TIMES_CACHED = 4096


def sink_group_id(settings: Settings) -> str:
    """The ClickHouse sink's consumer group (the same rule as ``consumers.clickhouse_sink``; a unit
    test keeps the two equal)."""
    prefix = settings.topic_prefix
    return "liveledger-clickhouse" if prefix == "ll" else f"{prefix}-liveledger-clickhouse"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def record_time_ms(value: bytes | None, timestamp_ms: int | None) -> int | None:
    """The time a record cannot have been appended before: the smaller of its ``received_at`` (ingest
    stamps it before sending) and its Kafka timestamp (the producer's send time)."""
    times = [timestamp_ms] if timestamp_ms is not None and timestamp_ms >= 0 else []
    try:
        doc = orjson.loads(value) if value else None
        if isinstance(doc, dict) and isinstance(doc.get("received_at"), str):
            times.append(to_ms(parse_rfc3339(doc["received_at"])))
    except (orjson.JSONDecodeError, ValueError, TypeError):
        pass
    return min(times) if times else None


class WatermarkReader:
    """Reads the stages' progress and computes the watermark; keeps the ``ll.ledger`` samples.

    Kafka clients are created on first use and re-created after a failure, so a service that is
    down never fails the process's start; while a reading fails, :meth:`current` answers the last
    good watermark (still a true statement: applied records stay applied) marked stale."""

    def __init__(self, settings: Settings, redis: Any, *, interval_s: float = 1.0, max_age_s: float = 1.0,
                 on_computed: Callable[[Watermark], None] | None = None) -> None:
        self.settings = settings
        self.redis = redis
        self.interval_s = interval_s
        self.max_age_s = max_age_s
        self.on_computed = on_computed
        n = settings.event_partitions
        self.partitions = list(range(n))
        self.events = topic_name(settings, "events")
        self.orders = topic_name(settings, "orders")
        self.ledger = topic_name(settings, "ledger")
        self.group = sink_group_id(settings)
        self.latest: Watermark | None = None
        self.latest_at = 0.0  # time.monotonic() of the latest good reading
        self.error: str | None = None
        self._samples: list[LedgerSample] = []
        self._times: OrderedDict[tuple[str, int, int], int | None] = OrderedDict()
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_warning = 0.0

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="watermark-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_kafka()

    async def _run(self) -> None:
        while True:
            await self.current(max_age_s=self.interval_s * 0.5)
            await asyncio.sleep(self.interval_s)

    async def _close_kafka(self) -> None:
        consumer, admin, self._consumer, self._admin = self._consumer, self._admin, None, None
        if consumer is not None:
            with contextlib.suppress(Exception):
                await consumer.stop()
        if admin is not None:
            with contextlib.suppress(Exception):
                await admin.close()

    async def _kafka(self) -> tuple[AIOKafkaConsumer, AIOKafkaAdminClient]:
        if self._consumer is None or self._admin is None:
            await self._close_kafka()
            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap, group_id=None,
                                        enable_auto_commit=False, auto_offset_reset="earliest",
                                        request_timeout_ms=4000, fetch_max_wait_ms=100,
                                        max_partition_fetch_bytes=1024 * 1024)
            admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap, request_timeout_ms=4000)
            try:
                await consumer.start()
                await admin.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await consumer.stop()
                with contextlib.suppress(Exception):
                    await admin.close()
                raise
            self._consumer, self._admin = consumer, admin
        return self._consumer, self._admin

    # -- answers -------------------------------------------------------------------------------
    @property
    def age_s(self) -> float | None:
        return None if self.latest is None else time.monotonic() - self.latest_at

    async def current(self, max_age_s: float | None = None, timeout_s: float = READ_TIMEOUT_S) -> Watermark | None:
        """The latest watermark when younger than ``max_age_s`` (default: the reader's ~1 s cache),
        else a new reading; on failure the last good one (``None`` if there never was one)."""
        limit = self.max_age_s if max_age_s is None else max_age_s
        age = self.age_s
        if age is not None and age <= limit:
            return self.latest
        async with self._lock:
            age = self.age_s  # another caller may have read meanwhile
            if age is not None and age <= limit:
                return self.latest
            try:
                wm = await asyncio.wait_for(self.compute(), timeout_s)
            except Exception as exc:  # Kafka or Redis down: keep the last true answer
                self.error = f"{type(exc).__name__}: {exc}"[:300]
                await self._close_kafka()
                if time.monotonic() - self._last_warning > 60:
                    self._last_warning = time.monotonic()
                    log.warning("watermark: reading failed (%s); answering the last good reading", self.error)
                return self.latest
            self.error = None
            self.latest, self.latest_at = wm, time.monotonic()
            if self.on_computed is not None:
                self.on_computed(wm)
            return wm

    # -- one reading ---------------------------------------------------------------------------
    async def compute(self) -> Watermark:
        read_ms = now_ms()
        p = self.settings.topic_prefix

        async def progress(part: int) -> list[Any]:  # one partition's keys share a slot: one MULTI
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hgetall(keys.offsets(p, part, "live"))
                pipe.hgetall(keys.offsets(p, part, "ledger"))
                pipe.llen(keys.ledger_outbox(p, part))
                return await pipe.execute()  # type: ignore[no-any-return]

        read = await asyncio.gather(*(progress(part) for part in self.partitions))
        live_f: dict[Any, Any] = {}
        ledger_f: dict[Any, Any] = {}
        outbox = []
        for live_part, ledger_part, n_outbox in read:
            live_f.update(live_part)
            ledger_f.update(ledger_part)
            outbox.append(n_outbox)
        consumer, admin = await self._kafka()
        names = (self.events, self.orders, self.ledger)
        if any(consumer.partitions_for_topic(t) is None for t in names):  # cached metadata first
            topics = await consumer.topics()  # one metadata request (slow on a cluster of many topics)
            missing = [t for t in names if t not in topics]
            if missing:  # asking a missing topic's offsets would wait for it until the timeout
                raise RuntimeError(f"topics missing: {', '.join(missing)}")
        ends = await consumer.end_offsets([TopicPartition(t, part) for t in (self.events, self.orders, self.ledger)
                                           for part in self.partitions])
        committed = {tp: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(self.group)).items()}

        def fence(raw: dict[Any, Any], topic: str, part: int) -> int:
            value = raw.get(f"{topic}:{part}")
            try:
                return int(value) if value is not None else -1
            except (TypeError, ValueError):
                return -1

        stages: list[tuple[str, str, int, int, int]] = []  # stage, topic, partition, applied, end
        for part in self.partitions:
            ev, od = TopicPartition(self.events, part), TopicPartition(self.orders, part)
            stages.append((LIVE, self.events, part, fence(live_f, self.events, part), ends[ev]))
            stages.append((LEDGER, self.events, part, fence(ledger_f, self.events, part), ends[ev]))
            stages.append((LEDGER, self.orders, part, fence(ledger_f, self.orders, part), ends[od]))
            stages.append((CLICKHOUSE, self.events, part, max(committed.get(ev, -1), 0) - 1, ends[ev]))
        wanted = {(t, part, applied + 1) for _, t, part, applied, end in stages if applied + 1 < end}
        times = await self._record_times(consumer, wanted)
        sources = [StageProgress(s, t, part, applied, end, times.get((t, part, applied + 1)))
                   for s, t, part, applied, end in stages]
        ledger_sink = [StageProgress(CLICKHOUSE, self.ledger, part,
                                     max(committed.get(TopicPartition(self.ledger, part), -1), 0) - 1,
                                     ends[TopicPartition(self.ledger, part)]) for part in self.partitions]
        sample = LedgerSample(
            read_ms,
            ledger_end={part: ends[TopicPartition(self.ledger, part)] for part in self.partitions},
            source_complete_ms=ledger_path_complete(read_ms, sources),
            outbox_empty={part: int(n) == 0 for part, n in zip(self.partitions, outbox, strict=True)},
        )
        self._samples.append(sample)
        wm = combine(read_ms, sources, ledger_sink, self._samples,
                     skew_ms=int(self.settings.watermark_clock_skew_s * 1000))
        self._samples = prune(self._samples, {sp.partition: sp.applied + 1 for sp in ledger_sink})
        return wm

    async def _record_times(self, consumer: AIOKafkaConsumer,
                            wanted: set[tuple[str, int, int]]) -> dict[tuple[str, int, int], int | None]:
        """The time (:func:`record_time_ms`) of the record at each ``(topic, partition, offset)``, or
        of the first record after it still in the log."""
        out = {k: self._times[k] for k in wanted if k in self._times}
        pending = sorted(k for k in wanted if k not in out)
        deadline = time.monotonic() + READ_TIMEOUT_S - 1
        while pending and time.monotonic() < deadline:
            # one round: every partition positioned at its smallest offset still wanted
            round_targets: dict[TopicPartition, int] = {}
            for t, part, off in pending:
                tp = TopicPartition(t, part)
                round_targets[tp] = min(off, round_targets.get(tp, off))
            consumer.assign(list(round_targets))
            for tp, off in round_targets.items():
                consumer.seek(tp, off)
            unresolved = set(round_targets)
            while unresolved and time.monotonic() < deadline:
                batches = await consumer.getmany(*unresolved, timeout_ms=200)
                for tp, records in batches.items():
                    records = [r for r in records if r.offset >= round_targets[tp]]
                    if not records:
                        continue
                    unresolved.discard(tp)
                    for key in [k for k in pending if k[0] == tp.topic and k[1] == tp.partition]:
                        rec = next((r for r in records if r.offset >= key[2]), None)
                        if rec is not None:
                            out[key] = self._remember(key, record_time_ms(rec.value, rec.timestamp))
            consumer.pause(*round_targets)  # no fetching in the background between readings
            pending = [k for k in pending if k not in out]
        return out

    def _remember(self, key: tuple[str, int, int], value: int | None) -> int | None:
        self._times[key] = value
        while len(self._times) > RECORD_TIMES_CACHED:
            self._times.popitem(last=False)
        return value
