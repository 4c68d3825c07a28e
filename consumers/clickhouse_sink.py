"""ClickHouse sink: events, ledger and dead-letter topics → ClickHouse, batch → flush → commit.

- **batch**: records from ``getmany`` are decoded straight into column lists
  (:class:`liveledger.storage.clickhouse.Columns`, no per-row lists or dicts) until a flush is due
  (``max_rows`` rows or ``max_age`` seconds);
- **flush**: one column-oriented insert per table (``column_oriented=True``) with an
  ``insert_deduplication_token`` derived from the topic-partition offset ranges (tables keep a
  non-replicated dedup window); the tables are ReplacingMergeTree on the facts' natural keys, so
  reads with FINAL are exact even when a replay after a crash builds different batches;
- **pipelined**: the flush runs in a thread while the loop decodes the next batch; at most one
  flush is in flight, and the next one starts only after the previous one was committed;
- **summary**: after flushes with ledger rows (and again while anything is due), at most every
  ``summary_interval`` seconds, the per-creator earnings summary is rebuilt for the (creator,
  month) pairs written since (:mod:`consumers.summary`, in the same single flight as the inserts);
  a failure only leaves those months to be read from creator_ledger;
- **commit**: Kafka offsets of a batch are committed only after every insert of its flush
  succeeded. A failed insert is retried (the same columns, the same token) while the next batch
  waits (consumption stops once it is due too).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from clickhouse_connect.driver.client import Client

from consumers.summary import summarize
from liveledger import metrics
from liveledger.ch import get_client
from liveledger.settings import Settings
from liveledger.storage import clickhouse as R
from liveledger.topics import topic_name

log = logging.getLogger(__name__)

CONSUMER = "clickhouse"  # the consumer label of its lag, the path label of its flushes
_FLUSH_SIZE = metrics.FLUSH_SIZE.labels(CONSUMER)
_FLUSH_SECONDS = metrics.FLUSH_DURATION.labels(CONSUMER)


def dedup_token(table: str, ranges: dict[TopicPartition, tuple[int, int]]) -> str:
    spec = ",".join(f"{tp.topic}-{tp.partition}-{a}-{b}" for tp, (a, b) in sorted(ranges.items()))
    return f"{table}:{hashlib.sha256(spec.encode()).hexdigest()[:32]}"


class ClickHouseSink:
    def __init__(self, settings: Settings, *, max_rows: int = 20000, max_age: float = 1.0,
                 group_id: str | None = None, summary_interval: float = 5.0) -> None:
        self.settings = settings
        self.max_rows = max_rows
        self.max_age = max_age
        prefix = settings.topic_prefix
        self.group_id = group_id or ("liveledger-clickhouse" if prefix == "ll" else f"{prefix}-liveledger-clickhouse")
        self.events_topic = topic_name(settings, "events")
        self.ledger_topic = topic_name(settings, "ledger")
        self.dlq_topic = topic_name(settings, "dlq")
        self.database = settings.clickhouse_database
        self._client: Client | None = None
        self._rows = R.Columns()
        self._inflight: asyncio.Task[None] | None = None
        self.summary_interval = summary_interval
        self._summary_wanted = True  # a start may find months left dirty by the previous process
        self._last_summary = 0.0
        self._ranges: dict[TopicPartition, tuple[int, int]] = {}
        self._opened = time.monotonic()
        self._consumer: AIOKafkaConsumer | None = None
        self._committed: dict[TopicPartition, int] = {}  # next offset to apply, per partition (for lag)
        self._stats_rows = 0
        self._stats_flushes = 0
        self._last_log = time.monotonic()

    # -- batch ---------------------------------------------------------------------------------
    def add(self, tp: TopicPartition, rec: Any) -> None:
        if tp.topic == self.events_topic:
            self._rows.add_events(rec.value, rec.key, tp.partition, rec.offset)
        elif tp.topic == self.ledger_topic:
            self._rows.add_ledger(rec.value)
        elif tp.topic == self.dlq_topic:
            self._rows.add_row(R.DEAD_LETTERS, R.dlq_row(rec.value, rec.key, rec.headers, rec.timestamp))
        first, _ = self._ranges.get(tp, (rec.offset, rec.offset))
        self._ranges[tp] = (first, rec.offset)

    def due(self) -> bool:
        return bool(self._ranges) and (len(self._rows) >= self.max_rows
                                       or time.monotonic() - self._opened >= self.max_age)

    # -- flush ---------------------------------------------------------------------------------
    def _insert_all(self, rows: R.Columns, ranges: dict[TopicPartition, tuple[int, int]]) -> None:
        if self._client is None:
            self._client = get_client(self.settings, database=self.database)
        for table, columns in rows.tables.items():
            if rows.counts[table]:
                self._client.insert(table, columns, column_names=R.COLUMNS[table], database=self.database,
                                    column_oriented=True,
                                    settings={"insert_deduplication_token": dedup_token(table, ranges)})
        for table, n in rows.counts.items():  # counted once every insert of the flush succeeded
            if n:
                metrics.SINK_ROWS.labels(table).inc(n)

    async def flush(self) -> None:
        """Insert the current batch (retrying until it is in); the batch stays current (commit takes it)."""
        await self._flush(self._rows, self._ranges)

    async def _flush(self, rows: R.Columns, ranges: dict[TopicPartition, tuple[int, int]]) -> None:
        delay = 0.2
        started = time.perf_counter()
        while True:
            try:
                await asyncio.to_thread(self._insert_all, rows, ranges)
                break
            except Exception as exc:  # ClickHouse down or overloaded: keep the batch, retry, don't commit
                metrics.SINK_INSERT_ERRORS.inc()
                log.warning("clickhouse insert failed (%s); retrying in %.1fs", exc, delay)
                self._client = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        _FLUSH_SECONDS.observe(time.perf_counter() - started)
        _FLUSH_SIZE.observe(len(rows))
        self._stats_rows += len(rows)
        self._stats_flushes += 1

    # -- commit --------------------------------------------------------------------------------
    async def commit(self, consumer: AIOKafkaConsumer) -> None:
        ranges = self._ranges
        self._rows, self._ranges, self._opened = R.Columns(), {}, time.monotonic()
        await self._commit(consumer, ranges)

    async def _commit(self, consumer: AIOKafkaConsumer, ranges: dict[TopicPartition, tuple[int, int]]) -> None:
        offsets = {tp: last + 1 for tp, (_, last) in ranges.items()}
        await consumer.commit(offsets)
        self._committed.update(offsets)

    async def _flush_commit(self, consumer: AIOKafkaConsumer, rows: R.Columns,
                            ranges: dict[TopicPartition, tuple[int, int]]) -> None:
        await self._flush(rows, ranges)
        await self._commit(consumer, ranges)
        if rows.counts[R.ORDERS_LEDGER]:
            self._summary_wanted = True

    def _summarize(self) -> int:
        if self._client is None:
            self._client = get_client(self.settings, database=self.database)
        return summarize(self._client, self.database)

    async def summarize(self) -> None:
        """Rebuild the due (creator, month) summaries (see module doc); errors are logged."""
        self._last_summary = time.monotonic()
        try:
            rebuilt = await asyncio.to_thread(self._summarize)
        except Exception as exc:
            log.warning("creator summary rebuild failed (%s); those months are read from creator_ledger", exc)
            self._client = None
            return
        self._summary_wanted = rebuilt > 0  # again until nothing is due (marks within the margin)

    def _summary_due(self) -> bool:
        return (self._summary_wanted and self.summary_interval > 0
                and time.monotonic() - self._last_summary >= self.summary_interval)

    async def _settle(self) -> None:
        """Wait for the flush in flight (and its commit); its failure stops the sink."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _start_flush(self, consumer: AIOKafkaConsumer) -> None:
        """Hand the current batch to a background flush+commit (after the previous one settled)."""
        await self._settle()
        rows, ranges = self._rows, self._ranges
        self._rows, self._ranges, self._opened = R.Columns(), {}, time.monotonic()
        self._inflight = asyncio.create_task(self._flush_commit(consumer, rows, ranges))

    async def report_lag(self) -> None:
        """Consumer lag per assigned partition for /metrics: the last fetched high watermark minus
        the committed offset (this process's own commits; the group's, fetched once, before)."""
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        for tp in set(self._committed) - assigned:  # revoked: another member commits it now
            del self._committed[tp]
        lags: dict[tuple[str, int], int] = {}
        for tp in sorted(assigned):
            high = consumer.highwater(tp)
            if high is None:
                continue
            if tp not in self._committed:
                committed = await consumer.committed(tp)
                if committed is None:
                    continue
                self._committed[tp] = committed
            lags[(tp.topic, tp.partition)] = high - self._committed[tp]
        metrics.set_lag(CONSUMER, lags)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            self.events_topic, self.ledger_topic, self.dlq_topic,
            bootstrap_servers=self.settings.kafka_bootstrap, group_id=self.group_id,
            enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=200,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        log.info("clickhouse sink started: %s, %s, %s → database %s (group %s)", self.events_topic,
                 self.ledger_topic, self.dlq_topic, self.database, self.group_id)
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                for tp, records in batches.items():
                    for rec in records:
                        self.add(tp, rec)
                if self.due():
                    await self._start_flush(consumer)
                elif not self._ranges:
                    self._opened = time.monotonic()
                self._log_rate()
                if self._inflight is not None and self._inflight.done():
                    await self._settle()
                if self._inflight is None and self._summary_due():
                    self._inflight = asyncio.create_task(self.summarize())
        finally:
            task, self._inflight = self._inflight, None
            if task is not None:  # stopping: let the flush in flight finish and commit (else cancel it)
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            self._consumer = None
            try:
                await consumer.stop()
            except Exception as exc:
                log.debug("sink consumer stop: %s", exc)

    def _log_rate(self) -> None:
        now = time.monotonic()
        if now - self._last_log >= 10:
            if self._stats_rows:
                log.info("clickhouse sink: %d rows in %d flushes (%.0f rows/s)", self._stats_rows,
                         self._stats_flushes, self._stats_rows / (now - self._last_log))
            self._stats_rows = self._stats_flushes = 0
            self._last_log = now
