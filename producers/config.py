"""The simulator's one frozen configuration (CLI flags map 1:1 onto these fields)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from liveledger.settings import DEV_ADMIN_TOKEN

_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,48}$")


def default_id_prefix(seed: int) -> str:
    """Seed plus a random nonce, so reruns of one seed against the same stack never collide."""
    return f"s{seed}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class SimConfig:
    seed: int = 42
    id_prefix: str = ""  # "" -> default_id_prefix(seed), resolved by ``resolved()``
    ingest_url: str = "http://127.0.0.1:8080"
    api_url: str = "http://127.0.0.1:8000"
    admin_token: str = DEV_ADMIN_TOKEN
    brands: int = 3
    creators: int = 6
    streams: int = 4
    viewers: int = 300  # per stream
    minutes: float = 10.0  # simulated length of each stream
    speed: float = 30.0  # simulated seconds per real second (a 10-minute stream takes ~20 s)
    tick_seconds: float = 20.0  # simulated seconds per stream tick (= heartbeat interval)
    dup_rate: float = 0.05  # events / webhooks re-sent with the same id
    retry_rate: float = 0.02  # requests re-sent after a simulated client timeout
    late_rate: float = 0.02  # events whose occurred_at is minutes in the past
    shopify_rate: float = 0.3  # orders sent in Shopify's webhook format
    refund_rate: float = 0.1  # orders that get refunds
    coupon_rate: float = 0.15  # orders carrying a coupon code
    invalid_rate: float = 0.002  # deliberately invalid events (must be rejected, never counted)
    edge_rate: float = 0.02  # orders exercising attribution edges (stale / cross-brand / after-order clicks)
    concurrency: int = 16  # requests in flight
    max_retry_after_s: float = 10.0  # cap on a 503's Retry-After we honour
    max_outage_s: float = 60.0  # how long to keep retrying a refused connection (ingest restart)
    record_acked: bool = False  # include every acked event / order id in the JSON
    progress: bool = True

    def resolved(self) -> SimConfig:
        """A copy with the id prefix fixed (validated against the contract's id alphabet)."""
        prefix = self.id_prefix or default_id_prefix(self.seed)
        if not _ID_RE.match(prefix):
            raise ValueError(f"id prefix {prefix!r} must be 1-48 chars of [A-Za-z0-9._:-]")
        if self.speed <= 0:
            raise ValueError("speed must be > 0")
        if self.brands < 1 or self.creators < 1 or self.streams < 1 or self.viewers < 1:
            raise ValueError("brands, creators, streams and viewers must be >= 1")
        return SimConfig(**{**self.__dict__, "id_prefix": prefix})

    def public_dict(self) -> dict[str, object]:
        """The knobs, without the admin token."""
        return {k: v for k, v in self.__dict__.items() if k != "admin_token"}
