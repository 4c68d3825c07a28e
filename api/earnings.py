"""A creator's earnings from the per-creator summary (migration 0107) instead of every order.

``creator_grouped`` returns exactly what ``earnings_grouped`` over the creator's orders returns
(api/read_routes.py ``creator_earnings_scan``, the old path; tests/clickhouse/test_earnings_summary.py
compares both on random ledgers with refunds, cancellations, re-sends and re-attributions):

1. **summary** rows (``creator_summary``) for the months that are *closed* for this request: the
   month's recorded build covers every write marked for it (``creator_summary_builds.covers >=``
   newest ``creator_summary_dirty.marked_at``), the month lies wholly inside ``[from, to)``, and
   every order of the month is approved at ``as_of`` (month end + the month's longest hold <=
   as_of), so its commission is all ``approved``;
2. **the rest** aggregated by ClickHouse from creator_ledger (latest version per order): the click
   orders of the other months, with ``pending`` per order (``as_of <`` order time +
   hold), and every coupon order still the creator's (a coupon order whose order moved on to a
   later version under another creator is dropped, as the scan path does);
3. **payouts**: the two steps above are the breakdown with nothing paid; for the (few) orders with
   payout items the exact breakdown of ``liveledger.domain.status`` replaces it (and orphan items,
   orders re-attributed away after payment, count as clawbacks), from the same rows the scan path
   reads, restricted to those orders.

All money is summed by ClickHouse as Int64 and returned as Python ints: exact to the minor unit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from api.stores import Ledger, LedgerOrder
from liveledger.domain.payouts import PayoutItem
from liveledger.domain.status import CommissionBreakdown, EarningsTotals, earnings_grouped
from liveledger.storage.clickhouse import (
    CREATOR_LEDGER,
    CREATOR_SUMMARY,
    CREATOR_SUMMARY_BUILDS,
    CREATOR_SUMMARY_DIRTY,
    DIM_KEYS,
    LATEST_CREATOR_ORDERS,
    ORDER_VERSIONS,
)

Grouped = dict[str, dict[tuple[Any, str], EarningsTotals]]
# the groupings of the earnings response: name -> key of a LedgerOrder (read_routes.creator_earnings)
KEYS: Mapping[str, Callable[[LedgerOrder], Any]] = {
    "total": lambda _s: 0,
    "campaign": lambda s: s.campaign_id,
    "stream": lambda s: s.stream_id,
    "link": lambda s: s.link_code,  # coupon orders count under the coupon's link
    "day": lambda s: s.occurred_at.date().isoformat(),
}
_DIM_TO_NAME = {"day": "day", "campaign": "campaign", "stream": "stream", "link": "link"}

# The months read from the summary: built and covering every mark, wholly inside the window
# ([lo, hi) in months), and all approved at as_of (month end + the month's longest hold).
_USED = (
    "SELECT month FROM (SELECT month, dim, key, currency, argMax(max_hold, built_at) AS h "
    f"FROM {{db}}.{CREATOR_SUMMARY} WHERE creator_id = {{c:String}} AND month IN ("
    f"SELECT d.month FROM (SELECT month, max(marked_at) AS marked FROM {{db}}.{CREATOR_SUMMARY_DIRTY} "
    "WHERE creator_id = {c:String} GROUP BY month) AS d "
    f"INNER JOIN (SELECT month, max(covers) AS cov FROM {{db}}.{CREATOR_SUMMARY_BUILDS} "
    "WHERE creator_id = {c:String} GROUP BY month) AS b ON d.month = b.month "
    "WHERE b.cov >= d.marked AND d.month >= {lo:Date} AND d.month < {hi:Date}) "
    "GROUP BY month, dim, key, currency) GROUP BY month "
    "HAVING toDateTime64(addMonths(month, 1), 3, 'UTC') + toIntervalDay(max(h)) <= {asof:DateTime64(3, 'UTC')}"
)
_SUMMARY = (
    "SELECT dim, key, currency, sum(n), sum(net), 0, sum(commission), sum(reversed) FROM ("
    "SELECT month, dim, key, currency, argMax(orders, built_at) AS n, argMax(net_minor, built_at) AS net, "
    "argMax(commission_minor, built_at) AS commission, argMax(reversed_minor, built_at) AS reversed "
    f"FROM {{db}}.{CREATOR_SUMMARY} WHERE creator_id = {{c:String}} AND month IN ({_USED}) "
    "GROUP BY month, dim, key, currency) GROUP BY dim, key, currency"
)
# coupon orders of the creator whose latest version is still theirs (order_versions: newest per order)
_NOT_MOVED = (f"(brand_id, order_id, latest_version) IN (SELECT brand_id, order_id, max(version) FROM "
              f"{{db}}.{ORDER_VERSIONS} WHERE (brand_id, order_id) IN (SELECT brand_id, order_id FROM "
              f"{{db}}.{CREATOR_LEDGER} WHERE creator_id = {{c:String}} AND via = 'coupon') "
              "GROUP BY brand_id, order_id)")
_REST = (
    "SELECT dk.1 AS dim, dk.2 AS key, cur, count(), sum(net), sum(pending), sum(commission), sum(reversed) "
    "FROM (SELECT *, if({asof:DateTime64(3, 'UTC')} < order_time + toIntervalDay(hold_eff), commission, 0) AS pending "
    f"FROM ({LATEST_CREATOR_ORDERS}) WHERE {{window}} AND ((latest_via = 'coupon' AND {_NOT_MOVED}) OR "
    f"(latest_via = 'click' AND month NOT IN ({_USED})) "
    "OR latest_via NOT IN ('click', 'coupon'))) "
    f"ARRAY JOIN {DIM_KEYS} AS dk WHERE key != '' GROUP BY dim, key, cur"
)
# One statement, so both halves see the same builds: the summary's months and the rest's are one split.
_EARNINGS = f"{_SUMMARY} UNION ALL {_REST}"


def _months_inside(since: datetime | None, until: datetime | None) -> tuple[date, date]:
    """[lo, hi): the months wholly inside [since, until)."""
    lo = date(1970, 1, 1)
    if since is not None:
        first = date(since.year, since.month, 1)
        lo = first if _month_start(first) >= since else _next_month(first)
    hi = date(2149, 6, 1)  # the last month start of ClickHouse's Date
    if until is not None:
        hi = date(until.year, until.month, 1)  # that month ends after until unless until is its end
    return lo, hi


def _next_month(m: date) -> date:
    return date(m.year + (m.month == 12), m.month % 12 + 1, 1)


def _month_start(m: date) -> datetime:
    return datetime(m.year, m.month, 1, tzinfo=UTC)


def _add(out: Grouped, name: str, key: Any, row: EarningsTotals) -> None:
    group = out[name]
    prev = group.get((key, row.currency))
    group[(key, row.currency)] = row if prev is None else prev + row


def _neg(t: EarningsTotals) -> EarningsTotals:
    c = t.commission
    return EarningsTotals(t.currency, -t.orders, -t.net_minor,
                          CommissionBreakdown(-c.pending, -c.approved, -c.paid, -c.reversed))


def _dim_row(name: str, key: str, currency: str, orders: int, net: int, pending: int, commission: int,
             reversed_: int, out: Grouped) -> None:
    row = EarningsTotals(currency, orders, net, CommissionBreakdown(pending, commission - pending, 0, reversed_))
    _add(out, name, key, row)
    if name == "day":  # every order has exactly one day: the day rows make the totals
        _add(out, "total", 0, row)


async def creator_grouped(ledger: Ledger, creator_id: str, since: datetime | None, until: datetime | None,
                          as_of: datetime, items: list[PayoutItem] | None = None) -> Grouped:
    """``earnings_grouped`` of the creator's orders with the groupings of :data:`KEYS` (see module doc)."""
    lo, hi = _months_inside(since, until)
    window = ["1"]
    if since is not None:
        window.append("order_time >= {since:DateTime64(3, 'UTC')}")
    if until is not None:
        window.append("order_time < {until:DateTime64(3, 'UTC')}")
    sql = _EARNINGS.replace("{where}", "creator_id = {c:String}").replace("{window}", " AND ".join(window))
    params: dict[str, Any] = {"c": creator_id, "asof": as_of, "lo": lo, "hi": hi}
    if since is not None:
        params["since"] = since
    if until is not None:
        params["until"] = until
    rows, paid_items = await asyncio.gather(
        ledger._rows(sql, params), ledger.creator_paid_items(creator_id) if items is None else _given(items))
    out: Grouped = {name: {} for name in KEYS}
    for dim, key, cur, n, net, pending, commission, reversed_ in rows:
        _dim_row(_DIM_TO_NAME[str(dim)], str(key), str(cur), int(n), int(net), int(pending), int(commission),
                 int(reversed_), out)
    if paid_items:
        paid_orders = await ledger.creator_orders(creator_id, paid_only=True)
        _apply_payouts(out, creator_id, paid_orders, paid_items, since, until, as_of)
    return out


async def _given(items: list[PayoutItem]) -> list[PayoutItem]:
    return items


def in_window(orders: list[LedgerOrder], items: list[PayoutItem], creator_id: str, since: datetime | None,
              until: datetime | None) -> tuple[list[LedgerOrder], list[PayoutItem]]:
    """The creator's orders placed in ``[since, until)`` and the payout items of orders placed there (an
    item of an order not among ``orders`` counts at its ``paid_at``): what ``earnings_grouped`` sums."""
    def inside(t: datetime) -> bool:
        return (since is None or t >= since) and (until is None or t < until)

    order_time = {(o.brand_id, o.order_id): o.occurred_at for o in orders}
    # Ledger rows are priced orders as stored (api/stores.py: the stream only for click orders).
    states = [o for o in orders if o.creator_id == creator_id and inside(o.occurred_at)]
    if since is not None or until is not None:
        items = [i for i in items if inside(order_time.get((i.brand_id, i.order_id), i.paid_at))]
    return states, items


def _apply_payouts(out: Grouped, creator_id: str, orders: list[LedgerOrder], items: list[PayoutItem],
                   since: datetime | None, until: datetime | None, as_of: datetime) -> None:
    """Replace the nothing-paid breakdown of the paid orders by the exact one (the scan path's rules)."""
    states, items = in_window(orders, items, creator_id, since, until)
    unpaid = earnings_grouped(states, [], as_of, KEYS)
    exact = earnings_grouped(states, items, as_of, KEYS)
    for name in KEYS:
        for (key, _cur), row in unpaid[name].items():
            _add(out, name, key, _neg(row))
        for (key, _cur), row in exact[name].items():
            _add(out, name, key, row)
