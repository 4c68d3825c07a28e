"""The ledger path's per-step state views, the entries a step reads, and outbox records (no services)."""

from __future__ import annotations

import orjson

from streams import ledger
from streams.ledger_path import outbox_entry, parse_outbox_entry
from streams.ledger_state import PartitionState, StepState, StepTable, needs, waiting_orders
from tests.streams.test_ledger import Setup, click, order, refund


def test_step_table_records_sets_and_deletes_over_what_was_read() -> None:
    t = StepTable({"a": 1, "b": 2, "gone": None})  # "gone": read, absent in Redis
    assert dict(t) == {"a": 1, "b": 2} and t.get("gone") is None and "gone" not in t
    t["c"] = 3
    t["a"] = 10
    del t["b"]
    assert t.changes() == ({"a": 10, "c": 3}, ["b"])
    t["b"] = 5  # re-created after a delete: a set, not a delete
    assert t.changes() == ({"a": 10, "b": 5, "c": 3}, [])
    assert not t.misses
    assert t.get("never-read") is None and "other" not in t  # looked up but not read: recorded
    assert t.misses == {"never-read", "other"}


def test_needs_names_every_entry_the_records_look_up() -> None:
    """Running records on exactly the entries needs() names (absent ones as None) misses nothing."""
    setup = Setup()
    recs = [("click", "b1", click("c1")[0]), ("order", "b1", order("o1", click_id="c1")),
            ("order", "b1", order("o2", click_id="c9")), ("refund", "b1", refund("o3", "r1", 100))]
    wanted, brands = needs(recs)
    assert wanted == {"clicks": {"b1:c1", "b1:c9"}, "waiting": {"b1:c1", "b1:c9"},
                      "orders": {"b1:o1", "b1:o2", "b1:o3"}, "seen": {"b1:evt-o1", "b1:evt-o2", "b1:evt-r1"}}
    assert brands == {"b1:c1": "b1", "b1:c9": "b1"}
    st = StepState.from_read({t: dict.fromkeys(ks) for t, ks in wanted.items()})
    tables = st.ledger_tables()
    ledger.on_click(tables, setup, *click("c1"), "x.events:3:0")
    ledger.on_order(tables, setup, order("o1", click_id="c1"), "x.orders:3:1")
    ledger.on_order(tables, setup, order("o2", click_id="c9"), "x.orders:3:2")  # its click waits
    ledger.on_refund(tables, setup, refund("o3", "r1", 100), "x.orders:3:3")  # waits for its order
    assert st.misses() == {}
    changes = st.changes()
    assert set(changes["clicks"][0]) == {"b1:c1"} and set(changes["waiting"][0]) == {"b1:c9"}
    assert set(changes["orders"][0]) == {"b1:o1", "b1:o2", "b1:o3"}
    # a later click of a waiting order: its waiting entry names the order to read next
    assert waiting_orders({"b1:c9": ["o2"], "b1:c1": None}, brands) == {"b1:o2"}


def test_a_replay_on_the_written_state_re_emits_the_same_version() -> None:
    setup = Setup()
    first = StepState.from_read({"clicks": {"b1:c1": None}, "orders": {"b1:o1": None}, "waiting": {"b1:c1": None},
                                 "seen": {"b1:evt-o1": None}})
    ledger.on_click(first.ledger_tables(), setup, *click("c1"), "x.events:3:0")
    ledger.on_order(first.ledger_tables(), setup, order("o1", click_id="c1"), "x.orders:3:1")
    written = {t: dict(sets) for t, (sets, _) in first.changes().items()}
    # what the Lua step wrote (JSON) is what the next owner reads
    written = {t: {k: orjson.loads(orjson.dumps(v)) for k, v in kv.items()} for t, kv in written.items()}
    again = StepState.from_read(written)
    fx = ledger.on_order(again.ledger_tables(), setup, order("o1", click_id="c1"), "x.orders:3:1")
    assert [snap["version"] for snap in fx.snapshots] == [1]
    assert fx.snapshots[0] == {**written["orders"]["b1:o1"]["snap"], "version": 1}
    assert again.misses() == {}
    assert PartitionState(3, {"x.orders:3": 7}).fence("x.orders") == 7
    assert PartitionState(3).fence("x.events") == -1


def test_outbox_entries_keep_bytes_and_headers_exactly() -> None:
    headers = [("dlq.reason", b"invalid_json")]
    raw = outbox_entry("x.dlq", None, b"\xff\x00key", b"\x80not json", headers)
    assert parse_outbox_entry(raw) == ("x.dlq", None, b"\xff\x00key", b"\x80not json", headers)
    assert parse_outbox_entry(outbox_entry("x.ledger", 2, None, None).encode()) == ("x.ledger", 2, None, None, [])
