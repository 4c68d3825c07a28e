"""Re-reading records Faust skipped, with a consumer of our own (no group, never Faust's).

The :class:`~streams.gate.OffsetGate` asks for ``[start, end)`` of one partition when Faust delivers
past the Redis fence. Faust's consumer is never sought for this: its aiokafka consumer runs in
Faust's consumer thread, and seeking it from the agents' loop raced its fetcher (observed: a
``KeyError`` in ``aiokafka/consumer/fetcher.py`` killed the worker), while calls marshalled into
that thread (``earliest_offsets``) did not return during a rebalance. This consumer belongs to the
agents' loop alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

log = logging.getLogger(__name__)

REREAD_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Record:
    """A re-read record with the fields of a Faust ``Message`` that the paths read."""

    tp: TP
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float  # seconds, as Faust's
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Rereader:
    def __init__(self, bootstrap: str, group_id: str) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self._reader: AIOKafkaConsumer | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                        auto_offset_reset="earliest", max_partition_fetch_bytes=4 * 1024 * 1024)
        await self._reader.start()
        # the worker's group, only to read what Faust committed (it never joins: no subscribe)
        self._offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group_id,
                                         enable_auto_commit=False)
        await self._offsets.start()

    async def stop(self) -> None:
        for c in (self._reader, self._offsets):
            if c is not None:
                await c.stop()

    async def committed(self, tp: Any) -> int | None:
        """The offset Faust committed for ``tp`` (where it resumes the partition), if any."""
        assert self._offsets is not None
        return await self._offsets.committed(TopicPartition(tp.topic, tp.partition))  # type: ignore[no-any-return]

    async def read(self, tp: Any, start: int, end: int) -> list[Record]:
        """The records of ``tp`` with ``start <= offset < end`` that the log still has."""
        assert self._reader is not None
        key = TopicPartition(tp.topic, tp.partition)
        out: list[Record] = []
        async with self._lock:
            self._reader.assign([key])
            self._reader.seek(key, start)
            deadline = time.monotonic() + REREAD_TIMEOUT_S
            while await self._reader.position(key) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"re-reading {key} {start}..{end} took over {REREAD_TIMEOUT_S}s")
                batch = await self._reader.getmany(key, timeout_ms=500, max_records=5000)
                for rec in batch.get(key, []):
                    if rec.offset >= end:
                        return out
                    out.append(Record(TP(key.topic, key.partition), rec.offset, rec.key, rec.value,
                                      rec.timestamp / 1000, list(rec.headers or [])))
        return out
