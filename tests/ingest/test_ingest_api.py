"""The ingest service against real Kafka: happy paths, every bad-input class, and read-back."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from ingest.signatures import sign_liveledger, sign_shopify
from tests.harness import BROWSER_UA
from tests.ingest.conftest import World, read_topic

pytestmark = [pytest.mark.kafka]


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def now_iso(offset_s: float = 0) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=offset_s))


def post_events(w: World, events: list[Any], key: str | None = None, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or w.brand['api_key']}"}
    return httpx.post(f"{w.stack.ingest_url}/v1/events", json={"events": events}, headers=headers, **kw)


def view(event_id: str, stream: str = "s1", **kw: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": "view", "stream_id": stream, "viewer_id": "v1", "action": "join",
            "occurred_at": now_iso(), **kw}


def events_records(w: World) -> list[dict[str, Any]]:
    return [v for _, v, _ in read_topic("127.0.0.1:9092", f"{w.stack.prefix}.events")]


def order_body(event_id: str, order_id: str, brand: str = "b1", **kw: Any) -> dict[str, Any]:
    return {"event_id": event_id, "type": "order.created", "brand_id": brand, "order_id": order_id,
            "occurred_at": now_iso(), "currency": "USD",
            "items": [{"sku": "p1", "quantity": 2, "unit_price_minor": 1999}],
            "discount_minor": 100, "tax_minor": 0, "shipping_minor": 500, **kw}


def post_order(w: World, body: bytes, secret: str | None = None, t: int | None = None,
               header: str | None = None) -> httpx.Response:
    sig = header if header is not None else sign_liveledger(body, secret or w.brand["webhook_secret"],
                                                            t if t is not None else int(time.time()))
    return httpx.post(f"{w.stack.ingest_url}/v1/webhooks/orders", content=body,
                      headers={"Content-Type": "application/json", "X-LiveLedger-Signature": sig})


# --- redirects ------------------------------------------------------------------------------


def test_redirect_302_with_click_param_cookie_and_event(world: World) -> None:
    resp = httpx.get(f"{world.stack.ingest_url}/l/{world.link['link_code']}", headers={"User-Agent": BROWSER_UA})
    assert resp.status_code == 302
    location = urlsplit(resp.headers["location"])
    query = parse_qs(location.query)
    assert location.netloc == "shop.example"
    assert query["ref"] == ["x"]
    click_id = query["ll_click"][0]
    assert resp.cookies["ll_click"] == click_id
    clicks = [e for r in events_records(world) for e in r["events"] if e["event_id"] == click_id]
    assert len(clicks) == 1
    assert clicks[0]["creator_id"] == "c1"
    assert clicks[0]["campaign_id"] == "cmp1"
    assert clicks[0]["stream_id"] == "s1"
    assert clicks[0]["link_code"] == world.link["link_code"]


def test_redirect_unknown_code_is_404_without_event(world: World) -> None:
    before = len(events_records(world))
    resp = httpx.get(f"{world.stack.ingest_url}/l/nope-not-a-link")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"
    assert len(events_records(world)) == before


# --- /v1/events -----------------------------------------------------------------------------


def test_events_accepted_are_in_kafka_exactly_as_accepted(world: World) -> None:
    batch = [
        view("ev-a1"),
        {"event_id": "ev-a2", "type": "click", "stream_id": "s1", "viewer_id": "v1", "product_id": "p9",
         "campaign_id": "cmp1", "occurred_at": "2026-11-25T21:00:00+01:00"},
        {"event_id": "ev-a3", "type": "add_to_cart", "stream_id": "s1", "viewer_id": "v1", "product_id": "p9",
         "occurred_at": now_iso(-60)},
    ]
    # the second event's offset form is normalised to UTC; make it fall inside the window
    batch[1]["occurred_at"] = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(
        __import__("datetime").timezone(timedelta(hours=1))).isoformat()
    resp = post_events(world, batch)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"accepted": 3, "rejected": []}
    recs = [r for r in events_records(world) if any(e["event_id"] == "ev-a1" for e in r["events"])]
    assert len(recs) == 1
    rec = recs[0]
    assert rec["brand_id"] == "b1" and rec["source"] == "events-api" and rec["v"] == 1
    got = {e["event_id"]: e for e in rec["events"]}
    assert set(got) == {"ev-a1", "ev-a2", "ev-a3"}
    assert got["ev-a1"] == {**batch[0]}
    sent_click_time = datetime.fromisoformat(batch[1]["occurred_at"])
    assert got["ev-a2"]["occurred_at"] == iso(sent_click_time)
    assert got["ev-a2"]["creator_id"] == "c1"
    assert got["ev-a3"]["product_id"] == "p9"


def test_partial_acceptance_keeps_valid_events(world: World) -> None:
    resp = post_events(world, [view("ev-p1"), view("ev-p2", occurred_at=now_iso(3600)), view("ev-p3")])
    assert resp.status_code == 202
    body = resp.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1]
    assert "events[1].occurred_at" in body["rejected"][0]["error"]
    assert "future" in body["rejected"][0]["error"]
    ids = {e["event_id"] for r in events_records(world) for e in r["events"]}
    assert {"ev-p1", "ev-p3"} <= ids and "ev-p2" not in ids


def test_setup_takes_effect_for_the_next_request(world: World) -> None:
    world.setup.stream("s-new", "b1", "c1")
    resp = post_events(world, [view("ev-new-1", stream="s-new")])
    assert resp.status_code == 202, resp.text


def test_malformed_json_400(world: World) -> None:
    resp = httpx.post(f"{world.stack.ingest_url}/v1/events", content=b'{"events": [',
                      headers={"Authorization": f"Bearer {world.brand['api_key']}",
                               "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "malformed_json"


def test_wrong_content_type_415(world: World) -> None:
    resp = httpx.post(f"{world.stack.ingest_url}/v1/events", content=b"events=1",
                      headers={"Authorization": f"Bearer {world.brand['api_key']}",
                               "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 415
    assert resp.json()["error"]["details"][0]["field"] == "Content-Type"


def test_oversize_body_413(world: World) -> None:
    big = [view(f"ev-big-{i}", viewer_id="v" * 120) for i in range(900)]
    body = orjson.dumps({"events": big, "pad": "x" * (1024 * 1024)})
    resp = httpx.post(f"{world.stack.ingest_url}/v1/events", content=body,
                      headers={"Authorization": f"Bearer {world.brand['api_key']}",
                               "Content-Type": "application/json"}, timeout=30.0)
    assert resp.status_code == 413


def test_too_many_events_413(world: World) -> None:
    resp = post_events(world, [view(f"ev-many-{i}") for i in range(1001)])
    assert resp.status_code == 413
    assert resp.json()["error"]["details"][0]["field"] == "events"


def test_missing_and_bad_key_401(world: World) -> None:
    resp = httpx.post(f"{world.stack.ingest_url}/v1/events", json={"events": [view("ev-k1")]})
    assert resp.status_code == 401
    resp = post_events(world, [view("ev-k2")], key="llb_not-a-real-key")
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "unauthorized"


def test_creator_key_and_other_brands_stream_403(world: World) -> None:
    assert post_events(world, [view("ev-f1")], key=world.creator["api_key"]).status_code == 403
    resp = post_events(world, [view("ev-f2", stream="s2")])
    assert resp.status_code == 403
    assert resp.json()["error"]["details"][0]["field"] == "events[0].stream_id"


BAD_EVENTS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown type", {"type": "purchase"}, "type"),
    ("missing field", {"viewer_id": None}, "viewer_id"),
    ("wrong type", {"viewer_id": 12}, "viewer_id"),
    ("bad action", {"action": "dance"}, "action"),
    ("future", {"occurred_at": "FUTURE"}, "occurred_at"),
    ("too old", {"occurred_at": "PAST"}, "occurred_at"),
    ("naive time", {"occurred_at": "2026-11-25T10:00:00"}, "occurred_at"),
    ("unicode look-alike", {"viewer_id": "v\u0456ewer"}, "viewer_id"),
    ("NUL", {"viewer_id": "v\x00"}, "viewer_id"),
    ("CRLF", {"viewer_id": "v\r\nX-Injected: 1"}, "viewer_id"),
    ("SQL fragment", {"viewer_id": "x'; DROP TABLE events;--"}, "viewer_id"),
    ("10 KB id", {"viewer_id": "a" * 10_000}, "viewer_id"),
    ("unknown field", {"extra": 1}, "extra"),
]


@pytest.mark.parametrize(("name", "patch", "field"), BAD_EVENTS, ids=[b[0] for b in BAD_EVENTS])
def test_bad_event_422_names_field(world: World, name: str, patch: dict[str, Any], field: str) -> None:
    event = view(f"ev-bad-{abs(hash(name))}")
    for k, v in patch.items():
        if v == "FUTURE":  # computed at run time: the window moves while the suite runs
            event[k] = now_iso(400)
        elif v == "PAST":
            event[k] = now_iso(-401 * 86400)
        elif v is None:
            event.pop(k)
        else:
            event[k] = v
    resp = post_events(world, [event])
    assert resp.status_code == 422, resp.text
    details = resp.json()["error"]["details"]
    assert any(d["field"] == f"events[0].{field}" for d in details), details
    assert all(d["reason"] for d in details)


def test_nan_in_quantity_is_422_not_500(world: World) -> None:
    body = json.dumps(order_body("ord-nan", "o-nan")).replace('"quantity": 2', '"quantity": NaN').encode()
    resp = post_order(world, body)
    assert resp.status_code in (400, 422), resp.text
    assert resp.json()["error"]["code"] in ("malformed_json", "validation_failed")


# --- native order webhook -------------------------------------------------------------------


def test_order_webhook_accepted_and_in_kafka(world: World) -> None:
    body = orjson.dumps(order_body("ord-ev-1", "o-1", click_id="clk:abc", coupon_code="SAVE10"))
    resp = post_order(world, body)
    assert resp.status_code == 202, resp.text
    refund = orjson.dumps({"event_id": "ref-ev-1", "type": "order.refunded", "brand_id": "b1",
                           "order_id": "o-1", "refund_id": "r-1", "amount_minor": 500,
                           "occurred_at": now_iso()})
    assert post_order(world, refund).status_code == 202
    recs = {v["event_id"]: v for k, v, _ in read_topic("127.0.0.1:9092", f"{world.stack.prefix}.orders")}
    order = recs["ord-ev-1"]
    assert order["type"] == "order.created" and order["source"] == "native" and order["brand_id"] == "b1"
    assert order["items"] == [{"sku": "p1", "quantity": 2, "unit_price_minor": 1999}]
    assert order["click_id"] == "clk:abc"
    assert recs["ref-ev-1"]["amount_minor"] == 500


def test_order_webhook_signature_failures_401(world: World) -> None:
    body = orjson.dumps(order_body("ord-sig", "o-sig"))
    assert post_order(world, body, header="").status_code == 401
    assert post_order(world, body, header="t=1,v1=zz,garbage").status_code == 401
    assert post_order(world, body, secret="whsec_wrong").status_code == 401
    assert post_order(world, body, t=int(time.time()) - 301).status_code == 401
    sig = sign_liveledger(body, world.brand["webhook_secret"], int(time.time()))
    reserialised = json.dumps(json.loads(body), indent=2).encode()
    assert post_order(world, reserialised, header=sig).status_code == 401
    unknown = orjson.dumps(order_body("ord-sig2", "o-sig2", brand="nobody"))
    assert post_order(world, unknown).status_code == 401


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"items": [{"sku": "p1", "quantity": 1, "unit_price_minor": 19.99}]}, "items[0].unit_price_minor"),
        ({"items": [{"sku": "p1", "quantity": 0, "unit_price_minor": 100}]}, "items[0].quantity"),
        ({"items": [{"sku": "p1", "quantity": -1, "unit_price_minor": 100}]}, "items[0].quantity"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"discount_minor": "1.00"}, "discount_minor"),
        ({"order_id": "o\u0000"}, "order_id"),
    ],
)
def test_order_webhook_validation_422(world: World, patch: dict[str, Any], field: str) -> None:
    body = orjson.dumps({**order_body("ord-bad", "o-bad"), **patch})
    resp = post_order(world, body)
    assert resp.status_code == 422, resp.text
    assert any(d["field"] == field for d in resp.json()["error"]["details"]), resp.text


# --- Shopify --------------------------------------------------------------------------------


def shopify_order(order_id: int) -> dict[str, Any]:
    return {
        "id": order_id, "name": f"#{order_id}", "currency": "USD", "created_at": now_iso(),
        "total_discounts": "5.00", "discount_codes": [{"code": "SAVE10", "amount": "5.00", "type": "fixed_amount"}],
        "note_attributes": [{"name": "ll_click", "value": "clk:shop1"}],
        "landing_site": "/products/x?ll_click=clk:ignored",
        "line_items": [{"id": 1, "sku": "p1", "price": "19.99", "quantity": 2, "product_id": 7, "variant_id": 8}],
        "total_tax": "1.00", "email": "buyer@example.com",
    }


def post_shopify(world: World, body: bytes, topic: str, webhook_id: str,
                 secret: str | None = None) -> httpx.Response:
    return httpx.post(f"{world.stack.ingest_url}/v1/webhooks/shopify/b1", content=body, headers={
        "Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Hmac-Sha256": sign_shopify(body, secret or world.brand["webhook_secret"])})


def test_shopify_order_normalised_into_kafka(world: World) -> None:
    body = orjson.dumps(shopify_order(5551))
    resp = post_shopify(world, body, "orders/create", "wh-5551")
    assert resp.status_code == 202, resp.text
    recs = {v["event_id"]: v for _, v, _ in read_topic("127.0.0.1:9092", f"{world.stack.prefix}.orders")}
    rec = recs["shopify:wh-5551"]
    assert rec["order_id"] == "5551" and rec["source"] == "shopify"
    assert rec["click_id"] == "clk:shop1" and rec["coupon_code"] == "SAVE10"
    assert rec["items"][0]["unit_price_minor"] == 1999 and rec["items"][0]["quantity"] == 2
    assert rec["discount_minor"] == 500


def test_shopify_bad_hmac_and_topic(world: World) -> None:
    body = orjson.dumps(shopify_order(5552))
    assert post_shopify(world, body, "orders/create", "wh-5552", secret="nope").status_code == 401
    # topics we do not book are acknowledged (Shopify drops subscriptions that keep failing)
    other = post_shopify(world, body, "customers/create", "wh-5553")
    assert other.status_code == 200 and other.json()["accepted"] == 0


def test_openapi_and_health(world: World) -> None:
    spec = httpx.get(f"{world.stack.ingest_url}/openapi.json").json()
    assert "/v1/events" in spec["paths"] and spec["openapi"].startswith("3.")
    assert {"get", "head"} <= set(spec["paths"]["/l/{link_code}"]) and "/readyz" in spec["paths"]
    assert httpx.get(f"{world.stack.ingest_url}/healthz").json()["status"] == "ok"
    api_spec = httpx.get(f"{world.stack.api_url}/openapi.json").json()
    assert "/v1/admin/brands" in api_spec["paths"]


def test_every_record_written_parses_as_the_wire_contract(world: World) -> None:
    """What the stream processors read (schemas.wire) is exactly what ingest writes."""
    from schemas.wire import EventsBatchRecord, order_record_from_bytes

    events = read_topic("127.0.0.1:9092", f"{world.stack.prefix}.events")
    orders = read_topic("127.0.0.1:9092", f"{world.stack.prefix}.orders")
    assert events and orders
    for key, value, _ in events:
        rec = EventsBatchRecord.from_bytes(orjson.dumps(value))
        assert key == rec.brand_id.encode()
    for key, value, _ in orders:
        order = order_record_from_bytes(orjson.dumps(value))
        assert key == order.brand_id.encode()


@pytest.mark.redis
def test_rejections_are_counted_for_reconciliation(world: World) -> None:
    import redis

    client = redis.Redis.from_url(world.stack.settings.redis_url)
    key = f"{world.stack.prefix}:stats"

    def counts() -> tuple[int, int]:
        raw = client.hgetall(key)
        return int(raw.get(b"events_rejected", 0)), int(raw.get(b"ingest_http|401|unauthorized", 0))

    before = counts()
    resp = post_events(world, [view("ev-cnt-1"), {"type": "nope"}, view("ev-cnt-3", stream="zz")])
    assert resp.status_code == 202 and resp.json()["accepted"] == 1
    assert post_events(world, [view("ev-cnt-4")], key="llb_bad").status_code == 401
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and counts() == before:
        time.sleep(0.2)
    time.sleep(1.2)
    after = counts()
    assert after[0] - before[0] == 2
    assert after[1] - before[1] == 1
