"""``/readyz``: does every dependency of this process answer? One probe per dependency, each bounded.

- ``kafka``: a fresh connection to a bootstrap broker (aiokafka's own connection, which negotiates
  API versions) and a ``Metadata`` request that must list brokers; any bootstrap broker answering is
  enough. A paused broker accepts TCP but never answers: the timeout catches it.
- ``redis``: ``PING`` on a small client of its own (the process's pools are not touched).
- ``clickhouse``: ``SELECT 1`` over HTTP (the dev server or ``CLICKHOUSE_URL``), with the URL's user.

Every probe runs concurrently under ``settings.readiness_timeout_s`` (≤ 1 s), so ``/readyz`` answers
within about that long whatever is down. The answer is ``200 {"status": "ready"}`` or ``503`` in the
contract's error shape, ``code`` ``not_ready``, one detail per failing dependency
(``{"field": "kafka", "reason": "..."}``); the message names them. A process that is still starting
(:class:`Readiness` ``started``) also answers 503, with the detail ``startup``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

from liveledger.ch import parse_clickhouse_url
from liveledger.errors import error_body
from liveledger.redis_client import node_url
from liveledger.settings import Settings

__all__ = ["DEPENDENCIES", "Readiness", "RedisProbe", "clickhouse_probe", "kafka_probe", "redis_probe"]

Probe = Callable[[], Awaitable[None]]
DEPENDENCIES = ("kafka", "redis", "clickhouse")


def _servers(bootstrap: str) -> list[tuple[str, int]]:
    out = []
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        out.append((host.strip("[]") or "127.0.0.1", int(port or 9092)))
    return out


def kafka_probe(bootstrap: str, timeout_s: float) -> Probe:
    async def one(host: str, port: int) -> None:
        conn = await create_conn(host, port, client_id="liveledger-readyz", request_timeout_ms=int(timeout_s * 1000))
        try:
            metadata = await conn.send(MetadataRequest([]))
            if not metadata.brokers:
                raise RuntimeError("the broker lists no brokers")
        finally:
            conn.close()

    async def probe() -> None:
        errors: list[str] = []
        for host, port in _servers(bootstrap):
            try:
                await one(host, port)
                return
            except Exception as exc:
                errors.append(f"{host}:{port}: {_why(exc)}")
        raise RuntimeError("; ".join(errors) or "no bootstrap server")

    return probe


class RedisProbe:
    """``PING`` on a client of its own (two connections at most), closed by :meth:`aclose`."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.client: Any = None

    async def __call__(self) -> None:
        if self.client is None:
            self.client = aioredis.from_url(self.url, socket_connect_timeout=self.timeout_s,
                                            socket_timeout=self.timeout_s, max_connections=2)
        if not await self.client.ping():
            raise RuntimeError("PING did not answer PONG")

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None


def redis_probe(url: str, timeout_s: float) -> RedisProbe:
    return RedisProbe(url, timeout_s)


def clickhouse_probe(settings: Settings, timeout_s: float) -> Probe:
    addr = parse_clickhouse_url(settings.clickhouse_url)
    url = f"{addr.scheme}://{addr.host}:{addr.port}/"
    headers = {"X-ClickHouse-User": addr.username, "X-ClickHouse-Key": addr.password}

    async def probe() -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session, \
                session.get(url, params={"query": "SELECT 1"}, headers=headers) as resp:
            text = await resp.text()
        if resp.status != 200 or text.strip() != "1":
            raise RuntimeError(f"SELECT 1 answered {resp.status} {text[:80]!r}")

    return probe


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if type(exc) is RuntimeError:  # the probes' own findings
        return str(exc)[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


class Readiness:
    """The probes of one process; :meth:`check` → ``(status, body)`` for ``/readyz``."""

    def __init__(self, settings: Settings, uses: tuple[str, ...], *,
                 started: Callable[[], bool] | None = None, probes: Mapping[str, Probe] | None = None) -> None:
        unknown = set(uses) - set(DEPENDENCIES)
        if unknown:
            raise ValueError(f"unknown dependencies {sorted(unknown)}")
        self.timeout_s = min(settings.readiness_timeout_s, 1.0)
        made: dict[str, Probe] = {
            "kafka": kafka_probe(settings.kafka_bootstrap, self.timeout_s),
            "redis": redis_probe(node_url(settings), self.timeout_s),  # a cluster: PING of its seed node
            "clickhouse": clickhouse_probe(settings, self.timeout_s),
        }
        self.probes = {name: (probes or {}).get(name) or made[name] for name in uses}
        self.started = started

    async def _run(self, probe: Probe) -> str | None:
        try:
            await asyncio.wait_for(probe(), self.timeout_s)
            return None
        except Exception as exc:  # TimeoutError included
            return _why(exc)

    async def aclose(self) -> None:
        for probe in self.probes.values():
            close = getattr(probe, "aclose", None)
            if close is not None:
                await close()

    async def check(self) -> tuple[int, dict[str, Any]]:
        names = list(self.probes)
        results = await asyncio.gather(*(self._run(self.probes[n]) for n in names))
        details = [{"field": n, "reason": why} for n, why in zip(names, results, strict=True) if why is not None]
        if not details and self.started is not None and not self.started():
            details = [{"field": "startup", "reason": "still connecting to its dependencies"}]
        if not details:
            return 200, {"status": "ready"}
        down = ", ".join(d["field"] for d in details)
        return 503, error_body("not_ready", f"not ready: {down}", details)
