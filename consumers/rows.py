"""Kafka records → ClickHouse rows (pure). Table names and column lists are the constants here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.records import InvalidRecord, parse_event_batch, parse_time_ms

EVENTS = "events"
ORDERS_LEDGER = "orders_ledger"
COMMISSION_VERSIONS = "commission_versions"
REFUNDS = "refunds"
DEAD_LETTERS = "dead_letters"

EVENT_COLUMNS = ["brand_id", "stream_id", "occurred_at", "event_id", "type", "viewer_id", "product_id", "action",
                 "campaign_id", "creator_id", "link_code", "batch_id", "received_at", "source_partition",
                 "source_offset"]
ORDER_COLUMNS = ["brand_id", "order_id", "version", "occurred_at", "currency", "gross_minor", "refunded_minor",
                 "net_minor", "via", "creator_id", "campaign_id", "stream_id", "click_id", "coupon_code",
                 "rate_bps", "flat_minor", "hold_days", "commission_minor", "reversed_minor", "skus", "source"]
REFUND_COLUMNS = ["brand_id", "refund_id", "order_id", "amount_minor", "currency", "occurred_at"]
DLQ_COLUMNS = ["source_topic", "source_partition", "source_offset", "idx", "reason", "detail", "key", "payload",
               "dead_lettered_at"]

COLUMNS = {EVENTS: EVENT_COLUMNS, ORDERS_LEDGER: ORDER_COLUMNS, COMMISSION_VERSIONS: ORDER_COLUMNS,
           REFUNDS: REFUND_COLUMNS, DEAD_LETTERS: DLQ_COLUMNS}


def _dt(ms: int) -> int:
    """A ``DateTime64(3, 'UTC')`` value: clickhouse-connect takes integer ticks (epoch milliseconds)
    as they are, which skips building a ``datetime`` per value and converting it back (~20 % of the
    sink's CPU, docs/benchmarks.md). Every time column the sink writes is ``DateTime64(3, 'UTC')``."""
    return ms


@dataclass(slots=True)
class Rows:
    """Rows per table, accumulated for one flush."""

    tables: dict[str, list[list[Any]]] = field(default_factory=lambda: {t: [] for t in COLUMNS})

    def __len__(self) -> int:
        return sum(len(v) for v in self.tables.values())


def event_rows(value: bytes | None, key: bytes | None, partition: int, offset: int) -> list[list[Any]]:
    """Rows for the valid events of one events record (invalid ones are dead-lettered by the worker)."""
    try:
        batch = parse_event_batch(value, key)
    except InvalidRecord:
        return []
    received = _dt(batch.received_ms)
    return [[e.brand_id, e.stream_id or "", _dt(e.occurred_ms), e.event_id, e.type, e.viewer_id or "",
             e.product_id or "", e.action or "", e.campaign_id or "", e.creator_id or "", e.link_code or "",
             batch.batch_id, received, partition, offset] for e in batch.events]


def ledger_rows(value: bytes | None) -> tuple[str, list[Any]] | None:
    """(table, row) for one ledger fact; ``order`` facts go to orders_ledger and commission_versions."""
    if not value:
        return None
    fact = orjson.loads(value)
    occurred = _dt(parse_time_ms(fact["occurred_at"], "occurred_at"))
    if fact.get("kind") == "order":
        return ORDERS_LEDGER, [
            fact["brand_id"], fact["order_id"], int(fact["version"]), occurred, fact["currency"],
            fact["gross_minor"], fact["refunded_minor"], fact["net_minor"], fact.get("via") or "",
            fact.get("creator_id") or "", fact.get("campaign_id") or "", fact.get("stream_id") or "",
            fact.get("click_id") or "", fact.get("coupon_code") or "", fact["rate_bps"], fact["flat_minor"],
            fact["hold_days"], fact["commission_minor"], fact["reversed_minor"], list(fact.get("skus") or []),
            fact.get("source") or ""]
    if fact.get("kind") == "refund":
        return REFUNDS, [fact["brand_id"], fact["refund_id"], fact["order_id"], fact["amount_minor"],
                         fact.get("currency") or "", occurred]
    return None


def dlq_row(value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]] | tuple[Any, ...],
            timestamp_ms: int) -> list[Any]:
    h = {k: v.decode("utf-8", "replace") for k, v in headers}
    return [h.get("dlq.topic", ""), int(h.get("dlq.partition", "0")), int(h.get("dlq.offset", "0")),
            int(h.get("dlq.index", "-1")), h.get("dlq.reason", ""), h.get("dlq.detail", ""),
            (key or b"").decode("utf-8", "replace"), (value or b"").decode("utf-8", "replace"), _dt(timestamp_ms)]
