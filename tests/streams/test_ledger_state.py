"""The ledger consumer's tracked state dicts and outbox records (no services)."""

from __future__ import annotations

import orjson

from streams import ledger
from streams.ledger_path import outbox_entry, parse_outbox_entry
from streams.ledger_state import TABLES, PartitionState, TrackedTable
from tests.streams.test_ledger import Setup, click, order, refund


def test_tracked_table_records_sets_and_deletes_since_take() -> None:
    t = TrackedTable({"a": 1, "b": 2})
    assert not t.changed and dict(t) == {"a": 1, "b": 2}
    t["c"] = 3
    t["a"] = 10
    del t["b"]
    assert t.changed
    assert t.take() == ({"a": 10, "c": 3}, ["b"])
    assert not t.changed and t.take() == ({}, [])
    t["b"] = 5  # re-created after a delete: a set, not a delete
    del t["c"]
    t["c"] = 6  # deleted then set again: a set
    assert t.take() == ({"b": 5, "c": 6}, [])
    t["x"] = 1
    del t["x"]  # set then deleted within one step: a delete (HDEL of an absent field is harmless)
    assert t.take() == ({}, ["x"])
    assert t.get("missing") is None and "b" in t and len(t) == 3


def test_partition_state_round_trips_through_redis_hashes() -> None:
    s = PartitionState(3, fences={"x.orders:3": 7})
    tables, setup = s.ledger_tables(), Setup()
    ledger.on_click(tables, setup, *click("c1"), "x.events:3:0")
    ledger.on_order(tables, setup, order("o1", click_id="c1"), "x.orders:3:1")
    ledger.on_refund(tables, setup, refund("o2", "r1", 100), "x.orders:3:2")  # waits for its order
    sets, dels = s.take_changes()
    assert dels == [] and {(t, k) for t, k, _ in sets} == {
        ("clicks", "b1:c1"), ("orders", "b1:o1"), ("orders", "b1:o2"), ("seen", "b1:evt-o1"), ("seen", "b1:evt-r1")}
    assert s.take_changes() == ([], [])
    # what the Lua step HSETs is what the next owner loads
    hashes: dict[str, dict[bytes, bytes]] = {t: {} for t in TABLES}
    for t, k, v in sets:
        hashes[t][k.encode()] = v.encode()
    loaded = PartitionState.from_redis(3, hashes, {"x.orders:3": 7, "x.events:3": -1})
    assert {t: dict(loaded.tables[t]) for t in TABLES} == {t: dict(s.tables[t]) for t in TABLES}
    assert (loaded.fence("x.orders"), loaded.fence("x.events"), loaded.fence("x.other")) == (7, -1, -1)
    # replaying the order on the loaded state re-emits the same snapshot under the same version
    fx = ledger.on_order(loaded.ledger_tables(), setup, order("o1", click_id="c1"), "x.orders:3:1")
    assert [snap["version"] for snap in fx.snapshots] == [1]
    assert fx.snapshots[0] == {**s.tables["orders"]["b1:o1"]["snap"], "version": 1}
    assert loaded.take_changes()[0] == [["orders", "b1:o1", orjson.dumps(s.tables["orders"]["b1:o1"]).decode()]]


def test_outbox_entries_keep_bytes_and_headers_exactly() -> None:
    headers = [("dlq.reason", b"invalid_json")]
    raw = outbox_entry("x.dlq", None, b"\xff\x00key", b"\x80not json", headers)
    assert parse_outbox_entry(raw) == ("x.dlq", None, b"\xff\x00key", b"\x80not json", headers)
    assert parse_outbox_entry(outbox_entry("x.ledger", 2, None, None).encode()) == ("x.ledger", 2, None, None, [])
