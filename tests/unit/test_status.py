from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from liveledger.domain.attribution import UNATTRIBUTED, Attribution, CampaignTerms
from liveledger.domain.commission import OrderState, apply_refund
from liveledger.domain.payouts import PayoutItem
from liveledger.domain.status import (
    CommissionBreakdown,
    EarningsTotals,
    approves_at,
    commission_breakdown,
    earnings_by,
    earnings_grouped,
    earnings_totals,
    is_pending,
    order_breakdown,
    order_status,
    paid_by_order,
    totals_by_currency,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TERMS = CampaignTerms("cmp1", "b1", rate_bps=1000, flat_minor=0, hold_days=30)
ATTR = Attribution("click", "cr1", "cmp1", "s1", "c1")


def order(
    order_id: str = "o1",
    gross: int = 10_000,
    *,
    currency: str = "USD",
    at: datetime = T0,
    creator: str = "cr1",
    campaign: str = "cmp1",
    stream: str | None = "s1",
    hold_days: int = 30,
) -> OrderState:
    terms = CampaignTerms(campaign, "b1", 1000, 0, hold_days=hold_days)
    return OrderState(
        brand_id="b1",
        order_id=order_id,
        currency=currency,
        occurred_at=at,
        gross_items_minor=gross,
        discount_minor=0,
        attribution=Attribution("click", creator, campaign, stream, "c-" + order_id),
        terms=terms,
    )


def item(
    order_id: str,
    amount: int,
    *,
    paid_at: datetime,
    creator: str = "cr1",
    currency: str = "USD",
    payout_id: str = "po-1",
) -> PayoutItem:
    return PayoutItem(payout_id, paid_at.date(), "b1", order_id, creator, currency, amount, paid_at)


HOLD_END = T0 + timedelta(days=30)


def test_pending_until_hold_end_then_approved() -> None:
    s = order()
    assert approves_at(s) == HOLD_END
    assert is_pending(s, HOLD_END - timedelta(microseconds=1))
    assert not is_pending(s, HOLD_END)  # exact boundary: approved
    assert order_breakdown(s, 0, HOLD_END - timedelta(milliseconds=1)) == CommissionBreakdown(1000, 0, 0, 0)
    assert order_breakdown(s, 0, HOLD_END) == CommissionBreakdown(0, 1000, 0, 0)
    assert order_status(s, 0, HOLD_END - timedelta(milliseconds=1)) == "pending"
    assert order_status(s, 0, HOLD_END) == "approved"


def test_zero_hold_days_is_approved_immediately() -> None:
    s = order(hold_days=0)
    assert order_status(s, 0, T0) == "approved"


def test_paid() -> None:
    s = order()
    assert order_breakdown(s, 1000, HOLD_END + timedelta(days=1)) == CommissionBreakdown(0, 0, 1000, 0)
    assert order_status(s, 1000, HOLD_END) == "paid"


def test_refund_before_payment_reverses() -> None:
    s, _ = apply_refund(order(), "r1", 4_000)
    assert order_breakdown(s, 0, T0) == CommissionBreakdown(600, 0, 0, 400)
    s, _ = apply_refund(s, "r2", 6_000)
    assert order_breakdown(s, 0, T0) == CommissionBreakdown(0, 0, 0, 1000)
    assert order_status(s, 0, T0) == "reversed"


def test_clawback_after_payment_is_negative_approved() -> None:
    s, _ = apply_refund(order(), "r1", 4_000)
    b = order_breakdown(s, 1000, HOLD_END + timedelta(days=2))
    assert b == CommissionBreakdown(pending=0, approved=-400, paid=1000, reversed=400)
    assert b.current == s.commission_minor == 600
    assert order_status(s, 1000, HOLD_END) == "paid"
    # the next payout nets the clawback
    netted = order_breakdown(s, 1000 - 400, HOLD_END + timedelta(days=40))
    assert netted == CommissionBreakdown(0, 0, 600, 400)


def test_full_refund_after_payment() -> None:
    s, _ = apply_refund(order(), "r1", 10_000)
    assert order_breakdown(s, 1000, HOLD_END) == CommissionBreakdown(0, -1000, 1000, 1000)
    assert order_status(s, 1000, HOLD_END) == "reversed"


def test_never_earned_status() -> None:
    s = OrderState(
        brand_id="b1", order_id="o9", currency="USD", occurred_at=T0, gross_items_minor=5, discount_minor=0
    )
    assert order_status(s, 0, T0) == "none"


def test_payouts_after_as_of_are_ignored() -> None:
    paid_at = HOLD_END + timedelta(days=3)
    items = [item("o1", 1000, paid_at=paid_at)]
    before = commission_breakdown([order()], items, paid_at - timedelta(seconds=1))
    after = commission_breakdown([order()], items, paid_at)
    assert before == {"USD": CommissionBreakdown(0, 1000, 0, 0)}
    assert after == {"USD": CommissionBreakdown(0, 0, 1000, 0)}


def test_breakdown_per_currency_never_mixed() -> None:
    states = [order("o1"), order("o2", 5_000, currency="EUR"), order("o3", 999, currency="JPY")]
    b = commission_breakdown(states, [], HOLD_END)
    assert b == {
        "USD": CommissionBreakdown(0, 1000, 0, 0),
        "EUR": CommissionBreakdown(0, 500, 0, 0),
        "JPY": CommissionBreakdown(0, 99, 0, 0),
    }
    with pytest.raises(ValueError):
        _ = EarningsTotals("USD", 1, 1, CommissionBreakdown()) + EarningsTotals("EUR", 1, 1, CommissionBreakdown())


def test_earnings_totals_counts_refunded_orders_and_net() -> None:
    refunded, _ = apply_refund(order("o2", 3_000), "r", 3_000)
    t = earnings_totals([order("o1"), refunded], [], T0)
    assert t["USD"].orders == 2
    assert t["USD"].net_minor == 10_000
    assert t["USD"].commission == CommissionBreakdown(1000, 0, 0, 300)


def test_unattributed_orders_are_not_earnings() -> None:
    s = OrderState(
        brand_id="b1",
        order_id="o5",
        currency="USD",
        occurred_at=T0,
        gross_items_minor=100,
        discount_minor=0,
        attribution=UNATTRIBUTED,
    )
    assert earnings_totals([s], [], T0) == {}


def test_orphan_payout_item_is_a_clawback() -> None:
    # o1 was paid to cr1 but later re-attributed to cr2: cr1's view shows a clawback
    items = [item("o1", 1000, paid_at=HOLD_END)]
    b = commission_breakdown([], items, HOLD_END + timedelta(days=1))
    assert b == {"USD": CommissionBreakdown(0, -1000, 1000, 0)}
    # and an item for another creator on the same order is an orphan too
    moved = order("o1", creator="cr2")
    totals = commission_breakdown([moved], items, HOLD_END + timedelta(days=1))
    assert totals["USD"] == CommissionBreakdown(0, 1000 - 1000, 1000, 0)


def test_earnings_by_campaign_and_stream() -> None:
    states = [
        order("o1", campaign="cmpA", stream="s1"),
        order("o2", 20_000, campaign="cmpB", stream="s1"),
        order("o3", 30_000, campaign="cmpA", stream=None),
    ]
    by_campaign = earnings_by(states, [], HOLD_END, lambda s: s.campaign_id)
    assert by_campaign[("cmpA", "USD")].commission.approved == 4000
    assert by_campaign[("cmpB", "USD")].orders == 1
    by_stream = earnings_by(states, [], HOLD_END, lambda s: s.stream_id)
    assert by_stream[("s1", "USD")].net_minor == 30_000
    assert by_stream[(None, "USD")].net_minor == 30_000


def test_duplicate_state_rejected() -> None:
    with pytest.raises(ValueError):
        earnings_totals([order(), order()], [], T0)


def test_paid_by_order_sums_items() -> None:
    paid = paid_by_order(
        [
            item("o1", 1000, paid_at=HOLD_END),
            item("o1", -300, paid_at=HOLD_END + timedelta(days=30), payout_id="po-2"),
            item("o1", 5, paid_at=HOLD_END + timedelta(days=90), payout_id="po-3"),
        ],
        HOLD_END + timedelta(days=31),
    )
    assert paid == {("b1", "o1", "cr1"): ("USD", 700)}


def test_as_dict() -> None:
    assert CommissionBreakdown(1, 2, 3, 4).as_dict() == {"pending": 1, "approved": 2, "paid": 3, "reversed": 4}


def test_random_breakdown_invariants() -> None:
    rng = random.Random(20261125)
    for _ in range(300):
        states: list[OrderState] = []
        items: list[PayoutItem] = []
        for i in range(rng.randint(1, 12)):
            s = order(
                f"o{i}",
                rng.randint(0, 50_000),
                currency=rng.choice(["USD", "JPY", "KWD"]),
                at=T0 + timedelta(hours=rng.randint(0, 2000)),
                hold_days=rng.randint(0, 40),
            )
            for r in range(rng.randint(0, 3)):
                s, _ = apply_refund(s, f"r{r}", rng.randint(0, 20_000))
            states.append(s)
            if rng.random() < 0.5:  # some paid at the original amount, maybe partly clawed back
                paid_at = approves_at(s) + timedelta(hours=rng.randint(0, 500))
                items.append(item(s.order_id, s.original_commission_minor, paid_at=paid_at, currency=s.currency))
                if rng.random() < 0.5:
                    items.append(
                        item(
                            s.order_id,
                            s.commission_minor - s.original_commission_minor,
                            paid_at=paid_at + timedelta(days=30),
                            currency=s.currency,
                            payout_id="po-2",
                        )
                    )
        as_of = T0 + timedelta(hours=rng.randint(0, 4000))
        b = commission_breakdown(states, items, as_of)
        for currency in {s.currency for s in states}:
            mine = [s for s in states if s.currency == currency]
            row = b[currency]
            assert row.pending + row.approved + row.paid == sum(s.commission_minor for s in mine)
            assert row.reversed == sum(s.original_commission_minor - s.commission_minor for s in mine)
            assert row.pending >= 0 and row.reversed >= 0
        # grouping does not change currency totals
        grouped = earnings_by(states, items, as_of, lambda s: s.order_id)
        for currency, row2 in earnings_totals(states, items, as_of).items():
            parts = [v.commission for (k, c), v in grouped.items() if c == currency]
            total = CommissionBreakdown()
            for p in parts:
                total = total + p
            assert total == row2.commission
        # several groupings in one pass = each grouping on its own
        keys = {"campaign": lambda s: s.campaign_id, "stream": lambda s: s.stream_id, "all": lambda _s: 0}
        together = earnings_grouped(states, items, as_of, keys)
        for name, key in keys.items():
            assert together[name] == earnings_by(states, items, as_of, key)
        assert totals_by_currency(together["all"]) == earnings_totals(states, items, as_of)
