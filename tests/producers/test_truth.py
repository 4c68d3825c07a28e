"""Ground-truth arithmetic on a tiny scenario computed by hand from the contract's rules."""

from __future__ import annotations

from typing import Any

from producers import truth
from producers.truth import AckLog, LinkInfo, OrderFact, RefundFact, Terms, TruthSetup

DAY = 86_400_000
T0 = 1_764_100_800_000
T = T0 + 60_000  # order time


def _setup() -> TruthSetup:
    return TruthSetup(
        brands={"B1": "USD", "B2": "JPY"},
        campaigns={
            "C1": Terms("B1", rate_bps=1000, flat_minor=50, window_days=7, hold_days=14),
            "C2": Terms("B1", rate_bps=1234, flat_minor=0, window_days=1, hold_days=1),
            "C3": Terms("B2", rate_bps=500, flat_minor=10, window_days=30, hold_days=30),
        },
        streams={"S1": ("B1", "A"), "S2": ("B2", "Z")},
        links={
            "k1": LinkInfo("k1", "B1", "X", "C2", coupon_code="SAVE10"),
            "k2": LinkInfo("k2", "B1", "Y", "C1", stream_id="S1", product_id="p2"),
        },
    )


def _ev(eid: str, type_: str, stream: str, viewer: str, **kw: str) -> dict[str, Any]:
    return {"event_id": eid, "type": type_, "stream_id": stream, "viewer_id": viewer, **kw}


def _order(
    oid: str,
    brand: str,
    ms: int,
    items: int,
    discount: int = 0,
    click: str | None = None,
    coupon: str | None = None,
    currency: str = "USD",
    skus: tuple[str, ...] = (),
) -> OrderFact:
    return OrderFact(brand, oid, ms, currency, items, discount, click, coupon, "native", skus)


def _log() -> AckLog:
    log = AckLog()
    log.events = [
        (_ev("j1", "view", "S1", "v1", action="join"), T0),
        (_ev("j2", "view", "S1", "v2", action="join"), T0),
        (_ev("h1", "view", "S1", "v1", action="heartbeat"), T0),
        (_ev("j3", "view", "S1", "v1", action="join"), T0),  # rejoin: a view, not a new viewer
        (_ev("j2", "view", "S1", "v2", action="join"), T0),  # duplicate event_id: once
        (_ev("c1", "click", "S1", "v1", product_id="p1", campaign_id="C1"), T0),
        (_ev("c2", "click", "S1", "v2", product_id="p1", campaign_id="C2"), T0 - 2 * DAY),  # stale for C2
        (_ev("a1", "add_to_cart", "S1", "v1", product_id="p1"), T0),
        (_ev("c3", "click", "S2", "v9", product_id="q1", campaign_id="C3"), T0),
    ]
    log.redirect_clicks = [("r1", "k2", T0 + 1000)]
    shopify_o2 = {
        "id": 2,
        "currency": "USD",
        "created_at": "2025-11-25T15:01:00-05:00",
        "total_discounts": "6.00",
        "line_items": [{"price": "19.99", "quantity": 3}],
        "note_attributes": [],
        "landing_site": "/p?ll_click=c2",
        "discount_codes": [{"code": "SAVE10"}],
    }
    o1 = _order("O1", "B1", T, 2 * 1999 + 500, discount=498, click="c1", skus=("p1", "p3"))
    log.orders = [
        o1,
        truth.order_from_shopify("B1", shopify_o2),  # stale click -> falls back to the coupon
        _order("O3", "B1", T, 1000, click="c3"),  # another brand's click -> unattributed
        _order("O4", "B1", T, 1000, click="r1", skus=("p2",)),  # redirect click -> link's creator, fully refunded
        _order("O5", "B2", T, 3 * 1990, click="c3", currency="JPY"),
        _order("O6", "B1", T0 - 1000, 700, click="c1"),  # order before its click -> unattributed
        o1,  # duplicate delivery
    ]
    log.refunds = [
        RefundFact("B1", "O1", "R1", 1000),
        RefundFact("B1", "O1", "R1", 1000),  # duplicate refund_id: once
        RefundFact("B1", "O1", "R2", 500),
        RefundFact("B1", "O4", "R3", 1000),
        RefundFact("B1", "O9", "R9", 100),  # order never arrived: waits
    ]
    return log


AS_OF = {"run_end": T + 3_600_000, "plus_2_days": T + 2 * DAY, "plus_31_days": T + 31 * DAY}


def test_commission_rule() -> None:
    terms = Terms("B", rate_bps=1234, flat_minor=25, window_days=1, hold_days=1)
    assert truth.commission(5397, terms) == 665 + 25  # floor(665.9898) + flat
    assert truth.commission(0, terms) == 0  # no flat once net is 0
    assert truth.commission(1, terms) == 0 + 25


def test_hand_computed_ground_truth() -> None:
    doc = truth.compute(_setup(), _log(), AS_OF)
    s1, s2 = doc["streams"]["S1"], doc["streams"]["S2"]
    assert (s1["views"], s1["unique_viewers"], s1["clicks"], s1["add_to_carts"], s1["orders"]) == (3, 2, 3, 1, 2)
    assert s1["gmv"] == [{"currency": "USD", "net_minor": 2500 + 0}]  # O1 after refunds, O4 fully refunded
    assert (s2["views"], s2["clicks"], s2["orders"], s2["gmv"]) == (0, 1, 1, [{"currency": "JPY", "net_minor": 5970}])
    assert s1["top_products"] == [  # a product's orders: the stream's orders containing its sku
        {"product_id": "p1", "clicks": 2, "orders": 1},
        {"product_id": "p2", "clicks": 1, "orders": 1},
        {"product_id": "p3", "clicks": 0, "orders": 1},
    ]

    def cur(creator: str) -> dict[str, Any]:
        (only,) = doc["creators"][creator]["currencies"]
        return dict(only)

    a = cur("A")  # O1: net 4000 - 1500 = 2500 -> 250 + 50; before refunds 400 + 50
    assert (a["currency"], a["orders"], a["net_minor"], a["commission"], a["reversed"]) == ("USD", 1, 2500, 300, 150)
    x = cur("X")  # O2: 5997 - 600 = 5397 -> floor(5397 * 0.1234) = 665
    assert (x["orders"], x["net_minor"], x["commission"], x["reversed"]) == (1, 5397, 665, 0)
    y = cur("Y")  # O4: refunded to 0 -> no commission, flat gone too: 100 + 50 reversed
    assert (y["orders"], y["net_minor"], y["commission"], y["reversed"]) == (1, 0, 0, 150)
    z = cur("Z")  # O5: floor(5970 * 0.05) + 10 = 298 + 10
    assert (z["currency"], z["net_minor"], z["commission"]) == ("JPY", 5970, 308)

    zero = {"pending": 0, "approved": 0, "paid": 0}
    assert a["status"]["run_end"] == {**zero, "pending": 300}
    assert x["status"]["run_end"] == {**zero, "pending": 665}
    assert x["status"]["plus_2_days"] == {**zero, "approved": 665}  # hold 1 day
    assert a["status"]["plus_2_days"] == {**zero, "pending": 300}  # hold 14 days
    assert a["status"]["plus_31_days"] == {**zero, "approved": 300}
    assert z["status"]["plus_31_days"] == {**zero, "approved": 308}

    assert doc["creators"]["Y"]["by_stream"][0]["stream_id"] == "S1"
    assert {b["campaign_id"] for b in doc["creators"]["A"]["by_campaign"]} == {"C1"}

    b1, b2 = doc["brands"]["B1"], doc["brands"]["B2"]
    assert (b1["orders"], b1["attributed_orders"], b1["unattributed_orders"], b1["refunded_orders"]) == (5, 3, 2, 2)
    assert b1["net"] == [{"currency": "USD", "net_minor": 2500 + 5397 + 1000 + 0 + 700}]
    assert (b2["orders"], b2["net"]) == (1, [{"currency": "JPY", "net_minor": 5970}])
    by = {o["order_id"]: o["attributed_by"] for o in doc["orders"]}
    assert by == {"O1": "click", "2": "coupon", "O3": "none", "O4": "click", "O5": "click", "O6": "none"}
    assert doc["refunds_waiting_for_order"] == 1


def test_click_arriving_after_its_order_still_attributes() -> None:
    log = AckLog()
    log.orders = [_order("O1", "B1", T, 1000, click="late")]
    log.events = [(_ev("late", "click", "S1", "v1", product_id="p1", campaign_id="C1"), T - 5000)]
    doc = truth.compute(_setup(), log, {"now": T})
    assert doc["orders"][0]["attributed_by"] == "click" and doc["orders"][0]["creator_id"] == "A"


def test_attribution_window_edges() -> None:
    for age, expected in [(7 * DAY, "click"), (7 * DAY + 1, "none"), (0, "click"), (-1, "none")]:
        log = AckLog()
        log.events = [(_ev("c", "click", "S1", "v1", product_id="p1", campaign_id="C1"), T - age)]
        log.orders = [_order("O1", "B1", T, 1000, click="c")]
        assert truth.compute(_setup(), log, {"now": T})["orders"][0]["attributed_by"] == expected, age
