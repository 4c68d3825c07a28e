"""The per-creator earnings summary (migration 0107): rebuild the (creator, month) pairs written since
their last build. Run by the ClickHouse sink after its flushes (at most every ``interval`` seconds),
and callable on its own (``summarize``).

A run: ``T`` = the server's clock; every pair whose newest mark (``creator_summary_dirty``, kept by
a materialized view of orders_ledger for click orders) is newer than its build's ``covers`` is
rebuilt from creator_ledger (latest version of each click order, argMax by version), the rows
written with ``built_at = T``, then the build recorded with ``covers = T - margin``. ``margin``
bounds how long an insert's rows may take to become visible after its mark was stamped: a write
marked at or before ``covers`` is visible to the rebuild that starts after ``T``; one marked later
keeps the pair dirty (read from creator_ledger) until the next run. A run that fails half-way
leaves pairs dirty, never wrong: the reader uses a month only when its recorded build covers every
mark.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from liveledger.storage.clickhouse import (
    CREATOR_SUMMARY,
    CREATOR_SUMMARY_BUILDS,
    CREATOR_SUMMARY_DIRTY,
    DIM_KEYS,
    LATEST_CREATOR_ORDERS,
)

MARGIN_S = 10.0
CHUNK_CREATORS = 100  # creators per rebuild statement

_DUE = (
    f"SELECT d.creator_id, d.month FROM (SELECT creator_id, month, max(marked_at) AS marked "
    f"FROM {{db}}.{CREATOR_SUMMARY_DIRTY} GROUP BY creator_id, month) AS d "
    f"LEFT JOIN (SELECT creator_id, month, max(covers) AS covers FROM {{db}}.{CREATOR_SUMMARY_BUILDS} "
    f"GROUP BY creator_id, month) AS b ON d.creator_id = b.creator_id AND d.month = b.month "
    f"WHERE d.marked > b.covers ORDER BY d.creator_id, d.month"
)
_BUILD = (
    f"INSERT INTO {{db}}.{CREATOR_SUMMARY} (creator_id, month, dim, key, currency, orders, net_minor, "
    f"commission_minor, reversed_minor, max_hold, built_at) "
    f"SELECT creator_id, month, dk.1 AS dim, dk.2 AS key, cur, count(), sum(net), "
    f"sum(commission), sum(reversed), max(hold_eff), {{t:DateTime64(3, 'UTC')}} "
    f"FROM ({LATEST_CREATOR_ORDERS}) ARRAY JOIN {DIM_KEYS} AS dk "
    f"WHERE latest_via = 'click' AND key != '' GROUP BY creator_id, month, dim, key, cur"
)
# the chunk's creators and months (a superset of its pairs, rebuilding a clean month changes nothing;
# bound as short URL parameters)
_PAIRS = "creator_id IN {c:Array(String)} AND toStartOfMonth(occurred_at) IN {m:Array(Date)}"


def due_pairs(client: Client, database: str) -> list[tuple[str, date]]:
    rows = client.query(_DUE.replace("{db}", database)).result_rows
    return [(str(c), m) for c, m in rows]


def summarize(client: Client, database: str, margin_s: float = MARGIN_S, chunk: int = CHUNK_CREATORS) -> int:
    """Rebuild every due (creator, month); returns how many were rebuilt."""
    pairs = due_pairs(client, database)
    if not pairs:
        return 0
    now: datetime = client.query("SELECT now64(3, 'UTC')").result_rows[0][0]
    covers = now - timedelta(seconds=margin_s)
    sql = _BUILD.replace("{db}", database).replace("{where}", _PAIRS)
    by_creator: dict[str, list[date]] = {}
    for c, m in pairs:
        by_creator.setdefault(c, []).append(m)
    creators = sorted(by_creator)
    for i in range(0, len(creators), chunk):
        part = creators[i:i + chunk]
        months = sorted({m for c in part for m in by_creator[c]})
        params: dict[str, Any] = {"t": now, "c": part, "m": months}
        client.command(sql, parameters=params)
        client.insert(f"{database}.{CREATOR_SUMMARY_BUILDS}",
                      [[c, m, now, covers] for c in part for m in by_creator[c]],
                      column_names=["creator_id", "month", "built_at", "covers"])
    return len(pairs)
