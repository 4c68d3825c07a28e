"""Setup endpoints (contract "Setup"): brands, creators, finance keys, campaigns, links, streams.

Each write goes to the compacted setup topic with acks=all and is applied to this process's
replica before the response, so the next request (to any component) sees it.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from fastapi import APIRouter, Request

from api.auth import AuthPrincipal
from api.context import ApiContext, ctx_of
from liveledger.auth import require_brand_access, require_role
from liveledger.errors import ServiceError, conflict, invalid
from liveledger.setup_state import Table, hash_key, new_secret, publish_setup
from schemas.setup import (
    ApiKey,
    Brand,
    BrandCreate,
    BrandCreated,
    Campaign,
    CampaignCreate,
    Creator,
    CreatorCreate,
    CreatorCreated,
    FinanceKeyCreate,
    FinanceKeyCreated,
    Link,
    LinkCreate,
    LinkCreated,
    SetupEntity,
    Stream,
    StreamCreate,
)

router = APIRouter(tags=["setup"])
_write_lock = asyncio.Lock()
Record = tuple[str, SetupEntity]  # (id, entity): written as the setup record "<kind>:<id>"


async def _write(ctx: ApiContext, records: list[Record]) -> None:
    for ident, entity in records:
        await publish_setup(ctx.producer, ctx.settings, ident, entity)
    await ctx.setup.catch_up()


def _conflict(what: str, ident: str) -> ServiceError:
    return conflict(f"{what} {ident!r} already exists", f"{what}_id", "already exists")


def _unknown(field: str, ident: str) -> ServiceError:
    return invalid(f"unknown {field} {ident!r}", field, "does not exist")


def _key_record(api_key: str, principal: ApiKey) -> Record:
    return hash_key(api_key), principal


async def _create(ctx: ApiContext, table: Table, ident: str, records: list[Record],
                  refs: tuple[tuple[Table, str, str], ...] = ()) -> None:
    """Write the records of a new entity ``ident`` of ``table``, serialised with every other setup
    write: 422 when a referenced ``(table, field, id)`` does not exist, then 409 when ``ident`` does."""
    async with _write_lock:
        await ctx.setup.catch_up()
        state = ctx.setup.state
        for ref_table, field, ref in refs:
            if ref not in state.table(ref_table):
                raise _unknown(field, ref)
        if ident in state.table(table):
            raise _conflict(table.removesuffix("s"), ident)
        await _write(ctx, records)


@router.post("/v1/admin/brands", status_code=201, response_model=BrandCreated)
async def create_brand(body: BrandCreate, request: Request,
                       principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin")
    api_key, webhook_secret = new_secret("llb"), new_secret("whsec")
    await _create(ctx_of(request), "brands", body.brand_id, [
        _key_record(api_key, ApiKey(role="brand", brand_id=body.brand_id)),
        (body.brand_id, Brand(**body.model_dump(), webhook_secret=webhook_secret)),
    ])
    return {"brand_id": body.brand_id, "api_key": api_key, "webhook_secret": webhook_secret}


@router.post("/v1/admin/creators", status_code=201, response_model=CreatorCreated)
async def create_creator(body: CreatorCreate, request: Request,
                         principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin")
    api_key = new_secret("llc")
    await _create(ctx_of(request), "creators", body.creator_id, [
        _key_record(api_key, ApiKey(role="creator", creator_id=body.creator_id)),
        (body.creator_id, Creator(**body.model_dump())),
    ])
    return {"creator_id": body.creator_id, "api_key": api_key}


@router.post("/v1/admin/finance-keys", status_code=201, response_model=FinanceKeyCreated)
async def create_finance_key(body: FinanceKeyCreate, request: Request,
                             principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin")
    api_key = new_secret("llf")
    async with _write_lock:
        await _write(ctx_of(request), [_key_record(api_key, ApiKey(role="finance", name=body.name))])
    return {"api_key": api_key}


async def _create_for_brand(request: Request, principal: AuthPrincipal, table: Table, ident: str,
                            entity: Campaign | Stream, *refs: tuple[Table, str, str]) -> dict[str, Any]:
    """A brand's own entity (campaign, stream): admin or that brand's key; the brand must exist."""
    require_role(principal, "admin", "brand")
    require_brand_access(principal, entity.brand_id)
    await _create(ctx_of(request), table, ident, [(ident, entity)],
                  refs=(("brands", "brand_id", entity.brand_id), *refs))
    return entity.model_dump()


@router.post("/v1/campaigns", status_code=201)
async def create_campaign(body: CampaignCreate, request: Request,
                          principal: AuthPrincipal) -> dict[str, Any]:
    return await _create_for_brand(request, principal, "campaigns", body.campaign_id, Campaign(**body.model_dump()))


@router.post("/v1/links", status_code=201, response_model=LinkCreated)
async def create_link(body: LinkCreate, request: Request,
                      principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin", "brand")
    ctx = ctx_of(request)
    async with _write_lock:
        await ctx.setup.catch_up()
        state = ctx.setup.state
        campaign = state.campaigns.get(body.campaign_id)
        if campaign is None:
            raise _unknown("campaign_id", body.campaign_id)
        brand_id = campaign["brand_id"]
        require_brand_access(principal, brand_id)
        if body.creator_id not in state.creators:
            raise _unknown("creator_id", body.creator_id)
        if body.stream_id is not None:
            stream = state.streams.get(body.stream_id)
            if stream is None or stream["brand_id"] != brand_id:
                raise _unknown("stream_id", body.stream_id)
        if body.coupon_code is not None and state.link_for_coupon(brand_id, body.coupon_code) is not None:
            raise conflict(f"coupon code {body.coupon_code!r} is already used by this brand", "coupon_code",
                           "must be unique per brand")
        link_code = secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")
        # the stored coupon code is upper case (CouponCode): coupons compare case-insensitively
        await _write(ctx, [(link_code, Link(**body.model_dump(), link_code=link_code, brand_id=brand_id))])
    return {"link_code": link_code, "url": f"{ctx.settings.ingest_public_url.rstrip('/')}/l/{link_code}"}


@router.post("/v1/streams", status_code=201)
async def create_stream(body: StreamCreate, request: Request,
                        principal: AuthPrincipal) -> dict[str, Any]:
    return await _create_for_brand(request, principal, "streams", body.stream_id, Stream(**body.model_dump()),
                                   ("creators", "creator_id", body.creator_id))
