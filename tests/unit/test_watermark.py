"""The finance watermark's rules (liveledger/storage/watermark.py), pure: caught-up and behind
stages, unknown stages, the ``ll.ledger`` mapping through samples, and — property-tested over random
logs — the claim itself: every record acknowledged before ``complete_up_to`` is applied."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.clickhouse_sink import ClickHouseSink
from liveledger.settings import Settings
from liveledger.storage.progress import record_time_ms, sink_group_id
from liveledger.storage.watermark import (
    CAUGHT_UP,
    CLICKHOUSE,
    FIRST_UNAPPLIED,
    LEDGER,
    LIVE,
    MAPPED,
    UNKNOWN,
    LedgerSample,
    StageProgress,
    combine,
    ledger_path_complete,
    mapped_ledger_complete,
    prune,
)

EV, OD, LG = "ll.events", "ll.orders", "ll.ledger"
T = 1_800_000_000_000  # a reading's time, epoch ms


def sample(read_ms: int, end: int, source: int | None, empty: bool = True, p: int = 0) -> LedgerSample:
    return LedgerSample(read_ms, {p: end}, {p: source}, {p: empty})


def test_caught_up_stage_is_the_reading_time_minus_skew() -> None:
    sp = StageProgress(LIVE, EV, 0, applied=9, end=10)
    assert sp.caught_up and sp.complete_ms(T) == T
    wm = combine(T, [sp], [], [], skew_ms=500)
    assert wm.complete_ms == T - 500 and wm.entries[0].basis == CAUGHT_UP
    empty = StageProgress(LIVE, EV, 1, applied=-1, end=0)  # an empty partition nobody read: complete
    assert combine(T, [empty], [], []).complete_ms == T


def test_behind_stage_is_its_first_unapplied_record_and_the_minimum_wins() -> None:
    behind = StageProgress(LEDGER, OD, 2, applied=4, end=9, first_unapplied_ms=T - 7000)
    other = StageProgress(LIVE, EV, 2, applied=3, end=5, first_unapplied_ms=T - 2000)
    done = StageProgress(CLICKHOUSE, EV, 2, applied=4, end=5)
    wm = combine(T, [behind, other, done], [], [])
    assert wm.complete_ms == T - 7000
    assert [e.basis for e in wm.entries] == [FIRST_UNAPPLIED, FIRST_UNAPPLIED, CAUGHT_UP]
    assert wm.stage_complete_ms(LIVE, CLICKHOUSE, topics=[EV]) == T - 2000
    assert wm.entries[0].as_dict()["lag"] == 4
    # a record stamped after the reading started: capped at the reading
    assert StageProgress(LIVE, EV, 0, 0, 2, first_unapplied_ms=T + 50).complete_ms(T) == T


def test_unknown_stage_makes_the_watermark_unknown() -> None:
    blind = StageProgress(LIVE, EV, 0, applied=0, end=3, first_unapplied_ms=None)
    wm = combine(T, [blind, StageProgress(LEDGER, EV, 0, 2, 3)], [], [])
    assert wm.complete_ms is None and wm.entries[0].basis == UNKNOWN
    assert wm.entries[0].as_dict()["complete_up_to"] is None
    assert wm.stage_complete_ms(LIVE) is None and wm.stage_complete_ms(LEDGER) == T
    assert combine(T, [], [], []).complete_ms is None


def test_ledger_topic_maps_through_samples_the_sink_passed() -> None:
    samples = [sample(T - 3000, end=5, source=T - 3500), sample(T - 2000, end=8, source=T - 2100),
               sample(T - 1000, end=12, source=T - 1200, empty=False), sample(T, end=15, source=T - 100)]
    assert mapped_ledger_complete(samples, 0, committed_next=4) is None  # passed none
    assert mapped_ledger_complete(samples, 0, committed_next=5) == T - 3500
    assert mapped_ledger_complete(samples, 0, committed_next=11) == T - 2100
    # the sample with facts still in the outbox does not count, even once the sink passed its end
    assert mapped_ledger_complete(samples, 0, committed_next=13) == T - 2100
    assert mapped_ledger_complete(samples, 0, committed_next=15) == T - 100
    assert mapped_ledger_complete(samples, 1, committed_next=99) is None  # another partition
    assert mapped_ledger_complete([sample(T, end=0, source=None)], 0, committed_next=0) is None

    sink = StageProgress(CLICKHOUSE, LG, 0, applied=10, end=15)
    wm = combine(T, [StageProgress(LEDGER, OD, 0, 9, 10)], [sink], samples)
    assert wm.complete_ms == T - 2100 and wm.entries[1].basis == MAPPED
    lost = combine(T, [], [StageProgress(CLICKHOUSE, LG, 0, applied=-1, end=15)], samples)
    assert lost.complete_ms is None and lost.entries[0].basis == UNKNOWN


def test_ledger_path_complete_is_per_partition_over_both_topics() -> None:
    progress = [StageProgress(LEDGER, EV, 0, 4, 5), StageProgress(LEDGER, OD, 0, 1, 3, first_unapplied_ms=T - 9),
                StageProgress(LEDGER, EV, 1, 4, 5), StageProgress(LEDGER, OD, 1, 1, 3, first_unapplied_ms=None),
                StageProgress(LIVE, EV, 2, 0, 9, first_unapplied_ms=1)]
    assert ledger_path_complete(T, progress) == {0: T - 9, 1: None}


def test_prune_keeps_what_a_later_reading_may_need() -> None:
    samples = [sample(T - 4000, 5, T - 4100), sample(T - 3000, 6, T - 3100), sample(T - 2000, 9, T - 2100),
               sample(T - 1000, 12, T - 1100)]
    kept = prune(samples, {0: 9})
    assert [s.read_ms for s in kept] == [T - 2000, T - 1000]  # the best passed one, then the unpassed
    assert mapped_ledger_complete(kept, 0, 9) == mapped_ledger_complete(samples, 0, 9)
    many = [sample(T + i, 100 + i, T + i) for i in range(50)]
    thin = prune(many, {0: 0}, keep=10)
    assert len(thin) == 10 and thin[0] is many[0] and thin[-1] is many[-1]


def test_record_time_is_the_earlier_of_received_at_and_the_kafka_timestamp() -> None:
    value = b'{"v":1,"received_at":"2026-11-30T23:59:59.000Z","events":[]}'
    received = 1796083199000
    assert record_time_ms(value, received + 40) == received
    assert record_time_ms(value, received - 10) == received - 10
    assert record_time_ms(b"not json", 123) == 123
    assert record_time_ms(b'{"received_at": 5}', None) is None
    assert record_time_ms(None, -1) is None


def test_sink_group_rule_is_the_sinks() -> None:
    for prefix in ("ll", "t123abc"):
        s = Settings(topic_prefix=prefix)
        assert sink_group_id(s) == ClickHouseSink(s).group_id


@st.composite
def logs(draw: st.DrawFn) -> tuple[list[tuple[int, int, int, int]], int, int, int]:
    """Records (received, kafka timestamp, appended, acknowledged) in offset order, a reading time,
    the end-read time (after it) and how many the stage applied."""
    n = draw(st.integers(0, 25))
    t = 0
    records = []
    for _ in range(n):
        t += draw(st.integers(0, 30))  # append times grow with the offset
        received = t - draw(st.integers(0, 60))  # stamped before sending, by up to the send bound
        stamp = draw(st.integers(received, t))  # the producer's timestamp: between stamp and append
        records.append((received, stamp, t, t + draw(st.integers(0, 40))))  # acknowledged after append
    read = draw(st.integers(0, t + 50))
    end_read = read + draw(st.integers(0, 20))
    end = sum(1 for r in records if r[2] < end_read)
    applied = draw(st.integers(-1, max(-1, end - 1)))
    return records, read, end_read, applied


@settings(max_examples=400, deadline=None)
@given(logs())
def test_every_record_acknowledged_before_the_watermark_is_applied(log: tuple[list[tuple[int, int, int, int]],
                                                                               int, int, int]) -> None:
    records, read, end_read, applied = log
    end = sum(1 for r in records if r[2] < end_read)
    first = records[applied + 1] if applied + 1 < end else None
    sp = StageProgress(LIVE, EV, 0, applied, end, None if first is None else min(first[0], first[1]))
    complete = combine(read, [sp], [], []).complete_ms
    assert complete is not None
    for offset, (_received, _stamp, _appended, acked) in enumerate(records):
        if acked < complete:
            assert offset <= applied, (offset, records[offset], complete)
