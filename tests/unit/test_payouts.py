from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from liveledger.domain.attribution import Attribution, CampaignTerms
from liveledger.domain.commission import OrderState, apply_refund
from liveledger.domain.payouts import (
    CarriedOver,
    CommissionVersion,
    PayoutItem,
    PayoutLine,
    PayoutOrderAmount,
    PayoutPlan,
    PayoutSequenceError,
    payout_cutoff,
    payout_id_for,
    payout_items,
    plan_payout,
    version_from_state,
)
from liveledger.domain.status import commission_breakdown

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


def state(
    order_id: str,
    gross: int,
    *,
    creator: str = "cr1",
    campaign: str = "cmp1",
    currency: str = "USD",
    at: datetime = T0,
    hold_days: int = 30,
    min_payout: int = 5000,
    rate_bps: int = 1000,
) -> OrderState:
    terms = CampaignTerms(campaign, "b1", rate_bps, 0, hold_days=hold_days, min_payout_minor=min_payout)
    return OrderState(
        brand_id="b1",
        order_id=order_id,
        currency=currency,
        occurred_at=at,
        gross_items_minor=gross,
        discount_minor=0,
        attribution=Attribution("coupon", creator, campaign),
        terms=terms,
    )


class Ledger:
    """A tiny in-memory stand-in for the ClickHouse commission-version and payout-item tables."""

    def __init__(self) -> None:
        self.versions: list[CommissionVersion] = []
        self.items: list[PayoutItem] = []
        self.latest: dict[tuple[str, str], CommissionVersion] = {}

    def record(self, s: OrderState, effective_at: datetime) -> None:
        prev = self.latest.get((s.brand_id, s.order_id))
        v = version_from_state(s, (prev.version + 1) if prev else 1, effective_at, prev)
        self.latest[(s.brand_id, s.order_id)] = v
        self.versions.append(v)

    def run(self, period_end: date) -> PayoutPlan:
        plan = plan_payout(period_end, self.versions, self.items)
        self.items.extend(payout_items(plan, payout_cutoff(period_end) + timedelta(hours=1)))
        return plan


def test_cutoff_and_id() -> None:
    assert payout_cutoff(date(2026, 11, 30)) == datetime(2026, 12, 1, tzinfo=UTC)
    assert payout_id_for(date(2026, 11, 30)) == "po-2026-11-30"


def test_basic_payout_line() -> None:
    ledger = Ledger()
    ledger.record(state("o1", 30_000), T0)
    ledger.record(state("o2", 40_000), T0)
    plan = ledger.run(date(2026, 11, 30))
    assert plan.payout_id == "po-2026-11-30"
    assert plan.lines == (
        PayoutLine(
            "cr1",
            "USD",
            7000,
            2,
            (PayoutOrderAmount("b1", "o1", 3000), PayoutOrderAmount("b1", "o2", 4000)),
        ),
    )
    assert plan.carried_over == ()
    assert plan.totals() == {"USD": 7000}


def test_below_minimum_is_carried_over_then_paid() -> None:
    ledger = Ledger()
    ledger.record(state("o1", 30_000), T0)
    p1 = ledger.run(date(2026, 11, 30))
    assert p1.lines == ()
    assert p1.carried_over == (
        CarriedOver("cr1", "USD", 3000, 1, 5000, "below_minimum", (PayoutOrderAmount("b1", "o1", 3000),)),
    )
    ledger.record(state("o2", 20_000, at=T0 + timedelta(days=5)), T0 + timedelta(days=5))
    p2 = ledger.run(date(2026, 12, 31))
    assert [(ln.creator_id, ln.amount_minor, ln.orders) for ln in p2.lines] == [("cr1", 5000, 2)]


def test_exactly_minimum_is_paid() -> None:
    ledger = Ledger()
    ledger.record(state("o1", 50_000), T0)
    assert ledger.run(date(2026, 11, 30)).totals() == {"USD": 5000}


def test_threshold_is_largest_min_payout_of_creators_campaigns_in_currency() -> None:
    ledger = Ledger()
    ledger.record(state("o1", 60_000, campaign="cmpA", min_payout=1000), T0)
    ledger.record(state("o2", 10_000, campaign="cmpB", min_payout=10_000), T0)
    plan = ledger.run(date(2026, 11, 30))
    assert plan.lines == ()
    assert plan.carried_over[0].threshold_minor == 10_000
    assert plan.carried_over[0].amount_minor == 7000
    # a campaign in another currency does not raise the USD threshold
    ledger2 = Ledger()
    ledger2.record(state("o1", 60_000, campaign="cmpA", min_payout=1000), T0)
    ledger2.record(state("o2", 10_000, campaign="cmpB", min_payout=10_000, currency="EUR"), T0)
    plan2 = ledger2.run(date(2026, 11, 30))
    assert [(ln.currency, ln.amount_minor) for ln in plan2.lines] == [("USD", 6000)]
    assert [(c.currency, c.threshold_minor) for c in plan2.carried_over] == [("EUR", 10_000)]


def test_explicit_thresholds_combine_by_max() -> None:
    versions = [version_from_state(state("o1", 60_000, min_payout=1000), 1, T0)]
    plan = plan_payout(date(2026, 11, 30), versions, [], {("cr1", "USD"): 7000})
    assert plan.lines == () and plan.carried_over[0].threshold_minor == 7000
    plan = plan_payout(date(2026, 11, 30), versions, [], {("cr1", "USD"): 10})
    assert plan.totals() == {"USD": 6000}


def test_hold_boundary_at_cutoff() -> None:
    # approves exactly at the next midnight -> not approved by the end of period_end
    at = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    v = version_from_state(state("o1", 100_000, at=at, hold_days=30), 1, at)
    assert v.approves_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert plan_payout(date(2026, 11, 30), [v], []).lines == ()
    assert plan_payout(date(2026, 12, 1), [v], []).totals() == {"USD": 10_000}
    # one microsecond earlier -> approved within period_end
    at2 = at - timedelta(microseconds=1)
    v2 = version_from_state(state("o1", 100_000, at=at2, hold_days=30), 1, at2)
    assert plan_payout(date(2026, 11, 30), [v2], []).totals() == {"USD": 10_000}


def test_pending_orders_are_not_paid_or_carried() -> None:
    ledger = Ledger()
    ledger.record(state("o1", 100_000, at=datetime(2026, 11, 20, tzinfo=UTC)), T0)
    plan = ledger.run(date(2026, 11, 30))
    assert plan.lines == () and plan.carried_over == ()


def test_refund_recorded_before_cutoff_lowers_payout() -> None:
    ledger = Ledger()
    s = state("o1", 100_000)
    ledger.record(s, T0)
    s, _ = apply_refund(s, "r1", 40_000)
    ledger.record(s, datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC))
    assert ledger.run(date(2026, 11, 30)).totals() == {"USD": 6000}


def test_clawback_after_payout_is_negative_adjustment_in_next_batch() -> None:
    ledger = Ledger()
    s = state("o1", 100_000)
    ledger.record(s, T0)
    p1 = ledger.run(date(2026, 11, 30))
    assert p1.totals() == {"USD": 10_000}
    # refund after the payout
    s, _ = apply_refund(s, "r1", 40_000)
    ledger.record(s, datetime(2026, 12, 1, 0, 0, tzinfo=UTC))  # exactly at cutoff: next batch
    assert plan_payout(date(2026, 11, 30), ledger.versions, ledger.items) == p1  # idempotent
    # new earnings the next month net the clawback
    o2 = state("o2", 90_000, at=T0 + timedelta(days=20))
    ledger.record(o2, T0 + timedelta(days=20))
    p2 = ledger.run(date(2026, 12, 31))
    assert p2.lines == (
        PayoutLine(
            "cr1",
            "USD",
            9000 - 4000,
            2,
            (PayoutOrderAmount("b1", "o1", -4000), PayoutOrderAmount("b1", "o2", 9000)),
        ),
    )
    # status after the clawback was netted: nothing approved left
    after = commission_breakdown([s, o2], ledger.items, datetime(2027, 1, 2, tzinfo=UTC))["USD"]
    assert (after.approved, after.paid, after.reversed) == (0, 6000 + 9000, 4000)


def test_clawback_alone_is_carried_over_as_debt() -> None:
    ledger = Ledger()
    s = state("o1", 100_000)
    ledger.record(s, T0)
    ledger.run(date(2026, 11, 30))
    s, _ = apply_refund(s, "r1", 100_000)
    ledger.record(s, datetime(2026, 12, 3, tzinfo=UTC))
    p2 = ledger.run(date(2026, 12, 31))
    assert p2.lines == ()
    assert p2.carried_over == (
        CarriedOver("cr1", "USD", -10_000, 1, 5000, "not_positive", (PayoutOrderAmount("b1", "o1", -10_000),)),
    )
    # debt is netted against later earnings before anything is paid again
    ledger.record(state("o2", 120_000, at=T0 + timedelta(days=40)), T0 + timedelta(days=40))
    p3 = ledger.run(date(2027, 1, 31))
    assert p3.totals() == {}  # 12000 - 10000 = 2000 < 5000
    assert p3.carried_over[0].amount_minor == 2000
    ledger.record(state("o3", 30_000, at=T0 + timedelta(days=41)), T0 + timedelta(days=41))
    p4 = ledger.run(date(2027, 2, 28))
    assert p4.totals() == {"USD": 5000}


def test_refund_while_pending_never_paid_more() -> None:
    ledger = Ledger()
    s = state("o1", 100_000)
    ledger.record(s, T0)
    s, _ = apply_refund(s, "r1", 50_000)
    ledger.record(s, T0 + timedelta(days=3))
    assert ledger.run(date(2026, 11, 30)).totals() == {"USD": 5000}


def test_reattribution_after_payment_moves_money() -> None:
    ledger = Ledger()
    s = state("o1", 100_000, creator="cr1")
    ledger.record(s, T0)
    ledger.run(date(2026, 11, 30))
    moved = replace(s, attribution=Attribution("click", "cr2", "cmp1", "s1", "c1"))
    ledger.record(moved, datetime(2026, 12, 2, tzinfo=UTC))
    p2 = ledger.run(date(2026, 12, 31))
    assert [(ln.creator_id, ln.amount_minor) for ln in p2.lines] == [("cr2", 10_000)]
    assert [(c.creator_id, c.amount_minor) for c in p2.carried_over] == [("cr1", -10_000)]


def test_currencies_are_separate_lines() -> None:
    ledger = Ledger()
    ledger.record(state("o1", 100_000, currency="USD"), T0)
    ledger.record(state("o2", 1_000_000, currency="JPY"), T0)
    ledger.record(state("o3", 100_000, currency="KWD"), T0)
    plan = ledger.run(date(2026, 11, 30))
    assert [(ln.currency, ln.amount_minor) for ln in plan.lines] == [
        ("JPY", 100_000),
        ("KWD", 10_000),
        ("USD", 10_000),
    ]


def test_unattributed_and_campaignless_orders_are_ignored() -> None:
    s = OrderState(
        brand_id="b1", order_id="o1", currency="USD", occurred_at=T0, gross_items_minor=10**6, discount_minor=0
    )
    s2 = OrderState(
        brand_id="b1",
        order_id="o2",
        currency="USD",
        occurred_at=T0,
        gross_items_minor=10**6,
        discount_minor=0,
        attribution=Attribution("click", "cr1", None, "s1", "c1"),
    )
    plan = plan_payout(date(2026, 11, 30), [version_from_state(s, 1, T0), version_from_state(s2, 1, T0)], [])
    assert plan.lines == () and plan.carried_over == ()


def test_idempotent_and_order_independent() -> None:
    ledger = Ledger()
    for i in range(10):
        ledger.record(state(f"o{i}", 10_000 * (i + 1), creator=f"cr{i % 3}"), T0)
    p1 = plan_payout(date(2026, 11, 30), ledger.versions, ledger.items)
    versions = ledger.versions[::-1]
    assert plan_payout(date(2026, 11, 30), versions, []) == p1
    ledger.run(date(2026, 11, 30))
    # re-planning after the batch was stored reproduces it (its own items are ignored)
    assert plan_payout(date(2026, 11, 30), ledger.versions, ledger.items) == p1
    # the next period pays nothing again
    assert plan_payout(date(2026, 12, 31), ledger.versions, ledger.items).lines == ()


def test_planning_before_a_later_batch_is_refused() -> None:
    ledger = Ledger()
    ledger.record(state("o1", 100_000), T0)
    ledger.run(date(2026, 12, 31))
    with pytest.raises(PayoutSequenceError):
        plan_payout(date(2026, 11, 30), ledger.versions, ledger.items)


def test_versions_after_cutoff_ignored_and_duplicates_tolerated() -> None:
    s = state("o1", 100_000)
    v1 = version_from_state(s, 1, T0)
    s2, _ = apply_refund(s, "r", 100_000)
    v2 = version_from_state(s2, 2, datetime(2026, 12, 1, tzinfo=UTC), v1)
    plan = plan_payout(date(2026, 11, 30), [v1, v2, v1], [])
    assert plan.totals() == {"USD": 10_000}
    conflicting = version_from_state(s2, 1, T0)
    with pytest.raises(ValueError):
        plan_payout(date(2026, 11, 30), [v1, conflicting], [])


def test_version_from_state_clamps_effective_time() -> None:
    s = state("o1", 100_000)
    v1 = version_from_state(s, 1, T0 + timedelta(days=1))
    v2 = version_from_state(s, 2, T0, v1)
    assert v2.effective_at == v1.effective_at
    assert (v2.commission_minor, v2.net_minor, v2.reversed_minor, v2.hold_days) == (10_000, 100_000, 0, 30)
    with pytest.raises(ValueError):
        version_from_state(s, 1, T0, v1)


def test_payout_items_rows() -> None:
    ledger = Ledger()
    ledger.record(state("o1", 100_000), T0)
    plan = plan_payout(date(2026, 11, 30), ledger.versions, [])
    paid_at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert payout_items(plan, paid_at) == (
        PayoutItem("po-2026-11-30", date(2026, 11, 30), "b1", "o1", "cr1", "USD", 10_000, paid_at),
    )


def test_random_payout_conservation() -> None:
    """Over many periods with refunds arriving at random times, what is paid plus what is carried
    over always equals the approved commission, and no order is ever paid beyond its commission
    once everything settles."""
    rng = random.Random(99)
    for _ in range(60):
        ledger = Ledger()
        states: dict[str, OrderState] = {}
        events: list[tuple[datetime, str, str, int]] = []
        for i in range(rng.randint(1, 15)):
            at = T0 + timedelta(hours=rng.randint(0, 24 * 120))
            oid = f"o{i}"
            events.append((at, "order", oid, 0))
            for r in range(rng.randint(0, 2)):
                events.append((at + timedelta(hours=rng.randint(0, 24 * 150)), f"r{r}", oid, rng.randint(0, 60_000)))
        events.sort()
        periods = [date(2026, 10, 31) + timedelta(days=30 * k) for k in range(1, 10)]
        pi = 0
        for at, kind, oid, amount in events:
            while pi < len(periods) and payout_cutoff(periods[pi]) <= at:
                ledger.run(periods[pi])
                pi += 1
            if kind == "order":
                states[oid] = state(
                    oid,
                    rng.randint(0, 200_000),
                    creator=rng.choice(["cr1", "cr2"]),
                    currency=rng.choice(["USD", "JPY"]),
                    at=at,
                    hold_days=rng.randint(0, 45),
                    min_payout=rng.choice([0, 1000, 5000]),
                )
            else:
                states[oid], _ = apply_refund(states[oid], kind, amount)
            ledger.record(states[oid], at)
        while pi < len(periods):
            ledger.run(periods[pi])
            pi += 1
        final = date(2028, 1, 31)
        plan = plan_payout(final, ledger.versions, ledger.items)
        assert plan == plan_payout(final, list(reversed(ledger.versions)), list(reversed(ledger.items)))
        paid: dict[tuple[str, str], int] = defaultdict(int)
        for it in ledger.items:
            paid[(it.creator_id, it.currency)] += it.amount_minor
        owed: dict[tuple[str, str], int] = defaultdict(int)
        for s in states.values():
            assert s.creator_id is not None
            owed[(s.creator_id, s.currency)] += s.commission_minor
        outstanding: dict[tuple[str, str], int] = defaultdict(int)
        for ln in plan.lines:
            outstanding[(ln.creator_id, ln.currency)] += ln.amount_minor
        for c in plan.carried_over:
            outstanding[(c.creator_id, c.currency)] += c.amount_minor
        for key in set(owed) | set(paid):
            assert paid[key] + outstanding[key] == owed[key]
