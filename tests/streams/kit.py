"""Test kit for the stream processors: fresh namespaces, worker subprocesses, record builders."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition

from liveledger.kafka import create_topics
from liveledger.settings import Settings
from liveledger.topics import topic_name


@dataclass(frozen=True)
class Msg:
    """The fields of a Faust ``Message`` the live and ledger paths read (records fed to them without Kafka)."""

    tp: TopicPartition
    offset: int
    key: bytes
    value: bytes
    timestamp: int = 0

REPO = Path(__file__).resolve().parents[2]


def fresh_settings(**overrides: Any) -> Settings:
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return Settings(topic_prefix=prefix, clickhouse_database=f"{prefix}_db", **overrides)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_utc() -> datetime:
    return datetime.now(UTC)


def batch(brand: str, events: list[dict[str, Any]], received: datetime | None = None) -> bytes:
    return orjson.dumps({"v": 1, "batch_id": uuid.uuid4().hex, "brand_id": brand, "source": "events-api",
                         "received_at": iso(received or now_utc()), "events": events})


def view(eid: str, stream: str, viewer: str, action: str = "join", at: datetime | None = None) -> dict[str, Any]:
    return {"event_id": eid, "type": "view", "stream_id": stream, "viewer_id": viewer, "action": action,
            "occurred_at": iso(at or now_utc())}


def click(eid: str, stream: str, viewer: str, product: str, creator: str, campaign: str | None,
          at: datetime | None = None) -> dict[str, Any]:
    return {"event_id": eid, "type": "click", "stream_id": stream, "viewer_id": viewer, "product_id": product,
            "campaign_id": campaign, "creator_id": creator, "link_code": None, "occurred_at": iso(at or now_utc())}


def cart(eid: str, stream: str, viewer: str, product: str, at: datetime | None = None) -> dict[str, Any]:
    return {"event_id": eid, "type": "add_to_cart", "stream_id": stream, "viewer_id": viewer, "product_id": product,
            "occurred_at": iso(at or now_utc())}


def order(brand: str, order_id: str, *, click_id: str | None = None, coupon: str | None = None,
          items: Iterable[tuple[str, int, int]] = (("p1", 1, 10000),), discount: int = 0, currency: str = "USD",
          event_id: str | None = None, at: datetime | None = None) -> bytes:
    t = at or now_utc()
    return orjson.dumps({
        "v": 1, "event_id": event_id or f"evt-{order_id}", "type": "order.created", "brand_id": brand,
        "order_id": order_id, "click_id": click_id, "coupon_code": coupon, "occurred_at": iso(t),
        "received_at": iso(now_utc()), "currency": currency,
        "items": [{"sku": s, "quantity": q, "unit_price_minor": p} for s, q, p in items],
        "discount_minor": discount, "tax_minor": 0, "shipping_minor": 0, "source": "native"})


def refund(brand: str, order_id: str, refund_id: str, amount: int, *, event_id: str | None = None) -> bytes:
    return orjson.dumps({
        "v": 1, "event_id": event_id or f"evt-{refund_id}", "type": "order.refunded", "brand_id": brand,
        "order_id": order_id, "refund_id": refund_id, "amount_minor": amount, "currency": "USD",
        "occurred_at": iso(now_utc()), "received_at": iso(now_utc()), "source": "native"})


def cancel(brand: str, order_id: str, *, event_id: str | None = None) -> bytes:
    return orjson.dumps({
        "v": 1, "event_id": event_id or f"evt-cancel-{order_id}", "type": "order.cancelled", "brand_id": brand,
        "order_id": order_id, "occurred_at": iso(now_utc()), "received_at": iso(now_utc()), "source": "shopify"})


def setup_record(kind: str, ident: str, value: dict[str, Any]) -> tuple[bytes, bytes]:
    return f"{kind}:{ident}".encode(), orjson.dumps(value)


async def prepare_topics(settings: Settings) -> None:
    await create_topics(settings)


async def produce(settings: Settings, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> None:
    """(short topic name, key, value) in order, acks=all."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5,
                                enable_idempotence=True)
    await producer.start()
    try:
        futs = [await producer.send(topic_name(settings, t), v, key=k) for t, k, v in records]
        await producer.flush()
        for f in futs:
            await f
    finally:
        await producer.stop()


def env_for(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "LIVELEDGER_TOPIC_PREFIX": settings.topic_prefix,
        "LIVELEDGER_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LIVELEDGER_REDIS_URL": settings.redis_url,
        "LIVELEDGER_CLICKHOUSE_DATABASE": settings.clickhouse_database,
        "CLICKHOUSE_URL": settings.clickhouse_url,
        "PYTHONUNBUFFERED": "1",
    })
    return env


def spawn(settings: Settings, module: str, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env_for(settings),
                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill9(proc)


async def wait_for(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll an async or sync ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout}s (last={last!r})")


def ago(**kw: float) -> datetime:
    return now_utc() - timedelta(**kw)
