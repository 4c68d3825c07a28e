"""A real API process on a fresh topic prefix, Redis namespace and ClickHouse database.

Ledger and live data are seeded through the real stores with the documented layouts: ClickHouse rows
as the sink writes them (liveledger/storage/clickhouse.py columns) and Redis keys as
liveledger/storage/redis_keys.py lays them out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from consumers.migrate import migrate
from liveledger.ch import get_client
from liveledger.settings import DEV_ADMIN_TOKEN, Settings
from liveledger.storage import redis_keys as keys
from liveledger.storage.clickhouse import COMMISSION_VERSIONS, ORDER_COLUMNS, ORDERS_LEDGER
from tests.harness import AppStack, SetupClient

STREAM_BRANDS = {"s1": "b1", "s2": "b2"}  # the streams make_world sets up


@dataclass
class World:
    stack: AppStack
    setup: SetupClient
    database: str
    keys: dict[str, str]
    ch: Any
    redis: redis.Redis
    versions: dict[tuple[str, str], int] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return self.stack.prefix

    def part(self, brand_id: str) -> int:
        """The partition whose hash slot holds ``brand_id``'s live keys (redis_keys.brand_partition)."""
        return keys.brand_partition(brand_id, Settings().event_partitions)

    def stream_part(self, stream_id: str) -> int:
        return self.part(STREAM_BRANDS[stream_id])

    def get(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key or 'admin']}"} if key != "none" else {}
        return httpx.get(self.stack.api_url + path, headers=headers, timeout=30, **kw)

    def post(self, path: str, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[key or 'admin']}"} if key != "none" else {}
        headers.update(kw.pop("headers", {}))
        return httpx.post(self.stack.api_url + path, headers=headers, timeout=30, **kw)

    def order(self, brand_id: str, order_id: str, *, occurred_at: datetime, gross: int, creator: str = "",
              campaign: str = "", stream: str = "", via: str = "click", refunded: int = 0, rate_bps: int = 1000,
              flat: int = 0, hold_days: int = 30, currency: str = "USD", ingested_at: datetime | None = None,
              link: str = "") -> int:
        """Insert the next commission version of an order, as the sink writes it; returns the version."""
        version = self.versions.get((brand_id, order_id), 0) + 1
        self.versions[(brand_id, order_id)] = version
        net = max(0, gross - refunded)

        def commission(n: int) -> int:
            return n * rate_bps // 10000 + flat if (creator and campaign and n > 0) else 0

        row = [brand_id, order_id, version, occurred_at, currency, gross, refunded, net,
               via if creator else "", creator, campaign, stream if via == "click" else "",
               f"clk-{order_id}" if via == "click" and creator else "", "", rate_bps if campaign else 0,
               flat if campaign else 0, hold_days, commission(net), commission(gross) - commission(net), ["p1"],
               "native", link]
        cols = [*ORDER_COLUMNS, "ingested_at"]
        at = ingested_at or datetime.now(UTC)
        for table in (ORDERS_LEDGER, COMMISSION_VERSIONS):
            self.ch.insert(f"{self.database}.{table}", [[*row, at]], column_names=cols)
        return version

    def live_counts(self, stream_id: str, **fields: int) -> None:
        self.redis.hset(keys.stream_counts(self.prefix, self.stream_part(stream_id), stream_id),
                        mapping={k.replace("__", "|"): v for k, v in fields.items()})

    def publish(self, stream_id: str) -> None:
        self.redis.publish(keys.stream_channel(self.prefix, stream_id),
                           orjson.dumps({"stream_id": stream_id, "updated_at": 0}))


def make_world(tmp: Path, start: tuple[str, ...] = ("api",)) -> Iterator[World]:
    stack = AppStack(log_dir=tmp)
    database = stack.prefix
    stack.extra_env["LIVELEDGER_CLICKHOUSE_DATABASE"] = database
    settings = Settings()
    ch = get_client(settings, database="default")
    r = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    stack.create_topics()
    migrate(ch, database)
    try:
        if "api" in start:
            stack.start_api()
        if "ingest" in start:
            stack.start_ingest()
        if "streams" in start:
            stack.start("streams", "streams", "--datadir", str(tmp / "faust"), "worker", "--web-port",
                        str(_free()))
        if "sink" in start:
            stack.start("sink", "consumers", "clickhouse")
        setup = SetupClient(stack.api_url, DEV_ADMIN_TOKEN)
        b1 = setup.brand("b1", "USD")
        b2 = setup.brand("b2", "USD")
        c1 = setup.creator("c1")
        c2 = setup.creator("c2")
        fin = setup.post("/v1/admin/finance-keys", {"name": "finance team"})
        setup.campaign("cmp1", "b1", rate_bps=1000, hold_days=30, min_payout_minor=5000)
        setup.campaign("cmp2", "b2", rate_bps=1000, hold_days=30, min_payout_minor=5000)
        setup.stream("s1", "b1", "c1")
        setup.stream("s2", "b2", "c2")
        api_keys = {"admin": DEV_ADMIN_TOKEN, "b1": b1["api_key"], "b2": b2["api_key"], "c1": c1["api_key"],
                    "c2": c2["api_key"], "finance": fin["api_key"], "b1_secret": b1["webhook_secret"]}
        yield World(stack, setup, database, api_keys, ch, r)
    finally:
        stack.stop_all()
        ch.command(f"DROP DATABASE IF EXISTS `{database}`")
        ch.close()
        for k in r.scan_iter(f"{stack.prefix}:*", count=1000):
            r.delete(k)
        r.close()


def _free() -> int:
    from tests.harness import free_port

    return free_port()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(Path(tmp_path_factory.mktemp("apps")))
