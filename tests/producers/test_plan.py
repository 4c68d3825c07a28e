"""The plan is a pure function of the seed (and the id prefix that names things)."""

from __future__ import annotations

import re
from dataclasses import replace

from producers.config import SimConfig, default_id_prefix
from producers.model import Plan, PlannedEvent
from producers.plan import MAX_BATCH, MIN_BATCH, build_plan

ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SMALL = SimConfig(seed=42, id_prefix="run123", viewers=60, minutes=4, brands=3, streams=3, invalid_rate=0.01)


def _events(plan: Plan) -> list[PlannedEvent]:
    return [e for s in plan.streams for t in s.ticks for b in t.batches for e in b.events]


def test_same_seed_and_prefix_plan_identical_days() -> None:
    assert build_plan(SMALL.resolved()) == build_plan(SMALL.resolved())


def test_seed_decides_the_shape_and_prefix_only_names() -> None:
    a = build_plan(SMALL.resolved())
    other_seed = build_plan(replace(SMALL, seed=43).resolved())
    other_prefix = build_plan(replace(SMALL, id_prefix="run999").resolved())
    assert [e.event_id for e in _events(a)] != [e.event_id for e in _events(other_seed)]
    assert [(e.type, e.sim_ms, e.action) for e in _events(a)] == [
        (e.type, e.sim_ms, e.action) for e in _events(other_prefix)
    ]
    assert all(e.event_id.startswith("run999-") for e in _events(other_prefix) if not e.invalid)


def test_default_prefix_is_seed_plus_nonce_and_a_valid_id() -> None:
    a, b = default_id_prefix(42), default_id_prefix(42)
    assert a != b and a.startswith("s42-") and ID.match(a)
    assert SimConfig(seed=42).resolved().id_prefix.startswith("s42-")


def test_ids_are_contract_ids_except_the_deliberately_bad_ones() -> None:
    plan = build_plan(SMALL.resolved())
    for e in _events(plan):
        assert bool(ID.match(e.event_id)) != (e.invalid == "bad_id"), e
    for s in plan.setup.streams:
        assert ID.match(s.stream_id)


def test_batches_hold_50_to_500_events_except_a_stream_tail() -> None:
    plan = build_plan(SMALL.resolved())
    for s in plan.streams:
        sizes = [len(b.events) for t in s.ticks for b in t.batches]
        assert all(n <= MAX_BATCH for n in sizes)
        assert all(n >= MIN_BATCH for n in sizes[:-1]), sizes


def test_the_awkward_cases_are_planned() -> None:
    plan = build_plan(replace(SMALL, refund_rate=0.5, viewers=150).resolved())
    tick_of_event: dict[str, int] = {}
    for s in plan.streams:
        for t in s.ticks:
            for b in t.batches:
                for e in b.events:
                    tick_of_event.setdefault(e.event_id, t.index)
    held = early = resent = 0
    order_tick: dict[str, int] = {}
    for s in plan.streams:
        for t in s.ticks:
            for w in t.webhooks:
                if w.order and not w.resend:
                    order_tick.setdefault(w.order.order_id, t.index)
                    cid = w.order.click_event_id
                    if cid and tick_of_event.get(cid, -1) > t.index:
                        held += 1  # the click's batch goes out only after the order
                resent += w.resend
    for s in plan.streams:
        for t in s.ticks:
            for w in t.webhooks:
                if w.refund and w.phase == 2:
                    assert order_tick[w.refund.order_id] >= t.index
                    early += 1
    kinds = {w.order.kind for s in plan.streams for t in s.ticks for w in t.webhooks if w.order}
    assert held > 0 and early > 0 and resent > 0
    assert {"click", "redirect", "coupon", "none"} <= kinds
    assert any(e.offset_ms < 0 for e in _events(plan))  # late events
    assert {w.order.source for s in plan.streams for t in s.ticks for w in t.webhooks if w.order} == {
        "native",
        "shopify",
    }
