"""The dev stack's Redis is real and usable from redis-py (asyncio), as the stream processors use it.

Each test works under a fresh key prefix and deletes its keys after.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from liveledger.settings import Settings

pytestmark = pytest.mark.redis


@pytest.fixture
async def r() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(Settings().redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def prefix(r: aioredis.Redis) -> AsyncIterator[str]:
    p = f"test:{uuid.uuid4().hex}:"
    yield p
    keys = [k async for k in r.scan_iter(match=p + "*", count=10_000)]
    if keys:
        await r.delete(*keys)


async def test_set_get_roundtrip(r: aioredis.Redis, prefix: str) -> None:
    assert await r.set(prefix + "k", "v1") is True
    assert await r.get(prefix + "k") == "v1"
    assert await r.set(prefix + "k", "v2", nx=True) is None  # NX: not overwritten
    assert await r.get(prefix + "k") == "v1"
    await r.hset(prefix + "h", mapping={"clicks": 3, "views": 10})
    assert await r.hgetall(prefix + "h") == {"clicks": "3", "views": "10"}
    assert await r.config_get("appendonly") == {"appendonly": "yes"}


async def test_pipeline_transaction(r: aioredis.Redis, prefix: str) -> None:
    async with r.pipeline(transaction=True) as pipe:
        pipe.incrby(prefix + "clicks", 5)
        pipe.hincrby(prefix + "stream", "views", 2)
        pipe.pfadd(prefix + "viewers", "v1", "v2", "v1")
        pipe.expire(prefix + "clicks", 60)
        results = await pipe.execute()
    assert results == [5, 2, 1, True]
    assert await r.pfcount(prefix + "viewers") == 2
    assert 0 < await r.ttl(prefix + "clicks") <= 60


# The sinks' pattern (docs/architecture.md "Exactly-once effects"): apply a flush only when its
# Kafka offset is past the stored one for (consumer, topic, partition), atomically.
OFFSET_FENCED_INCR = """
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
local offset = tonumber(ARGV[1])
if offset <= last then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[2], ARGV[3])
redis.call('SET', KEYS[1], offset)
return 1
"""


async def test_lua_eval_offset_fenced_update(r: aioredis.Redis, prefix: str) -> None:
    keys = [prefix + "offset:agg:ll.events:0", prefix + "agg"]
    applied = [
        await r.eval(OFFSET_FENCED_INCR, 2, *keys, offset, "clicks", 1)
        for offset in (10, 11, 11, 9, 12)
    ]
    assert applied == [1, 1, 0, 0, 1]  # replays (11 again, 9) are skipped
    assert await r.hget(prefix + "agg", "clicks") == "3"
    sha = await r.script_load(OFFSET_FENCED_INCR)
    assert await r.evalsha(sha, 2, *keys, 13, "clicks", 1) == 1
    assert await r.get(keys[0]) == "13"
