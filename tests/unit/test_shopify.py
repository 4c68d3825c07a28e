from __future__ import annotations

import copy
from typing import Any

import pytest

from schemas.errors import EmptyRefund, ValidationFailed
from schemas.export import EXAMPLES, EXAMPLES_NOW
from schemas.orders import net_items_minor
from schemas.shopify import ShopifyOrder, normalise_shopify_order, normalise_shopify_refund

NOW = EXAMPLES_NOW
WH = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


def order(**kw: Any) -> dict[str, Any]:
    o: dict[str, Any] = copy.deepcopy(EXAMPLES["shopify_order"][1])
    o.update(kw)
    return o


def refund(**kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = copy.deepcopy(EXAMPLES["shopify_refund"][1])
    r.update(kw)
    return r


def test_order_normalised() -> None:
    o = normalise_shopify_order(order(), "b1", WH, NOW)
    assert o.event_id == "shopify:" + WH
    assert o.order_id == "820982911946154508" and o.brand_id == "b1"
    assert o.click_id == "evt-click-0001" and o.coupon_code == "SAVE10"
    assert o.currency == "USD"
    assert [(i.sku, i.quantity, i.unit_price_minor) for i in o.items] == [("IPOD2008PINK", 2, 19900)]
    assert o.discount_minor == 1000 and o.tax_minor == 0 and o.shipping_minor == 0
    assert net_items_minor(o) == 2 * 19900 - 1000
    assert o.occurred_at.isoformat() == "2026-11-25T20:01:00+00:00"


def test_extra_fields_kept() -> None:
    m = ShopifyOrder.model_validate(order())
    assert m.model_extra is not None and m.model_extra["name"] == "#1001"


def test_click_from_landing_site_when_no_note_attribute() -> None:
    o = normalise_shopify_order(order(note_attributes=[{"name": "gift", "value": "yes"}],
                                      landing_site="/p/x?utm=a&ll_click=clk-9"), "b1", WH, NOW)
    assert o.click_id == "clk-9"
    o = normalise_shopify_order(order(note_attributes=[],
                                      landing_site="https://shop.example/?ll_click=clk-abs"), "b1", WH, NOW)
    assert o.click_id == "clk-abs"


def test_note_attribute_wins_over_landing_site() -> None:
    o = normalise_shopify_order(order(note_attributes=[{"name": "ll_click", "value": "from-note"}],
                                      landing_site="/?ll_click=from-url"), "b1", WH, NOW)
    assert o.click_id == "from-note"


def test_no_click_and_hostile_click_ignored() -> None:
    o = normalise_shopify_order(order(note_attributes=[], landing_site=None), "b1", WH, NOW)
    assert o.click_id is None
    o = normalise_shopify_order(order(note_attributes=[{"name": "ll_click", "value": "x\r\ny"}],
                                      landing_site="/?ll_click=%27%3B+DROP"), "b1", WH, NOW)
    assert o.click_id is None


def test_coupon_first_valid_code_or_none() -> None:
    o = normalise_shopify_order(order(discount_codes=[]), "b1", WH, NOW)
    assert o.coupon_code is None
    o = normalise_shopify_order(order(discount_codes=[{"code": "a b"}, {"code": "live20"}]), "b1", WH, NOW)
    assert o.coupon_code == "LIVE20"


@pytest.mark.parametrize(
    ("currency", "price", "minor"),
    [("USD", "19.99", 1999), ("USD", "0.10", 10), ("JPY", "1500", 1500), ("JPY", "1500.00", 1500),
     ("KWD", "1.235", 1235), ("EUR", "4.35", 435)],
)
def test_exact_decimal_prices(currency: str, price: str, minor: int) -> None:
    line = {"id": 1, "sku": "s1", "price": price, "quantity": 3, "product_id": 7}
    o = normalise_shopify_order(order(currency=currency, line_items=[line], total_discounts="0",
                                      total_shipping_price_set=None), "b1", WH, NOW)
    assert o.items[0].unit_price_minor == minor and o.currency == currency


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"line_items": [{"id": 1, "sku": "s", "price": "19.999", "quantity": 1}]}, "line_items[0].price"),
        ({"line_items": [{"id": 1, "sku": "s", "price": "NaN", "quantity": 1}]}, "line_items[0].price"),
        ({"line_items": [{"id": 1, "sku": "s", "price": "1e3", "quantity": 1}]}, "line_items[0].price"),
        ({"line_items": [{"id": 1, "sku": "s", "price": "-1.00", "quantity": 1}]}, "line_items[0].price"),
        ({"line_items": [{"id": 1, "sku": "s", "price": True, "quantity": 1}]}, "line_items.0.price"),
        ({"total_discounts": "1.005"}, "total_discounts"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"created_at": "2026-11-25T15:01:00"}, "created_at"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "occurred_at"),
        ({"line_items": []}, "line_items"),
        ({"line_items": [{"id": 1, "sku": "s", "price": "1.00", "quantity": 0}]}, "line_items"),
        ({"line_items": [{"id": 1, "sku": "s", "price": "1.00", "quantity": -2}]}, "line_items[0].quantity"),
    ],
)
def test_bad_orders(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_shopify_order(order(**patch), "b1", WH, NOW)
    fields = [e.field for e in info.value.errors]
    assert any(f.replace(".0.", "[0].") == field.replace(".0.", "[0].") for f in fields), info.value.errors


def test_sku_fallbacks_and_zero_quantity_lines_skipped() -> None:
    lines = [
        {"id": 11, "sku": "", "product_id": 632910392, "variant_id": 808950810, "price": "5.00", "quantity": 1},
        {"id": 12, "sku": None, "product_id": None, "variant_id": 808950811, "price": "6.00", "quantity": 1},
        {"id": 13, "sku": "HAS SPACE", "product_id": 99, "price": "7.00", "quantity": 2},
        {"id": 14, "sku": "gone", "price": "8.00", "quantity": 0},
    ]
    o = normalise_shopify_order(order(line_items=lines, total_discounts="0.00"), "b1", WH, NOW)
    assert [(i.sku, i.quantity) for i in o.items] == [("632910392", 1), ("808950811", 1), ("99", 2)]
    assert net_items_minor(o) == 500 + 600 + 1400


def test_discount_larger_than_items_floors_net_at_zero() -> None:
    o = normalise_shopify_order(order(total_discounts="1000.00"), "b1", WH, NOW)
    assert o.discount_minor == 100000 and net_items_minor(o) == 0


def test_shipping_from_lines_and_tax() -> None:
    o = normalise_shopify_order(order(total_shipping_price_set=None, total_tax="3.98",
                                      shipping_lines=[{"price": "4.99"}, {"price": "1.01"}]), "b1", WH, NOW)
    assert o.shipping_minor == 600 and o.tax_minor == 398


def test_not_an_object() -> None:
    with pytest.raises(ValidationFailed):
        normalise_shopify_order([1, 2], "b1", WH, NOW)
    with pytest.raises(ValidationFailed):
        normalise_shopify_order({}, "b1", WH, NOW)


# ---------------------------------------------------------------- refunds
def test_refund_normalised_from_subtotal_set() -> None:
    r = normalise_shopify_refund(refund(), "b1", WH, None, NOW)
    assert r.event_id == "shopify:" + WH and r.refund_id == "509562969"
    assert r.order_id == "820982911946154508" and r.amount_minor == 19567 and r.currency == "USD"


def test_refund_numeric_subtotal_exact() -> None:
    payload = refund(transactions=[])
    for rli in payload["refund_line_items"]:
        del rli["subtotal_set"]
    r = normalise_shopify_refund(payload, "b1", WH, "USD", NOW)
    assert r.amount_minor == 19567  # 195.67 as a JSON number, converted without float rounding
    payload["refund_line_items"][0]["subtotal"] = 0.29
    assert normalise_shopify_refund(payload, "b1", WH, "USD", NOW).amount_minor == 29


def test_refund_from_line_price_when_no_subtotal() -> None:
    payload = refund()
    rli = payload["refund_line_items"][0]
    del rli["subtotal"], rli["subtotal_set"]
    rli["quantity"] = 2
    r = normalise_shopify_refund(payload, "b1", WH, None, NOW)
    assert r.amount_minor == 2 * 19900 and r.currency == "USD"  # currency from transactions


def test_refund_multiple_lines_summed() -> None:
    payload = refund()
    second = copy.deepcopy(payload["refund_line_items"][0])
    second["subtotal_set"]["shop_money"]["amount"] = "0.33"
    payload["refund_line_items"].append(second)
    assert normalise_shopify_refund(payload, "b1", WH, None, NOW).amount_minor == 19567 + 33


def test_refund_currency_passed_in_when_absent() -> None:
    payload = refund(transactions=[])
    for rli in payload["refund_line_items"]:
        del rli["subtotal_set"]
    with pytest.raises(ValidationFailed, match="currency"):
        normalise_shopify_refund(payload, "b1", WH, None, NOW)
    assert normalise_shopify_refund(payload, "b1", WH, "USD", NOW).currency == "USD"


def test_refund_empty_is_distinguishable() -> None:
    with pytest.raises(EmptyRefund):
        normalise_shopify_refund(refund(refund_line_items=[]), "b1", WH, "USD", NOW)


def test_refund_bad_amounts() -> None:
    payload = refund()
    payload["refund_line_items"][0]["subtotal_set"]["shop_money"]["amount"] = "1.999"
    with pytest.raises(ValidationFailed, match="more decimals"):
        normalise_shopify_refund(payload, "b1", WH, None, NOW)
    payload = refund(transactions=[])
    del payload["refund_line_items"][0]["subtotal_set"]
    payload["refund_line_items"][0]["subtotal"] = float("nan")
    with pytest.raises(ValidationFailed):
        normalise_shopify_refund(payload, "b1", WH, "USD", NOW)
    with pytest.raises(ValidationFailed):
        normalise_shopify_refund(refund(created_at="2030-01-01T00:00:00Z"), "b1", WH, None, NOW)
