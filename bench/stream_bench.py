"""Stream processing: events/s of the LiveLedger worker vs a naive Faust agent and a raw aiokafka
consumer, and 1 vs 2 LiveLedger workers.

Each contender gets a fresh topic prefix (own topics, own Redis namespace) pre-filled with the same
number of events (``ll.events`` batch records of 100 events, 12 brands), then is started; the rate
is measured from the first to the last event visible in Redis (so start-up and rebalancing are not
counted), with the contender's CPU time over the same span.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.common import ROOT, Proc, cpu_seconds, free_port, fresh_prefix, start_module
from bench.config import BenchConfig
from bench.kafka_util import cleanup, make_topics, produce_events, settings_for


@dataclass(frozen=True)
class Contender:
    name: str
    modules: list[list[str]]  # one argv per process; "{data}" / "{port}": a data dir / a free port
    progress: Callable[[redis.Redis, str], int]


def _stats_received(client: redis.Redis, prefix: str) -> int:
    raw = client.hget(f"{prefix}:stats", "events_received")
    return int(raw) if raw is not None else 0


def _done(client: redis.Redis, prefix: str) -> int:
    raw = client.get(f"{prefix}:bench:done")
    return int(raw) if raw is not None else 0


FAUST_ARGS = ["--datadir", "{data}", "worker", "--web-port", "{port}"]


def liveledger(workers: int = 1) -> Contender:
    return Contender(f"liveledger_x{workers}", [["streams", *FAUST_ARGS] for _ in range(workers)], _stats_received)


NAIVE = Contender("naive_faust", [["bench.naive_faust", *FAUST_ARGS]], _done)
RAW = Contender("raw_aiokafka", [["bench.raw_consumer"]], _done)


def redis_command_usec(client: redis.Redis) -> dict[str, int]:
    """Redis server time per command (``INFO commandstats``), to diff around a run."""
    stats: dict[str, Any] = client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in stats.items()}


def worker_available() -> bool:
    return (ROOT / "streams" / "__main__.py").exists()


def measure(c: Contender, n_events: int, cfg: BenchConfig, log_dir: Path) -> dict[str, Any]:
    prefix = fresh_prefix("s")
    settings = settings_for(prefix)
    make_topics(settings)
    produced = produce_events(settings, n_events)
    client = redis.Redis.from_url(settings.redis_url)
    procs: list[Proc] = []
    try:
        env = {"LIVELEDGER_TOPIC_PREFIX": prefix}
        for i, argv in enumerate(c.modules):
            data = log_dir / "data" / f"{prefix}-{i}"
            data.mkdir(parents=True, exist_ok=True)
            port = str(free_port())
            argv = [a.replace("{data}", str(data)).replace("{port}", port) for a in argv]
            procs.append(start_module(f"{c.name}-{i}-{prefix}", argv, log_dir, env))
        t_start = time.monotonic()
        redis0 = redis_command_usec(client)
        first: tuple[float, int, float] | None = None
        deadline = t_start + cfg.stream_timeout_s
        seen = 0
        while time.monotonic() < deadline:
            for p in procs:
                if not p.alive():
                    raise RuntimeError(f"{p.name} exited ({p.popen.returncode}):\n{p.tail()}")
            seen = c.progress(client, prefix)
            now = time.monotonic()
            if seen > 0 and first is None:
                first = (now, seen, sum(cpu_seconds(p.pid) for p in procs))
            if seen >= produced:
                break
            time.sleep(0.02)
        t_end = time.monotonic()
        cpu_end = sum(cpu_seconds(p.pid) for p in procs)
        redis1 = redis_command_usec(client)
        redis_us = {k: v - redis0.get(k, 0) for k, v in redis1.items() if v - redis0.get(k, 0) > 0}
        if seen < produced or first is None:
            return {"skipped": f"{c.name} saw {seen}/{produced} events in {cfg.stream_timeout_s}s"}
        t_first, n_first, cpu_first = first
        if n_first < produced / 2 and t_end > t_first:
            span, counted, cpu = t_end - t_first, produced - n_first, cpu_end - cpu_first
        else:  # finished between polls: count from process start (includes start-up, conservative)
            span, counted, cpu = t_end - t_start, produced, cpu_end
        top = dict(sorted(redis_us.items(), key=lambda kv: -kv[1])[:5])
        return {"events": produced, "seconds": round(span, 3), "events_per_s": round(counted / span, 1),
                "cpu_us_per_event": round(cpu / counted * 1e6, 2), "processes": len(procs),
                # whole run (start-up included), all Redis clients: an upper bound of this contender's share
                "redis_us_per_event": round(sum(redis_us.values()) / produced, 2),
                "redis_top_commands_us": top}
    finally:
        for p in procs:
            p.stop()
        client.close()
        cleanup(settings)


def run(cfg: BenchConfig, log_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"events_per_run": cfg.stream_events, "events_per_record": 100}
    runs: dict[str, Any] = {}
    runs["raw_aiokafka"] = measure(RAW, cfg.stream_events, cfg, log_dir)
    runs["naive_faust"] = measure(NAIVE, cfg.naive_events, cfg, log_dir)
    if worker_available():
        runs["liveledger_x1"] = measure(liveledger(1), cfg.stream_events, cfg, log_dir)
        if cfg.two_workers:
            runs["liveledger_x2"] = measure(liveledger(2), cfg.stream_events, cfg, log_dir)
    else:
        runs["liveledger_x1"] = {"skipped": "streams/__main__.py (python -m streams worker) does not exist yet"}
    out["runs"] = runs

    def rate(name: str) -> float | None:
        r = runs.get(name, {})
        v = r.get("events_per_s")
        return float(v) if v is not None else None

    out["events_per_s"] = rate("liveledger_x1")
    out["naive_faust_events_per_s"] = rate("naive_faust")
    out["raw_aiokafka_events_per_s"] = rate("raw_aiokafka")
    out["two_workers_events_per_s"] = rate("liveledger_x2")
    return out
