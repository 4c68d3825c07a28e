"""Setup endpoints (contract "Setup" and "Secrets, keys and setup lifecycle"): brands, creators,
finance keys, campaigns, links, streams; key and webhook-secret rotation, key revocation, campaign
PATCH, link deactivation, and the audit log of all of them (docs/setup.md).

Every change runs under one lock per process: catch up with the setup topic, check, then
:func:`_commit`: the audit entries go to ClickHouse first (503 and nothing changed when they cannot),
then the records go to the compacted setup topic with acks=all and are applied to this process's
replica before the response, so the next request (to any component) sees it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from api.audit import AuditChange, AuditLog
from api.auth import AuthPrincipal
from api.context import ApiContext, ctx_of
from liveledger.auth import is_admin_token, require_brand_access, require_role
from liveledger.errors import ServiceError, conflict, forbidden, invalid, not_found, unavailable
from liveledger.setup_state import Principal, Table, hash_key, new_secret, publish_setup, publish_tombstone
from schemas.setup import (
    SETUP_KINDS,
    ApiKey,
    ApiKeyIssued,
    Brand,
    BrandCreate,
    BrandCreated,
    Campaign,
    CampaignCreate,
    CampaignPatch,
    Creator,
    CreatorCreate,
    CreatorCreated,
    FinanceKeyCreate,
    FinanceKeyCreated,
    KeyRevoked,
    Link,
    LinkCreate,
    LinkCreated,
    RevokeKey,
    SetupEntity,
    Stream,
    StreamCreate,
    WebhookSecretRotated,
    public_view,
)
from schemas.time import parse_rfc3339

log = logging.getLogger(__name__)
router = APIRouter(tags=["setup"])
_write_lock = asyncio.Lock()

WEBHOOK_SECRET_OVERLAP = timedelta(hours=24)
AUDIT_MAX_LIMIT = 10_000
_AUDIT_SINCE_MIN = datetime(1970, 1, 1, tzinfo=UTC)
_AUDIT_SINCE_MAX = datetime(2200, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Write:
    """One setup record to write: ``after`` under ``<kind>:<ident>`` (``None``: a tombstone), and
    what it replaces (``before``) for the audit log."""

    kind: str
    ident: str  # the record id; for an api key its digest, which the audit log never shows
    before: SetupEntity | None
    after: SetupEntity | None

    def audit(self) -> AuditChange:
        entity_id = self.ident
        shown = self.after if self.after is not None else self.before
        if isinstance(shown, ApiKey):
            entity_id = key_label(shown)
        return AuditChange(self.kind, entity_id, None if self.before is None else public_view(self.before),
                           None if self.after is None else public_view(self.after))


def key_label(key: ApiKey) -> str:
    """An api key's public name: its ``key_id``, or ``<role>:<owner>`` for a key issued before key ids."""
    return key.key_id or f"{key.role}:{key.brand_id or key.creator_id or key.name or '?'}"


def new_key_id() -> str:
    return f"key-{secrets.token_hex(6)}"


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond - now.microsecond % 1000)


def _audit_log(ctx: ApiContext) -> AuditLog:
    audit = ctx.extras.get("audit")
    if audit is None:
        audit = ctx.extras["audit"] = AuditLog(ctx.extras["ledger"])
    assert isinstance(audit, AuditLog)
    return audit


async def _commit(ctx: ApiContext, principal: Principal, action: str, writes: list[Write]) -> None:
    """Audit, then write, then apply locally (call with ``_write_lock`` held)."""
    await _audit_log(ctx).record(principal.label, action, [w.audit() for w in writes])
    try:
        for w in writes:
            if w.after is None:
                await publish_tombstone(ctx.producer, ctx.settings, w.kind, w.ident)
            else:
                await publish_setup(ctx.producer, ctx.settings, w.ident, w.after)
    except Exception as exc:  # Kafka down: the audit entry records an attempt (docs/setup.md)
        log.error("setup write failed (%s): %r", action, exc)
        raise unavailable("the setup log is unavailable, retry shortly", 2, code="setup_unavailable") from exc
    await ctx.setup.catch_up()


def _conflict(what: str, ident: str) -> ServiceError:
    return conflict(f"{what} {ident!r} already exists", f"{what}_id", "already exists")


def _unknown(field: str, ident: str) -> ServiceError:
    return invalid(f"unknown {field} {ident!r}", field, "does not exist")


def _new_key(api_key: str, principal: ApiKey) -> Write:
    return Write("apikey", hash_key(api_key), None, principal)


def _stored_key(principal: Principal) -> ApiKey:
    """A live key's record, rebuilt from the replica (for the audit log's ``before``)."""
    return ApiKey.model_validate({"role": principal.role, "brand_id": principal.brand_id,
                                  "creator_id": principal.creator_id, "name": principal.name,
                                  "key_id": principal.key_id})


def _stored(kind: str, row: dict[str, Any]) -> Any:
    """The typed entity of a replica row (``model_dump`` of what was written)."""
    return SETUP_KINDS[kind].model_validate(row)


async def _owned(ctx: ApiContext, principal: Principal, kind: str, table: Table, ident: str) -> Any:
    """Under the write lock: the current typed entity ``ident`` of ``table`` (read-your-writes),
    404 when it does not exist, 403 unless the principal may act for its brand."""
    await ctx.setup.catch_up()
    row = ctx.setup.state.table(table).get(ident)
    if row is None:
        raise not_found(f"no {kind} {ident!r}")
    require_brand_access(principal, row["brand_id"])
    return _stored(kind, row)


async def _create(ctx: ApiContext, principal: Principal, table: Table, ident: str, writes: list[Write],
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
        await _commit(ctx, principal, "create", writes)


@router.post("/v1/admin/brands", status_code=201, response_model=BrandCreated)
async def create_brand(body: BrandCreate, request: Request,
                       principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin")
    api_key, webhook_secret = new_secret("llb"), new_secret("whsec")
    await _create(ctx_of(request), principal, "brands", body.brand_id, [
        _new_key(api_key, ApiKey(role="brand", brand_id=body.brand_id, key_id=new_key_id())),
        Write("brand", body.brand_id, None, Brand(**body.model_dump(), webhook_secret=webhook_secret)),
    ])
    return {"brand_id": body.brand_id, "api_key": api_key, "webhook_secret": webhook_secret}


@router.post("/v1/admin/creators", status_code=201, response_model=CreatorCreated)
async def create_creator(body: CreatorCreate, request: Request,
                         principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin")
    api_key = new_secret("llc")
    await _create(ctx_of(request), principal, "creators", body.creator_id, [
        _new_key(api_key, ApiKey(role="creator", creator_id=body.creator_id, key_id=new_key_id())),
        Write("creator", body.creator_id, None, Creator(**body.model_dump())),
    ])
    return {"creator_id": body.creator_id, "api_key": api_key}


@router.post("/v1/admin/finance-keys", status_code=201, response_model=FinanceKeyCreated)
async def create_finance_key(body: FinanceKeyCreate, request: Request,
                             principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin")
    api_key = new_secret("llf")
    async with _write_lock:
        await _commit(ctx_of(request), principal, "create",
                      [_new_key(api_key, ApiKey(role="finance", name=body.name, key_id=new_key_id()))])
    return {"api_key": api_key}


async def _create_for_brand(request: Request, principal: AuthPrincipal, kind: Literal["campaign", "stream"],
                            ident: str, entity: Campaign | Stream, *refs: tuple[Table, str, str]) -> dict[str, Any]:
    """A brand's own entity (campaign, stream): admin or that brand's key; the brand must exist."""
    require_role(principal, "admin", "brand")
    require_brand_access(principal, entity.brand_id)
    table: Table = "campaigns" if kind == "campaign" else "streams"
    await _create(ctx_of(request), principal, table, ident, [Write(kind, ident, None, entity)],
                  refs=(("brands", "brand_id", entity.brand_id), *refs))
    return entity.model_dump(mode="json")


@router.post("/v1/campaigns", status_code=201)
async def create_campaign(body: CampaignCreate, request: Request,
                          principal: AuthPrincipal) -> dict[str, Any]:
    return await _create_for_brand(request, principal, "campaign", body.campaign_id, Campaign(**body.model_dump()))


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
        link = Link(**body.model_dump(), link_code=link_code, brand_id=brand_id)
        await _commit(ctx, principal, "create", [Write("link", link_code, None, link)])
    return {"link_code": link_code, "url": f"{ctx.settings.ingest_public_url.rstrip('/')}/l/{link_code}"}


@router.post("/v1/streams", status_code=201)
async def create_stream(body: StreamCreate, request: Request,
                        principal: AuthPrincipal) -> dict[str, Any]:
    return await _create_for_brand(request, principal, "stream", body.stream_id, Stream(**body.model_dump()),
                                   ("creators", "creator_id", body.creator_id))


# --- lifecycle: secrets and keys ------------------------------------------------------------------

@router.post("/v1/admin/brands/{brand_id}/webhook-secret", response_model=WebhookSecretRotated,
             summary="Rotate a brand's webhook secret (admin or that brand's key)")
async def rotate_webhook_secret(brand_id: str, request: Request, principal: AuthPrincipal) -> dict[str, Any]:
    """A new secret; the previous one stays valid for 24 h (an older one ends at once)."""
    require_role(principal, "admin", "brand")
    require_brand_access(principal, brand_id)
    ctx = ctx_of(request)
    async with _write_lock:
        before: Brand = await _owned(ctx, principal, "brand", "brands", brand_id)
        secret = new_secret("whsec")
        after = Brand.model_validate({**before.model_dump(), "webhook_secret": secret,
                                      "previous_webhook_secret": before.webhook_secret,
                                      "previous_secret_expires_at": _now() + WEBHOOK_SECRET_OVERLAP})
        await _commit(ctx, principal, "rotate_webhook_secret", [Write("brand", brand_id, before, after)])
    return {"webhook_secret": secret}


async def _rotate_key(request: Request, principal: Principal, role: Literal["brand", "creator"],
                      owner_id: str) -> dict[str, Any]:
    """A new key for that brand or creator; every older key of it is deleted in the same change."""
    ctx = ctx_of(request)
    async with _write_lock:
        await ctx.setup.catch_up()
        state = ctx.setup.state
        if owner_id not in state.table("brands" if role == "brand" else "creators"):
            raise not_found(f"no {role} {owner_id!r}")
        api_key = new_secret("llb" if role == "brand" else "llc")
        owner = {"brand_id": owner_id} if role == "brand" else {"creator_id": owner_id}
        fresh = ApiKey.model_validate({"role": role, **owner, "key_id": new_key_id()})
        # the new key first: should the setup log fail half-way, the principal still has a key
        writes = [_new_key(api_key, fresh)]
        writes += [Write("apikey", d, _stored_key(state.keys[d]), None) for d in state.key_digests(role, owner_id)]
        await _commit(ctx, principal, "rotate_api_key", writes)
    return {"api_key": api_key}


@router.post("/v1/admin/brands/{brand_id}/api-key", response_model=ApiKeyIssued,
             summary="Rotate a brand's API key (admin or that brand's key): the old key stops working at once")
async def rotate_brand_key(brand_id: str, request: Request, principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin", "brand")
    require_brand_access(principal, brand_id)
    return await _rotate_key(request, principal, "brand", brand_id)


@router.post("/v1/admin/creators/{creator_id}/api-key", response_model=ApiKeyIssued,
             summary="Rotate a creator's API key (admin or that creator's key): the old key stops working at once")
async def rotate_creator_key(creator_id: str, request: Request, principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin", "creator")
    if principal.role == "creator" and principal.creator_id != creator_id:
        raise forbidden("a creator key may rotate only its own key")
    return await _rotate_key(request, principal, "creator", creator_id)


@router.post("/v1/admin/keys/revoke", response_model=KeyRevoked, summary="Revoke any issued API key (admin)")
async def revoke_key(body: RevokeKey, request: Request, principal: AuthPrincipal) -> dict[str, Any]:
    require_role(principal, "admin")
    ctx = ctx_of(request)
    if is_admin_token(body.api_key, ctx.settings):
        raise invalid("the admin token is configured (LIVELEDGER_ADMIN_TOKEN), not issued: change it there",
                      "api_key", "the admin token cannot be revoked here")
    digest = hash_key(body.api_key)
    async with _write_lock:
        await ctx.setup.catch_up()
        live = ctx.setup.state.keys.get(digest)
        if live is None:
            raise not_found("unknown API key (never issued, or already revoked)", "api_key", "unknown")
        before = _stored_key(live)
        await _commit(ctx, principal, "revoke_api_key", [Write("apikey", digest, before, None)])
    return {"revoked": True, "key_id": before.key_id}


# --- lifecycle: campaigns and links ---------------------------------------------------------------

@router.patch("/v1/campaigns/{campaign_id}", summary="Change a campaign's terms, end or pause (admin or its brand)")
async def patch_campaign(campaign_id: str, body: CampaignPatch, request: Request,
                         principal: AuthPrincipal) -> dict[str, Any]:
    """New terms apply to orders attributed after the change; ``ends_at`` / ``active`` close the
    campaign for clicks and coupons (docs/setup.md). A patch that changes nothing writes nothing."""
    require_role(principal, "admin", "brand")
    ctx = ctx_of(request)
    async with _write_lock:
        before: Campaign = await _owned(ctx, principal, "campaign", "campaigns", campaign_id)
        after = body.apply(before, _now())
        if after != before:
            await _commit(ctx, principal, "update_campaign", [Write("campaign", campaign_id, before, after)])
    return after.model_dump(mode="json")


@router.delete("/v1/links/{link_code}", summary="Deactivate a link (admin or its brand)")
async def deactivate_link(link_code: str, request: Request, principal: AuthPrincipal) -> dict[str, Any]:
    """The link still redirects, without ``ll_click``; its coupon no longer attributes orders placed
    after the call. Deactivating a deactivated link changes nothing (same answer)."""
    require_role(principal, "admin", "brand")
    ctx = ctx_of(request)
    async with _write_lock:
        before: Link = await _owned(ctx, principal, "link", "links", link_code)
        after = before
        if before.deactivated_at is None:
            after = Link.model_validate({**before.model_dump(), "deactivated_at": _now()})
            await _commit(ctx, principal, "deactivate_link", [Write("link", link_code, before, after)])
    return after.model_dump(mode="json")


# --- the audit log --------------------------------------------------------------------------------

@router.get("/v1/admin/audit", summary="Setup changes: who, when, before and after (admin)")
async def audit(request: Request, principal: AuthPrincipal, since: str | None = None,
                limit: Annotated[int, Query(ge=1, le=AUDIT_MAX_LIMIT)] = 1000) -> dict[str, Any]:
    """Entries at or after ``since`` (RFC 3339 or a date), oldest first, at most ``limit``."""
    require_role(principal, "admin")
    return {"entries": await _audit_log(ctx_of(request)).entries(parse_since(since), limit)}


def parse_since(value: str | None) -> datetime | None:
    """``since``: RFC 3339 with an offset or a date (00:00 UTC), in [1970, 2200); else 422."""
    if not value:
        return None
    try:
        if len(value) == 10:
            at = datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        else:
            at = parse_rfc3339(value)
    except (ValueError, OverflowError):
        raise invalid("since must be an RFC 3339 time with an offset or a date", "since",
                      "expected e.g. 2026-11-25T20:00:00Z or 2026-11-25") from None
    if not _AUDIT_SINCE_MIN <= at < _AUDIT_SINCE_MAX:
        raise invalid("since is out of range", "since", "must be between 1970-01-01 and 2200-01-01")
    return at
