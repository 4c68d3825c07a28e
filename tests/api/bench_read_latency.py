"""Latency of the earnings and live endpoints with 10 M ledger rows (docs/api.md "Performance").

    python -m tests.api.bench_read_latency [--rows 10000000] [--creators 10000] [--requests 300]

Loads ``--rows`` orders (one version each) into a separate ClickHouse database with
``INSERT ... SELECT FROM numbers()`` (orders_ledger + commission_versions; the 0101 view indexes them
by creator), starts a real API process on it, and times sequential HTTP requests. Needs ``make up``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import redis

from consumers.migrate import migrate
from liveledger.ch import get_client
from liveledger.settings import DEV_ADMIN_TOKEN, Settings
from liveledger.storage import redis_keys as keys
from tests.harness import AppStack, SetupClient


def load(ch: object, db: str, rows: int, creators: int) -> float:
    t0 = time.monotonic()
    select = f"""
        SELECT concat('b', toString(number % 200)) AS brand_id, concat('o', toString(number)) AS order_id,
               toUInt32(1) AS version,
               now64(3) - toIntervalSecond(number % (90 * 86400)) AS occurred_at,
               'USD' AS currency, toInt64(1000 + number % 50000) AS gross_minor,
               toInt64(if(number % 10 = 0, (1000 + number % 50000) / 4, 0)) AS refunded_minor,
               gross_minor - refunded_minor AS net_minor,
               if(number % 5 = 0, '', if(number % 7 = 0, 'coupon', 'click')) AS via,
               if(via = '', '', concat('cr', toString(intHash32(number) % {creators}))) AS creator_id,
               if(via = '', '', concat('cmp', toString(number % 200))) AS campaign_id,
               if(via = 'click', concat('s', toString(number % 5000)), '') AS stream_id,
               if(via = 'click', concat('clk', toString(number)), '') AS click_id,
               '' AS coupon_code, toUInt32(if(via = '', 0, 1000)) AS rate_bps, toInt64(0) AS flat_minor,
               toUInt32(30) AS hold_days,
               toInt64(if(via = '', 0, intDiv(net_minor * 1000, 10000))) AS commission_minor,
               toInt64(if(via = '', 0, intDiv(gross_minor * 1000, 10000) - intDiv(net_minor * 1000, 10000)))
                   AS reversed_minor,
               ['p1'] AS skus, 'native' AS source, now64(3) - toIntervalDay(100) AS ingested_at
        FROM numbers({rows})"""
    for table in ("orders_ledger", "commission_versions"):
        ch.command(f"INSERT INTO {db}.{table} {select}")  # type: ignore[attr-defined]
    return time.monotonic() - t0


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--creators", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--keep", action="store_true", help="keep the bench database")
    args = ap.parse_args()

    settings = Settings()
    stack = AppStack(log_dir=Path(tempfile.mkdtemp(prefix="ll-bench-")))
    db = f"bench_{stack.prefix}"
    stack.extra_env["LIVELEDGER_CLICKHOUSE_DATABASE"] = db
    ch = get_client(settings, database="default", send_receive_timeout=3600)
    r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    migrate(ch, db)
    print(f"loading {args.rows:,} ledger rows into {db} ...", flush=True)
    took = load(ch, db, args.rows, args.creators)
    counted = ch.command(f"SELECT count() FROM {db}.orders_ledger")
    indexed = ch.command(f"SELECT count() FROM {db}.creator_ledger")
    print(f"loaded {counted:,} orders_ledger rows (+ the same in commission_versions, {indexed:,} creator index "
          f"rows) in {took:.0f}s", flush=True)
    stack.create_topics()
    try:
        stack.start_api()
        setup = SetupClient(stack.api_url, DEV_ADMIN_TOKEN)
        setup.brand("b0")
        creators = [f"cr{i}" for i in random.Random(1).sample(range(args.creators), 50)]
        for c in creators:
            setup.creator(c)
        setup.creator("host")
        setup.stream("live-bench", "b0", "host")
        now_ms = int(time.time() * 1000)
        p, q = stack.prefix, keys.brand_partition("b0", settings.event_partitions)
        r.hset(keys.stream_counts(p, q, "live-bench"), mapping={
            "views": 50000, "clicks": 9000, "add_to_carts": 3000, "orders": 700, "gmv|USD": 12345678,
            "updated_at": now_ms})
        r.sadd(keys.stream_viewers(p, q, "live-bench"), *[f"v{i}" for i in range(20000)])
        r.zadd(keys.stream_now(p, q, "live-bench"), {f"v{i}": now_ms for i in range(5000)})
        r.hset(keys.stream_products(p, q, "live-bench"), mapping={f"clicks|p{i}": i for i in range(200)})
        http = httpx.Client(base_url=stack.api_url, timeout=60,
                            headers={"Authorization": f"Bearer {DEV_ADMIN_TOKEN}"})
        results: dict[str, list[float]] = {"earnings": [], "live": []}
        orders_seen: list[int] = []
        for i in range(args.requests + 10):
            c = creators[i % len(creators)]
            t0 = time.perf_counter()
            resp = http.get(f"/v1/creators/{c}/earnings")
            dt = (time.perf_counter() - t0) * 1000
            assert resp.status_code == 200, resp.text
            if i >= 10:  # warm-up
                results["earnings"].append(dt)
                orders_seen.append(sum(x["orders"] for x in resp.json()["currencies"]))
        for i in range(args.requests * 3 + 10):
            t0 = time.perf_counter()
            resp = http.get("/v1/streams/live-bench/live")
            dt = (time.perf_counter() - t0) * 1000
            assert resp.status_code == 200
            if i >= 10:
                results["live"].append(dt)
        print(f"earnings: {statistics.mean(orders_seen):.0f} orders per creator on average")
        for name, samples in results.items():
            print(f"{name:>9}: n={len(samples)} p50={pct(samples, 50):.1f} ms p95={pct(samples, 95):.1f} ms "
                  f"p99={pct(samples, 99):.1f} ms max={max(samples):.1f} ms")
    finally:
        stack.stop_all()
        for k in r.scan_iter(f"{stack.prefix}:*"):
            r.delete(k)
        if not args.keep:
            ch.command(f"DROP DATABASE IF EXISTS {db}")


if __name__ == "__main__":
    main()
