"""A small simulated day against real ingest and setup API processes.

The processes run on fresh topics and free ports (tests/harness.py ``AppStack``), so the test
never sees another run's data; the admin token is ``LIVELEDGER_ADMIN_TOKEN`` or the dev default.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from liveledger.settings import Settings
from producers.config import SimConfig
from producers.plan import build_plan
from producers.simulator import GroundTruth, run_simulation
from tests.harness import AppStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppStack]:
    stack = AppStack(log_dir=tmp_path_factory.mktemp("sim-apps"))
    stack.create_topics()
    try:
        stack.start_api()
        stack.start_ingest()
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def settings(stack: AppStack) -> Settings:
    return stack.settings


@pytest.fixture(scope="module")
def day(settings: Settings, stack: AppStack) -> GroundTruth:
    ingest = stack.ingest_url
    api = stack.api_url
    cfg = SimConfig(
        seed=11,
        id_prefix=f"e2e{uuid.uuid4().hex[:8]}",
        ingest_url=ingest,
        api_url=api,
        admin_token=settings.admin_token,
        brands=3,
        creators=4,
        streams=3,
        viewers=40,
        minutes=2,
        speed=300,
        invalid_rate=0.01,
        refund_rate=0.3,
        progress=False,
        record_acked=True,
    )
    return asyncio.run(run_simulation(cfg))


def test_accepted_counts_add_up(day: GroundTruth) -> None:
    t = day.totals
    assert t["event_batches_failed"] == 0 and t["events_unacked"] == 0, t["rejections"]
    # what the server said it accepted is exactly the items it did not reject
    assert t["events_accepted_reported"] == t["events_acked"]
    assert t["events_acked"] + t["events_rejected"] == t["events_sent"]
    # only the deliberately invalid events were rejected, every valid one was acknowledged
    assert t["invalid_events_sent"] > 0 and t["invalid_events_acked"] == 0
    assert t["events_rejected"] == t["invalid_events_sent"], t["rejections"]
    cfg = SimConfig(**{**day.document["config"], "admin_token": ""})
    plan = build_plan(cfg)
    valid = {e.event_id for s in plan.streams for tk in s.ticks for b in tk.batches for e in b.events if not e.invalid}
    assert set(day.document["acked"]["event_ids"]) == valid
    # every redirect, order and refund webhook was acknowledged
    assert t["redirects_failed"] == t["orders_failed"] == t["refunds_failed"] == 0, t["rejections"]
    assert t["redirect_clicks_acked"] == t["redirects_sent"] > 0
    assert t["orders_acked"] == t["orders_sent"] > 0 and t["refunds_acked"] == t["refunds_sent"] > 0
    assert len(set(day.document["acked"]["redirect_click_ids"])) == t["redirect_clicks_acked"]
    # click hygiene on the real ingest: previews redirected without a click, repeats got their first
    assert t["bot_redirects_sent"] == t["bot_redirects_ignored"] and t["bot_redirects_counted"] == 0
    assert t["repeat_clicks_mismatched"] == 0


def test_ground_truth_is_internally_consistent(day: GroundTruth) -> None:
    doc = day.document
    streams, creators, brands = doc["streams"], doc["creators"], doc["brands"]
    assert sum(s["clicks"] for s in streams.values()) > 0
    assert sum(b["orders"] for b in brands.values()) == len(doc["orders"])
    attributed = [o for o in doc["orders"] if o["creator_id"]]
    assert sum(c["orders"] for cr in creators.values() for c in cr["currencies"]) == len(attributed)
    for cr in creators.values():
        for c in cr["currencies"]:
            for st in c["status"].values():
                assert st["pending"] + st["approved"] + st["paid"] == c["commission"]
            assert c["status"]["run_end"]["pending"] == c["commission"]  # every hold_days > 0
            assert c["status"]["after_max_hold"]["approved"] == c["commission"]


def _read(bootstrap: str, topic: str, prefix: str) -> list[Any]:
    async def run() -> list[Any]:
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        out: list[Any] = []
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=2000, max_records=5000)
                if not batch:
                    return out
                for records in batch.values():
                    out += [
                        v for r in records if r.value and prefix.encode() in r.value for v in [orjson.loads(r.value)]
                    ]
        finally:
            await consumer.stop()

    return asyncio.run(run())


@pytest.mark.kafka
def test_every_acknowledged_event_is_in_kafka(day: GroundTruth, settings: Settings) -> None:
    prefix = day.document["id_prefix"]
    topic = f"{settings.topic_prefix}.events"
    seen: set[str] = set()
    for rec in _read(settings.kafka_bootstrap, topic, prefix):
        seen.update(e["event_id"] for e in rec.get("events", []))
    acked = day.document["acked"]
    missing = set(acked["event_ids"]) - seen
    assert not missing, f"{len(missing)} acknowledged events not in {topic}, e.g. {sorted(missing)[:5]}"
    missing_clicks = set(acked["redirect_click_ids"]) - seen
    assert not missing_clicks, sorted(missing_clicks)[:5]
    orders = {
        f"{r['brand_id']}/{r.get('refund_id') or r['order_id']}"
        for r in _read(settings.kafka_bootstrap, f"{settings.topic_prefix}.orders", prefix)
    }
    assert set(acked["orders"]) <= orders and set(acked["refunds"]) <= orders
