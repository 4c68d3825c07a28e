"""Decoding raw Kafka records with the wire contract (no services): the DLQ reasons."""

from __future__ import annotations

import orjson
import pytest

from schemas.errors import InvalidRecord
from schemas.wire import OrderRecord as Order
from schemas.wire import RefundRecord as Refund
from schemas.wire import clicks_of_events_record as clicks_in_batch
from schemas.wire import decode_events_record as parse_event_batch
from schemas.wire import decode_orders_record as parse_order_record
from tests.streams import kit


def test_batch_splits_valid_and_rejected_events() -> None:
    raw = kit.batch("b1", [kit.view("e1", "s1", "v1"), {"event_id": "x", "type": "teleport"},
                           {**kit.view("e2", "s1", "v1"), "action": "dance"},
                           kit.click("c1", "s1", "v1", "p1", "cr", None)])
    b = parse_event_batch(raw, b"b1")
    assert [e.event_id for e in b.events] == ["e1", "c1"]
    assert [(i, r) for i, r, _ in b.rejected] == [(1, "unknown_event_type"), (2, "invalid_action")]


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{nope", "invalid_json"), (b"[]", "not_an_object"), (None, "empty_value"),
    (orjson.dumps({"v": 2}), "unsupported_version"),
    (orjson.dumps({"v": 1, "batch_id": "x", "received_at": "2026-01-01T00:00:00Z", "events": []}), "missing_field"),
    (orjson.dumps({"v": 1, "brand_id": "b 1", "batch_id": "x"}), "invalid_id"),
])
def test_bad_envelopes(raw: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidRecord) as exc:
        parse_event_batch(raw)
    assert exc.value.reason == reason


def test_key_must_be_brand() -> None:
    with pytest.raises(InvalidRecord, match="key_mismatch"):
        parse_event_batch(kit.batch("b1", []), b"b2")


def test_time_bounds_use_received_at() -> None:
    future = {**kit.view("e1", "s1", "v1"), "occurred_at": kit.iso(kit.now_utc().replace(year=2099))}
    old = {**kit.view("e2", "s1", "v1"), "occurred_at": "2001-01-01T00:00:00Z"}
    naive = {**kit.view("e3", "s1", "v1"), "occurred_at": "2026-01-01T00:00:00"}
    b = parse_event_batch(kit.batch("b1", [future, old, naive]))
    assert [r for _, r, _ in b.rejected] == ["occurred_in_future", "occurred_too_old", "invalid_time"]


def test_orders_and_refunds() -> None:
    o = parse_order_record(kit.order("b1", "o1", items=[("p1", 2, 1999), ("p2", 1, 500)], discount=100), b"b1")
    assert isinstance(o, Order) and o.net_items_minor() == 2 * 1999 + 500 - 100
    r = parse_order_record(kit.refund("b1", "o1", "r1", 700))
    assert isinstance(r, Refund) and r.amount_minor == 700
    assert parse_order_record(kit.order("b1", "o2", items=[("p", 1, 5)], discount=50)).net_items_minor() == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(("patch", "reason"), [
    ({"currency": "usd"}, "invalid_currency"), ({"items": []}, "missing_field"),
    ({"items": [{"sku": "p", "quantity": 0, "unit_price_minor": 1}]}, "invalid_amount"),
    ({"items": [{"sku": "p", "quantity": 1, "unit_price_minor": 1.5}]}, "invalid_amount"),
    ({"discount_minor": True}, "invalid_amount"), ({"type": "order.deleted"}, "unknown_event_type"),
    ({"order_id": ""}, "invalid_id"), ({"event_id": None}, "missing_field"),
    # the contract's rules, as at the HTTP edge (schemas/), for records from other producers
    ({"currency": "XYZ"}, "invalid_currency"), ({"order_id": "o1\n"}, "invalid_id"),
    ({"order_id": "o\u0456"}, "invalid_id"), ({"discount_minor": 10**16}, "invalid_amount"),
    ({"items": [{"sku": "p", "quantity": 10**7, "unit_price_minor": 1}]}, "invalid_amount"),
    ({"coupon_code": "SAVE 10"}, "invalid_coupon"),
])
def test_bad_orders(patch: dict[str, object], reason: str) -> None:
    obj = {**orjson.loads(kit.order("b1", "o1")), **patch}
    with pytest.raises(InvalidRecord) as exc:
        parse_order_record(orjson.dumps(obj))
    assert exc.value.reason == reason


def test_coupon_codes_compare_upper_case() -> None:
    obj = {**orjson.loads(kit.order("b1", "o1")), "coupon_code": "save10"}
    order = parse_order_record(orjson.dumps(obj))
    assert isinstance(order, Order) and order.coupon_code == "SAVE10"


def test_clicks_in_batch_skips_everything_else() -> None:
    raw = kit.batch("b1", [kit.view("e1", "s1", "v1"), kit.click("c1", "s1", "v1", "p1", "cr", "cmp"),
                           {"type": "click", "event_id": "bad id"}])
    assert [c.event_id for c in clicks_in_batch(raw, b"b1")[1]] == ["c1"]
    assert clicks_in_batch(b"junk") == ("", [])
    assert clicks_in_batch(raw, b"b2") == ("", [])  # key is not the brand


def test_clicks_only_decoding_agrees_with_the_full_decoder() -> None:
    late = kit.iso(kit.now_utc().replace(year=2099))
    events = [kit.click("c1", "s1", "v1", "p1", "cr", "cmp"), kit.view("e1", "s1", "v1"),
              {**kit.click("c2", "s1", "v1", "p1", "cr", None), "occurred_at": late},
              {**kit.click("c3", "s1", "v1", "p1", "cr", None), "viewer_id": "bad id"},
              {**kit.click("c4", "s1", "v1", "p1", "cr", None), "link_code": "L9", "stream_id": None},
              {**kit.click("c5", "s1", "v1", "p1", "cr", None), "extra": 1}, {"type": "click"}]
    raw = kit.batch("b1", events)
    full = [e for e in parse_event_batch(raw, b"b1").events if e.type == "click"]
    brand, clicks = clicks_in_batch(raw, b"b1")
    assert brand == "b1" and clicks == full and [c.event_id for c in clicks] == ["c1", "c4"]
