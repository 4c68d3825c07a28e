"""The Kafka topic map: names, partition counts, keys, retention. See docs/topics.md."""

from __future__ import annotations

from dataclasses import dataclass

from liveledger.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]
    key: str
    purpose: str


def replication(settings: Settings) -> tuple[int, dict[str, str]]:
    """The replication factor of every topic and the config that goes with it.

    ``min.insync.replicas`` (``kafka_min_insync_replicas``) is set on each topic, so an acks=all
    write (every producer of the application) is acknowledged only once that many replicas have it:
    RF 3 with 2 in sync keeps accepting writes with one broker down and loses nothing acknowledged.
    """
    rf, isr = settings.kafka_replication_factor, settings.kafka_min_insync_replicas
    if isr > rf:
        raise ValueError(f"kafka_min_insync_replicas={isr} > kafka_replication_factor={rf}: no write could succeed")
    return rf, {"min.insync.replicas": str(isr)}


def topic_specs(settings: Settings) -> list[TopicSpec]:
    p = settings.topic_prefix
    n = settings.event_partitions
    week = str(7 * 24 * 3600 * 1000)
    _, isr = replication(settings)
    specs = [
        TopicSpec(f"{p}.setup", 1, {"cleanup.policy": "compact"},
                  "<kind>:<id>", "setup entities (brands, creators, keys, campaigns, links, streams)"),
        TopicSpec(f"{p}.events", n, {"retention.ms": week},
                  "brand_id", "batches of view / click / add_to_cart events (one record per accepted batch)"),
        TopicSpec(f"{p}.orders", n, {"retention.ms": week},
                  "brand_id", "order.created / order.refunded, native and Shopify, normalised"),
        TopicSpec(f"{p}.dlq", n, {"retention.ms": str(30 * 24 * 3600 * 1000)},
                  "source key", "dead letters: original bytes, reason and source topic/partition/offset in headers"),
        TopicSpec(f"{p}.ledger", n, {"retention.ms": week},
                  "brand_id", "ledger facts produced by the stream processors for the ClickHouse sink"),
    ]
    return [TopicSpec(s.name, s.partitions, {**s.config, **isr}, s.key, s.purpose) for s in specs]


def topic_name(settings: Settings, short: str) -> str:
    return f"{settings.topic_prefix}.{short}"
