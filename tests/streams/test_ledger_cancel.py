"""Order cancellation in the ledger state machine (contract "Shopify as it really sends"): net 0,
commission reversed, once per webhook id and once per order, waiting when it comes first."""

from __future__ import annotations

from schemas.wire import CancelRecord, LedgerRefundFact, decode_ledger_fact
from schemas.wire import decode_orders_record as parse_order_record
from streams import ledger
from tests.streams import kit
from tests.streams.test_ledger import Setup, click, order, refund, tables


def cancel(oid: str, event_id: str | None = None) -> CancelRecord:
    c = parse_order_record(kit.cancel("b1", oid, event_id=event_id))
    assert isinstance(c, CancelRecord)
    return c


def test_cancellation_takes_net_to_zero_and_reverses_the_commission() -> None:
    t, s = tables(), Setup()
    ledger.on_click(t, s, *click("c1"), "e:0:0")
    ledger.on_order(t, s, order("o1", click_id="c1", items=[("p1", 1, 10000)]), "o:0:1")
    fx = ledger.on_cancel(t, s, cancel("o1"), "o:0:2")
    (snap,) = fx.snapshots
    assert (snap["version"], snap["net_minor"], snap["refunded_minor"]) == (2, 0, 10000)
    assert (snap["commission_minor"], snap["reversed_minor"]) == (0, 10000 * 1000 // 10000 + 50)
    (fact,) = fx.refunds
    assert (fact["refund_id"], fact["amount_minor"]) == ("cancel:o1", 10000)
    assert fx.stats["cancellations_accepted"] == 1


def test_cancellation_after_a_partial_refund_reverses_only_the_rest() -> None:
    t, s = tables(), Setup()
    ledger.on_order(t, s, order("o1", coupon="SAVE", items=[("p1", 1, 10000)]), "o:0:1")
    ledger.on_refund(t, s, refund("o1", "r1", 3000), "o:0:2")
    fx = ledger.on_cancel(t, s, cancel("o1"), "o:0:3")
    assert fx.snapshots[0]["net_minor"] == 0 and fx.snapshots[0]["refunded_minor"] == 10000
    assert [f["amount_minor"] for f in fx.refunds] == [7000]
    # a refund after the cancellation cannot take the net below 0, and the cancellation's refund row
    # shrinks by it: the order's refund rows still sum to what was given back (the gross)
    fx = ledger.on_refund(t, s, refund("o1", "r2", 500), "o:0:4")
    assert fx.snapshots[0]["net_minor"] == 0 and fx.snapshots[0]["commission_minor"] == 0
    assert [(f["refund_id"], f["amount_minor"]) for f in fx.refunds] == [("r2", 500), ("cancel:o1", 6500)]
    # a refund of all the rest: the cancellation's row becomes 0 (and still reaches the sink)
    fx = ledger.on_refund(t, s, refund("o1", "r3", 6500), "o:0:5")
    assert [(f["refund_id"], f["amount_minor"]) for f in fx.refunds] == [("r3", 6500), ("cancel:o1", 0)]
    fact = decode_ledger_fact(ledger.ledger_fact_refund(fx.refunds[1]).to_bytes())
    assert isinstance(fact, LedgerRefundFact) and (fact.refund_id, fact.amount_minor) == ("cancel:o1", 0)


def test_cancellation_counts_once_by_webhook_and_by_order() -> None:
    t, s = tables(), Setup()
    ledger.on_order(t, s, order("o1", coupon="SAVE"), "o:0:1")
    first = ledger.on_cancel(t, s, cancel("o1", "wh-1"), "o:0:2")
    version = first.snapshots[0]["version"]
    same_webhook = ledger.on_cancel(t, s, cancel("o1", "wh-1"), "o:0:3")
    other_webhook = ledger.on_cancel(t, s, cancel("o1", "wh-2"), "o:0:4")
    replay = ledger.on_cancel(t, s, cancel("o1", "wh-1"), "o:0:2")  # the same record again (a crash)
    assert same_webhook.refunds == [] and other_webhook.refunds == []
    assert other_webhook.stats.get("cancellations_deduplicated") == 1
    assert all(fx.snapshots[0]["version"] == version for fx in (other_webhook, replay))
    assert replay.stats.get("cancellations_accepted") == 1  # a replay is not a duplicate


def test_cancellation_before_its_order_waits_and_applies_on_arrival() -> None:
    t, s = tables(), Setup()
    fx = ledger.on_cancel(t, s, cancel("o1"), "o:0:0")
    assert fx.snapshots == [] and fx.stats["cancellations_waiting"] == 1
    fx = ledger.on_order(t, s, order("o1", coupon="SAVE", items=[("p1", 2, 2500)]), "o:0:1")
    (snap,) = fx.snapshots
    assert snap["net_minor"] == 0 and snap["commission_minor"] == 0 and snap["reversed_minor"] > 0
    assert [(f["refund_id"], f["amount_minor"]) for f in fx.refunds] == [("cancel:o1", 5000)]


def test_cancellation_refund_ids_are_unique_per_order_and_valid_ids() -> None:
    from schemas.ids import is_valid_id

    ids = {ledger.cancel_refund_id(o) for o in ("o1", "o2", "x" * 128, "y" * 128)}
    assert len(ids) == 4 and all(is_valid_id(i) for i in ids)
