"""The offset gate (no services): replays dropped, gaps re-read, jumps only where the log has no records."""

from __future__ import annotations

from dataclasses import dataclass

from streams.gate import OffsetGate


@dataclass(frozen=True)
class Rec:
    offset: int


class Log:
    """A partition's log: the offsets it still has (``start``: retention removed everything below)."""

    def __init__(self, start: int = 0, end: int = 1000, holes: frozenset[int] = frozenset()) -> None:
        self.offsets = [o for o in range(start, end) if o not in holes]
        self.reads: list[tuple[str, int, int]] = []

    async def refill(self, tp: str, start: int, end: int) -> list[Rec]:
        self.reads.append((tp, start, end))
        return [Rec(o) for o in self.offsets if start <= o < end]


def recs(*offsets: int) -> list[Rec]:
    return [Rec(o) for o in offsets]


def offsets(rs: list[Rec]) -> list[int]:
    return [r.offset for r in rs]


async def test_replays_are_dropped_and_contiguous_records_pass() -> None:
    log = Log()
    gate = OffsetGate(log.refill)
    out, jumped = await gate.admit("t:0", 4, recs(3, 4, 5, 6, 6, 7))
    assert offsets(out) == [5, 6, 7] and not jumped and log.reads == []
    assert gate.take_stats()["records_replayed"] == 3 and gate.stats == {}


async def test_a_gap_is_reread_and_put_in_front() -> None:
    log = Log()
    gate = OffsetGate(log.refill)
    # Faust resumed past the fence (it committed across records it never delivered)
    out, jumped = await gate.admit("t:0", 9, recs(15, 16))
    assert offsets(out) == [10, 11, 12, 13, 14, 15, 16] and not jumped
    assert log.reads == [("t:0", 10, 15)]
    assert gate.stats["offset_gaps_reread"] == 1 and gate.stats["records_reread"] == 5


async def test_a_gap_inside_a_batch_ends_the_batch_there() -> None:
    log = Log()
    gate = OffsetGate(log.refill)
    out, _ = await gate.admit("t:0", 9, recs(10, 11, 14, 15))
    assert offsets(out) == [10, 11] and log.reads == []  # the next batch (fence 11) starts at 14: re-read then
    out, _ = await gate.admit("t:0", 11, recs(14, 15))
    assert offsets(out) == [12, 13, 14, 15] and log.reads == [("t:0", 12, 14)]


async def test_a_jump_only_over_offsets_the_log_does_not_have() -> None:
    gone = Log(start=100)  # retention deleted everything below 100
    gate = OffsetGate(gone.refill)
    out, jumped = await gate.admit("t:0", 41, recs(103, 104))
    assert offsets(out) == [100, 101, 102, 103, 104] and jumped
    assert gate.stats["offset_gaps_not_in_log"] == 1
    holes = Log(holes=frozenset({11}))  # e.g. a transaction marker
    gate = OffsetGate(holes.refill)
    out, jumped = await gate.admit("t:0", 9, recs(13))
    assert offsets(out) == [10, 12, 13] and jumped
    # nothing stored yet (fence -1): the whole log from its start
    gate = OffsetGate(Log().refill)
    out, jumped = await gate.admit("t:1", -1, recs(3))
    assert offsets(out) == [0, 1, 2, 3] and not jumped
