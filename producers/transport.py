"""The simulator's HTTP edge: bounded concurrency, 503 + Retry-After and restart-tolerant retries."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson


@dataclass
class Reply:
    status: int  # 0: no answer (connection failed for longer than the outage budget)
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            return None


@dataclass
class HttpStats:
    statuses: Counter[int] = field(default_factory=Counter)
    attempts: int = 0
    retry_after_waits: int = 0
    transport_retries: int = 0


class Http:
    """One aiohttp session; at most ``concurrency`` requests in flight."""

    def __init__(
        self, concurrency: int, max_retry_after_s: float, max_outage_s: float, max_503_retries: int = 20
    ) -> None:
        self._sem = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._concurrency = concurrency
        self.max_retry_after_s = max_retry_after_s
        self.max_outage_s = max_outage_s
        self.max_503_retries = max_503_retries
        self.stats = HttpStats()

    async def __aenter__(self) -> Http:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._concurrency),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _retry_after(self, reply: Reply) -> float:
        try:
            wait = float(reply.headers.get("Retry-After", "1"))
        except ValueError:
            wait = 1.0
        return min(max(wait, 0.05), self.max_retry_after_s)

    async def request(
        self, method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        """Send; on 503 wait Retry-After (bounded) and resend; on refused/reset connections keep
        resending the identical bytes for up to ``max_outage_s`` (an ingest restart)."""
        assert self._session is not None, "use `async with Http(...)`"
        outage_started: float | None = None
        backoff = 0.1
        retries_503 = 0
        while True:
            try:
                async with self._sem:
                    self.stats.attempts += 1
                    async with self._session.request(
                        method, url, data=body, headers=headers, allow_redirects=False
                    ) as resp:
                        reply = Reply(resp.status, dict(resp.headers), await resp.read())
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError):
                now = time.monotonic()
                outage_started = outage_started or now
                if now - outage_started > self.max_outage_s:
                    self.stats.statuses[0] += 1
                    return Reply(0, {}, b"")
                self.stats.transport_retries += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            self.stats.statuses[reply.status] += 1
            if reply.status == 503 and retries_503 < self.max_503_retries:
                retries_503 += 1
                self.stats.retry_after_waits += 1
                await asyncio.sleep(self._retry_after(reply))
                continue
            return reply
