"""Kafka plumbing shared by every process: the producer factory and explicit topic creation.

- :func:`start_producer` -- one long-lived, idempotent producer per process (``acks="all"``), so a
  send that returned means "durably in Kafka". Start it once at process start, pass it down, and
  ``await producer.stop()`` on shutdown (``stop`` flushes what is still batched).
- :func:`create_topics` -- creates every topic of :func:`liveledger.topics.topic_specs` with its
  declared partition count and config. The broker's ``auto.create.topics.enable`` is off, so this
  (``liveledger topics create``, run by ``make migrate``) is the only way topics come to exist.
  Existing topics are fine; an existing topic with a different partition count is an error,
  because co-partitioned Faust tables would silently stop lining up.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from liveledger.settings import Settings, get_settings
from liveledger.topics import TopicSpec, replication, topic_specs

# ensure_topics' default; create_topics uses the settings' kafka_replication_factor (liveledger/topics.py).
DEFAULT_REPLICATION_FACTOR = 1

_TOPIC_ALREADY_EXISTS = 36


class TopicMismatchError(RuntimeError):
    """An existing topic does not have the partition count the application declares."""


@dataclass(frozen=True)
class TopicStatus:
    name: str
    partitions: int
    created: bool


async def start_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """Start the process's producer: idempotent, ``acks="all"``, lz4, a 5 ms linger.

    ``overrides`` go straight to :class:`aiokafka.AIOKafkaProducer` (e.g. ``max_batch_size``).
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "compression_type": "lz4",
        "request_timeout_ms": 30_000,
    }
    options.update(overrides)
    producer = AIOKafkaProducer(**options)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=30_000)


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partition count of each existing topic among ``names`` (missing topics are left out)."""
    counts: dict[str, int] = {}
    for topic in await admin.describe_topics(names):
        if topic["error_code"] == 0:
            counts[topic["topic"]] = len(topic["partitions"])
    return counts


async def ensure_topics(
    settings: Settings,
    specs: list[TopicSpec],
    replication_factor: int = DEFAULT_REPLICATION_FACTOR,
) -> list[TopicStatus]:
    """Create the missing topics among ``specs``; verify the partition counts of all of them."""
    admin = _admin(settings)
    await admin.start()
    try:
        names = [s.name for s in specs]
        existing = await _partition_counts(admin, names)
        missing = [s for s in specs if s.name not in existing]
        created: set[str] = set()
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, replication_factor, topic_configs=dict(s.config))
                    for s in missing
                ]
            )
            for name, code, message in response.topic_errors:
                if code == 0:
                    created.add(name)
                elif code != _TOPIC_ALREADY_EXISTS:  # lost a race with another creator: fine
                    raise for_code(code)(f"creating topic {name!r}: {message}")
            # Metadata may lag the controller for a moment right after creation.
            for _ in range(50):
                existing = await _partition_counts(admin, names)
                if all(s.name in existing for s in specs):
                    break
                await asyncio.sleep(0.1)
        result: list[TopicStatus] = []
        mismatched: list[str] = []
        for spec in specs:
            have = existing.get(spec.name)
            if have is None:
                raise RuntimeError(f"topic {spec.name!r} still missing after creation")
            if have != spec.partitions:
                mismatched.append(f"{spec.name}: has {have} partitions, declared {spec.partitions}")
            result.append(TopicStatus(spec.name, have, spec.name in created))
        if mismatched:
            raise TopicMismatchError(
                "existing topics do not match the declared partition counts ("
                + "; ".join(mismatched)
                + "). Partitions can only be added, and adding them re-keys brands across partitions:"
                " delete and recreate the topics (dev: `make down && rm -rf .devstack/kafka && make up`)."
            )
        return result
    finally:
        await admin.close()


async def create_topics(settings: Settings) -> list[TopicStatus]:
    """Create every topic of the topic map (idempotent); raise :class:`TopicMismatchError` on drift."""
    return await ensure_topics(settings, topic_specs(settings), replication(settings)[0])


async def list_topics(settings: Settings) -> dict[str, int]:
    """All non-internal topics of the cluster with their partition counts."""
    admin = _admin(settings)
    await admin.start()
    try:
        topics = await admin.describe_topics()
        return {
            t["topic"]: len(t["partitions"])
            for t in topics
            if t["error_code"] == 0 and not t.get("is_internal", False)
        }
    finally:
        await admin.close()


def create_topics_cli(args: argparse.Namespace) -> int:
    """``liveledger topics create|list``."""
    settings = get_settings()
    if args.action == "create":
        try:
            statuses = asyncio.run(create_topics(settings))
        except TopicMismatchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        for st in statuses:
            state = "created" if st.created else "exists"
            print(f"{st.name:<24} partitions={st.partitions:<3} {state}")
        return 0
    if args.action == "list":
        declared = {s.name: s.partitions for s in topic_specs(settings)}
        actual = asyncio.run(list_topics(settings))
        for name in sorted(set(declared) | set(actual)):
            have = actual.get(name)
            want = declared.get(name)
            note = ""
            if want is None:
                note = "(not in the topic map)"
            elif have is None:
                note = "(missing: run `liveledger topics create`)"
            elif have != want:
                note = f"(MISMATCH: declared {want})"
            print(f"{name:<24} partitions={have if have is not None else '-':<3} {note}".rstrip())
        return 0
    raise ValueError(f"unknown topics action {args.action!r}")
