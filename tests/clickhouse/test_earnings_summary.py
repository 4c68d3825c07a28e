"""The earnings summary path (api/earnings.py over migration 0107's tables) against the scan path
(every order, liveledger.domain.status) on random ledgers written as the sink writes them: versions
(refunds), cancellations (net to 0), re-sends of the same version, coupon orders re-attributed to
another creator's click, payouts and clawbacks; summaries fresh, stale (written after the build)
and half-built; windows and as_of clocks that cut through months and hold periods."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from api.read_routes import creator_earnings, creator_earnings_scan
from api.stores import Ledger
from consumers.migrate import migrate
from consumers.summary import due_pairs, summarize
from liveledger.ch import get_client
from liveledger.settings import Settings
from liveledger.storage.clickhouse import (
    CREATOR_SUMMARY,
    ORDER_COLUMNS,
    ORDERS_LEDGER,
    PAYOUT_BATCH_COLUMNS,
    PAYOUT_BATCHES,
    PAYOUT_ITEM_COLUMNS,
    PAYOUT_ITEMS,
)

pytestmark = [pytest.mark.clickhouse]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CREATORS = [f"cr{i}" for i in range(6)]


def order_row(rng: random.Random, brand: str, oid: str, version: int, at: datetime, cur: str, via: str,
              creator: str, campaign: str, stream: str, link: str, hold: int, gross: int, refunded: int) -> list[Any]:
    net = max(0, gross - refunded)
    rate, flat = (1000, 25) if campaign else (0, 0)
    commission = net * rate // 10000 + (flat if net > 0 else 0)
    original = gross * rate // 10000 + (flat if gross > 0 else 0)
    return [brand, oid, version, at, cur, gross, refunded, net, via, creator, campaign,
            stream if via == "click" else "", f"k{oid}" if via == "click" else "", "" if via == "click" else "SAVE",
            rate, flat, hold, commission, original - commission, [], "shopify", link]


def ledger(rng: random.Random, n: int) -> tuple[list[list[Any]], list[list[Any]]]:
    """(version rows in write order, rows written later: the stale tail)."""
    rows: list[list[Any]] = []
    for i in range(n):
        brand, oid = f"b{i % 3}", f"o{i}"
        at = T0 + timedelta(days=rng.uniform(0, 150), milliseconds=rng.randint(0, 999))
        at = at.replace(microsecond=at.microsecond // 1000 * 1000)
        cur = "EUR" if i % 5 else "JPY"
        creator = rng.choice(CREATORS)
        via = "coupon" if rng.random() < 0.3 else "click"
        campaign = rng.choice(["cmpA", "cmpB", ""])
        stream = rng.choice(["s1", "s2", "s3"])
        link = rng.choice(["l1", "l2", ""])
        hold = rng.choice([0, 7, 30])
        gross = rng.randint(1, 50_000)
        version, refunded = 1, 0
        base = (brand, oid)
        rows.append(order_row(rng, *base, version, at, cur, via, creator, campaign, stream, link, hold, gross, 0))
        for _ in range(rng.choice([0, 0, 1, 2])):  # refunds: new versions
            version += 1
            refunded = min(gross, refunded + rng.randint(0, gross))
            rows.append(order_row(rng, *base, version, at, cur, via, creator, campaign, stream, link, hold, gross,
                                  refunded))
        if rng.random() < 0.1:  # cancelled: net 0
            version += 1
            rows.append(order_row(rng, *base, version, at, cur, via, creator, campaign, stream, link, hold, gross,
                                  gross))
        if via == "coupon" and rng.random() < 0.3:  # a late click of another creator takes it
            version += 1
            other = rng.choice([c for c in CREATORS if c != creator])
            rows.append(order_row(rng, *base, version, at, cur, "click", other, campaign, stream, link, hold, gross,
                                  refunded))
        if rng.random() < 0.2:  # a re-send of the latest version
            rows.append(list(rows[-1]))
    rng.shuffle(rows)  # versions of one order arrive in order, but orders interleave
    rows.sort(key=lambda r: (r[1], r[2]))
    order: dict[str, float] = {}
    for r in rows:
        order.setdefault(r[1], rng.random())
    rows.sort(key=lambda r: (order[r[1]], r[2]))
    cut = int(len(rows) * 0.85)
    return rows[:cut], rows[cut:]


def payouts(rng: random.Random, rows: list[list[Any]]) -> tuple[list[list[Any]], list[list[Any]]]:
    items, batches = [], []
    latest: dict[str, list[Any]] = {}
    for r in rows:
        if r[1] not in latest or r[2] >= latest[r[1]][2]:
            latest[r[1]] = r
    picked = rng.sample(sorted(latest), k=min(40, len(latest)))
    for n, period in enumerate((date(2026, 3, 31), date(2026, 5, 31))):
        payout_id, paid_at = f"po-{period}", datetime(2026, period.month + 1, 1, 6, tzinfo=UTC)
        batches.append([payout_id, "plan1", period, paid_at, "[]", "[]"])
        for oid in picked[n::2]:
            r = latest[oid]
            amount = r[17] if rng.random() < 0.8 else -rng.randint(1, 500)  # paid, or a clawback
            items.append([payout_id, "plan1", period, r[0], oid, r[9], r[4], amount, paid_at])
        batches.append([payout_id, "plan2", period, paid_at + timedelta(seconds=1), "[]", "[]"])  # a loser
        items.append([payout_id, "plan2", period, "b0", picked[0], CREATORS[0], "EUR", 999_999, paid_at])
    return items, batches


@pytest.fixture
async def db() -> AsyncIterator[tuple[Settings, Ledger]]:
    name = "es_" + uuid.uuid4().hex[:10]
    settings = Settings(clickhouse_database=name)
    client = get_client(settings, database="default")
    migrate(client, name)
    ledger_ = Ledger(settings)
    try:
        yield settings, ledger_
    finally:
        await ledger_.close()
        client.command(f"DROP DATABASE IF EXISTS `{name}`")
        client.close()


def insert_orders(settings: Settings, rows: list[list[Any]]) -> None:
    client = get_client(settings, database=settings.clickhouse_database)
    try:
        for i in range(0, len(rows), 97):  # many inserts, as the sink's flushes
            client.insert(ORDERS_LEDGER, rows[i:i + 97], column_names=ORDER_COLUMNS)
    finally:
        client.close()


CASES = [
    (None, None, datetime(2026, 7, 1, tzinfo=UTC)),
    (None, None, datetime(2026, 6, 5, 6, tzinfo=UTC)),  # after the first payout, before the second
    (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 9, 1, tzinfo=UTC)),
    (datetime(2026, 1, 17, 3, 4, 5, tzinfo=UTC), datetime(2026, 5, 9, tzinfo=UTC), datetime(2026, 5, 1, tzinfo=UTC)),
]


async def same_for_everyone(ledger_: Ledger) -> int:
    compared = 0
    for creator in [*CREATORS, "nobody"]:
        for since, until, as_of in CASES:
            fast, scan = await asyncio.gather(creator_earnings(ledger_, creator, since, until, as_of),
                                              creator_earnings_scan(ledger_, creator, since, until, as_of))
            assert fast == scan, (creator, since, until, as_of)
            compared += bool(scan["currencies"])
    return compared


async def test_summary_equals_scan_fresh_stale_and_without_summary(db: tuple[Settings, Ledger]) -> None:
    settings, ledger_ = db
    rng = random.Random(1)
    first, later = ledger(rng, 300)
    insert_orders(settings, first)
    client = get_client(settings, database=settings.clickhouse_database)
    try:
        items, batches = payouts(rng, first)
        client.insert(PAYOUT_ITEMS, items, column_names=PAYOUT_ITEM_COLUMNS)
        client.insert(PAYOUT_BATCHES, batches, column_names=PAYOUT_BATCH_COLUMNS)
        assert await same_for_everyone(ledger_) > 10  # nothing built yet: every month from creator_ledger
        assert summarize(client, settings.clickhouse_database, margin_s=0) > 10
        assert due_pairs(client, settings.clickhouse_database) == []
        assert client.query(f"SELECT count() FROM {CREATOR_SUMMARY}").result_rows[0][0] > 100
        await same_for_everyone(ledger_)  # fresh summary
        insert_orders(settings, later)  # written after the build: those months are dirty
        assert due_pairs(client, settings.clickhouse_database)
        await same_for_everyone(ledger_)
        # a build whose rows landed but whose record did not (a crash in between): still exact
        client.command(f"ALTER TABLE creator_summary_builds DELETE WHERE creator_id = '{CREATORS[1]}'")
        await same_for_everyone(ledger_)
        summarize(client, settings.clickhouse_database, margin_s=0)
        await same_for_everyone(ledger_)
        # re-sends of everything (a sink replay with other batches): values unchanged
        insert_orders(settings, first + later)
        summarize(client, settings.clickhouse_database, margin_s=0)
        await same_for_everyone(ledger_)
    finally:
        client.close()


async def test_a_wrong_summary_is_noticed(db: tuple[Settings, Ledger]) -> None:
    """The comparison can fail: a summary row tampered with shows in the summary path only."""
    settings, ledger_ = db
    rng = random.Random(9)
    first, _ = ledger(rng, 200)
    insert_orders(settings, first)
    client = get_client(settings, database=settings.clickhouse_database)
    try:
        summarize(client, settings.clickhouse_database, margin_s=0)
        creator, month = client.query(
            f"SELECT creator_id, month FROM {CREATOR_SUMMARY} WHERE dim = 'day' LIMIT 1").result_rows[0]
        client.command(f"INSERT INTO {CREATOR_SUMMARY} SELECT creator_id, month, dim, key, currency, orders, "
                       f"net_minor + 1, commission_minor, reversed_minor, max_hold, built_at + 1 "
                       f"FROM {CREATOR_SUMMARY} WHERE creator_id = '{creator}' AND month = '{month}' "
                       "AND dim = 'day' LIMIT 1")
        as_of = datetime(2027, 1, 1, tzinfo=UTC)
        fast = await creator_earnings(ledger_, str(creator), None, None, as_of)
        scan = await creator_earnings_scan(ledger_, str(creator), None, None, as_of)
        assert fast != scan
        assert sum(c["net_minor"] for c in fast["currencies"]) == sum(c["net_minor"] for c in scan["currencies"]) + 1
    finally:
        client.close()
