"""Redis I/O of the live state: the fenced flush scripts, the ledger consumer's partition state and
step, and coalesced change notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from liveledger.storage import redis_keys as keys
from liveledger.storage.lua import LEDGER_STEP, LIVE_FLUSH, OUTBOX_CLEAR
from streams.ledger_state import TABLES, PartitionState

log = logging.getLogger(__name__)

TRANSIENT = (RedisConnectionError, RedisTimeoutError, OSError)


def now_ms() -> int:
    return int(time.time() * 1000)


async def _retry(call: Any) -> Any:
    delay = 0.1
    while True:
        try:
            return await call()
        except TRANSIENT as exc:
            log.warning("redis unavailable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class LiveStore:
    """Applies flushes; retries transient Redis errors (the flush is idempotent thanks to the fence)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._live = client.register_script(LIVE_FLUSH)

    async def apply_live(self, arg: dict[str, Any]) -> tuple[bool, int]:
        """→ (applied, duplicates), or (False, stored offset) when refused: a replay or a gap."""
        payload = orjson.dumps(arg)
        res = await _retry(lambda: self._live(keys=[], args=[payload]))
        if int(res[0]) < 0:
            return False, int(res[1])
        return True, int(res[0])

    async def fence(self, consumer: str, topic: str, partition: int) -> int | None:
        raw = await self.client.hget(keys.offsets(self.prefix, consumer), f"{topic}:{partition}")
        return int(raw) if raw is not None else None


class Fenced(Exception):
    """The stored fence of ``tp`` is ``stored``, not the one this member loaded: it lost the partition."""

    def __init__(self, tp: str, stored: int) -> None:
        super().__init__(f"{tp} fenced at {stored}")
        self.tp = tp
        self.stored = stored


class LedgerStore:
    """The ledger consumer's Redis side: per-partition state hashes, fences (CAS) and the outbox.

    A retried step whose first attempt did run (reply lost) is refused by the fence check, and the
    caller reloads the partition from Redis -- which then holds exactly that step's result.
    """

    CONSUMER = "ledger"

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._step = client.register_script(LEDGER_STEP)
        self._clear = client.register_script(OUTBOX_CLEAR)

    def state_key(self, partition: int, table: str) -> str:
        return keys.ledger_state(self.prefix, partition, table)

    def _with_keys(self, snap: dict[str, Any]) -> dict[str, Any]:
        """An order snapshot with the names of every aggregate it counts in (``k``, see
        :data:`liveledger.storage.lua.LEDGER_STEP`); stored with the contribution, so the script
        removes an old contribution from exactly the keys it was added to."""
        p, brand, creator, stream = self.prefix, snap["brand_id"], snap.get("creator_id"), snap.get("stream_id")
        k = {"o": keys.order_contribution(p, brand, snap["order_id"]), "bs": keys.brand_sales(p, brand)}
        if creator:
            k.update(ce=keys.creator_earnings(p, creator), cc=keys.creator_by_campaign(p, creator),
                     cs=keys.creator_by_stream(p, creator), cv=keys.creator_conversion(p, brand, creator),
                     ci=keys.brand_creators(p, brand))
        if stream:
            k.update(sc=keys.stream_counts(p, stream), sp=keys.stream_products(p, stream))
        return {**snap, "k": k}

    def _fixed_keys(self, partition: int) -> dict[str, str]:
        """The fences, stats and outbox keys of one partition's step (every script gets its keys)."""
        return {"off": keys.offsets(self.prefix, self.CONSUMER), "stats": keys.stats(self.prefix),
                "ob": keys.ledger_outbox(self.prefix, partition)}

    async def load(self, partition: int, topics: list[str]) -> PartitionState:
        fields = [f"{t}:{partition}" for t in topics]

        async def call() -> list[Any]:
            async with self.client.pipeline(transaction=True) as pipe:
                for table in TABLES:
                    pipe.hgetall(self.state_key(partition, table))
                pipe.hmget(keys.offsets(self.prefix, self.CONSUMER), fields)
                return await pipe.execute()

        res = await _retry(call)
        hashes = dict(zip(TABLES, res[:len(TABLES)], strict=True))
        fences = {f: int(v) if v is not None else -1 for f, v in zip(fields, res[-1], strict=True)}
        return PartitionState.from_redis(partition, hashes, fences)

    async def step(self, arg: dict[str, Any]) -> list[str]:
        """Apply one step (:data:`liveledger.storage.lua.LEDGER_STEP`) → streams whose counters changed.
        Raises :class:`Fenced` when the stored fences are not ``arg["fences"][tp][0]``."""
        part = arg["part"]
        payload = orjson.dumps({**self._fixed_keys(part), "sk": {t: self.state_key(part, t) for t in TABLES},
                                **arg, "snaps": [self._with_keys(s) for s in arg["snaps"]]})
        res = await _retry(lambda: self._step(keys=[], args=[payload]))
        if int(res[0]) < 0:
            raise Fenced(_text(res[1]), int(res[2]))
        return [_text(r) for r in res[1]]

    async def outbox(self, partition: int) -> list[bytes]:
        key = keys.ledger_outbox(self.prefix, partition)
        return await _retry(lambda: self.client.lrange(key, 0, -1))  # type: ignore[no-any-return]

    async def clear_outbox(self, partition: int, fences: dict[str, int]) -> bool:
        """DEL the outbox if the fences are still ``fences`` (else another member took over)."""
        payload = orjson.dumps({**self._fixed_keys(partition),
                                "fences": {tp: [n, n] for tp, n in fences.items()}})
        res = await _retry(lambda: self._clear(keys=[], args=[payload]))
        return int(res[0]) > 0


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Notifier:
    """Coalesces change notifications: at most one PUBLISH per stream, and per brand whose creators'
    conversion changed, every ``interval`` seconds (channels in :mod:`liveledger.storage.redis_keys`)."""

    def __init__(self, client: aioredis.Redis, prefix: str, interval: float = 0.25) -> None:
        self.client = client
        self.prefix = prefix
        self.interval = interval
        self._dirty: set[str] = set()
        self._brands: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def mark(self, streams: Iterable[str]) -> None:
        self._dirty.update(streams)

    def mark_brands(self, brands: Iterable[str]) -> None:
        self._brands.update(brands)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def flush(self) -> None:
        if not self._dirty and not self._brands:
            return
        dirty, self._dirty = self._dirty, set()
        brands, self._brands = self._brands, set()
        ts = now_ms()
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for s in sorted(dirty):
                    pipe.publish(keys.stream_channel(self.prefix, s), orjson.dumps({"stream_id": s, "updated_at": ts}))
                for b in sorted(brands):
                    pipe.publish(keys.conversion_channel(self.prefix, b),
                                 orjson.dumps({"brand_id": b, "updated_at": ts}))
                await pipe.execute()
        except TRANSIENT as exc:  # notifications are best-effort; the hash is the truth
            log.warning("publish failed: %s", exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
