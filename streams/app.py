"""The Faust app: the ledger agent (attribution, commission, refunds) and the live-counter service.

- ``ledger`` agent: one agent over the events and orders topics (co-partitioned by brand_id). Per
  record it calls the pure functions of :mod:`streams.ledger` over four tables (clicks, orders,
  waiting, seen); each table's changelog partition is the source record's partition. Effects go to
  the ledger topic (for the ClickHouse sink) and to Redis through the fenced ``LEDGER_FLUSH``.
- ``live`` service: the plain aiokafka consumer of :mod:`streams.live_consumer` beside the agent in
  the same process (its own consumer group), for the high-volume counters.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis
from mode import Service

from liveledger.settings import Settings
from liveledger.setup_state import SetupReplica
from liveledger.topics import topic_name
from streams import ledger
from streams.dlq import Headers, dlq_headers
from streams.live_consumer import LiveConsumer, run_forever
from streams.records import InvalidRecord, Order, clicks_in_batch, parse_order_record
from streams.redis_state import LiveStore, Notifier, now_ms

log = logging.getLogger(__name__)

LEDGER_CONSUMER = "ledger"


def app_id(settings: Settings) -> str:
    return "liveledger" if settings.topic_prefix == "ll" else f"{settings.topic_prefix}-liveledger"


def _compact(snap: dict[str, Any]) -> dict[str, Any]:
    """What the Redis aggregates need of a snapshot (None values dropped for Lua)."""
    wanted = ("brand_id", "order_id", "version", "currency", "net_minor", "commission_minor", "reversed_minor",
              "via", "creator_id", "campaign_id", "stream_id", "skus")
    return {k: snap[k] for k in wanted if snap.get(k) is not None}


def create_app(settings: Settings) -> faust.App:
    n = settings.event_partitions
    app = faust.App(
        app_id(settings),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=n,
        topic_replication_factor=1,
        topic_allow_declare=True,
        producer_linger=0.005,
        producer_acks=-1,
        producer_compression_type="lz4",
        web_enabled=False,
        broker_commit_interval=1.0,
        table_standby_replicas=0,
        consumer_auto_offset_reset="earliest",
        # memory:// keeps nothing on disk, but Faust still wants a data dir: keep it out of the cwd.
        datadir=str(Path(tempfile.gettempdir()) / "liveledger-faust"),
    )
    source = app.topic(topic_name(settings, "events"), topic_name(settings, "orders"),
                       key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                       partitions=n)
    dlq_topic = topic_name(settings, "dlq")
    ledger_topic = topic_name(settings, "ledger")
    events_topic = topic_name(settings, "events")

    def table(name: str) -> Any:
        return app.Table(name, default=None, partitions=n, key_type=str)

    tables = ledger.Tables(clicks=table("clicks"), orders=table("orders"), waiting=table("waiting"),
                           seen=table("seen"))
    redis_client = aioredis.from_url(settings.redis_url)
    store = LiveStore(redis_client, settings.topic_prefix)
    notifier = Notifier(redis_client, settings.topic_prefix)
    replica = SetupReplica(settings)
    setup_ready = asyncio.Event()

    async def send(topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> Any:
        return await app.producer.send(topic, key, value, None, None, headers)

    @app.service
    class Support(Service):
        """Setup replica, change notifier and the live-counter consumer."""

        async def on_start(self) -> None:
            await replica.start()
            setup_ready.set()
            notifier.start()
            await app.producer.maybe_start()
            live = LiveConsumer(settings, store, notifier, send, group_id=f"{app_id(settings)}-live")
            self.add_future(run_forever(live))

        async def on_stop(self) -> None:
            await notifier.stop()
            await replica.stop()

    async def catch_up_if_missing(o: Order) -> None:
        state = replica.state
        click = tables.clicks.get(f"{o.brand_id}:{o.click_id}") if o.click_id else None
        missing = (click is not None and click.get("campaign_id") and click["campaign_id"] not in state.campaigns) \
            or (o.coupon_code is not None and state.link_for_coupon(o.brand_id, o.coupon_code) is None)
        if missing:
            try:
                await replica.catch_up()
            except TimeoutError:
                log.warning("setup catch-up timed out; attributing with what is known")

    async def effects(fx: ledger.Effects, brand: bytes, topic: str, partition: int, offset: int) -> None:
        for snap in fx.snapshots:
            await app.producer.send(ledger_topic, brand, orjson.dumps(ledger.ledger_fact_order(snap)),
                                    partition, None, None)
        for ref in fx.refunds:
            await app.producer.send(ledger_topic, brand, orjson.dumps(ledger.ledger_fact_refund(ref)),
                                    partition, None, None)
        if not fx:
            return
        touched = await store.apply_ledger({
            "p": settings.topic_prefix, "c": LEDGER_CONSUMER, "tp": f"{topic}:{partition}",
            "first": offset, "last": offset, "snaps": [_compact(s) for s in fx.snapshots],
            "st": fx.stats, "now": now_ms()})
        if touched:
            notifier.mark(touched)

    async def handle(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        src = f"{topic}:{partition}:{offset}"
        if topic == events_topic:
            fx = ledger.Effects()
            for click in clicks_in_batch(value, key):
                one = ledger.on_click(tables, replica.state, click, src)
                fx.snapshots += one.snapshots
                for k, v in one.stats.items():
                    fx.count(k, v)
            if fx:
                await effects(fx, key or b"", topic, partition, offset)
            return
        try:
            rec = parse_order_record(value, key)
        except InvalidRecord as exc:
            await app.producer.send(dlq_topic, key, value, None, None,
                                    dlq_headers(exc.reason, topic, partition, offset, detail=exc.detail))
            await effects(ledger.Effects(stats={"orders_dead_lettered": 1, f"dlq|{exc.reason}": 1}),
                          key or b"", topic, partition, offset)
            return
        if isinstance(rec, Order):
            await catch_up_if_missing(rec)
            fx = ledger.on_order(tables, replica.state, rec, src)
        else:
            fx = ledger.on_refund(tables, replica.state, rec, src)
        await effects(fx, rec.brand_id.encode(), topic, partition, offset)

    @app.agent(source)
    async def ledger_agent(stream: Any) -> None:
        await setup_ready.wait()
        log.info("ledger agent: consuming %s", ", ".join(sorted(source.topics)))
        processed, last_log = 0, time.monotonic()
        async for event in stream.events():
            msg = event.message
            processed += 1
            if time.monotonic() - last_log >= 10:
                log.info("ledger agent: %d records (%.0f/s)", processed, processed / (time.monotonic() - last_log))
                processed, last_log = 0, time.monotonic()
            try:
                await handle(msg.topic, msg.partition, msg.offset, msg.key, msg.value)
            except Exception as exc:  # a bug must not kill the agent: dead-letter the record and go on
                log.exception("ledger agent failed on %s:%d:%d", msg.topic, msg.partition, msg.offset)
                await app.producer.send(dlq_topic, msg.key, msg.value, None, None,
                                        dlq_headers("processing_error", msg.topic, msg.partition, msg.offset,
                                                    detail=repr(exc)))

    return app
