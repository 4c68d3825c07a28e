"""Setup endpoints (contract "Setup"): brands, creators, finance keys, campaigns, links, streams.

Each write goes to the compacted setup topic with acks=all and is applied to this process's
replica before the response, so the next request (to any component) sees it.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from api.auth import authenticate, require_brand_access, require_role
from api.context import ApiContext
from api.errors import ApiError
from liveledger.setup_state import Principal, coupon_key, hash_key, new_secret, publish_setup
from schemas.setup import (
    BrandCreate,
    BrandCreated,
    CampaignCreate,
    CreatorCreate,
    CreatorCreated,
    FinanceKeyCreate,
    FinanceKeyCreated,
    LinkCreate,
    LinkCreated,
    StreamCreate,
)

router = APIRouter(tags=["setup"])
AuthPrincipal = Annotated[Principal, Depends(authenticate)]
_write_lock = asyncio.Lock()


def _ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def _write(ctx: ApiContext, records: list[tuple[str, dict[str, Any]]]) -> None:
    for key, value in records:
        await publish_setup(ctx.producer, ctx.settings, key, value)
    await ctx.setup.catch_up()


def _conflict(what: str, ident: str) -> ApiError:
    return ApiError(409, "conflict", f"{what} {ident!r} already exists", [{"field": f"{what}_id",
                                                                           "reason": "already exists"}])


def _unknown(field: str, ident: str) -> ApiError:
    return ApiError(422, "validation_failed", f"unknown {field} {ident!r}",
                    [{"field": field, "reason": "does not exist"}])


@router.post("/v1/admin/brands", status_code=201, response_model=BrandCreated)
async def create_brand(body: BrandCreate, request: Request,
                       principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin")
    ctx = _ctx(request)
    async with _write_lock:
        await ctx.setup.catch_up()
        if body.brand_id in ctx.setup.state.brands:
            raise _conflict("brand", body.brand_id)
        api_key = new_secret("llb")
        webhook_secret = new_secret("whsec")
        await _write(ctx, [
            (f"apikey:{hash_key(api_key)}", {"role": "brand", "brand_id": body.brand_id}),
            (f"brand:{body.brand_id}", {**body.model_dump(), "webhook_secret": webhook_secret}),
        ])
    return {"brand_id": body.brand_id, "api_key": api_key, "webhook_secret": webhook_secret}


@router.post("/v1/admin/creators", status_code=201, response_model=CreatorCreated)
async def create_creator(body: CreatorCreate, request: Request,
                         principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin")
    ctx = _ctx(request)
    async with _write_lock:
        await ctx.setup.catch_up()
        if body.creator_id in ctx.setup.state.creators:
            raise _conflict("creator", body.creator_id)
        api_key = new_secret("llc")
        await _write(ctx, [
            (f"apikey:{hash_key(api_key)}", {"role": "creator", "creator_id": body.creator_id}),
            (f"creator:{body.creator_id}", body.model_dump()),
        ])
    return {"creator_id": body.creator_id, "api_key": api_key}


@router.post("/v1/admin/finance-keys", status_code=201, response_model=FinanceKeyCreated)
async def create_finance_key(body: FinanceKeyCreate, request: Request,
                             principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin")
    ctx = _ctx(request)
    api_key = new_secret("llf")
    async with _write_lock:
        await _write(ctx, [(f"apikey:{hash_key(api_key)}", {"role": "finance", "name": body.name})])
    return {"api_key": api_key}


@router.post("/v1/campaigns", status_code=201)
async def create_campaign(body: CampaignCreate, request: Request,
                          principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin", "brand")
    require_brand_access(principal, body.brand_id)
    ctx = _ctx(request)
    async with _write_lock:
        await ctx.setup.catch_up()
        state = ctx.setup.state
        if body.brand_id not in state.brands:
            raise _unknown("brand_id", body.brand_id)
        if body.campaign_id in state.campaigns:
            raise _conflict("campaign", body.campaign_id)
        value = body.model_dump()
        await _write(ctx, [(f"campaign:{body.campaign_id}", value)])
    return value


@router.post("/v1/links", status_code=201, response_model=LinkCreated)
async def create_link(body: LinkCreate, request: Request,
                      principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin", "brand")
    ctx = _ctx(request)
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
            raise ApiError(409, "conflict", f"coupon code {body.coupon_code!r} is already used by this brand",
                           [{"field": "coupon_code", "reason": "must be unique per brand"}])
        link_code = secrets.token_urlsafe(9).replace("-", "x").replace("_", "y")
        value = {**body.model_dump(mode="json"), "link_code": link_code, "brand_id": brand_id}
        if body.coupon_code is not None:
            value["coupon_code"] = coupon_key(body.coupon_code)
        await _write(ctx, [(f"link:{link_code}", value)])
    return {"link_code": link_code, "url": f"{ctx.settings.ingest_public_url.rstrip('/')}/l/{link_code}"}


@router.post("/v1/streams", status_code=201)
async def create_stream(body: StreamCreate, request: Request,
                        principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin", "brand")
    require_brand_access(principal, body.brand_id)
    ctx = _ctx(request)
    async with _write_lock:
        await ctx.setup.catch_up()
        state = ctx.setup.state
        if body.brand_id not in state.brands:
            raise _unknown("brand_id", body.brand_id)
        if body.creator_id not in state.creators:
            raise _unknown("creator_id", body.creator_id)
        if body.stream_id in state.streams:
            raise _conflict("stream", body.stream_id)
        value = body.model_dump()
        await _write(ctx, [(f"stream:{body.stream_id}", value)])
    return value

