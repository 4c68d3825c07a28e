"""Per-batch live aggregation (no services)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from schemas.wire import decode_events_record as parse_event_batch
from streams.live import LiveBatch
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
    lb.add_events(b)
    arg = lb.to_script_arg(123)
    assert arg["tp"] == "p.events:3" and (arg["first"], arg["last"]) == (7, 8)
    today = datetime.now(UTC).date().isoformat()  # the clicks' UTC day (kit stamps them now)
    (s1,) = arg["streams"]  # every key the script touches is named in its argument
    # partition 3's keys, all in its hash slot (tag {p:3})
    assert s1["k"] == {"c": "p:{p:3}:live:s1:counts", "v": "p:{p:3}:live:s1:viewers", "n": "p:{p:3}:live:s1:now",
                       "l": "p:{p:3}:live:s1:left"}
    assert (arg["off"], arg["stats"]) == ("p:{p:3}:offsets:live", "p:{p:3}:stats")
    inc = {(k, f): n for k, f, n in arg["inc"]}
    assert inc == {("p:{p:3}:live:s1:counts", "views"): 1, ("p:{p:3}:live:s1:counts", "clicks"): 2,
                   ("p:{p:3}:live:s1:counts", "add_to_carts"): 1, ("p:{p:3}:live:s1:products", "clicks|p1"): 2,
                   ("p:{p:3}:conv:b1:cr", "clicks"): 2, ("p:{p:3}:conv:b1:cr", "stream|s1|clicks"): 2,
                   ("p:{p:3}:conv:b1:cr", f"day|{today}|clicks"): 2}
    assert s1["uv"] == ["v1", "v2"]
    presence = {v: (seen, left) for v, seen, left in s1["vw"]}
    assert presence["v2"][0] == 0 and presence["v2"][1] > 0 and presence["v1"][1] == 0
    # per event: its dedup key and the group of increments a duplicate subtracts again
    arg = orjson.loads(orjson.dumps(arg))  # as the script receives it
    assert arg["ev"][0] == ["p:{p:3}:dedup:b1:e1", 1] and arg["groups"][0] == [["p:{p:3}:live:s1:counts", "views"]]
    assert arg["ev"][1] == ["p:{p:3}:dedup:b1:e2", 0]  # a heartbeat counts nothing
    click_group = arg["groups"][arg["ev"][3][1] - 1]
    assert ["p:{p:3}:conv:b1:cr", "clicks"] in click_group
    assert ["p:{p:3}:live:s1:products", "clicks|p1"] in click_group
    assert arg["ev"][5][1] == arg["ev"][3][1]  # the same increments: one shared group
    assert arg["creators"] == [["p:{p:3}:convidx:b1", "cr", "p:{p:3}:conv:b1:cr"]]
    assert arg["valid"] == 6
