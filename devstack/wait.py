"""Readiness checks for the dev stack: each service must answer a real client.

``python -m devstack.wait kafka redis clickhouse [--timeout S]`` polls every named service
concurrently until it answers or the timeout passes:

- kafka: an aiokafka admin client fetches cluster metadata (``describe_cluster``) and the broker
  reports a controller;
- redis: ``PING`` through redis-py's asyncio client;
- clickhouse: ``SELECT 1`` through clickhouse-connect (the dev server or ``CLICKHOUSE_URL``);
- ingest, api: ``GET /healthz`` answers 200 (used by devstack/serve.sh).

A service whose pid file names a process that has exited fails at once instead of at the timeout.
On failure it prints the service, the last error and the tail of ``.devstack/logs/<name>.log`` and
exits 1. Addresses come from :class:`liveledger.settings.Settings`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from liveledger.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".devstack"
LOGS = STATE / "logs"
RUN = STATE / "run"

Check = Callable[[Settings], Awaitable[str]]


async def check_kafka(settings: Settings) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        if cluster.get("controller_id", -1) < 0 or not cluster.get("brokers"):
            raise RuntimeError(f"cluster not ready yet: {cluster}")
        return f"cluster {cluster.get('cluster_id')}, {len(cluster['brokers'])} broker(s)"
    finally:
        await admin.close()


async def check_redis(settings: Settings) -> str:
    import redis.asyncio as aioredis

    client = aioredis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        pong = await client.ping()
        if not pong:
            raise RuntimeError("PING did not answer PONG")
        info = await client.info("server")
        return f"redis {info.get('redis_version')}"
    finally:
        await client.aclose()


def _clickhouse_select_one(url: str) -> str:
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn=url, connect_timeout=2, send_receive_timeout=10)
    try:
        one = client.command("SELECT 1")
        if str(one) != "1":
            raise RuntimeError(f"SELECT 1 returned {one!r}")
        return f"clickhouse {client.server_version} at {url}"
    finally:
        client.close()


async def check_clickhouse(settings: Settings) -> str:
    return await asyncio.to_thread(_clickhouse_select_one, settings.clickhouse_url)


async def _healthz(host: str, port: int) -> str:
    import httpx

    url = f"http://{host}:{port}/healthz"
    async with httpx.AsyncClient(timeout=3) as client:
        response = await client.get(url)
    if response.status_code != 200:
        raise RuntimeError(f"GET {url} answered {response.status_code}")
    return f"GET {url} 200"


async def check_ingest(settings: Settings) -> str:
    return await _healthz(settings.ingest_host, settings.ingest_port)


async def check_api(settings: Settings) -> str:
    return await _healthz(settings.api_host, settings.api_port)


CHECKS: dict[str, Check] = {
    "kafka": check_kafka,
    "redis": check_redis,
    "clickhouse": check_clickhouse,
    "ingest": check_ingest,
    "api": check_api,
}


def _process_gone(name: str, started: bool) -> bool:
    """True when the service's process has exited: its pid file names a dead process, or -- for a
    service this run started (``--started``) -- the pid file is gone (removed as stale)."""
    pidfile = RUN / f"{name}.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return started
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state == "Z"


async def wait_for(name: str, settings: Settings, timeout: float, started: bool) -> tuple[bool, str, float]:
    check = CHECKS[name]
    start = time.monotonic()
    last_error = "no attempt finished"
    while True:
        try:
            detail = await asyncio.wait_for(check(settings), timeout=10)
            return True, detail, time.monotonic() - start
        except Exception as exc:  # any failure means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}".strip()
        if _process_gone(name, started):
            return False, f"process exited ({last_error})", time.monotonic() - start
        if time.monotonic() - start > timeout:
            return False, f"no answer within {timeout:.0f}s ({last_error})", time.monotonic() - start
        await asyncio.sleep(0.25)


def _tail(path: Path, lines: int = 40) -> str:
    """The last lines the latest start wrote (start_bg marks each start with a ``=====`` line)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"  (no log at {path})"
    starts = [i for i, line in enumerate(text) if line.startswith("===== ") and " start " in line]
    if starts:
        text = text[starts[-1]:]
    return "\n".join("  " + line for line in text[-lines:])


async def main_async(names: list[str], timeout: float, quiet: bool, started: set[str]) -> int:
    settings = Settings()
    results = await asyncio.gather(*(wait_for(n, settings, timeout, n in started) for n in names))
    failed = 0
    for name, (ok, detail, took) in zip(names, results, strict=True):
        if ok:
            if not quiet:
                print(f"[devstack] {name:<10} ready in {took:4.1f}s  ({detail})")
        else:
            failed += 1
            log = LOGS / f"{name}.log"
            rel = log.relative_to(ROOT)
            print(f"[devstack] ERROR: {name} is not answering: {detail}", file=sys.stderr)
            print(f"----- last lines of {rel} -----\n{_tail(log)}\n-----", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Wait until dev-stack services answer a real client.")
    parser.add_argument("services", nargs="+", choices=sorted(CHECKS))
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per service (default 90)")
    parser.add_argument("--quiet", action="store_true", help="print failures only")
    parser.add_argument(
        "--started",
        action="append",
        default=[],
        metavar="NAME",
        help="a service this run just started: fail at once when its process is gone",
    )
    args = parser.parse_args(argv)
    # Client libraries log every refused connection while a service starts; expected here.
    logging.disable(logging.CRITICAL)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(main_async(args.services, args.timeout, args.quiet, set(args.started)))
    return 130


if __name__ == "__main__":
    sys.exit(main())
