"""Drop what an ops test stack left: its ClickHouse database and its Redis keys (its Kafka topics
stay, as everywhere in tests/harness.py)."""

from __future__ import annotations

import redis

from liveledger.ch import get_client
from liveledger.settings import Settings


def cleanup(prefix: str, database: str) -> None:
    client = get_client(Settings(), database="default")
    try:
        client.command(f"DROP DATABASE IF EXISTS {database}")
    finally:
        client.close()
    r = redis.Redis.from_url(Settings().redis_url)
    try:
        keys = list(r.scan_iter(f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            r.delete(*keys[i:i + 500])
    finally:
        r.close()
