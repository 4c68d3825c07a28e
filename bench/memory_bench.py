"""Bounded memory (issue 12): ledger assignment and worker RSS with many clicks in a partition, Redis
bytes per million events, and Redis ``used_memory`` over a simulated month.

Everything runs against a **private** redis-server on a free port (tests/chaos/services.py), never the
shared dev Redis, and drives the real code paths (``LivePath.process``, ``LedgerPath.step``) with
records from an in-memory log (no Kafka: the outbox of each step is cleared as if produced).

(a) Assignment. The partition holds N clicks (1 M in the full run), written in the layout each contender
    reads. *Baseline* = the old path: ``HGETALL`` of the partition's four state hashes into worker
    dicts (:func:`full_load`, what ``LedgerStore.load`` did before). *Now* = ``LedgerPath.load`` (the
    fences; state is read per step) plus one step of an order naming one of the clicks. Each runs in its
    own Python process, so its RSS is its own (``VmRSS`` after the load and step). Beside it the Redis
    bytes per click of both layouts (one hash field vs one string key with a TTL).
(b) The month. Event time spans 30 days (streams that start and end, viewers, clicks, carts, orders
    of earlier clicks, refunds); wall time is compressed: one simulated day = ``day_s`` seconds, and
    every TTL is scaled by the same factor (``Retention.scaled``: TTLs are relative and wall-clock, set
    at each write, so shrinking them is what makes a month fit in a minute). ``used_memory`` is sampled
    at the end of each day. Bytes per million events = growth over the first day (nothing can expire
    yet: the shortest TTL is 7 days) / events of that day.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition

from bench.config import BenchConfig
from liveledger.settings import Settings
from liveledger.setup_state import SetupReplica
from liveledger.storage import redis_keys as keys
from liveledger.storage.retention import DEFAULT, Retention
from liveledger.topics import topic_name
from streams.gate import OffsetGate
from streams.ledger_path import LedgerPath
from streams.live_path import LivePath
from streams.redis_state import LedgerStore, LiveStore, Notifier
from tests.streams.kit import Msg

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "mb"
DAY = timedelta(days=1)
WINDOW_DAYS = 7
OLD_TABLES = ("clicks", "orders", "waiting", "seen")



def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- the private Redis --------------------------------------------------------------------------------
def _server(root: Path) -> Any:
    sys.path.insert(0, str(ROOT))
    from tests.chaos.services import RedisServer  # the chaos tests' process wrapper

    class BenchRedis(RedisServer):
        def prepare(self) -> None:
            self.conf.write_text("\n".join([
                f"port {self.port}", "bind 127.0.0.1", "protected-mode yes", "daemonize no", 'logfile ""',
                f"dir {root}", "appendonly no", 'save ""', "hz 100", "active-expire-effort 10",
                "maxmemory-policy noeviction", ""]))

    return BenchRedis(root)


class PrivateRedis:
    """redis-server on a free port, no persistence; active expiry at full effort (the month compresses
    a day into seconds, so keys expire ~10^4-10^5 times faster than in production)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ll-memory-bench-"))
        self.server = _server(self.root)

    async def __aenter__(self) -> PrivateRedis:
        await self.server.start()
        return self

    async def __aexit__(self, *_: Any) -> None:
        self.server.kill9()
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return str(self.server.url)


async def used_memory(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def flush(client: aioredis.Redis) -> None:
    """FLUSHDB (freed in the background), then wait until it is freed: used_memory deltas start clean."""
    await client.flushdb(asynchronous=True)
    while int((await client.info("memory")).get("lazyfree_pending_objects", 0)):
        await asyncio.sleep(0.1)


# -- (a) assignment with N clicks ---------------------------------------------------------------------
def click_value(i: int, now_ms: int) -> dict[str, Any]:
    return {"creator_id": f"cr{i % 50}", "campaign_id": "cmp", "stream_id": f"s{i % 200}",
            "product_id": f"p{i % 300}", "link_code": None, "occurred_ms": now_ms - i, "src": f"mb.events:0:{i}"}


async def write_clicks(client: aioredis.Redis, n: int, layout: str) -> float:
    """N clicks of partition 0 in the old layout (one hash) or the new one (a string with TTL each);
    → Redis bytes per click."""
    before = await used_memory(client)
    now = int(time.time() * 1000)
    ttl = DEFAULT.click_ms(WINDOW_DAYS)
    chunk = 5000
    for start in range(0, n, chunk):
        async with client.pipeline(transaction=False) as pipe:
            if layout == "hash":
                pipe.hset(keys.ledger_state(PREFIX, 0, "clicks"), mapping={
                    f"b1:c{i}": orjson.dumps(click_value(i, now)) for i in range(start, min(n, start + chunk))})
            else:
                for i in range(start, min(n, start + chunk)):
                    pipe.set(keys.ledger_entry(PREFIX, 0, "clicks", f"b1:c{i}"), orjson.dumps(click_value(i, now)),
                             px=ttl)
            await pipe.execute()
    return (await used_memory(client) - before) / n


async def full_load(client: aioredis.Redis, partition: int) -> dict[str, dict[str, Any]]:
    """The old assignment (the baseline): every state hash of the partition, decoded into worker dicts."""
    async with client.pipeline(transaction=True) as pipe:
        for table in OLD_TABLES:
            pipe.hgetall(keys.ledger_state(PREFIX, partition, table))
        res = await pipe.execute()
    return {t: {(k.decode() if isinstance(k, bytes) else k): orjson.loads(v) for k, v in raw.items()}
            for t, raw in zip(OLD_TABLES, res, strict=True)}


def replica(settings: Settings) -> SetupReplica:
    r = SetupReplica(settings)  # folded by hand: no setup topic
    r.state.apply(b"campaign:cmp", orjson.dumps({
        "campaign_id": "cmp", "brand_id": "b1", "rate_bps": 1000, "flat_minor": 0,
        "attribution_window_days": WINDOW_DAYS, "hold_days": 30, "min_payout_minor": 5000}))
    return r


class Log:
    """The records of partition 0 of both topics; the gate's re-reader reads it too."""

    def __init__(self, settings: Settings) -> None:
        self.topics = {s: topic_name(settings, s) for s in ("events", "orders")}
        self.msgs: dict[str, list[Msg]] = {"events": [], "orders": []}

    def add(self, short: str, value: bytes, ts: int) -> Msg:
        msgs = self.msgs[short]
        m = Msg(TopicPartition(self.topics[short], 0), len(msgs), b"b1", value, ts)
        msgs.append(m)
        return m

    async def refill(self, tp: Any, start: int, end: int) -> list[Msg]:
        short = "events" if tp.topic == self.topics["events"] else "orders"
        return [m for m in self.msgs[short] if start <= m.offset < end]


def ledger_path(settings: Settings, client: aioredis.Redis, log: Log, retention: Retention) -> LedgerPath:
    return LedgerPath(settings, LedgerStore(client, PREFIX, retention), replica(settings),
                      Notifier(client, PREFIX), cast(AIOKafkaProducer, None), OffsetGate(log.refill))


async def ledger_step(path: LedgerPath, msgs: list[Msg]) -> None:
    state = path.parts.get(0) or await path.load(0)
    by_tp: dict[Any, list[Msg]] = {}
    for m in msgs:
        by_tp.setdefault(m.tp, []).append(m)
    out = await path.step(state, list(by_tp.items()))
    if out:
        await path.store.clear_outbox(0, state.fences)  # as if produced


def order_record(order_id: str, click_id: str | None, at: datetime, amount: int = 10000) -> bytes:
    return orjson.dumps({
        "v": 1, "event_id": f"evt-{order_id}", "type": "order.created", "brand_id": "b1", "order_id": order_id,
        "click_id": click_id, "coupon_code": None, "occurred_at": iso(at),
        "received_at": iso(at + timedelta(seconds=2)),
        "currency": "USD", "items": [{"sku": "p1", "quantity": 1, "unit_price_minor": amount}],
        "discount_minor": 0, "tax_minor": 0, "shipping_minor": 0, "source": "native"})


def refund_record(order_id: str, refund_id: str, amount: int, at: datetime) -> bytes:
    return orjson.dumps({
        "v": 1, "event_id": f"evt-{refund_id}", "type": "order.refunded", "brand_id": "b1", "order_id": order_id,
        "refund_id": refund_id, "amount_minor": amount, "currency": "USD", "occurred_at": iso(at),
        "received_at": iso(at + timedelta(seconds=2)), "source": "native"})


async def assign_child(url: str, mode: str) -> dict[str, Any]:
    """One contender in this (fresh) process: → seconds of the assignment and RSS after it."""
    client = aioredis.from_url(url, socket_timeout=600)  # the full load of 1 M clicks is one long reply
    settings = Settings(topic_prefix=PREFIX, redis_url=url)
    rss0 = rss_mb()
    t0 = time.perf_counter()
    if mode == "baseline":
        state = await full_load(client, 0)
        seconds = time.perf_counter() - t0
        held = sum(len(t) for t in state.values())
        read = held
    else:
        log = Log(settings)
        path = ledger_path(settings, client, log, DEFAULT)
        await path.load(0)
        seconds = time.perf_counter() - t0
        # the first step: an order naming a click of the partition reads just its entries
        now = datetime.now(UTC)
        await ledger_step(path, [log.add("orders", order_record("o-first", "c7", now), 1)])
        held = 0
        read = path.store.entries_read
    out = {"seconds": seconds, "rss_mb": rss_mb(), "rss_before_mb": rss0, "entries_held": held,
           "entries_read": read}
    await client.aclose()
    return out


def run_child(url: str, mode: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.memory_bench", "assign", "--url", url, "--mode", mode],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory bench child ({mode}) failed:\n{proc.stderr[-2000:]}")
    return cast(dict[str, Any], orjson.loads(proc.stdout.strip().splitlines()[-1]))


# -- (b) the month ---------------------------------------------------------------------------------
@dataclass
class Month:
    days: int
    events_per_day: int
    day_s: float
    streams_per_day: int = 6
    seed: int = 12


def day_records(rng: random.Random, day: int, start: datetime, m: Month, clicks_by_day: dict[int, list[str]],
                n_orders: list[int]) -> tuple[list[bytes], list[bytes]]:
    """One day of event time: events records (100 events each) and orders records."""
    d0 = start + day * DAY
    per_stream = m.events_per_day // m.streams_per_day
    events_records: list[bytes] = []
    clicks_today: list[str] = []
    for s in range(m.streams_per_day):
        sid = f"d{day}s{s}"
        t = d0 + timedelta(hours=2 + 3 * s)  # a two-hour show
        viewers = [f"v{rng.randrange(2_000_000)}" for _ in range(max(10, per_stream // 8))]
        evs: list[dict[str, Any]] = []
        for i in range(per_stream):
            at = t + timedelta(seconds=7200 * i / per_stream)
            v = rng.choice(viewers)
            r = rng.random()
            eid = f"{sid}e{i}"
            if r < 0.7:
                action = "join" if r < 0.2 else "leave" if r > 0.65 else "heartbeat"
                evs.append({"event_id": eid, "type": "view", "stream_id": sid, "viewer_id": v, "action": action,
                            "occurred_at": iso(at)})
            elif r < 0.9:
                evs.append({"event_id": eid, "type": "click", "stream_id": sid, "viewer_id": v,
                            "product_id": f"p{rng.randrange(40)}", "campaign_id": "cmp", "creator_id": f"cr{s}",
                            "link_code": None, "occurred_at": iso(at)})
                clicks_today.append(eid)
            else:
                evs.append({"event_id": eid, "type": "add_to_cart", "stream_id": sid, "viewer_id": v,
                            "product_id": f"p{rng.randrange(40)}", "occurred_at": iso(at)})
        for i in range(0, len(evs), 100):
            chunk = evs[i:i + 100]
            last = chunk[-1]["occurred_at"]
            events_records.append(orjson.dumps({"v": 1, "batch_id": uuid.uuid4().hex, "brand_id": "b1",
                                                "source": "events-api", "received_at": last, "events": chunk}))
    clicks_by_day[day] = clicks_today
    # orders: 2 % of the clicks of the last 7 days, placed today; 10 % of them refunded later today
    orders_records: list[bytes] = []
    recent = [c for d in range(max(0, day - WINDOW_DAYS + 1), day + 1) for c in clicks_by_day.get(d, [])]
    for _ in range(len(clicks_today) // 50):
        n_orders[0] += 1
        oid = f"o{n_orders[0]}"
        at = d0 + timedelta(hours=22, seconds=rng.randrange(3600))
        orders_records.append(order_record(oid, rng.choice(recent) if recent else None, at))
        if rng.random() < 0.1:
            orders_records.append(refund_record(oid, f"r{oid}", 2500, at + timedelta(minutes=30)))
    return events_records, orders_records


async def month(url: str, m: Month) -> dict[str, Any]:
    client = aioredis.from_url(url)
    settings = Settings(topic_prefix=PREFIX, redis_url=url)
    retention = DEFAULT.scaled(m.day_s * 1000 / DEFAULT.day_ms)
    log = Log(settings)
    ledger = ledger_path(settings, client, log, retention)

    async def send(*_: Any) -> Any:
        return None  # dead letters (none expected) are not produced here

    live = LivePath(LiveStore(client, PREFIX, retention), Notifier(client, PREFIX), send, OffsetGate(log.refill),
                    topic_name(settings, "dlq"))
    rng = random.Random(m.seed)
    start = datetime.now(UTC) - m.days * DAY - timedelta(hours=1)
    clicks_by_day: dict[int, list[str]] = {}
    n_orders = [0]
    base = await used_memory(client)
    series: list[list[float]] = [[0, 0]]
    key_series: list[list[int]] = [[0, await client.dbsize()]]
    events = 0
    first_day_events = 0
    lag_s = 0.0
    t0 = time.monotonic()
    ts = 0
    for day in range(m.days):
        ev_recs, ord_recs = day_records(rng, day, start, m, clicks_by_day, n_orders)
        for i in range(0, len(ev_recs), 20):  # ~2000 events per step, like a loaded worker's batches
            ts += 1
            msgs = [log.add("events", r, ts) for r in ev_recs[i:i + 20]]
            await live.process(msgs[0].tp, msgs)
            await ledger_step(ledger, msgs)
        for i in range(0, len(ord_recs), 50):
            ts += 1
            await ledger_step(ledger, [log.add("orders", r, ts) for r in ord_recs[i:i + 50]])
        n_day = sum(len(orjson.loads(r)["events"]) for r in ev_recs) + len(ord_recs)
        events += n_day
        if day == 0:
            first_day_events = n_day
        # the simulated clock: day d ends at t0 + (d + 1) x day_s of wall time
        wait = t0 + (day + 1) * m.day_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        else:
            lag_s = max(lag_s, -wait)
        series.append([day + 1, await used_memory(client) - base])
        key_series.append([day + 1, await client.dbsize()])
    bytes_per_m = series[1][1] / first_day_events * 1_000_000 if first_day_events else None
    census: dict[str, int] = {}
    async for k in client.scan_iter(count=1000):
        name = k.decode()
        kind = next((w for w in ("lstate:clicks:", "lstate:waiting:", "lstate:seen:", "lstate:pending:", "dedup:",
                                 ":viewers", ":now", ":left", ":counts", ":products", "order:") if w in name), "other")
        census[kind.strip(":")] = census.get(kind.strip(":"), 0) + 1
    await client.aclose()
    return {"month_series": series, "redis_bytes_per_million_events": round(bytes_per_m) if bytes_per_m else None,
            "month_events": events, "month_orders": n_orders[0], "month_day_s": m.day_s,
            "month_max_lag_s": round(lag_s, 2), "month_keys_series": key_series, "month_keys_at_end": census}


# -- the part ----------------------------------------------------------------------------------------
async def _run(cfg: BenchConfig, quick: bool) -> dict[str, Any]:
    n_clicks = 100_000 if quick else 1_000_000
    m = Month(days=30, events_per_day=5_000 if quick else 20_000, day_s=1.5 if quick else 8.0)
    out: dict[str, Any] = {"clicks": n_clicks, "machine_note": "2-core VM shared with other engineers' runs"}
    async with PrivateRedis() as redis_:
        client = aioredis.from_url(redis_.url, socket_timeout=600)
        out["click_bytes_hash"] = round(await write_clicks(client, n_clicks, "hash"))
        print(f"[memory] {n_clicks} clicks written ({out['click_bytes_hash']} B each); full load ...",
              file=sys.stderr, flush=True)
        base = run_child(redis_.url, "baseline")
        await flush(client)
        out["click_bytes_string_ttl"] = round(await write_clicks(client, n_clicks, "string"))
        now = run_child(redis_.url, "lazy")
        print(f"[memory] assignment: {base['seconds']:.2f} s full load, {now['seconds']:.4f} s now; month ...",
              file=sys.stderr, flush=True)
        await flush(client)
        out.update({
            "ledger_assign_s_1m_clicks": round(now["seconds"], 5),
            "ledger_assign_s_1m_clicks_baseline": round(base["seconds"], 4),
            "worker_rss_mb_1m_clicks": round(now["rss_mb"], 1),
            "worker_rss_mb_1m_clicks_baseline": round(base["rss_mb"], 1),
            "worker_rss_mb_before_load": round(now["rss_before_mb"], 1),
            "ledger_entries_read_first_step": now["entries_read"],
            "ledger_entries_loaded_baseline": base["entries_held"],
        })
        await client.aclose()
        out.update(await month(redis_.url, m))
    series = out["month_series"]
    third = len(series) // 3
    first, last = series[third][1] - series[0][1], series[-1][1] - series[-1 - third][1]
    out["month_growth_last_vs_first_third"] = round(last / first, 3) if first > 0 else None
    return out


def run(cfg: BenchConfig, log_dir: Path) -> dict[str, Any]:
    from bench.config import QUICK

    return asyncio.run(_run(cfg, quick=cfg == QUICK))


def _print(res: dict[str, Any]) -> None:
    for k, v in res.items():
        if k not in ("month_series", "month_keys_series"):
            print(f"{k}: {v}")
    print("month_series (day, bytes):", " ".join(f"{int(d)}:{int(b) // 1024}k" for d, b in res["month_series"]))
    print("month_keys_series (day, keys):", " ".join(f"{d}:{n}" for d, n in res["month_keys_series"]))


def main(argv: Iterable[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.memory_bench")
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("assign", help="one assignment contender (run by the part in its own process)")
    a.add_argument("--url", required=True)
    a.add_argument("--mode", choices=("baseline", "lazy"), required=True)
    r = sub.add_parser("run", help="the whole part; prints the numbers and writes them as JSON")
    r.add_argument("--quick", action="store_true")
    r.add_argument("--out", type=Path)
    args = ap.parse_args(list(argv) if argv is not None else None)
    if args.cmd == "assign":
        print(orjson.dumps(asyncio.run(assign_child(args.url, args.mode))).decode())
        return
    from bench.config import FULL, QUICK

    res = asyncio.run(_run(QUICK if args.quick else FULL, quick=args.quick))
    _print(res)
    if args.out:
        args.out.write_bytes(orjson.dumps({"memory": res}, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
