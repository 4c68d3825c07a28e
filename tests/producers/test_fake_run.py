"""A whole (small) simulated day against the in-process fake stack: the simulator's accounting."""

from __future__ import annotations

from producers.config import SimConfig
from producers.simulator import run_simulation
from tests.producers.fake_stack import ADMIN, FakeStack, start


async def test_every_acknowledged_event_is_in_the_ground_truth() -> None:
    fake = FakeStack(unavailable_every=29)
    runners, api, ingest = await start(fake)
    try:
        cfg = SimConfig(
            seed=7,
            id_prefix="fake1",
            ingest_url=ingest,
            api_url=api,
            admin_token=ADMIN,
            brands=3,
            creators=4,
            streams=3,
            viewers=40,
            minutes=3,
            speed=2000,
            invalid_rate=0.02,
            refund_rate=0.4,
            progress=False,
            record_acked=True,
        )
        gt = await run_simulation(cfg)
    finally:
        for r in runners:
            await r.cleanup()
    t = gt.totals
    # the server's own record and the simulator's agree, id for id
    assert set(gt.document["acked"]["event_ids"]) == set(fake.accepted_events)
    assert t["events_acked"] == len(fake.accepted_events) == t["events_accepted_reported"]
    assert t["events_acked"] + t["events_rejected"] + t["events_unacked"] == t["events_sent"]
    assert t["invalid_events_sent"] > 0 and t["invalid_events_acked"] == 0
    assert t["events_rejected"] == t["invalid_events_sent"]
    assert set(gt.document["acked"]["redirect_click_ids"]) == set(fake.redirect_clicks)
    # link previews and repeats (click hygiene): each person's first click id, never a bot's
    assert t["bot_redirects_sent"] > 0 and t["bot_redirects_counted"] == 0
    assert t["repeat_clicks_matched"] > 0 and t["repeat_clicks_mismatched"] == 0
    # what a real shop also sends: cancellations (booked), test orders and other topics (200, nothing)
    assert t["cancellations_acked"] == t["cancellations_sent"] == len(fake.cancellations)
    assert t["ignored_test_orders_acked"] == t["ignored_test_orders_sent"]
    assert t["ignored_webhooks_acked"] == t["ignored_webhooks_sent"]
    assert t["orders_acked"] == len(fake.orders) and t["refunds_acked"] == len(fake.refunds)
    assert t["orders_sent"] == t["orders_acked"] and t["refunds_sent"] == t["refunds_acked"]
    assert {"orders/create", "refunds/create"} <= set(fake.shopify_topics)
    # 503s were retried after Retry-After, never counted as acknowledged
    assert fake.served_503 > 0 and t["retry_after_waits"] == fake.served_503
    assert t["duplicate_events_sent"] > 0 and t["retries_sent"] > 0 and t["late_events_sent"] > 0
    # every unique order is in the truth once
    unique_orders = {(o.get("brand_id") or o["brand"], str(o.get("order_id") or o["id"])) for o in fake.orders}
    assert len(gt.document["orders"]) == len(unique_orders)
    brands = gt.document["brands"]
    assert sum(b["orders"] for b in brands.values()) == len(unique_orders)
    assert sum(b["unattributed_orders"] for b in brands.values()) > 0
    by = {o["attributed_by"] for o in gt.document["orders"]}
    assert by == {"click", "coupon", "none"}
    # views are joins; clicks include redirect clicks of stream links
    streams = gt.document["streams"]
    assert all(s["views"] >= s["unique_viewers"] > 0 for s in streams.values())
    assert all(s["clicks"] > 0 for s in streams.values())
