from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from liveledger.domain.attribution import UNATTRIBUTED, Attribution, CampaignTerms
from liveledger.domain.commission import (
    OrderState,
    apply_refund,
    commission_minor,
    items_gross_minor,
    net_minor,
    reversed_minor,
)

T0 = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
TERMS = CampaignTerms("cmp1", "b1", rate_bps=1000, flat_minor=50)
ATTR = Attribution("click", "cr1", "cmp1", "s1", "c1")


def order(
    gross: int = 10_000,
    discount: int = 0,
    *,
    currency: str = "USD",
    terms: CampaignTerms | None = TERMS,
    attribution: Attribution = ATTR,
) -> OrderState:
    return OrderState(
        brand_id="b1",
        order_id="o1",
        currency=currency,
        occurred_at=T0,
        gross_items_minor=gross,
        discount_minor=discount,
        attribution=attribution,
        terms=terms,
    )


# --- net ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gross", "discount", "refunds", "expected"),
    [
        (10_000, 0, 0, 10_000),
        (10_000, 1_000, 0, 9_000),
        (10_000, 1_000, 2_000, 7_000),
        (10_000, 1_000, 9_000, 0),
        (10_000, 1_000, 9_001, 0),  # refunds exceeding net floor at 0
        (10_000, 20_000, 0, 0),  # discount larger than items
        (0, 0, 0, 0),
    ],
)
def test_net_minor(gross: int, discount: int, refunds: int, expected: int) -> None:
    assert net_minor(gross, discount, refunds) == expected


def test_net_rejects_negative_and_non_int() -> None:
    with pytest.raises(ValueError):
        net_minor(-1, 0, 0)
    with pytest.raises(ValueError):
        net_minor(1, -1, 0)
    with pytest.raises(ValueError):
        net_minor(1, 0, -1)
    with pytest.raises(TypeError):
        net_minor(1.5, 0, 0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        net_minor(True, 0, 0)


def test_items_gross() -> None:
    assert items_gross_minor([(2, 1999), (1, 1)]) == 3999
    assert items_gross_minor([]) == 0
    with pytest.raises(ValueError):
        items_gross_minor([(-1, 100)])


# --- commission --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net", "rate", "flat", "expected"),
    [
        (10_000, 1000, 0, 1000),
        (10_000, 1000, 50, 1050),
        (1999, 1000, 0, 199),  # floor(199.9)
        (1, 9999, 0, 0),  # floor(0.9999)
        (3, 3333, 0, 0),  # floor(0.9999)
        (7, 5000, 0, 3),  # floor(3.5)
        (10_001, 1, 0, 1),  # floor(1.0001)
        (9_999, 1, 0, 0),
        (0, 1000, 50, 0),  # flat only while net > 0
        (1, 0, 50, 50),
        (1, 10_000, 0, 1),
        (10**15 + 1, 1234, 7, (10**15 + 1) * 1234 // 10000 + 7),  # big ints stay exact
    ],
)
def test_commission_minor(net: int, rate: int, flat: int, expected: int) -> None:
    assert commission_minor(net, rate, flat) == expected


def test_commission_rejects_negative() -> None:
    with pytest.raises(ValueError):
        commission_minor(-1, 100, 0)
    with pytest.raises(ValueError):
        commission_minor(1, -100, 0)
    with pytest.raises(ValueError):
        commission_minor(1, 100, -1)


def test_zero_decimal_currency_jpy() -> None:
    s = order(gross=1999, terms=CampaignTerms("cmp1", "b1", 750, 10), currency="JPY")
    # 1999 yen * 7.5% = 149.925 -> 149, + 10 flat
    assert s.commission_minor == 159
    assert s.currency == "JPY"


def test_three_decimal_currency_kwd() -> None:
    s = order(gross=12_345, terms=CampaignTerms("cmp1", "b1", 333, 0), currency="KWD")
    # 12.345 KWD * 3.33% = 0.41108... KWD = 411 fils (floor of 411.0885)
    assert s.commission_minor == 411


# --- order state and refunds -------------------------------------------------------------------


def test_order_state_basics() -> None:
    s = order(gross=10_000, discount=1_000)
    assert s.net_minor == 9_000
    assert s.original_net_minor == 9_000
    assert s.commission_minor == 950
    assert s.reversed_minor == 0
    assert (s.creator_id, s.campaign_id, s.stream_id, s.hold_days) == ("cr1", "cmp1", "s1", 30)


def test_refund_recomputes_commission() -> None:
    s, changed = apply_refund(order(), "r1", 2_500)
    assert changed
    assert s.net_minor == 7_500
    assert s.commission_minor == 800
    assert reversed_minor(s) == 250


def test_duplicate_refund_counts_once() -> None:
    s, _ = apply_refund(order(), "r1", 2_500)
    s2, changed = apply_refund(s, "r1", 2_500)
    assert not changed and s2 is s
    s3, changed = apply_refund(s, "r1", 9_999)  # same id, other amount: first wins
    assert not changed and s3.net_minor == 7_500


def test_refund_exceeding_net_floors_at_zero_and_removes_flat() -> None:
    s, _ = apply_refund(order(), "r1", 6_000)
    s, _ = apply_refund(s, "r2", 6_000)
    assert s.refunds_total_minor == 12_000
    assert s.net_minor == 0
    assert s.commission_minor == 0
    assert s.reversed_minor == 1_050  # the flat goes with the last unit of net


def test_full_refund_of_discounted_order() -> None:
    s, _ = apply_refund(order(gross=10_000, discount=1_000), "r1", 9_000)
    assert s.net_minor == 0 and s.commission_minor == 0 and s.reversed_minor == 950


def test_apply_refund_does_not_mutate() -> None:
    s = order()
    s2, _ = apply_refund(s, "r1", 100)
    assert dict(s.refunds) == {} and dict(s2.refunds) == {"r1": 100}
    with pytest.raises(TypeError):
        s2.refunds["r2"] = 1  # type: ignore[index]


def test_refunds_dict_is_copied() -> None:
    raw = {"r1": 100}
    s = OrderState("b1", "o1", "USD", T0, 1000, 0, refunds=raw)
    raw["r2"] = 200
    assert s.refunds_total_minor == 100


def test_apply_refund_rejects_negative() -> None:
    with pytest.raises(ValueError):
        apply_refund(order(), "r1", -1)
    with pytest.raises(ValueError):
        OrderState("b1", "o1", "USD", T0, 1000, 0, refunds={"r": -5})


def test_zero_refund_is_recorded_but_changes_nothing() -> None:
    s, changed = apply_refund(order(), "r0", 0)
    assert changed and s.commission_minor == order().commission_minor


def test_unattributed_order_earns_nothing() -> None:
    s = order(attribution=UNATTRIBUTED, terms=None)
    assert s.commission_minor == 0 and s.net_minor == 10_000
    s, _ = apply_refund(s, "r1", 100)
    assert s.reversed_minor == 0 and s.net_minor == 9_900


def test_campaignless_attribution_earns_nothing() -> None:
    s = order(attribution=Attribution("click", "cr1", None, "s1", "c1"), terms=None)
    assert s.commission_minor == 0


def test_terms_must_match_attribution_and_brand() -> None:
    with pytest.raises(ValueError):
        order(attribution=Attribution("coupon", "cr1", "other"))
    with pytest.raises(ValueError):
        order(terms=CampaignTerms("cmp1", "b2", 100, 0))


def test_naive_time_rejected() -> None:
    with pytest.raises(ValueError):
        OrderState("b1", "o1", "USD", datetime(2026, 1, 1), 1, 0)


# --- properties --------------------------------------------------------------------------------


def test_random_commission_invariants() -> None:
    rng = random.Random(4242)
    for _ in range(3000):
        gross = rng.randint(0, 10**7)
        discount = rng.randint(0, gross + 1000)
        terms = CampaignTerms("cmp1", "b1", rng.randint(0, 10_000), rng.randint(0, 500))
        base = order(gross, discount, terms=terms)
        refunds = [(f"r{i}", rng.randint(0, max(1, gross // 3))) for i in range(rng.randint(0, 6))]
        # duplicates delivered again
        deliveries = refunds + [rng.choice(refunds) for _ in range(rng.randint(0, 3))] if refunds else []

        def run(seq: list[tuple[str, int]], base: OrderState = base) -> OrderState:
            s = base
            for rid, amt in seq:
                s, _ = apply_refund(s, rid, amt)
            return s

        a = run(deliveries)
        shuffled = deliveries[:]
        rng.shuffle(shuffled)
        b = run(shuffled)
        # order-independent, duplicates count once
        assert a.refunds_total_minor == b.refunds_total_minor == sum(amt for _, amt in refunds)
        assert a.commission_minor == b.commission_minor
        # never negative, never above the original; reversed consistent
        assert 0 <= a.net_minor <= base.net_minor
        assert 0 <= a.commission_minor <= base.commission_minor
        assert a.reversed_minor == base.commission_minor - a.commission_minor >= 0
        # integer floor matches exact rational floor
        n = a.net_minor
        expected = (n * terms.rate_bps) // 10000 + (terms.flat_minor if n > 0 else 0)
        assert a.commission_minor == expected


def test_commission_monotone_in_net() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        rate, flat = rng.randint(0, 10_000), rng.randint(0, 100)
        n1 = rng.randint(0, 10**6)
        n2 = n1 + rng.randint(0, 10**4)
        assert commission_minor(n1, rate, flat) <= commission_minor(n2, rate, flat)
