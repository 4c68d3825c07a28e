"""The Faust gap: Faust positions a partition past records no agent applied; they are applied anyway.

faust-streaming 0.15.3 can resume a partition at an offset it committed across records it never
delivered (docs/stream-processing.md, "What we rely on, what we guard against"). Two tests:
- in a worker: with the worker stopped, the app's committed offsets are moved to the end of the log
  (what Faust's bug leaves behind) while records are still unapplied; a restarted worker must apply
  every record exactly once;
- in the live path itself, against Redis: a batch that starts past the fence gets the missing
  records re-read in front of it, and everything is applied once.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition

from liveledger.redis_client import sum_hashes
from liveledger.settings import Settings
from liveledger.storage import redis_keys as rk
from liveledger.topics import topic_name
from streams.app import app_id
from streams.gate import OffsetGate
from streams.live_path import LivePath
from streams.redis_state import LiveStore, Notifier
from tests.streams import kit
from tests.streams.kit import Msg

LOGS = kit.REPO / ".devstack" / "logs"


def views(brand: str, n: int, tag: str) -> list[tuple[str, bytes, bytes]]:
    """``n`` records of 10 join events each (distinct ids) for stream s1."""
    return [("events", brand.encode(), kit.batch(brand, [kit.view(f"{tag}-{i}-{j}", "s1", f"v{i}-{j}")
                                                         for j in range(10)])) for i in range(n)]


async def _hget(settings: Settings, names: list[str], field: str) -> int:
    """``field`` summed over the hashes ``names`` (per-partition keys: redis_keys)."""
    r: Any = aioredis.from_url(settings.redis_url, decode_responses=True)
    try:
        return (await sum_hashes(r, names)).get(field, 0)
    finally:
        await r.aclose()


async def accepted(settings: Settings) -> int:
    return await _hget(settings, rk.stats_keys(settings.topic_prefix, settings.event_partitions), "events_accepted")


async def views_counted(settings: Settings) -> int:
    p = settings.topic_prefix
    return await _hget(settings, [rk.stream_counts(p, q, "s1") for q in range(settings.event_partitions)], "views")


async def commit_at_end(settings: Settings, topics: list[str]) -> int:
    """Commit the log end of every partition for the worker's group (the group has no members)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=app_id(settings),
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.event_partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.commit({tp: off for tp, off in ends.items()})
        return sum(ends.values())
    finally:
        await consumer.stop()


@pytest.mark.kafka
@pytest.mark.redis
@pytest.mark.e2e
async def test_a_worker_applies_records_faust_committed_past() -> None:
    settings = kit.fresh_settings()
    await kit.prepare_topics(settings)
    log = LOGS / f"test-{settings.topic_prefix}-worker.log"
    LOGS.mkdir(parents=True, exist_ok=True)
    worker = kit.spawn(settings, "streams", "worker", log=log)
    try:
        await kit.produce(settings, views("b1", 30, "a"))
        await kit.wait_for(lambda: _equals(accepted(settings), 300), timeout=60)
    finally:
        kit.stop(worker)
    # records the stopped worker never saw, then Faust's position moved past them
    await kit.produce(settings, views("b1", 20, "b") + views("b2", 20, "c"))
    assert await commit_at_end(settings, [topic_name(settings, "events"), topic_name(settings, "orders")]) >= 70
    worker = kit.spawn(settings, "streams", "worker", log=log)
    try:
        await kit.wait_for(lambda: _equals(accepted(settings), 700), timeout=60)
        await kit.produce(settings, views("b1", 5, "d"))  # and it goes on from there
        await kit.wait_for(lambda: _equals(accepted(settings), 750), timeout=60)
        assert await views_counted(settings) == 750  # every join counted once
    finally:
        kit.stop(worker)


async def _equals(value: Any, want: int) -> bool:
    return bool(await value == want)



@pytest.mark.redis
async def test_the_live_path_rereads_a_gap_instead_of_skipping_it() -> None:
    settings = kit.fresh_settings()
    client = aioredis.from_url(settings.redis_url)
    tp = TopicPartition("x.events", 0)
    log = [Msg(tp, i, b"b1", rec) for i, (_, _, rec) in enumerate(views("b1", 10, "g"))]
    reads: list[tuple[int, int]] = []

    async def refill(_: Any, start: int, end: int) -> list[Msg]:  # the log, as the re-reader reads it
        reads.append((start, end))
        return [m for m in log if start <= m.offset < end]

    async def send(*_: Any) -> Any:
        raise AssertionError("nothing is dead-lettered here")

    path = LivePath(LiveStore(client, settings.topic_prefix), Notifier(client, settings.topic_prefix), send,
                    OffsetGate(refill), "x.dlq")
    try:
        assert await path.process(tp, log[:3]) == 2  # offsets 0..2 applied
        # Faust now delivers from offset 7: 3..6 were never applied; they are re-read, not skipped
        assert await path.process(tp, log[7:]) == 9
        assert reads == [(3, 7)]
        assert await views_counted(settings) == 100 and await accepted(settings) == 100
        # Faust delivering the same records again changes nothing
        assert await path.process(tp, log[5:]) is None
        assert await views_counted(settings) == 100
        stats = await client.hgetall(rk.stats(settings.topic_prefix, tp.partition))
        assert int(stats[b"offset_gaps_reread"]) == 1 and int(stats[b"records_reread"]) == 4
    finally:
        keys = await client.keys(f"{settings.topic_prefix}:*")
        if keys:
            await client.delete(*keys)
        await client.aclose()
