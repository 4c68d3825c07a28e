from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from liveledger.domain.attribution import (
    DEFAULT_ATTRIBUTION_WINDOW_DAYS,
    UNATTRIBUTED,
    Attribution,
    CampaignTerms,
    ClickFact,
    CouponLink,
    attribute,
    attribution_rank,
    click_in_window,
    require_utc,
    should_reattribute,
)

T0 = datetime(2026, 11, 25, 20, 0, 0, tzinfo=UTC)
CMP = CampaignTerms("cmp1", "b1", rate_bps=1000, flat_minor=50, attribution_window_days=7)
CMP_COUPON = CampaignTerms("cmp2", "b1", rate_bps=500, flat_minor=0)
CMP_OTHER_BRAND = CampaignTerms("cmpX", "b2", rate_bps=500, flat_minor=0)
CAMPAIGNS = {c.campaign_id: c for c in (CMP, CMP_COUPON, CMP_OTHER_BRAND)}


def lookup(campaign_id: str) -> CampaignTerms | None:
    return CAMPAIGNS.get(campaign_id)


def click(
    at: datetime = T0,
    *,
    brand: str = "b1",
    campaign: str | None = "cmp1",
    creator: str = "cr1",
    stream: str | None = "s1",
) -> ClickFact:
    return ClickFact("c1", brand, creator, campaign, stream, "p1", at)


COUPON = CouponLink("b1", "SAVE10", "cr2", "cmp2", "lnk2", None)


def test_click_attributes_order() -> None:
    a = attribute("b1", T0 + timedelta(hours=1), click(), None, lookup)
    assert a == Attribution("click", "cr1", "cmp1", "s1", "c1")
    assert a.attributed


def test_click_at_same_instant_as_order_attributes() -> None:
    assert attribute("b1", T0, click(T0), None, lookup).kind == "click"


def test_window_boundary_exactly_n_days_is_inside() -> None:
    order = T0 + timedelta(days=7)
    assert attribute("b1", order, click(T0), None, lookup).kind == "click"


def test_window_boundary_n_days_plus_1ms_is_outside() -> None:
    order = T0 + timedelta(days=7, milliseconds=1)
    assert attribute("b1", order, click(T0), None, lookup) == UNATTRIBUTED


def test_window_boundary_falls_back_to_coupon() -> None:
    order = T0 + timedelta(days=7, milliseconds=1)
    a = attribute("b1", order, click(T0), COUPON, lookup)
    assert a == Attribution("coupon", "cr2", "cmp2", None, None)


def test_click_after_order_does_not_attribute_via_click() -> None:
    order = T0
    assert attribute("b1", order, click(T0 + timedelta(milliseconds=1)), None, lookup) == UNATTRIBUTED
    a = attribute("b1", order, click(T0 + timedelta(seconds=1)), COUPON, lookup)
    assert a.kind == "coupon"


def test_other_brands_click_is_ignored() -> None:
    assert attribute("b1", T0, click(brand="b2", campaign="cmpX"), None, lookup) == UNATTRIBUTED
    assert attribute("b1", T0, click(brand="b2"), COUPON, lookup).kind == "coupon"


def test_coupon_of_another_brand_is_ignored() -> None:
    other = CouponLink("b2", "SAVE10", "cr9", "cmpX", "lnk9", None)
    assert attribute("b1", T0, None, other, lookup) == UNATTRIBUTED


def test_click_beats_coupon() -> None:
    assert attribute("b1", T0, click(), COUPON, lookup).kind == "click"


def test_no_click_no_coupon_is_unattributed() -> None:
    assert attribute("b1", T0, None, None, lookup) == UNATTRIBUTED
    assert not UNATTRIBUTED.attributed


def test_coupon_keeps_link_stream() -> None:
    link = CouponLink("b1", "LIVE", "cr2", "cmp2", "lnk3", "s7")
    assert attribute("b1", T0, None, link, lookup).stream_id == "s7"


def test_click_without_campaign_attributes_creator_without_campaign() -> None:
    c = click(campaign=None)
    a = attribute("b1", T0 + timedelta(days=DEFAULT_ATTRIBUTION_WINDOW_DAYS), c, COUPON, lookup)
    assert a == Attribution("click", "cr1", None, "s1", "c1")


def test_click_without_campaign_uses_default_window() -> None:
    c = click(campaign=None)
    late = T0 + timedelta(days=DEFAULT_ATTRIBUTION_WINDOW_DAYS, milliseconds=1)
    assert attribute("b1", late, c, COUPON, lookup).kind == "coupon"


def test_click_with_unknown_campaign_is_campaignless() -> None:
    a = attribute("b1", T0, click(campaign="nope"), None, lookup)
    assert a == Attribution("click", "cr1", None, "s1", "c1")


def test_click_with_other_brands_campaign_is_campaignless() -> None:
    a = attribute("b1", T0, click(campaign="cmpX"), None, lookup)
    assert a.kind == "click" and a.campaign_id is None


def test_coupon_with_unknown_campaign_keeps_creator_without_campaign() -> None:
    link = CouponLink("b1", "X", "cr2", "gone", "lnk", None)
    assert attribute("b1", T0, None, link, lookup) == Attribution("coupon", "cr2", None, None, None)


def test_zero_day_window_only_same_instant() -> None:
    terms = CampaignTerms("z", "b1", 100, 0, attribution_window_days=0)
    c = click(campaign="z")
    assert attribute("b1", T0, c, None, lambda _: terms).kind == "click"
    assert attribute("b1", T0 + timedelta(microseconds=1), c, None, lambda _: terms).kind == "none"


def test_non_utc_offsets_are_rejected() -> None:
    cet = timezone(timedelta(hours=1))
    with pytest.raises(ValueError):
        attribute("b1", datetime(2026, 1, 1, tzinfo=cet), None, None, lookup)
    with pytest.raises(ValueError):
        attribute("b1", datetime(2026, 1, 1), None, None, lookup)
    with pytest.raises(ValueError):
        click(datetime(2026, 1, 1))
    assert require_utc(T0) is T0


def test_click_in_window_helper() -> None:
    assert click_in_window(T0, T0 + timedelta(days=30), 30)
    assert not click_in_window(T0, T0 + timedelta(days=30, microseconds=1), 30)
    assert not click_in_window(T0 + timedelta(microseconds=1), T0, 30)


def test_attribution_invariants() -> None:
    with pytest.raises(ValueError):
        Attribution("none", creator_id="cr1")
    with pytest.raises(ValueError):
        Attribution("click", creator_id=None, click_id="c1")
    with pytest.raises(ValueError):
        Attribution("click", creator_id="cr1")
    with pytest.raises(ValueError):
        Attribution("coupon", creator_id="cr1", click_id="c1")


def test_campaign_terms_validation() -> None:
    with pytest.raises(ValueError):
        CampaignTerms("c", "b", rate_bps=-1, flat_minor=0)
    with pytest.raises(ValueError):
        CampaignTerms("c", "b", rate_bps=1, flat_minor=0, hold_days=-1)
    with pytest.raises(ValueError):
        CampaignTerms("c", "b", rate_bps=True, flat_minor=0)
    t = CampaignTerms("c", "b", 1, 0)
    assert (t.attribution_window_days, t.hold_days, t.min_payout_minor) == (30, 30, 5000)


COUPON_ATTR = Attribution("coupon", "cr2", "cmp2")
CLICK_ATTR = Attribution("click", "cr1", "cmp1", "s1", "c1")


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (UNATTRIBUTED, COUPON_ATTR, True),
        (UNATTRIBUTED, CLICK_ATTR, True),
        (COUPON_ATTR, CLICK_ATTR, True),
        (CLICK_ATTR, COUPON_ATTR, False),
        (CLICK_ATTR, UNATTRIBUTED, False),
        (COUPON_ATTR, UNATTRIBUTED, False),
        (CLICK_ATTR, Attribution("click", "cr9", "cmp1", "s2", "c9"), False),
        (COUPON_ATTR, Attribution("coupon", "cr3", "cmp2"), False),
        (UNATTRIBUTED, UNATTRIBUTED, False),
        (CLICK_ATTR, CLICK_ATTR, False),
    ],
)
def test_should_reattribute(current: Attribution, new: Attribution, expected: bool) -> None:
    assert should_reattribute(current, new) is expected


def test_late_click_upgrades_coupon_order() -> None:
    order_time = T0 + timedelta(hours=2)
    first = attribute("b1", order_time, None, COUPON, lookup)  # click not seen yet
    assert first.kind == "coupon"
    later = attribute("b1", order_time, click(T0), COUPON, lookup)  # the click arrives late
    assert should_reattribute(first, later)
    assert later.creator_id == "cr1"


def test_late_click_outside_window_keeps_coupon() -> None:
    order_time = T0 + timedelta(days=8)
    first = attribute("b1", order_time, None, COUPON, lookup)
    later = attribute("b1", order_time, click(T0), COUPON, lookup)
    assert not should_reattribute(first, later)


def test_rank_is_total_order() -> None:
    assert attribution_rank(UNATTRIBUTED) < attribution_rank(COUPON_ATTR) < attribution_rank(CLICK_ATTR)


def test_random_attribution_properties() -> None:
    rng = random.Random(6)
    for _ in range(2000):
        window = rng.randint(0, 40)
        terms = CampaignTerms("cmp", "b1", rng.randint(0, 3000), rng.randint(0, 100), window)
        order_time = T0 + timedelta(milliseconds=rng.randint(-(10**9), 10**9))
        offset = timedelta(milliseconds=rng.randint(-(10**8), 45 * 86_400_000))
        c = ClickFact("c", rng.choice(["b1", "b2"]), "cr", "cmp", None, None, order_time - offset)
        link = rng.choice([None, CouponLink(rng.choice(["b1", "b2"]), "K", "crk", "cmp", "l", None)])
        fixed: dict[str, CampaignTerms] = {"cmp": terms}
        a = attribute("b1", order_time, c, link, fixed.get)
        in_window = c.brand_id == "b1" and timedelta(0) <= offset <= timedelta(days=window)
        if in_window:
            assert a.kind == "click"
        elif link is not None and link.brand_id == "b1":
            assert a.kind == "coupon"
        else:
            assert a == UNATTRIBUTED
        # attribution with the click is never worse than without it
        assert attribution_rank(a) >= attribution_rank(attribute("b1", order_time, None, link, fixed.get))
