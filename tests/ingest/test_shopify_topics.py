"""Shopify as it really sends, against a real ingest and Kafka: test orders and topics we do not
book are 200 and counted (Shopify drops subscriptions that keep failing), orders/cancelled becomes
an ``order.cancelled`` record, an order created already cancelled is booked then cancelled, and the
HMAC is checked before anything else."""

from __future__ import annotations

import time

import orjson
import pytest
import redis

from liveledger.settings import Settings
from liveledger.storage import redis_keys
from tests.ingest.conftest import World, read_topic
from tests.ingest.test_ingest_api import post_shopify, shopify_order

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


def orders_records(world: World) -> dict[str, dict[str, object]]:
    return {v["event_id"]: v for _, v, _ in read_topic("127.0.0.1:9092", f"{world.stack.prefix}.orders")}


def stat(world: World, name: str, at_least: int) -> int:
    r = redis.Redis.from_url(Settings().redis_url)
    deadline = time.monotonic() + 5
    while True:
        value = int(r.hget(redis_keys.stats(world.stack.prefix), name) or 0)
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_test_orders_are_acknowledged_and_never_booked(world: World) -> None:
    body = orjson.dumps({**shopify_order(7001), "test": True, "cancelled_at": None})
    resp = post_shopify(world, body, "orders/create", "wh-test-7001")
    assert resp.status_code == 200 and resp.json()["accepted"] == 0
    assert "shopify:wh-test-7001" not in orders_records(world)
    assert stat(world, "ignored_test_orders", 1) >= 1


def test_other_topics_are_200_and_counted_but_need_a_valid_hmac(world: World) -> None:
    body = orjson.dumps({"id": 1, "email": "x@example.com"})
    before = stat(world, "ignored_webhooks", 0)
    for i, topic in enumerate(("customers/create", "orders/updated", "app/uninstalled")):
        resp = post_shopify(world, body, topic, f"wh-other-{i}")
        assert resp.status_code == 200, resp.text
    assert stat(world, "ignored_webhooks", before + 3) == before + 3
    assert post_shopify(world, body, "customers/create", "wh-other-x", secret="wrong").status_code == 401
    # a malformed body on a topic we book is still a 4xx (Shopify then shows the failure)
    assert post_shopify(world, b"{not json", "orders/create", "wh-bad").status_code == 400


def test_orders_cancelled_becomes_a_cancel_record(world: World) -> None:
    body = orjson.dumps({**shopify_order(7002), "cancelled_at": "2026-11-30T10:00:00Z", "cancel_reason": "customer"})
    resp = post_shopify(world, body, "orders/cancelled", "wh-cancel-7002")
    assert resp.status_code == 202, resp.text
    rec = orders_records(world)[resp.json()["event_id"]]
    assert rec["type"] == "order.cancelled" and rec["order_id"] == "7002" and rec["source"] == "shopify"
    # the same webhook again is the same event id (the ledger counts it once)
    again = post_shopify(world, body, "orders/cancelled", "wh-cancel-7002")
    assert again.json()["event_id"] == resp.json()["event_id"]


def test_an_order_created_already_cancelled_is_booked_then_cancelled(world: World) -> None:
    body = orjson.dumps({**shopify_order(7003), "cancelled_at": "2026-11-30T10:00:00Z"})
    resp = post_shopify(world, body, "orders/create", "wh-7003")
    assert resp.status_code == 202, resp.text
    recs = [v for _, v, _ in read_topic("127.0.0.1:9092", f"{world.stack.prefix}.orders") if v["order_id"] == "7003"]
    assert [r["type"] for r in recs] == ["order.created", "order.cancelled"]
