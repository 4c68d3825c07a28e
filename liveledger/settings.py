"""One frozen settings object, loaded once from the environment (prefix ``LIVELEDGER_``).

Components receive a ``Settings`` instance; nothing else reads ``os.environ``.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_ADMIN_TOKEN = "dev-admin-token-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVELEDGER_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:9092"
    # Replication of the topics `liveledger topics create` makes (liveledger/topics.py): 1 on the
    # single dev broker; 3 and 2 on a 3-broker cluster (`make up CLUSTER=1`, docs/operations.md
    # "Kafka cluster"), so a write acknowledged with acks=all survives the loss of one broker.
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_min_insync_replicas: int = Field(default=1, ge=1)
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis Cluster (docs/scaling.md "Redis Cluster"): redis_url names any one node (also implied by
    # a redis+cluster:// URL); liveledger/redis_client.py makes every process's client.
    redis_cluster: bool = False
    # CLICKHOUSE_URL (no prefix) names a real server; default is the chDB dev server.
    clickhouse_url: str = Field(default="http://127.0.0.1:8123", validation_alias="CLICKHOUSE_URL")
    clickhouse_database: str = "liveledger"
    # ClickHouse cluster (docs/scaling.md "ClickHouse cluster"): `liveledger migrate` emits ON CLUSTER,
    # Replicated*MergeTree <table>_local and Distributed <table> DDL for it (consumers/cluster_ddl.py).
    clickhouse_cluster: str = Field(default="", pattern=r"^([A-Za-z_][A-Za-z0-9_]*)?$")

    admin_token: str = DEV_ADMIN_TOKEN
    topic_prefix: str = "ll"
    event_partitions: int = 6
    # How long the live path remembers a view/click/add_to_cart event id (its de-dup horizon; docs/scaling.md
    # "Bounded memory": Redis holds rate x horizon keys). The ledger's order/refund ids keep 8 days.
    live_dedup_ttl_s: int = Field(default=8 * 24 * 3600, ge=60, le=30 * 24 * 3600)

    ingest_host: str = "127.0.0.1"
    ingest_port: int = 8080
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Public base URL of the ingest service, used to build affiliate link URLs.
    ingest_public_url: str = "http://127.0.0.1:8080"

    max_batch_events: int = 1000
    max_body_bytes: int = 1024 * 1024
    webhook_tolerance_s: int = 300
    # In-flight Kafka sends per ingest process before answering 503 + Retry-After.
    ingest_max_inflight: int = 2000
    # A Kafka write not acknowledged within this long is answered 503 + Retry-After (the client
    # retries; the record may still land, and every consumer de-duplicates by event id).
    ingest_send_timeout_s: float = 5.0
    # Redirect clicks are micro-batched (ingest/batcher.py): at most this many clicks per Kafka record,
    # written at the end of the loop iteration (or after this linger) when no write of its brand is out.
    ingest_click_batch_max: int = Field(default=500, ge=1, le=1000)
    ingest_click_linger_ms: float = Field(default=0.0, ge=0, le=100)
    # linger of ingest's Kafka producer: every accepted request waits for its record's ack, and
    # records already queue while a produce request is out (aiokafka keeps one per broker)
    ingest_kafka_linger_ms: int = Field(default=0, ge=0, le=100)
    # API hostile-input guards (api/guards.py, api/server.py; docs/api.md "Limits"): JSON bodies
    # (the brand CSV upload has its own 20 MiB), request heads, slow bodies, idle connections.
    api_max_body_bytes: int = 1024 * 1024
    api_max_header_bytes: int = 64 * 1024
    api_header_timeout_s: float = 10.0
    api_body_timeout_s: float = 30.0
    api_keep_alive_s: int = 5
    # Per-key rate limits of the API (`limits` notation, per API process; the admin token is exempt).
    api_rate_limit_reads: str = "100/second"
    api_rate_limit_writes: str = "20/second"
    # Click hygiene (ingest/clicks.py): the secret of the client hash (IP + User-Agent); empty:
    # derived from admin_token. Proxies whose X-Forwarded-For is believed (comma-separated CIDRs).
    click_hygiene: bool = True  # false: every GET redirect counts (benchmarks measure the difference)
    client_hash_secret: str = ""
    trusted_proxies: str = "127.0.0.1/32,::1/128"
    # Ingest connections: closed when idle, or when a request's headers are not complete, after
    # this long; a request body must arrive within ingest_body_timeout_s (408 otherwise).
    ingest_idle_timeout_s: float = 15.0
    ingest_body_timeout_s: float = 10.0
    # Retention (consumers/migrations/0106, consumers/migrate.py): raw events (and dead letters) in
    # ClickHouse expire this many days after they were received; the money ledger never expires.
    events_retention_days: int = Field(default=400, ge=1, le=36500)
    # Completeness watermark (liveledger/storage/watermark.py, docs/money-rules.md "Completeness"):
    # the largest clock difference assumed between the hosts of ingest and of the API (subtracted).
    watermark_clock_skew_s: float = Field(default=0.5, ge=0)
    # Right to erasure (api/privacy_routes.py): the secret of the keyed hash that stands in for an
    # erased viewer id (Redis placeholders, audit log); empty: derived from admin_token.
    erasure_secret: str = ""
    # Operations (docs/operations.md): stream workers and sinks serve /metrics, /healthz and /readyz
    # on metrics_host:metrics_port; unset, a stream worker takes 9201 (the next free port up to
    # 9299 when another worker has it) and the ClickHouse sink 9301 (up to 9399). Ingest and the API
    # serve them on their own port. Each /readyz probe (Kafka, Redis, ClickHouse) gets at most
    # readiness_timeout_s (capped at 1 s).
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    readiness_timeout_s: float = 1.0


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
