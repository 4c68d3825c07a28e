"""Read API latency: p50/p99 of ``GET /v1/creators/{id}/earnings`` and ``GET /v1/streams/{id}/live``
under a small closed-loop load (8 concurrent clients), when the API serves them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import percentile
from bench.config import BenchConfig
from bench.stack import app_stack
from liveledger.settings import DEV_ADMIN_TOKEN
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


def run(cfg: BenchConfig, log_dir: Path) -> dict[str, Any]:
    with app_stack(log_dir / "query-stack", worker=True, sink=True) as (stack, world):
        paths = set(httpx.get(f"{stack.api_url}/openapi.json", timeout=10).json().get("paths", {}))
        missing = [p for p in (EARNINGS, LIVE) if p not in paths]
        if missing:
            return {"skipped": f"the API does not serve {', '.join(missing)} yet"}
        _seed(stack.ingest_url, world)
        time.sleep(2)
        earn = asyncio.run(_load(stack.api_url + EARNINGS.format(creator_id=world.creator_id), DEV_ADMIN_TOKEN,
                                 cfg.query_seconds))
        live = asyncio.run(_load(stack.api_url + LIVE.format(stream_id=world.stream_ids[0]), world.api_key,
                                 cfg.query_seconds))
    return {"earnings_p99_ms": earn["p99_ms"], "live_p99_ms": live["p99_ms"], "earnings": earn, "live": live,
            "concurrency": CONCURRENCY}
