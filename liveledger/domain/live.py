"""Live-stream ratios and rankings (pure), as the read API reports them.

The live aggregation itself (views, unique viewers, ``viewers_now`` presence, per-product clicks)
happens once, in the stream worker (:mod:`streams.live` folds a batch, the ``LIVE_FLUSH`` script in
:mod:`liveledger.storage.lua` applies it); its rules are in docs/money-rules.md, "Live metrics".
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["ctr", "cvr", "ratio", "top_products"]


def ratio(numerator: int, denominator: int, digits: int = 4) -> float:
    """``numerator / denominator`` rounded to ``digits``; 0.0 when the denominator is 0."""
    if denominator <= 0:
        return 0.0
    return round(numerator / denominator, digits)


def ctr(clicks: int, views: int) -> float:
    """Click-through rate = clicks / views (a ratio, not money)."""
    return ratio(clicks, views)


def cvr(orders: int, clicks: int) -> float:
    """Conversion rate = orders / clicks."""
    return ratio(orders, clicks)


def top_products(
    product_clicks: Mapping[str, int], product_orders: Mapping[str, int], limit: int = 10
) -> list[tuple[str, int, int]]:
    """``(product_id, clicks, orders)`` by clicks desc, then orders desc, then id."""
    ids = set(product_clicks) | set(product_orders)
    rows = [(pid, product_clicks.get(pid, 0), product_orders.get(pid, 0)) for pid in ids]
    rows.sort(key=lambda r: (-r[1], -r[2], r[0]))
    return rows[:limit]
