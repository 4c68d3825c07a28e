from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.errors import MalformedJson, SchemaError, ValidationFailed, error_body
from schemas.events import (
    MAX_BATCH_EVENTS,
    AddToCartEvent,
    ClickEvent,
    EventAdapter,
    EventBatch,
    ViewEvent,
    validate_batch_events,
    validate_event,
)
from schemas.export import EXAMPLES, EXAMPLES_NOW, MODELS, json_schemas
from schemas.ids import CouponCode, Id, id_problem
from schemas.orders import OrderCreated, OrderRefunded, net_items_minor, parse_order_webhook
from schemas.setup import BrandCreate, CampaignCreate, LinkCreate, StreamCreate
from schemas.time import OccurredAt, UtcDatetime, format_rfc3339, parse_rfc3339
from schemas.wire import (
    EventsBatchRecord,
    OrderRecord,
    RefundRecord,
    WireClickEvent,
    order_record_from_bytes,
    to_wire_event,
)

NOW = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
T = "2026-11-25T19:59:00.000Z"


def view(**kw: Any) -> dict[str, Any]:
    ev = {"event_id": "e1", "type": "view", "stream_id": "s1", "viewer_id": "v1", "action": "join",
          "occurred_at": T}
    ev.update(kw)
    return ev


def click(**kw: Any) -> dict[str, Any]:
    ev = {"event_id": "c1", "type": "click", "stream_id": "s1", "viewer_id": "v1", "product_id": "p1",
          "occurred_at": T}
    ev.update(kw)
    return ev


def cart(**kw: Any) -> dict[str, Any]:
    ev = {"event_id": "a1", "type": "add_to_cart", "stream_id": "s1", "viewer_id": "v1",
          "product_id": "p1", "occurred_at": T}
    ev.update(kw)
    return ev


def order(**kw: Any) -> dict[str, Any]:
    o = {"event_id": "oe1", "type": "order.created", "brand_id": "b1", "order_id": "o1",
         "occurred_at": T, "currency": "USD",
         "items": [{"sku": "p1", "quantity": 2, "unit_price_minor": 1999}]}
    o.update(kw)
    return o


def refund(**kw: Any) -> dict[str, Any]:
    r = {"event_id": "re1", "type": "order.refunded", "brand_id": "b1", "order_id": "o1",
         "refund_id": "r1", "amount_minor": 1999, "occurred_at": T}
    r.update(kw)
    return r


def one_error(raw: dict[str, Any]) -> str:
    ok, rejected = validate_batch_events([raw], NOW)
    assert not ok and len(rejected) == 1
    return rejected[0].error


# ---------------------------------------------------------------- ids
class _I(BaseModel):
    x: Id


HOSTILE_IDS = [
    "",  # empty
    "a" * 129,
    "x" * 10_240,  # 10 KB
    "\u0455tream1",  # Cyrillic dze look-alike
    "str\u0435am",  # Cyrillic e
    "\uff531",  # full-width
    "a\x00b",
    "a\r\nSet-Cookie: x=1",
    "a b",
    "'; DROP TABLE events; --",
    "1 OR 1=1",
    "a/b",
    "a\n",
    "é",
    "\u200bzero-width",
]


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_hostile_ids_rejected(bad: str) -> None:
    with pytest.raises(ValidationError):
        _I(x=bad)
    reason = id_problem(bad)
    assert reason
    # the reason never echoes the raw input (no CRLF/NUL/10 KB in error bodies)
    assert "\r" not in reason and "\x00" not in reason and len(reason) < 200


@pytest.mark.parametrize("good", ["a", "A" * 128, "b1", "shopify:uuid-1.2_3", "0", "-._:"])
def test_good_ids(good: str) -> None:
    assert _I(x=good).x == good


def test_id_messages_in_batch() -> None:
    assert "too long: 10240 characters" in one_error(view(viewer_id="x" * 10_240))
    assert "U+0455" in one_error(view(stream_id="\u0455tream1"))
    assert "U+0000" in one_error(view(event_id="a\x00b"))
    assert "U+000D" in one_error(view(event_id="a\r\nb"))
    assert "events[0].event_id: must not be empty" in one_error(view(event_id=""))
    assert "events[0].event_id: must be a string" in one_error(view(event_id=123))


def test_coupon_code_upper_cased() -> None:
    ta: TypeAdapter[str] = TypeAdapter(CouponCode)
    assert ta.validate_python("save10") == "SAVE10"
    with pytest.raises(ValidationError):
        ta.validate_python("save 10")


# ---------------------------------------------------------------- time
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T20:00:00Z", datetime(2026, 11, 25, 20, tzinfo=UTC)),
        ("2026-11-25T20:00:00.123Z", datetime(2026, 11, 25, 20, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-25T21:00:00.1239+01:00", datetime(2026, 11, 25, 20, 0, 0, 123000, tzinfo=UTC)),
        ("2026-11-25T15:00:00-05:00", datetime(2026, 11, 25, 20, tzinfo=UTC)),
        ("2026-11-25t20:00:00z", datetime(2026, 11, 25, 20, tzinfo=UTC)),
        ("2026-11-25T20:00:00.123456789+00:00", datetime(2026, 11, 25, 20, 0, 0, 123000, tzinfo=UTC)),
    ],
)
def test_parse_rfc3339(text: str, expected: datetime) -> None:
    got = parse_rfc3339(text)
    assert got == expected and got.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "bad",
    [
        "2026-11-25T20:00:00", "2026-11-25", "20261125T200000Z", "2026-11-25T20:00Z",
        "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-25T23:59:60Z", "1764100800",
        "2026-11-25T20:00:00+0100", "2026-11-25T20:00:00 Z", "now", "", "2026-11-25T20:00:00.Z",
    ],
)
def test_parse_rfc3339_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(bad)


def test_format_rfc3339() -> None:
    dt = datetime(2026, 11, 25, 21, 0, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert format_rfc3339(dt) == "2026-11-25T20:00:00.123Z"
    with pytest.raises(ValueError):
        format_rfc3339(datetime(2026, 1, 1))


def test_utc_datetime_type() -> None:
    ta: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)
    assert ta.validate_python("2026-11-25T20:00:00Z") == NOW
    assert ta.validate_python(NOW) == NOW
    assert ta.dump_json(NOW) == b'"2026-11-25T20:00:00.000Z"'
    for bad in [datetime(2026, 1, 1), 1764100800, 1.5, None, "2026-11-25T20:00:00"]:
        with pytest.raises(ValidationError):
            ta.validate_python(bad)


def test_window() -> None:
    ta: TypeAdapter[datetime] = TypeAdapter(OccurredAt)

    def at(delta: timedelta) -> str:
        return format_rfc3339(NOW + delta)

    ctx = {"now": NOW}
    assert ta.validate_python(at(timedelta(minutes=5)), context=ctx)
    assert ta.validate_python(at(-timedelta(days=400)), context=ctx)
    with pytest.raises(ValidationError, match="more than 5 minutes in the future"):
        ta.validate_python(at(timedelta(minutes=5, milliseconds=1)), context=ctx)
    with pytest.raises(ValidationError, match="more than 400 days in the past"):
        ta.validate_python(at(-timedelta(days=400, milliseconds=1)), context=ctx)
    # without a context the wall clock is used: a 2000 date is far in the past
    with pytest.raises(ValidationError, match="400 days"):
        ta.validate_python("2000-01-01T00:00:00Z")


def test_window_in_batch_error_message() -> None:
    err = one_error(view(occurred_at="2026-11-25T20:05:01Z"))
    assert err == "events[0].occurred_at: more than 5 minutes in the future"
    assert "naive" in one_error(view(occurred_at=datetime(2026, 11, 25, 20)))
    assert "RFC 3339" in one_error(view(occurred_at="2026-11-25T20:00:00"))


# ---------------------------------------------------------------- events
def test_event_happy_paths() -> None:
    ok, rejected = validate_batch_events([view(), view(action="heartbeat"), view(action="leave"),
                                          click(), click(campaign_id="cmp1"), cart()], NOW)
    assert rejected == []
    assert [type(e) for e in ok] == [ViewEvent] * 3 + [ClickEvent] * 2 + [AddToCartEvent]
    assert ok[3].campaign_id is None and ok[4].campaign_id == "cmp1"  # type: ignore[union-attr]
    assert ok[0].occurred_at == datetime(2026, 11, 25, 19, 59, tzinfo=UTC)
    assert isinstance(validate_event(click(), NOW), ClickEvent)
    assert isinstance(EventAdapter.validate_python(cart(), context={"now": NOW}), AddToCartEvent)


def test_partial_acceptance_keeps_valid_events() -> None:
    raw = [view(), {"type": "purchase"}, click(), cart(quantity=1), cart()]
    ok, rejected = validate_batch_events(raw, NOW)
    assert [e.event_id for e in ok] == ["e1", "c1", "a1"]
    assert [r.index for r in rejected] == [1, 3]
    assert rejected[0].as_dict() == {
        "index": 1,
        "error": "events[1].type: unknown event type (expected one of 'view', 'click', 'add_to_cart')",
    }
    assert rejected[1].error == "events[3].quantity: unknown field"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"event_id": "x"}, "events[0].type: required"),
        (view(type=1), "events[0].type: must be a string"),
        (view(type="VIEW"), "events[0].type: unknown event type"),
        ({k: v for k, v in view().items() if k != "viewer_id"}, "events[0].viewer_id: required"),
        ({k: v for k, v in click().items() if k != "product_id"}, "events[0].product_id: required"),
        (view(action="pause"), "events[0].action: must be one of"),
        (view(action=None), "events[0].action: must be one of"),
        (view(stream_id=5), "events[0].stream_id: must be a string"),
        (view(stream_id=None), "events[0].stream_id: must be a string"),
        (view(stream_id=["s1"]), "events[0].stream_id: must be a string"),
        (view(occurred_at=1764100800), "events[0].occurred_at: must be an RFC 3339"),
        (view(occurred_at=math.nan), "events[0].occurred_at: must be an RFC 3339"),
        (click(campaign_id=True), "events[0].campaign_id: must be a string"),
        (view(extra="x"), "events[0].extra: unknown field"),
        ([1, 2], "events[0]: must be an object"),
        ("view", "events[0]: must be an object"),
        (None, "events[0]: must be an object"),
    ],
)
def test_bad_events(raw: Any, expected: str) -> None:
    assert expected in one_error(raw)


def test_events_after_json_roundtrip_nan_infinity() -> None:
    # Python's json accepts NaN/Infinity; they must still be refused field by field
    for bad in (math.nan, math.inf, -math.inf):
        assert "must be" in one_error(view(viewer_id=bad))
    # orjson refuses NaN literals outright (malformed JSON, HTTP 400)
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(b'{"events":[{"x": NaN}]}')


def test_event_batch_limits() -> None:
    EventBatch.model_validate({"events": [view()] * MAX_BATCH_EVENTS})
    with pytest.raises(ValidationError):
        EventBatch.model_validate({"events": [view()] * (MAX_BATCH_EVENTS + 1)})
    with pytest.raises(ValidationError):
        EventBatch.model_validate({"events": []})
    with pytest.raises(ValidationError):
        EventBatch.model_validate({"events": [], "brand_id": "b1"})
    with pytest.raises(ValidationError):
        EventBatch.model_validate({"events": {"0": view()}})


def test_events_are_frozen() -> None:
    ev = validate_event(view(), NOW)
    with pytest.raises(ValidationError):
        ev.viewer_id = "v2"


# ---------------------------------------------------------------- orders
def test_order_created_happy() -> None:
    o = parse_order_webhook(orjson.dumps(order(coupon_code="save10", click_id="c1", discount_minor=500)), NOW)
    assert isinstance(o, OrderCreated)
    assert o.coupon_code == "SAVE10" and o.click_id == "c1"
    assert o.tax_minor == 0 and o.shipping_minor == 0
    assert net_items_minor(o) == 2 * 1999 - 500


def test_net_never_below_zero() -> None:
    o = parse_order_webhook(orjson.dumps(order(discount_minor=10_000)), NOW)
    assert isinstance(o, OrderCreated) and net_items_minor(o) == 0


def test_order_refunded_happy() -> None:
    r = parse_order_webhook(orjson.dumps(refund()), NOW)
    assert isinstance(r, OrderRefunded) and r.amount_minor == 1999 and r.currency is None


def _order_errors(raw: Any) -> list[SchemaError]:
    with pytest.raises(ValidationFailed) as info:
        parse_order_webhook(orjson.dumps(raw), NOW)
    return info.value.errors


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        (order(type="order.paid"), "type", "unknown type"),
        ({"event_id": "x"}, "type", "required"),
        (order(currency="usd"), "currency", "upper-case"),
        (order(currency="ABC"), "currency", "unknown ISO-4217"),
        (order(currency=None), "currency", "must be a string"),
        (order(items=[]), "items", "too few"),
        (order(items=[{"sku": "p1", "quantity": 0, "unit_price_minor": 1}]), "items[0].quantity",
         "greater than 0"),
        (order(items=[{"sku": "p1", "quantity": -1, "unit_price_minor": 1}]), "items[0].quantity",
         "greater than 0"),
        (order(items=[{"sku": "p1", "quantity": 2.0, "unit_price_minor": 1}]), "items[0].quantity",
         "not a fractional number"),
        (order(items=[{"sku": "p1", "quantity": 1.5, "unit_price_minor": 1}]), "items[0].quantity",
         "not a fractional number"),
        (order(items=[{"sku": "p1", "quantity": True, "unit_price_minor": 1}]), "items[0].quantity",
         "not a boolean"),
        (order(items=[{"sku": "p1", "quantity": "2", "unit_price_minor": 1}]), "items[0].quantity",
         "must be an integer"),
        (order(items=[{"sku": "p1", "quantity": 1, "unit_price_minor": 19.99}]),
         "items[0].unit_price_minor", "not a fractional number"),
        (order(items=[{"sku": "p1", "quantity": 1, "unit_price_minor": "19.99"}]),
         "items[0].unit_price_minor", "must be an integer"),
        (order(items=[{"sku": "p1", "quantity": 1, "unit_price_minor": -1}]),
         "items[0].unit_price_minor", "at least 0"),
        (order(items=[{"sku": "p 1", "quantity": 1, "unit_price_minor": 1}]), "items[0].sku",
         "invalid character"),
        (order(items=[{"sku": "p1", "quantity": 1}]), "items[0].unit_price_minor", "required"),
        (order(discount_minor=-1), "discount_minor", "at least 0"),
        (order(tax_minor=1.0), "tax_minor", "not a fractional number"),
        (order(shipping_minor=10**16), "shipping_minor", "at most"),
        (order(occurred_at="2030-01-01T00:00:00Z"), "occurred_at", "5 minutes in the future"),
        (order(order_id="o1'; DROP TABLE orders;--"), "order_id", "invalid character"),
        (order(foo=1), "foo", "unknown field"),
        (refund(amount_minor=0), "amount_minor", "greater than 0"),
        (refund(amount_minor=19.99), "amount_minor", "not a fractional number"),
        ({k: v for k, v in refund().items() if k != "refund_id"}, "refund_id", "required"),
        (refund(currency="eur"), "currency", "upper-case"),
    ],
)
def test_bad_orders(raw: Any, field: str, reason: str) -> None:
    errors = _order_errors(raw)
    assert any(e.field == field and reason in e.reason for e in errors), errors


def test_order_webhook_malformed_and_non_object() -> None:
    with pytest.raises(MalformedJson):
        parse_order_webhook(b"{not json", NOW)
    with pytest.raises(MalformedJson):
        parse_order_webhook(b'{"amount_minor": NaN}', NOW)
    with pytest.raises(ValidationFailed):
        parse_order_webhook(b"[]", NOW)


def test_error_body_shape() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_order_webhook(orjson.dumps(order(currency="usd")), NOW)
    body = info.value.body()
    assert body["error"]["code"] == "validation_failed"
    assert body["error"]["details"][0]["field"] == "currency"
    assert error_body([SchemaError("a", "b")])["error"]["details"] == [{"field": "a", "reason": "b"}]


# ---------------------------------------------------------------- setup
def test_setup_models() -> None:
    c = CampaignCreate.model_validate({"campaign_id": "cmp1", "brand_id": "b1", "rate_bps": 1000})
    assert (c.flat_minor, c.attribution_window_days, c.hold_days, c.min_payout_minor) == (0, 30, 30, 5000)
    for bad in ({"rate_bps": 10_001}, {"rate_bps": -1}, {"rate_bps": 10.5},
                {"attribution_window_days": 0}, {"attribution_window_days": 401}, {"hold_days": -1},
                {"min_payout_minor": -1}, {"flat_minor": 1.5}, {"extra": 1}):
        with pytest.raises(ValidationError):
            CampaignCreate.model_validate({"campaign_id": "cmp1", "brand_id": "b1", "rate_bps": 1} | bad)
    assert BrandCreate.model_validate({"brand_id": "b1", "name": "Acme", "currency": "JPY"})
    with pytest.raises(ValidationError, match="upper-case"):
        BrandCreate.model_validate({"brand_id": "b1", "name": "Acme", "currency": "jpy"})
    with pytest.raises(ValidationError):
        StreamCreate.model_validate({"stream_id": "s1", "brand_id": "b1", "creator_id": "c", "title": ""})
    with pytest.raises(ValidationError):
        StreamCreate.model_validate({"stream_id": "s1", "brand_id": "b1", "creator_id": "c", "title": "x" * 201})
    with pytest.raises(ValidationError):
        StreamCreate.model_validate({"stream_id": "s1", "brand_id": "b1", "creator_id": "c", "title": "a\r\nb"})


@pytest.mark.parametrize(
    "url",
    ["ftp://x.example/", "javascript:alert(1)", "/relative", "https://", "https://a b.example/",
     "https://u:p@x.example/", "http://x.example/\r\nSet-Cookie:x", "https://x.example:99999/",
     "https://x.example/" + "a" * 3000],
)
def test_link_destination_rejects(url: str) -> None:
    with pytest.raises(ValidationError):
        LinkCreate.model_validate({"creator_id": "cr1", "campaign_id": "cmp1", "destination_url": url})


def test_link_ok_and_coupon_upper() -> None:
    link = LinkCreate.model_validate({"creator_id": "cr1", "campaign_id": "cmp1",
                                      "destination_url": "https://shop.example/p?x=1#y",
                                      "coupon_code": "Save10"})
    assert link.destination_url == "https://shop.example/p?x=1#y" and link.coupon_code == "SAVE10"


# ---------------------------------------------------------------- wire
def test_wire_roundtrip_from_ingest_events() -> None:
    ok, _ = validate_batch_events([view(), click(), click(campaign_id="own"), cart()], NOW)
    wired = [to_wire_event(e, creator_id="cr1", campaign_id="link-cmp") for e in ok]
    assert isinstance(wired[1], WireClickEvent)
    assert wired[1].campaign_id == "link-cmp" and wired[2].campaign_id == "own"  # type: ignore[union-attr]
    rec = EventsBatchRecord.build(batch_id="b-1", brand_id="b1", source="events-api",
                                  received_at=NOW, events=wired)
    data = rec.to_bytes()
    assert b'"received_at":"2026-11-25T20:00:00.000Z"' in data
    assert EventsBatchRecord.from_bytes(data) == rec


def test_wire_rejects_unknown_version_and_fields() -> None:
    data = orjson.loads(orjson.dumps(EXAMPLES["order_record"][1]))
    assert isinstance(order_record_from_bytes(orjson.dumps(data)), OrderRecord)
    for bad in ({"v": 2}, {"v": "1"}, {"extra": 1}, {"currency": "usd"}, {"type": "order.paid"}):
        with pytest.raises(ValidationFailed):
            order_record_from_bytes(orjson.dumps(data | bad))
    with pytest.raises(ValidationFailed):
        OrderRecord.from_bytes(b"not json")
    with pytest.raises(ValidationFailed):
        EventsBatchRecord.from_bytes(orjson.dumps(EXAMPLES["events_batch_record"][1] | {"v": 0}))


def test_wire_from_orders() -> None:
    o = parse_order_webhook(orjson.dumps(order(coupon_code="x1")), NOW)
    assert isinstance(o, OrderCreated)
    rec = OrderRecord.from_order(o, received_at=NOW, source="native")
    back = order_record_from_bytes(rec.to_bytes())
    assert back == rec and isinstance(back, OrderRecord) and back.net_items_minor() == 3998
    r = parse_order_webhook(orjson.dumps(refund()), NOW)
    assert isinstance(r, OrderRefunded)
    rrec = RefundRecord.from_refund(r, received_at=NOW, source="shopify")
    assert order_record_from_bytes(rrec.to_bytes()) == rrec
    assert orjson.loads(rrec.to_bytes())["currency"] is None


def test_wire_no_window_check() -> None:
    old = EXAMPLES["order_record"][1] | {"occurred_at": "2001-01-01T00:00:00Z"}
    assert OrderRecord.from_bytes(orjson.dumps(old)).occurred_at.year == 2001


# ---------------------------------------------------------------- examples + JSON Schema
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_validate(name: str) -> None:
    model_key, example = EXAMPLES[name]
    TypeAdapter(MODELS[model_key]).validate_python(example, context={"now": EXAMPLES_NOW})


def test_example_files_match_constants() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "schemas"
    for name, (_, example) in EXAMPLES.items():
        assert orjson.loads((root / "examples" / f"{name}.json").read_bytes()) == example
    for name, schema in json_schemas().items():
        assert orjson.loads((root / "json" / f"{name}.json").read_bytes()) == orjson.loads(orjson.dumps(schema))


def test_example_batch_through_the_hot_path() -> None:
    ok, rejected = validate_batch_events(EXAMPLES["events_batch"][1]["events"], EXAMPLES_NOW)
    assert rejected == [] and len(ok) == 3


def test_wire_examples_through_from_bytes() -> None:
    for name in ("events_batch_record", "redirect_batch_record"):
        rec = EventsBatchRecord.from_bytes(orjson.dumps(EXAMPLES[name][1]))
        assert EventsBatchRecord.from_bytes(rec.to_bytes()) == rec
    for name in ("order_record", "refund_record"):
        order_record_from_bytes(orjson.dumps(EXAMPLES[name][1]))


def test_events_record_fast_bytes_equal_the_pydantic_serializer() -> None:
    """EventsBatchRecord.to_bytes (orjson over the fields, the hot path) = pydantic's own JSON."""
    ok, _ = validate_batch_events([view(), click(), click(campaign_id="own"), cart()], NOW)
    wired = [to_wire_event(e, creator_id="cr1", campaign_id="link-cmp") for e in ok]
    rec = EventsBatchRecord.build(batch_id="b-1", brand_id="b1", source="events-api", received_at=NOW, events=wired)
    assert orjson.loads(rec.to_bytes()) == orjson.loads(rec.__pydantic_serializer__.to_json(rec))
    assert EventsBatchRecord.from_bytes(rec.to_bytes()) == rec
    redirect = WireClickEvent.assemble({
        "event_id": "clk:1", "type": "click", "stream_id": None, "viewer_id": None, "product_id": None,
        "campaign_id": "c1", "creator_id": "cr1", "link_code": "L1", "occurred_at": NOW})
    one = EventsBatchRecord.build(batch_id="b-2", brand_id="b1", source="redirect", received_at=NOW, events=[redirect])
    assert orjson.loads(one.to_bytes()) == orjson.loads(one.__pydantic_serializer__.to_json(one))


def test_setup_records_round_trip_and_refuse_bad_values() -> None:
    from schemas.errors import InvalidRecord
    from schemas.setup import ApiKey, Brand, Link, decode_setup, encode_setup

    brand = Brand(brand_id="b1", name="Acme", currency="USD", webhook_secret="whsec_" + "a" * 40)
    key, value = encode_setup("b1", brand)
    assert key == b"brand:b1" and decode_setup(key, value) == ("brand", "b1", brand)
    link = Link(creator_id="cr1", campaign_id="cmp1", destination_url="https://shop.example/p", coupon_code="save10",
                link_code="L1", brand_id="b1")
    assert decode_setup(*encode_setup("L1", link))[2] == link and link.coupon_code == "SAVE10"
    assert decode_setup(b"apikey:ab12", None) == ("apikey", "ab12", None)  # a tombstone
    assert decode_setup(*encode_setup("ab12", ApiKey(role="finance", name="F")))[2] == ApiKey(role="finance", name="F")
    for bad_key, bad_value, reason in ((b"gadget:1", b"{}", "unknown_setup_kind"),
                                       (b"brand", b"{}", "unknown_setup_kind"),
                                       (b"brand:b1", b'{"brand_id": "b1"}', "invalid_setup_record"),
                                       (b"apikey:x", b'{"role": "admin"}', "invalid_setup_record"),
                                       (b"link:L1", b"not json", "invalid_setup_record")):
        with pytest.raises(InvalidRecord) as exc:
            decode_setup(bad_key, bad_value)
        assert exc.value.reason == reason


@pytest.mark.parametrize("text", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_times_that_overflow_in_utc_are_value_errors_not_overflow(text: str) -> None:
    """They used to raise OverflowError (a 500 wherever a body or query carried one)."""
    from schemas.time import parse_rfc3339

    with pytest.raises(ValueError, match="outside the years"):
        parse_rfc3339(text)
