"""Baseline (b): a raw aiokafka ``getmany`` consumer doing the live aggregation into Redis.

``python -m bench.raw_consumer`` with ``LIVELEDGER_TOPIC_PREFIX``: batches of up to 2,000 records,
a Counter of (stream, counter) and unique viewers per batch, one Redis pipeline per batch
(``HINCRBY`` / ``SADD`` plus the progress counter ``<prefix>:bench:done``), then commit. No
validation, no de-duplication and no offset fence: the ceiling of "consume, aggregate, write".
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from liveledger.settings import get_settings
from liveledger.topics import topic_name

_FIELD = {"view": "views", "click": "clicks", "add_to_cart": "add_to_carts"}


async def run() -> None:
    settings = get_settings()
    p = settings.topic_prefix
    consumer = AIOKafkaConsumer(topic_name(settings, "events"), bootstrap_servers=settings.kafka_bootstrap,
                                group_id=f"{p}-raw", enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    client = aioredis.from_url(settings.redis_url)
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=2000)
            if not batches:
                continue
            inc: Counter[tuple[str, str]] = Counter()
            viewers: defaultdict[str, set[str]] = defaultdict(set)
            n = 0
            for records in batches.values():
                for rec in records:
                    for ev in orjson.loads(rec.value)["events"]:
                        n += 1
                        sid = ev.get("stream_id") or "-"
                        inc[(sid, _FIELD[ev["type"]])] += 1
                        if ev.get("viewer_id"):
                            viewers[sid].add(ev["viewer_id"])
            async with client.pipeline(transaction=False) as pipe:
                for (sid, fld), k in inc.items():
                    pipe.hincrby(f"{p}:raw:{sid}:counts", fld, k)
                for sid, vs in viewers.items():
                    pipe.sadd(f"{p}:raw:{sid}:viewers", *vs)
                pipe.incrby(f"{p}:bench:done", n)
                await pipe.execute()
            await consumer.commit()
    finally:
        await consumer.stop()
        await client.aclose()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(run())


if __name__ == "__main__":
    main()
