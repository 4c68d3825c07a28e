"""The offset gate: which delivered records a path may apply next, whatever Faust delivered.

Faust delivers at least once, and faust-streaming 0.15.3 can also deliver *past* records it never
handed to an agent (it resumes partitions before seeking on assignment, treats an offset jump as a
"gap" and commits across it; docs/stream-processing.md, "What we rely on, what we guard against").
So the Redis offset fence of each topic-partition decides, not Faust's position:

- a record at or below the fence was applied already: dropped (a replay);
- the next record must be ``fence + 1``. When the first record delivered is above it, the gate
  **re-reads the missing offsets itself** (``refill(tp, fence + 1, first)``, a group-less consumer of
  our own: Faust's consumer is never moved under it, its fetcher is not thread-safe) and puts them in
  front of what Faust delivered;
- a jump is accepted only where the log no longer has the offsets (the refill starts later: retention
  deleted them) or has a hole (a transaction marker -- our producers write none); both are counted
  and logged, never silent. A gap *inside* a delivered batch ends the batch there: the rest comes
  back with the next batch, which refills.

Pure apart from the ``refill`` callback.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# refill(tp, start, end) -> the records of tp with start <= offset < end that the log still has, in order
Refill = Callable[[Any, int, int], Awaitable[list[Any]]]


@dataclass(slots=True)
class OffsetGate:
    refill: Refill
    stats: Counter[str] = field(default_factory=Counter)

    def take_stats(self) -> Counter[str]:
        """The counts since the last call (the paths add them to ``<p>:stats`` with their next step)."""
        out, self.stats = self.stats, Counter()
        return out

    async def admit(self, tp: Any, fence: int, records: list[Any]) -> tuple[list[Any], bool]:
        """The records of ``tp`` that follow the fence without a gap (re-read where Faust skipped),
        and whether they jump over offsets the log no longer has (the Lua flush accepts such a jump
        only when told)."""
        expected = fence + 1
        first = next((r.offset for r in records if r.offset >= expected), None)
        if first is None:
            self.stats["records_replayed"] += len(records)
            return [], False
        refilled_until = expected
        if first > expected:
            missing = await self.refill(tp, expected, first)
            log.warning("%s: delivered offset %d but the fence is at %d; re-read %d of the %d records between",
                        tp, first, fence, len(missing), first - expected)
            self.stats["offset_gaps_reread"] += 1
            self.stats["records_reread"] += len(missing)
            records = [*missing, *records]
            refilled_until = first
        out: list[Any] = []
        last = fence
        jumped = False
        for rec in records:
            if rec.offset <= last:
                self.stats["records_replayed"] += 1
                continue
            if rec.offset != last + 1:
                if rec.offset > refilled_until:
                    break  # a gap inside the batch: the next batch re-reads it
                # the log was asked for these offsets and does not have them
                kind = "past retention" if last == fence and not out else "holes"
                log.warning("%s: offsets %d..%d are not in the log (%s); continuing at %d", tp, last + 1,
                            rec.offset - 1, kind, rec.offset)
                self.stats["offset_gaps_not_in_log"] += 1
                jumped = True
            out.append(rec)
            last = rec.offset
        return out, jumped
