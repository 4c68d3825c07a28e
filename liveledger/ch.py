"""ClickHouse clients for project code. All ClickHouse access goes through clickhouse-connect.

``settings.clickhouse_url`` (env ``CLICKHOUSE_URL``) is ``http[s]://[user[:password]@]host[:port][/database]``;
by default it names the chDB dev server that ``make up`` starts on :8123 (devstack/chserver.py).
With ``LIVELEDGER_CLICKHOUSE_CLUSTER`` set, inserts into the Distributed tables are synchronous.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.asyncclient import AsyncClient
from clickhouse_connect.driver.client import Client

from liveledger.settings import Settings


@dataclass(frozen=True)
class ClickHouseAddress:
    scheme: str
    host: str
    port: int
    username: str
    password: str
    database: str | None

    @property
    def secure(self) -> bool:
        return self.scheme == "https"


def parse_clickhouse_url(url: str) -> ClickHouseAddress:
    """Split a ClickHouse HTTP URL into what clickhouse-connect's ``get_client`` takes."""
    parts = urlsplit(url if "//" in url else f"http://{url}")
    scheme = (parts.scheme or "http").lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"CLICKHOUSE_URL must be http:// or https://, not {scheme}://")
    path_db = parts.path.strip("/")
    return ClickHouseAddress(
        scheme=scheme,
        host=parts.hostname or "127.0.0.1",
        port=parts.port or (8443 if scheme == "https" else 8123),
        username=unquote(parts.username) if parts.username else "default",
        password=unquote(parts.password) if parts.password else "",
        database=path_db or None,
    )


def _client_kwargs(settings: Settings, database: str | None, **overrides: Any) -> dict[str, Any]:
    addr = parse_clickhouse_url(settings.clickhouse_url)
    kwargs: dict[str, Any] = {
        "host": addr.host,
        "port": addr.port,
        "username": addr.username,
        "password": addr.password,
        "secure": addr.secure,
        "database": database if database is not None else (addr.database or "default"),
        "connect_timeout": 5,
        "send_receive_timeout": 60,
    }
    if settings.clickhouse_cluster:
        # Distributed inserts are synchronous on a cluster: an insert returns once the shards hold
        # the rows, so the sink commits Kafka offsets only for rows the cluster has (exactly-once).
        overrides = {**overrides, "settings": {"insert_distributed_sync": 1, **overrides.get("settings", {})}}
    kwargs.update(overrides)
    return kwargs


def get_client(settings: Settings, database: str | None = None, **overrides: Any) -> Client:
    """A synchronous clickhouse-connect client; ``database`` defaults to the URL's, else ``default``.

    ``overrides`` go to ``clickhouse_connect.get_client`` (e.g. ``compress``, ``session_id``,
    ``settings``). One client per thread: clickhouse-connect refuses concurrent queries in a session.
    """
    return clickhouse_connect.get_client(**_client_kwargs(settings, database, **overrides))


async def get_async_client(settings: Settings, database: str | None = None, **overrides: Any) -> AsyncClient:
    """The asyncio client (``clickhouse_connect.get_async_client``) with the same addressing."""
    return await clickhouse_connect.get_async_client(**_client_kwargs(settings, database, **overrides))
