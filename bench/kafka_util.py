"""Kafka and Redis plumbing for the bench: fresh topics, bulk produce, clean-up afterwards."""

from __future__ import annotations

import asyncio
import contextlib

import redis
from aiokafka.admin import AIOKafkaAdminClient

from bench.common import RecordGen
from liveledger.kafka import create_topics, start_producer
from liveledger.settings import Settings
from liveledger.topics import topic_name


def settings_for(prefix: str) -> Settings:
    return Settings(topic_prefix=prefix)


def make_topics(settings: Settings) -> None:
    asyncio.run(create_topics(settings))


def brand_ids(brands: int = 12) -> list[str]:
    """The brands :func:`produce_events` spreads its records over (12 → all 6 partitions)."""
    return [f"bb{i}" for i in range(brands)]


async def _produce(settings: Settings, n_events: int, per_record: int, brands: int) -> int:
    producer = await start_producer(settings, linger_ms=20, max_batch_size=1024 * 1024)
    gen = RecordGen(brand_ids(brands))
    topic = topic_name(settings, "events")
    sent = 0
    try:
        futures = []
        while sent < n_events:
            k = min(per_record, n_events - sent)
            key, value = gen.record(k)
            futures.append(await producer.send(topic, value, key=key))
            sent += k
            if len(futures) >= 500:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def produce_events(settings: Settings, n_events: int, per_record: int = 100, brands: int = 12) -> int:
    """Write ``n_events`` events as ``ll.events`` batch records of ``per_record`` events."""
    return asyncio.run(_produce(settings, n_events, per_record, brands))


async def _delete_topics(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def cleanup(settings: Settings) -> None:
    """Delete the run's topics (and Faust's internal ones) and its Redis keys; best effort."""
    with contextlib.suppress(Exception):
        asyncio.run(_delete_topics(settings))
    with contextlib.suppress(Exception):
        client = redis.Redis.from_url(settings.redis_url)
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{settings.topic_prefix}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
