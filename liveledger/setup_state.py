"""The setup entities (brands, creators, keys, campaigns, links, streams) as every process sees them.

The source of truth is the compacted Kafka topic ``<prefix>.setup``. Each process materialises it
in memory (:class:`SetupState`) with a tailing consumer (:class:`SetupReplica`). A lookup that
misses (:meth:`SetupReplica.lookup`, :meth:`SetupReplica.principal`) calls
:meth:`SetupReplica.catch_up`, which reads up to the topic's end offset as of a request started
after the call before answering, so an entity written before the caller's request started is always
seen ("setup changes take effect for events ingested after the call returns"). Concurrent misses
share one end-offsets request.

API keys are stored only as SHA-256 digests; webhook secrets are stored as issued because HMAC
verification needs them (the topic is internal; see docs/topics.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from liveledger.settings import Settings
from liveledger.topics import topic_name
from schemas.errors import InvalidRecord
from schemas.setup import ApiKey, SetupEntity, decode_setup, encode_setup

log = logging.getLogger(__name__)

# setup record kind -> the SetupState table holding its entities (api keys: SetupState.keys)
_TABLE_OF_KIND: Final = {"brand": "brands", "creator": "creators", "campaign": "campaigns", "link": "links",
                         "stream": "streams"}

Role = Literal["admin", "brand", "creator", "finance"]
Table = Literal["brands", "creators", "campaigns", "links", "streams"]
T = TypeVar("T")


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

    def apply(self, key: bytes | str | None, value: bytes | None) -> None:
        """Fold one raw record (decoded with :func:`schemas.setup.decode_setup`) into the view. A
        record that does not decode is logged and skipped: the view keeps what it had."""
        try:
            kind, ident, entity = decode_setup(key, value)
        except InvalidRecord as exc:
            log.warning("ignoring setup record: %s", exc)
            return
        if kind == "apikey":
            if entity is None:
                self.keys.pop(ident, None)
            else:
                assert isinstance(entity, ApiKey)
                self.keys[ident] = Principal(role=entity.role, brand_id=entity.brand_id,
                                             creator_id=entity.creator_id, name=entity.name)
            return
        table: dict[str, dict[str, Any]] = getattr(self, _TABLE_OF_KIND[kind])
        if entity is None:
            table.pop(ident, None)
            return
        row = entity.model_dump()
        table[ident] = row
        if kind == "link" and row.get("coupon_code"):
            self.coupons[(row["brand_id"], coupon_key(row["coupon_code"]))] = ident

    def table(self, name: Table) -> dict[str, dict[str, Any]]:
        table: dict[str, dict[str, Any]] = getattr(self, name)
        return table

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
        # Single-flight end offsets (see _end_offset): one request at a time; the future of the next
        # one, not yet started, is shared by every caller that arrives before it starts.
        self._end_offsets_lock = asyncio.Lock()
        self._queued: asyncio.Future[int] | None = None
        self._fetches: set[asyncio.Task[None]] = set()

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
        for task in [*self._fetches, self._task]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
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
                    self.state.apply(rec.key, rec.value)
                    self._position = rec.offset + 1
            if not batches:
                # An empty fetch can still mean the end moved past compacted or control records.
                self._position = max(self._position, await self._consumer.position(self._tp))
            async with self._advanced:
                self._advanced.notify_all()

    async def _end_offset(self) -> int:
        """The topic's end offset, from a request that starts after this call.

        Single flight: callers that arrive while no request is queued queue one (a future and the
        task that will fill it); callers that arrive before that request *starts* share it. Once it
        starts it is no longer queued, so later callers queue the next one, which waits for the
        running one to finish. Every caller's answer thus comes from a request started after it
        called (read-your-writes), and N concurrent misses cost about two requests, not N.
        """
        queued = self._queued
        if queued is None:
            queued = self._queued = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(self._fetch_end_offset(queued), name="setup-end-offsets")
            self._fetches.add(task)
            task.add_done_callback(self._fetches.discard)
        # shield: one caller giving up (its request was cancelled) does not cancel the others' fetch
        return await asyncio.shield(queued)

    async def _fetch_end_offset(self, result: asyncio.Future[int]) -> None:
        assert self._consumer is not None
        try:
            async with self._end_offsets_lock:
                if self._queued is result:
                    self._queued = None  # started: callers from now on need a later request
                end = (await self._consumer.end_offsets([self._tp]))[self._tp]
        except asyncio.CancelledError:
            result.cancel()
            raise
        except Exception as exc:
            result.set_exception(exc)
            result.exception()  # every waiter re-raises it; none waiting is not worth a warning
        else:
            result.set_result(end)
        finally:
            if self._queued is result:
                self._queued = None

    async def catch_up(self, timeout: float = 5.0) -> None:
        """Return once everything written to the setup topic before this call is applied."""
        assert self._consumer is not None
        end = await self._end_offset()
        async with self._advanced:
            await asyncio.wait_for(self._advanced.wait_for(lambda: self._position >= end), timeout)

    async def _read_your_writes(self, get: Callable[[], T | None]) -> T | None:
        """``get()``; on a miss, catch up with the setup topic once and ``get()`` again."""
        found = get()
        if found is None:
            await self.catch_up()
            found = get()
        return found

    async def lookup(self, table: Table, ident: str) -> dict[str, Any] | None:
        """``state.<table>[ident]``, seeing every write made before this call."""
        return await self._read_your_writes(lambda: self.state.table(table).get(ident))

    async def principal(self, api_key: str) -> Principal | None:
        """The principal of ``api_key``, seeing every key issued before this call."""
        return await self._read_your_writes(lambda: self.state.principal(api_key))

    async def catch_up_if_missing(self, wanted: Iterable[tuple[Table, str]]) -> None:
        """Catch up once when any ``(table, ident)`` of ``wanted`` is missing (for a batch of
        lookups: one catch-up for the whole batch, not one per missing entity)."""
        state = self.state
        if any(ident not in state.table(table) for table, ident in wanted):
            await self.catch_up()


async def publish_setup(producer: Any, settings: Settings, ident: str, entity: SetupEntity) -> None:
    """Write one setup record (:func:`schemas.setup.encode_setup`) and wait for acks from all
    in-sync replicas."""
    key, value = encode_setup(ident, entity)
    await producer.send_and_wait(topic_name(settings, "setup"), value, key=key)
