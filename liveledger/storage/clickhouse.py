"""ClickHouse: table names, the sink's column lists and the row codecs (Kafka record → row), pure.

Tables are created by the numbered migrations in ``consumers/migrations``; the names here are the
ones every reader and writer uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schemas.errors import InvalidRecord
from schemas.time import to_ms
from schemas.wire import DeadLetter, LedgerOrderFact, decode_events_record, decode_ledger_fact

# written by the sink (migrations 0002-0004)
EVENTS = "events"
ORDERS_LEDGER = "orders_ledger"
COMMISSION_VERSIONS = "commission_versions"
REFUNDS = "refunds"
DEAD_LETTERS = "dead_letters"
# written by the API's payout runs (0100) and kept by materialized views of the ledger (0101, 0102)
PAYOUT_BATCHES = "payout_batches"
PAYOUT_ITEMS = "payout_items"
CREATOR_LEDGER = "creator_ledger"
ORDER_VERSIONS = "order_versions"
# written by the API before each setup change (0105): the audit log, GET /v1/admin/audit
SETUP_AUDIT = "setup_audit"

EVENT_COLUMNS = ["brand_id", "stream_id", "occurred_at", "event_id", "type", "viewer_id", "product_id", "action",
                 "campaign_id", "creator_id", "link_code", "batch_id", "received_at", "source_partition",
                 "source_offset"]
ORDER_COLUMNS = ["brand_id", "order_id", "version", "occurred_at", "currency", "gross_minor", "refunded_minor",
                 "net_minor", "via", "creator_id", "campaign_id", "stream_id", "click_id", "coupon_code",
                 "rate_bps", "flat_minor", "hold_days", "commission_minor", "reversed_minor", "skus", "source",
                 "link_code"]
REFUND_COLUMNS = ["brand_id", "refund_id", "order_id", "amount_minor", "currency", "occurred_at"]
DLQ_COLUMNS = ["source_topic", "source_partition", "source_offset", "idx", "reason", "detail", "key", "payload",
               "dead_lettered_at"]
PAYOUT_ITEM_COLUMNS = ["payout_id", "plan_id", "period_end", "brand_id", "order_id", "creator_id", "currency",
                       "amount_minor", "paid_at"]
PAYOUT_BATCH_COLUMNS = ["payout_id", "plan_id", "period_end", "created_at", "lines_json", "carried_json"]
SETUP_AUDIT_COLUMNS = ["at", "change_id", "seq", "actor", "action", "entity", "entity_id", "before_json",
                       "after_json"]

COLUMNS = {EVENTS: EVENT_COLUMNS, ORDERS_LEDGER: ORDER_COLUMNS, COMMISSION_VERSIONS: ORDER_COLUMNS,
           REFUNDS: REFUND_COLUMNS, DEAD_LETTERS: DLQ_COLUMNS}

# Every time column the sink writes is ``DateTime64(3, 'UTC')``: clickhouse-connect takes integer
# ticks (epoch milliseconds) as they are, which skips building a ``datetime`` per value and converting
# it back (~20 % of the sink's CPU, docs/benchmarks.md).


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(dt: datetime) -> int:
    """Aware datetime → epoch milliseconds, exactly (integer fields of the timedelta, ~3x faster than
    ``schemas.time.to_ms``'s timedelta floor division; the same value, tested)."""
    td = dt - _EPOCH
    return td.days * 86_400_000 + td.seconds * 1000 + td.microseconds // 1000


class Columns:
    """Column lists per table, accumulated for one flush and inserted with
    ``column_oriented=True``: records are decoded straight into the columns (no per-row list or
    dict), and clickhouse-connect serialises each column without transposing rows."""

    __slots__ = ("counts", "tables")

    def __init__(self) -> None:
        self.tables: dict[str, list[list[Any]]] = {t: [[] for _ in COLUMNS[t]] for t in COLUMNS}
        self.counts: dict[str, int] = dict.fromkeys(COLUMNS, 0)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def add_events(self, value: bytes | None, key: bytes | None, partition: int, offset: int) -> int:
        """The valid events of one events record (invalid ones are dead-lettered by the worker);
        returns how many were added."""
        try:
            batch = decode_events_record(value, key)
        except InvalidRecord:
            return 0
        events = batch.events
        n = len(events)
        if not n:
            return 0
        (brand, stream, occurred, event_id, typ, viewer, product, action, campaign, creator, link, batch_id,
         received, part, off) = self.tables[EVENTS]
        ms = epoch_ms
        for e in events:
            d = e.__dict__
            stream.append(d.get("stream_id") or "")
            occurred.append(ms(d["occurred_at"]))
            event_id.append(d["event_id"])
            typ.append(d["type"])
            viewer.append(d.get("viewer_id") or "")
            product.append(d.get("product_id") or "")
            action.append(d.get("action") or "")
            campaign.append(d.get("campaign_id") or "")
            creator.append(d.get("creator_id") or "")
            link.append(d.get("link_code") or "")
        brand.extend([batch.brand_id] * n)
        batch_id.extend([batch.batch_id] * n)
        received.extend([ms(batch.received_at)] * n)
        part.extend([partition] * n)
        off.extend([offset] * n)
        self.counts[EVENTS] += n
        return n

    def add_row(self, table: str, row: list[Any]) -> None:
        for column, value in zip(self.tables[table], row, strict=True):
            column.append(value)
        self.counts[table] += 1

    def add_ledger(self, value: bytes | None) -> str | None:
        """One ledger fact; ``order`` facts go to orders_ledger and commission_versions. Returns the
        table (None for a value that is not a ledger fact)."""
        out = ledger_rows(value)
        if out is None:
            return None
        table, row = out
        self.add_row(table, row)
        if table == ORDERS_LEDGER:
            self.add_row(COMMISSION_VERSIONS, row)
        return table

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        """The rows of ``table`` (for tests and debugging)."""
        return list(zip(*self.tables[table], strict=True))


@dataclass(slots=True)
class Rows:
    """Rows per table, accumulated for one flush (row-oriented; the sink uses :class:`Columns`)."""

    tables: dict[str, list[list[Any]]] = field(default_factory=lambda: {t: [] for t in COLUMNS})

    def __len__(self) -> int:
        return sum(len(v) for v in self.tables.values())


def event_rows(value: bytes | None, key: bytes | None, partition: int, offset: int) -> list[list[Any]]:
    """Rows for the valid events of one events record (invalid ones are dead-lettered by the worker)."""
    try:
        batch = decode_events_record(value, key)
    except InvalidRecord:
        return []
    received = to_ms(batch.received_at)
    brand, batch_id = batch.brand_id, batch.batch_id
    rows = []
    for e in batch.events:
        d = e.__dict__
        rows.append([brand, d.get("stream_id") or "", to_ms(e.occurred_at), e.event_id, e.type,
                     d.get("viewer_id") or "", d.get("product_id") or "", d.get("action") or "",
                     d.get("campaign_id") or "", d.get("creator_id") or "", d.get("link_code") or "",
                     batch_id, received, partition, offset])
    return rows


def ledger_rows(value: bytes | None) -> tuple[str, list[Any]] | None:
    """(table, row) for one ledger fact; ``order`` facts go to orders_ledger and commission_versions.
    ``None`` for a value that is not a ledger fact (nothing this sink can store)."""
    try:
        fact = decode_ledger_fact(value)
    except InvalidRecord:
        return None
    occurred = to_ms(fact.occurred_at)
    if isinstance(fact, LedgerOrderFact):
        return ORDERS_LEDGER, [
            fact.brand_id, fact.order_id, fact.version, occurred, fact.currency, fact.gross_minor,
            fact.refunded_minor, fact.net_minor, fact.via or "", fact.creator_id or "", fact.campaign_id or "",
            fact.stream_id or "", fact.click_id or "", fact.coupon_code or "", fact.rate_bps, fact.flat_minor,
            fact.hold_days, fact.commission_minor, fact.reversed_minor, fact.skus, fact.source, fact.link_code or ""]
    return REFUNDS, [fact.brand_id, fact.refund_id, fact.order_id, fact.amount_minor, fact.currency, occurred]


def dlq_row(value: bytes | None, key: bytes | None, headers: Iterable[tuple[str, bytes]],
            timestamp_ms: int) -> list[Any]:
    d = DeadLetter.from_headers(headers)
    return [d.topic, d.partition, d.offset, -1 if d.index is None else d.index, d.reason, d.detail,
            (key or b"").decode("utf-8", "replace"), (value or b"").decode("utf-8", "replace"), timestamp_ms]


# --- the per-creator earnings summary (0107): consumers/summary.py builds it, api/stores.py reads it

CREATOR_SUMMARY = "creator_summary"
CREATOR_SUMMARY_DIRTY = "creator_summary_dirty"
CREATOR_SUMMARY_BUILDS = "creator_summary_builds"
SUMMARY_DIMS = ("day", "campaign", "stream", "link")

# The latest version of each of the selected creator_ledger rows (no FINAL: argMax by version), with
# the keys the earnings read groups by, as api/stores.py's LedgerOrder has them: the stream only for
# click orders, hold days only under campaign terms, the day and month of the order in UTC.
LATEST_CREATOR_ORDERS = """SELECT creator_id, brand_id, order_id, max(version) AS latest_version,
    argMax(via, version) AS latest_via, argMax(occurred_at, version) AS order_time,
    argMax(currency, version) AS cur, argMax(campaign_id, version) AS campaign_key,
    if(argMax(via, version) = 'click', argMax(stream_id, version), '') AS stream_key,
    argMax(link_code, version) AS link_key,
    if(argMax(campaign_id, version) != '', argMax(hold_days, version), 0) AS hold_eff,
    argMax(net_minor, version) AS net, argMax(commission_minor, version) AS commission,
    argMax(reversed_minor, version) AS reversed,
    toStartOfMonth(argMax(occurred_at, version)) AS month
FROM {db}.creator_ledger WHERE {where} GROUP BY creator_id, brand_id, order_id"""
# One row per order and grouping: ARRAY JOIN of this gives (dim, key) pairs; key '' is no group.
DIM_KEYS = ("[('day', toString(toDate(order_time))), ('campaign', campaign_key), ('stream', stream_key), "
            "('link', link_key)]")
