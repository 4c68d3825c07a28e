"""The cost of the live per-creator conversion aggregate, beside the same live path without it.

The live path's own work (decode, fold into a ``LiveBatch``, one fenced ``LIVE_FLUSH`` on the real
Redis) on identical records twice: once as ingest writes them (every click names its creator and
campaign, so each click also counts in ``conv:<brand>:<creator>`` in total, per stream and per
campaign), and once with ``creator_id`` / ``campaign_id`` removed from the clicks (the baseline: the
same stream counters, no per-creator work). Kafka and Faust are left out on purpose: they are the
same in both runs and would only add noise to a difference of a few µs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from bench.config import BenchConfig
from liveledger.settings import Settings
from schemas.time import format_rfc3339
from schemas.wire import decode_events_record
from streams.live import LiveBatch
from streams.redis_state import LiveStore

PER_RECORD = 100
RECORDS_PER_FLUSH = 50


def records(n_records: int, *, with_creator: bool) -> list[bytes]:
    now = format_rfc3339(datetime.now(UTC))
    out = []
    for r in range(n_records):
        brand = f"b{r % 12}"
        events: list[dict[str, Any]] = []
        for i in range(PER_RECORD):
            eid, stream, viewer = f"e{r}-{i}", f"s{r % 24}", f"v{r}-{i % 30}"
            kind = i % 10
            if kind < 7:
                events.append({"event_id": eid, "type": "view", "stream_id": stream, "viewer_id": viewer,
                               "action": "join" if kind == 0 else "heartbeat", "occurred_at": now})
            elif kind < 9:
                events.append({"event_id": eid, "type": "click", "stream_id": stream, "viewer_id": viewer,
                               "product_id": f"p{i % 8}", "campaign_id": f"cmp{r % 12}" if with_creator else None,
                               "creator_id": f"cr{r % 24}" if with_creator else None, "link_code": None,
                               "occurred_at": now})
            else:
                events.append({"event_id": eid, "type": "add_to_cart", "stream_id": stream, "viewer_id": viewer,
                               "product_id": f"p{i % 8}", "occurred_at": now})
        out.append(orjson.dumps({"v": 1, "batch_id": uuid.uuid4().hex, "brand_id": brand, "source": "events-api",
                                 "received_at": now, "events": events}))
    return out


async def _measure(settings: Settings, data: list[bytes]) -> dict[str, Any]:
    prefix = f"bconv{uuid.uuid4().hex[:8]}"
    client = aioredis.from_url(settings.redis_url)
    store = LiveStore(client, prefix)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, len(data), RECORDS_PER_FLUSH):
            batch = LiveBatch(prefix, "live", "bench.events", 0)
            for offset in range(start, min(start + RECORDS_PER_FLUSH, len(data))):
                batch.add_offset(offset)
                batch.add_events(decode_events_record(data[offset]))
            applied, _ = await store.apply_live(batch.to_script_arg(int(time.time() * 1000)))
            assert applied
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        info = await client.info("commandstats")
        events = len(data) * PER_RECORD
        return {"events": events, "seconds": round(seconds, 3), "us_per_event": round(seconds / events * 1e6, 2),
                "python_cpu_us_per_event": round(cpu / events * 1e6, 2),
                "lua_calls": int(info.get("cmdstat_evalsha", {}).get("calls", 0))}
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await client.delete(*keys[i:i + 1000])
        await client.aclose()


def run(cfg: BenchConfig, log_dir: Path) -> dict[str, Any]:
    n = max(20, cfg.stream_events // PER_RECORD // 4)
    settings = Settings()
    with_creator = records(n, with_creator=True)
    without = records(n, with_creator=False)

    async def both() -> tuple[dict[str, Any], dict[str, Any]]:
        await _measure(settings, without[: n // 10])  # warm-up: script load, connections
        base = await _measure(settings, without)
        conv = await _measure(settings, with_creator)
        return base, conv

    base, conv = asyncio.run(both())
    extra = conv["us_per_event"] - base["us_per_event"]
    return {"baseline_no_creator": base, "with_creator_conversion": conv,
            "conversion_us_per_event": round(extra, 2),
            "conversion_cost_ratio": round(conv["us_per_event"] / base["us_per_event"], 3)}
