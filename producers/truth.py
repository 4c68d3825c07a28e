"""Ground truth from what the ingest acknowledged, computed from the contract's rules alone.

Deliberately independent of ``liveledger.domain``: this is the cross-check the pipeline is verified
against. Inputs are facts the simulator saw acknowledged (202); outputs are plain JSON-able dicts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from producers.money import DAY_MS, EXPONENTS, ms_to_rfc3339

Json = dict[str, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Terms:
    brand_id: str
    rate_bps: int
    flat_minor: int
    window_days: int
    hold_days: int
    min_payout_minor: int = 0


@dataclass(frozen=True)
class LinkInfo:
    link_code: str
    brand_id: str
    creator_id: str
    campaign_id: str
    stream_id: str | None = None
    product_id: str | None = None
    coupon_code: str | None = None


@dataclass
class TruthSetup:
    brands: dict[str, str] = field(default_factory=dict)  # brand_id -> currency
    campaigns: dict[str, Terms] = field(default_factory=dict)
    streams: dict[str, tuple[str, str]] = field(default_factory=dict)  # stream_id -> (brand, creator)
    links: dict[str, LinkInfo] = field(default_factory=dict)  # by link_code


@dataclass(frozen=True)
class ClickFact:
    click_id: str
    brand_id: str
    creator_id: str
    campaign_id: str | None
    stream_id: str | None
    product_id: str | None
    occurred_ms: int


@dataclass(frozen=True)
class OrderFact:
    brand_id: str
    order_id: str
    occurred_ms: int
    currency: str
    items_minor: int
    discount_minor: int
    click_id: str | None
    coupon_code: str | None
    source: str
    skus: tuple[str, ...] = ()  # distinct skus of the order's lines


@dataclass(frozen=True)
class RefundFact:
    brand_id: str
    order_id: str
    refund_id: str
    amount_minor: int


@dataclass
class AckLog:
    """Everything acknowledged, one entry per acknowledged delivery (duplicates included)."""

    events: list[tuple[Json, int]] = field(default_factory=list)  # (/v1/events item, occurred ms)
    redirect_clicks: list[tuple[str, str, int]] = field(default_factory=list)  # (click_id, link_code, ms)
    orders: list[OrderFact] = field(default_factory=list)
    refunds: list[RefundFact] = field(default_factory=list)
    cancellations: list[tuple[str, str]] = field(default_factory=list)  # (brand_id, order_id)


# --- payload normalisation (exact, Decimal) -------------------------------------------------------


def _minor(value: Any, currency: str) -> int:
    scaled = Decimal(str(value)).scaleb(EXPONENTS[currency])
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value!r}: more decimals than {currency} allows")
    return int(scaled)


def _utc_ms(text: str) -> int:
    """RFC 3339 (any offset) -> epoch ms, exactly."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt - _EPOCH) // timedelta(milliseconds=1)


def order_from_native(body: Json) -> OrderFact:
    items = sum(int(i["quantity"]) * int(i["unit_price_minor"]) for i in body["items"])
    return OrderFact(
        body["brand_id"],
        body["order_id"],
        _utc_ms(body["occurred_at"]),
        body["currency"],
        items,
        int(body.get("discount_minor", 0)),
        body.get("click_id"),
        body.get("coupon_code"),
        "native",
        tuple(sorted({str(i["sku"]) for i in body["items"]})),
    )


def order_from_shopify(brand_id: str, body: Json) -> OrderFact:
    cur = body["currency"]
    items = sum(_minor(li["price"], cur) * int(li["quantity"]) for li in body["line_items"])
    click = next((a["value"] for a in body.get("note_attributes") or [] if a.get("name") == "ll_click"), None)
    if click is None and body.get("landing_site"):
        found = parse_qs(urlsplit(body["landing_site"]).query).get("ll_click")
        click = found[0] if found else None
    codes = [d["code"] for d in body.get("discount_codes") or [] if d.get("code")]
    return OrderFact(
        brand_id,
        str(body["id"]),
        _utc_ms(body["created_at"]),
        cur,
        items,
        _minor(body.get("total_discounts") or "0", cur),
        click,
        codes[0] if codes else None,
        "shopify",
        tuple(sorted({str(sku) for li in body["line_items"]
                      if (sku := li.get("sku") or li.get("product_id") or li.get("variant_id") or li.get("id"))})),
    )


def refund_from_native(body: Json) -> RefundFact:
    return RefundFact(body["brand_id"], body["order_id"], body["refund_id"], int(body["amount_minor"]))


def refund_from_shopify(brand_id: str, currency: str, body: Json) -> RefundFact:
    amount = 0
    for rli in body.get("refund_line_items") or []:
        if rli.get("subtotal") is not None:
            amount += _minor(rli["subtotal"], currency)
        else:
            amount += _minor(rli["line_item"]["price"], currency) * int(rli["quantity"])
    return RefundFact(brand_id, str(body["order_id"]), str(body["id"]), amount)


# --- the rules --------------------------------------------------------------------------------------


def commission(net: int, terms: Terms) -> int:
    """floor(net * rate_bps / 10000) + flat_minor, the flat part only while net > 0."""
    if net <= 0:
        return 0
    return net * terms.rate_bps // 10000 + terms.flat_minor


@dataclass
class _Attributed:
    order: OrderFact
    gross_net: int
    net: int
    refunds: int
    creator_id: str | None
    campaign_id: str | None
    by: str  # click | coupon | none
    stream_id: str | None
    product_id: str | None


def _clicks(setup: TruthSetup, log: AckLog) -> dict[str, ClickFact]:
    clicks: dict[str, ClickFact] = {}
    for ev, ms in log.events:
        if ev.get("type") != "click" or ev["event_id"] in clicks:
            continue
        brand, creator = setup.streams[ev["stream_id"]]
        clicks[ev["event_id"]] = ClickFact(
            ev["event_id"], brand, creator, ev.get("campaign_id"), ev["stream_id"], ev.get("product_id"), ms
        )
    for click_id, code, ms in log.redirect_clicks:
        link = setup.links[code]
        clicks.setdefault(
            click_id,
            ClickFact(click_id, link.brand_id, link.creator_id, link.campaign_id, link.stream_id, link.product_id, ms),
        )
    return clicks


def attribute(setup: TruthSetup, log: AckLog) -> list[_Attributed]:
    """Every unique order (first delivery per brand + order_id) with its net and attribution."""
    clicks = _clicks(setup, log)
    coupons = {(lk.brand_id, lk.coupon_code): lk for lk in setup.links.values() if lk.coupon_code}
    orders: dict[tuple[str, str], OrderFact] = {}
    for o in log.orders:
        orders.setdefault((o.brand_id, o.order_id), o)
    refunds: dict[tuple[str, str], RefundFact] = {}
    for r in log.refunds:
        refunds.setdefault((r.brand_id, r.refund_id), r)
    refunded: dict[tuple[str, str], int] = defaultdict(int)
    for r in refunds.values():
        refunded[(r.brand_id, r.order_id)] += r.amount_minor
    cancelled = set(log.cancellations)
    out: list[_Attributed] = []
    for key, o in orders.items():
        gross = max(0, o.items_minor - o.discount_minor)
        if key in cancelled:  # net 0, as if the rest were refunded (docs/money-rules.md)
            refunded[key] = max(refunded[key], gross)
        net = max(0, gross - refunded[key])
        c = clicks.get(o.click_id) if o.click_id else None
        window = setup.campaigns[c.campaign_id].window_days if c and c.campaign_id in setup.campaigns else 30
        if c and c.brand_id == o.brand_id and c.occurred_ms <= o.occurred_ms <= c.occurred_ms + window * DAY_MS:
            out.append(
                _Attributed(
                    o, gross, net, refunded[key], c.creator_id, c.campaign_id, "click", c.stream_id, c.product_id
                )
            )
        elif o.coupon_code and (o.brand_id, o.coupon_code) in coupons:
            lk = coupons[(o.brand_id, o.coupon_code)]
            out.append(
                _Attributed(o, gross, net, refunded[key], lk.creator_id, lk.campaign_id, "coupon", lk.stream_id, None)
            )
        else:
            out.append(_Attributed(o, gross, net, refunded[key], None, None, "none", None, None))
    return out


def _money_bucket() -> Json:
    return {"orders": 0, "net_minor": 0, "commission": 0, "reversed": 0, "status": {}}


def compute(setup: TruthSetup, log: AckLog, as_of: dict[str, int]) -> Json:
    """The ground-truth document: streams, creators, brands, orders (see docs/simulator.md)."""
    attributed = attribute(setup, log)
    # streams -----------------------------------------------------------------------------------
    seen: set[str] = set()
    streams: Json = {
        sid: {
            "brand_id": b,
            "creator_id": c,
            "views": 0,
            "unique_viewers": 0,
            "clicks": 0,
            "add_to_carts": 0,
            "orders": 0,
            "gmv": {},
            "products": {},
        }
        for sid, (b, c) in setup.streams.items()
    }
    viewers: dict[str, set[str]] = defaultdict(set)

    def product(sid: str, pid: str | None) -> Json:
        p: Json = streams[sid]["products"].setdefault(pid or "", {"clicks": 0, "orders": 0})
        return p

    for ev, _ms in log.events:
        if ev["event_id"] in seen or ev.get("stream_id") not in streams:
            continue
        seen.add(ev["event_id"])
        s = streams[ev["stream_id"]]
        if ev["type"] == "view":
            viewers[ev["stream_id"]].add(ev["viewer_id"])
            s["views"] += ev.get("action") == "join"
        elif ev["type"] == "click":
            s["clicks"] += 1
            product(ev["stream_id"], ev.get("product_id"))["clicks"] += 1
        elif ev["type"] == "add_to_cart":
            s["add_to_carts"] += 1
    for click_id, code, _ms in log.redirect_clicks:
        lk = setup.links[code]
        if click_id in seen or lk.stream_id not in streams:
            continue
        seen.add(click_id)
        streams[lk.stream_id]["clicks"] += 1
        product(lk.stream_id, lk.product_id)["clicks"] += 1
    for a in attributed:
        if a.by == "click" and a.stream_id in streams:
            s = streams[a.stream_id]
            s["orders"] += 1
            s["gmv"][a.order.currency] = s["gmv"].get(a.order.currency, 0) + a.net
            for sku in a.order.skus:  # a product's orders: this stream's orders containing it
                product(a.stream_id, sku)["orders"] += 1
    for sid, s in streams.items():
        s["unique_viewers"] = len(viewers[sid])
        s["gmv"] = [{"currency": k, "net_minor": v} for k, v in sorted(s["gmv"].items())]
        s["top_products"] = [
            {"product_id": k, **v}
            for k, v in sorted(s.pop("products").items(), key=lambda kv: (-kv[1]["clicks"], -kv[1]["orders"], kv[0]))
            if k
        ]
    # creators ----------------------------------------------------------------------------------
    creators: Json = {}
    for a in attributed:
        if a.creator_id is None or a.campaign_id is None:
            continue
        terms = setup.campaigns[a.campaign_id]
        current, original = commission(a.net, terms), commission(a.gross_net, terms)
        cr = creators.setdefault(a.creator_id, {"currencies": {}, "by_campaign": {}, "by_stream": {}})
        keys = [("currencies", a.order.currency), ("by_campaign", (a.campaign_id, a.order.currency))]
        if a.stream_id and a.by == "click":  # by_stream = orders attributed through a click of the stream
            keys.append(("by_stream", (a.stream_id, a.order.currency)))
        for group, key in keys:
            b = cr[group].setdefault(key, _money_bucket())
            b["orders"] += 1
            b["net_minor"] += a.net
            b["commission"] += current
            b["reversed"] += original - current
            for label, t in as_of.items():
                st = b["status"].setdefault(label, {"pending": 0, "approved": 0, "paid": 0})
                st["pending" if t < a.order.occurred_ms + terms.hold_days * DAY_MS else "approved"] += current
    for cr in creators.values():
        cr["currencies"] = [{"currency": cur, **b} for cur, b in sorted(cr["currencies"].items())]
        cr["by_campaign"] = [{"campaign_id": k[0], "currency": k[1], **b} for k, b in sorted(cr["by_campaign"].items())]
        cr["by_stream"] = [{"stream_id": k[0], "currency": k[1], **b} for k, b in sorted(cr["by_stream"].items())]
    # per-creator conversion (contract "Per-creator conversion, live") ----------------------------
    conversion: Json = {}

    def conv(brand_id: str, creator_id: str) -> Json:
        row: Json = conversion.setdefault(brand_id, {}).setdefault(creator_id, {
            "clicks": 0, "orders": 0, "click_orders": 0, "coupon_orders": 0, "gmv": {}, "commission": {}})
        return row

    for click in _clicks(setup, log).values():
        conv(click.brand_id, click.creator_id)["clicks"] += 1
    for a in attributed:
        if a.creator_id is None:
            continue
        row = conv(a.order.brand_id, a.creator_id)
        row["orders"] += 1
        row[f"{a.by}_orders"] += 1
        cur = a.order.currency
        row["gmv"][cur] = row["gmv"].get(cur, 0) + a.net
        camp = setup.campaigns.get(a.campaign_id) if a.campaign_id else None
        row["commission"][cur] = row["commission"].get(cur, 0) + (commission(a.net, camp) if camp else 0)
    for rows in conversion.values():
        for row in rows.values():
            row["gmv"] = [{"currency": k, "net_minor": v} for k, v in sorted(row["gmv"].items())]
            row["commission"] = [{"currency": k, "amount_minor": v} for k, v in sorted(row["commission"].items())]
    # brands and orders -------------------------------------------------------------------------
    brands: Json = {
        bid: {
            "currency": cur,
            "orders": 0,
            "attributed_orders": 0,
            "unattributed_orders": 0,
            "refunded_orders": 0,
            "net": {},
        }
        for bid, cur in setup.brands.items()
    }
    orders: list[Json] = []
    for a in attributed:
        b = brands[a.order.brand_id]
        b["orders"] += 1
        b["attributed_orders" if a.creator_id else "unattributed_orders"] += 1
        b["refunded_orders"] += a.refunds > 0
        b["net"][a.order.currency] = b["net"].get(a.order.currency, 0) + a.net
        orders.append(
            {
                "brand_id": a.order.brand_id,
                "order_id": a.order.order_id,
                "occurred_ms": a.order.occurred_ms,
                "occurred_at": ms_to_rfc3339(a.order.occurred_ms),
                "currency": a.order.currency,
                "gross_net_minor": a.gross_net,
                "refunded_minor": a.refunds,
                "net_minor": a.net,
                "attributed_by": a.by,
                "creator_id": a.creator_id,
                "campaign_id": a.campaign_id,
                "stream_id": a.stream_id if a.by == "click" else None,
                "source": a.order.source,
            }
        )
    for b in brands.values():
        b["net"] = [{"currency": k, "net_minor": v} for k, v in sorted(b["net"].items())]
    orders.sort(key=lambda o: (o["brand_id"], o["order_id"]))
    known = {(o.brand_id, o.order_id) for o in log.orders}
    waiting = len({(r.brand_id, r.refund_id) for r in log.refunds if (r.brand_id, r.order_id) not in known})
    return {
        "streams": streams,
        "creators": creators,
        "conversion": conversion,
        "brands": brands,
        "orders": orders,
        "refunds_waiting_for_order": waiting,
    }
