"""Per-creator conversion, live: reading the stream workers' ``conv:<brand>:<creator>`` hashes (in the
hash slot of the brand's partition; layout in :func:`liveledger.storage.redis_keys.creator_conversion`)
into the contract's rows.

Nothing is computed from ClickHouse here: the workers keep these aggregates exactly, in the same
fenced steps as every other live number (docs/stream-processing.md, "Per-creator conversion, live").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from api.series import read_samples, store_sample
from liveledger.domain.live import ratio
from liveledger.redis_client import RedisClient
from liveledger.storage import redis_keys as keys
from schemas.time import format_ms

COUNTS = ("clicks", "orders", "click_orders", "coupon_orders")


def _int(raw: Any) -> int:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def funnel(fields: dict[str, str], dim: str = "") -> dict[str, Any]:
    """The contract's conversion fields from one hash, in total (``dim`` "") or for one dimension
    (``"stream|<id>|"``, ``"campaign|<id>|"``, ``"link|<code>|"``)."""
    row: dict[str, Any] = {name: _int(fields.get(dim + name)) for name in COUNTS}
    row["cvr"] = ratio(row["click_orders"], row["clicks"])
    gmv: dict[str, int] = {}
    commission: dict[str, int] = {}
    for field, value in fields.items():
        if not field.startswith(dim):
            continue
        rest = field[len(dim):]
        if rest.startswith("gmv|"):
            gmv[rest[4:]] = _int(value)
        elif rest.startswith("commission|"):
            commission[rest[11:]] = _int(value)
    row["gmv"] = [{"currency": c, "net_minor": gmv[c]} for c in sorted(gmv)]
    row["commission"] = [{"currency": c, "amount_minor": commission[c]} for c in sorted(commission)]
    last = _int(fields.get("last_order_at")) if not dim else 0
    row["last_order_at"] = format_ms(last) if last else None
    return row


def dimension_ids(fields: dict[str, str], kind: str) -> set[str]:
    """The ids of one dimension (``stream``, ``campaign``, ``link``) that a hash has fields for."""
    out = set()
    for field in fields:
        if field.startswith(kind + "|"):
            ident, sep, _ = field[len(kind) + 1:].partition("|")
            if sep:
                out.add(ident)
    return out


def updated_at(hashes: Iterable[dict[str, str]]) -> str | None:
    latest = max((_int(h.get("updated_at")) for h in hashes), default=0)
    return format_ms(latest) if latest else None


SERIES_ACTIVE_MS = 3600 * 1000  # a brand whose creators changed within the hour is sampled


def creators_series_key(prefix: str, brand_id: str) -> str:
    """ZSET of the brand's creator samples (owned by the API, like ``api:series`` of streams)."""
    return f"{prefix}:api:cseries:{brand_id}"


class ConversionReader:
    def __init__(self, client: RedisClient, prefix: str, partitions: int) -> None:
        self.client = client
        self.prefix = prefix
        self.partitions = partitions

    def part(self, brand_id: str) -> int:
        return keys.brand_partition(brand_id, self.partitions)

    async def creators_of(self, brand_id: str) -> set[str]:
        """Creators with counted clicks or attributed orders with ``brand_id``."""
        key = keys.brand_creators(self.prefix, self.part(brand_id), brand_id)
        return {str(c) for c in await self.client.smembers(key)}

    async def sample(self, brand_ids: Iterable[str], at: int, bucket: int) -> int:
        """Store one sample ``{t, creators: {id: {clicks, orders}}}`` per recently active brand (the
        leaderboard's sparklines); called by the API's series sampler every 10 s."""
        sampled = 0
        for brand_id in sorted(brand_ids):
            creators = await self.creators_of(brand_id)
            if not creators:
                continue
            hashes = await self.hashes((brand_id, c) for c in creators)
            if not any(at - _int(h.get("updated_at")) < SERIES_ACTIVE_MS for h in hashes.values()):
                continue
            point = {"t": bucket, "creators": {c: {"clicks": _int(h.get("clicks")), "orders": _int(h.get("orders"))}
                                               for (_, c), h in hashes.items()}}
            await store_sample(self.client, creators_series_key(self.prefix, brand_id), bucket, point, at)
            sampled += 1
        return sampled

    async def series(self, brand_id: str, since_ms: int) -> list[dict[str, Any]]:
        return await read_samples(self.client, creators_series_key(self.prefix, brand_id), since_ms)

    async def hashes(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
        """``(brand_id, creator_id) -> hash fields`` (empty for no activity yet)."""
        wanted = sorted(set(pairs))
        async with self.client.pipeline(transaction=False) as pipe:
            for brand_id, creator_id in wanted:
                pipe.hgetall(keys.creator_conversion(self.prefix, self.part(brand_id), brand_id, creator_id))
            raws = await pipe.execute()
        return {pair: {str(k): str(v) for k, v in raw.items()} for pair, raw in zip(wanted, raws, strict=True)}
