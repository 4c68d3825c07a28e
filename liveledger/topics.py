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


def topic_specs(settings: Settings) -> list[TopicSpec]:
    p = settings.topic_prefix
    n = settings.event_partitions
    week = str(7 * 24 * 3600 * 1000)
    return [
        TopicSpec(f"{p}.setup", 1, {"cleanup.policy": "compact", "min.insync.replicas": "1"},
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


def topic_name(settings: Settings, short: str) -> str:
    return f"{settings.topic_prefix}.{short}"
