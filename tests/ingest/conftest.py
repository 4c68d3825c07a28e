from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from liveledger.settings import DEV_ADMIN_TOKEN
from tests.harness import AppStack, SetupClient


@dataclass
class World:
    stack: AppStack
    setup: SetupClient
    brand: dict[str, Any]
    other_brand: dict[str, Any]
    creator: dict[str, Any]
    link: dict[str, Any]
    coupon_link: dict[str, Any]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    stack = AppStack(log_dir=Path(tmp_path_factory.mktemp("apps")))
    stack.create_topics()
    try:
        stack.start_api()
        stack.start_ingest()
        setup = SetupClient(stack.api_url, DEV_ADMIN_TOKEN)
        brand = setup.brand("b1", "USD")
        other = setup.brand("b2", "JPY")
        creator = setup.creator("c1")
        setup.creator("c2")
        setup.campaign("cmp1", "b1", attribution_window_days=7)
        setup.campaign("cmp2", "b2")
        setup.stream("s1", "b1", "c1")
        setup.stream("s2", "b2", "c2")
        link = setup.link("c1", "cmp1", stream_id="s1", product_id="p1")
        coupon_link = setup.link("c1", "cmp1", coupon_code="save10")
        yield World(stack, setup, brand, other, creator, link, coupon_link)
    finally:
        stack.stop_all()


def read_topic(bootstrap: str, topic: str, idle_ms: int = 1500) -> list[tuple[bytes | None, Any, dict[str, bytes]]]:
    """Every record of a topic from the beginning: (key, decoded JSON value, headers)."""

    async def run() -> list[tuple[bytes | None, Any, dict[str, bytes]]]:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False, group_id=None)
        await consumer.start()
        out: list[tuple[bytes | None, Any, dict[str, bytes]]] = []
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=idle_ms)
                if not batch:
                    return out
                for records in batch.values():
                    out.extend((r.key, orjson.loads(r.value) if r.value else None, dict(r.headers))
                               for r in records)
        finally:
            await consumer.stop()

    return asyncio.run(run())
