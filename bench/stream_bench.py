"""Stream processing: events/s of the LiveLedger worker vs a naive Faust agent, the quixstreams peer
(:mod:`bench.quix_peer`, exactly-once) and a raw aiokafka consumer, and 1 / 2 / 3 LiveLedger workers.

Each contender gets a fresh topic prefix (own topics, own Redis namespace) pre-filled with the same
number of events (``ll.events`` batch records of 100 events, 12 brands), then is started; the rate
is measured from the first to the last event visible in Redis (so start-up and rebalancing are not
counted), with the contender's CPU time over the same span and the peak RSS (``VmHWM``) of each of
its processes, read from ``/proc`` just before it is stopped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench import quix_peer
from bench.common import ROOT, Proc, cpu_seconds, free_port, fresh_prefix
from bench.config import BenchConfig
from bench.kafka_util import brand_ids, cleanup, make_topics, produce_events, settings_for
from liveledger.settings import Settings
from liveledger.storage import redis_keys as keys
from liveledger.topics import topic_name


@dataclass(frozen=True)
class Contender:
    name: str
    modules: list[list[str]]  # one argv per process (after ``python -m``); placeholders: see :func:`_argv`
    progress: Callable[[redis.Redis, str], int]
    python: Callable[[], Path] | None = None  # the interpreter; None: this one


def _stats_received(client: redis.Redis, prefix: str) -> int:
    with client.pipeline(transaction=False) as pipe:
        for k in keys.stats_keys(prefix, settings_for(prefix).event_partitions):
            pipe.hget(k, "events_received")
        return sum(int(v) for v in pipe.execute() if v is not None)


def _done(client: redis.Redis, prefix: str) -> int:
    raw = client.get(f"{prefix}:bench:done")
    return int(raw) if raw is not None else 0


FAUST_ARGS = ["--datadir", "{data}", "worker", "--web-port", "{port}"]


def liveledger(workers: int = 1) -> Contender:
    return Contender(f"liveledger_x{workers}", [["streams", *FAUST_ARGS] for _ in range(workers)], _stats_received)


NAIVE = Contender("naive_faust", [["bench.naive_faust", *FAUST_ARGS]], _done)
RAW = Contender("raw_aiokafka", [["bench.raw_consumer"]], _done)
QUIX = Contender("quixstreams", [["bench.quix_peer", "--prefix", "{prefix}", "--topic", "{topic}", "--bootstrap",
                                  "{bootstrap}", "--redis-url", "{redis}", "--state-dir", "{data}"]],
                 lambda client, prefix: quix_peer.progress(client, prefix, brand_ids()), python=quix_peer.ensure_venv)


def _argv(argv: list[str], settings: Settings, data: Path) -> list[str]:
    subst = {"{data}": str(data), "{port}": str(free_port()), "{prefix}": settings.topic_prefix,
             "{topic}": topic_name(settings, "events"), "{bootstrap}": settings.kafka_bootstrap,
             "{redis}": settings.redis_url}
    return [subst.get(a, a) for a in argv]


def _start(name: str, python: Path, args: list[str], log_dir: Path, env: dict[str, str]) -> Proc:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    handle = open(log, "ab")  # noqa: SIM115 - owned by the child process
    popen = subprocess.Popen([str(python), "-m", *args], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
                             stdout=handle, stderr=subprocess.STDOUT)
    return Proc(name, popen, log)


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a live process (``VmHWM`` in ``/proc/<pid>/status``), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


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
    python = c.python() if c.python is not None else Path(sys.executable)
    try:
        env = {"LIVELEDGER_TOPIC_PREFIX": prefix}
        for i, argv in enumerate(c.modules):
            data = log_dir / "data" / f"{prefix}-{i}"
            data.mkdir(parents=True, exist_ok=True)
            procs.append(_start(f"{c.name}-{i}-{prefix}", python, _argv(argv, settings, data), log_dir, env))
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
        rss = [round(peak_rss_mb(p.pid), 1) for p in procs]
        redis1 = redis_command_usec(client)
        redis_us = {k: v - redis0.get(k, 0) for k, v in redis1.items() if v - redis0.get(k, 0) > 0}
        # timed out after a quarter or more: the rate over what it did (a slow contender on a busy box)
        partial = first is not None and seen < produced and seen - first[1] >= produced / 4
        if first is None or (seen < produced and not partial):
            return {"skipped": f"{c.name} saw {seen}/{produced} events in {cfg.stream_timeout_s}s"}
        t_first, n_first, cpu_first = first
        if partial:
            span, counted, cpu = t_end - t_first, seen - n_first, cpu_end - cpu_first
        elif n_first < produced / 2 and t_end > t_first:
            span, counted, cpu = t_end - t_first, produced - n_first, cpu_end - cpu_first
        else:  # finished between polls: count from process start (includes start-up, conservative)
            span, counted, cpu = t_end - t_start, produced, cpu_end
        top = dict(sorted(redis_us.items(), key=lambda kv: -kv[1])[:5])
        return {"events": produced, "events_seen": seen, "complete": not partial,
                "seconds": round(span, 3), "events_per_s": round(counted / span, 1),
                "cpu_us_per_event": round(cpu / counted * 1e6, 2), "processes": len(procs),
                # peak RSS: Σ over the contender's processes, and each process's
                "rss_mb": round(sum(rss), 1), "rss_mb_per_process": rss,
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
    runs["quixstreams"] = measure(QUIX, cfg.stream_events, cfg, log_dir)
    if worker_available():
        for n in cfg.worker_counts:
            runs[f"liveledger_x{n}"] = measure(liveledger(n), cfg.stream_events, cfg, log_dir)
    else:
        runs["liveledger_x1"] = {"skipped": "streams/__main__.py (python -m streams worker) does not exist yet"}
    out["runs"] = runs

    def rate(name: str, key: str = "events_per_s") -> float | None:
        r = runs.get(name, {})
        v = r.get(key)
        return float(v) if v is not None else None

    out["events_per_s"] = rate("liveledger_x1")
    out["naive_faust_events_per_s"] = rate("naive_faust")
    out["raw_aiokafka_events_per_s"] = rate("raw_aiokafka")
    out["two_workers_events_per_s"] = rate("liveledger_x2")
    out["quixstreams_events_per_s"] = rate("quixstreams")
    out["quixstreams_rss_mb"] = rate("quixstreams", "rss_mb")
    out["workers_events_per_s"] = {str(n): rate(f"liveledger_x{n}") for n in cfg.worker_counts}
    return out
