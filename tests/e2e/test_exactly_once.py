"""Exactly-once effects of the stream worker and the ClickHouse sink against the real services.

A workload with duplicates, late clicks, refunds before orders and invalid records is produced
straight to Kafka under a fresh topic prefix (hence a fresh Redis namespace and ClickHouse database);
the worker and the sink run as subprocesses, are killed with SIGKILL mid-run and restarted, and a
second worker joins and leaves. Afterwards Redis and ClickHouse must equal the oracle exactly.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from consumers.migrate import run as migrate_run
from liveledger.ch import get_client
from liveledger.redis_client import redis_client, sum_hashes
from liveledger.settings import Settings
from liveledger.storage import redis_keys as keys
from liveledger.topics import topic_name
from tests.streams import dataset, kit

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse, pytest.mark.e2e, pytest.mark.slow]

LOGS = kit.REPO / ".devstack" / "logs"


def _log(settings: Settings, name: str) -> Path:
    LOGS.mkdir(parents=True, exist_ok=True)
    return LOGS / f"test-{settings.topic_prefix}-{name}.log"


async def redis_view(settings: Settings) -> dict[str, Any]:
    p, n = settings.topic_prefix, settings.event_partitions
    r: Any = redis_client(settings, decode_responses=True)
    try:
        # a stream's keys are in its brand's partition (slot); reading every partition needs no brand
        streams: dict[str, Any] = {}
        for s in ("s1", "s2", "s3"):
            h = await sum_hashes(r, [keys.stream_counts(p, q, s) for q in range(n)])
            streams[s] = {"views": h.get("views", 0), "clicks": h.get("clicks", 0),
                          "add_to_carts": h.get("add_to_carts", 0), "orders": h.get("orders", 0),
                          "unique_viewers": sum([await r.scard(keys.stream_viewers(p, q, s)) for q in range(n)]),
                          "gmv": {k.split("|", 1)[1]: v for k, v in h.items() if k.startswith("gmv|") and v}}
        creators: dict[str, dict[str, int]] = {}
        ids = {k.split(":")[4] for k in await r.keys(f"{p}:*:creator:*:earnings")}  # <p>:{<p>:<q>}:creator:<id>
        for cid in sorted(ids):  # a creator's earnings: one hash per partition, summed
            h = await sum_hashes(r, keys.creator_earnings_keys(p, n, cid))
            c = {"orders": h.get("USD|orders", 0), "net": h.get("USD|net_minor", 0),
                 "commission": h.get("USD|commission_minor", 0), "reversed": h.get("USD|reversed_minor", 0)}
            if any(c.values()):
                creators[cid] = c
        brands = {}
        for b in ("b1", "b2"):
            h = await r.hgetall(keys.brand_sales(p, keys.brand_partition(b, n), b))
            brands[b] = {"orders": int(h.get("USD|orders", 0)), "net": int(h.get("USD|net_minor", 0))}
        stats = await sum_hashes(r, keys.stats_keys(p, n))
        return {"streams": streams, "creators": creators, "brands": brands, "stats": stats}
    finally:
        await r.aclose()


def clickhouse_view(settings: Settings) -> dict[str, Any]:
    client = get_client(settings, database=settings.clickhouse_database)
    try:
        streams: dict[str, Any] = defaultdict(lambda: {"views": 0, "clicks": 0, "add_to_carts": 0})
        sql = "SELECT stream_id, type, action, count() FROM events FINAL GROUP BY stream_id, type, action"
        for stream_id, typ, action, n in client.query(sql).result_rows:
            if typ == "view" and action == "join":
                streams[stream_id]["views"] += n
            elif typ == "click":
                streams[stream_id]["clicks"] += n
            elif typ == "add_to_cart":
                streams[stream_id]["add_to_carts"] += n
        creators = {}
        for creator, orders, net, com, rev in client.query(
                "SELECT creator_id, count(), sum(net_minor), sum(commission_minor), sum(reversed_minor) "
                "FROM orders_ledger FINAL WHERE creator_id != '' GROUP BY creator_id").result_rows:
            creators[creator] = {"orders": orders, "net": net, "commission": com, "reversed": rev}
        stream_orders = {s: (n, g) for s, n, g in client.query(
            "SELECT stream_id, count(), sum(net_minor) FROM orders_ledger FINAL WHERE via = 'click' GROUP BY stream_id"
        ).result_rows}
        refunds = client.query("SELECT count() FROM refunds FINAL").result_rows[0][0]
        dlq: dict[str, int] = {str(k): int(v) for k, v in client.query(
            "SELECT reason, count() FROM dead_letters FINAL GROUP BY reason").result_rows}
        return {"streams": dict(streams), "creators": creators, "stream_orders": stream_orders, "refunds": refunds,
                "dlq": dlq}
    finally:
        client.close()


async def dlq_reasons(settings: Settings) -> dict[str, int]:
    consumer = AIOKafkaConsumer(topic_name(settings, "dlq"), bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", group_id=None, enable_auto_commit=False)
    await consumer.start()
    seen: dict[tuple[str, str, str, str], str] = {}
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break
            for records in batch.values():
                for rec in records:
                    h = {k: v.decode() for k, v in rec.headers}
                    assert rec.value is not None
                    assert {"dlq.reason", "dlq.topic", "dlq.partition", "dlq.offset"} <= h.keys()
                    seen[(h["dlq.topic"], h["dlq.partition"], h["dlq.offset"], h.get("dlq.index", "-1"))] = \
                        h["dlq.reason"]
    finally:
        await consumer.stop()
    out: dict[str, int] = defaultdict(int)
    for reason in seen.values():
        out[reason] += 1
    return dict(out)


async def conversion_live_and_ledger(settings: Settings) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """Per (brand, creator): the live conversion hashes in Redis, and the same numbers computed
    from ClickHouse (counted clicks in the events table, attributed orders in the ledger)."""
    p = settings.topic_prefix
    r: Any = redis_client(settings, decode_responses=True)
    live: dict[Any, Any] = {}
    try:
        for brand in ("b1", "b2"):
            q = keys.brand_partition(brand, settings.event_partitions)
            for creator in await r.smembers(keys.brand_creators(p, q, brand)):
                h = await r.hgetall(keys.creator_conversion(p, q, brand, creator))
                row = {f: int(h.get(f, 0)) for f in ("clicks", "orders", "click_orders", "coupon_orders",
                                                     "gmv|USD", "commission|USD")}
                if any(row.values()):
                    live[(brand, creator)] = row
    finally:
        await r.aclose()
    client = get_client(settings, database=settings.clickhouse_database)
    ledger: dict[Any, Any] = defaultdict(lambda: dict.fromkeys(
        ("clicks", "orders", "click_orders", "coupon_orders", "gmv|USD", "commission|USD"), 0))
    try:
        for brand, creator, n in client.query(
                "SELECT brand_id, creator_id, uniqExact(event_id) FROM events "
                "WHERE type = 'click' AND creator_id != '' GROUP BY brand_id, creator_id").result_rows:
            ledger[(brand, creator)]["clicks"] = int(n)
        for brand, creator, n, nc, nk, gmv, com in client.query(
                "SELECT brand_id, creator_id, count(), countIf(via = 'click'), countIf(via = 'coupon'), "
                "sum(net_minor), sum(commission_minor) FROM orders_ledger FINAL WHERE creator_id != '' "
                "GROUP BY brand_id, creator_id").result_rows:
            ledger[(brand, creator)].update({"orders": int(n), "click_orders": int(nc), "coupon_orders": int(nk),
                                             "gmv|USD": int(gmv), "commission|USD": int(com)})
    finally:
        client.close()
    return live, {k: v for k, v in ledger.items() if any(v.values())}


async def settle_conversion(settings: Settings, timeout: float = 60) -> dict[Any, Any]:
    async def same() -> dict[Any, Any] | None:
        live, ledger = await conversion_live_and_ledger(settings)
        return live if live and live == ledger else None

    try:
        return await kit.wait_for(same, timeout=timeout, interval=1.0)  # type: ignore[no-any-return]
    except TimeoutError:
        live, ledger = await conversion_live_and_ledger(settings)
        assert live == ledger
        raise


def expected_streams(truth: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for s, v in truth["streams"].items():
        out[s] = {**{k: v[k] for k in ("views", "clicks", "add_to_carts", "orders", "unique_viewers")},
                  "gmv": {c: n for c, n in v["gmv"].items() if n}}
    return out


async def settle(settings: Settings, w: dataset.Workload, timeout: float = 120) -> dict[str, Any]:
    want_streams = expected_streams(w.truth)
    want_creators = w.truth["creators"]

    async def done() -> dict[str, Any] | None:
        got = await redis_view(settings)
        if got["streams"] == want_streams and got["creators"] == want_creators:
            return got
        return None

    try:
        return await kit.wait_for(done, timeout=timeout, interval=1.0)  # type: ignore[no-any-return]
    except TimeoutError:
        got = await redis_view(settings)
        assert got["streams"] == want_streams
        assert got["creators"] == want_creators
        raise


async def settle_clickhouse(settings: Settings, w: dataset.Workload, timeout: float = 90) -> dict[str, Any]:
    want = w.truth

    def ok() -> dict[str, Any] | None:
        got = clickhouse_view(settings)
        if got["creators"] == want["creators"] and got["refunds"] == want["refunds"] and all(
                got["streams"].get(s, {}) == {k: v[k] for k in ("views", "clicks", "add_to_carts")}
                for s, v in want["streams"].items()):
            return got
        return None

    try:
        return await kit.wait_for(ok, timeout=timeout, interval=1.0)  # type: ignore[no-any-return]
    except TimeoutError:
        got = clickhouse_view(settings)
        assert got["creators"] == want["creators"]
        assert got["refunds"] == want["refunds"]
        raise


async def _prepare(settings: Settings, w: dataset.Workload) -> None:
    await kit.prepare_topics(settings)
    await asyncio.to_thread(migrate_run, settings)
    await kit.produce(settings, w.setup)


async def test_pipeline_exact_once() -> None:
    settings = kit.fresh_settings()
    w = dataset.build(seed=1, n_chunks=3)
    await _prepare(settings, w)
    worker = kit.spawn(settings, "streams", "worker", log=_log(settings, "worker"))
    sink = kit.spawn(settings, "consumers", "clickhouse", log=_log(settings, "sink"))
    try:
        for chunk in w.chunks:
            await kit.produce(settings, chunk)
        got = await settle(settings, w)
        assert got["brands"] == {b: {"orders": v["orders"], "net": v["net"]} for b, v in w.truth["brands"].items()}
        stats = got["stats"]
        assert int(stats.get("orders_dead_lettered", 0)) + int(stats.get("records_dead_lettered", 0)) == sum(
            n for r, n in w.invalid_reasons.items() if r in ("invalid_json", "missing_field", "invalid_currency"))
        assert int(stats["events_deduplicated"]) > 0
        assert int(stats["orders_deduplicated"]) + int(stats["refunds_deduplicated"]) > 0
        ch = await settle_clickhouse(settings, w)
        for s, v in w.truth["streams"].items():
            n, gmv = ch["stream_orders"].get(s, (0, 0))
            assert (n, gmv) == (v["orders"], v["gmv"].get("USD", 0))
        # every invalid record / event is in the dead-letter topic with its reason
        await kit.wait_for(lambda: dlq_reasons(settings), timeout=30)
        assert await dlq_reasons(settings) == dict(w.invalid_reasons)
        ch_dlq = await kit.wait_for(lambda: clickhouse_view(settings)["dlq"] == dict(w.invalid_reasons), timeout=30)
        assert ch_dlq
        # per-creator conversion, live (Redis) = the ledger and the stored clicks (ClickHouse)
        conv = await settle_conversion(settings)
        assert sum(v["click_orders"] for v in conv.values()) > 0
        assert sum(v["coupon_orders"] for v in conv.values()) > 0
        truth_orders = {c: v["orders"] for c, v in w.truth["creators"].items() if v["orders"]}
        assert {c: v["orders"] for (_, c), v in conv.items() if v["orders"]} == truth_orders
    finally:
        kit.stop(worker)
        kit.stop(sink)


async def ledger_fences(settings: Settings) -> int:
    """Sum of the ledger consumer's Redis offset fences (grows while a worker applies records)."""
    r: Any = redis_client(settings, decode_responses=True)
    try:
        fences = await sum_hashes(r, [keys.offsets(settings.topic_prefix, q, "ledger")
                                      for q in range(settings.event_partitions)])
        return sum(v + 1 for v in fences.values())
    finally:
        await r.aclose()


async def until_processing(settings: Settings, worker: subprocess.Popen[bytes], since: int,
                           timeout: float = 40) -> int:
    """Wait until ``worker`` owns partitions (its log says so) and records are applied (the fences pass
    ``since``), so a kill lands on a worker that is doing work, not on one still joining the group."""
    mark = f"[{worker.pid}] [INFO] ledger path: partitions assigned".encode()

    async def moved() -> int:
        if mark not in _log(settings, "worker").read_bytes():
            return 0
        now = await ledger_fences(settings)
        return now if now > since else 0
    return int(await kit.wait_for(moved, timeout=timeout, interval=0.1))


@pytest.mark.chaos
async def test_kill9_worker_and_sink_mid_run_and_workers_joining_and_leaving() -> None:
    """kill -9 of the worker 5 times mid-run (once right after a second worker joined, while the
    rebalance is in progress) and of the sink 3 times; a second and a third worker join and leave."""
    settings = kit.fresh_settings()
    w = dataset.build(seed=2, n_chunks=8)
    await _prepare(settings, w)
    rng = random.Random(5)
    worker = kit.spawn(settings, "streams", "worker", log=_log(settings, "worker"))
    sink = kit.spawn(settings, "consumers", "clickhouse", log=_log(settings, "sink"))
    extra: dict[str, subprocess.Popen[bytes]] = {}
    fences = 0
    try:
        for i, chunk in enumerate(w.chunks):
            produce = asyncio.create_task(kit.produce(settings, chunk))
            await asyncio.sleep(rng.uniform(0.5, 2.0))
            if i == 2:  # a second worker joins: a rebalance starts ...
                extra["worker2"] = kit.spawn(settings, "streams", "worker", log=_log(settings, "worker2"))
                await asyncio.sleep(0.5)
            if i in (1, 2, 3, 4, 5):  # kill -9 the worker mid-run (at i == 2: during that rebalance)
                if i != 2:
                    fences = await until_processing(settings, worker, fences)
                kit.kill9(worker)
                worker = kit.spawn(settings, "streams", "worker", log=_log(settings, "worker"))
            if i in (2, 4, 6):  # kill -9 the sink mid-run, restart it
                kit.kill9(sink)
                sink = kit.spawn(settings, "consumers", "clickhouse", log=_log(settings, "sink"))
            if i == 4:  # a third worker joins ...
                extra["worker3"] = kit.spawn(settings, "streams", "worker", log=_log(settings, "worker3"))
            if i == 6:  # ... and the second and third leave
                for name in ("worker2", "worker3"):
                    kit.stop(extra.pop(name))
            await produce
        await settle(settings, w, timeout=180)
        await settle_clickhouse(settings, w, timeout=120)
        await settle_conversion(settings)
    finally:
        for p in (worker, sink, *extra.values()):
            kit.stop(p)
