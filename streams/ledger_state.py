"""In-memory ledger state of one source partition, with the changes since the last Redis step (pure).

:mod:`streams.ledger` works on four ``MutableMapping`` tables. The ledger consumer gives it
:class:`TrackedTable` dicts loaded from the partition's Redis hashes (``<p>:lstate:<partition>:<table>``,
JSON values); each records which keys were set or deleted, so one atomic Redis step writes exactly
the changed entries beside the new offset fences (see :mod:`streams.ledger_path`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams import ledger

TABLES = ("clicks", "orders", "waiting", "seen")


class TrackedTable(MutableMapping[str, Any]):
    """A dict that remembers the keys set (``dirty``) and deleted (``deleted``) since :meth:`take`."""

    __slots__ = ("_data", "deleted", "dirty")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})
        self.dirty: set[str] = set()
        self.deleted: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self.dirty.add(key)
        self.deleted.discard(key)

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self.dirty.discard(key)
        self.deleted.add(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:  # hot path: skip the ABC
        return self._data.get(key, default)

    @property
    def changed(self) -> bool:
        return bool(self.dirty or self.deleted)

    def take(self) -> tuple[dict[str, Any], list[str]]:
        """→ (set entries, deleted keys) since the last call, and start recording afresh."""
        upserts = {k: self._data[k] for k in sorted(self.dirty)}
        deletes = sorted(self.deleted)
        self.dirty, self.deleted = set(), set()
        return upserts, deletes


@dataclass(slots=True)
class PartitionState:
    """One source partition's ledger tables and the offset fences they correspond to."""

    partition: int
    tables: dict[str, TrackedTable] = field(default_factory=lambda: {t: TrackedTable() for t in TABLES})
    # "<topic>:<partition>" -> last offset whose effects are in Redis (-1: none yet)
    fences: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_redis(cls, partition: int, hashes: Mapping[str, Mapping[Any, Any]],
                   fences: Mapping[str, int]) -> PartitionState:
        """From ``HGETALL`` of each table's hash (JSON values) and the stored fences."""
        tables = {}
        for name in TABLES:
            raw = hashes.get(name) or {}
            tables[name] = TrackedTable({_text(k): orjson.loads(v) for k, v in raw.items()})
        return cls(partition, tables, dict(fences))

    def ledger_tables(self) -> ledger.Tables:
        t = self.tables
        return ledger.Tables(clicks=t["clicks"], orders=t["orders"], waiting=t["waiting"], seen=t["seen"])

    def take_changes(self) -> tuple[list[list[str]], list[list[str]]]:
        """→ (``[[table, key, json], ...]`` to HSET, ``[[table, key], ...]`` to HDEL) for the Redis step."""
        sets: list[list[str]] = []
        dels: list[list[str]] = []
        for name in TABLES:
            upserts, deletes = self.tables[name].take()
            sets += [[name, k, orjson.dumps(v).decode()] for k, v in upserts.items()]
            dels += [[name, k] for k in deletes]
        return sets, dels

    def fence(self, topic: str) -> int:
        return self.fences.get(f"{topic}:{self.partition}", -1)


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v
