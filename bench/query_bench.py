"""Read API latency.

- **earnings at scale**: for each ledger size (1 M / 10 M / 30 M orders_ledger rows; ``--quick``:
  20 k / 100 k; ``LIVELEDGER_BENCH_LEDGER_ROWS=1000000,10000000`` overrides) a fresh database is
  migrated and filled with ``INSERT … SELECT FROM numbers()`` (realistic rows through the real
  materialized views: 2,000 creators (50 quick) with 3 campaigns, 20 streams and 3 links each,
  two of 50 brands each (a brand's one currency: EUR or USD), a year of order times, the hold
  (0/7/14/30 days) by campaign, 30 % coupon orders, every 20th row a refund
  version of the row before), the sink's summarizer builds the summary (timed),
  and the earnings read the API route runs is timed in-process (8 concurrent callers, random
  creators, ``as_of`` now) for the summary path (``api.read_routes.creator_earnings``) and, as the
  baseline in the same run, the old scan path (``creator_earnings_scan``, every order of the
  creator through Python): ``earnings_p99_ms_by_rows`` / ``earnings_scan_p99_ms_by_rows``,
  ``earnings_p99_ms`` = the summary path at 10 M (the largest size measured when 10 M is not);
- **HTTP**: p50/p99 of ``GET /v1/creators/{id}/earnings`` and ``GET /v1/streams/{id}/live`` on a
  small app stack under the same closed loop (``earnings_http``, ``live_p99_ms``).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import fresh_prefix, percentile
from bench.config import BenchConfig
from bench.stack import app_stack
from liveledger.ch import get_client
from liveledger.settings import DEV_ADMIN_TOKEN, Settings
from loadtests.payloads import World, dumps, event_batch

EARNINGS = "/v1/creators/{creator_id}/earnings"
LIVE = "/v1/streams/{stream_id}/live"
CONCURRENCY = 8


async def _load(url: str, token: str, seconds: float) -> dict[str, Any]:
    lat: list[float] = []
    errors = 0
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        deadline = time.perf_counter() + seconds

        async def one() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                resp = await http.get(url)
                lat.append((time.perf_counter() - t) * 1000)
                if resp.status_code != 200:
                    errors += 1

        await asyncio.gather(*(one() for _ in range(CONCURRENCY)))
    return {"requests": len(lat), "errors": errors, "rps": round(len(lat) / seconds, 1),
            "p50_ms": round(percentile(lat, 50), 2), "p99_ms": round(percentile(lat, 99), 2)}


def _seed(ingest_url: str, world: World) -> None:
    import random

    rng = random.Random(3)
    with httpx.Client(headers={"Authorization": f"Bearer {world.api_key}", "Content-Type": "application/json"},
                      timeout=10) as http:
        for i in range(20):
            http.post(f"{ingest_url}/v1/events", content=dumps(event_batch(world, 200, rng, i)))


FULL_ROWS = (1_000_000, 10_000_000, 30_000_000)
QUICK_ROWS = (20_000, 100_000)
FILL_CHUNK = 1_000_000
_FILL = """INSERT INTO {db}.orders_ledger (brand_id, order_id, version, occurred_at, currency, gross_minor,
    refunded_minor, net_minor, via, creator_id, campaign_id, stream_id, click_id, coupon_code, rate_bps, flat_minor,
    hold_days, commission_minor, reversed_minor, skus, source, link_code)
SELECT concat('b', toString(b)), concat('o', toString(o)), v, occurred, if(b < 40, 'EUR', 'USD'),
       gross, refunded, net, via, concat('cr', toString(c)), concat('cmp', toString(c), '-', toString(k % 3)),
       if(via = 'click', concat('st', toString(c), '-', toString(intDiv(k, 3) % 20)), ''),
       if(via = 'click', concat('k', toString(o)), ''), if(via = 'coupon', concat('CODE', toString(c)), ''),
       1000, 25, hold, intDiv(net * 1000, 10000) + if(net > 0, 25, 0),
       intDiv(gross * 1000, 10000) + 25 - (intDiv(net * 1000, 10000) + if(net > 0, 25, 0)),
       [concat('sku', toString(o % 997))], 'shopify', concat('ln', toString(c), '-', toString(k % 3))
FROM (SELECT number AS n, if(n % 20 = 19, n - 1, n) AS o, if(n % 20 = 19, 2, 1) AS v,
             cityHash64(o, 4) % {creators} AS c, cityHash64(o, 6) AS k, (c + k % 2) % 50 AS b,
             if(cityHash64(o, 5) % 10 < 3, 'coupon', 'click') AS via,
             {start:DateTime64(3, 'UTC')} + toIntervalMillisecond(cityHash64(o, 1) % (365 * 86400000)) AS occurred,
             toInt64(1000 + cityHash64(o, 2) % 20000) AS gross,
             if(v = 2, intDiv(gross * toInt64(cityHash64(o, 3) % 101), 100), 0) AS refunded,
             gross - refunded AS net, [0, 7, 14, 30][(c + k % 3) % 4 + 1] AS hold
      FROM numbers({offset}, {count}))"""


def ledger_sizes(cfg: BenchConfig) -> tuple[int, ...]:
    env = os.environ.get("LIVELEDGER_BENCH_LEDGER_ROWS")
    if env:
        return tuple(int(x) for x in env.split(",") if x.strip())
    return QUICK_ROWS if cfg.query_seconds < 2 else FULL_ROWS


def fill_ledger(settings: Settings, database: str, rows: int, creators: int) -> dict[str, Any]:
    """A fresh, migrated ``database`` with ``rows`` orders_ledger rows, and its summary built."""
    from consumers.migrate import migrate
    from consumers.summary import summarize

    client = get_client(settings, database="default", send_receive_timeout=1800)
    try:
        migrate(client, database)
        start = datetime.now(UTC) - timedelta(days=370)
        t0 = time.perf_counter()
        for offset in range(0, rows, FILL_CHUNK):
            count = min(FILL_CHUNK, rows - offset)
            sql = (_FILL.replace("{db}", database).replace("{creators}", str(creators))
                   .replace("{offset}", str(offset)).replace("{count}", str(count)))
            client.command(sql, parameters={"start": start})
        fill_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        pairs = summarize(client, database, margin_s=0)
        summary_s = time.perf_counter() - t1
        counts = {t: int(client.query(f"SELECT count() FROM `{database}`.{t}").result_rows[0][0])
                  for t in ("orders_ledger", "creator_ledger", "creator_summary")}
    finally:
        client.close()
    return {"rows": rows, "creators": creators, "fill_s": round(fill_s, 1), "summary_build_s": round(summary_s, 1),
            "summary_pairs": pairs, "table_rows": counts}


async def _earnings_load(database: str, creators: int, seconds: float, scan: bool,
                         concurrency: int = CONCURRENCY) -> dict[str, Any]:
    from api.read_routes import creator_earnings, creator_earnings_scan
    from api.stores import Ledger

    ledger = Ledger(Settings(clickhouse_database=database))
    fn = creator_earnings_scan if scan else creator_earnings
    rng = random.Random(11)
    lat: list[float] = []
    orders: list[int] = []
    try:
        await fn(ledger, "cr0", None, None, datetime.now(UTC))  # connect and warm up
        deadline = time.perf_counter() + seconds

        async def one() -> None:
            while time.perf_counter() < deadline or not lat:
                t = time.perf_counter()
                body = await fn(ledger, f"cr{rng.randrange(creators)}", None, None, datetime.now(UTC))
                lat.append((time.perf_counter() - t) * 1000)
                orders.append(sum(c["orders"] for c in body["currencies"]))

        await asyncio.gather(*(one() for _ in range(concurrency)))
    finally:
        await ledger.close()
    return {"requests": len(lat), "p50_ms": round(percentile(lat, 50), 2), "p99_ms": round(percentile(lat, 99), 2),
            "orders_per_creator_mean": round(sum(orders) / len(orders), 1)}


def earnings_at_scale(cfg: BenchConfig) -> dict[str, Any]:
    settings = Settings()
    sizes = ledger_sizes(cfg)
    quick = sizes == QUICK_ROWS
    creators = 50 if quick else 2000
    seconds = max(cfg.query_seconds, 1.0)
    out: dict[str, Any] = {"earnings_p99_ms_by_rows": {}, "earnings_scan_p99_ms_by_rows": {}, "by_rows": {},
                           "earnings_one_caller_p99_ms_by_rows": {}, "earnings_scan_one_caller_p99_ms_by_rows": {},
                           "earnings_concurrency": CONCURRENCY}
    for rows in sizes:
        database = fresh_prefix("eq")
        try:
            fill = fill_ledger(settings, database, rows, creators)
            summary = asyncio.run(_earnings_load(database, creators, seconds, scan=False))
            scan = asyncio.run(_earnings_load(database, creators, seconds, scan=True))
            # one caller at a time: the statement's own latency, without queueing on the 2 cores
            single = asyncio.run(_earnings_load(database, creators, seconds, scan=False, concurrency=1))
            single_scan = asyncio.run(_earnings_load(database, creators, seconds, scan=True, concurrency=1))
        except Exception as exc:
            out["by_rows"][str(rows)] = {"skipped": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        finally:
            client = get_client(settings, database="default")
            try:
                client.command(f"DROP DATABASE IF EXISTS `{database}`")
            finally:
                client.close()
        out["by_rows"][str(rows)] = {**fill, "summary": summary, "scan": scan, "summary_one_caller": single,
                                     "scan_one_caller": single_scan}
        out["earnings_one_caller_p99_ms_by_rows"][str(rows)] = single["p99_ms"]
        out["earnings_scan_one_caller_p99_ms_by_rows"][str(rows)] = single_scan["p99_ms"]
        out["earnings_p99_ms_by_rows"][str(rows)] = summary["p99_ms"]
        out["earnings_scan_p99_ms_by_rows"][str(rows)] = scan["p99_ms"]
        print(f"[bench] earnings at {rows:,} ledger rows: summary p99 {summary['p99_ms']} ms, "
              f"scan p99 {scan['p99_ms']} ms ({fill})", flush=True)
    measured = out["earnings_p99_ms_by_rows"]
    if measured:
        at = "10000000" if "10000000" in measured else max(measured, key=int)
        out["earnings_p99_ms"] = measured[at]
        out["earnings_p99_ms_rows"] = int(at)
        out["earnings"] = out["by_rows"][at]["summary"]
    return out


def run(cfg: BenchConfig, log_dir: Path) -> dict[str, Any]:
    out = earnings_at_scale(cfg)
    with app_stack(log_dir / "query-stack", worker=True, sink=True) as (stack, world):
        paths = set(httpx.get(f"{stack.api_url}/openapi.json", timeout=10).json().get("paths", {}))
        missing = [p for p in (EARNINGS, LIVE) if p not in paths]
        if missing:
            return {**out, "skipped": f"the API does not serve {', '.join(missing)} yet"}
        _seed(stack.ingest_url, world)
        time.sleep(2)
        earn = asyncio.run(_load(stack.api_url + EARNINGS.format(creator_id=world.creator_id), DEV_ADMIN_TOKEN,
                                 cfg.query_seconds))
        live = asyncio.run(_load(stack.api_url + LIVE.format(stream_id=world.stream_ids[0]), world.api_key,
                                 cfg.query_seconds))
    return {**out, "earnings_http": earn, "live_p99_ms": live["p99_ms"], "live": live, "concurrency": CONCURRENCY}
