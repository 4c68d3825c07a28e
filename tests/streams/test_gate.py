"""The offset gate (no services): replays dropped, gaps re-read, jumps only past the log start."""

from __future__ import annotations

from dataclasses import dataclass

from streams.gate import MAX_RESEEKS, OffsetGate


@dataclass(frozen=True)
class Rec:
    offset: int


class Broker:
    """Records the gate's seeks; ``start`` is the log start offset."""

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.seeks: list[tuple[str, int]] = []

    async def seek(self, tp: str, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def log_start(self, tp: str) -> int:
        return self.start


def recs(*offsets: int) -> list[Rec]:
    return [Rec(o) for o in offsets]


def offsets(rs: list[Rec]) -> list[int]:
    return [r.offset for r in rs]


async def test_replays_are_dropped_and_contiguous_records_pass() -> None:
    b = Broker()
    gate = OffsetGate(b.seek, b.log_start)
    out, jumped = await gate.admit("t:0", 4, recs(3, 4, 5, 6, 6, 7))
    assert offsets(out) == [5, 6, 7] and not jumped and b.seeks == []


async def test_a_gap_seeks_back_and_drops_what_faust_had_queued() -> None:
    b = Broker()
    gate = OffsetGate(b.seek, b.log_start)
    # Faust resumed past the fence (it committed across records it never delivered)
    out, _ = await gate.admit("t:0", 9, recs(15, 16))
    assert out == [] and b.seeks == [("t:0", 10)]
    # records queued before the seek arrive first: stale, dropped; then the re-read from 10
    out, _ = await gate.admit("t:0", 9, recs(17, 18))
    assert out == [] and b.seeks == [("t:0", 10)]
    out, jumped = await gate.admit("t:0", 9, recs(10, 11, 12))
    assert offsets(out) == [10, 11, 12] and not jumped
    assert gate.stats["offset_gaps_reread"] == 1 and gate.stats["records_stale_after_seek"] == 2


async def test_a_gap_inside_a_batch_stops_the_batch_there() -> None:
    b = Broker()
    gate = OffsetGate(b.seek, b.log_start)
    out, _ = await gate.admit("t:0", 9, recs(10, 11, 14, 15))
    assert offsets(out) == [10, 11] and b.seeks == []  # the next batch (fence 11) sees 14 and seeks


async def test_jump_only_past_the_log_start() -> None:
    b = Broker(start=100)  # retention deleted everything below 100
    gate = OffsetGate(b.seek, b.log_start)
    out, jumped = await gate.admit("t:0", 41, recs(100, 101))
    assert offsets(out) == [100, 101] and jumped and b.seeks == []
    assert gate.stats["offset_gaps_past_retention"] == 1
    # nothing stored yet (fence -1) and the log starts at 0: the whole log is read from 0
    fresh = OffsetGate(b.seek, Broker(start=0).log_start)
    out, _ = await fresh.admit("t:1", -1, recs(57))
    assert out == [] and b.seeks == [("t:1", 0)]


async def test_an_offset_that_never_comes_back_is_skipped_after_bounded_reseeks() -> None:
    b = Broker()
    gate = OffsetGate(b.seek, b.log_start)
    for _ in range(MAX_RESEEKS):
        out, _ = await gate.admit("t:0", 9, recs(11, 12))  # 10 is a hole: every re-read starts at 11
        assert out == []
    assert b.seeks == [("t:0", 10)] * MAX_RESEEKS
    out, jumped = await gate.admit("t:0", 9, recs(11, 12))
    assert offsets(out) == [11, 12] and jumped and gate.stats["offset_gaps_skipped"] == 1


async def test_forget_drops_a_pending_seek() -> None:
    b = Broker()
    gate = OffsetGate(b.seek, b.log_start)
    await gate.admit("t:0", 9, recs(15))
    gate.forget(["t:0"])
    out, _ = await gate.admit("t:0", 14, recs(15, 16))  # the new owner's fence
    assert offsets(out) == [15, 16]
