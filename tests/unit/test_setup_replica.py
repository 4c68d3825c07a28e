"""SetupReplica's catch-up: concurrent misses share end-offset requests, and every caller still sees
what was written before it called (read-your-writes).

The first test uses a fake consumer to pin the single-flight rule exactly; the others run against
the real Kafka on a fresh topic prefix.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from liveledger.kafka import create_topics, start_producer
from liveledger.settings import Settings
from liveledger.setup_state import SetupReplica
from schemas.setup import Brand, encode_setup
from tests.harness import fresh_prefix


@dataclass
class Calls:
    """``end_offsets`` requests seen: when each started (monotonic seconds)."""

    starts: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.starts)


def count_end_offsets(replica: SetupReplica, monkeypatch: pytest.MonkeyPatch, delay_s: float = 0.0) -> Calls:
    """Wrap the replica consumer's ``end_offsets``; ``delay_s`` delays each answer (a slow broker)."""
    consumer: Any = replica._consumer
    real = consumer.end_offsets
    calls = Calls()

    async def counted(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        calls.starts.append(time.monotonic())
        result: dict[TopicPartition, int] = await real(partitions)
        if delay_s:
            await asyncio.sleep(delay_s)
        return result

    monkeypatch.setattr(consumer, "end_offsets", counted)
    return calls


class FakeTopic:
    """A consumer whose ``end_offsets`` reads the end when the request starts and answers later."""

    def __init__(self) -> None:
        self.end = 0
        self.requests = 0

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        self.requests += 1
        end = self.end
        await asyncio.sleep(0.05)
        return {tp: end for tp in partitions}


async def test_end_offset_is_single_flight_and_never_older_than_the_call() -> None:
    replica = SetupReplica(Settings(topic_prefix=fresh_prefix()))
    topic = FakeTopic()
    replica._consumer = topic

    first = [asyncio.create_task(replica._end_offset()) for _ in range(100)]
    await asyncio.sleep(0.01)  # the first request is in flight, it read end=0
    assert topic.requests == 1
    topic.end = 1  # a setup record is written (and acknowledged) now
    second = [asyncio.create_task(replica._end_offset()) for _ in range(100)]
    assert await asyncio.gather(*first) == [0] * 100
    # Callers that arrived after the write did not reuse the request in flight: theirs started later.
    assert await asyncio.gather(*second) == [1] * 100
    assert topic.requests == 2
    assert await replica._end_offset() == 1 and topic.requests == 3  # nothing queued: a new request


async def test_failed_request_fails_its_callers_only() -> None:
    replica = SetupReplica(Settings(topic_prefix=fresh_prefix()))
    topic = FakeTopic()
    replica._consumer = topic
    real = topic.end_offsets

    async def broken(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        topic.end_offsets = real  # type: ignore[method-assign]
        raise ConnectionError("broker gone")

    topic.end_offsets = broken  # type: ignore[method-assign]
    results = await asyncio.gather(*(replica._end_offset() for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert await replica._end_offset() == 0  # the next caller queues a fresh request


@pytest.fixture
async def kafka_replica() -> AsyncIterator[tuple[SetupReplica, AIOKafkaProducer]]:
    settings = Settings(topic_prefix=fresh_prefix())
    await create_topics(settings)
    replica = SetupReplica(settings)
    await replica.start()
    producer = await start_producer(settings)
    try:
        yield replica, producer
    finally:
        await producer.stop()
        await replica.stop()


async def write_brand(replica: SetupReplica, producer: AIOKafkaProducer, brand_id: str) -> int:
    """Write a brand's setup record (acks=all, as ``publish_setup``); its offset."""
    key, value = encode_setup(brand_id, Brand(brand_id=brand_id, name=f"Brand {brand_id}", currency="USD",
                                              webhook_secret="whsec_" + "x" * 32))
    meta = await producer.send_and_wait(replica.topic, value, key=key)
    return int(meta.offset)


@pytest.mark.kafka
async def test_200_concurrent_misses_share_end_offset_requests(
    kafka_replica: tuple[SetupReplica, AIOKafkaProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    replica, _ = kafka_replica
    calls = count_end_offsets(replica, monkeypatch)

    found = await asyncio.gather(*(replica.lookup("brands", f"missing-{i}") for i in range(200)))
    assert found == [None] * 200
    together = len(calls)

    async def arrive_later(i: int) -> Any:  # misses spread over ~200 ms: many requests' worth of time
        await asyncio.sleep(i / 1000)
        return await replica.lookup("brands", f"missing-late-{i}")

    calls.starts.clear()
    assert await asyncio.gather(*(arrive_later(i) for i in range(200))) == [None] * 200
    spread = len(calls)
    print(f"\nend_offsets requests for 200 misses: {together} at once, {spread} spread over 200 ms")
    assert together <= 2
    assert spread <= 100  # each request serves every miss that arrived while the previous one ran


@pytest.mark.kafka
async def test_read_your_writes_while_misses_are_in_flight(
    kafka_replica: tuple[SetupReplica, AIOKafkaProducer], monkeypatch: pytest.MonkeyPatch
) -> None:
    replica, producer = kafka_replica
    calls = count_end_offsets(replica, monkeypatch, delay_s=0.3)
    misses = [asyncio.create_task(replica.lookup("brands", f"missing-{i}")) for i in range(200)]
    while not calls:
        await asyncio.sleep(0.005)
    # One request is in flight (its answer delayed): a write now must not be answered by it.
    offset = await write_brand(replica, producer, "b-new")
    written = time.monotonic()
    await replica.catch_up()
    # Everything up to the write is applied, through a request that started after the write.
    assert replica.position >= offset + 1
    assert "b-new" in replica.state.brands
    assert any(start >= written for start in calls.starts)
    assert await asyncio.gather(*misses) == [None] * 200
    assert len(calls) <= 3

    offset = await write_brand(replica, producer, "b-newer")
    found = await replica.lookup("brands", "b-newer")
    assert found is not None and found["name"] == "Brand b-newer"
    assert replica.position >= offset + 1


def test_state_folds_typed_records_and_skips_bad_ones() -> None:
    from liveledger.setup_state import SetupState
    from schemas.setup import ApiKey, Link

    state = SetupState()
    state.apply(*encode_setup("L1", Link(creator_id="cr1", campaign_id="cmp1", destination_url="https://s.example/",
                                         coupon_code="save", link_code="L1", brand_id="b1")))
    state.apply(*encode_setup("k1", ApiKey(role="brand", brand_id="b1")))
    state.apply(b"link:L2", b'{"link_code": "L2"}')  # does not validate: skipped, nothing else changes
    state.apply(b"gadget:1", b"{}")
    assert list(state.links) == ["L1"] and state.keys["k1"].brand_id == "b1"
    assert state.link_for_coupon("b1", "SAVE") == state.links["L1"]
    state.apply(b"link:L1", None)  # tombstone
    assert state.links == {}
