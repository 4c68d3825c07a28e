"""A deterministic workload with its own ground truth (an oracle independent of the processors).

Includes duplicates (same event id re-sent, same order id under another event id, Shopify-style
retries), out-of-order arrival (orders before their clicks), refunds before their orders and invalid
records of each kind. ``expected()`` computes the exact totals the contract asks for.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from tests.streams import kit

Rec = tuple[str, bytes | None, bytes | None]


@dataclass
class Workload:
    setup: list[Rec] = field(default_factory=list)
    chunks: list[list[Rec]] = field(default_factory=list)
    invalid_reasons: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    truth: dict[str, Any] = field(default_factory=dict)


CAMPAIGNS = {"b1": ("cmpA", 1000, 25), "b2": ("cmpB", 550, 0)}


def build(seed: int = 7, n_chunks: int = 6, viewers: int = 60, orders_per_chunk: int = 12) -> Workload:
    rng = random.Random(seed)
    w = Workload()
    for brand, (camp, rate, flat) in CAMPAIGNS.items():
        w.setup.append(("setup", *kit.setup_record("campaign", camp, {
            "campaign_id": camp, "brand_id": brand, "rate_bps": rate, "flat_minor": flat,
            "attribution_window_days": 30, "hold_days": 30, "min_payout_minor": 5000})))
        w.setup.append(("setup", *kit.setup_record("link", f"L{brand}", {
            "link_code": f"L{brand}", "brand_id": brand, "creator_id": f"cr-{brand}-coupon", "campaign_id": camp,
            "coupon_code": f"SAVE-{brand}", "destination_url": "https://shop.example/"})))
    streams = {"b1": ["s1", "s2"], "b2": ["s3"]}
    creator_of = {"s1": "cr1", "s2": "cr2", "s3": "cr3"}
    base = kit.now_utc() - timedelta(minutes=30)
    views: dict[str, set[str]] = defaultdict(set)  # stream -> join event ids
    uniq: dict[str, set[str]] = defaultdict(set)
    clicks: dict[str, dict[str, Any]] = {}  # click_id -> info
    click_count: dict[str, set[str]] = defaultdict(set)
    carts: dict[str, set[str]] = defaultdict(set)
    orders: dict[tuple[str, str], dict[str, Any]] = {}
    refunds: dict[tuple[str, str], tuple[str, int]] = {}
    seq = 0

    def eid(p: str) -> str:
        nonlocal seq
        seq += 1
        return f"{p}{seq}"

    all_events: list[tuple[str, dict[str, Any]]] = []
    for c in range(n_chunks):
        chunk: list[Rec] = []
        for brand, ss in streams.items():
            batch_events: list[dict[str, Any]] = []
            for s in ss:
                for v in rng.sample(range(viewers), 15):
                    viewer = f"v{v}"
                    t = base + timedelta(seconds=c * 60 + rng.randint(0, 50))
                    e = kit.view(eid("j"), s, viewer, "join", t)
                    views[s].add(e["event_id"])
                    uniq[s].add(viewer)
                    batch_events.append(e)
                    batch_events.append(kit.view(eid("h"), s, viewer, "heartbeat", t + timedelta(seconds=5)))
                    if rng.random() < 0.5:
                        ce = kit.click(eid("c"), s, viewer, f"p{rng.randint(1, 4)}", creator_of[s],
                                       CAMPAIGNS[brand][0], t)
                        clicks[ce["event_id"]] = {"brand": brand, "stream": s, "creator": creator_of[s], "ev": ce}
                        click_count[s].add(ce["event_id"])
                        batch_events.append(ce)
                    if rng.random() < 0.3:
                        ae = kit.cart(eid("a"), s, viewer, f"p{rng.randint(1, 4)}", t)
                        carts[s].add(ae["event_id"])
                        batch_events.append(ae)
            # duplicates: re-send some earlier events of this brand
            dups = [e for b, e in all_events if b == brand]
            batch_events += rng.sample(dups, min(5, len(dups)))
            all_events += [(brand, e) for e in batch_events]
            # invalid events inside a valid batch
            batch_events.append({"event_id": eid("x"), "type": "teleport", "occurred_at": kit.iso(base)})
            w.invalid_reasons["unknown_event_type"] += 1
            future = kit.iso(kit.now_utc() + timedelta(hours=1))
            batch_events.append({**kit.view(eid("x"), ss[0], "v1"), "occurred_at": future})
            w.invalid_reasons["occurred_in_future"] += 1
            batch_events.append({**kit.view(eid("x"), ss[0], "v1"), "viewer_id": "bad id!"})
            w.invalid_reasons["invalid_id"] += 1
            for i in range(0, len(batch_events), 40):
                chunk.append(("events", brand.encode(), kit.batch(brand, batch_events[i:i + 40])))
        # invalid whole records
        chunk.append(("events", b"b1", b"{not json"))
        w.invalid_reasons["invalid_json"] += 1
        chunk.append(("orders", b"b2", orjson.dumps({"v": 1, "type": "order.created", "brand_id": "b2"})))
        w.invalid_reasons["missing_field"] += 1
        chunk.append(("orders", b"b1", kit.order("b1", eid("bad"), currency="usd")))
        w.invalid_reasons["invalid_currency"] += 1
        # orders: with click (some produced before the click exists: late click), coupon, none
        brand_clicks = defaultdict(list)
        for cid, info in clicks.items():
            brand_clicks[info["brand"]].append(cid)
        for _ in range(orders_per_chunk):
            brand = rng.choice(list(streams))
            oid = eid("o")
            items = [(f"p{rng.randint(1, 4)}", rng.randint(1, 3), rng.randint(500, 20000))
                     for _ in range(rng.randint(1, 3))]
            discount = rng.choice([0, 0, 300])
            r = rng.random()
            click_id = coupon = None
            if r < 0.6 and brand_clicks[brand]:
                click_id = rng.choice(brand_clicks[brand])
            elif r < 0.8:
                coupon = f"SAVE-{brand}"
            at = base + timedelta(minutes=25)
            rec = ("orders", brand.encode(), kit.order(brand, oid, click_id=click_id, coupon=coupon, items=items,
                                                       discount=discount, at=at))
            gross = max(0, sum(q * p for _, q, p in items) - discount)
            orders[(brand, oid)] = {"click": click_id, "coupon": coupon, "gross": gross,
                                    "skus": {s for s, _, _ in items}}
            chunk.append(rec)
            if rng.random() < 0.2:  # webhook retry (same event id) and a re-send under another event id
                chunk.append(rec)
                chunk.append(("orders", brand.encode(), kit.order(brand, oid, click_id=click_id, coupon=coupon,
                                                                  items=items, discount=discount, at=at,
                                                                  event_id=f"other-{oid}")))
            if rng.random() < 0.3:
                rid = eid("r")
                amount = rng.randint(100, gross + 500)
                refunds[(brand, rid)] = (oid, amount)
                rrec = ("orders", brand.encode(), kit.refund(brand, oid, rid, amount))
                if rng.random() < 0.5:
                    chunk.insert(0, rrec)  # refund before its order
                else:
                    chunk.append(rrec)
                chunk.append(rrec)  # duplicate refund
        # a late click: an order referencing a click that is only produced afterwards
        lbrand = "b1"
        lclick = kit.click(eid("c"), "s1", "v1", "p1", "cr1", CAMPAIGNS[lbrand][0], base + timedelta(minutes=1))
        loid = eid("o")
        chunk.append(("orders", b"b1", kit.order("b1", loid, click_id=lclick["event_id"],
                                                 at=base + timedelta(minutes=25))))
        orders[("b1", loid)] = {"click": lclick["event_id"], "coupon": None, "gross": 10000, "skus": {"p1"}}
        clicks[lclick["event_id"]] = {"brand": "b1", "stream": "s1", "creator": "cr1", "ev": lclick}
        click_count["s1"].add(lclick["event_id"])
        chunk.append(("events", b"b1", kit.batch("b1", [lclick])))
        w.chunks.append(chunk)

    # ---- oracle ----
    per_stream: dict[str, dict[str, Any]] = {}
    for s in creator_of:
        per_stream[s] = {"views": len(views[s]), "unique_viewers": len(uniq[s]), "clicks": len(click_count[s]),
                         "add_to_carts": len(carts[s]), "orders": 0, "gmv": defaultdict(int)}
    per_creator: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    brand_sales: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    refunded: dict[tuple[str, str], int] = defaultdict(int)
    for (brand, _rid), (oid, amount) in refunds.items():
        refunded[(brand, oid)] += amount
    for (brand, oid), o in orders.items():
        net = max(0, o["gross"] - refunded[(brand, oid)])
        brand_sales[brand]["orders"] += 1
        brand_sales[brand]["net"] += net
        camp, rate, flat = CAMPAIGNS[brand]
        creator = stream = None
        if o["click"] and o["click"] in clicks:
            creator, stream = clicks[o["click"]]["creator"], clicks[o["click"]]["stream"]
        elif o["coupon"]:
            creator = f"cr-{brand}-coupon"
        if creator is None:
            continue
        commission = net * rate // 10000 + flat if net > 0 else 0
        full = o["gross"] * rate // 10000 + flat if o["gross"] > 0 else 0
        pc = per_creator[creator]
        pc["orders"] += 1
        pc["net"] += net
        pc["commission"] += commission
        pc["reversed"] += full - commission
        if stream:
            per_stream[stream]["orders"] += 1
            per_stream[stream]["gmv"]["USD"] += net
    w.truth = {"streams": per_stream, "creators": {k: dict(v) for k, v in per_creator.items()},
               "brands": {k: dict(v) for k, v in brand_sales.items()}, "orders": len(orders),
               "refunds": len(refunds)}
    return w
