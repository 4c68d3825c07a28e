"""Retention (contract "Operating it"): the raw event tables expire after
LIVELEDGER_EVENTS_RETENTION_DAYS (migration 0106 + the migrate command's TTL step), the money ledger
and the audit log never do. Against the ClickHouse server, on a fresh database."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from clickhouse_connect.driver.client import Client

from consumers.migrate import RETENTION_TABLES, discover, migrate, run
from liveledger.ch import get_client
from liveledger.settings import Settings
from liveledger.storage.clickhouse import (
    COMMISSION_VERSIONS,
    CREATOR_LEDGER,
    EVENT_COLUMNS,
    EVENTS,
    ORDER_COLUMNS,
    ORDER_VERSIONS,
    ORDERS_LEDGER,
    PAYOUT_BATCHES,
    PAYOUT_ITEMS,
    REFUNDS,
    SETUP_AUDIT,
)

pytestmark = [pytest.mark.clickhouse]

LEDGER_TABLES = [ORDERS_LEDGER, COMMISSION_VERSIONS, REFUNDS, CREATOR_LEDGER, ORDER_VERSIONS, PAYOUT_BATCHES,
                 PAYOUT_ITEMS, SETUP_AUDIT]


@pytest.fixture
def db() -> Iterator[tuple[Client, str]]:
    client = get_client(Settings(), database="default")
    name = "ret_" + uuid.uuid4().hex[:10]
    try:
        yield client, name
    finally:
        client.command(f"DROP DATABASE IF EXISTS `{name}`")
        client.close()


def show(client: Client, db: str, table: str) -> str:
    return str(client.command(f"SHOW CREATE TABLE `{db}`.{table}"))


def test_ttl_on_raw_event_tables_only_configurable_and_reapplied(db: tuple[Client, str]) -> None:
    client, name = db
    report = migrate(client, name, events_retention_days=30)
    assert "0106_events_retention" in report.applied and report.retention == []
    assert "TTL toDateTime(received_at) + toIntervalDay(30)" in show(client, name, EVENTS)
    assert "TTL toDateTime(dead_lettered_at) + toIntervalDay(30)" in show(client, name, "dead_letters")
    assert set(RETENTION_TABLES) == {EVENTS, "dead_letters"}
    for table in LEDGER_TABLES:
        assert "TTL" not in show(client, name, table), table

    # a changed setting: the next migrate re-applies the TTL (the file's checksum did not change)
    dry = migrate(client, name, dry_run=True, events_retention_days=45)
    assert len(dry.retention) == 2 and "toIntervalDay(30)" in show(client, name, EVENTS)
    again = migrate(client, name, events_retention_days=45)
    assert again.applied == [] and len(again.retention) == 2
    assert "TTL toDateTime(received_at) + toIntervalDay(45)" in show(client, name, EVENTS)
    assert "TTL toDateTime(dead_lettered_at) + toIntervalDay(45)" in show(client, name, "dead_letters")
    assert migrate(client, name, events_retention_days=45).retention == []
    for table in LEDGER_TABLES:
        assert "TTL" not in show(client, name, table), table

    # from the settings, as `liveledger migrate` runs it
    out = io.StringIO()
    run(Settings(clickhouse_database=name, events_retention_days=60), out=out)
    assert "retention" in out.getvalue() and "INTERVAL 60 DAY" in out.getvalue()
    assert "toIntervalDay(60)" in show(client, name, EVENTS)


def test_expired_events_go_ledger_rows_stay(db: tuple[Client, str]) -> None:
    client, name = db
    migrate(client, name, events_retention_days=30)
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=31), now - timedelta(days=29)

    def event(event_id: str, received: datetime) -> list[object]:
        return ["b1", "s1", received, event_id, "view", "v1", "", "join", "", "", "", "batch", received, 0, 0]

    client.insert(f"{name}.{EVENTS}", [event("old", old), event("recent", recent)], column_names=EVENT_COLUMNS)
    order = ["b1", "o1", 1, now - timedelta(days=500), "USD", 100, 0, 100, "", "", "", "", "", "", 0, 0, 0, 0, 0,
             [], "native", ""]
    client.insert(f"{name}.{ORDERS_LEDGER}", [order], column_names=ORDER_COLUMNS)
    client.command(f"OPTIMIZE TABLE `{name}`.{EVENTS} FINAL")
    client.command(f"OPTIMIZE TABLE `{name}`.{ORDERS_LEDGER} FINAL")
    ids = [r[0] for r in client.query(f"SELECT event_id FROM `{name}`.{EVENTS}").result_rows]
    assert ids == ["recent"]
    assert client.command(f"SELECT count() FROM `{name}`.{ORDERS_LEDGER}") == 1


def test_placeholder_substituted_from_the_setting() -> None:
    m = next(m for m in discover() if m.version == 106)
    statements = m.statements("db1", {"events_retention_days": "7"})
    assert statements == [
        "ALTER TABLE db1.events MODIFY TTL toDateTime(received_at) + INTERVAL 7 DAY",
        "ALTER TABLE db1.dead_letters MODIFY TTL toDateTime(dead_lettered_at) + INTERVAL 7 DAY",
    ]
    assert "{" not in " ".join(statements)
