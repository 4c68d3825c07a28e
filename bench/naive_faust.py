"""Baseline (a): the naive Faust agent — one Table update per event, run as
``python -m bench.naive_faust worker`` with ``LIVELEDGER_TOPIC_PREFIX`` naming the topics.

It counts events per (stream, type) in a Faust Table (each update writes a changelog message) and
adds each record's event count to ``<prefix>:bench:done`` in Redis so the bench can see progress.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis

from liveledger.settings import get_settings
from liveledger.topics import topic_name


def create_app() -> faust.App:
    settings = get_settings()
    n = settings.event_partitions
    app = faust.App(f"{settings.topic_prefix}-naive", broker=f"kafka://{settings.kafka_bootstrap}",
                    store="memory://", topic_partitions=n, topic_replication_factor=1, web_enabled=False,
                    consumer_auto_offset_reset="earliest", table_standby_replicas=0)
    source = app.topic(topic_name(settings, "events"), key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", partitions=n)
    counts = app.Table("counts", default=int, partitions=n, key_type=str, value_type=int)
    redis_client = aioredis.from_url(settings.redis_url)
    done_key = f"{settings.topic_prefix}:bench:done"

    @app.agent(source)
    async def count(stream: Any) -> None:
        async for value in stream:
            events = orjson.loads(value)["events"]
            for ev in events:
                counts[f"{ev.get('stream_id')}|{ev['type']}"] += 1
            await redis_client.incrby(done_key, len(events))

    return app


def main() -> None:
    app = create_app()
    for name in ("aiokafka", "faust", "mode", "kafka"):
        logging.getLogger(name).setLevel(logging.WARNING)
    sys.argv = ["naive", *(sys.argv[1:] or ["worker"]), "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
