"""Hot-path request bodies and the setup they need, shared by the Locust users and ``python -m bench``.

Everything here builds what real clients send: live-player event batches, native order webhooks
signed with the brand's ``webhook_secret`` (``X-LiveLedger-Signature``) and Shopify webhooks
(``X-Shopify-Hmac-Sha256``). :func:`setup_world` creates a brand, creator, campaign, streams and
links through the setup API, with ids made unique by a run id so runs never collide.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from ingest.signatures import sign_liveledger, sign_shopify

Json = dict[str, Any]
PRODUCTS = tuple(f"p{i}" for i in range(20))
VIEW_ACTIONS = ("join", "heartbeat", "heartbeat", "heartbeat", "leave")


def rfc3339(ts: float | None = None) -> str:
    """Epoch seconds (default now) → RFC 3339 UTC with milliseconds and ``Z``."""
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class World:
    """The setup one load or bench run uses (ids unique per run)."""

    run_id: str
    brand_id: str
    api_key: str
    webhook_secret: str
    currency: str
    creator_id: str
    campaign_id: str
    stream_ids: list[str]
    link_codes: list[str]
    coupon_codes: list[str] = field(default_factory=list)


def setup_world(api_url: str, admin_token: str, *, run_id: str | None = None, streams: int = 4, links: int = 8,
                currency: str = "USD") -> World:
    """Create brand, creator, campaign, streams and links through the setup API (admin key)."""
    rid = run_id or new_run_id()
    brand_id, creator_id, campaign_id = f"lb-{rid}", f"lc-{rid}", f"lcmp-{rid}"
    with httpx.Client(base_url=api_url, timeout=15.0, headers={"Authorization": f"Bearer {admin_token}"}) as http:

        def post(path: str, body: Json) -> Json:
            resp = http.post(path, json=body)
            if resp.status_code != 201:
                raise RuntimeError(f"setup {path} failed: {resp.status_code} {resp.text}")
            data: Json = resp.json()
            return data

        brand = post("/v1/admin/brands", {"brand_id": brand_id, "name": f"Load {rid}", "currency": currency})
        post("/v1/admin/creators", {"creator_id": creator_id, "name": f"Creator {rid}"})
        post("/v1/campaigns", {"campaign_id": campaign_id, "brand_id": brand_id, "rate_bps": 1000, "flat_minor": 0})
        stream_ids = [f"ls-{rid}-{i}" for i in range(streams)]
        for sid in stream_ids:
            post("/v1/streams", {"stream_id": sid, "brand_id": brand_id, "creator_id": creator_id,
                                 "title": f"Load stream {sid}"})
        codes: list[str] = []
        coupons: list[str] = []
        for i in range(links):
            body: Json = {"creator_id": creator_id, "campaign_id": campaign_id,
                          "destination_url": f"https://shop.example/p/{i}?ref=live",
                          "stream_id": stream_ids[i % len(stream_ids)], "product_id": PRODUCTS[i % len(PRODUCTS)]}
            if i == 0:
                coupons.append(f"LOAD{rid}".upper())
                body["coupon_code"] = coupons[0]
            codes.append(str(post("/v1/links", body)["link_code"]))
    return World(rid, brand_id, str(brand["api_key"]), str(brand["webhook_secret"]), currency, creator_id,
                 campaign_id, stream_ids, codes, coupons)


def event_batch(world: World, n: int, rng: random.Random, seq: int, *, stream_id: str | None = None,
                views_only: bool = False) -> Json:
    """``{"events": [...]}`` with ``n`` unique events: ~80 % views, 12 % clicks, 8 % add-to-carts."""
    now = rfc3339()
    events: list[Json] = []
    prefix = f"e-{world.run_id}-{seq}-{uuid.uuid4().hex[:6]}"
    for i in range(n):
        sid = stream_id or world.stream_ids[rng.randrange(len(world.stream_ids))]
        viewer = f"v{rng.randrange(5000)}"
        roll = 0.0 if views_only else rng.random()
        ev: Json = {"event_id": f"{prefix}-{i}", "stream_id": sid, "viewer_id": viewer, "occurred_at": now}
        if roll < 0.80:
            ev["type"] = "view"
            ev["action"] = "join" if views_only else VIEW_ACTIONS[rng.randrange(len(VIEW_ACTIONS))]
        elif roll < 0.92:
            ev["type"] = "click"
            ev["product_id"] = PRODUCTS[rng.randrange(len(PRODUCTS))]
            ev["campaign_id"] = world.campaign_id
        else:
            ev["type"] = "add_to_cart"
            ev["product_id"] = PRODUCTS[rng.randrange(len(PRODUCTS))]
        events.append(ev)
    return {"events": events}


def native_order(world: World, rng: random.Random, click_id: str | None) -> Json:
    oid = f"o-{world.run_id}-{uuid.uuid4().hex[:12]}"
    body: Json = {"event_id": f"evt-{oid}", "type": "order.created", "brand_id": world.brand_id, "order_id": oid,
                  "occurred_at": rfc3339(), "currency": world.currency,
                  "items": [{"sku": PRODUCTS[rng.randrange(len(PRODUCTS))], "quantity": rng.randint(1, 3),
                             "unit_price_minor": rng.randint(500, 20000)}],
                  "discount_minor": 0, "tax_minor": 0, "shipping_minor": 0}
    if click_id is not None:
        body["click_id"] = click_id
    return body


def native_refund(world: World, order_id: str, amount_minor: int) -> Json:
    return {"event_id": f"evt-r-{uuid.uuid4().hex[:12]}", "type": "order.refunded", "brand_id": world.brand_id,
            "order_id": order_id, "refund_id": f"r-{uuid.uuid4().hex[:12]}", "amount_minor": amount_minor,
            "occurred_at": rfc3339()}


def shopify_order(world: World, rng: random.Random, click_id: str | None) -> Json:
    qty = rng.randint(1, 3)
    order: Json = {"id": rng.randrange(10**15, 10**16), "name": f"#{rng.randrange(100000)}",
                   "created_at": rfc3339(), "currency": world.currency, "total_discounts": "0.00",
                   "total_tax": "0.00", "discount_codes": [], "note_attributes": [],
                   "line_items": [{"id": rng.randrange(10**12), "sku": PRODUCTS[rng.randrange(len(PRODUCTS))],
                                   "title": "Load item", "price": f"{rng.randint(5, 200)}.00", "quantity": qty}]}
    if click_id is not None:
        order["note_attributes"].append({"name": "ll_click", "value": click_id})
    elif world.coupon_codes:
        order["discount_codes"].append({"code": world.coupon_codes[0], "amount": "0.00", "type": "fixed_amount"})
    return order


def native_headers(world: World, body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json",
            "X-LiveLedger-Signature": sign_liveledger(body, world.webhook_secret, int(time.time()))}


def shopify_headers(world: World, body: bytes, topic: str = "orders/create") -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Shopify-Topic": topic,
            "X-Shopify-Webhook-Id": f"wh-{uuid.uuid4().hex}",
            "X-Shopify-Hmac-Sha256": sign_shopify(body, world.webhook_secret)}


def dumps(obj: Json) -> bytes:
    return orjson.dumps(obj)


# Click hygiene (ingest/clicks.py): HTTP libraries' own User-Agents are on the crawler list and
# count no click, so load generators send a browser's, and a client address of their own.
BROWSER_UA = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
              "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
PREVIEW_BOT_UA = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
