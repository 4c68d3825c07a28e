"""Redis I/O of the live state: the fenced flush scripts, the ledger consumer's partition state and
step, and coalesced change notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from liveledger.redis_client import RedisClient
from liveledger.storage import redis_keys as keys
from liveledger.storage.lua import LEDGER_STEP, LIVE_FLUSH, OUTBOX_CLEAR
from liveledger.storage.retention import DEFAULT as DEFAULT_RETENTION
from liveledger.storage.retention import Retention
from streams.ledger_state import PartitionState, decode, encode

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
    """Applies flushes; retries transient Redis errors (the flush is idempotent thanks to the fence).

    Every script call declares its partition's fence hash as its one key: a cluster client routes the
    call by it, and every other key the script touches is in the same hash slot (redis_keys)."""

    def __init__(self, client: RedisClient, prefix: str, retention: Retention = DEFAULT_RETENTION) -> None:
        self.client = client
        self.prefix = prefix
        self.retention = retention
        self._live = client.register_script(LIVE_FLUSH)

    async def apply_live(self, arg: dict[str, Any]) -> tuple[bool, int]:
        """→ (applied, duplicates), or (False, stored offset) when refused: a replay or a gap."""
        # TTLs (ms): event-id de-dup keys, and a stream's viewer set / presence zsets after its last flush
        payload = orjson.dumps({**arg, "dttl": self.retention.dedup_ms, "sttl": self.retention.stream_idle_ms})
        res = await _retry(lambda: self._live(keys=[arg["off"]], args=[payload]))
        if int(res[0]) < 0:
            return False, int(res[1])
        return True, int(res[0])

    async def fence(self, consumer: str, topic: str, partition: int) -> int | None:
        raw = await self.client.hget(keys.offsets(self.prefix, partition, consumer), f"{topic}:{partition}")
        return int(raw) if raw is not None else None


class Fenced(Exception):
    """The stored fence of ``tp`` is ``stored``, not the one this member loaded: it lost the partition."""

    def __init__(self, tp: str, stored: int) -> None:
        super().__init__(f"{tp} fenced at {stored}")
        self.tp = tp
        self.stored = stored


class LedgerStore:
    """The ledger consumer's Redis side: per-partition state (read per step, :meth:`read`; written by
    the step with the TTLs of liveledger/storage/retention.py), fences (CAS) and the outbox.

    A retried step whose first attempt did run (reply lost) is refused by the fence check, and the
    caller reloads the partition from Redis -- which then holds exactly that step's result.
    """

    CONSUMER = "ledger"

    def __init__(self, client: RedisClient, prefix: str, retention: Retention = DEFAULT_RETENTION) -> None:
        self.client = client
        self.prefix = prefix
        self.retention = retention
        self.entries_read = 0  # state entries (keys / hash fields) read since creation
        self._step = client.register_script(LEDGER_STEP)
        self._clear = client.register_script(OUTBOX_CLEAR)

    def state_key(self, partition: int, table: str) -> str:
        return keys.ledger_state(self.prefix, partition, table)

    def _with_keys(self, snap: dict[str, Any], part: int) -> dict[str, Any]:
        """An order snapshot with the names of every aggregate it counts in (``k``, see
        :data:`liveledger.storage.lua.LEDGER_STEP`), all of source partition ``part`` (one hash slot);
        stored with the contribution, so the script removes an old contribution from exactly the keys
        it was added to."""
        p, brand, creator, stream = self.prefix, snap["brand_id"], snap.get("creator_id"), snap.get("stream_id")
        k = {"o": keys.order_contribution(p, part, brand, snap["order_id"]), "bs": keys.brand_sales(p, part, brand)}
        if creator:
            k.update(ce=keys.creator_earnings(p, part, creator), cc=keys.creator_by_campaign(p, part, creator),
                     cs=keys.creator_by_stream(p, part, creator), cv=keys.creator_conversion(p, part, brand, creator),
                     ci=keys.brand_creators(p, part, brand))
        if stream:
            k.update(sc=keys.stream_counts(p, part, stream), sp=keys.stream_products(p, part, stream))
        return {**snap, "k": k}

    def _fixed_keys(self, partition: int) -> dict[str, str]:
        """The fences, stats and outbox keys of one partition's step (every script gets its keys;
        ``off`` is the one declared in KEYS)."""
        return {"off": keys.offsets(self.prefix, partition, self.CONSUMER), "stats": keys.stats(self.prefix, partition),
                "ob": keys.ledger_outbox(self.prefix, partition)}

    def entry_key(self, partition: int, table: str, key: str) -> str:
        return keys.ledger_entry(self.prefix, partition, table, key)

    async def load(self, partition: int, topics: list[str]) -> PartitionState:
        """An assignment reads the partition's fences only; its state is read per step (:meth:`read`)."""
        fields = [f"{t}:{partition}" for t in topics]
        off = self._fixed_keys(partition)["off"]
        res = await _retry(lambda: self.client.hmget(off, fields))
        fences = {f: int(v) if v is not None else -1 for f, v in zip(fields, res, strict=True)}
        return PartitionState(partition, fences)

    async def read(self, partition: int, wanted: dict[str, set[str]]) -> dict[str, dict[str, Any]]:
        """The entries ``wanted`` (table → keys) of one partition's state, ``None`` for an absent one:
        one pipelined round trip, one MGET per expiring table and an HMGET of the orders hash beside an
        MGET of the orders still waiting for their order (``pending``)."""
        plan: list[tuple[str, list[str]]] = [(t, sorted(ks)) for t, ks in sorted(wanted.items()) if ks]
        if not plan:
            return {}

        async def call() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                # MGET as a raw command: a cluster pipeline refuses pipe.mget, though these keys
                # share the partition's slot (redis_keys.ledger_entry)
                for table, ks in plan:
                    if table == "orders":
                        pipe.hmget(self.state_key(partition, "orders"), ks)
                        pipe.execute_command("MGET", *[self.entry_key(partition, "pending", k) for k in ks])
                    else:
                        pipe.execute_command("MGET", *[self.entry_key(partition, table, k) for k in ks])
                return await pipe.execute()

        res = iter(await _retry(call))
        out: dict[str, dict[str, Any]] = {}
        for table, ks in plan:
            values = next(res)
            if table == "orders":
                values = [h if h is not None else w for h, w in zip(values, next(res), strict=True)]
            out[table] = {k: decode(v) for k, v in zip(ks, values, strict=True)}
            self.entries_read += len(ks)
        return out

    def state_ops(self, partition: int, changes: dict[str, tuple[dict[str, Any], list[str]]],
                  click_days: Callable[[str, dict[str, Any]], int | None]) -> dict[str, list[Any]]:
        """The step's state writes as the Lua step's ``hset`` / ``hdel`` / ``sset`` (key, JSON, PX ms) /
        ``sdel`` lists, with the TTLs of liveledger/storage/retention.py. ``click_days(key, click)``:
        the attribution window (days) of a click's campaign, None when unknown."""
        r = self.retention
        hset: list[list[str]] = []
        hdel: list[list[str]] = []
        sset: list[list[Any]] = []
        sdel: list[str] = []
        orders_hash = self.state_key(partition, "orders")
        for table, (sets, dels) in sorted(changes.items()):
            for k, v in sets.items():
                if table == "orders":
                    pending = self.entry_key(partition, "pending", k)
                    if v.get("order") is None:  # a refund / cancellation waiting for its order
                        sset.append([pending, encode(v), r.pending_ms])
                    else:  # money: kept for ever (refundable)
                        hset.append([orders_hash, k, encode(v)])
                        sdel.append(pending)
                    continue
                if table == "clicks":
                    ttl = r.click_ms(click_days(k, v))
                elif table == "waiting":
                    ttl = r.late_ms
                else:  # seen: event / webhook ids
                    ttl = r.dedup_ms
                sset.append([self.entry_key(partition, table, k), encode(v), ttl])
            for k in dels:
                if table == "orders":
                    hdel.append([orders_hash, k])
                    sdel.append(self.entry_key(partition, "pending", k))
                else:
                    sdel.append(self.entry_key(partition, table, k))
        return {"hset": hset, "hdel": hdel, "sset": sset, "sdel": sdel}

    async def step(self, arg: dict[str, Any]) -> list[str]:
        """Apply one step (:data:`liveledger.storage.lua.LEDGER_STEP`) → streams whose counters changed.
        Raises :class:`Fenced` when the stored fences are not ``arg["fences"][tp][0]``."""
        part = arg["part"]
        fixed = self._fixed_keys(part)
        payload = orjson.dumps({**fixed, "hset": [], "hdel": [], "sset": [], "sdel": [],
                                **arg, "snaps": [self._with_keys(s, part) for s in arg["snaps"]]})
        res = await _retry(lambda: self._step(keys=[fixed["off"]], args=[payload]))
        if int(res[0]) < 0:
            raise Fenced(_text(res[1]), int(res[2]))
        return [_text(r) for r in res[1]]

    async def outbox(self, partition: int) -> list[bytes]:
        key = keys.ledger_outbox(self.prefix, partition)
        return await _retry(lambda: self.client.lrange(key, 0, -1))  # type: ignore[no-any-return]

    async def clear_outbox(self, partition: int, fences: dict[str, int]) -> bool:
        """DEL the outbox if the fences are still ``fences`` (else another member took over)."""
        fixed = self._fixed_keys(partition)
        payload = orjson.dumps({**fixed, "fences": {tp: [n, n] for tp, n in fences.items()}})
        res = await _retry(lambda: self._clear(keys=[fixed["off"]], args=[payload]))
        return int(res[0]) > 0


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class Notifier:
    """Coalesces change notifications: at most one PUBLISH per stream, and per brand whose creators'
    conversion changed, every ``interval`` seconds (channels in :mod:`liveledger.storage.redis_keys`).
    ``client``: a plain client of one node also on a cluster (:func:`liveledger.redis_client.pubsub_client`)."""

    def __init__(self, client: RedisClient, prefix: str, interval: float = 0.25) -> None:
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
