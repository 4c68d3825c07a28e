"""Per-creator conversion, live (contract "Release 2 additions" → "Per-creator conversion, live").

- ``GET /v1/brands/{brand_id}/creators/live`` (+ ``?stream_id=`` or ``?campaign_id=``) and its SSE:
  the brand's creator leaderboard. That brand's key, admin, finance; another brand's key ``403``, an
  unknown brand ``404``; a filter naming another brand's stream or campaign ``404``.
- ``GET /v1/creators/{creator_id}/live`` (+ ``?stream_id=``) and its SSE: one creator, per brand,
  link and stream. The creator's own key, admin, finance; another creator's key and brand keys ``403``.

Read from the workers' Redis aggregates (api/conversion.py); pushed on change through the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from api.auth import AuthPrincipal, principal_from_query_or_header, require_creator_view
from api.context import ctx_of
from api.conversion import ConversionReader, dimension_ids, funnel, updated_at
from api.params import EpochMs
from api.read_routes import KEEPALIVE_S, REFRESH_S, Gmv, _extra, visible_stream
from api.stores import LiveHub, LiveReader, brand_topic
from liveledger.auth import require_role
from liveledger.errors import forbidden, invalid, not_found
from liveledger.setup_state import Principal

router = APIRouter(tags=["conversion"])


# --- response models (OpenAPI) ------------------------------------------------------------------

class CommissionAmount(BaseModel):
    currency: str
    amount_minor: int


class Funnel(BaseModel):
    clicks: int = Field(description="counted clicks (bots and repeats excluded)")
    orders: int = Field(description="orders attributed to the creator, by click or by coupon")
    click_orders: int
    coupon_orders: int
    cvr: float = Field(description="click_orders / clicks (0 when there are no clicks)")
    gmv: list[Gmv] = Field(description="net revenue after refunds of the attributed orders, per currency")
    commission: list[CommissionAmount] = Field(description="their current commission (all statuses)")


class CreatorFunnel(Funnel):
    creator_id: str
    last_order_at: str | None


class BrandCreators(BaseModel):
    brand_id: str
    stream_id: str | None = None
    campaign_id: str | None = None
    creators: list[CreatorFunnel]
    updated_at: str | None


class BrandFunnel(Funnel):
    brand_id: str
    last_order_at: str | None
    today: Funnel = Field(description="the same for today (UTC): clicks and orders of today's day")


class LinkFunnel(Funnel):
    link_code: str
    brand_id: str
    campaign_id: str
    url: str = Field(description="the tracking link to share")


class BrandStream(BaseModel):
    stream_id: str
    title: str
    creator_id: str
    live_now: bool = Field(description="an event in the last 5 minutes")
    viewers_now: int
    views: int
    clicks: int
    orders: int
    gmv: list[Gmv]
    updated_at: str | None


class BrandStreams(BaseModel):
    brand_id: str
    streams: list[BrandStream] = Field(description="live now first, then by last activity")


class StreamFunnel(Funnel):
    stream_id: str
    brand_id: str


class CreatorLive(BaseModel):
    creator_id: str
    brands: list[BrandFunnel]
    links: list[LinkFunnel]
    streams: list[StreamFunnel]
    updated_at: str | None


# --- reading ------------------------------------------------------------------------------------

def reader_of(request: Request) -> ConversionReader:
    reader: ConversionReader = _extra(request, "conversion")
    return reader


async def visible_brand(request: Request, principal: Principal, brand_id: str) -> None:
    if principal.role == "brand":
        if principal.brand_id != brand_id:
            raise forbidden("a brand key sees only its own creators")
    else:
        require_role(principal, "admin", "finance")
    if await ctx_of(request).setup.lookup("brands", brand_id) is None:
        raise not_found(f"no brand {brand_id!r}")


async def brand_creators(request: Request, brand_id: str, stream_id: str | None,
                         campaign_id: str | None) -> dict[str, Any]:
    """The leaderboard: every creator with activity for the brand or a stream / link of it."""
    setup = ctx_of(request).setup.state
    dim = ""
    if stream_id is not None:
        stream = setup.streams.get(stream_id)
        if stream is None or stream["brand_id"] != brand_id:
            raise not_found(f"no stream {stream_id!r} of brand {brand_id!r}")
        dim = f"stream|{stream_id}|"
    elif campaign_id is not None:
        campaign = setup.campaigns.get(campaign_id)
        if campaign is None or campaign["brand_id"] != brand_id:
            raise not_found(f"no campaign {campaign_id!r} of brand {brand_id!r}")
        dim = f"campaign|{campaign_id}|"
    reader = reader_of(request)
    creators = await reader.creators_of(brand_id)
    creators |= {s["creator_id"] for s in setup.streams.values() if s["brand_id"] == brand_id}
    creators |= {lk["creator_id"] for lk in setup.links.values() if lk["brand_id"] == brand_id}
    hashes = await reader.hashes((brand_id, c) for c in creators)
    rows = []
    for (_, creator_id), fields in hashes.items():
        row = funnel(fields, dim)
        if dim and not any(row[k] for k in ("clicks", "orders")):
            continue  # a filter shows the creators active in that stream or campaign
        rows.append({"creator_id": creator_id, **row})
    rows.sort(key=lambda r: (-r["orders"], -r["clicks"], r["creator_id"]))
    return {"brand_id": brand_id, "stream_id": stream_id, "campaign_id": campaign_id, "creators": rows,
            "updated_at": updated_at(hashes.values())}


async def visible_creator(request: Request, principal: Principal, creator_id: str) -> None:
    await require_creator_view(request, principal, creator_id, "numbers")


def creator_brands(request: Request, creator_id: str) -> set[str]:
    setup = ctx_of(request).setup.state
    return ({s["brand_id"] for s in setup.streams.values() if s["creator_id"] == creator_id}
            | {lk["brand_id"] for lk in setup.links.values() if lk["creator_id"] == creator_id})


async def creator_live(request: Request, creator_id: str, stream_id: str | None) -> dict[str, Any]:
    setup = ctx_of(request).setup.state
    reader = reader_of(request)
    brands = creator_brands(request, creator_id)
    for brand_id in setup.brands:  # brands the creator earned with but has no setup entity of now
        if brand_id not in brands and creator_id in await reader.creators_of(brand_id):
            brands.add(brand_id)
    hashes = await reader.hashes((b, creator_id) for b in brands)
    today = datetime.now(UTC).date().isoformat()
    out_brands, links, streams = [], [], []
    for (brand_id, _), fields in sorted(hashes.items()):
        out_brands.append({"brand_id": brand_id, **funnel(fields), "today": funnel(fields, f"day|{today}|")})
        codes = dimension_ids(fields, "link") | {code for code, lk in setup.links.items()
                                                 if lk["creator_id"] == creator_id and lk["brand_id"] == brand_id}
        public = ctx_of(request).settings.ingest_public_url.rstrip("/")
        for code in sorted(codes):
            link = setup.links.get(code, {})
            links.append({"link_code": code, "brand_id": brand_id, "campaign_id": link.get("campaign_id", ""),
                          "url": f"{public}/l/{code}", **funnel(fields, f"link|{code}|")})
        ids = dimension_ids(fields, "stream") | {sid for sid, st in setup.streams.items()
                                                 if st["creator_id"] == creator_id and st["brand_id"] == brand_id}
        for sid in sorted(ids):
            if stream_id is None or sid == stream_id:
                streams.append({"stream_id": sid, "brand_id": brand_id, **funnel(fields, f"stream|{sid}|")})
    return {"creator_id": creator_id, "brands": out_brands, "links": links, "streams": streams,
            "updated_at": updated_at(hashes.values())}


LIVE_NOW_MS = 5 * 60 * 1000


async def brand_streams(request: Request, brand_id: str) -> dict[str, Any]:
    setup = ctx_of(request).setup.state
    reader: LiveReader = _extra(request, "live")
    now = int(time.time() * 1000)
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for sid, stream in setup.streams.items():
        if stream["brand_id"] != brand_id:
            continue
        live = await reader.live(sid, now)
        updated = live["updated_at"]
        last = int(datetime.fromisoformat(updated).timestamp() * 1000) if updated else 0
        row = {"stream_id": sid, "title": stream.get("title", sid), "creator_id": stream["creator_id"],
               "live_now": bool(last) and now - last < LIVE_NOW_MS,
               **{k: live[k] for k in ("viewers_now", "views", "clicks", "orders", "gmv", "updated_at")}}
        rows.append(((not row["live_now"], -row["viewers_now"], -last, sid), row))
    return {"brand_id": brand_id, "streams": [row for _, row in sorted(rows, key=lambda r: r[0])]}


# --- routes -------------------------------------------------------------------------------------

@router.get("/v1/brands/{brand_id}/streams/live", response_model=BrandStreams,
            summary="The brand's streams with their live numbers (that brand's key, finance, admin)")
async def get_brand_streams(brand_id: str, request: Request, principal: AuthPrincipal) -> dict[str, Any]:
    await visible_brand(request, principal, brand_id)
    return await brand_streams(request, brand_id)


@router.get("/v1/brands/{brand_id}/creators/live", response_model=BrandCreators,
            summary="The brand's creators' live conversion (that brand's key, finance, admin)")
async def get_brand_creators(
    brand_id: str, request: Request, principal: AuthPrincipal,
    stream_id: Annotated[str | None, Query(description="only this stream (its clicks, links and coupons)")] = None,
    campaign_id: Annotated[str | None, Query(description="only this campaign")] = None,
) -> dict[str, Any]:
    if stream_id is not None and campaign_id is not None:
        raise invalid("filter by stream_id or by campaign_id, not both", "campaign_id", "one filter at a time")
    await visible_brand(request, principal, brand_id)
    return await brand_creators(request, brand_id, stream_id, campaign_id)


class CreatorsSeries(BaseModel):
    brand_id: str
    interval_s: float
    points: list[dict[str, Any]] = Field(description="`{t: epoch ms, creators: {creator_id: {clicks, orders}}}`, "
                                                     "one per 10 s while the brand's creators are active")


@router.get("/v1/brands/{brand_id}/creators/series", response_model=CreatorsSeries,
            summary="Samples of each creator's clicks and orders (for the leaderboard's sparklines)")
async def get_brand_creators_series(
    brand_id: str, request: Request, principal: AuthPrincipal,
    since: Annotated[EpochMs, Query(ge=0, description="epoch ms; default: the last 6 h")] = 0,
) -> dict[str, Any]:
    await visible_brand(request, principal, brand_id)
    start = since or int(time.time() * 1000) - 6 * 3600 * 1000
    sampler = ctx_of(request).extras.get("series")
    return {"brand_id": brand_id, "interval_s": float(getattr(sampler, "interval", 10.0)),
            "points": await reader_of(request).series(brand_id, start)}


@router.get("/v1/streams/{stream_id}/creators/live", response_model=BrandCreators,
            summary="The creators' live conversion in one stream (the stream's brand key, finance, admin)",
            description="The brand leaderboard filtered to the stream (`?stream_id=`), for the stream page's "
                        "creators panel; tenancy as `GET /v1/streams/{stream_id}/live`.")
async def get_stream_creators(stream_id: str, request: Request, principal: AuthPrincipal) -> dict[str, Any]:
    stream = await visible_stream(request, principal, stream_id)
    return await brand_creators(request, str(stream["brand_id"]), stream_id, None)


@router.get("/v1/creators/{creator_id}/live", response_model=CreatorLive,
            summary="One creator's live conversion per brand, link and stream (the creator's key, finance, admin)")
async def get_creator_live(
    creator_id: str, request: Request, principal: AuthPrincipal,
    stream_id: Annotated[str | None, Query(description="only this stream in `streams`")] = None,
) -> dict[str, Any]:
    await visible_creator(request, principal, creator_id)
    return await creator_live(request, creator_id, stream_id)


def _sse(read: Callable[[], Awaitable[dict[str, Any]]], hub: LiveHub, topics: list[str]) -> StreamingResponse:
    async def stream() -> AsyncIterator[bytes]:
        async with contextlib.AsyncExitStack() as stack:
            queues = [await stack.enter_async_context(hub.subscribe(t)) for t in topics]
            yield b"retry: 2000\n\n"
            last: dict[str, Any] | None = None
            last_write = time.monotonic()
            while True:
                current = await read()
                if current != last:
                    yield b"event: live\ndata: " + orjson.dumps(current) + b"\n\n"
                    last, last_write = current, time.monotonic()
                elif time.monotonic() - last_write >= KEEPALIVE_S:
                    yield b": keepalive\n\n"
                    last_write = time.monotonic()
                wait = min(REFRESH_S, max(0.05, KEEPALIVE_S - (time.monotonic() - last_write)))
                waiters = [asyncio.ensure_future(q.get()) for q in queues]
                try:
                    await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


_SSE_DOC = {"response_class": StreamingResponse,
            "responses": {200: {"content": {"text/event-stream": {}}, "description": "event stream"}},
            "description": "The same JSON as Server-Sent Events (event `live`), pushed on change (≤ 1 s), "
                           "`: keepalive` every 15 s. Auth: `Authorization: Bearer <key>` or `?key=<key>`."}


@router.get("/v1/brands/{brand_id}/creators/live/events", summary="The brand's creators' conversion as SSE",
            **_SSE_DOC)  # type: ignore[arg-type]
async def brand_creators_events(
    brand_id: str, request: Request,
    stream_id: Annotated[str | None, Query()] = None, campaign_id: Annotated[str | None, Query()] = None,
    key: Annotated[str | None, Query(description="API key (for EventSource)")] = None,
) -> StreamingResponse:
    principal = await principal_from_query_or_header(request, key)
    if stream_id is not None and campaign_id is not None:
        raise invalid("filter by stream_id or by campaign_id, not both", "campaign_id", "one filter at a time")
    await visible_brand(request, principal, brand_id)
    await brand_creators(request, brand_id, stream_id, campaign_id)  # 404 for a bad filter, before streaming
    hub: LiveHub = _extra(request, "hub")
    return _sse(lambda: brand_creators(request, brand_id, stream_id, campaign_id), hub, [brand_topic(brand_id)])


@router.get("/v1/creators/{creator_id}/live/events", summary="One creator's live conversion as SSE",
            **_SSE_DOC)  # type: ignore[arg-type]
async def creator_live_events(
    creator_id: str, request: Request, stream_id: Annotated[str | None, Query()] = None,
    key: Annotated[str | None, Query(description="API key (for EventSource)")] = None,
) -> StreamingResponse:
    principal = await principal_from_query_or_header(request, key)
    await visible_creator(request, principal, creator_id)
    hub: LiveHub = _extra(request, "hub")
    topics = [brand_topic(b) for b in sorted(creator_brands(request, creator_id))]
    return _sse(lambda: creator_live(request, creator_id, stream_id), hub, topics)
