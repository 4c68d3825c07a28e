"""Planned items -> the exact JSON bodies the ingest receives (native and Shopify shapes).

Wall-clock times are bound here: ``Clock`` maps stream time onto real time (compressed by ``speed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from producers.model import PlannedEvent, PlannedOrder, PlannedRefund
from producers.money import (
    SHOP_UTC_OFFSET_MINUTES,
    ceil_to_second,
    minor_to_decimal_str,
    ms_to_rfc3339,
    ms_to_shopify_time,
)

Json = dict[str, Any]


@dataclass(frozen=True)
class Clock:
    """Stream time -> epoch ms: ``t0_ms + sim_ms / speed``."""

    t0_ms: int
    speed: float

    def wall_ms(self, sim_ms: int, offset_ms: int = 0) -> int:
        return self.t0_ms + int(sim_ms / self.speed) + offset_ms


def event_body(ev: PlannedEvent, occurred_ms: int) -> Json:
    body: Json = {"event_id": ev.event_id, "type": ev.type, "stream_id": ev.stream_id, "viewer_id": ev.viewer_id}
    if ev.type == "view":
        body["action"] = ev.action
    elif ev.type in ("click", "add_to_cart"):
        body["product_id"] = ev.product_id
        if ev.campaign_id is not None:
            body["campaign_id"] = ev.campaign_id
    body["occurred_at"] = ms_to_rfc3339(occurred_ms)
    return body


def order_time_ms(order: PlannedOrder, planned_ms: int, click_ms: int | None) -> int:
    """Never before its click (+ margin) unless the plan says so; Shopify has whole seconds."""
    ms = planned_ms
    if click_ms is not None and order.min_after_click_ms is not None:
        ms = max(ms, click_ms + order.min_after_click_ms)
    return ceil_to_second(ms) if order.source == "shopify" else ms


def native_order_body(order: PlannedOrder, click_id: str | None, occurred_ms: int) -> Json:
    body: Json = {
        "event_id": order.event_id,
        "type": "order.created",
        "brand_id": order.brand_id,
        "order_id": order.order_id,
        "occurred_at": ms_to_rfc3339(occurred_ms),
        "currency": order.currency,
        "items": [
            {"sku": ln.sku, "quantity": ln.quantity, "unit_price_minor": ln.unit_price_minor} for ln in order.lines
        ],
        "discount_minor": order.discount_minor,
        "tax_minor": order.tax_minor,
        "shipping_minor": order.shipping_minor,
    }
    if click_id is not None:
        body["click_id"] = click_id
    if order.coupon_code is not None:
        body["coupon_code"] = order.coupon_code
    return body


def native_refund_body(refund: PlannedRefund, occurred_ms: int) -> Json:
    return {
        "event_id": refund.event_id,
        "type": "order.refunded",
        "brand_id": refund.brand_id,
        "order_id": refund.order_id,
        "refund_id": refund.refund_id,
        "amount_minor": refund.amount_minor,
        "occurred_at": ms_to_rfc3339(occurred_ms),
    }


def shopify_order_body(order: PlannedOrder, click_id: str | None, occurred_ms: int) -> Json:
    """An ``orders/create`` payload as Shopify sends it (decimal strings, shop-local offset)."""
    cur = order.currency
    off = SHOP_UTC_OFFSET_MINUTES[cur]

    def money(minor: int) -> str:
        return minor_to_decimal_str(minor, cur)

    def money_set(minor: int) -> Json:
        amt = {"amount": money(minor), "currency_code": cur}
        return {"shop_money": amt, "presentment_money": amt}

    items = sum(ln.quantity * ln.unit_price_minor for ln in order.lines)
    created = ms_to_shopify_time(occurred_ms, off)
    oid = int(order.order_id)
    landing = "/collections/live?utm_source=liveledger"
    notes: list[Json] = [{"name": "gift_wrap", "value": "no"}]
    if click_id is not None:
        if order.click_via == "note":
            notes.append({"name": "ll_click", "value": click_id})
        else:
            landing = f"/products/{order.lines[0].sku}?utm_medium=live&ll_click={quote(click_id, safe='')}"
    total = items - order.discount_minor + order.tax_minor + order.shipping_minor
    return {
        "id": oid,
        "admin_graphql_api_id": f"gid://shopify/Order/{oid}",
        "name": f"#{1000 + oid % 100000}",
        "order_number": 1000 + oid % 100000,
        "email": f"buyer{oid % 997}@example.com",
        "created_at": created,
        "updated_at": created,
        "processed_at": created,
        "currency": cur,
        "presentment_currency": cur,
        "financial_status": "paid",
        "fulfillment_status": None,
        "test": False,
        "source_name": "web",
        "total_line_items_price": money(items),
        "subtotal_price": money(items - order.discount_minor),
        "total_discounts": money(order.discount_minor),
        "total_discounts_set": money_set(order.discount_minor),
        "total_tax": money(order.tax_minor),
        "total_price": money(total),
        "total_price_set": money_set(total),
        "taxes_included": False,
        "landing_site": landing,
        "referring_site": "https://live.example/",
        "note": None,
        "note_attributes": notes,
        "discount_codes": (
            [{"code": order.coupon_code, "amount": money(order.discount_minor), "type": "percentage"}]
            if order.coupon_code
            else []
        ),
        "line_items": [
            {
                "id": ln.line_id,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{ln.line_id}",
                "variant_id": ln.line_id + 1,
                "product_id": ln.line_id + 2,
                "sku": ln.sku,
                "title": f"Product {ln.sku}",
                "name": f"Product {ln.sku}",
                "quantity": ln.quantity,
                "price": money(ln.unit_price_minor),
                "price_set": money_set(ln.unit_price_minor),
                "total_discount": money(0),
                "taxable": True,
                "requires_shipping": True,
                "fulfillable_quantity": ln.quantity,
                "gift_card": False,
            }
            for ln in order.lines
        ],
        "shipping_lines": [
            {
                "id": oid + 1,
                "title": "Standard",
                "price": money(order.shipping_minor),
                "code": "STD",
                "source": "shopify",
            }
        ],
        "tax_lines": [{"title": "Sales tax", "price": money(order.tax_minor), "rate": 0.08}],
        "customer": {
            "id": oid + 3,
            "email": f"buyer{oid % 997}@example.com",
            "first_name": "Sam",
            "last_name": "Buyer",
            "currency": cur,
        },
    }


def shopify_refund_body(refund: PlannedRefund, currency: str, occurred_ms: int) -> Json:
    """A ``refunds/create`` payload; lines without ``subtotal`` are refunded at price x quantity."""
    off = SHOP_UTC_OFFSET_MINUTES[currency]

    def money(minor: int) -> str:
        return minor_to_decimal_str(minor, currency)

    created = ms_to_shopify_time(ceil_to_second(occurred_ms), off)
    lines: list[Json] = []
    for i, ln in enumerate(refund.lines):
        item: Json = {
            "id": int(refund.refund_id) + 10 + i,
            "line_item_id": ln.line_id,
            "quantity": ln.quantity,
            "restock_type": "return",
            "location_id": None,
            "total_tax": money(0),
            "line_item": {
                "id": ln.line_id,
                "quantity": ln.quantity,
                "price": money(ln.unit_price_minor),
                "gift_card": False,
            },
        }
        if ln.subtotal_minor is not None:
            item["subtotal"] = money(ln.subtotal_minor)
            item["subtotal_set"] = {"shop_money": {"amount": money(ln.subtotal_minor), "currency_code": currency}}
        lines.append(item)
    return {
        "id": int(refund.refund_id),
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund.refund_id}",
        "order_id": int(refund.order_id),
        "created_at": created,
        "processed_at": created,
        "note": "customer return",
        "restock": True,
        "user_id": None,
        "refund_line_items": lines,
        "transactions": [
            {
                "id": int(refund.refund_id) + 1,
                "order_id": int(refund.order_id),
                "kind": "refund",
                "status": "success",
                "amount": money(refund.amount_minor),
                "currency": currency,
                "gateway": "bogus",
            }
        ],
        "order_adjustments": [],
    }
