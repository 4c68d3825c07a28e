"""The offset gate: which delivered records a path may apply next, whatever Faust delivered.

Faust delivers at least once, and faust-streaming 0.15.3 can also deliver *past* records it never
handed to an agent (it resumes partitions before seeking on assignment, treats an offset jump as a
"gap" and commits across it; docs/stream-processing.md, "What we rely on, what we guard against").
So the Redis offset fence of each topic-partition decides, not Faust's position:

- a record at or below the fence was applied already: dropped (a replay);
- the next record must be ``fence + 1``. A first record above it is a **gap**: the gate seeks the
  partition back to ``fence + 1`` and drops everything of that partition until the record at
  ``fence + 1`` comes back; records Faust had queued before the seek are dropped on the way;
- a jump is accepted only past the log start (retention deleted the records in between, nothing
  can re-read them), or after the same gap was re-read :data:`MAX_RESEEKS` times without the
  missing offset ever appearing (a hole, e.g. a transaction marker — our producers write none);
  both are counted and logged, never silent.

Pure apart from two callbacks: ``seek(tp, offset)`` and ``log_start(tp)``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_RESEEKS = 3


class Record(Protocol):
    """What the gate needs of a delivered record (a Faust ``Message`` or an aiokafka record)."""

    @property
    def offset(self) -> int: ...


Seek = Callable[[Any, int], Awaitable[None]]
LogStart = Callable[[Any], Awaitable[int]]


@dataclass(slots=True)
class _Pending:
    target: int  # the offset the partition was sought back to
    last_seen: int  # the highest offset delivered since: records above it continue the old position
    seeks: int = 1


@dataclass(slots=True)
class OffsetGate:
    seek: Seek
    log_start: LogStart
    pending: dict[Any, _Pending] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)

    def take_stats(self) -> Counter[str]:
        """The counts since the last call (the paths add them to ``<p>:stats`` with their next step)."""
        out, self.stats = self.stats, Counter()
        return out

    def forget(self, tps: Iterable[Any]) -> None:
        """Partitions revoked: whatever was pending for them is the next owner's."""
        for tp in tps:
            self.pending.pop(tp, None)

    async def admit(self, tp: Any, fence: int, records: list[Any]) -> tuple[list[Any], bool]:
        """The records of ``tp`` (in delivery order) that follow the fence without a gap, and
        whether the first admitted one jumps over offsets that can no longer be read (the Lua
        flush accepts such a jump only when told)."""
        out: list[Any] = []
        jumped = False
        expected = fence + 1
        for rec in records:
            offset = rec.offset
            if offset < expected:
                if out or tp not in self.pending:
                    self.stats["records_replayed"] += 1
                continue  # at or below the fence (or below what this batch already admitted)
            if offset == expected:
                self.pending.pop(tp, None)
                out.append(rec)
                expected += 1
                continue
            # offset > expected: a gap
            if out:
                break  # the rest of this batch is past a gap inside it: the next batch decides
            pending = self.pending.get(tp)
            if pending is not None and offset > pending.last_seen:
                # still the old position: queued before our seek (the re-read starts at the target,
                # so an offset at or below one already seen means the re-read has begun)
                pending.last_seen = offset
                self.stats["records_stale_after_seek"] += 1
                continue
            start = await self.log_start(tp)
            if start > expected and offset <= start:
                log.warning("%s: offsets %d..%d are past retention (log start %d); continuing at %d",
                            tp, expected, offset - 1, start, offset)
                self.stats["offset_gaps_past_retention"] += 1
            elif pending is not None and pending.seeks >= MAX_RESEEKS:
                log.error("%s: offset %d never came back after %d seeks; continuing at %d (a hole in the log)",
                          tp, expected, pending.seeks, offset)
                self.stats["offset_gaps_skipped"] += 1
            else:
                seeks = pending.seeks + 1 if pending is not None and pending.target == expected else 1
                self.pending[tp] = _Pending(expected, offset, seeks)
                log.warning("%s: delivered offset %d but the fence is at %d; seeking back to %d (seek %d)",
                            tp, offset, fence, expected, seeks)
                self.stats["offset_gaps_reread"] += 1
                await self.seek(tp, expected)
                return out, False
            self.pending.pop(tp, None)
            jumped = True
            out.append(rec)
            expected = offset + 1
        return out, jumped
