"""Order attribution: which creator and campaign (if any) an order is credited to.

Pure and I/O free. The caller looks up the order's click (by ``click_id``) and the coupon link (by
``(brand_id, coupon_code)``) and passes what it found; this module only decides.

Rules (docs/money-rules.md has the reasoning):

1. **Click**: the click exists, belongs to the order's brand, happened at or before the order, and
   ``order_time - click_time <= attribution_window_days`` of the click's campaign (exactly N days
   is inside the window). A click whose campaign is absent, unknown or of another brand uses
   ``DEFAULT_ATTRIBUTION_WINDOW_DAYS`` and attributes the order to the click's creator with no
   campaign, hence no commission (the stream dashboard and the creator still see the order).
2. **Coupon**: else the link holding the order's coupon code, when it belongs to the same brand and
   was not deactivated at or before the order's time (``CouponLink.deactivated_at``).
3. **None**: else unattributed (brand sales only, no commission).

Campaign lifecycle (:meth:`CampaignTerms.open_at`): a campaign is *closed* at and after its
``ends_at`` and during each of its pauses (``paused_at <= t < resumed_at``; an open pause has no
end). A click of a known campaign attributes only when the campaign was open both when the click
happened and when the order was placed; a coupon of a known campaign only when the campaign was
open when the order was placed. A rule that does not apply falls through to the next one (a closed
campaign's click leaves the order to a coupon, else to none).

Precedence for late arrivals is click > coupon > none: a click that arrives after its order can
upgrade a coupon or unattributed order; once attributed by click, an order keeps it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = [
    "DEFAULT_ATTRIBUTION_WINDOW_DAYS",
    "DEFAULT_HOLD_DAYS",
    "DEFAULT_MIN_PAYOUT_MINOR",
    "UNATTRIBUTED",
    "Attribution",
    "AttributionKind",
    "CampaignLookup",
    "CampaignTerms",
    "ClickFact",
    "CouponLink",
    "Pause",
    "attribute",
    "attribution_rank",
    "click_in_window",
    "outranks",
    "require_utc",
    "should_reattribute",
]

DEFAULT_ATTRIBUTION_WINDOW_DAYS = 30
DEFAULT_HOLD_DAYS = 30
DEFAULT_MIN_PAYOUT_MINOR = 5000

AttributionKind = Literal["click", "coupon", "none"]


def require_utc(value: datetime, name: str = "datetime") -> datetime:
    """Return ``value`` if it is timezone-aware with a zero UTC offset, else raise ``ValueError``."""
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    if offset != timedelta(0):
        raise ValueError(f"{name} must be in UTC, got offset {offset}")
    return value


@dataclass(frozen=True, slots=True)
class ClickFact:
    """A click as ingest enriched it (``click_id`` is the click event's ``event_id``)."""

    click_id: str
    brand_id: str
    creator_id: str
    campaign_id: str | None
    stream_id: str | None
    product_id: str | None
    occurred_at: datetime

    def __post_init__(self) -> None:
        require_utc(self.occurred_at, "ClickFact.occurred_at")


@dataclass(frozen=True, slots=True)
class CouponLink:
    """A tracking link that holds a coupon code (unique per brand). ``deactivated_at``: when the
    link was deactivated (its coupon attributes only orders placed before that instant)."""

    brand_id: str
    coupon_code: str
    creator_id: str
    campaign_id: str
    link_code: str
    stream_id: str | None = None
    deactivated_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.deactivated_at is not None:
            require_utc(self.deactivated_at, "CouponLink.deactivated_at")

    def active_at(self, t: datetime) -> bool:
        """True when the link was not yet deactivated at ``t``."""
        return self.deactivated_at is None or t < self.deactivated_at


@dataclass(frozen=True, slots=True)
class Pause:
    """A time a campaign was inactive: ``start <= t < end`` (``end`` ``None``: still paused)."""

    start: datetime
    end: datetime | None = None

    def __post_init__(self) -> None:
        require_utc(self.start, "Pause.start")
        if self.end is not None and require_utc(self.end, "Pause.end") < self.start:
            raise ValueError(f"a pause ends before it starts: {self.start} > {self.end}")

    def covers(self, t: datetime) -> bool:
        return self.start <= t and (self.end is None or t < self.end)


@dataclass(frozen=True, slots=True)
class CampaignTerms:
    """The money terms of a campaign. All amounts are minor units of the order's currency."""

    campaign_id: str
    brand_id: str
    rate_bps: int
    flat_minor: int
    attribution_window_days: int = DEFAULT_ATTRIBUTION_WINDOW_DAYS
    hold_days: int = DEFAULT_HOLD_DAYS
    min_payout_minor: int = DEFAULT_MIN_PAYOUT_MINOR
    ends_at: datetime | None = None  # closed at and after this instant
    pauses: tuple[Pause, ...] = ()  # closed during each

    def __post_init__(self) -> None:
        for name in ("rate_bps", "flat_minor", "attribution_window_days", "hold_days", "min_payout_minor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"CampaignTerms.{name} must be a non-negative int, got {value!r}")
        if self.ends_at is not None:
            require_utc(self.ends_at, "CampaignTerms.ends_at")

    def open_at(self, t: datetime) -> bool:
        """True when the campaign runs at ``t``: before ``ends_at`` and in none of its pauses."""
        require_utc(t, "t")
        if self.ends_at is not None and t >= self.ends_at:
            return False
        return not any(p.covers(t) for p in self.pauses)


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who an order is credited to. ``kind == "none"`` has every other field ``None``.

    ``campaign_id`` is ``None`` when the order is credited to a creator without (known) campaign
    terms; such an order earns no commission.
    """

    kind: AttributionKind
    creator_id: str | None = None
    campaign_id: str | None = None
    stream_id: str | None = None
    click_id: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "none":
            if any(v is not None for v in (self.creator_id, self.campaign_id, self.stream_id, self.click_id)):
                raise ValueError("an unattributed Attribution carries no creator/campaign/stream/click")
        elif self.creator_id is None:
            raise ValueError(f"a {self.kind!r} Attribution needs a creator_id")
        if self.kind == "click" and self.click_id is None:
            raise ValueError("a click Attribution needs a click_id")
        if self.kind == "coupon" and self.click_id is not None:
            raise ValueError("a coupon Attribution has no click_id")

    @property
    def attributed(self) -> bool:
        return self.kind != "none"


UNATTRIBUTED = Attribution(kind="none")

CampaignLookup = Callable[[str], CampaignTerms | None]


def _terms_for(campaign_id: str | None, brand_id: str, campaign_for: CampaignLookup) -> CampaignTerms | None:
    """The campaign's terms when it exists and belongs to ``brand_id``; else ``None``."""
    if campaign_id is None:
        return None
    terms = campaign_for(campaign_id)
    if terms is None or terms.brand_id != brand_id or terms.campaign_id != campaign_id:
        return None
    return terms


def click_in_window(click_time: datetime, order_time: datetime, window_days: int) -> bool:
    """True when the click is at or before the order and at most ``window_days`` before it."""
    require_utc(click_time, "click_time")
    require_utc(order_time, "order_time")
    return click_time <= order_time and order_time - click_time <= timedelta(days=window_days)


def attribute(
    order_brand_id: str,
    order_time: datetime,
    click: ClickFact | None,
    coupon_link: CouponLink | None,
    campaign_for: CampaignLookup,
) -> Attribution:
    """Decide an order's attribution (see the module docstring for the rules)."""
    require_utc(order_time, "order_time")
    if click is not None and click.brand_id == order_brand_id:
        terms = _terms_for(click.campaign_id, order_brand_id, campaign_for)
        window = terms.attribution_window_days if terms is not None else DEFAULT_ATTRIBUTION_WINDOW_DAYS
        open_ = terms is None or (terms.open_at(click.occurred_at) and terms.open_at(order_time))
        if open_ and click_in_window(click.occurred_at, order_time, window):
            return Attribution(
                kind="click",
                creator_id=click.creator_id,
                campaign_id=terms.campaign_id if terms is not None else None,
                stream_id=click.stream_id,
                click_id=click.click_id,
            )
    if coupon_link is not None and coupon_link.brand_id == order_brand_id and coupon_link.active_at(order_time):
        terms = _terms_for(coupon_link.campaign_id, order_brand_id, campaign_for)
        if terms is not None and not terms.open_at(order_time):
            return UNATTRIBUTED
        return Attribution(
            kind="coupon",
            creator_id=coupon_link.creator_id,
            campaign_id=terms.campaign_id if terms is not None else None,
            stream_id=coupon_link.stream_id,
            click_id=None,
        )
    return UNATTRIBUTED


_RANK: dict[AttributionKind, int] = {"none": 0, "coupon": 1, "click": 2}


def attribution_rank(attribution: Attribution) -> int:
    """Precedence of an attribution: click 2 > coupon 1 > none 0."""
    return _RANK[attribution.kind]


def should_reattribute(current: Attribution, new: Attribution) -> bool:
    """Whether a re-run of :func:`attribute` (e.g. a late click arrived) replaces ``current``.

    Only a strictly higher kind replaces the current one; a click attribution is final, and an
    equal kind never flips (no churn between two coupons or two clicks).
    """
    return outranks(new.kind, current.kind)


def outranks(new: AttributionKind, current: AttributionKind) -> bool:
    """:func:`should_reattribute` on the kinds alone (click > coupon > none, strictly)."""
    return _RANK[new] > _RANK[current]
