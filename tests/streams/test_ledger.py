"""The order-side state machine (no services): attribution, versions, refunds, replays."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from schemas.wire import OrderRecord as Order
from schemas.wire import RefundRecord as Refund
from schemas.wire import WireClickEvent, decode_events_record, decode_ledger_fact
from schemas.wire import decode_orders_record as parse_order_record
from streams import ledger
from tests.streams import kit


@dataclass
class Setup:
    campaigns: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "cmp": {"campaign_id": "cmp", "brand_id": "b1", "rate_bps": 1000, "flat_minor": 50,
                "attribution_window_days": 30, "hold_days": 30}})
    links: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "SAVE": {"link_code": "L1", "brand_id": "b1", "creator_id": "crc", "campaign_id": "cmp"}})

    def link_for_coupon(self, brand_id: str, code: str) -> dict[str, Any] | None:
        return self.links.get(code.upper())


def tables() -> ledger.Tables:
    return ledger.Tables({}, {}, {}, {})


def click(cid: str, minutes_ago: float = 10, brand: str = "b1") -> tuple[WireClickEvent, str]:
    """A decoded click and its brand (``on_click(tables, setup, *click(...), src)``)."""
    b = decode_events_record(kit.batch(brand, [kit.click(cid, "s1", "v1", "p1", "cr1", "cmp",
                                                         kit.ago(minutes=minutes_ago))]))
    assert isinstance(b.events[0], WireClickEvent)
    return b.events[0], b.brand_id


def order(oid: str, **kw: Any) -> Order:
    o = parse_order_record(kit.order("b1", oid, **kw))
    assert isinstance(o, Order)
    return o


def refund(oid: str, rid: str, amount: int, **kw: Any) -> Refund:
    r = parse_order_record(kit.refund("b1", oid, rid, amount, **kw))
    assert isinstance(r, Refund)
    return r


def test_click_attribution_and_commission() -> None:
    t, s = tables(), Setup()
    ledger.on_click(t, s, *click("c1"), "e:0:0")
    fx = ledger.on_order(t, s, order("o1", click_id="c1", items=[("p1", 1, 10001)]), "o:0:1")
    (snap,) = fx.snapshots
    assert (snap["via"], snap["creator_id"], snap["stream_id"], snap["version"]) == ("click", "cr1", "s1", 1)
    assert snap["commission_minor"] == 10001 * 1000 // 10000 + 50


def test_refund_recomputes_and_reverses() -> None:
    t, s = tables(), Setup()
    ledger.on_click(t, s, *click("c1"), "e:0:0")
    ledger.on_order(t, s, order("o1", click_id="c1"), "o:0:1")
    fx = ledger.on_refund(t, s, refund("o1", "r1", 4000), "o:0:2")
    (snap,) = fx.snapshots
    assert (snap["version"], snap["net_minor"], snap["commission_minor"], snap["reversed_minor"]) == (2, 6000, 650, 400)
    fx = ledger.on_refund(t, s, refund("o1", "r2", 99999), "o:0:3")
    assert fx.snapshots[0]["net_minor"] == 0 and fx.snapshots[0]["commission_minor"] == 0  # flat only while net > 0


def test_refund_before_order_waits() -> None:
    t, s = tables(), Setup()
    fx = ledger.on_refund(t, s, refund("o1", "r1", 1000), "o:0:0")
    assert fx.snapshots == [] and fx.stats["refunds_waiting"] == 1
    fx = ledger.on_order(t, s, order("o1"), "o:0:1")
    assert fx.snapshots[0]["net_minor"] == 9000 and len(fx.refunds) == 1


def test_late_click_upgrades_coupon_attribution() -> None:
    t, s = tables(), Setup()
    fx = ledger.on_order(t, s, order("o1", click_id="c9", coupon="save"), "o:0:0")
    assert fx.snapshots[0]["via"] == "coupon" and fx.snapshots[0]["creator_id"] == "crc"
    fx = ledger.on_click(t, s, *click("c9"), "e:0:1")
    assert fx.snapshots[0]["via"] == "click" and fx.snapshots[0]["version"] == 2


def test_late_click_reattribution_keeps_the_refunds() -> None:
    t, s = tables(), Setup()
    ledger.on_order(t, s, order("o1", click_id="c9", coupon="save"), "o:0:0")
    ledger.on_refund(t, s, refund("o1", "r1", 1000), "o:0:1")
    snap = ledger.on_click(t, s, *click("c9"), "e:0:2").snapshots[0]
    assert (snap["via"], snap["creator_id"], snap["refunded_minor"], snap["net_minor"]) == ("click", "cr1", 1000, 9000)
    assert (snap["commission_minor"], snap["reversed_minor"]) == (9000 * 1000 // 10000 + 50, 1000 * 1000 // 10000)


def test_click_outside_window_or_after_order_does_not_attribute() -> None:
    t, s = tables(), Setup()
    ledger.on_click(t, s, *click("old", minutes_ago=31 * 24 * 60 + 1), "e:0:0")
    assert ledger.on_order(t, s, order("o1", click_id="old"), "o:0:1").snapshots[0]["via"] is None
    ledger.on_click(t, s, *click("later", minutes_ago=1), "e:0:2")
    o = order("o2", click_id="later", at=kit.ago(minutes=5))
    assert ledger.on_order(t, s, o, "o:0:3").snapshots[0]["via"] is None


def test_duplicates_count_once_and_replays_are_not_duplicates() -> None:
    t, s = tables(), Setup()
    o = order("o1")
    first = ledger.on_order(t, s, o, "o:0:0")
    replay = ledger.on_order(t, s, o, "o:0:0")  # the same record again after a crash
    assert replay.stats.get("orders_deduplicated") is None
    assert replay.snapshots == first.snapshots
    dup = ledger.on_order(t, s, o, "o:0:5")  # a webhook retry
    assert dup.stats["orders_deduplicated"] == 1 and dup.snapshots[0]["version"] == 1
    other = ledger.on_order(t, s, order("o1", event_id="another"), "o:0:6")
    assert other.stats["orders_deduplicated"] == 1
    ledger.on_refund(t, s, refund("o1", "r1", 10), "o:0:7")
    again = ledger.on_refund(t, s, refund("o1", "r1", 10), "o:0:8")
    assert again.stats["refunds_deduplicated"] == 1 and again.snapshots[0]["version"] == 2


def test_event_id_reused_for_another_order_is_dropped() -> None:
    t, s = tables(), Setup()
    ledger.on_order(t, s, order("o1", event_id="shopify:42"), "o:0:0")
    fx = ledger.on_order(t, s, order("o2", event_id="shopify:42"), "o:0:1")
    assert fx.snapshots == [] and fx.stats["orders_deduplicated"] == 1


def test_ledger_facts_have_wire_times() -> None:
    t, s = tables(), Setup()
    snap = ledger.on_order(t, s, order("o1", at=kit.ago(days=1) - timedelta(0)), "o:0:0").snapshots[0]
    data = ledger.ledger_fact_order(snap).to_bytes()
    assert decode_ledger_fact(data).order_id == "o1"  # what the sink decodes
    fact = orjson.loads(data)
    assert fact["kind"] == "order" and fact["occurred_at"].endswith("Z") and "occurred_ms" not in fact


def _refund_in(oid: str, rid: str, amount: int, currency: str) -> Refund:
    obj = {**orjson.loads(kit.refund("b1", oid, rid, amount)), "currency": currency}
    r = parse_order_record(orjson.dumps(obj))
    assert isinstance(r, Refund)
    return r


def test_refund_in_another_currency_is_never_netted() -> None:
    t, s = tables(), Setup()
    ledger.on_order(t, s, order("o1"), "o:0:1")  # USD, 10000
    fx = ledger.on_refund(t, s, _refund_in("o1", "r1", 4000, "EUR"), "o:0:2")
    assert fx.stats["refunds_currency_mismatch"] == 1 and fx.refunds == []
    assert fx.snapshots == [] or fx.snapshots[0]["net_minor"] == 10000
    fx = ledger.on_refund(t, s, _refund_in("o1", "r2", 1000, "USD"), "o:0:3")
    assert fx.snapshots[0]["net_minor"] == 9000 and len(fx.refunds) == 1


def test_waiting_refund_in_another_currency_is_not_applied_when_the_order_arrives() -> None:
    t, s = tables(), Setup()
    ledger.on_refund(t, s, _refund_in("o1", "r1", 4000, "JPY"), "o:0:0")
    fx = ledger.on_order(t, s, order("o1"), "o:0:1")
    assert fx.snapshots[0]["net_minor"] == 10000 and fx.refunds == []
    assert fx.stats["refunds_currency_mismatch"] == 1


def test_snapshots_name_the_link_they_are_attributed_through() -> None:
    t, s = tables(), Setup()
    snap = ledger.on_order(t, s, order("o1", coupon="save"), "o:0:0").snapshots[0]
    assert (snap["via"], snap["link_code"]) == ("coupon", "L1")
    b = decode_events_record(kit.batch("b1", [{**kit.click("rc1", "s1", "v1", "p1", "cr1", "cmp"), "link_code": "Lx"}]))
    assert isinstance(b.events[0], WireClickEvent)
    ledger.on_click(t, s, b.events[0], "b1", "e:0:0")
    snap = ledger.on_order(t, s, order("o2", click_id="rc1"), "o:0:1").snapshots[0]
    assert (snap["via"], snap["link_code"]) == ("click", "Lx")
    snap = ledger.on_order(t, s, order("o3"), "o:0:2").snapshots[0]
    assert snap["link_code"] is None
