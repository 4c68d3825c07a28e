"""JSON-safe dicts for the domain state that Faust tables / ledger records carry.

``order_state_to_dict`` / ``order_state_from_dict`` round-trip exactly (times as RFC 3339 UTC
with microseconds and ``Z``; money as ints).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast

from liveledger.domain.attribution import Attribution, AttributionKind, CampaignTerms
from liveledger.domain.commission import OrderState

__all__ = [
    "attribution_from_dict",
    "attribution_to_dict",
    "format_utc",
    "order_state_from_dict",
    "order_state_to_dict",
    "terms_from_dict",
    "terms_to_dict",
]


def format_utc(value: datetime) -> str:
    """RFC 3339 in UTC with microseconds and ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(value: str) -> datetime:
    dt = datetime.fromisoformat(value)
    if dt.utcoffset() is None:
        raise ValueError(f"time without offset: {value!r}")
    return dt.astimezone(UTC)


def attribution_to_dict(a: Attribution) -> dict[str, Any]:
    return {
        "kind": a.kind,
        "creator_id": a.creator_id,
        "campaign_id": a.campaign_id,
        "stream_id": a.stream_id,
        "click_id": a.click_id,
    }


def attribution_from_dict(d: Mapping[str, Any]) -> Attribution:
    return Attribution(
        kind=cast(AttributionKind, d["kind"]),
        creator_id=d.get("creator_id"),
        campaign_id=d.get("campaign_id"),
        stream_id=d.get("stream_id"),
        click_id=d.get("click_id"),
    )


def terms_to_dict(t: CampaignTerms) -> dict[str, Any]:
    return {
        "campaign_id": t.campaign_id,
        "brand_id": t.brand_id,
        "rate_bps": t.rate_bps,
        "flat_minor": t.flat_minor,
        "attribution_window_days": t.attribution_window_days,
        "hold_days": t.hold_days,
        "min_payout_minor": t.min_payout_minor,
    }


def terms_from_dict(d: Mapping[str, Any]) -> CampaignTerms:
    return CampaignTerms(
        campaign_id=str(d["campaign_id"]),
        brand_id=str(d["brand_id"]),
        rate_bps=int(d["rate_bps"]),
        flat_minor=int(d["flat_minor"]),
        attribution_window_days=int(d["attribution_window_days"]),
        hold_days=int(d["hold_days"]),
        min_payout_minor=int(d["min_payout_minor"]),
    )


def order_state_to_dict(s: OrderState) -> dict[str, Any]:
    return {
        "brand_id": s.brand_id,
        "order_id": s.order_id,
        "currency": s.currency,
        "occurred_at": format_utc(s.occurred_at),
        "gross_items_minor": s.gross_items_minor,
        "discount_minor": s.discount_minor,
        "attribution": attribution_to_dict(s.attribution),
        "terms": terms_to_dict(s.terms) if s.terms is not None else None,
        "refunds": dict(sorted(s.refunds.items())),
    }


def order_state_from_dict(d: Mapping[str, Any]) -> OrderState:
    terms = d.get("terms")
    refunds = d.get("refunds") or {}
    return OrderState(
        brand_id=str(d["brand_id"]),
        order_id=str(d["order_id"]),
        currency=str(d["currency"]),
        occurred_at=_parse(str(d["occurred_at"])),
        gross_items_minor=int(d["gross_items_minor"]),
        discount_minor=int(d["discount_minor"]),
        attribution=attribution_from_dict(d["attribution"]),
        terms=terms_from_dict(terms) if terms is not None else None,
        refunds={str(k): int(v) for k, v in refunds.items()},
    )
