"""Per-creator conversion, live: the brand leaderboard and the creator's own view, their SSE, and
tenancy, against a real API process with Redis seeded in the workers' documented layout
(liveledger/storage/redis_keys.py ``creator_conversion``)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from liveledger.storage import redis_keys as keys
from tests.api.conftest import World
from tests.api.test_read_api import assert_error

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse]

TODAY = datetime.now(UTC).date().isoformat()


@pytest.fixture(scope="module")
def conv(world: World) -> World:
    p = world.prefix
    now_ms = int(time.time() * 1000)
    world.keys["link"] = world.setup.link("c1", "cmp1", destination_url="https://shop.example/p1",
                                          stream_id="s1")["link_code"]
    code = world.keys["link"]
    world.redis.hset(keys.creator_conversion(p, world.part("b1"), "b1", "c1"), mapping={
        "clicks": 40, "orders": 6, "click_orders": 4, "coupon_orders": 2, "gmv|USD": 90000, "commission|USD": 9000,
        "gmv|EUR": 500, "commission|EUR": 50, "last_order_at": now_ms - 5000, "updated_at": now_ms,
        f"day|{TODAY}|clicks": 7, f"day|{TODAY}|orders": 2, f"day|{TODAY}|click_orders": 1,
        f"day|{TODAY}|gmv|USD": 3000, f"day|{TODAY}|commission|USD": 300, "day|2026-01-01|clicks": 33,
        "stream|s1|clicks": 30, "stream|s1|orders": 4, "stream|s1|click_orders": 3, "stream|s1|coupon_orders": 1,
        "stream|s1|gmv|USD": 70000, "stream|s1|commission|USD": 7000,
        "campaign|cmp1|clicks": 40, "campaign|cmp1|orders": 6, "campaign|cmp1|click_orders": 4,
        "campaign|cmp1|gmv|USD": 90000, "campaign|cmp1|commission|USD": 9000,
        f"link|{code}|clicks": 10, f"link|{code}|orders": 3, f"link|{code}|click_orders": 1,
        f"link|{code}|coupon_orders": 2, f"link|{code}|gmv|USD": 20000, f"link|{code}|commission|USD": 2000})
    world.redis.sadd(keys.brand_creators(p, world.part("b1"), "b1"), "c1", "c9")
    world.redis.hset(keys.creator_conversion(p, world.part("b1"), "b1", "c9"),
                     mapping={"clicks": 8, "updated_at": now_ms - 60000})
    world.redis.hset(keys.creator_conversion(p, world.part("b2"), "b2", "c2"),
                     mapping={"clicks": 5, "orders": 1, "click_orders": 1, "gmv|USD": 100, "commission|USD": 10})
    world.redis.sadd(keys.brand_creators(p, world.part("b2"), "b2"), "c2")
    return world


def test_brand_leaderboard(conv: World) -> None:
    resp = conv.get("/v1/brands/b1/creators/live", "b1")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["brand_id"] == "b1" and body["updated_at"].endswith("Z")
    c1, c9 = body["creators"]
    assert c1["creator_id"] == "c1" and (c1["clicks"], c1["orders"], c1["click_orders"], c1["coupon_orders"]) == (
        40, 6, 4, 2)
    assert c1["cvr"] == 0.1  # click_orders / clicks
    assert c1["gmv"] == [{"currency": "EUR", "net_minor": 500}, {"currency": "USD", "net_minor": 90000}]
    assert c1["commission"] == [{"currency": "EUR", "amount_minor": 50}, {"currency": "USD", "amount_minor": 9000}]
    assert c1["last_order_at"].endswith("Z")
    assert (c9["creator_id"], c9["clicks"], c9["orders"], c9["cvr"], c9["gmv"], c9["last_order_at"]) == (
        "c9", 8, 0, 0.0, [], None)
    assert "c2" not in {c["creator_id"] for c in body["creators"]}  # another brand's creator
    for key in ("admin", "finance"):
        assert conv.get("/v1/brands/b1/creators/live", key).json()["creators"] == body["creators"]


def test_brand_leaderboard_filters(conv: World) -> None:
    s1 = conv.get("/v1/brands/b1/creators/live?stream_id=s1", "b1").json()
    assert [(c["creator_id"], c["clicks"], c["orders"], c["cvr"]) for c in s1["creators"]] == [("c1", 30, 4, 0.1)]
    assert s1["creators"][0]["last_order_at"] is None and s1["stream_id"] == "s1"
    cmp1 = conv.get("/v1/brands/b1/creators/live?campaign_id=cmp1", "b1").json()
    assert [(c["creator_id"], c["orders"], c["gmv"]) for c in cmp1["creators"]] == [
        ("c1", 6, [{"currency": "USD", "net_minor": 90000}])]
    assert_error(conv.get("/v1/brands/b1/creators/live?stream_id=s2", "b1"), 404, "not_found")  # b2's stream
    assert_error(conv.get("/v1/brands/b1/creators/live?campaign_id=cmp2", "b1"), 404, "not_found")
    assert_error(conv.get("/v1/brands/b1/creators/live?stream_id=s1&campaign_id=cmp1", "b1"), 422,
                 "validation_failed")


def test_brand_leaderboard_tenancy(conv: World) -> None:
    assert_error(conv.get("/v1/brands/b1/creators/live", "b2"), 403, "forbidden")
    assert_error(conv.get("/v1/brands/b1/creators/live", "c1"), 403, "forbidden")
    assert_error(conv.get("/v1/brands/b1/creators/live", "none"), 401, "unauthorized")
    assert_error(conv.get("/v1/brands/nope/creators/live", "admin"), 404, "not_found")


def test_creator_live(conv: World) -> None:
    code = conv.keys["link"]
    resp = conv.get("/v1/creators/c1/live", "c1")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["creator_id"] == "c1"
    assert [(b["brand_id"], b["orders"], b["clicks"]) for b in body["brands"]] == [("b1", 6, 40)]
    today = body["brands"][0]["today"]
    assert (today["clicks"], today["orders"], today["click_orders"], today["cvr"]) == (7, 2, 1, round(1 / 7, 4))
    assert today["gmv"] == [{"currency": "USD", "net_minor": 3000}]
    (link,) = body["links"]
    assert (link["link_code"], link["brand_id"], link["campaign_id"], link["clicks"], link["orders"],
            link["coupon_orders"]) == (code, "b1", "cmp1", 10, 3, 2)
    assert link["gmv"] == [{"currency": "USD", "net_minor": 20000}]
    assert [(s["stream_id"], s["brand_id"], s["clicks"], s["orders"]) for s in body["streams"]] == [
        ("s1", "b1", 30, 4)]
    assert conv.get("/v1/creators/c1/live?stream_id=nope", "c1").json()["streams"] == []
    assert conv.get("/v1/creators/c1/live", "finance").json() == body
    assert_error(conv.get("/v1/creators/c1/live", "c2"), 403, "forbidden")
    assert_error(conv.get("/v1/creators/c1/live", "b1"), 403, "forbidden")
    assert_error(conv.get("/v1/creators/nobody/live", "admin"), 404, "not_found")


def _first_events(world: World, path: str, key: str, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def read() -> None:
        with httpx.stream("GET", world.stack.api_url + path, params={"key": world.keys[key]}, timeout=timeout) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    out.append(orjson.loads(line[6:]))
                    if len(out) >= n:
                        return

    threading.Thread(target=read, daemon=True).start()
    return out  # filled by the reader thread; the caller polls it


def test_brand_leaderboard_sse_pushes_a_change(conv: World) -> None:
    events = _first_events(conv, "/v1/brands/b1/creators/live/events", "b1", 2)
    deadline = time.monotonic() + 10
    while not events and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events and events[0]["brand_id"] == "b1"
    before = {c["creator_id"]: c["clicks"] for c in events[0]["creators"]}
    conv.redis.hincrby(keys.creator_conversion(conv.prefix, conv.part("b1"), "b1", "c9"), "clicks", 1)
    conv.redis.publish(keys.conversion_channel(conv.prefix, "b1"), orjson.dumps({"brand_id": "b1"}))
    t0 = time.monotonic()
    while len(events) < 2 and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    assert len(events) == 2, "no push within 5 s"
    assert {c["creator_id"]: c["clicks"] for c in events[1]["creators"]}["c9"] == before["c9"] + 1
    assert time.monotonic() - t0 < 1.0  # pushed on change, not on the 5 s re-read


def test_creator_sse_tenancy(conv: World) -> None:
    resp = httpx.get(conv.stack.api_url + "/v1/creators/c1/live/events", params={"key": conv.keys["c2"]},
                     timeout=10)
    assert_error(resp, 403, "forbidden")
    resp = httpx.get(conv.stack.api_url + "/v1/brands/b1/creators/live/events", params={"key": conv.keys["b2"]},
                     timeout=10)
    assert_error(resp, 403, "forbidden")


def test_openapi_documents_the_conversion_endpoints(conv: World) -> None:
    spec = conv.get("/openapi.json").json()
    for path in ("/v1/brands/{brand_id}/creators/live", "/v1/brands/{brand_id}/creators/live/events",
                 "/v1/creators/{creator_id}/live", "/v1/creators/{creator_id}/live/events"):
        assert path in spec["paths"], path
    fields = spec["components"]["schemas"]["CreatorFunnel"]["properties"]
    assert {"clicks", "orders", "click_orders", "coupon_orders", "cvr", "gmv", "commission", "last_order_at"} <= set(
        fields)


def test_stream_creators_panel(conv: World) -> None:
    body = conv.get("/v1/streams/s1/creators/live", "b1").json()
    assert body["stream_id"] == "s1" and [(c["creator_id"], c["clicks"], c["orders"]) for c in body["creators"]] == [
        ("c1", 30, 4)]
    assert conv.get("/v1/streams/s1/creators/live", "finance").json()["creators"] == body["creators"]
    assert_error(conv.get("/v1/streams/s1/creators/live", "b2"), 404, "not_found")  # existence is private
    assert_error(conv.get("/v1/streams/s1/creators/live", "c1"), 403, "forbidden")


def test_brand_creators_series_for_the_sparklines(conv: World) -> None:
    """The API samples each active brand's creators every 10 s; the brand page seeds its sparklines."""
    deadline = time.monotonic() + 15
    points: list[dict[str, Any]] = []
    while not points and time.monotonic() < deadline:
        body = conv.get("/v1/brands/b1/creators/series", "b1").json()
        points = body["points"]
        time.sleep(0.5)
    assert points, "no sample within 15 s"
    assert body["interval_s"] == 10.0
    assert points[-1]["creators"]["c1"] == {"clicks": 40, "orders": 6} and points[-1]["t"] % 10000 == 0
    assert_error(conv.get("/v1/brands/b1/creators/series", "b2"), 403, "forbidden")


def test_brand_streams_live_now_first(conv: World) -> None:
    conv.redis.hset(keys.stream_counts(conv.prefix, conv.stream_part("s1"), "s1"),
                    mapping={"updated_at": int(time.time() * 1000), "clicks": 12, "orders": 3, "gmv|USD": 4500})
    body = conv.get("/v1/brands/b1/streams/live", "b1").json()
    (s1,) = body["streams"]  # b2's stream s2 is not listed
    assert (s1["stream_id"], s1["creator_id"], s1["live_now"], s1["clicks"], s1["orders"]) == ("s1", "c1", True, 12, 3)
    assert s1["gmv"] == [{"currency": "USD", "net_minor": 4500}]
    assert_error(conv.get("/v1/brands/b1/streams/live", "b2"), 403, "forbidden")
    assert_error(conv.get("/v1/brands/b1/streams/live", "c1"), 403, "forbidden")
    assert_error(conv.get("/v1/brands/nope/streams/live", "finance"), 404, "not_found")
    assert_error(conv.get("/v1/brands/b1/creators/series?since=-1", "b1"), 422, "validation_failed")
