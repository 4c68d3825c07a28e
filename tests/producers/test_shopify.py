"""Shopify payload shapes and exact money: decimal strings in, integer minor units out."""

from __future__ import annotations

import pytest

from producers import render, truth
from producers.model import OrderLine, PlannedOrder, PlannedRefund, RefundLine
from producers.money import decimal_str_to_minor, minor_to_decimal_str

T_MS = 1_764_100_800_000  # 2025-11-25T20:00:00Z


def _order(currency: str, unit: int, **kw: object) -> PlannedOrder:
    base: dict[str, object] = dict(
        event_id="e1",
        brand_id="b1",
        order_id="7000000000001",
        sim_ms=0,
        offset_ms=0,
        currency=currency,
        lines=(OrderLine(11, "p1", 2, unit), OrderLine(12, "p2", 1, unit + 1)),
        discount_minor=3,
        tax_minor=5,
        shipping_minor=7,
        source="shopify",
        kind="click",
        coupon_code="LIVE001",
        click_via="note",
        webhook_id="w1",
    )
    base.update(kw)
    return PlannedOrder(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [(1999, "USD", "19.99"), (5, "EUR", "0.05"), (1990, "JPY", "1990"), (12345, "KWD", "12.345"), (0, "USD", "0.00")],
)
def test_decimal_strings_are_exact(minor: int, currency: str, text: str) -> None:
    assert minor_to_decimal_str(minor, currency) == text
    assert decimal_str_to_minor(text, currency) == minor


def test_more_decimals_than_the_currency_allows_is_an_error() -> None:
    with pytest.raises(ValueError):
        decimal_str_to_minor("1990.5", "JPY")


@pytest.mark.parametrize(
    ("currency", "unit", "price", "offset"),
    [
        ("USD", 1999, "19.99", "-05:00"),
        ("JPY", 1990, "1990", "+09:00"),
        ("KWD", 12345, "12.345", "+03:00"),
    ],
)
def test_order_payload_shape_and_round_trip(currency: str, unit: int, price: str, offset: str) -> None:
    order = _order(currency, unit)
    body = render.shopify_order_body(order, "clk-1", T_MS)
    assert body["id"] == 7000000000001 and isinstance(body["id"], int)
    assert body["created_at"].endswith(offset) and "." not in body["created_at"]
    assert body["currency"] == currency
    assert body["line_items"][0]["price"] == price and isinstance(body["line_items"][0]["quantity"], int)
    assert {"name": "ll_click", "value": "clk-1"} in body["note_attributes"]
    assert body["discount_codes"][0]["code"] == "LIVE001"
    assert isinstance(body["total_discounts"], str)
    fact = truth.order_from_shopify("b1", body)
    assert fact.items_minor == 3 * unit + 1 and fact.discount_minor == 3
    assert fact.click_id == "clk-1" and fact.coupon_code == "LIVE001" and fact.occurred_ms == T_MS
    assert fact.order_id == "7000000000001"


def test_click_id_can_travel_in_landing_site() -> None:
    body = render.shopify_order_body(_order("USD", 100, click_via="landing"), "s1-e9", T_MS)
    assert "ll_click=s1-e9" in body["landing_site"]
    assert all(a["name"] != "ll_click" for a in body["note_attributes"])
    assert truth.order_from_shopify("b1", body).click_id == "s1-e9"


def test_order_without_click_or_coupon() -> None:
    body = render.shopify_order_body(_order("USD", 100, coupon_code=None), None, T_MS)
    fact = truth.order_from_shopify("b1", body)
    assert body["discount_codes"] == [] and fact.click_id is None and fact.coupon_code is None


def test_refund_amount_uses_subtotal_else_price_times_quantity() -> None:
    refund = PlannedRefund(
        "re1",
        "b1",
        "7000000000001",
        "7000000000009",
        0,
        "shopify",
        0,
        (
            RefundLine(11, 2, 1999, 3990),  # subtotal given: 39.90
            RefundLine(12, 1, 2000, None),  # no subtotal: 20.00 x 1
        ),
        "w2",
    )
    body = render.shopify_refund_body(refund, "USD", T_MS)
    assert body["order_id"] == 7000000000001 and body["id"] == 7000000000009
    lines = body["refund_line_items"]
    assert lines[0]["subtotal"] == "39.90" and "subtotal" not in lines[1]
    assert lines[1]["line_item"]["price"] == "20.00"
    fact = truth.refund_from_shopify("b1", "USD", body)
    assert fact.amount_minor == 3990 + 2000 and fact.refund_id == "7000000000009"


def test_native_bodies_carry_only_contract_fields() -> None:
    order = _order("USD", 100, source="native", order_id="o1")
    body = render.native_order_body(order, None, T_MS)
    assert set(body) == {
        "event_id",
        "type",
        "brand_id",
        "order_id",
        "occurred_at",
        "currency",
        "items",
        "discount_minor",
        "tax_minor",
        "shipping_minor",
        "coupon_code",
    }
    assert body["occurred_at"] == "2025-11-25T20:00:00.000Z"
    refund = render.native_refund_body(PlannedRefund("re", "b1", "o1", "r1", 0, "native", 50), T_MS)
    assert set(refund) == {"event_id", "type", "brand_id", "order_id", "refund_id", "amount_minor", "occurred_at"}


def test_orders_never_precede_their_click_and_shopify_rounds_up() -> None:
    order = _order("USD", 100)
    assert render.order_time_ms(order, T_MS, T_MS + 10_500) == T_MS + 12_000  # +1 s margin, ceil to s
    native = _order("USD", 100, source="native")
    assert render.order_time_ms(native, T_MS, T_MS + 10_500) == T_MS + 11_500
    edge = _order("USD", 100, source="native", min_after_click_ms=None)
    assert render.order_time_ms(edge, T_MS, T_MS + 60_000) == T_MS
