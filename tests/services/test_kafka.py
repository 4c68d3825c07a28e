"""The dev stack's Kafka is a real broker usable from the project's code (issue 2).

Every test uses fresh topics (``test-<uuid>``) and consumer groups, and deletes its topics after.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError

from liveledger.kafka import TopicMismatchError, create_topics, ensure_topics, start_producer
from liveledger.settings import Settings
from liveledger.topics import TopicSpec, topic_specs

pytestmark = pytest.mark.kafka

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await client.start()
    yield client
    await client.close()


@pytest.fixture
async def new_topic(
    settings: Settings, admin: AIOKafkaAdminClient
) -> AsyncIterator[Callable[..., Any]]:
    """Factory: ``await new_topic(partitions)`` creates ``test-<uuid>``; all are deleted after."""
    made: list[str] = []

    async def make(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"test-{uuid.uuid4().hex}"
        await ensure_topics(settings, [TopicSpec(name, partitions, config or {}, "test", "test")])
        made.append(name)
        return name

    yield make
    if made:
        await admin.delete_topics(made)


def _consumer(settings: Settings, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _take(consumer: AIOKafkaConsumer, n: int, timeout: float = 30.0) -> list[Record]:
    """Exactly the next ``n`` records (fails on timeout)."""
    out: list[Record] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(out) < n:
        assert loop.time() < deadline, f"got {len(out)} of {n} records within {timeout}s"
        batches = await consumer.getmany(timeout_ms=500, max_records=n - len(out))
        for records in batches.values():
            out.extend(records)
    return out


async def _nothing_more(consumer: AIOKafkaConsumer, wait_s: float = 1.5) -> None:
    batches = await consumer.getmany(timeout_ms=int(wait_s * 1000))
    extra = [r.value for rs in batches.values() for r in rs]
    assert extra == [], f"unexpected extra records: {extra[:5]}"


async def test_idempotent_producer_acks_all(settings: Settings, new_topic: Callable[..., Any]) -> None:
    topic = await new_topic(3)
    producer = await start_producer(settings)
    try:
        metas = [await producer.send_and_wait(topic, f"v{i}".encode(), key=f"k{i % 5}".encode()) for i in range(30)]
        # The broker assigned a producer id: the idempotent producer really negotiated it.
        txn = producer._txn_manager
        assert txn is not None and txn.producer_id >= 0
        assert {m.topic for m in metas} == {topic}
        # The same key always lands on the same partition, in send order.
        by_key: dict[bytes, set[int]] = {}
        for i, m in enumerate(metas):
            by_key.setdefault(f"k{i % 5}".encode(), set()).add(m.partition)
        assert all(len(parts) == 1 for parts in by_key.values())
    finally:
        await producer.stop()


async def test_consumer_group_resumes_from_committed_offset(
    settings: Settings, new_topic: Callable[..., Any]
) -> None:
    topic = await new_topic(1)
    group = f"test-group-{uuid.uuid4().hex}"
    tp = TopicPartition(topic, 0)
    producer = await start_producer(settings)
    try:
        for i in range(10):
            await producer.send(topic, f"first-{i}".encode())
        await producer.flush()

        consumer = _consumer(settings, topic, group)
        await consumer.start()
        try:
            got = await _take(consumer, 10)
            assert [r.value for r in got] == [f"first-{i}".encode() for i in range(10)]
            # Commit only the first 6 (offset = next record to read): 6..9 must come again.
            await consumer.commit({tp: got[6].offset})
            assert await consumer.committed(tp) == got[6].offset
        finally:
            await consumer.stop()

        for i in range(5):
            await producer.send(topic, f"second-{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    consumer = _consumer(settings, topic, group)
    await consumer.start()
    try:
        got = await _take(consumer, 9)
        assert [r.value for r in got] == [f"first-{i}".encode() for i in range(6, 10)] + [
            f"second-{i}".encode() for i in range(5)
        ]
        assert [r.offset for r in got] == list(range(6, 15))
        await _nothing_more(consumer)
        await consumer.commit()
        assert await consumer.committed(tp) == 15
    finally:
        await consumer.stop()


async def test_consumer_group_full_commit_then_restart_reads_only_new(
    settings: Settings, new_topic: Callable[..., Any]
) -> None:
    topic = await new_topic(3)
    group = f"test-group-{uuid.uuid4().hex}"
    producer = await start_producer(settings)
    try:
        first = {f"a-{i}".encode() for i in range(60)}
        for v in sorted(first):
            await producer.send(topic, v, key=v[-1:])
        await producer.flush()

        consumer = _consumer(settings, topic, group)
        await consumer.start()
        try:
            assert {r.value for r in await _take(consumer, 60)} == first
            await consumer.commit()
        finally:
            await consumer.stop()

        second = [f"b-{i}".encode() for i in range(40)]
        for v in second:
            await producer.send(topic, v, key=v[-1:])
        await producer.flush()
    finally:
        await producer.stop()

    consumer = _consumer(settings, topic, group)
    await consumer.start()
    try:
        got = await _take(consumer, 40)
        assert sorted(r.value for r in got) == sorted(second)  # exactly the new ones, no repeats
        by_partition: dict[int, list[bytes]] = {}
        for r in got:
            by_partition.setdefault(r.partition, []).append(r.value)
        for values in by_partition.values():  # per partition, in production order
            assert values == sorted(values, key=second.index)
        await _nothing_more(consumer)
    finally:
        await consumer.stop()


async def test_topics_created_with_declared_partitions_and_config(
    settings: Settings, admin: AIOKafkaAdminClient
) -> None:
    s = Settings(topic_prefix=f"test-{uuid.uuid4().hex[:12]}")
    specs = topic_specs(s)
    try:
        statuses = await create_topics(s)
        assert [(st.name, st.partitions, st.created) for st in statuses] == [
            (spec.name, spec.partitions, True) for spec in specs
        ]
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([x.name for x in specs])}
        assert described == {spec.name: spec.partitions for spec in specs}

        again = await create_topics(s)  # idempotent
        assert [st.created for st in again] == [False] * len(specs)

        setup = next(spec for spec in specs if spec.name.endswith(".setup"))
        (resp,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, setup.name)])
        configs = {entry[0]: entry[1] for entry in resp.resources[0][4]}
        assert configs["cleanup.policy"] == "compact"

        bigger = Settings(topic_prefix=s.topic_prefix, event_partitions=s.event_partitions + 2)
        with pytest.raises(TopicMismatchError, match="declared"):
            await create_topics(bigger)
    finally:
        await admin.delete_topics([spec.name for spec in specs])


async def test_auto_create_is_disabled(settings: Settings, admin: AIOKafkaAdminClient) -> None:
    topic = f"test-missing-{uuid.uuid4().hex}"
    producer = await start_producer(settings, request_timeout_ms=3000)
    try:
        with pytest.raises((UnknownTopicOrPartitionError, KafkaTimeoutError)):
            await producer.send_and_wait(topic, b"x")
    finally:
        await producer.stop()
    (described,) = await admin.describe_topics([topic])
    assert described["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION: the broker did not create it
