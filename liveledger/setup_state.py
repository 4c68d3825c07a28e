"""The setup entities (brands, creators, keys, campaigns, links, streams) as every process sees them.

The source of truth is the compacted Kafka topic ``<prefix>.setup``. Each process materialises it
in memory (:class:`SetupState`) with a tailing consumer (:class:`SetupReplica`). A lookup that
misses calls :meth:`SetupReplica.catch_up`, which reads up to the topic's current end offset before
answering, so an entity written before the caller's request started is always seen
("setup changes take effect for events ingested after the call returns").

API keys are stored only as SHA-256 digests; webhook secrets are stored as issued because HMAC
verification needs them (the topic is internal; see docs/topics.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from liveledger.settings import Settings
from liveledger.topics import topic_name

log = logging.getLogger(__name__)

Role = Literal["admin", "brand", "creator", "finance"]


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def new_secret(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    brand_id: str | None = None
    creator_id: str | None = None
    name: str | None = None


@dataclass(slots=True)
class SetupState:
    """Pure in-memory view; :meth:`apply` folds one record of the setup topic into it."""

    brands: dict[str, dict[str, Any]] = field(default_factory=dict)
    creators: dict[str, dict[str, Any]] = field(default_factory=dict)
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    coupons: dict[tuple[str, str], str] = field(default_factory=dict)  # (brand, CODE) -> link_code
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, Principal] = field(default_factory=dict)  # sha256 -> principal

    def apply(self, key: str, value: dict[str, Any] | None) -> None:
        kind, _, ident = key.partition(":")
        table: dict[Any, Any] | None = {
            "brand": self.brands,
            "creator": self.creators,
            "campaign": self.campaigns,
            "link": self.links,
            "stream": self.streams,
        }.get(kind)
        if table is not None:
            if value is None:
                table.pop(ident, None)
            else:
                table[ident] = value
                if kind == "link" and value.get("coupon_code"):
                    self.coupons[(value["brand_id"], coupon_key(value["coupon_code"]))] = ident
            return
        if kind == "apikey":
            if value is None:
                self.keys.pop(ident, None)
            else:
                self.keys[ident] = Principal(
                    role=value["role"],
                    brand_id=value.get("brand_id"),
                    creator_id=value.get("creator_id"),
                    name=value.get("name"),
                )
            return
        log.warning("ignoring setup record with unknown kind %r", kind)

    def principal(self, api_key: str) -> Principal | None:
        return self.keys.get(hash_key(api_key))

    def link_for_coupon(self, brand_id: str, code: str) -> dict[str, Any] | None:
        link_code = self.coupons.get((brand_id, coupon_key(code)))
        return self.links.get(link_code) if link_code else None


def coupon_key(code: str) -> str:
    """Coupon codes compare case-insensitively, as shops treat them (documented in docs/setup.md)."""
    return code.upper()


class SetupReplica:
    """Tails the setup topic into a :class:`SetupState`; ``catch_up`` gives read-your-writes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = SetupState()
        self.topic = topic_name(settings, "setup")
        self._tp = TopicPartition(self.topic, 0)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._position = 0
        self._advanced = asyncio.Condition()
        self._catch_up_lock = asyncio.Lock()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            group_id=None,
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        consumer.assign([self._tp])
        await consumer.seek_to_beginning(self._tp)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="setup-replica")
        await self.catch_up()
        log.info("setup replica ready: %d records, %d brands, %d links", self._position,
                 len(self.state.brands), len(self.state.links))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def position(self) -> int:
        return self._position

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(self._tp, timeout_ms=500)
            for records in batches.values():
                for rec in records:
                    key = rec.key.decode("utf-8") if rec.key else ""
                    value = orjson.loads(rec.value) if rec.value else None
                    self.state.apply(key, value)
                    self._position = rec.offset + 1
            if not batches:
                # An empty fetch can still mean the end moved past compacted or control records.
                self._position = max(self._position, await self._consumer.position(self._tp))
            async with self._advanced:
                self._advanced.notify_all()

    async def catch_up(self, timeout: float = 5.0) -> None:
        """Return once everything written to the setup topic before this call is applied."""
        assert self._consumer is not None
        async with self._catch_up_lock:
            end = (await self._consumer.end_offsets([self._tp]))[self._tp]
        async with self._advanced:
            await asyncio.wait_for(self._advanced.wait_for(lambda: self._position >= end), timeout)


async def publish_setup(producer: Any, settings: Settings, key: str, value: dict[str, Any]) -> None:
    """Write one setup record and wait for acks from all in-sync replicas."""
    await producer.send_and_wait(topic_name(settings, "setup"), orjson.dumps(value), key=key.encode())
