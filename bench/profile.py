"""``python -m bench.profile [ingest|worker|sink] [--seconds N]``: py-spy the hot path under load and
print where the CPU goes (self time by function, and buckets: framework, own code, Kafka client...).

- ``ingest``: an isolated stack; wrk drives ``GET /l/{code}`` and then ``POST /v1/events`` (100
  events) with 64 connections while py-spy samples the ingest process;
- ``worker``: 400k events pre-filled on a fresh prefix; py-spy samples ``python -m streams worker``
  while it catches up, and Redis ``INFO commandstats`` shows the server side;
- ``sink``: 500k events pre-filled; py-spy samples ``python -m consumers clickhouse``.
Flame-graph input (py-spy "raw" collapsed stacks) is kept in ``bench/out/profile/``.
"""

from __future__ import annotations

import argparse
import collections
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

from bench import wrk
from bench.common import free_port, fresh_prefix, start_module
from bench.kafka_util import cleanup, make_topics, produce_events, settings_for
from bench.stack import app_stack
from liveledger.storage import redis_keys
from loadtests.payloads import dumps, event_batch

OUT = Path(__file__).resolve().parent / "out" / "profile"
# A sample is charged to the leaf-most frame that matches a bucket (stdlib and asyncio frames are
# charged to their caller), so "own code" is the handlers' own work, not everything under them.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("validation (schemas/)", ("schemas/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("Kafka client (aiokafka: send, batching, lz4, protocol, fetch)", ("aiokafka/",)),
    ("Faust/mode machinery", ("faust/", "mode/")),
    ("Redis client", ("redis/",)),
    ("ClickHouse client (clickhouse_connect)", ("clickhouse_connect/",)),
    ("own code (ingest/, streams/, consumers/)", ("ingest/", "streams/", "consumers/")),
    ("aiohttp request/response", ("aiohttp/", "multidict/", "yarl/")),
]


LOOP = "event loop and socket I/O (asyncio internals; uvloop's C code shows as its caller)"


def classify(stack: str) -> str:
    frames = stack.split(";")
    if "run_app (aiohttp/web.py" in frames[-1] or "run_until_complete" in frames[-1]:
        return LOOP
    for frame in reversed(frames):
        if "_run_once (asyncio/base_events.py" in frame:  # loop internals (callbacks, selector)
            return LOOP
        for name, keys in BUCKETS:
            if any(k in frame for k in keys):
                return name
    return "event loop / other"


def spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen([exe, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200", "-f", "raw",
                             "-o", str(out), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize(path: Path, top: int = 15) -> str:
    self_time: collections.Counter[str] = collections.Counter()
    buckets: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n_text = line.rpartition(" ")
        n = int(n_text)
        total += n
        self_time[stack.rsplit(";", 1)[-1]] += n
        buckets[classify(stack)] += n
    lines = [f"{path.name}: {total} samples", "  buckets (leaf-most matching frame):"]
    lines += [f"    {v / total:6.1%}  {k}" for k, v in buckets.most_common()]
    lines.append("  self time, top functions:")
    lines += [f"    {v / total:6.1%}  {k[:110]}" for k, v in self_time.most_common(top)]
    return "\n".join(lines)


def profile_ingest(seconds: float) -> list[Path]:
    outs = []
    with app_stack(OUT / "logs") as (stack, world):
        pid = stack.procs["ingest"].pid
        body = dumps(event_batch(world, 100, random.Random(1), 0))
        lua = wrk.script(OUT, "events", "POST", body,
                         {"Authorization": f"Bearer {world.api_key}", "Content-Type": "application/json"})
        for name, url, script in (("ingest_redirect", f"{stack.ingest_url}/l/{world.link_codes[0]}", None),
                                  ("ingest_events100", f"{stack.ingest_url}/v1/events", lua)):
            out = OUT / f"{name}.txt"
            proc = spy(pid, seconds, out)
            time.sleep(0.5)
            r = wrk.run(url, pid, duration_s=seconds - 1, connections=64, lua=script, cpus=None)
            proc.wait()
            print(f"{name}: {r.rps:.0f} req/s, {r.cpu_us_per_req:.0f} µs CPU/req (under py-spy)")
            outs.append(out)
    return outs


def _received(client: redis.Redis, settings: Any) -> int:
    """``events_received`` of the worker: summed over the per-partition stats hashes (redis_keys)."""
    names = redis_keys.stats_keys(settings.topic_prefix, settings.event_partitions)
    return sum(int(client.hget(k, "events_received") or 0) for k in names)


def profile_worker(seconds: float) -> list[Path]:
    prefix = fresh_prefix("p")
    settings = settings_for(prefix)
    make_topics(settings)
    produce_events(settings, 400_000)
    data = OUT / "data" / prefix
    data.mkdir(parents=True, exist_ok=True)
    proc = start_module("worker", ["streams", "--datadir", str(data), "worker", "--web-port", str(free_port())],
                        OUT / "logs", {"LIVELEDGER_TOPIC_PREFIX": prefix})
    client = redis.Redis.from_url(settings.redis_url)
    out = OUT / "worker.txt"
    try:
        while _received(client, settings) == 0:
            if not proc.alive():
                raise RuntimeError(proc.tail())
            time.sleep(0.05)
        before = client.info("commandstats")
        spy(proc.pid, seconds, out).wait()
        after = client.info("commandstats")
        seen = _received(client, settings)
        print(f"worker: {seen} events counted; Redis server time during the profile (all clients):")
        diffs = {k: after[k]["usec"] - before.get(k, {"usec": 0})["usec"] for k in after}
        calls = {k: after[k]["calls"] - before.get(k, {"calls": 0})["calls"] for k in after}
        for k, v in sorted(diffs.items(), key=lambda kv: -kv[1])[:6]:
            if v > 0:
                print(f"    {k.removeprefix('cmdstat_'):10} {v / 1e6:6.2f} s in {calls[k]} calls")
    finally:
        proc.stop()
        client.close()
        cleanup(settings)
    return [out]


def profile_sink(seconds: float) -> list[Path]:
    from bench.sink_bench import drop_database, migrate_database

    prefix = fresh_prefix("p")
    settings = settings_for(prefix)
    make_topics(settings)
    migrate_database(prefix)
    produce_events(settings, 500_000)
    proc = start_module("sink", ["consumers", "clickhouse"], OUT / "logs",
                        {"LIVELEDGER_TOPIC_PREFIX": prefix, "LIVELEDGER_CLICKHOUSE_DATABASE": prefix})
    out = OUT / "sink.txt"
    try:
        time.sleep(2)
        spy(proc.pid, seconds, out).wait()
    finally:
        proc.stop()
        cleanup(settings)
        drop_database(prefix)
    return [out]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("target", choices=["ingest", "worker", "sink"])
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    run = {"ingest": profile_ingest, "worker": profile_worker, "sink": profile_sink}[args.target]
    outs = run(args.seconds)
    for out in outs:
        print(summarize(out))


if __name__ == "__main__":
    main()
