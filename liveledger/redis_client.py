"""The one place a process gets its Redis client: a single Redis, or a Redis Cluster.

``LIVELEDGER_REDIS_CLUSTER=true`` (or a ``redis+cluster://`` URL) makes :func:`redis_client` return a
:class:`redis.asyncio.RedisCluster` seeded with ``redis_url`` (any one node; the client discovers the
others and routes every command -- an ``EVALSHA`` by its first key -- to the node that owns the slot).
Every key the application writes in one call shares a hash slot (:mod:`liveledger.storage.redis_keys`),
so the same code runs on both. Pub/sub: a plain ``PUBLISH`` reaches the subscribers of every node of
a cluster, so :func:`pubsub_client` is a plain client of one node either way.
"""

from __future__ import annotations

from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
import redis.cluster
from redis.asyncio.cluster import RedisCluster

from liveledger.settings import Settings

RedisClient: TypeAlias = aioredis.Redis | RedisCluster

CLUSTER_SCHEME = "redis+cluster"


def cluster_mode(settings: Settings) -> bool:
    return settings.redis_cluster or urlsplit(settings.redis_url).scheme == CLUSTER_SCHEME


def node_url(settings: Settings) -> str:
    """``redis_url`` as a plain ``redis://`` URL of its node (the seed node of a cluster)."""
    parts = urlsplit(settings.redis_url)
    if parts.scheme == CLUSTER_SCHEME:
        parts = parts._replace(scheme="redis")
    if cluster_mode(settings):  # a cluster has database 0 only
        parts = parts._replace(path="")
    return urlunsplit(parts)


def redis_client(settings: Settings, **options: Any) -> RedisClient:
    """A lazily connecting client of the configured Redis (``options``: redis-py connection options,
    e.g. ``decode_responses=True``, ``socket_timeout=0.5``)."""
    url = node_url(settings)
    if cluster_mode(settings):
        options.pop("health_check_interval", None)  # not a cluster option
        return RedisCluster.from_url(url, **options)
    client: aioredis.Redis = aioredis.Redis.from_url(url, **options)
    return client


def pubsub_client(settings: Settings, **options: Any) -> aioredis.Redis:
    """A plain client of the seed node, for (P)SUBSCRIBE: every node of a cluster delivers every PUBLISH."""
    client: aioredis.Redis = aioredis.Redis.from_url(node_url(settings), **options)
    return client


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


async def sum_hashes(client: RedisClient, keys: list[str]) -> dict[str, int]:
    """Field-wise sum of integer hashes (the per-partition ``stats``, a creator's per-partition
    earnings), read in one pipeline (on a cluster: one round trip per node). Non-integer fields are skipped."""
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        raws = await pipe.execute()
    out: dict[str, int] = {}
    for raw in raws:
        for field, value in raw.items():
            name = field.decode() if isinstance(field, bytes) else str(field)
            try:
                out[name] = out.get(name, 0) + int(value)
            except (TypeError, ValueError):
                continue
    return out


def sync_redis_client(settings: Settings, **options: Any) -> redis.Redis | redis.cluster.RedisCluster:
    """The blocking counterpart of :func:`redis_client` (CLI tools, tests)."""
    url = node_url(settings)
    if cluster_mode(settings):
        return redis.cluster.RedisCluster.from_url(url, **options)
    return redis.Redis.from_url(url, **options)
