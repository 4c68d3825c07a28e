"""The ClickHouse sink on real Kafka and ClickHouse, without the stream workers: what it writes
(column-oriented inserts) is exactly what the row codecs describe, and it stays exactly-once
across a replay with other batch boundaries and a repeated flush (same insert token)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.common import RecordGen
from consumers.clickhouse_sink import ClickHouseSink
from consumers.migrate import migrate
from liveledger.ch import get_client
from liveledger.kafka import create_topics
from liveledger.settings import Settings
from liveledger.storage import clickhouse as R
from liveledger.topics import topic_name
from schemas.time import to_ms
from schemas.wire import DeadLetter, LedgerOrderFact, LedgerRefundFact

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

T0 = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def order_fact(i: int, version: int, rng: random.Random) -> LedgerOrderFact:
    gross = rng.randint(100, 90_000)
    refunded = 0 if version == 1 else rng.randint(0, gross)
    net = gross - refunded
    return LedgerOrderFact(
        kind="order", brand_id=f"b{i % 3}", order_id=f"o{i}", version=version,
        occurred_at=T0 + timedelta(minutes=i), currency="EUR" if i % 4 else "JPY", gross_minor=gross,
        refunded_minor=refunded, net_minor=net, via="click" if i % 2 else "coupon", creator_id=f"c{i % 5}",
        campaign_id="cmp" if i % 3 else None, stream_id=f"s{i % 2}", click_id=f"k{i}" if i % 2 else None,
        coupon_code=None if i % 2 else "SAVE", link_code=f"l{i % 7}", rate_bps=1000, flat_minor=25,
        hold_days=i % 3, commission_minor=net // 10, reversed_minor=(gross - net) // 10, skus=[f"sku{i}"],
        source="shopify")


def ledger_records(rng: random.Random) -> list[bytes]:
    out: list[bytes] = []
    for i in range(60):
        for version in range(1, 1 + i % 3 + 1):
            out.append(order_fact(i, version, rng).to_bytes())
        if i % 4 == 0:
            out.append(LedgerRefundFact(kind="refund", brand_id=f"b{i % 3}", order_id=f"o{i}", refund_id=f"r{i}",
                                        amount_minor=i, currency="EUR", occurred_at=T0).to_bytes())
    out.append(b'{"kind": "nonsense"}')  # not a ledger fact: skipped
    return out


async def produce(settings: Settings, rng: random.Random) -> dict[str, int]:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    gen = RecordGen(["bb0", "bb1"])
    events = 0
    try:
        for _ in range(40):
            key, value = gen.record(rng.randint(1, 60))
            await producer.send_and_wait(topic_name(settings, "events"), value, key=key, partition=rng.randint(0, 1))
            events += 1
        await producer.send_and_wait(topic_name(settings, "events"), b"not json", key=b"bb0", partition=0)
        for value in ledger_records(rng):
            await producer.send_and_wait(topic_name(settings, "ledger"), value, key=b"k", partition=0)
        for n in range(7):
            dl = DeadLetter(reason="bad_json", topic=topic_name(settings, "events"), partition=0, offset=n,
                            index=None if n % 2 else n, detail=f"detail {n}")
            await producer.send_and_wait(topic_name(settings, "dlq"), b"{bad", key=b"bb0", headers=dl.headers(),
                                         partition=0)
    finally:
        await producer.stop()
    return {"records": events}


async def expected(settings: Settings) -> tuple[dict[str, list[tuple[Any, ...]]], dict[TopicPartition, int]]:
    """Every record decoded with the row codecs (the reference the column path must equal)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in R.COLUMNS}
    try:
        tps = [TopicPartition(topic_name(settings, "events"), 0), TopicPartition(topic_name(settings, "events"), 1),
               TopicPartition(topic_name(settings, "ledger"), 0), TopicPartition(topic_name(settings, "dlq"), 0)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for tp, recs in (await consumer.getmany(timeout_ms=500)).items():
                for rec in recs:
                    if tp.topic.endswith(".events"):
                        rows[R.EVENTS] += [tuple(r) for r in R.event_rows(rec.value, rec.key, tp.partition,
                                                                          rec.offset)]
                    elif tp.topic.endswith(".ledger"):
                        out = R.ledger_rows(rec.value)
                        if out is not None:
                            rows[out[0]].append(tuple(out[1]))
                            if out[0] == R.ORDERS_LEDGER:
                                rows[R.COMMISSION_VERSIONS].append(tuple(out[1]))
                    else:
                        rows[R.DEAD_LETTERS].append(tuple(R.dlq_row(rec.value, rec.key, rec.headers,
                                                                    rec.timestamp)))
    finally:
        await consumer.stop()
    return rows, ends


def stored(settings: Settings, table: str, final: bool = True) -> list[tuple[Any, ...]]:
    client = get_client(settings, database=settings.clickhouse_database)
    try:
        times = {"occurred_at", "received_at", "dead_lettered_at"}
        select = ", ".join(f"toUnixTimestamp64Milli({c})" if c in times else c for c in R.COLUMNS[table])
        sql = f"SELECT {select} FROM {table}{' FINAL' if final else ''}"
        return sorted(tuple(r) for r in client.query(sql).result_rows)
    finally:
        client.close()


def unique(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted({repr(r): r for r in rows}.values())


def latest(rows: list[tuple[Any, ...]], key: int) -> list[tuple[Any, ...]]:
    """What a ReplacingMergeTree keeps: per sorting key, the last row (highest version for orders)."""
    out: dict[Any, tuple[Any, ...]] = {}
    for r in rows:
        out[r[:key]] = r if r[:key] not in out or r[2] >= out[r[:key]][2] else out[r[:key]]
    return sorted(out.values())


@contextlib.asynccontextmanager
async def running(sink: ClickHouseSink) -> AsyncIterator[None]:
    task = asyncio.create_task(sink.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until_committed(sink: ClickHouseSink, ends: dict[TopicPartition, int], timeout: float = 60) -> None:
    """Until the sink committed every partition's end offset (so everything is inserted)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if all(sink._committed.get(tp, 0) >= end for tp, end in ends.items() if end):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"sink committed {sink._committed}, want {ends}")


async def test_sink_columns_equal_the_row_codecs_and_replays_stay_exact() -> None:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    settings = Settings(topic_prefix=prefix, clickhouse_database=f"{prefix}_db")
    await create_topics(settings)
    admin = get_client(settings, database="default")
    migrate(admin, settings.clickhouse_database)
    try:
        await produce(settings, random.Random(7))
        want, ends = await expected(settings)
        counts = {t: len(v) for t, v in want.items()}
        assert counts[R.EVENTS] > 100 and counts[R.ORDERS_LEDGER] > 100 and counts[R.DEAD_LETTERS] == 7
        # many small flushes, pipelined: each batch of ~300 rows is committed before the next flushes
        sink = ClickHouseSink(settings, max_rows=300, max_age=0.2)
        async with running(sink):
            await until_committed(sink, ends)
        assert stored(settings, R.ORDERS_LEDGER) == latest(want[R.ORDERS_LEDGER], 2)
        for table in (R.EVENTS, R.COMMISSION_VERSIONS, R.REFUNDS, R.DEAD_LETTERS):  # unique keys: each row once
            assert stored(settings, table, final=False) == sorted(want[table]), table
        # The same batch flushed again (a retry after a lost reply): the insert token drops it.
        cols = R.Columns()
        for row in want[R.REFUNDS]:
            cols.add_row(R.REFUNDS, [row[0], "retry-" + row[1], *row[2:]])
        ranges = {TopicPartition(topic_name(settings, "ledger"), 0): (0, 5)}
        sink._insert_all(cols, ranges)
        sink._insert_all(cols, ranges)
        assert len(stored(settings, R.REFUNDS, final=False)) == 2 * len(want[R.REFUNDS])
        # A replay from the start with other batch boundaries (a new group): tokens differ, rows
        # arrive twice, and FINAL folds them back to the same facts.
        replay = ClickHouseSink(settings, max_rows=1000, max_age=0.1, group_id=f"{prefix}-replay")
        async with running(replay):
            await until_committed(replay, ends)
        assert stored(settings, R.EVENTS) == unique(want[R.EVENTS])
        assert stored(settings, R.ORDERS_LEDGER) == latest(want[R.ORDERS_LEDGER], 2)
        assert stored(settings, R.COMMISSION_VERSIONS) == unique(want[R.COMMISSION_VERSIONS])
        assert stored(settings, R.DEAD_LETTERS) == unique(want[R.DEAD_LETTERS])
    finally:
        admin.command(f"DROP DATABASE IF EXISTS `{settings.clickhouse_database}`")
        admin.close()
        kafka = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await kafka.start()
        try:
            await kafka.delete_topics([t for t in await kafka.list_topics() if t.startswith(prefix)])
        finally:
            await kafka.close()


def test_epoch_ms_is_exact() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=rng.randint(-10**15, 10**17))
        assert R.epoch_ms(dt) == to_ms(dt)
