"""``python -m schemas.export [outdir]``: write JSON Schema for every model and the canonical examples.

Schemas go to ``<outdir>/json/<Model>.json`` (default outdir: this package's directory); examples
are hand-written constants below, written to ``<outdir>/examples/<name>.json``. The examples are
the fixtures every consumer is tested against; their timestamps are fixed, so validate them with
``context={"now": EXAMPLES_NOW}``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
from pydantic import BaseModel, TypeAdapter

from schemas import events, orders, setup, shopify, wire

__all__ = ["EXAMPLES", "EXAMPLES_NOW", "MODELS", "json_schemas", "main", "write_all"]

EXAMPLES_NOW: Final = datetime(2026, 11, 25, 20, 5, 0, tzinfo=UTC)

MODELS: Final[dict[str, Any]] = {
    "ViewEvent": events.ViewEvent,
    "ClickEvent": events.ClickEvent,
    "AddToCartEvent": events.AddToCartEvent,
    "Event": events.Event,
    "EventBatch": events.EventBatch,
    "OrderCreated": orders.OrderCreated,
    "OrderRefunded": orders.OrderRefunded,
    "OrderWebhook": orders.OrderWebhook,
    "ShopifyOrder": shopify.ShopifyOrder,
    "ShopifyRefund": shopify.ShopifyRefund,
    "BrandCreate": setup.BrandCreate,
    "BrandCreated": setup.BrandCreated,
    "CreatorCreate": setup.CreatorCreate,
    "CreatorCreated": setup.CreatorCreated,
    "FinanceKeyCreate": setup.FinanceKeyCreate,
    "FinanceKeyCreated": setup.FinanceKeyCreated,
    "CampaignCreate": setup.CampaignCreate,
    "LinkCreate": setup.LinkCreate,
    "LinkCreated": setup.LinkCreated,
    "StreamCreate": setup.StreamCreate,
    "EventsBatchRecord": wire.EventsBatchRecord,
    "OrderRecord": wire.OrderRecord,
    "RefundRecord": wire.RefundRecord,
    "CancelRecord": wire.CancelRecord,
    "LedgerOrderFact": wire.LedgerOrderFact,
    "LedgerRefundFact": wire.LedgerRefundFact,
}

_VIEW: Final = {
    "event_id": "evt-view-0001", "type": "view", "stream_id": "s1", "viewer_id": "v1",
    "action": "join", "occurred_at": "2026-11-25T20:00:00.000Z",
}
_CLICK: Final = {
    "event_id": "evt-click-0001", "type": "click", "stream_id": "s1", "viewer_id": "v1",
    "product_id": "p1", "campaign_id": "cmp1", "occurred_at": "2026-11-25T20:00:05.250Z",
}
_CART: Final = {
    "event_id": "evt-cart-0001", "type": "add_to_cart", "stream_id": "s1", "viewer_id": "v1",
    "product_id": "p1", "occurred_at": "2026-11-25T20:00:09.000+01:00",
}

# name → (model key in MODELS, example). Every example validates with context {"now": EXAMPLES_NOW}.
EXAMPLES: Final[dict[str, tuple[str, Any]]] = {
    "view_event": ("ViewEvent", _VIEW),
    "click_event": ("ClickEvent", _CLICK),
    "add_to_cart_event": ("AddToCartEvent", _CART),
    "events_batch": ("EventBatch", {"events": [_VIEW, _CLICK, _CART]}),
    "order_created": ("OrderCreated", {
        "event_id": "o-evt-1", "type": "order.created", "brand_id": "b1", "order_id": "o1",
        "click_id": "evt-click-0001", "coupon_code": "SAVE10",
        "occurred_at": "2026-11-25T20:01:00.000Z", "currency": "USD",
        "items": [
            {"sku": "p1", "quantity": 2, "unit_price_minor": 1999},
            {"sku": "p2", "quantity": 1, "unit_price_minor": 4500},
        ],
        "discount_minor": 500, "tax_minor": 712, "shipping_minor": 499,
    }),
    "order_refunded": ("OrderRefunded", {
        "event_id": "r-evt-1", "type": "order.refunded", "brand_id": "b1", "order_id": "o1",
        "refund_id": "r1", "amount_minor": 1999, "occurred_at": "2026-11-25T20:03:00.000Z",
    }),
    "shopify_order": ("ShopifyOrder", {
        "id": 820982911946154508, "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
        "name": "#1001", "email": "jon@example.com", "created_at": "2026-11-25T15:01:00-05:00",
        "currency": "USD", "presentment_currency": "USD", "financial_status": "paid",
        "total_price": "398.00", "subtotal_price": "388.00", "total_discounts": "10.00",
        "total_tax": "0.00", "total_line_items_price": "398.00",
        "total_shipping_price_set": {
            "shop_money": {"amount": "0.00", "currency_code": "USD"},
            "presentment_money": {"amount": "0.00", "currency_code": "USD"},
        },
        "discount_codes": [{"code": "save10", "amount": "10.00", "type": "fixed_amount"}],
        "note_attributes": [{"name": "ll_click", "value": "evt-click-0001"}],
        "landing_site": "/products/ipod?ll_click=evt-click-0001&utm_source=live",
        "line_items": [
            {"id": 866550311766439020, "product_id": 632910392, "variant_id": 808950810,
             "sku": "IPOD2008PINK", "title": "IPod Nano - 8GB", "price": "199.00",
             "quantity": 2, "taxable": True, "gift_card": False},
        ],
    }),
    "shopify_refund": ("ShopifyRefund", {
        "id": 509562969, "order_id": 820982911946154508,
        "created_at": "2026-11-25T15:04:00-05:00", "processed_at": "2026-11-25T15:04:00-05:00",
        "note": "it broke during shipping", "restock": True, "user_id": 548380009,
        "admin_graphql_api_id": "gid://shopify/Refund/509562969",
        "refund_line_items": [
            {"id": 104689539, "quantity": 1, "line_item_id": 866550311766439020,
             "location_id": 40642626, "restock_type": "legacy_restock", "subtotal": 195.67,
             "total_tax": 3.98,
             "subtotal_set": {
                 "shop_money": {"amount": "195.67", "currency_code": "USD"},
                 "presentment_money": {"amount": "195.67", "currency_code": "USD"},
             },
             "line_item": {"id": 866550311766439020, "product_id": 632910392,
                           "variant_id": 808950810, "sku": "IPOD2008PINK", "price": "199.00",
                           "quantity": 2}},
        ],
        "transactions": [
            {"id": 245135, "order_id": 820982911946154508, "kind": "refund", "gateway": "bogus",
             "status": "success", "amount": "195.67", "currency": "USD"},
        ],
        "order_adjustments": [],
    }),
    "events_batch_record": ("EventsBatchRecord", {
        "v": 1, "batch_id": "6f1c0c1e-3b0e-4a57-9f55-2d5a1f0e9c11", "brand_id": "b1",
        "source": "events-api", "received_at": "2026-11-25T20:00:10.123Z",
        "events": [
            {**_VIEW},
            {**_CLICK, "creator_id": "cr1", "link_code": None},
            {**_CART, "occurred_at": "2026-11-25T19:00:09.000Z"},
        ],
    }),
    "redirect_batch_record": ("EventsBatchRecord", {
        "v": 1, "batch_id": "0b7d8a9e-2f0a-4c1b-8d1e-7e6f5a4b3c21", "brand_id": "b1",
        "source": "redirect", "received_at": "2026-11-25T20:00:20.000Z",
        "events": [
            {"event_id": "clk-7Hq2xP", "type": "click", "stream_id": None, "viewer_id": None,
             "product_id": "p1", "campaign_id": "cmp1", "creator_id": "cr1",
             "link_code": "lnk-Ab3d", "occurred_at": "2026-11-25T20:00:20.000Z"},
        ],
    }),
    "order_record": ("OrderRecord", {
        "v": 1, "event_id": "o-evt-1", "type": "order.created", "brand_id": "b1", "order_id": "o1",
        "click_id": "evt-click-0001", "coupon_code": "SAVE10",
        "occurred_at": "2026-11-25T20:01:00.000Z", "received_at": "2026-11-25T20:01:00.250Z",
        "currency": "USD", "items": [{"sku": "p1", "quantity": 2, "unit_price_minor": 1999}],
        "discount_minor": 0, "tax_minor": 0, "shipping_minor": 0, "source": "native",
    }),
    "refund_record": ("RefundRecord", {
        "v": 1, "event_id": "shopify:b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        "type": "order.refunded", "brand_id": "b1", "order_id": "820982911946154508",
        "refund_id": "509562969", "amount_minor": 19567, "currency": "USD",
        "occurred_at": "2026-11-25T20:04:00.000Z", "received_at": "2026-11-25T20:04:00.500Z",
        "source": "shopify",
    }),
    "cancel_record": ("CancelRecord", {
        "v": 1, "event_id": "shopify-cancel:7c1d3a52-2f6b-4d0e-9a51-0d4f7f4c2b11",
        "type": "order.cancelled", "brand_id": "b1", "order_id": "820982911946154508",
        "occurred_at": "2026-11-25T20:05:00.000Z", "received_at": "2026-11-25T20:05:00.300Z",
        "source": "shopify",
    }),
    "ledger_order_fact": ("LedgerOrderFact", {
        "kind": "order", "brand_id": "b1", "order_id": "o1", "version": 2,
        "occurred_at": "2026-11-25T20:01:00.000Z", "currency": "USD", "gross_minor": 3998,
        "refunded_minor": 1999, "net_minor": 1999, "via": "click", "creator_id": "cr1",
        "campaign_id": "cmp1", "stream_id": "s1", "click_id": "evt-click-0001", "coupon_code": "SAVE10",
        "rate_bps": 1000, "flat_minor": 0, "hold_days": 30, "commission_minor": 199, "reversed_minor": 200,
        "skus": ["p1"], "source": "native",
    }),
    "ledger_refund_fact": ("LedgerRefundFact", {
        "kind": "refund", "brand_id": "b1", "order_id": "o1", "refund_id": "r1", "amount_minor": 1999,
        "currency": "USD", "occurred_at": "2026-11-25T20:04:00.000Z",
    }),
    "brand_create": ("BrandCreate", {"brand_id": "b1", "name": "Acme Outdoor", "currency": "USD"}),
    "creator_create": ("CreatorCreate", {"creator_id": "cr1", "name": "Jo Streams"}),
    "campaign_create": ("CampaignCreate", {
        "campaign_id": "cmp1", "brand_id": "b1", "rate_bps": 1000, "flat_minor": 0,
        "attribution_window_days": 30, "hold_days": 30, "min_payout_minor": 5000,
    }),
    "link_create": ("LinkCreate", {
        "creator_id": "cr1", "campaign_id": "cmp1", "destination_url": "https://shop.example/p/1",
        "product_id": "p1", "stream_id": "s1", "coupon_code": "SAVE10",
    }),
    "stream_create": ("StreamCreate", {
        "stream_id": "s1", "brand_id": "b1", "creator_id": "cr1", "title": "Black Friday live",
    }),
}


def adapter(model_key: str) -> TypeAdapter[Any]:
    return TypeAdapter(MODELS[model_key])


def json_schemas() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, model in MODELS.items():
        if isinstance(model, type) and issubclass(model, BaseModel):
            out[name] = model.model_json_schema()
        else:
            out[name] = TypeAdapter(model).json_schema()
    return out


def _dump(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_all(outdir: Path) -> list[Path]:
    written: list[Path] = []
    (outdir / "json").mkdir(parents=True, exist_ok=True)
    (outdir / "examples").mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        path = outdir / "json" / f"{name}.json"
        path.write_bytes(_dump(schema))
        written.append(path)
    for name, (model_key, example) in EXAMPLES.items():
        adapter(model_key).validate_python(example, context={"now": EXAMPLES_NOW})
        path = outdir / "examples" / f"{name}.json"
        path.write_bytes(orjson.dumps(example, option=orjson.OPT_INDENT_2) + b"\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    outdir = Path(args[0]) if args else Path(__file__).resolve().parent
    written = write_all(outdir)
    print(f"wrote {len(written)} files under {outdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
