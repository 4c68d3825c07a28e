"""Per-batch live aggregation (no services)."""

from __future__ import annotations

from streams.live import LiveBatch
from streams.records import parse_event_batch
from tests.streams import kit


def test_batch_aggregates_counters_presence_and_dedup_refs() -> None:
    t0 = kit.ago(seconds=30)
    b = parse_event_batch(kit.batch("b1", [
        kit.view("e1", "s1", "v1", "join", t0), kit.view("e2", "s1", "v1", "heartbeat", kit.ago(seconds=10)),
        kit.view("e3", "s1", "v2", "leave", t0), kit.click("c1", "s1", "v1", "p1", "cr", None),
        kit.cart("a1", "s1", "v1", "p1"), kit.click("c2", "s1", "v1", "p1", "cr", None)]))
    lb = LiveBatch("p", "live", "p.events", 3)
    lb.add_offset(7)
    lb.add_offset(8)
    lb.add_events(b.events)
    arg = lb.to_script_arg(123)
    assert arg["tp"] == "p.events:3" and (arg["first"], arg["last"]) == (7, 8)
    assert arg["inc"] == {"s1": {"views": 1, "clicks": 2, "add_to_carts": 1}}
    assert arg["pc"] == {"s1": {"p1": 2}}
    assert arg["uv"] == {"s1": ["v1", "v2"]}
    presence = {v: (seen, left) for v, seen, left in arg["vw"]["s1"]}
    assert presence["v2"][0] == 0 and presence["v2"][1] > 0 and presence["v1"][1] == 0
    assert arg["ev"][0] == ["b1:e1", "s1", "views", ""] and arg["ev"][3] == ["b1:c1", "s1", "clicks", "p1"]
    assert arg["valid"] == 6
