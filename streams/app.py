"""The Faust app: the process host of the ledger consumer and the live-counter consumer.

- ledger: the plain aiokafka consumer of :mod:`streams.ledger_consumer` (attribution, commission,
  refunds) over the events and orders topics, its state and offset fences in Redis;
- live: the plain aiokafka consumer of :mod:`streams.live_consumer` (high-volume counters).

Both run as futures of one Faust service, so ``python -m streams worker`` (and several workers per
host) works as before. No Faust agent or Table is used: faust-streaming 0.15.3's consumer skips
source records on reassignment (docs/stream-processing.md, "Why not Faust tables"). Both share one
idempotent aiokafka producer (acks=all) for ledger facts and dead letters.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import faust
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from faust.app.base import BootStrategy
from mode import Service

from liveledger.kafka import start_producer
from liveledger.settings import Settings
from liveledger.setup_state import SetupReplica
from schemas.wire import Headers
from streams.ledger_consumer import LedgerConsumer
from streams.live_consumer import LiveConsumer
from streams.redis_state import LedgerStore, LiveStore, Notifier
from streams.supervise import run_forever


class HostBoot(BootStrategy):
    """Faust as the process host only: no Faust consumer (no group, no leader topic, no rebalance to
    wait for before our services start) and no Faust producer; our consumers bring their own."""

    enable_kafka = False


def app_id(settings: Settings) -> str:
    return "liveledger" if settings.topic_prefix == "ll" else f"{settings.topic_prefix}-liveledger"


def ledger_group(settings: Settings) -> str:
    return f"{app_id(settings)}-ledger"


def live_group(settings: Settings) -> str:
    return f"{app_id(settings)}-live"


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        app_id(settings),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=settings.event_partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        producer_acks=-1,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        # memory:// keeps nothing on disk, but Faust still wants a data dir: keep it out of the cwd.
        datadir=str(Path(tempfile.gettempdir()) / "liveledger-faust"),
    )
    app.boot_strategy = HostBoot(app)
    redis_client = aioredis.from_url(settings.redis_url)
    notifier = Notifier(redis_client, settings.topic_prefix)
    replica = SetupReplica(settings)
    producer: list[AIOKafkaProducer] = []
    tasks: list[asyncio.Future[Any]] = []

    @app.service
    class Pipelines(Service):
        """Setup replica, change notifier, the ledger consumer and the live-counter consumer."""

        async def on_start(self) -> None:
            await replica.start()
            notifier.start()
            producer.append(await start_producer(settings))
            kafka = producer[0]

            async def send(topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> Any:
                return await kafka.send(topic, value, key=key, headers=headers)

            live = LiveConsumer(settings, LiveStore(redis_client, settings.topic_prefix), notifier, send,
                                group_id=live_group(settings))
            led = LedgerConsumer(settings, LedgerStore(redis_client, settings.topic_prefix), replica, notifier,
                                 kafka, group_id=ledger_group(settings))
            tasks.append(self.add_future(run_forever(live, "live consumer")))
            tasks.append(self.add_future(run_forever(led, "ledger consumer")))

        async def on_stop(self) -> None:
            for task in tasks:  # consumers first: they leave their groups while the producer still runs
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await notifier.stop()
            await replica.stop()
            for p in producer:
                await p.stop()

    return app
