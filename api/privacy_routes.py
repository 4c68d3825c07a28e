"""The right to erasure (contract "Operating it"; docs/api.md "Erasure"):
``POST /v1/admin/viewers/erase {brand_id, viewer_id}`` (admin, or that brand's key).

1. The audit log records the request first (``viewer.erase``), naming the viewer only by a keyed
   hash (HMAC-SHA256 with ``LIVELEDGER_ERASURE_SECRET``, of brand and viewer id): whoever holds the
   secret can tell whether a given viewer was erased, nobody can read the id from the log.
2. It waits (at most :data:`WAIT_S`) until the watermark's live path and ClickHouse-events stages
   have passed the request time, so no event acknowledged before the request is still on its way
   to a store (and a replay is fenced: nothing applied comes back).
3. ClickHouse: the viewer's rows of ``events`` and its dead letters are deleted by a mutation
   (``ALTER TABLE … DELETE``, ``mutations_sync = 2``: the parts are rewritten without the rows
   before the call returns; a lightweight ``DELETE`` would only mask them).
4. Redis (:data:`liveledger.storage.lua.VIEWER_ERASE`, one script): in every stream of the brand
   the id is replaced by this erasure's placeholder in the unique-viewers SET and the presence
   ZSETs, so ``unique_viewers`` and ``viewers_now`` keep their values; counters and money hold no
   viewer ids. ``<p>:stats`` counts ``viewer_erasures``, ``events_erased``, ``dead_letters_erased``.
5. The audit log records the outcome (``viewer.erased``, counts only).

``200`` when the stages had passed the request time, else ``202`` (``complete: false``): what was
stored was erased, and events still in flight may land later: repeat the call (it is idempotent).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from api.audit import AuditChange, audit_log_of
from api.auth import AuthPrincipal
from api.context import ApiContext, ctx_of
from api.read_routes import ledger_of
from api.stores import current_watermark
from liveledger.auth import require_brand_access
from liveledger.errors import not_found, unavailable
from liveledger.settings import Settings
from liveledger.storage import redis_keys as keys
from liveledger.storage.clickhouse import DEAD_LETTERS, EVENTS
from liveledger.storage.lua import VIEWER_ERASE
from liveledger.storage.watermark import CLICKHOUSE, LIVE
from liveledger.topics import topic_name
from schemas.ids import Id
from schemas.time import format_ms, format_rfc3339

router = APIRouter(tags=["privacy"])
WAIT_S = 30.0
_erase_lock = asyncio.Lock()


class EraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    brand_id: Id
    viewer_id: Id = Field(description="the viewer id the brand's player sent in view/click/add_to_cart events")


class Erased(BaseModel):
    events: int = Field(description="raw events deleted from ClickHouse (distinct event ids)")
    dead_letters: int = Field(description="dead letters deleted from ClickHouse")
    redis_ids: int = Field(description="viewer ids replaced by the placeholder in Redis (sets and sorted sets)")
    streams: int = Field(description="streams of the brand looked at")


class EraseOut(BaseModel):
    brand_id: str
    erasure_id: str
    subject: str = Field(description="the keyed hash that names the viewer in the audit log")
    requested_at: str
    complete: bool = Field(description="every event acknowledged before requested_at was in the stores when erased")
    complete_up_to: str | None
    erased: Erased


def erasure_secret(settings: Settings) -> bytes:
    if settings.erasure_secret:
        return settings.erasure_secret.encode()
    return hashlib.sha256(b"liveledger-erasure:" + settings.admin_token.encode()).digest()


def erasure_subject(secret: bytes, brand_id: str, viewer_id: str) -> str:
    """The keyed hash that stands for a viewer in the audit log (never the id itself)."""
    return hmac.new(secret, f"{brand_id}\x00{viewer_id}".encode(), hashlib.sha256).hexdigest()[:32]


def dead_letter_pattern(viewer_id: str) -> str:
    """RE2 pattern of the viewer's id as a JSON ``viewer_id`` value anywhere in a raw payload."""
    return r'"viewer_id"\s*:\s*"' + re.escape(viewer_id) + '"'


_EVENTS_WHERE = "brand_id = {b:String} AND viewer_id = {v:String}"
_DLQ_WHERE = ("key = {b:String} AND (JSONExtractString(payload, 'viewer_id') = {v:String} "
              "OR match(payload, {re:String}))")


async def wait_for_stores(ctx: ApiContext, requested_ms: int, timeout_s: float = WAIT_S) -> tuple[bool, int | None]:
    """Until the live path and the ClickHouse sink of ``ll.events`` are complete past ``requested_ms``;
    ``(passed, their complete_up_to)``."""
    events = topic_name(ctx.settings, "events")
    deadline = time.monotonic() + timeout_s
    complete: int | None = None
    while True:
        wm = await current_watermark(ctx, max_age_s=0.2)
        complete = None if wm is None else wm.stage_complete_ms(LIVE, CLICKHOUSE, topics=[events])
        if complete is not None and complete >= requested_ms:
            return True, complete
        if time.monotonic() >= deadline:
            return False, complete
        await asyncio.sleep(0.25)


async def erase_clickhouse(request: Request, brand_id: str, viewer_id: str) -> tuple[int, int]:
    ledger = ledger_of(request)
    client = await ledger.client()
    params = {"b": brand_id, "v": viewer_id, "re": dead_letter_pattern(viewer_id)}
    db = ledger.db
    counted = await client.query(
        f"SELECT (SELECT uniqExact(event_id) FROM {db}.{EVENTS} WHERE {_EVENTS_WHERE}), "
        f"(SELECT count() FROM {db}.{DEAD_LETTERS} FINAL WHERE {_DLQ_WHERE})", parameters=params)
    events, dead = (int(v) for v in counted.result_rows[0])
    sync = {"mutations_sync": 2}
    if events:
        await client.command(f"ALTER TABLE {db}.{EVENTS} DELETE WHERE {_EVENTS_WHERE}", parameters=params,
                             settings=sync)
    if dead:
        await client.command(f"ALTER TABLE {db}.{DEAD_LETTERS} DELETE WHERE {_DLQ_WHERE}", parameters=params,
                             settings=sync)
    return events, dead


def erase_script_arg(p: str, partitions: int, brand_id: str, streams: list[str], viewer_id: str, erasure_id: str,
                     events: int, dead_letters: int) -> dict[str, Any]:
    """The argument of :data:`VIEWER_ERASE`: the brand's keys, all in its partition's hash slot
    (``stats`` is the key the call declares)."""
    part = keys.brand_partition(brand_id, partitions)
    return {"id": viewer_id, "ph": f"erased:{erasure_id}",
            "streams": [[keys.stream_viewers(p, part, s), keys.stream_now(p, part, s), keys.stream_left(p, part, s)]
                        for s in streams],
            "stats": keys.stats(p, part),
            "st": {"viewer_erasures": 1, "events_erased": events, "dead_letters_erased": dead_letters}}


async def erase_redis(ctx: ApiContext, brand_id: str, viewer_id: str, erasure_id: str, events: int,
                      dead_letters: int) -> tuple[int, int]:
    streams = sorted(sid for sid, s in ctx.setup.state.streams.items() if s.get("brand_id") == brand_id)
    arg = erase_script_arg(ctx.settings.topic_prefix, ctx.settings.event_partitions, brand_id, streams, viewer_id,
                           erasure_id, events, dead_letters)
    client = ctx.extras["redis"]
    replaced = int(await client.eval(VIEWER_ERASE, 1, arg["stats"], orjson.dumps(arg).decode()))
    return replaced, len(streams)


@router.post("/v1/admin/viewers/erase", response_model=EraseOut,
             responses={202: {"model": EraseOut, "description": "erased what was stored; the pipeline was behind "
                                                                 "(complete: false): repeat the call"}},
             summary="Erase a viewer's raw events and ids (admin, or that brand's key); counts and money stay")
async def erase_viewer(body: EraseRequest, request: Request, principal: AuthPrincipal) -> Response:
    require_brand_access(principal, body.brand_id)
    ctx = ctx_of(request)
    if await ctx.setup.lookup("brands", body.brand_id) is None:
        raise not_found(f"no brand {body.brand_id!r}")
    requested = datetime.now(UTC)
    requested_ms = int(requested.timestamp() * 1000)
    erasure_id = uuid.uuid4().hex[:16]
    subject = erasure_subject(erasure_secret(ctx.settings), body.brand_id, body.viewer_id)
    audit = audit_log_of(ctx)
    await audit.record(principal.label, "viewer.erase", [AuditChange(
        "viewer", subject, None,
        {"brand_id": body.brand_id, "erasure_id": erasure_id, "requested_at": format_rfc3339(requested)})])
    async with _erase_lock:
        passed, complete = await wait_for_stores(ctx, requested_ms)
        try:
            events, dead = await erase_clickhouse(request, body.brand_id, body.viewer_id)
        except Exception as exc:
            raise unavailable("ClickHouse did not erase the rows; nothing in Redis was changed, retry", 2,
                              code="erasure_unavailable") from exc
        try:
            replaced, streams = await erase_redis(ctx, body.brand_id, body.viewer_id, erasure_id, events, dead)
        except (RedisError, OSError) as exc:
            raise unavailable("Redis did not erase the ids (ClickHouse did); retry", 2,
                              code="erasure_unavailable") from exc
    erased = {"events": events, "dead_letters": dead, "redis_ids": replaced, "streams": streams}
    await audit.record(principal.label, "viewer.erased", [AuditChange(
        "viewer", subject, None, {"brand_id": body.brand_id, "erasure_id": erasure_id, "complete": passed, **erased})])
    out: dict[str, Any] = {
        "brand_id": body.brand_id, "erasure_id": erasure_id, "subject": subject,
        "requested_at": format_rfc3339(requested), "complete": passed,
        "complete_up_to": None if complete is None else format_ms(complete), "erased": erased,
    }
    data = EraseOut.model_validate(out).model_dump_json()
    return Response(data, status_code=200 if passed else 202, media_type="application/json")
