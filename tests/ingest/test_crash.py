"""Durability of the 202: kill -9 the ingest process mid-load; nothing acknowledged is lost.

Also the overload contract: past the in-flight bound the service answers 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from liveledger.settings import DEV_ADMIN_TOKEN
from tests.harness import AppStack, SetupClient
from tests.ingest.conftest import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]  # the API migrates its audit table


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _batch(prefix: str, n: int) -> list[dict[str, Any]]:
    return [{"event_id": f"{prefix}-{i}", "type": "view", "stream_id": "s1", "viewer_id": f"v{i}",
             "action": "join", "occurred_at": _now()} for i in range(n)]


def test_kill9_during_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    stack = AppStack(log_dir=tmp_path)
    stack.create_topics()
    acked: set[str] = set()
    stop = threading.Event()
    try:
        stack.start_api()
        stack.start_ingest()
        setup = SetupClient(stack.api_url, DEV_ADMIN_TOKEN)
        key = setup.brand("b1")["api_key"]
        setup.creator("c1")
        setup.stream("s1", "b1", "c1")

        async def load() -> tuple[int, int]:
            errors = 0
            n = 0
            async with httpx.AsyncClient(timeout=5.0, headers={"Authorization": f"Bearer {key}"}) as client:

                async def worker(w: int) -> None:
                    nonlocal errors, n
                    while not stop.is_set():
                        n += 1
                        events = _batch(f"w{w}-b{n}", 20)
                        try:
                            resp = await client.post(f"{stack.ingest_url}/v1/events", json={"events": events})
                        except httpx.HTTPError:
                            errors += 1
                            await asyncio.sleep(0.05)
                            continue
                        if resp.status_code == 202:
                            assert resp.json()["accepted"] == 20
                            acked.update(e["event_id"] for e in events)
                        else:
                            errors += 1

                await asyncio.gather(*(worker(w) for w in range(8)))
            return n, errors

        result: dict[str, tuple[int, int]] = {}
        thread = threading.Thread(target=lambda: result.setdefault("r", asyncio.run(load())))
        thread.start()
        kills = 0
        for _ in range(3):
            time.sleep(1.5)
            stack.kill9("ingest")
            kills += 1
            stack.start_ingest()
        time.sleep(1.0)
        stop.set()
        thread.join(timeout=30)
        _batches, errors = result["r"]
        assert kills == 3
        assert errors > 0, "the kill should have broken some in-flight requests"
        assert len(acked) > 1000
        in_kafka = {e["event_id"] for _, v, _ in read_topic("127.0.0.1:9092", f"{stack.prefix}.events")
                    for e in v["events"]}
        missing = acked - in_kafka
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    finally:
        stop.set()
        stack.stop_all()


def test_overload_answers_503_with_retry_after(tmp_path: Path) -> None:
    stack = AppStack(log_dir=tmp_path, extra_env={"LIVELEDGER_INGEST_MAX_INFLIGHT": "2"})
    stack.create_topics()
    try:
        stack.start_api()
        stack.start_ingest()
        setup = SetupClient(stack.api_url, DEV_ADMIN_TOKEN)
        key = setup.brand("b1")["api_key"]
        setup.creator("c1")
        setup.stream("s1", "b1", "c1")

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=10.0, headers={"Authorization": f"Bearer {key}"},
                                         limits=httpx.Limits(max_connections=64)) as client:
                return await asyncio.gather(*(client.post(f"{stack.ingest_url}/v1/events",
                                                          json={"events": _batch(f"o{i}", 50)})
                                              for i in range(64)))

        responses = asyncio.run(burst())
        codes = [r.status_code for r in responses]
        assert set(codes) <= {202, 503}, codes
        assert 503 in codes and 202 in codes, codes
        rejected = [r for r in responses if r.status_code == 503]
        assert all(r.headers.get("Retry-After") for r in rejected)
        assert rejected[0].json()["error"]["code"] == "overloaded"
        accepted_ids = {e for i, r in enumerate(responses) if r.status_code == 202 for e in [f"o{i}-0"]}
        in_kafka = {e["event_id"] for _, v, _ in read_topic("127.0.0.1:9092", f"{stack.prefix}.events")
                    for e in v["events"]}
        assert accepted_ids <= in_kafka
        assert not any(f"o{i}-0" in in_kafka for i, r in enumerate(responses) if r.status_code == 503)
    finally:
        stack.stop_all()
