"""The ledger state one step of a source partition works on, read lazily from Redis (pure).

:mod:`streams.ledger` works on four ``MutableMapping`` tables (``clicks``, ``orders``, ``waiting``,
``seen``). Nothing of a partition is held in worker memory between steps except its fences: for each
step the ledger path reads the entries the step's records name (:func:`needs`, one pipelined read per
table, :meth:`streams.redis_state.LedgerStore.read`) into :class:`StepTable` views; each records the
keys set and deleted, so the one atomic Redis step writes exactly the changed entries beside the new
offset fences (see :mod:`streams.ledger_path`). A key the step looks up but was not read is recorded
in :attr:`StepTable.misses`: the path then reads it and runs the step again from the same state, so
an incomplete :func:`needs` costs time, never correctness.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams import ledger

TABLES = ("clicks", "orders", "waiting", "seen")


class StepTable(MutableMapping[str, Any]):
    """One table as one step sees it: the entries read for it (``None``: absent in Redis) under the
    entries the step set (``dirty``) or deleted (``deleted``)."""

    __slots__ = ("base", "deleted", "dirty", "misses")

    def __init__(self, base: Mapping[str, Any] | None = None) -> None:
        self.base: dict[str, Any] = dict(base or {})
        self.dirty: dict[str, Any] = {}
        self.deleted: set[str] = set()
        self.misses: set[str] = set()

    def _lookup(self, key: str) -> Any:
        if key in self.dirty:
            return self.dirty[key]
        if key in self.deleted:
            return None
        if key not in self.base:
            self.misses.add(key)
            return None
        return self.base[key]

    def __getitem__(self, key: str) -> Any:
        v = self._lookup(key)
        if v is None:
            raise KeyError(key)
        return v

    def get(self, key: str, default: Any = None) -> Any:  # hot path: skip the ABC
        v = self._lookup(key)
        return default if v is None else v

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._lookup(key) is not None

    def __setitem__(self, key: str, value: Any) -> None:
        if value is None:
            raise ValueError("a ledger table entry cannot be None")
        self.dirty[key] = value
        self.deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        if self._lookup(key) is None:
            raise KeyError(key)
        self.dirty.pop(key, None)
        self.deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        """The keys known to this step (read or written), not the whole table."""
        known = {k for k, v in self.base.items() if v is not None} | set(self.dirty)
        return iter(sorted(known - self.deleted))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def changes(self) -> tuple[dict[str, Any], list[str]]:
        """→ (set entries, deleted keys) of this step."""
        return {k: self.dirty[k] for k in sorted(self.dirty)}, sorted(self.deleted)


@dataclass(slots=True)
class PartitionState:
    """What a worker keeps of one source partition between steps: its offset fences (loaded at
    assignment) and how many state entries it has read (observability, tests)."""

    partition: int
    # "<topic>:<partition>" -> last offset whose effects are in Redis (-1: none yet)
    fences: dict[str, int] = field(default_factory=dict)
    entries_read: int = 0

    def fence(self, topic: str) -> int:
        return self.fences.get(f"{topic}:{self.partition}", -1)


@dataclass(slots=True)
class StepState:
    """The four tables of one step (see :class:`StepTable`)."""

    tables: dict[str, StepTable]

    @classmethod
    def from_read(cls, read: Mapping[str, Mapping[str, Any]]) -> StepState:
        return cls({t: StepTable(read.get(t)) for t in TABLES})

    def ledger_tables(self) -> ledger.Tables:
        t = self.tables
        return ledger.Tables(clicks=t["clicks"], orders=t["orders"], waiting=t["waiting"], seen=t["seen"])

    def misses(self) -> dict[str, set[str]]:
        return {t: tab.misses for t, tab in self.tables.items() if tab.misses}

    def changes(self) -> dict[str, tuple[dict[str, Any], list[str]]]:
        """``{table: (set entries, deleted keys)}`` of the tables the step changed."""
        out = {}
        for name, tab in self.tables.items():
            sets, dels = tab.changes()
            if sets or dels:
                out[name] = (sets, dels)
        return out


def needs(items: Iterable[tuple[str, str, Any]]) -> tuple[dict[str, set[str]], dict[str, str]]:
    """The state keys a step's records look up, per table, and the brand of each ``waiting`` key.
    ``items``: ``(kind, brand_id, record)`` with kind ``click`` (a :class:`schemas.wire.WireClickEvent`),
    ``order``, ``cancel`` or ``refund``. The orders that a click's ``waiting`` entry names are a second
    read (:func:`waiting_orders`)."""
    out: dict[str, set[str]] = {t: set() for t in TABLES}
    brands: dict[str, str] = {}
    for kind, brand, rec in items:
        if kind == "click":
            key = f"{brand}:{rec.event_id}"
            out["clicks"].add(key)
            out["waiting"].add(key)
            brands[key] = brand
            continue
        out["seen"].add(f"{brand}:{rec.event_id}")
        out["orders"].add(f"{brand}:{rec.order_id}")
        if kind == "order" and rec.click_id:
            key = f"{brand}:{rec.click_id}"
            out["clicks"].add(key)
            out["waiting"].add(key)
            brands[key] = brand
    return out, brands


def waiting_orders(waiting: Mapping[str, Any], brands: Mapping[str, str]) -> set[str]:
    """The ``orders`` keys named by the ``waiting`` entries read (``<brand>:<click_id>`` → order ids)."""
    out: set[str] = set()
    for key, ids in waiting.items():
        if ids and key in brands:
            out.update(f"{brands[key]}:{oid}" for oid in ids)
    return out


def decode(raw: bytes | str | None) -> Any:
    return None if raw is None else orjson.loads(raw)


def encode(value: Any) -> str:
    return orjson.dumps(value).decode()
