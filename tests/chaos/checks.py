"""The simulator's ground truth against Redis and ClickHouse, with the comparisons of
tests/e2e/test_pipeline_truth.py (imported, not copied), every difference in one report."""

from __future__ import annotations

from pprint import pformat
from typing import Any

from producers.simulator import GroundTruth
from tests.chaos.services import ChaosStack
from tests.e2e.test_pipeline_truth import (
    api_leaderboards,
    api_streams,
    clickhouse_creators,
    clickhouse_orders,
    clickhouse_refunds,
    clickhouse_streams,
    diff,
    redis_brands,
    redis_creators,
    truth_brands,
    truth_creator_currencies,
    truth_creators,
    truth_leaderboards,
    truth_orders,
    truth_refunds,
    truth_streams,
)

Json = dict[Any, Any]


def truth_differences(stack: ChaosStack, gt: GroundTruth) -> dict[str, Json]:
    """view -> differences (truth vs pipeline) for every view that differs; {} when all agree exactly.

    Redis: stream live counters (through ``GET /v1/streams/{id}/live``), creator earnings and brand
    sales hashes, the per-creator conversion (``GET /v1/brands/{id}/creators/live``). ClickHouse:
    every order of the ledger, stream counts from the events table, creator totals, refunds."""
    settings = stack.settings
    ch_streams_want = {sid: {k: v for k, v in s.items() if k != "top_products"} for sid, s in truth_streams(gt).items()}
    ch_streams = clickhouse_streams(settings)
    for sid in ch_streams_want:  # a stream without any event has no rows
        ch_streams.setdefault(sid, {"views": 0, "unique_viewers": 0, "clicks": 0, "add_to_carts": 0, "orders": 0,
                                    "gmv": {}})
    views = {
        "redis: streams live": (truth_streams(gt), api_streams(stack, gt)),
        "redis: creator earnings": (truth_creators(gt), redis_creators(settings, gt)),
        "redis: brand sales": (truth_brands(gt), redis_brands(settings, gt)),
        "redis: creator conversion": (truth_leaderboards(gt), api_leaderboards(stack, gt)),
        "clickhouse: orders ledger": (truth_orders(gt), clickhouse_orders(settings)),
        "clickhouse: streams": (ch_streams_want, ch_streams),
        "clickhouse: creators": (truth_creator_currencies(gt), clickhouse_creators(settings)),
        "clickhouse: refunds": (truth_refunds(gt), clickhouse_refunds(settings)),
    }
    return {name: d for name, (want, got) in views.items() if (d := diff(want, got))}


def assert_truth(stack: ChaosStack, gt: GroundTruth) -> None:
    diffs = truth_differences(stack, gt)
    assert not diffs, "pipeline != ground truth:\n" + "\n".join(
        f"--- {name}: {len(d)} differences\n{pformat(dict(list(d.items())[:8]), width=150)}"
        for name, d in diffs.items())


def assert_everything_delivered(gt: GroundTruth) -> None:
    """Every request of the simulator was acknowledged in the end (its retries rode out the faults)."""
    t = gt.totals
    failed = {k: t[k] for k in ("event_batches_failed", "events_unacked", "orders_failed", "refunds_failed",
                                "redirects_failed", "cancellations_failed") if t.get(k)}
    assert not failed, f"requests the simulator gave up on: {failed}; rejections {t.get('rejections')}"
    assert t["events_acked"] > 0 and t["orders_acked"] > 0 and t["refunds_acked"] > 0, t
