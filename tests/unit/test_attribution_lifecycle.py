"""Setup lifecycle rules, pure (docs/setup.md "Lifecycle"): ended and paused campaigns, deactivated
links, frozen terms; the helpers ingest calls (webhook secrets in their overlap, whether a redirect
is a click); campaign PATCH transitions; the audit view never shows a secret."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from liveledger.domain.attribution import (
    UNATTRIBUTED,
    Attribution,
    CampaignTerms,
    ClickFact,
    CouponLink,
    Pause,
    attribute,
)
from liveledger.setup_state import (
    SetupState,
    campaign_terms,
    hash_key,
    link_redirect_counts,
    webhook_secrets,
)
from schemas.setup import (
    MAX_PAUSES,
    ApiKey,
    Brand,
    Campaign,
    CampaignPatch,
    Link,
    encode_setup,
    public_view,
)
from schemas.time import to_ms
from streams import ledger

T0 = datetime(2026, 11, 25, 20, 0, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
H = timedelta(hours=1)


def terms(**kw: Any) -> CampaignTerms:
    return CampaignTerms("cmp1", "b1", rate_bps=1000, flat_minor=0, **kw)


def click(at: datetime = T0, campaign: str | None = "cmp1") -> ClickFact:
    return ClickFact("c1", "b1", "cr1", campaign, "s1", "p1", at)


def coupon(deactivated_at: datetime | None = None, campaign: str = "cmp2") -> CouponLink:
    return CouponLink("b1", "SAVE10", "cr2", campaign, "lnk2", None, deactivated_at)


def lookup(*campaigns: CampaignTerms) -> Any:
    by_id = {c.campaign_id: c for c in campaigns}
    return by_id.get


OPEN_COUPON_CAMPAIGN = CampaignTerms("cmp2", "b1", rate_bps=500, flat_minor=0)


# --- the domain rules ------------------------------------------------------------------------------

def test_ended_campaign_click_attributes_only_orders_before_the_end() -> None:
    ended = terms(ends_at=T0 + 2 * H)
    before_end = attribute("b1", T0 + 2 * H - MS, click(), None, lookup(ended))
    assert before_end == Attribution("click", "cr1", "cmp1", "s1", "c1")
    assert attribute("b1", T0 + 2 * H, click(), None, lookup(ended)) == UNATTRIBUTED  # ends_at itself is closed
    assert attribute("b1", T0 + 3 * H, click(), None, lookup(ended)) == UNATTRIBUTED


def test_ended_campaigns_click_falls_through_to_an_open_coupon() -> None:
    ended = terms(ends_at=T0 + H)
    a = attribute("b1", T0 + 2 * H, click(), coupon(), lookup(ended, OPEN_COUPON_CAMPAIGN))
    assert a == Attribution("coupon", "cr2", "cmp2", None, None)


def test_ended_campaigns_coupon_attributes_only_orders_placed_before_the_end() -> None:
    ended = CampaignTerms("cmp2", "b1", rate_bps=500, flat_minor=0, ends_at=T0)
    assert attribute("b1", T0 - MS, None, coupon(), lookup(ended)).kind == "coupon"
    assert attribute("b1", T0, None, coupon(), lookup(ended)) == UNATTRIBUTED


def test_paused_campaign_attributes_nothing_placed_during_the_pause() -> None:
    paused = terms(pauses=(Pause(T0 + H, T0 + 3 * H),))
    assert attribute("b1", T0 + H - MS, click(), None, lookup(paused)).kind == "click"
    assert attribute("b1", T0 + H, click(), None, lookup(paused)) == UNATTRIBUTED
    assert attribute("b1", T0 + 3 * H - MS, click(), None, lookup(paused)) == UNATTRIBUTED
    # after re-activation a click from before the pause attributes again (inside its window) ...
    assert attribute("b1", T0 + 3 * H, click(), None, lookup(paused)).kind == "click"
    # ... but a click made while paused never does (ingest emits none; an events-API click is refused here)
    assert attribute("b1", T0 + 4 * H, click(T0 + 2 * H), None, lookup(paused)) == UNATTRIBUTED


def test_open_pause_closes_for_clicks_and_coupons_from_its_start() -> None:
    paused = terms(pauses=(Pause(T0 + H),))
    coupon_paused = CampaignTerms("cmp2", "b1", rate_bps=500, flat_minor=0, pauses=(Pause(T0 + H),))
    assert attribute("b1", T0 + 30 * 24 * H, click(T0 + 2 * H), None, lookup(paused)) == UNATTRIBUTED
    assert attribute("b1", T0 + H - MS, None, coupon(), lookup(coupon_paused)).kind == "coupon"
    assert attribute("b1", T0 + H, None, coupon(), lookup(coupon_paused)) == UNATTRIBUTED


def test_deactivated_links_coupon_attributes_only_orders_placed_before() -> None:
    link = coupon(deactivated_at=T0)
    assert attribute("b1", T0 - MS, None, link, lookup(OPEN_COUPON_CAMPAIGN)).kind == "coupon"
    assert attribute("b1", T0, None, link, lookup(OPEN_COUPON_CAMPAIGN)) == UNATTRIBUTED
    # a click still wins for a later order (the link's earlier clicks are the creator's)
    assert attribute("b1", T0 + H, click(), link, lookup(terms(), OPEN_COUPON_CAMPAIGN)).kind == "click"


def test_lifecycle_values_are_checked() -> None:
    with pytest.raises(ValueError):
        Pause(T0, T0 - MS)
    with pytest.raises(ValueError):
        Pause(datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        terms(ends_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        coupon(deactivated_at=datetime(2026, 1, 1))
    assert terms().open_at(T0) and not terms(ends_at=T0).open_at(T0)


# --- stored records -> rules (what the ledger worker and ingest read) -------------------------------

def state_with(*records: tuple[str, Any]) -> SetupState:
    state = SetupState()
    for ident, entity in records:
        state.apply(*encode_setup(ident, entity))
    return state


CAMPAIGN = Campaign(campaign_id="cmp1", brand_id="b1", rate_bps=1000)
LINK = Link(creator_id="cr1", campaign_id="cmp1", destination_url="https://shop.example/p", coupon_code="save10",
            link_code="L1", brand_id="b1")


def ledger_attr(state: SetupState, at: datetime, coupon_code: str | None = "SAVE10",
                click_at: datetime | None = None) -> dict[str, Any]:
    order = {"brand_id": "b1", "order_id": "o1", "click_id": "c1" if click_at else None,
             "coupon_code": coupon_code, "occurred_ms": to_ms(at)}
    clk = ({"creator_id": "cr1", "campaign_id": "cmp1", "stream_id": None, "product_id": None,
            "link_code": "L1", "occurred_ms": to_ms(click_at)} if click_at else None)
    return ledger.attribute(order, clk, state)


def test_ledger_freezes_terms_and_applies_the_lifecycle_of_the_stored_records() -> None:
    state = state_with(("cmp1", CAMPAIGN), ("L1", LINK))
    first = ledger_attr(state, T0)
    assert (first["via"], first["rate_bps"]) == ("coupon", 1000)
    # PATCH rate: orders attributed after the change get the new terms; the first keeps its own
    state.apply(*encode_setup("cmp1", CampaignPatch(rate_bps=250).apply(Campaign.model_validate(
        state.campaigns["cmp1"]), T0)))
    assert ledger_attr(state, T0 + H)["rate_bps"] == 250 and first["rate_bps"] == 1000
    # deactivate the link at T0 + 2h: its coupon stops at that instant
    state.apply(*encode_setup("L1", LINK.model_copy(update={"deactivated_at": T0 + 2 * H})))
    assert ledger_attr(state, T0 + 2 * H - MS)["via"] == "coupon"
    assert ledger_attr(state, T0 + 2 * H)["via"] is None
    # a click on the campaign still attributes until the campaign ends
    assert ledger_attr(state, T0 + 3 * H, click_at=T0 + H)["via"] == "click"
    ended = Campaign.model_validate(state.campaigns["cmp1"] | {"ends_at": T0 + 3 * H})
    state.apply(*encode_setup("cmp1", ended))
    assert ledger_attr(state, T0 + 3 * H, click_at=T0 + H)["via"] is None


def test_paused_record_closes_from_paused_at_and_keeps_past_pauses() -> None:
    paused = CampaignPatch(active=False).apply(CAMPAIGN, T0 + H)
    assert (paused.active, paused.paused_at) == (False, T0 + H)
    t = campaign_terms("cmp1", paused.model_dump())
    assert t is not None and t.open_at(T0 + H - MS) and not t.open_at(T0 + 100 * H)
    resumed = CampaignPatch(active=True).apply(paused, T0 + 2 * H)
    assert (resumed.active, resumed.paused_at) == (True, None)
    assert [(p.paused_at, p.resumed_at) for p in resumed.pauses] == [(T0 + H, T0 + 2 * H)]
    t = campaign_terms("cmp1", resumed.model_dump())
    assert t is not None and not t.open_at(T0 + H) and t.open_at(T0 + 2 * H)
    # setting active to what it is changes nothing; the list of pauses is bounded
    assert CampaignPatch(active=True).apply(resumed, T0 + 3 * H) == resumed
    many = CAMPAIGN
    for i in range(MAX_PAUSES + 5):
        many = CampaignPatch(active=True).apply(CampaignPatch(active=False).apply(many, T0 + i * H), T0 + i * H + MS)
    assert len(many.pauses) == MAX_PAUSES and many.pauses[-1].paused_at == T0 + (MAX_PAUSES + 4) * H
    # an inactive record without paused_at (not written by the API) is closed throughout
    legacy = campaign_terms("cmp1", CAMPAIGN.model_dump() | {"active": False})
    assert legacy is not None and not legacy.open_at(T0)


def test_old_records_decode_with_lifecycle_defaults() -> None:
    state = SetupState()
    state.apply(b"campaign:cmp1", b'{"campaign_id":"cmp1","brand_id":"b1","rate_bps":10}')
    state.apply(b"brand:b1", b'{"brand_id":"b1","name":"B","currency":"USD","webhook_secret":"whsec_0123456789abcdef"}')
    state.apply(b"apikey:ab", b'{"role":"brand","brand_id":"b1"}')
    assert state.campaigns["cmp1"]["active"] is True and state.campaigns["cmp1"]["ends_at"] is None
    assert webhook_secrets(state.brands["b1"], T0) == ["whsec_0123456789abcdef"]
    assert state.keys["ab"].key_id is None and state.keys["ab"].label == "brand:b1"


# --- helpers for ingest ---------------------------------------------------------------------------

def test_webhook_secrets_include_the_previous_one_only_within_its_overlap() -> None:
    brand = Brand(brand_id="b1", name="B", currency="USD", webhook_secret="whsec_new_0123456789",
                  previous_webhook_secret="whsec_old_0123456789", previous_secret_expires_at=T0 + 24 * H)
    row = state_with(("b1", brand)).brands["b1"]
    assert webhook_secrets(row, T0) == ["whsec_new_0123456789", "whsec_old_0123456789"]
    assert webhook_secrets(row, T0 + 24 * H - MS) == ["whsec_new_0123456789", "whsec_old_0123456789"]
    assert webhook_secrets(row, T0 + 24 * H) == ["whsec_new_0123456789"]


def test_link_redirect_counts_unless_deactivated_ended_or_paused() -> None:
    state = state_with(("cmp1", CAMPAIGN), ("L1", LINK))
    assert link_redirect_counts(state, state.links["L1"], T0)
    state.apply(*encode_setup("cmp1", CAMPAIGN.model_copy(update={"ends_at": T0 + H})))
    assert link_redirect_counts(state, state.links["L1"], T0 + H - MS)
    assert not link_redirect_counts(state, state.links["L1"], T0 + H)
    state.apply(*encode_setup("cmp1", CampaignPatch(active=False).apply(CAMPAIGN, T0)))
    assert not link_redirect_counts(state, state.links["L1"], T0)
    state.apply(*encode_setup("cmp1", CAMPAIGN))
    state.apply(*encode_setup("L1", LINK.model_copy(update={"deactivated_at": T0})))
    assert not link_redirect_counts(state, state.links["L1"], T0)
    unknown_campaign = LINK.model_dump() | {"campaign_id": "gone"}
    assert link_redirect_counts(state, unknown_campaign, T0)


def test_key_digests_find_a_principals_keys() -> None:
    state = state_with(("d1", ApiKey(role="brand", brand_id="b1", key_id="key-1")),
                       ("d2", ApiKey(role="brand", brand_id="b1")),
                       ("d3", ApiKey(role="brand", brand_id="b2")),
                       ("d4", ApiKey(role="creator", creator_id="b1")))
    assert state.key_digests("brand", "b1") == ["d1", "d2"]
    assert state.key_digests("creator", "b1") == ["d4"]
    assert state.keys["d1"].label == "brand:b1/key-1"


def test_public_view_strips_secrets() -> None:
    brand = Brand(brand_id="b1", name="B", currency="USD", webhook_secret="whsec_new_0123456789",
                  previous_webhook_secret="whsec_old_0123456789", previous_secret_expires_at=T0)
    view = public_view(brand)
    assert view == {"brand_id": "b1", "name": "B", "currency": "USD",
                    "previous_secret_expires_at": "2026-11-25T20:00:00.000Z"}
    key = ApiKey(role="brand", brand_id="b1", key_id="key-1")
    assert "whsec" not in str(view) and hash_key("x") not in str(public_view(key))


@pytest.mark.parametrize("body", [{}, {"rate_bps": None}, {"active": None}, {"rate_bps": 10_001},
                                  {"hold_days": -1}, {"ends_at": "2026-11-25"}, {"ends_at": "1999-12-31T00:00:00Z"},
                                  {"ends_at": "9999-12-31T23:59:59-01:00"}, {"ends_at": "0001-01-01T00:00:00+01:00"},
                                  {"active": "false"}, {"attribution_window_days": 3}, {"rate_bps": 1.5}])
def test_campaign_patch_refuses_bad_bodies(body: dict[str, Any]) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        CampaignPatch.model_validate(body)
