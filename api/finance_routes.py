"""Finance endpoints (contract "Reading"): payout batches and reconciliation. Finance and admin keys.

Payouts (docs/api.md "Payouts"): ``POST /v1/finance/payouts {period_end}`` plans the batch with
``liveledger.domain.payouts.plan_payout`` from the ledger's commission versions and the payout items
stored so far, stores it in ClickHouse (``payout_batches`` / ``payout_items``, migration 0100) and
returns it; the same ``period_end`` again returns the stored batch unchanged. A new batch whose
period ends after the finance watermark is refused (``409 not_complete``) unless ``force`` is set,
which is recorded in the audit log (``payout.force``).

Watermark (docs/money-rules.md "Completeness watermark"): ``GET /v1/finance/watermark``.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field, StrictBool

from api.audit import AuditChange, audit_log_of
from api.auth import AuthPrincipal
from api.context import ctx_of
from api.params import ApiDate, parse_instant, parse_window
from api.read_routes import iso_or_none, ledger_of, live_reader
from api.stores import Ledger, LedgerOrder, StoredBatch, complete_up_to, current_watermark
from liveledger.auth import require_role
from liveledger.domain.attribution import DEFAULT_MIN_PAYOUT_MINOR
from liveledger.domain.payouts import (
    CommissionVersion,
    PayoutSequenceError,
    payout_cutoff,
    payout_id_for,
    plan_payout,
    version_from_state,
)
from liveledger.errors import ServiceError, conflict, invalid, not_found, payload_too_large, unavailable
from liveledger.setup_state import Principal
from liveledger.storage.progress import WatermarkReader
from liveledger.storage.watermark import Watermark
from schemas.money import CURRENCY_EXPONENTS, format_minor
from schemas.time import format_ms, format_rfc3339, to_ms

router = APIRouter(tags=["finance"])
_payout_lock = asyncio.Lock()

_ONE_SECOND = timedelta(seconds=1)
MAX_CSV_BYTES = 20 * 1024 * 1024
CSV_COLUMNS = ["order_id", "occurred_at", "currency", "net_minor"]


def finance_only(principal: Principal) -> None:
    require_role(principal, "finance", "admin")


# --- models ---------------------------------------------------------------------------------------

class PayoutRequest(BaseModel):
    period_end: ApiDate = Field(description="last day of the period (UTC), not in the future; 2000-01-01 .. 2099-12-31")
    force: StrictBool = Field(False, description="create the batch even though the period ends after the watermark's "
                                                 "complete_up_to (recorded in the audit log as payout.force)")


class WatermarkEntry(BaseModel):
    stage: str = Field(description="live (Redis live path) | ledger (Redis ledger path) | clickhouse (the sink)")
    topic: str
    partition: int
    applied_offset: int = Field(description="last offset the stage applied (-1: none)")
    end_offset: int = Field(description="the log end offset when read (the next offset to be written)")
    lag: int = Field(description="records not applied yet")
    complete_up_to: str | None
    basis: str = Field(description="caught_up | first_unapplied | mapped (ll.ledger, through earlier readings) "
                                   "| unknown")


class WatermarkOut(BaseModel):
    complete_up_to: str | None = Field(description="every event ingest acknowledged before this time is reflected "
                                                   "in the ledger (ClickHouse) and the live views (Redis)")
    computed_at: str = Field(description="when the stages were read")
    stale: bool = Field(description="the latest reading failed (Kafka or Redis unreachable): this is the last good one")
    error: str | None = None
    clock_skew_s: float = Field(description="subtracted from every entry: the clock difference allowed between hosts")
    partitions: list[WatermarkEntry]


class PayoutLineOut(BaseModel):
    creator_id: str
    currency: str
    amount_minor: int = Field(description="paid amount (clawbacks already netted)")
    orders: int
    clawback_minor: int = Field(0, description="the negative part of amount_minor: refunds after payment")


class CarriedOut(PayoutLineOut):
    threshold_minor: int
    reason: str = Field(description="below_minimum | not_positive (a clawback debt)")


class TotalOut(BaseModel):
    currency: str
    amount_minor: int
    lines: int


class PayoutBatch(BaseModel):
    payout_id: str
    period_end: date
    created_at: str
    lines: list[PayoutLineOut]
    carried_over: list[CarriedOut]
    totals: list[TotalOut]


class PayoutList(BaseModel):
    payouts: list[PayoutBatch]


def batch_json(b: StoredBatch) -> dict[str, Any]:
    totals: dict[str, list[int]] = {}
    for line in b.lines:
        t = totals.setdefault(line["currency"], [0, 0])
        t[0] += int(line["amount_minor"])
        t[1] += 1
    return {
        "payout_id": b.payout_id,
        "period_end": b.period_end.isoformat(),
        "created_at": format_rfc3339(b.created_at),
        "lines": b.lines,
        "carried_over": b.carried_over,
        "totals": [{"currency": c, "amount_minor": v[0], "lines": v[1]} for c, v in sorted(totals.items())],
    }


def batch_csv(b: StoredBatch) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["payout_id", "period_end", "creator_id", "currency", "amount_minor", "amount", "orders"])
    for line in b.lines:
        writer.writerow([b.payout_id, b.period_end.isoformat(), line["creator_id"], line["currency"],
                         line["amount_minor"], format_minor(int(line["amount_minor"]), line["currency"]),
                         line["orders"]])
    return out.getvalue()


# --- payouts --------------------------------------------------------------------------------------

def not_complete(period_end: date, wm: Watermark | None) -> ServiceError:
    """``409 not_complete``: the period ends after the watermark; the details carry it (the
    ``period_end`` line with ``complete_up_to``, then every stage entry still below the period's end)."""
    ends = payout_cutoff(period_end)
    complete = None if wm is None or wm.complete_ms is None else format_ms(wm.complete_ms)
    message = (f"the ledger is complete up to {complete or 'an unknown time'}, before the end of {period_end} "
               f"({format_rfc3339(ends)}); retry once GET /v1/finance/watermark passes it, or send \"force\": true")
    details: list[dict[str, Any]] = [{"field": "period_end", "reason": "ends after complete_up_to",
                                      "period_ends_at": format_rfc3339(ends), "complete_up_to": complete}]
    if wm is not None:
        behind = [e for e in wm.entries if e.complete_ms is None or e.complete_ms < to_ms(ends)]
        details += [{"field": "watermark", "reason": f"{e.stage} {e.topic}[{e.partition}]: {e.basis}", **e.as_dict()}
                    for e in behind[:50]]
    return ServiceError(409, "not_complete", message, details)


async def check_complete(request: Request, principal: Principal, period_end: date, force: bool) -> None:
    """Refuse a new batch for a period ending after ``complete_up_to`` unless ``force``; a forced
    batch is recorded in the audit log before it is written (``503`` and nothing written if it cannot be)."""
    ctx = ctx_of(request)
    wm = await current_watermark(ctx, max_age_s=1.0)
    ends = payout_cutoff(period_end)
    if wm is not None and wm.complete_ms is not None and wm.complete_ms >= to_ms(ends):
        return
    if not force:
        raise not_complete(period_end, wm)
    complete = None if wm is None or wm.complete_ms is None else format_ms(wm.complete_ms)
    await audit_log_of(ctx).record(principal.label, "payout.force", [AuditChange(
        "payout", payout_id_for(period_end), None,
        {"period_end": period_end.isoformat(), "period_ends_at": format_rfc3339(ends), "complete_up_to": complete})])


async def run_payout(request: Request, ledger: Ledger, period_end: date, principal: Principal,
                     force: bool = False) -> tuple[StoredBatch, bool]:
    """The batch for ``period_end`` and whether this call created it. An existing batch is returned
    before anything else is checked (idempotent); then a later batch (``409 conflict``), then the
    watermark (``409 not_complete`` unless ``force``)."""
    payout_id = payout_id_for(period_end)
    existing = await ledger.batch(payout_id)
    if existing is not None:
        return existing, False
    async with _payout_lock:
        existing = await ledger.batch(payout_id)
        if existing is not None:
            return existing, False
        latest = await ledger.latest_period_end()
        if latest is not None and latest > period_end:
            raise conflict(f"a payout batch for {latest} exists; {period_end} would pay twice", "period_end",
                           f"must be after {latest}")
        await check_complete(request, principal, period_end, force)
        rows, paid = await asyncio.gather(ledger.latest_before(payout_cutoff(period_end)), ledger.paid_items())
        campaigns = ctx_of(request).setup.state.campaigns
        versions: list[CommissionVersion] = []
        for order, effective_at in rows:
            min_payout = _min_payout(campaigns, order)
            versions.append(version_from_state(order, order.version, effective_at, min_payout_minor=min_payout))
        try:
            plan = plan_payout(period_end, versions, paid)
        except PayoutSequenceError as exc:
            raise conflict(str(exc)) from exc
        await ledger.store_batch(plan, uuid.uuid4().hex, datetime.now(UTC))
    stored = await ledger.batch(payout_id)  # the winner, should another process have raced us
    assert stored is not None
    return stored, True


def _min_payout(campaigns: dict[str, dict[str, Any]], order: LedgerOrder) -> int:
    camp = campaigns.get(order.campaign_id) if order.campaign_id else None
    if camp is None:
        return DEFAULT_MIN_PAYOUT_MINOR
    return int(camp.get("min_payout_minor", DEFAULT_MIN_PAYOUT_MINOR))


@router.post("/v1/finance/payouts", response_model=PayoutBatch, status_code=201,
             responses={200: {"model": PayoutBatch, "description": "the batch already existed (idempotent)"},
                        409: {"description": "conflict: a batch for a later period_end exists; not_complete: the "
                                             "period ends after the watermark's complete_up_to (details carry it)"}},
             summary="Run (or fetch) the payout batch of a period (finance, admin)")
async def post_payout(body: PayoutRequest, request: Request, principal: AuthPrincipal) -> Response:
    finance_only(principal)
    if body.period_end > datetime.now(UTC).date():
        raise invalid("period_end is in the future", "period_end", "must not be after today (UTC)")
    batch, created = await run_payout(request, ledger_of(request), body.period_end, principal, body.force)
    data = PayoutBatch.model_validate(batch_json(batch)).model_dump_json()
    return Response(data, status_code=201 if created else 200, media_type="application/json")


@router.get("/v1/finance/payouts", response_model=PayoutList, summary="Recent payout batches (finance, admin)")
async def list_payouts(request: Request, principal: AuthPrincipal,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    finance_only(principal)
    return {"payouts": [batch_json(b) for b in await ledger_of(request).batches(limit)]}


async def _batch_or_404(request: Request, payout_id: str) -> StoredBatch:
    batch = await ledger_of(request).batch(payout_id)
    if batch is None:
        raise not_found(f"no payout batch {payout_id!r}")
    return batch


@router.get("/v1/finance/payouts/{payout_id}.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "one row per paid line"}},
            summary="A payout batch as CSV (finance, admin)")
async def get_payout_csv(payout_id: str, request: Request, principal: AuthPrincipal) -> Response:
    finance_only(principal)
    batch = await _batch_or_404(request, payout_id)
    return Response(batch_csv(batch), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{batch.payout_id}.csv"'})


@router.get("/v1/finance/payouts/{payout_id}", response_model=PayoutBatch,
            summary="A payout batch (finance, admin)")
async def get_payout(payout_id: str, request: Request, principal: AuthPrincipal) -> dict[str, Any]:
    finance_only(principal)
    return batch_json(await _batch_or_404(request, payout_id))


# --- watermark ------------------------------------------------------------------------------------

def watermark_json(wm: Watermark, reader: WatermarkReader) -> dict[str, Any]:
    return {
        "complete_up_to": None if wm.complete_ms is None else format_ms(wm.complete_ms),
        "computed_at": format_ms(wm.read_ms),
        "stale": reader.error is not None,
        "error": reader.error,
        "clock_skew_s": reader.settings.watermark_clock_skew_s,
        "partitions": [e.as_dict() for e in wm.entries],
    }


@router.get("/v1/finance/watermark", response_model=WatermarkOut,
            responses={503: {"description": "no reading has succeeded yet (Kafka or Redis unreachable)"}},
            summary="Completeness: every event acknowledged before complete_up_to is in the ledger and the live "
                    "views (finance, admin)")
async def get_watermark(request: Request, principal: AuthPrincipal) -> dict[str, Any]:
    finance_only(principal)
    ctx = ctx_of(request)
    reader: WatermarkReader | None = ctx.extras.get("watermark")
    wm = await current_watermark(ctx)
    if reader is None or wm is None:
        raise unavailable("the watermark is not known yet (Kafka or Redis unreachable)", 2,
                          code="watermark_unavailable")
    return watermark_json(wm, reader)


# --- reconciliation -------------------------------------------------------------------------------

_COMPARED = ("orders", "net_minor", "commission_minor", "reversed_minor")


def compare_creators(ledger: dict[str, dict[str, dict[str, int]]],
                     live: dict[str, dict[str, dict[str, int]]]) -> list[dict[str, Any]]:
    rows = []
    for creator_id in sorted(set(ledger) | set(live)):
        lc, vc = ledger.get(creator_id, {}), live.get(creator_id, {})
        for currency in sorted(set(lc) | set(vc)):
            lrow = {f: lc.get(currency, {}).get(f, 0) for f in _COMPARED}
            vrow = {f: vc.get(currency, {}).get(f, 0) for f in _COMPARED}
            diffs = [{"field": f, "ledger": lrow[f], "live": vrow[f], "difference": lrow[f] - vrow[f]}
                     for f in _COMPARED if lrow[f] != vrow[f]]
            rows.append({"creator_id": creator_id, "currency": currency, "ledger": lrow, "live": vrow,
                         "differences": diffs})
    return rows


def event_counts(stats: dict[str, int]) -> dict[str, Any]:
    received = stats.get("events_received", 0)
    accepted = stats.get("events_accepted", 0)
    dedup = stats.get("events_deduplicated", 0)
    dead = stats.get("events_dead_lettered", 0)
    return {
        "received": received,
        "accepted": accepted,
        "rejected": stats.get("events_rejected", 0) + dead,
        "dead_lettered": dead,
        "deduplicated": dedup,
        "unaccounted": received - accepted - dedup - dead,
        "erased": stats.get("events_erased", 0),  # raw events deleted on request (right to erasure)
        "orders": {k[len("orders_"):]: v for k, v in sorted(stats.items()) if k.startswith("orders_")},
        "refunds": {k[len("refunds_"):]: v for k, v in sorted(stats.items()) if k.startswith("refunds_")},
        "cancellations": {k[len("cancellations_"):]: v for k, v in sorted(stats.items())
                          if k.startswith("cancellations_")},
        # click hygiene and Shopify deliveries we acknowledge without booking (counted at ingest)
        "bot_clicks": stats.get("bot_clicks", 0),
        "repeat_clicks": stats.get("repeat_clicks", 0),
        "ignored_test_orders": stats.get("ignored_test_orders", 0),
        "ignored_webhooks": stats.get("ignored_webhooks", 0),
        "dead_letter_reasons": {k[4:]: v for k, v in sorted(stats.items()) if k.startswith("dlq|")},
    }


@router.get("/v1/finance/reconciliation", summary="Pipeline counts and ledger vs live per creator (finance, admin)")
async def get_reconciliation(
    request: Request, principal: AuthPrincipal,
    from_: Annotated[str | None, Query(alias="from", description="RFC 3339 or date")] = None,
    to: Annotated[str | None, Query(description="RFC 3339 or date")] = None,
) -> dict[str, Any]:
    finance_only(principal)
    since, until = parse_window(from_, to)
    reader, ledger = live_reader(request), ledger_of(request)
    complete = await complete_up_to(ctx_of(request))  # before the reads: they hold at least what it vouches for
    stats, ledger_totals, stored = await asyncio.gather(reader.stats(), ledger.creator_totals(),
                                                        ledger.event_counts(since, until))
    creators = set(ledger_totals) | set(ctx_of(request).setup.state.creators)
    live_totals = await reader.creators_totals(creators)
    rows = compare_creators(ledger_totals, live_totals)
    mismatched = [r for r in rows if r["differences"]]
    events = event_counts(stats)
    stored_scope = "events the ClickHouse sink stored (distinct ids, by received_at) in from/to"
    if since is None and until is None:
        stored["accepted_live"] = events["accepted"]
        stored["erased"] = events["erased"]
        stored["difference"] = stored["stored"] + events["erased"] - events["accepted"]
        stored_scope = ("all events the ClickHouse sink stored (distinct ids), plus those erased on request, "
                        "against the live accepted count")
    return {
        "from": iso_or_none(since),
        "to": iso_or_none(until),
        "generated_at": format_rfc3339(datetime.now(UTC)),
        "complete_up_to": complete,
        "events": events,
        "events_scope": "pipeline counters since the stack started (Redis); from/to do not narrow them",
        "ledger_events": stored,
        "ledger_events_scope": stored_scope,
        "creators": rows,
        "creators_with_differences": len(mismatched),
        "status": "ok" if not mismatched else "differences",
    }


def parse_orders_csv(text: str) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or [h.strip().lower() for h in header] != CSV_COLUMNS:
        raise invalid("CSV header must be order_id,occurred_at,currency,net_minor", "line 1", f"got {header!r}")
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for n, rec in enumerate(reader, start=2):
        if not rec or all(not c.strip() for c in rec):
            continue
        if len(rec) != 4:
            errors.append({"field": f"line {n}", "reason": "expected 4 columns"})
            continue
        order_id, occurred, currency, net = (c.strip() for c in rec)
        try:
            at = parse_instant(occurred, "occurred_at")
        except ServiceError:
            at = None
        if not order_id or at is None or currency not in CURRENCY_EXPONENTS or not net.lstrip("-").isdigit():
            errors.append({"field": f"line {n}", "reason": "bad order_id, occurred_at, currency or net_minor"})
            continue
        rows.append({"order_id": order_id, "occurred_at": at, "currency": currency, "net_minor": int(net)})
        if len(errors) > 50:
            break
    if errors:
        raise invalid("CSV rows did not validate", details=errors[:50])
    return rows


@router.post(
    "/v1/finance/reconciliation/orders",
    summary="Compare a brand's order CSV with the ledger (finance, admin)",
    description="Body: `text/csv` with header `order_id,occurred_at,currency,net_minor` (net after refunds). "
                "Orders of the ledger between `from` and `to` (default: the CSV's first and last order time) "
                "that the CSV lacks are listed as `missing_in_csv`.",
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def post_reconcile_orders(
    request: Request, principal: AuthPrincipal,
    brand_id: Annotated[str, Query(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")],
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    finance_only(principal)
    since, until = parse_window(from_, to)
    if await ctx_of(request).setup.lookup("brands", brand_id) is None:
        raise not_found(f"no brand {brand_id!r}")
    body = await request.body()
    if len(body) > MAX_CSV_BYTES:
        raise payload_too_large(f"CSV larger than {MAX_CSV_BYTES} bytes")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise invalid("CSV must be UTF-8") from exc
    rows = parse_orders_csv(text)
    if since is None and rows:
        since = min(r["occurred_at"] for r in rows)
    if until is None and rows:
        until = max(r["occurred_at"] for r in rows).replace(microsecond=0) + _ONE_SECOND
    ledger_orders = await ledger_of(request).brand_orders(brand_id, None, None)
    seen: set[str] = set()
    missing_in_ledger, mismatches = [], []
    for r in rows:
        seen.add(r["order_id"])
        o = ledger_orders.get(r["order_id"])
        if o is None:
            missing_in_ledger.append({**r, "occurred_at": format_rfc3339(r["occurred_at"])})
            continue
        for field, csv_value, ledger_value in (("currency", r["currency"], o.currency),
                                               ("net_minor", r["net_minor"], o.net_minor)):
            if csv_value != ledger_value:
                mismatches.append({"order_id": r["order_id"], "field": field, "csv": csv_value,
                                   "ledger": ledger_value})
    missing_in_csv = [
        {"order_id": o.order_id, "occurred_at": format_rfc3339(o.occurred_at), "currency": o.currency,
         "net_minor": o.net_minor}
        for oid, o in sorted(ledger_orders.items())
        if oid not in seen and (since is None or o.occurred_at >= since) and (until is None or o.occurred_at < until)
    ]
    return {
        "brand_id": brand_id,
        "from": iso_or_none(since),
        "to": iso_or_none(until),
        "csv_orders": len(rows),
        "ledger_orders": sum(1 for o in ledger_orders.values()
                             if (since is None or o.occurred_at >= since) and (until is None or o.occurred_at < until)),
        "matched": len(rows) - len(missing_in_ledger) - len({m["order_id"] for m in mismatches}),
        "missing_in_ledger": missing_in_ledger,
        "missing_in_csv": missing_in_csv,
        "mismatches": mismatches,
        "status": "ok" if not (missing_in_ledger or missing_in_csv or mismatches) else "differences",
    }

