"""Reading endpoints (contract "Reading"): live stream JSON and SSE, creator earnings.

Tenancy (docs/api.md "Who may read what"):
- live / live events / live series: the stream's brand key, admin, finance. Another brand's (or an
  unknown) stream is ``404`` (existence is private); creator keys ``403``.
- earnings: the creator's own key, admin, finance. Another creator ``403``; brand keys ``403``;
  an unknown creator (admin/finance) ``404``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.auth import AuthPrincipal, principal_from_query_or_header, require_creator_view
from api.context import ctx_of
from api.earnings import KEYS as EARNINGS_KEYS
from api.earnings import creator_grouped, in_window
from api.params import EpochMs, parse_instant, parse_window
from api.stores import Ledger, LiveHub, LiveReader, complete_up_to
from liveledger.domain.status import EarningsTotals, earnings_grouped, totals_by_currency
from liveledger.errors import forbidden, not_found, unavailable
from liveledger.setup_state import Principal
from schemas.time import format_rfc3339

router = APIRouter(tags=["reading"])

KEEPALIVE_S = 15.0
REFRESH_S = 5.0  # viewers_now decays with time: re-read at least this often while connected


# --- response models (OpenAPI) ------------------------------------------------------------------

class Gmv(BaseModel):
    currency: str
    net_minor: int


class LineRevenue(BaseModel):
    currency: str
    amount_minor: int


class TopProduct(BaseModel):
    product_id: str
    clicks: int
    orders: int
    line_revenue: list[LineRevenue] = Field(
        description="Σ quantity x unit price of this product's lines in orders attributed through the "
                    "stream's clicks (before order-level discounts and refunds), per currency")


class LiveStream(BaseModel):
    stream_id: str
    viewers_now: int = Field(description="viewers whose last view action within 60 s was not `leave`")
    peak_viewers: int
    views: int = Field(description="`join` view actions")
    unique_viewers: int
    clicks: int
    add_to_carts: int
    orders: int = Field(description="orders attributed through a click of this stream")
    gmv: list[Gmv] = Field(description="net revenue of those orders, per currency")
    ctr: float = Field(description="clicks / views (0 when there are no views)")
    cvr: float = Field(description="orders / clicks (0 when there are no clicks)")
    top_products: list[TopProduct]
    updated_at: str | None = Field(description="last change of the live state (null: no events yet)")


class SeriesPoint(BaseModel):
    t: int = Field(description="bucket start, epoch milliseconds")
    viewers: int
    views: int
    clicks: int
    add_to_carts: int
    orders: int
    gmv: dict[str, int] = Field(description="currency -> cumulative net minor units")


class LiveSeries(BaseModel):
    stream_id: str
    interval_s: float
    points: list[SeriesPoint]


class Commission(BaseModel):
    pending: int
    approved: int
    paid: int
    reversed: int


class CurrencyEarnings(BaseModel):
    currency: str
    orders: int
    net_minor: int
    commission: Commission


class CampaignEarnings(CurrencyEarnings):
    campaign_id: str


class StreamEarnings(CurrencyEarnings):
    stream_id: str


class LinkEarnings(CurrencyEarnings):
    link_code: str


class DayEarnings(CurrencyEarnings):
    day: str = Field(description="the orders' day (UTC), YYYY-MM-DD")


class Earnings(BaseModel):
    creator_id: str
    from_: str | None = Field(alias="from", default=None)
    to: str | None = None
    as_of: str
    currencies: list[CurrencyEarnings]
    by_campaign: list[CampaignEarnings]
    by_stream: list[StreamEarnings]
    by_link: list[LinkEarnings] = Field(description="orders through a redirect click of the link, or its coupon")
    by_day: list[DayEarnings] = Field(description="by the orders' day (UTC), for the earnings chart")
    complete_up_to: str | None = Field(
        None, description="the finance watermark (GET /v1/finance/watermark): every event ingest acknowledged "
                          "before it is in these numbers; null while it is not known yet")


# --- helpers --------------------------------------------------------------------------------------

def _extra(request: Request, name: str) -> Any:
    value = ctx_of(request).extras.get(name)
    if value is None:
        raise unavailable(f"{name} reader is not configured")
    return value


def live_reader(request: Request) -> LiveReader:
    reader: LiveReader = _extra(request, "live")
    return reader


def ledger_of(request: Request) -> Ledger:
    ledger: Ledger = _extra(request, "ledger")
    return ledger


def iso_or_none(dt: datetime | None) -> str | None:
    return format_rfc3339(dt) if dt else None


async def visible_stream(request: Request, principal: Principal, stream_id: str) -> dict[str, Any]:
    """The stream's setup record when ``principal`` may see it (see module docstring)."""
    if principal.role == "creator":
        raise forbidden("live stream metrics are for the stream's brand, finance and admin")
    stream = await ctx_of(request).setup.lookup("streams", stream_id)
    if stream is None or (principal.role == "brand" and stream.get("brand_id") != principal.brand_id):
        raise not_found(f"no stream {stream_id!r}")
    return stream


# --- live -----------------------------------------------------------------------------------------

@router.get("/v1/streams/{stream_id}/live", response_model=LiveStream,
            summary="Live metrics of a stream (brand key of the stream's brand, finance, admin)")
async def get_live(stream_id: str, request: Request, principal: AuthPrincipal) -> dict[str, Any]:
    await visible_stream(request, principal, stream_id)
    return await live_reader(request).live(stream_id)


@router.get("/v1/streams/{stream_id}/live/series", response_model=LiveSeries,
            summary="Samples of viewers, funnel and revenue over the stream (for the dashboard charts)")
async def get_live_series(stream_id: str, request: Request, principal: AuthPrincipal,
                          since: Annotated[EpochMs, Query(ge=0, description="epoch ms; default: the last 6 h")] = 0,
                          ) -> dict[str, Any]:
    await visible_stream(request, principal, stream_id)
    reader = live_reader(request)
    start = since or int(time.time() * 1000) - 6 * 3600 * 1000
    sampler = ctx_of(request).extras.get("series")
    interval = float(getattr(sampler, "interval", 10.0))
    return {"stream_id": stream_id, "interval_s": interval, "points": await reader.series(stream_id, start)}


def sse_frame(data: dict[str, Any]) -> bytes:
    return b"event: live\ndata: " + orjson.dumps(data) + b"\n\n"


@router.get(
    "/v1/streams/{stream_id}/live/events",
    summary="The live metrics as Server-Sent Events (event `live`, pushed on change; `: keepalive` every 15 s)",
    description="Auth: `Authorization: Bearer <key>` or `?key=<key>` (browsers' EventSource cannot send "
                "headers). The first event is the current state; later ones follow each change.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
)
async def live_events(stream_id: str, request: Request,
                      key: Annotated[str | None, Query(description="API key (for EventSource)")] = None,
                      ) -> StreamingResponse:
    principal = await principal_from_query_or_header(request, key)
    await visible_stream(request, principal, stream_id)
    reader = live_reader(request)
    hub: LiveHub = _extra(request, "hub")

    async def stream() -> AsyncIterator[bytes]:
        async with hub.subscribe(stream_id) as changed:
            yield b"retry: 2000\n\n"
            last: dict[str, Any] | None = None
            last_write = time.monotonic()
            while True:
                current = await reader.live(stream_id)
                if current != last:
                    yield sse_frame(current)
                    last = current
                    last_write = time.monotonic()
                elif time.monotonic() - last_write >= KEEPALIVE_S:
                    yield b": keepalive\n\n"
                    last_write = time.monotonic()
                wait = min(REFRESH_S, max(0.05, KEEPALIVE_S - (time.monotonic() - last_write)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.get(), timeout=wait)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


# --- earnings -------------------------------------------------------------------------------------

def _row(t: EarningsTotals) -> dict[str, Any]:
    return {"currency": t.currency, "orders": t.orders, "net_minor": t.net_minor,
            "commission": t.commission.as_dict()}


def _grouped(grouped: Mapping[tuple[Any, str], EarningsTotals], name: str) -> list[dict[str, Any]]:
    rows = [{name: k, **_row(t)} for (k, _cur), t in grouped.items() if k is not None]
    rows.sort(key=lambda r: (str(r[name]), str(r["currency"])))
    return rows


async def creator_earnings(ledger: Ledger, creator_id: str, since: datetime | None, until: datetime | None,
                           as_of: datetime) -> dict[str, Any]:
    """Earnings of one creator: the per-creator summary for closed months plus the rest aggregated
    by ClickHouse (api/earnings.py), equal to :func:`creator_earnings_scan`."""
    grouped = await creator_grouped(ledger, creator_id, since, until, as_of)
    return _earnings_body(grouped, creator_id, since, until, as_of)


async def creator_earnings_scan(ledger: Ledger, creator_id: str, since: datetime | None, until: datetime | None,
                                as_of: datetime) -> dict[str, Any]:
    """Earnings of one creator from every one of its ledger orders, with the status rules of
    ``liveledger.domain.status`` (the reference the summary path is tested and benchmarked against)."""
    orders, items = await asyncio.gather(ledger.creator_orders(creator_id), ledger.creator_paid_items(creator_id))

    states, items = in_window(orders, items, creator_id, since, until)
    grouped = earnings_grouped(states, items, as_of, EARNINGS_KEYS)
    return _earnings_body(grouped, creator_id, since, until, as_of)


def _earnings_body(grouped: Mapping[str, Mapping[tuple[Any, str], EarningsTotals]], creator_id: str,
                   since: datetime | None, until: datetime | None, as_of: datetime) -> dict[str, Any]:
    totals = totals_by_currency(grouped["total"])
    return {
        "creator_id": creator_id,
        "from": iso_or_none(since),
        "to": iso_or_none(until),
        "as_of": format_rfc3339(as_of),
        "currencies": [_row(totals[c]) for c in sorted(totals)],
        "by_campaign": _grouped(grouped["campaign"], "campaign_id"),
        "by_stream": _grouped(grouped["stream"], "stream_id"),
        "by_link": _grouped(grouped["link"], "link_code"),
        "by_day": _grouped(grouped["day"], "day"),
    }


@router.get("/v1/creators/{creator_id}/earnings", response_model=Earnings, response_model_by_alias=True,
            summary="A creator's earnings from the ledger (the creator's key, finance, admin)")
async def get_earnings(
    creator_id: str, request: Request, principal: AuthPrincipal,
    from_: Annotated[str | None, Query(alias="from", description="order time >= (RFC 3339 or date)")] = None,
    to: Annotated[str | None, Query(description="order time < (RFC 3339 or date)")] = None,
    as_of: Annotated[str | None, Query(description="status clock (default now)")] = None,
) -> dict[str, Any]:
    since, until = parse_window(from_, to)
    at = parse_instant(as_of, "as_of") or datetime.now(UTC)
    await require_creator_view(request, principal, creator_id, "earnings")
    # the watermark first: the ledger read after it holds at least what it vouches for
    complete = await complete_up_to(ctx_of(request))
    return {**await creator_earnings(ledger_of(request), creator_id, since, until, at), "complete_up_to": complete}
