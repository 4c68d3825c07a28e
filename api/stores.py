"""Readers of the live state (Redis, layout in liveledger/storage/redis_keys.py) and of the ledger (ClickHouse).

Created once per API process (:func:`start_read_clients` in the app's lifespan) and kept in
``ctx.extras``:

- ``live``   :class:`LiveReader`   — the live stream JSON, stats counters, live creator totals.
- ``hub``    :class:`LiveHub`      — one Redis ``PSUBSCRIBE`` per process, fanned out to SSE clients.
- ``series`` :class:`SeriesSampler` — samples every active stream every ``SAMPLE_S`` seconds into
  ``<p>:api:series:<stream_id>`` (ZSET, score = bucket ms) for the dashboard charts.
- ``ledger`` :class:`api.ledger.Ledger` — ClickHouse reads and the payout tables.
- ``watermark`` :class:`liveledger.storage.progress.WatermarkReader` — the finance completeness
  watermark, read every second (docs/money-rules.md "Completeness watermark").

I/O only: money rules live in ``liveledger.domain``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from clickhouse_connect.driver.asyncclient import AsyncClient
from redis.exceptions import RedisError

from api.context import ApiContext
from api.conversion import ConversionReader
from api.series import read_samples, store_sample
from liveledger import metrics
from liveledger.ch import get_async_client
from liveledger.domain.live import ctr, cvr, top_products
from liveledger.domain.payouts import PayoutItem, PayoutPlan, payout_items
from liveledger.redis_client import RedisClient, pubsub_client, sum_hashes
from liveledger.redis_client import redis_client as make_redis_client
from liveledger.settings import Settings
from liveledger.storage import redis_keys as keys
from liveledger.storage.clickhouse import (
    COMMISSION_VERSIONS,
    CREATOR_LEDGER,
    DEAD_LETTERS,
    EVENTS,
    ORDER_VERSIONS,
    ORDERS_LEDGER,
    PAYOUT_BATCH_COLUMNS,
    PAYOUT_BATCHES,
    PAYOUT_ITEM_COLUMNS,
    PAYOUT_ITEMS,
)
from liveledger.storage.progress import WatermarkReader
from liveledger.storage.watermark import Watermark
from schemas.time import format_ms

log = logging.getLogger(__name__)

VIEWER_WINDOW_MS = 60_000
SAMPLE_S = 10.0
SERIES_ACTIVE_MS = 3600 * 1000  # streams not updated for an hour are not sampled
TOP_PRODUCTS = 10


def now_ms() -> int:
    return int(time.time() * 1000)


def series_key(prefix: str, stream_id: str) -> str:
    """ZSET of dashboard samples (owned by the API; documented in docs/dashboards.md)."""
    return f"{prefix}:api:series:{stream_id}"


def _int(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


class LiveReader:
    """Reads the live aggregates the stream processors keep in Redis.

    A stream's keys are in the hash slot of its brand's partition (``stream_brand``: the stream's
    brand from the setup state); a creator's earnings and the stats are per partition, summed here."""

    def __init__(self, client: RedisClient, prefix: str, partitions: int,
                 stream_brand: Callable[[str], str | None]) -> None:
        self.client = client
        self.prefix = prefix
        self.partitions = partitions
        self.stream_brand = stream_brand

    def stream_partition(self, stream_id: str) -> int | None:
        brand = self.stream_brand(stream_id)
        return None if brand is None else keys.brand_partition(brand, self.partitions)

    async def live(self, stream_id: str, at_ms: int | None = None) -> dict[str, Any]:
        """The contract's live JSON for one stream (zeros for a stream with no events yet)."""
        p, part = self.prefix, self.stream_partition(stream_id)
        if part is None:  # not a stream of the setup (yet): nothing counted
            return build_live(stream_id, {}, 0, 0, {})
        at = at_ms if at_ms is not None else now_ms()
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.stream_counts(p, part, stream_id))
            pipe.scard(keys.stream_viewers(p, part, stream_id))
            pipe.zcount(keys.stream_now(p, part, stream_id), at - VIEWER_WINDOW_MS, "+inf")
            pipe.hgetall(keys.stream_products(p, part, stream_id))
            counts, unique, present, products = await pipe.execute()
        return build_live(stream_id, counts, int(unique), int(present), products)

    async def stats(self) -> dict[str, int]:
        return await sum_hashes(self.client, keys.stats_keys(self.prefix, self.partitions))

    async def creator_totals(self, creator_id: str) -> dict[str, dict[str, int]]:
        """``currency -> {orders, net_minor, commission_minor, reversed_minor}`` from the live view."""
        return (await self.creators_totals([creator_id])).get(creator_id, {})

    async def creators_totals(self, creator_ids: Iterable[str]) -> dict[str, dict[str, dict[str, int]]]:
        """Per creator, the sum of its per-partition earnings hashes (one pipeline)."""
        ids = sorted(set(creator_ids))
        n = self.partitions
        async with self.client.pipeline(transaction=False) as pipe:
            for cid in ids:
                for key in keys.creator_earnings_keys(self.prefix, n, cid):
                    pipe.hgetall(key)
            raws = await pipe.execute()
        out: dict[str, dict[str, dict[str, int]]] = {}
        for i, cid in enumerate(ids):
            per: dict[str, dict[str, int]] = {}
            for raw in raws[i * n:(i + 1) * n]:
                for field, value in raw.items():
                    currency, _, name = str(field).partition("|")
                    cur = per.setdefault(currency, {})
                    cur[name] = cur.get(name, 0) + _int(value)
            if per:
                out[cid] = per
        return out

    async def series(self, stream_id: str, since_ms: int = 0) -> list[dict[str, Any]]:
        return await read_samples(self.client, series_key(self.prefix, stream_id), since_ms)


def build_live(stream_id: str, counts: dict[str, str], unique: int, present: int,
               products: dict[str, str]) -> dict[str, Any]:
    views = _int(counts.get("views"))
    clicks = _int(counts.get("clicks"))
    orders = _int(counts.get("orders"))
    gmv = sorted(
        ({"currency": f[4:], "net_minor": _int(v)} for f, v in counts.items() if f.startswith("gmv|")),
        key=lambda g: str(g["currency"]),
    )
    product_clicks: dict[str, int] = {}
    product_orders: dict[str, int] = {}
    revenue: dict[str, dict[str, int]] = {}  # product -> currency -> Σ quantity x unit price
    for field, value in products.items():
        if field.startswith("revenue|"):
            _, pid, currency = field.split("|", 2)
            revenue.setdefault(pid, {})[currency] = _int(value)
            continue
        kind, _, pid = field.partition("|")
        if kind == "clicks":
            product_clicks[pid] = _int(value)
        elif kind == "orders":
            product_orders[pid] = _int(value)
    top = [{"product_id": pid, "clicks": c, "orders": o,
            "line_revenue": [{"currency": cur, "amount_minor": n} for cur, n in sorted(revenue.get(pid, {}).items())]}
           for pid, c, o in top_products(product_clicks, product_orders, TOP_PRODUCTS) if c > 0 or o > 0]
    updated = _int(counts.get("updated_at"))
    return {
        "stream_id": stream_id,
        "viewers_now": present,
        "peak_viewers": max(_int(counts.get("peak_viewers")), present),
        "views": views,
        # the set expires 7 days after the stream's last event; the counts hash keeps its size
        "unique_viewers": max(unique, _int(counts.get("unique_viewers"))),
        "clicks": clicks,
        "add_to_carts": _int(counts.get("add_to_carts")),
        "orders": orders,
        "gmv": gmv,
        "ctr": ctr(clicks, views),
        "cvr": cvr(orders, clicks),
        "top_products": top,
        "updated_at": format_ms(updated) if updated else None,
    }


def brand_topic(brand_id: str) -> str:
    """What :meth:`LiveHub.subscribe` takes to hear of changes to a brand's creators' conversion
    (a stream id is the topic of a stream's live metrics)."""
    return f"brand/{brand_id}"  # "/" is not an id character: no stream id looks like this


class LiveHub:
    """One pattern subscription per process; each SSE client waits on its own size-1 queue, so a
    burst of notifications coalesces into one re-read."""

    def __init__(self, client: RedisClient, prefix: str) -> None:
        self.client = client  # a plain client of one node (a cluster's nodes all deliver every PUBLISH)
        self.prefix = prefix
        self._channel_prefix = keys.stream_channel(prefix, "")
        self._brand_prefix = keys.conversion_channel(prefix, "")
        self._subs: dict[str, set[asyncio.Queue[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="live-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.aclose()

    @contextlib.asynccontextmanager
    async def subscribe(self, stream_id: str) -> AsyncIterator[asyncio.Queue[None]]:
        queue: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        self._subs.setdefault(stream_id, set()).add(queue)
        try:
            yield queue
        finally:
            subs = self._subs.get(stream_id)
            if subs is not None:
                subs.discard(queue)
                if not subs:
                    del self._subs[stream_id]

    def _notify(self, stream_id: str) -> None:
        for queue in self._subs.get(stream_id, ()):
            if queue.empty():
                queue.put_nowait(None)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(self._channel_prefix + "*", self._brand_prefix + "*")
                self.connected.set()
                delay = 0.1
                while True:
                    msg = await pubsub.get_message(timeout=5.0)
                    if msg is None or msg.get("type") != "pmessage":
                        continue
                    channel = msg["channel"]
                    channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                    if channel.startswith(self._brand_prefix):
                        self._notify(brand_topic(channel[len(self._brand_prefix):]))
                    else:
                        self._notify(channel[len(self._channel_prefix):])
            except (RedisError, OSError) as exc:
                self.connected.clear()
                log.warning("live hub: redis pub/sub failed (%s); retrying in %.1fs", exc, delay)
                # Wake every client so it re-reads once the connection is back.
                for stream_id in list(self._subs):
                    self._notify(stream_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


class SeriesSampler:
    """Samples viewers_now, GMV and funnel counters of active streams for the dashboard charts.

    Each sample is stored under its ``SAMPLE_S`` bucket (a replaced member if two API processes
    sample the same bucket), and samples older than 24 h are dropped.
    """

    def __init__(self, reader: LiveReader, stream_ids: Any, interval: float = SAMPLE_S,
                 conversion: Any = None) -> None:
        self.reader = reader
        self.stream_ids = stream_ids  # callable returning the known stream ids
        self.conversion = conversion  # async (at_ms, bucket) -> None: the creators' samples (api/conversion.py)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="series-sampler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sample_once(self, at_ms: int | None = None) -> int:
        at = at_ms if at_ms is not None else now_ms()
        if self.conversion is not None:
            await self.conversion(at, at - at % int(self.interval * 1000))
        bucket = at - at % int(self.interval * 1000)
        client, p = self.reader.client, self.reader.prefix
        ids = sorted(self.stream_ids())
        if not ids:
            return 0
        parts = {sid: self.reader.stream_partition(sid) for sid in ids}
        ids = [sid for sid in ids if parts[sid] is not None]
        async with client.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hget(keys.stream_counts(p, parts[sid] or 0, sid), "updated_at")
            updated = await pipe.execute()
        active = [sid for sid, u in zip(ids, updated, strict=True) if u and at - _int(u) < SERIES_ACTIVE_MS]
        for sid in active:
            live = await self.reader.live(sid, at)
            point = {"t": bucket, "viewers": live["viewers_now"], "views": live["views"],
                     "clicks": live["clicks"], "add_to_carts": live["add_to_carts"], "orders": live["orders"],
                     "gmv": {g["currency"]: g["net_minor"] for g in live["gmv"]}}
            await store_sample(client, series_key(p, sid), bucket, point, at)
        return len(active)

    async def _run(self) -> None:
        while True:
            try:
                await self.sample_once()
            except (RedisError, OSError) as exc:
                log.warning("series sampler: %s", exc)
            await asyncio.sleep(self.interval)


def redis_client(settings: Settings) -> RedisClient:
    """The API's client of the configured Redis or Redis Cluster (:mod:`liveledger.redis_client`)."""
    return make_redis_client(settings, decode_responses=True, health_check_interval=30)


def stream_brand_of(ctx: ApiContext) -> Callable[[str], str | None]:
    def brand(stream_id: str) -> str | None:
        stream = ctx.setup.state.streams.get(stream_id)
        return None if stream is None else stream.get("brand_id")
    return brand


async def start_read_clients(ctx: ApiContext) -> None:
    """Create the readers (lazy connections: nothing here fails when a service is down)."""
    client = redis_client(ctx.settings)
    partitions = ctx.settings.event_partitions
    reader = LiveReader(client, ctx.settings.topic_prefix, partitions, stream_brand_of(ctx))
    hub = LiveHub(pubsub_client(ctx.settings, decode_responses=True, health_check_interval=30),
                  ctx.settings.topic_prefix)
    hub.start()
    conversion = ConversionReader(client, ctx.settings.topic_prefix, partitions)

    async def sample_creators(at: int, bucket: int) -> None:
        await conversion.sample(list(ctx.setup.state.brands), at, bucket)

    sampler = SeriesSampler(reader, lambda: list(ctx.setup.state.streams), conversion=sample_creators)
    sampler.start()
    watermark = WatermarkReader(ctx.settings, client, on_computed=_export_watermark)
    watermark.start()
    ctx.extras.update(redis=client, live=reader, hub=hub, series=sampler, ledger=Ledger(ctx.settings),
                      conversion=conversion, watermark=watermark)


def _export_watermark(wm: Watermark) -> None:
    """Each reading (about once a second) sets ``liveledger_watermark_seconds`` on /metrics."""
    if wm.complete_ms is not None:
        metrics.set_watermark(wm.complete_ms / 1000)


async def current_watermark(ctx: ApiContext, max_age_s: float | None = None) -> Watermark | None:
    """The finance watermark (cached ~1 s; the last good reading while Kafka or Redis is down;
    ``None`` before the first reading succeeded)."""
    reader: WatermarkReader | None = ctx.extras.get("watermark")
    return None if reader is None else await reader.current(max_age_s)


async def complete_up_to(ctx: ApiContext) -> str | None:
    """``complete_up_to`` for responses that carry it (earnings, reconciliation)."""
    wm = await current_watermark(ctx, max_age_s=2.0)
    return None if wm is None or wm.complete_ms is None else format_ms(wm.complete_ms)


async def stop_read_clients(ctx: ApiContext) -> None:
    for name in ("watermark", "series", "hub"):
        task_owner = ctx.extras.get(name)
        if task_owner is not None:
            await task_owner.stop()
    ledger = ctx.extras.get("ledger")
    if ledger is not None:
        await ledger.close()
    client = ctx.extras.get("redis")
    if client is not None:
        await client.aclose()


# --- ClickHouse: the ledger (written by the sink, consumers/) and the payout tables (0100) ----------

# Table names and columns: liveledger/storage/clickhouse.py (migrations in consumers/migrations).
_ORDER_FIELDS = ("brand_id, order_id, version, occurred_at, currency, creator_id, campaign_id, stream_id, via, "
                 "click_id, gross_minor, refunded_minor, rate_bps, flat_minor, hold_days, net_minor, "
                 "commission_minor, reversed_minor, link_code")
# The latest version of each selected order (orders_ledger is a ReplacingMergeTree(version)).
_LATEST = f"SELECT {_ORDER_FIELDS} FROM {{db}}.{ORDERS_LEDGER} FINAL WHERE {{where}}"
# The latest version effective before a cutoff, from the full history, with its effective time.
_LATEST_BEFORE = (
    "SELECT brand_id, order_id, max(version), argMax(ingested_at, version), "
    + ", ".join(f"argMax({c}, version)" for c in _ORDER_FIELDS.split(", ")[3:])
    + f" FROM {{db}}.{COMMISSION_VERSIONS} WHERE ingested_at < {{cut:DateTime64(3, 'UTC')}} "
    "GROUP BY brand_id, order_id"
)

_WINNERS = (
    f"SELECT payout_id, argMin(plan_id, (created_at, plan_id)) FROM {{db}}.{PAYOUT_BATCHES} GROUP BY payout_id"
)


@dataclass(frozen=True, slots=True)
class LedgerOrder:
    """The latest ledger version of one order, with the commission the worker priced and stored
    (a :class:`liveledger.domain.status.PricedOrder`)."""

    brand_id: str
    order_id: str
    version: int
    occurred_at: datetime
    currency: str
    creator_id: str | None
    campaign_id: str | None
    stream_id: str | None
    via: str | None
    click_id: str | None
    gross_minor: int
    refunded_minor: int
    rate_bps: int
    flat_minor: int
    hold_days: int
    net_minor: int
    commission_minor: int
    reversed_minor: int
    link_code: str | None = None  # the coupon's link, or a redirect click's link


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time(), tzinfo=UTC)
    raise TypeError(f"not a datetime: {value!r}")


def _ledger_order(row: Sequence[Any]) -> LedgerOrder:
    (brand_id, order_id, version, occurred, currency, creator, campaign, stream, via, click,
     gross, refunded, rate, flat, hold, net, commission, reversed_, link) = row
    # The stream credited is the click's (a coupon order names its link's stream, not credited to
    # it), and hold days apply only under campaign terms: the status rules read these as stored.
    return LedgerOrder(str(brand_id), str(order_id), int(version), _utc(occurred), str(currency),
                       creator or None, campaign or None, (stream or None) if via == "click" else None,
                       via or None, click or None, int(gross), int(refunded), int(rate), int(flat),
                       int(hold) if campaign else 0, int(net), int(commission), int(reversed_), link or None)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    payout_id: str
    plan_id: str
    period_end: date
    created_at: datetime
    lines: list[dict[str, Any]]
    carried_over: list[dict[str, Any]]


class Ledger:
    """ClickHouse reads for earnings, payouts and reconciliation, and the payout writes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = settings.clickhouse_database
        self._client: AsyncClient | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> AsyncClient:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await get_async_client(self.settings, database=self.db,
                                                          autogenerate_session_id=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def _rows(self, sql: str, params: dict[str, Any] | None = None) -> list[Sequence[Any]]:
        client = await self.client()
        result = await client.query(sql.replace("{db}", self.db), parameters=params or {})
        return list(result.result_rows)

    # -- earnings --------------------------------------------------------------------------------

    async def creator_orders(self, creator_id: str, paid_only: bool = False) -> list[LedgerOrder]:
        """Latest versions of the orders attributed to ``creator_id``, plus orders the creator was paid
        for that were re-attributed since (their latest version names the other creator);
        ``paid_only``: only the orders with payout items of the creator (api/earnings.py)."""
        paid = f"(SELECT brand_id, order_id FROM {{db}}.{PAYOUT_ITEMS} WHERE creator_id = {{c:String}})"
        # No FINAL on creator_ledger: unmerged older versions are dropped below (newest version wins),
        # which is cheaper than FINAL's merge on read.
        sql = (f"SELECT {_ORDER_FIELDS} FROM {{db}}.{CREATOR_LEDGER} WHERE creator_id = {{c:String}} "
               + (f"AND (brand_id, order_id) IN {paid} " if paid_only else "")
               + f"UNION ALL SELECT {_ORDER_FIELDS} FROM {{db}}.{ORDERS_LEDGER} FINAL WHERE (brand_id, order_id) IN "
               f"{paid} AND creator_id != {{c:String}}")
        rows: dict[tuple[str, str], LedgerOrder] = {}
        for o in map(_ledger_order, await self._rows(sql, {"c": creator_id})):
            seen = rows.get((o.brand_id, o.order_id))
            if seen is None or o.version > seen.version:
                rows[(o.brand_id, o.order_id)] = o
        # Only a coupon attribution can be replaced (by a later click): check those rows are still latest.
        # First only the newest version per order, from the narrow, finely indexed order_versions
        # (migration 0102); the full row is fetched only for the (rare) orders that moved on since.
        coupon = [k for k, o in rows.items() if o.via == "coupon" and o.creator_id == creator_id]
        if coupon:
            brands = sorted({b for b, _ in coupon})
            orders = sorted({o for _, o in coupon})
            newest = (f"SELECT brand_id, order_id, max(version) FROM {{db}}.{ORDER_VERSIONS} "
                      "WHERE brand_id IN {b:Array(String)} AND order_id IN {o:Array(String)} "
                      "GROUP BY brand_id, order_id")
            moved = [(b, o) for b, o, v in await self._rows(newest, {"b": brands, "o": orders})
                     if (b, o) in rows and int(v) > rows[(b, o)].version]
            if moved:
                check = (f"SELECT {_ORDER_FIELDS} FROM {{db}}.{ORDERS_LEDGER} FINAL WHERE (brand_id, order_id) IN "
                         "{keys:Array(Tuple(String, String))}")
                for r in await self._rows(check, {"keys": moved}):
                    latest = _ledger_order(r)
                    rows[(latest.brand_id, latest.order_id)] = latest
        return list(rows.values())

    async def creator_paid_items(self, creator_id: str) -> list[PayoutItem]:
        sql = (f"SELECT payout_id, period_end, brand_id, order_id, creator_id, currency, amount_minor, paid_at "
               f"FROM {{db}}.{PAYOUT_ITEMS} FINAL WHERE creator_id = {{c:String}} "
               f"AND (payout_id, plan_id) IN ({_WINNERS})")
        return [_payout_item(r) for r in await self._rows(sql, {"c": creator_id})]

    # -- payouts ---------------------------------------------------------------------------------

    async def latest_before(self, cutoff: datetime) -> list[tuple[LedgerOrder, datetime]]:
        """Latest version (and its effective time, the sink's ``ingested_at``) of each order effective
        before ``cutoff``, for orders that have a creator or were paid before."""
        sql = _LATEST_BEFORE + (f" HAVING argMax(creator_id, version) != '' OR (brand_id, order_id) IN "
                                f"(SELECT brand_id, order_id FROM {{db}}.{PAYOUT_ITEMS})")
        rows = await self._rows(sql, {"cut": cutoff})
        return [(_ledger_order([*r[:3], *r[4:]]), _utc(r[3])) for r in rows]

    async def paid_items(self) -> list[PayoutItem]:
        sql = (f"SELECT payout_id, period_end, brand_id, order_id, creator_id, currency, amount_minor, paid_at "
               f"FROM {{db}}.{PAYOUT_ITEMS} FINAL WHERE (payout_id, plan_id) IN ({_WINNERS})")
        return [_payout_item(r) for r in await self._rows(sql)]

    async def batch(self, payout_id: str) -> StoredBatch | None:
        sql = (f"SELECT payout_id, plan_id, period_end, created_at, lines_json, carried_json "
               f"FROM {{db}}.{PAYOUT_BATCHES} WHERE payout_id = {{p:String}} "
               f"ORDER BY created_at, plan_id LIMIT 1")
        rows = await self._rows(sql, {"p": payout_id})
        return _stored_batch(rows[0]) if rows else None

    async def batches(self, limit: int = 100) -> list[StoredBatch]:
        sql = (f"SELECT payout_id, argMin(plan_id, (created_at, plan_id)), any(period_end), min(created_at), "
               f"argMin(lines_json, (created_at, plan_id)), argMin(carried_json, (created_at, plan_id)) "
               f"FROM {{db}}.{PAYOUT_BATCHES} GROUP BY payout_id ORDER BY any(period_end) DESC "
               f"LIMIT {int(limit)}")
        return [_stored_batch(r) for r in await self._rows(sql)]

    async def latest_period_end(self) -> date | None:
        rows = await self._rows(f"SELECT max(period_end), count() FROM {{db}}.{PAYOUT_BATCHES}")
        if not rows or not int(rows[0][1]):
            return None
        value = rows[0][0]
        return value if isinstance(value, date) and not isinstance(value, datetime) else _utc(value).date()

    async def store_batch(self, plan: PayoutPlan, plan_id: str, created_at: datetime) -> None:
        client = await self.client()
        items = payout_items(plan, created_at)
        if items:
            await client.insert(
                f"{self.db}.{PAYOUT_ITEMS}",
                [[i.payout_id, plan_id, i.period_end, i.brand_id, i.order_id, i.creator_id, i.currency,
                  i.amount_minor, i.paid_at] for i in items],
                column_names=PAYOUT_ITEM_COLUMNS,
                settings={"insert_deduplication_token": f"payout-items-{plan_id}"},
            )
        lines = [{"creator_id": ln.creator_id, "currency": ln.currency, "amount_minor": ln.amount_minor,
                  "orders": ln.orders, "clawback_minor": sum(i.amount_minor for i in ln.items if i.amount_minor < 0)}
                 for ln in plan.lines]
        carried = [{"creator_id": c.creator_id, "currency": c.currency, "amount_minor": c.amount_minor,
                    "orders": c.orders, "threshold_minor": c.threshold_minor, "reason": c.reason}
                   for c in plan.carried_over]
        await client.insert(
            f"{self.db}.{PAYOUT_BATCHES}",
            [[plan.payout_id, plan_id, plan.period_end, created_at, orjson.dumps(lines).decode(),
              orjson.dumps(carried).decode()]],
            column_names=PAYOUT_BATCH_COLUMNS,
        )

    # -- reconciliation --------------------------------------------------------------------------

    async def creator_totals(self) -> dict[str, dict[str, dict[str, int]]]:
        """``creator -> currency -> {orders, net_minor, commission_minor, reversed_minor}`` (latest
        versions, all time: the same scope as the live view in Redis)."""
        sql = (f"SELECT creator_id, currency, count(), sum(net_minor), sum(commission_minor), sum(reversed_minor) "
               f"FROM {{db}}.{ORDERS_LEDGER} FINAL WHERE creator_id != '' GROUP BY creator_id, currency")
        out: dict[str, dict[str, dict[str, int]]] = {}
        for c, cur, n, net, cm, rv in await self._rows(sql):
            out.setdefault(str(c), {})[str(cur)] = {"orders": int(n), "net_minor": int(net),
                                                    "commission_minor": int(cm), "reversed_minor": int(rv)}
        return out

    async def event_counts(self, since: datetime | None, until: datetime | None) -> dict[str, int]:
        """Events stored by the sink (distinct ids, by ``received_at``) and dead letters of the events
        topic (by ``dead_lettered_at``) in the window."""
        cond, params = ["1"], {}
        if since is not None:
            cond.append("{t} >= {since:DateTime64(3, 'UTC')}")
            params["since"] = since
        if until is not None:
            cond.append("{t} < {until:DateTime64(3, 'UTC')}")
            params["until"] = until
        where = " AND ".join(cond)
        sql = (f"SELECT (SELECT uniqExact(brand_id, event_id) FROM {{db}}.{EVENTS} "
               f"WHERE {where.replace('{t}', 'received_at')}), "
               f"(SELECT count() FROM {{db}}.{DEAD_LETTERS} FINAL WHERE source_topic LIKE '%.events' "
               f"AND {where.replace('{t}', 'dead_lettered_at')}), "
               f"(SELECT count() FROM {{db}}.{DEAD_LETTERS} FINAL WHERE source_topic NOT LIKE '%.events' "
               f"AND {where.replace('{t}', 'dead_lettered_at')})")
        rows = await self._rows(sql, params)
        stored, dead_events, dead_other = (int(v) for v in rows[0])
        return {"stored": stored, "dead_lettered": dead_events, "other_dead_letters": dead_other}

    async def brand_orders(self, brand_id: str, since: datetime | None,
                           until: datetime | None) -> dict[str, LedgerOrder]:
        rows = await self._rows(_LATEST.replace("{where}", "brand_id = {b:String}"), {"b": brand_id})
        out = {}
        for r in rows:
            o = _ledger_order(r)
            if (since is None or o.occurred_at >= since) and (until is None or o.occurred_at < until):
                out[o.order_id] = o
        return out


def _payout_item(r: Sequence[Any]) -> PayoutItem:
    payout_id, period_end, brand_id, order_id, creator_id, currency, amount, paid_at = r
    pe = period_end if isinstance(period_end, date) and not isinstance(period_end, datetime) \
        else _utc(period_end).date()
    return PayoutItem(str(payout_id), pe, str(brand_id), str(order_id), str(creator_id), str(currency),
                      int(amount), _utc(paid_at))


def _stored_batch(r: Sequence[Any]) -> StoredBatch:
    payout_id, plan_id, period_end, created_at, lines, carried = r
    pe = period_end if isinstance(period_end, date) and not isinstance(period_end, datetime) \
        else _utc(period_end).date()
    return StoredBatch(str(payout_id), str(plan_id), pe, _utc(created_at), orjson.loads(lines),
                       orjson.loads(carried))
