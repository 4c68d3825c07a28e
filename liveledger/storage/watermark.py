"""The finance completeness watermark, pure (docs/money-rules.md "Completeness watermark").

``complete_up_to`` = W means: every event ingest acknowledged before W (ingest's clock) is reflected
in the live views (Redis) and in the ledger (ClickHouse). It is computed from one *reading* of where
each stage is (:mod:`liveledger.storage.progress` does the I/O) with these rules:

- **a stage that applied everything up to the log end offset** read at ``read_ms`` (taken before the
  end offsets were asked for) is complete up to ``read_ms``: an acknowledged record was appended
  before its acknowledgement, so every record acknowledged before ``read_ms`` is below that end;
- **a stage behind** is complete up to the time of its first unapplied record (the smaller of the
  record's ``received_at`` and its Kafka timestamp): ingest stamps ``received_at`` before it sends,
  so every later offset was appended after that time, and a record acknowledged before it was
  appended before it, i.e. at an applied offset;
- **the ClickHouse ledger** (``ll.ledger``, written by the ledger path) carries no source offsets or
  times, so it is mapped through samples: at a sample whose Redis reading found partition p's ledger
  outbox empty, every ledger fact of the records the ledger path had applied was already in
  ``ll.ledger`` below the end offset read *after* Redis; once the sink has committed that end
  offset, ClickHouse is complete up to what the ledger path was complete up to at that sample;
- ``complete_up_to`` is the minimum over every stage and partition, minus the allowed clock skew
  between the ingest and API hosts; unknown (``None``) while any stage is unknown.

Each value is a true statement when computed; a later value may be lower by a few milliseconds
(a record stamped before an earlier reading that was appended after it), never by more than the
longest an ingest send may take (``ingest_send_timeout_s``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.time import format_ms

# stages (what applies a topic-partition, and where it records how far it got)
LIVE = "live"  # live path: Redis fence <p>:offsets:live
LEDGER = "ledger"  # ledger path: Redis fences <p>:offsets:ledger
CLICKHOUSE = "clickhouse"  # ClickHouse sink: its consumer group's committed offsets

# how an entry's complete_up_to was found
CAUGHT_UP = "caught_up"  # applied everything below the end offset read
FIRST_UNAPPLIED = "first_unapplied"  # the time of the first record not applied
MAPPED = "mapped"  # ll.ledger: the ledger path's completeness at a sample the sink has passed
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class StageProgress:
    """How far one stage got on one topic-partition, as read.

    ``applied`` is the last applied offset (-1: none), ``end`` the log end offset (the next offset
    to be written), ``first_unapplied_ms`` the time of the record at ``applied + 1`` (or the first
    record after it still in the log) when the stage is behind and the record could be read."""

    stage: str
    topic: str
    partition: int
    applied: int
    end: int
    first_unapplied_ms: int | None = None

    @property
    def caught_up(self) -> bool:
        return self.applied + 1 >= self.end

    def complete_ms(self, read_ms: int) -> int | None:
        if self.caught_up:
            return read_ms
        if self.first_unapplied_ms is None:
            return None
        return min(self.first_unapplied_ms, read_ms)


@dataclass(frozen=True, slots=True)
class LedgerSample:
    """What one reading says about ``ll.ledger``, for later readings to map the sink's progress on it.

    Per partition p: ``ledger_end[p]`` (read after Redis), ``source_complete_ms[p]`` (the ledger
    path's completeness on ``ll.events`` and ``ll.orders`` partition p; ``None``: unknown) and
    ``outbox_empty[p]`` (the ledger outbox of p was empty in the same Redis transaction as the
    fences)."""

    read_ms: int
    ledger_end: dict[int, int]
    source_complete_ms: dict[int, int | None]
    outbox_empty: dict[int, bool]


def mapped_ledger_complete(samples: Iterable[LedgerSample], partition: int, committed_next: int) -> int | None:
    """ClickHouse ledger completeness of ``partition``: the best ``source_complete_ms`` of a sample
    whose ``ll.ledger`` end offset the sink has committed (``committed_next``: the next offset it
    will read) and whose outbox was empty. ``None`` when no sample qualifies."""
    best: int | None = None
    for s in samples:
        if not s.outbox_empty.get(partition, False):
            continue
        end = s.ledger_end.get(partition)
        c = s.source_complete_ms.get(partition)
        if end is None or c is None or committed_next < end:
            continue
        if best is None or c > best:
            best = c
    return best


@dataclass(frozen=True, slots=True)
class Entry:
    """One stage on one topic-partition in the answer."""

    stage: str
    topic: str
    partition: int
    applied_offset: int
    end_offset: int
    complete_ms: int | None
    basis: str

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "topic": self.topic, "partition": self.partition,
                "applied_offset": self.applied_offset, "end_offset": self.end_offset,
                "lag": max(0, self.end_offset - self.applied_offset - 1),
                "complete_up_to": None if self.complete_ms is None else format_ms(self.complete_ms),
                "basis": self.basis}


@dataclass(frozen=True, slots=True)
class Watermark:
    read_ms: int
    complete_ms: int | None
    entries: list[Entry] = field(default_factory=list)

    def stage_complete_ms(self, *stages: str, topics: Sequence[str] | None = None) -> int | None:
        """The minimum over the entries of ``stages`` (and ``topics``), ``None`` when one is unknown."""
        chosen = [e for e in self.entries if e.stage in stages and (topics is None or e.topic in topics)]
        if not chosen or any(e.complete_ms is None for e in chosen):
            return None
        return min(e.complete_ms for e in chosen if e.complete_ms is not None)


def combine(read_ms: int, sources: Sequence[StageProgress], ledger_sink: Sequence[StageProgress],
            samples: Sequence[LedgerSample], skew_ms: int = 0) -> Watermark:
    """The watermark of one reading.

    ``sources``: every stage on ``ll.events`` / ``ll.orders`` (live path, ledger path, sink on
    events); ``ledger_sink``: the sink on each ``ll.ledger`` partition (``applied`` = committed - 1,
    ``end`` = the end read now); ``samples``: earlier readings plus this one (see
    :func:`mapped_ledger_complete`). ``skew_ms`` is subtracted from every entry."""

    def minus(ms: int | None) -> int | None:
        return None if ms is None else ms - skew_ms

    entries: list[Entry] = []
    for sp in sources:
        ms = sp.complete_ms(read_ms)
        basis = CAUGHT_UP if sp.caught_up else (FIRST_UNAPPLIED if ms is not None else UNKNOWN)
        entries.append(Entry(sp.stage, sp.topic, sp.partition, sp.applied, sp.end, minus(ms), basis))
    for sp in ledger_sink:
        ms = mapped_ledger_complete(samples, sp.partition, sp.applied + 1)
        entries.append(Entry(sp.stage, sp.topic, sp.partition, sp.applied, sp.end, minus(ms),
                             MAPPED if ms is not None else UNKNOWN))
    known = [e.complete_ms for e in entries]
    complete = None if not known or any(k is None for k in known) else min(k for k in known if k is not None)
    return Watermark(read_ms, complete, entries)


def ledger_path_complete(read_ms: int, progress: Iterable[StageProgress]) -> dict[int, int | None]:
    """Per partition, the ledger path's completeness over its two source topics (for a sample)."""
    out: dict[int, int | None] = {}
    for sp in progress:
        if sp.stage != LEDGER:
            continue
        ms = sp.complete_ms(read_ms)
        if sp.partition in out:
            prev = out[sp.partition]
            out[sp.partition] = None if prev is None or ms is None else min(prev, ms)
        else:
            out[sp.partition] = ms
    return out


def prune(samples: list[LedgerSample], committed_next: dict[int, int], keep: int = 600) -> list[LedgerSample]:
    """The samples a later reading may still need: per partition, the best one the sink has already
    passed (see :func:`mapped_ledger_complete`) and every one it has not passed yet; at most
    ``keep`` (the newest)."""
    needed: set[int] = set()
    for p, committed in committed_next.items():
        best: tuple[int, int] | None = None  # (source_complete_ms, index)
        for i, s in enumerate(samples):
            end = s.ledger_end.get(p)
            if end is None:
                continue
            if committed < end:
                needed.add(i)
                continue
            c = s.source_complete_ms.get(p)
            if s.outbox_empty.get(p, False) and c is not None and (best is None or c >= best[0]):
                best = (c, i)
        if best is not None:
            needed.add(best[1])
    idx = sorted(needed)
    if len(idx) > keep:  # thin out evenly, keeping the oldest and the newest (the sink passes them in order)
        step = (len(idx) - 1) / (keep - 1)
        idx = sorted({idx[round(i * step)] for i in range(keep)})
    return [samples[i] for i in idx]
