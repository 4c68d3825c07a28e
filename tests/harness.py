"""Start real LiveLedger processes for a test on fresh topics and free ports.

Each :class:`AppStack` gets its own topic prefix (so its own Kafka topics), and runs the named
processes (`python -m ingest`, `python -m api`, ...) as subprocesses, logging to files under the
test's tmp dir. ``kill9`` and ``restart`` let fault tests crash them for real.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from liveledger.settings import Settings

# A real browser's User-Agent: redirects from HTTP client libraries (python-httpx, aiohttp, curl)
# are bots to the click-hygiene rules (ingest/clicks.py) and would count no click.
from loadtests.payloads import BROWSER_UA as BROWSER_UA

ROOT = Path(__file__).resolve().parent.parent




def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_prefix() -> str:
    return "t" + uuid.uuid4().hex[:10]


_migrated: set[str] = set()


def ensure_migrated(database: str) -> None:
    """Apply the ClickHouse migrations to ``database`` once per test session."""
    if database in _migrated:
        return
    from consumers.migrate import migrate
    from liveledger.ch import get_client

    client = get_client(Settings(), database="default")
    try:
        migrate(client, database)
    finally:
        client.close()
    _migrated.add(database)


@dataclass
class AppStack:
    log_dir: Path
    prefix: str = field(default_factory=fresh_prefix)
    ingest_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "LIVELEDGER_TOPIC_PREFIX": self.prefix,
            "LIVELEDGER_INGEST_PORT": str(self.ingest_port),
            "LIVELEDGER_API_PORT": str(self.api_port),
            "LIVELEDGER_INGEST_PUBLIC_URL": f"http://127.0.0.1:{self.ingest_port}",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    @property
    def settings(self) -> Settings:
        return Settings(topic_prefix=self.prefix, ingest_port=self.ingest_port, api_port=self.api_port,
                        ingest_public_url=f"http://127.0.0.1:{self.ingest_port}")

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ingest_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def create_topics(self) -> None:
        from liveledger.kafka import create_topics

        asyncio.run(create_topics(self.settings))

    def start(self, name: str, *args: str, health: str | None = None, env: dict[str, str] | None = None) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the process
        self.procs[name] = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env={**self.env, **(env or {})},
                                            stdout=log, stderr=subprocess.STDOUT)
        if health:
            self.wait_healthy(name, health)

    def wait_healthy(self, name: str, url: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; log:\n{self.tail(name)}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not healthy after {timeout}s; log:\n{self.tail(name)}")

    def start_ingest(self, name: str = "ingest", port: int | None = None, env: dict[str, str] | None = None) -> str:
        """Start an ingest process (another one: a new ``name`` and ``port``); returns its URL."""
        port = port or self.ingest_port
        url = f"http://127.0.0.1:{port}"
        self.start(name, "ingest", health=f"{url}/healthz", env={"LIVELEDGER_INGEST_PORT": str(port), **(env or {})})
        return url

    def start_api(self) -> None:
        # The API writes every setup change to the audit table first (api/audit.py), so its
        # ClickHouse database must be migrated, as `make serve` does for the dev database.
        ensure_migrated(self.env.get("LIVELEDGER_CLICKHOUSE_DATABASE") or Settings().clickhouse_database)
        self.start("api", "api", health=f"{self.api_url}/healthz")

    def start_pipeline(self) -> None:
        """The whole application: the API, ingest, one stream worker and the ClickHouse sink."""
        self.start_api()
        self.start_ingest()
        self.start("worker", "streams", "worker")
        self.start("sink", "consumers", "clickhouse")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


class SetupClient:
    """Thin client of the setup API for tests (admin token from Settings)."""

    def __init__(self, api_url: str, admin_token: str) -> None:
        self.http = httpx.Client(base_url=api_url, timeout=10.0,
                                 headers={"Authorization": f"Bearer {admin_token}"})

    def post(self, path: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else None
        resp = self.http.post(path, json=body, headers=headers)
        assert resp.status_code == 201, (path, resp.status_code, resp.text)
        data: dict[str, Any] = resp.json()
        return data

    def brand(self, brand_id: str, currency: str = "USD") -> dict[str, Any]:
        return self.post("/v1/admin/brands", {"brand_id": brand_id, "name": f"Brand {brand_id}",
                                              "currency": currency})

    def creator(self, creator_id: str) -> dict[str, Any]:
        return self.post("/v1/admin/creators", {"creator_id": creator_id, "name": f"Creator {creator_id}"})

    def campaign(self, campaign_id: str, brand_id: str, **kw: Any) -> dict[str, Any]:
        body = {"campaign_id": campaign_id, "brand_id": brand_id, "rate_bps": 1000, "flat_minor": 0, **kw}
        return self.post("/v1/campaigns", body)

    def stream(self, stream_id: str, brand_id: str, creator_id: str) -> dict[str, Any]:
        return self.post("/v1/streams", {"stream_id": stream_id, "brand_id": brand_id,
                                         "creator_id": creator_id, "title": f"Stream {stream_id}"})

    def link(self, creator_id: str, campaign_id: str, **kw: Any) -> dict[str, Any]:
        body = {"creator_id": creator_id, "campaign_id": campaign_id,
                "destination_url": "https://shop.example/p/1?ref=x", **kw}
        return self.post("/v1/links", body)
