"""``python -m streams.bench --events N``: events/s of the live path end to end.

Produces N events (in records of ``--per-record`` events, as ingest batches them) straight to the
events topic of the configured prefix, then times until Redis shows all of them as accepted
(``<prefix>:stats`` events_accepted). Run it against a running worker with a fresh prefix:
``LIVELEDGER_TOPIC_PREFIX=bench1 liveledger topics create && LIVELEDGER_TOPIC_PREFIX=bench1
python -m streams worker & LIVELEDGER_TOPIC_PREFIX=bench1 python -m streams.bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaProducer

from liveledger.redis_client import redis_client, sum_hashes
from liveledger.settings import get_settings
from liveledger.storage import redis_keys as keys
from liveledger.topics import topic_name


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def run(n: int, per_record: int, brands: int) -> None:
    settings = get_settings()
    r = redis_client(settings)
    stat_keys = keys.stats_keys(settings.topic_prefix, settings.event_partitions)
    base = (await sum_hashes(r, stat_keys)).get("events_accepted", 0)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=20,
                                compression_type="lz4", max_batch_size=1024 * 1024)
    await producer.start()
    topic = topic_name(settings, "events")
    run_id = uuid.uuid4().hex[:8]
    now = _iso(datetime.now(UTC))
    t0 = time.monotonic()
    sent = 0
    i = 0
    while sent < n:
        brand = f"b{i % brands}"
        events = []
        for j in range(min(per_record, n - sent)):
            k = sent + j
            kind = k % 10
            ev: dict[str, str | None]
            if kind < 7:
                ev = {"event_id": f"{run_id}-{k}", "type": "view", "stream_id": f"s{i % (brands * 4)}",
                      "viewer_id": f"v{k % 5000}", "action": "join" if kind == 0 else "heartbeat", "occurred_at": now}
            elif kind < 9:
                ev = {"event_id": f"{run_id}-{k}", "type": "click", "stream_id": f"s{i % (brands * 4)}",
                      "viewer_id": f"v{k % 5000}", "product_id": f"p{k % 20}", "campaign_id": None,
                      "creator_id": "cr1", "link_code": None, "occurred_at": now}
            else:
                ev = {"event_id": f"{run_id}-{k}", "type": "add_to_cart", "stream_id": f"s{i % (brands * 4)}",
                      "viewer_id": f"v{k % 5000}", "product_id": f"p{k % 20}", "occurred_at": now}
            events.append(ev)
        value = orjson.dumps({"v": 1, "batch_id": uuid.uuid4().hex, "brand_id": brand, "source": "events-api",
                              "received_at": now, "events": events})
        await producer.send(topic, value, key=brand.encode())
        sent += len(events)
        i += 1
    await producer.flush()
    t_produced = time.monotonic()
    await producer.stop()
    while (await sum_hashes(r, stat_keys)).get("events_accepted", 0) - base < n:
        await asyncio.sleep(0.05)
    t_done = time.monotonic()
    await r.aclose()
    print(f"produced {n} events in {i} records ({per_record}/record) in {t_produced - t0:.2f}s; "
          f"all in Redis after {t_done - t0:.2f}s -> {n / (t_done - t0):.0f} events/s end to end")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m streams.bench")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--per-record", type=int, default=100)
    parser.add_argument("--brands", type=int, default=12)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.per_record, args.brands))


if __name__ == "__main__":
    main()
