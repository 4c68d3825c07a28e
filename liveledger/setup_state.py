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

The setup lifecycle (docs/setup.md) is read through pure helpers every service shares:
:func:`webhook_secrets` (the secrets a brand's webhooks may be signed with now),
:func:`link_redirect_counts` (whether a redirect emits a click) and :func:`campaign_terms` (a
stored campaign as the domain's :class:`~liveledger.domain.attribution.CampaignTerms`, with its
end and pauses).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from liveledger.domain.attribution import (
    DEFAULT_ATTRIBUTION_WINDOW_DAYS,
    DEFAULT_HOLD_DAYS,
    DEFAULT_MIN_PAYOUT_MINOR,
    CampaignTerms,
    Pause,
)
from liveledger.settings import Settings
from liveledger.topics import topic_name
from schemas.errors import InvalidRecord
from schemas.setup import ApiKey, SetupEntity, decode_setup, encode_setup, setup_key

log = logging.getLogger(__name__)

# setup record kind -> the SetupState table holding its entities (api keys: SetupState.keys)
_TABLE_OF_KIND: Final = {"brand": "brands", "creator": "creators", "campaign": "campaigns", "link": "links",
                         "stream": "streams"}

Role = Literal["admin", "brand", "creator", "finance"]
Table = Literal["brands", "creators", "campaigns", "links", "streams"]
T = TypeVar("T")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


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
    key_id: str | None = None  # the key's public name (None: the admin token, or a key issued before key ids)

    @property
    def label(self) -> str:
        """Who this is, for the audit log: ``admin``, or ``<role>:<brand/creator/name>[/<key_id>]``.
        Never the key nor anything derived from it."""
        if self.role == "admin":
            return "admin"
        owner = self.brand_id or self.creator_id or self.name or "?"
        return f"{self.role}:{owner}" + (f"/{self.key_id}" if self.key_id else "")


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
                                             creator_id=entity.creator_id, name=entity.name, key_id=entity.key_id)
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

    def key_digests(self, role: Literal["brand", "creator"], owner_id: str) -> list[str]:
        """The digests (``apikey:<digest>`` record ids) of every live key of that brand or creator."""
        attr = "brand_id" if role == "brand" else "creator_id"
        return sorted(d for d, p in self.keys.items() if p.role == role and getattr(p, attr) == owner_id)

    def link_for_coupon(self, brand_id: str, code: str) -> dict[str, Any] | None:
        link_code = self.coupons.get((brand_id, coupon_key(code)))
        return self.links.get(link_code) if link_code else None


def webhook_secrets(brand: dict[str, Any], now: datetime) -> list[str]:
    """The secrets a webhook of ``brand`` (its setup row) may be signed with at ``now``: the current
    one, then the previous one while ``now < previous_secret_expires_at`` (24 h after a rotation).
    A signature that verifies with any of them is valid."""
    secrets_ = [brand["webhook_secret"]]
    previous, expires = brand.get("previous_webhook_secret"), brand.get("previous_secret_expires_at")
    if previous and isinstance(expires, datetime) and now < expires:
        secrets_.append(previous)
    return secrets_


def campaign_terms(campaign_id: str, row: dict[str, Any]) -> CampaignTerms | None:
    """A stored campaign (its setup row) as the domain's terms, lifecycle included: its ``ends_at``,
    its past ``pauses`` and, while ``active`` is false, an open pause since ``paused_at`` (since
    forever when a record lacks it). ``None`` when the row does not make valid terms."""
    try:
        pauses = [Pause(p["paused_at"], p["resumed_at"]) for p in row.get("pauses") or ()]
        if row.get("active") is False:
            pauses.append(Pause(row.get("paused_at") or _EPOCH))
        return CampaignTerms(
            campaign_id=campaign_id, brand_id=str(row.get("brand_id")),
            rate_bps=int(row.get("rate_bps", 0)), flat_minor=int(row.get("flat_minor", 0)),
            attribution_window_days=int(row.get("attribution_window_days", DEFAULT_ATTRIBUTION_WINDOW_DAYS)),
            hold_days=int(row.get("hold_days", DEFAULT_HOLD_DAYS)),
            min_payout_minor=int(row.get("min_payout_minor", DEFAULT_MIN_PAYOUT_MINOR)),
            ends_at=row.get("ends_at"), pauses=tuple(pauses))
    except (TypeError, ValueError, KeyError):
        return None


def link_redirect_counts(state: SetupState, link: dict[str, Any], now: datetime) -> bool:
    """Whether a redirect through ``link`` (its setup row) at ``now`` is a click: False when the link
    is deactivated, or its campaign has ended (``ends_at <= now``) or is not active. Then ingest
    still redirects, without ``ll_click``, and emits no click. Cheap (the redirect hot path)."""
    deactivated = link.get("deactivated_at")
    if deactivated is not None and deactivated <= now:
        return False
    campaign = state.campaigns.get(link.get("campaign_id") or "")
    if campaign is None:
        return True  # an unknown campaign: the click is kept (attribution then has no terms)
    if campaign.get("active") is False:
        return False
    ends_at = campaign.get("ends_at")
    return ends_at is None or now < ends_at


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
        self.end_offset_requests = 0  # catch-ups that reached Kafka (single flight: see _end_offset)

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
                self.end_offset_requests += 1
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


async def publish_tombstone(producer: Any, settings: Settings, kind: str, ident: str) -> None:
    """Delete one setup entity (a null value under ``<kind>:<id>``), acks from all in-sync replicas."""
    await producer.send_and_wait(topic_name(settings, "setup"), None, key=setup_key(kind, ident).encode())
