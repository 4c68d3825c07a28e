"""ClickHouse sink: events, ledger and dead-letter topics → ClickHouse, batch → flush → commit.

- **batch**: records from ``getmany`` are turned into rows (:mod:`liveledger.storage.clickhouse`) until a flush is
  due (``max_rows`` rows or ``max_age`` seconds);
- **flush**: one insert per table with an ``insert_deduplication_token`` derived from the
  topic-partition offset ranges (tables keep a non-replicated dedup window); the tables are
  ReplacingMergeTree on the facts' natural keys, so reads with FINAL are exact even when a
  replay after a crash builds different batches;
- **commit**: Kafka offsets are committed only after every insert of the flush succeeded. A failed
  insert is retried (the same rows, the same token) while consumption waits.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from clickhouse_connect.driver.client import Client

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
                 group_id: str | None = None) -> None:
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
        self._rows = R.Rows()
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
            self._rows.tables[R.EVENTS].extend(R.event_rows(rec.value, rec.key, tp.partition, rec.offset))
        elif tp.topic == self.ledger_topic:
            out = R.ledger_rows(rec.value)
            if out is not None:
                table, row = out
                self._rows.tables[table].append(row)
                if table == R.ORDERS_LEDGER:
                    self._rows.tables[R.COMMISSION_VERSIONS].append(row)
        elif tp.topic == self.dlq_topic:
            self._rows.tables[R.DEAD_LETTERS].append(R.dlq_row(rec.value, rec.key, rec.headers, rec.timestamp))
        first, _ = self._ranges.get(tp, (rec.offset, rec.offset))
        self._ranges[tp] = (first, rec.offset)

    def due(self) -> bool:
        return bool(self._ranges) and (len(self._rows) >= self.max_rows
                                       or time.monotonic() - self._opened >= self.max_age)

    # -- flush ---------------------------------------------------------------------------------
    def _insert_all(self, rows: R.Rows, ranges: dict[TopicPartition, tuple[int, int]]) -> None:
        if self._client is None:
            self._client = get_client(self.settings, database=self.database)
        for table, data in rows.tables.items():
            if data:
                self._client.insert(table, data, column_names=R.COLUMNS[table], database=self.database,
                                    settings={"insert_deduplication_token": dedup_token(table, ranges)})
        for table, data in rows.tables.items():  # counted once every insert of the flush succeeded
            if data:
                metrics.SINK_ROWS.labels(table).inc(len(data))

    async def flush(self) -> None:
        rows, ranges = self._rows, self._ranges
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
        offsets = {tp: last + 1 for tp, (_, last) in self._ranges.items()}
        self._rows, self._ranges, self._opened = R.Rows(), {}, time.monotonic()
        await consumer.commit(offsets)
        self._committed.update(offsets)

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
                    await self.flush()
                    await self.commit(consumer)
                elif not self._ranges:
                    self._opened = time.monotonic()
                self._log_rate()
        finally:
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
