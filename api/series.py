"""Dashboard samples in Redis (owned by the API): one sample per 10 s bucket, 24 h kept."""

from __future__ import annotations

from typing import Any

import orjson

from liveledger.redis_client import RedisClient

SERIES_KEEP_MS = 24 * 3600 * 1000


async def store_sample(client: RedisClient, key: str, bucket: int, point: dict[str, Any], at: int) -> None:
    """One sample under its bucket (replacing another API process's sample of the same bucket),
    dropping samples older than 24 h."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.zremrangebyscore(key, bucket, bucket)
        pipe.zadd(key, {orjson.dumps(point).decode(): bucket})
        pipe.zremrangebyscore(key, "-inf", f"({at - SERIES_KEEP_MS}")
        await pipe.execute()


async def read_samples(client: RedisClient, key: str, since_ms: int) -> list[dict[str, Any]]:
    raw = await client.zrangebyscore(key, since_ms, "+inf")
    return [orjson.loads(str(r)) for r in raw]
