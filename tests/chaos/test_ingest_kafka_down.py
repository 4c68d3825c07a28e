"""Producers' side of a Kafka fault: ingest answers 503 + Retry-After within a bounded time, never
hangs, and answers 202 again within seconds of the broker being back.

Two faults of the private broker (tests/chaos/services.py), with only the API and ingest running:
- paused (SIGSTOP: its sockets stay open and nothing answers, as in a network partition) -- before
  ``LIVELEDGER_INGEST_SEND_TIMEOUT_S`` (ingest/app.py ``IngestState.send``), a POST hung for more
  than 60 s; now each answers 503 within that timeout (default 5 s) plus a margin;
- killed (SIGKILL) and restarted.
Every event answered 202 is in the events topic afterwards (202 = durably in Kafka); an event
answered 503 may land too (the send was already on its way), which consumers de-duplicate by id.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from liveledger.settings import Settings
from liveledger.topics import topic_name
from tests.chaos.services import ChaosStack, PrivateServices, running_stack
from tests.harness import BROWSER_UA, SetupClient

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow]

SEND_TIMEOUT_S = Settings().ingest_send_timeout_s  # what ingest runs with (LIVELEDGER_INGEST_SEND_TIMEOUT_S)
MARGIN_S = 2.0  # request handling and a busy 2-core machine on top of the send timeout
BACK_WITHIN_S = 10.0  # 202 again this soon after the broker answers again
Json = dict[str, Any]


@pytest.fixture
def stack(chaos_services: PrivateServices, tmp_path: Path) -> Iterator[ChaosStack]:
    with running_stack(chaos_services, tmp_path, processes=("api", "ingest")) as stack:
        yield stack


class Poster:
    def __init__(self, stack: ChaosStack, key: str, stream_id: str) -> None:
        self.stack, self.key, self.stream_id = stack, key, stream_id
        self.acked: set[str] = set()
        self.refused: set[str] = set()

    async def post(self, client: httpx.AsyncClient, n: int = 20) -> Json:
        """One POST /v1/events; its status, Retry-After and how long the answer took (a hang: 60 s)."""
        ids = [f"kd-{uuid.uuid4().hex[:12]}" for _ in range(n)]
        now = datetime.now(UTC).isoformat()
        events = [{"event_id": i, "type": "view", "stream_id": self.stream_id, "viewer_id": f"v{k}",
                   "action": "join", "occurred_at": now} for k, i in enumerate(ids)]
        t0 = time.monotonic()
        try:
            resp = await client.post(f"{self.stack.ingest_url}/v1/events", json={"events": events},
                                     headers={"Authorization": f"Bearer {self.key}"}, timeout=60.0)
            status, retry_after, code = resp.status_code, resp.headers.get("Retry-After"), None
            if status >= 400:
                code = resp.json()["error"]["code"]
        except httpx.TimeoutException:
            status, retry_after, code = 0, None, "no answer within 60 s"
        took = time.monotonic() - t0
        (self.acked if status == 202 else self.refused).update(ids)
        return {"status": status, "retry_after": retry_after, "code": code, "took_s": round(took, 2)}

    async def redirect(self, client: httpx.AsyncClient, code: str, who: str) -> Json:
        """``GET /l/{code}`` as one person (a browser behind the trusted proxy, address ``who``)."""
        t0 = time.monotonic()
        resp = await client.get(f"{self.stack.ingest_url}/l/{code}", timeout=60.0,
                                headers={"User-Agent": BROWSER_UA, "X-Forwarded-For": who})
        found = parse_qs(urlsplit(resp.headers.get("Location", "")).query).get("ll_click")
        return {"status": resp.status_code, "retry_after": resp.headers.get("Retry-After"),
                "ll_click": found[0] if found else None, "took_s": round(time.monotonic() - t0, 2)}

    async def refused_within_bound(self, client: httpx.AsyncClient, concurrent: int = 4) -> list[Json]:
        answers = await asyncio.gather(*(self.post(client) for _ in range(concurrent)))
        for a in answers:
            assert a["status"] == 503 and a["retry_after"] and float(a["retry_after"]) > 0, a
            assert a["took_s"] <= SEND_TIMEOUT_S + MARGIN_S, a
        return answers

    async def until_accepted(self, client: httpx.AsyncClient, since: float, timeout: float = 60.0) -> Json:
        """POST until 202; how long after ``since`` (monotonic) the first 202 came, and what came before."""
        seen: list[Json] = []
        while time.monotonic() - since < timeout:
            a = await self.post(client)
            if a["status"] == 202:
                return {"first_202_after_s": round(time.monotonic() - since, 2), "before": seen}
            assert a["status"] == 503 and a["took_s"] <= SEND_TIMEOUT_S + MARGIN_S, a
            seen.append(a)
            await asyncio.sleep(0.2)
        raise AssertionError(f"no 202 within {timeout}s: {seen[-3:]}")


async def topic_events(settings: Settings) -> list[Json]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic_name(settings, "events"), p) for p in range(settings.event_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        events: list[Json] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            for tp, recs in (await consumer.getmany(*pending, timeout_ms=2000)).items():
                for rec in recs:
                    assert rec.value is not None
                    events += orjson.loads(rec.value)["events"]
                    if rec.offset >= ends[tp] - 1:
                        pending.discard(tp)
        return events
    finally:
        await consumer.stop()


async def scenario(stack: ChaosStack, services: PrivateServices, key: str, link_code: str) -> Json:
    poster = Poster(stack, key, "kd-s1")
    out: Json = {"send_timeout_s": SEND_TIMEOUT_S}
    async with httpx.AsyncClient() as client:
        await poster.until_accepted(client, time.monotonic())
        # 1. broker paused: 503 + Retry-After within the bound, never a hang; 202 soon after SIGCONT
        # (and a person opening a link then: 503 too; their retry after the broker is back must get
        # one click, not a second one if the first, queued in the producer, landed meanwhile)
        services.kafka.pause()
        try:
            out["paused"], out["redirect_paused"] = await asyncio.gather(
                poster.refused_within_bound(client), poster.redirect(client, link_code, "2001:db8::7"))
        finally:
            services.kafka.resume()
        out["after_sigcont"] = await poster.until_accepted(client, time.monotonic())
        out["redirect_retry"] = await poster.redirect(client, link_code, "2001:db8::7")
        # 2. broker killed: the same; 202 soon after it is back
        services.kafka.kill9()
        out["killed"] = await poster.refused_within_bound(client)
        t_restart = time.monotonic()
        out["broker_restart_s"] = round(await services.kafka.restart(), 2)
        out["after_restart"] = await poster.until_accepted(client, t_restart)
        out["after_restart"]["first_202_after_broker_ready_s"] = round(
            out["after_restart"]["first_202_after_s"] - out["broker_restart_s"], 2)
    events = await topic_events(stack.settings)
    in_topic = {e["event_id"] for e in events}
    # (event id, occurred_at) of the link's click records: a click written twice (the timed-out first
    # write landed late, the retry wrote it again) is one click, the same id and time
    out["link_clicks_in_topic"] = sorted({(e["event_id"], e["occurred_at"]) for e in events
                                          if e["type"] == "click" and e.get("link_code") == link_code})
    out["acked_events"] = len(poster.acked)
    out["acked_missing_from_topic"] = sorted(poster.acked - in_topic)
    out["refused_events_that_landed_anyway"] = len(poster.refused & in_topic)
    return out


def test_ingest_answers_503_within_bound_while_kafka_is_paused_or_killed(stack: ChaosStack,
                                                                        chaos_services: PrivateServices,
                                                                        tmp_path: Path) -> None:
    setup = SetupClient(stack.api_url, stack.settings.admin_token)
    key = setup.brand("kd-b1")["api_key"]
    setup.creator("kd-c1")
    setup.stream("kd-s1", "kd-b1", "kd-c1")
    setup.campaign("kd-cp1", "kd-b1")
    link = setup.link("kd-c1", "kd-cp1")["link_code"]
    m = asyncio.run(scenario(stack, chaos_services, key, link))
    (tmp_path / "ingest_kafka_down.json").write_text(json.dumps(m, indent=2))
    print(f"\npaused broker: {[a['took_s'] for a in m['paused']]} s to 503; 202 again "
          f"{m['after_sigcont']['first_202_after_s']} s after SIGCONT | killed broker: "
          f"{[a['took_s'] for a in m['killed']]} s to 503; broker back in {m['broker_restart_s']} s, 202 again "
          f"{m['after_restart']['first_202_after_broker_ready_s']} s after it answered | {m['acked_events']} events "
          f"acked, {m['refused_events_that_landed_anyway']} refused ones landed anyway")
    assert m["after_sigcont"]["first_202_after_s"] <= BACK_WITHIN_S, m["after_sigcont"]
    assert m["after_restart"]["first_202_after_broker_ready_s"] <= BACK_WITHIN_S, m["after_restart"]
    assert not m["acked_missing_from_topic"], m["acked_missing_from_topic"][:10]
    # the link opened during the pause: 503 within the bound, then one click for that person
    assert m["redirect_paused"]["status"] == 503 and m["redirect_paused"]["retry_after"], m["redirect_paused"]
    assert m["redirect_paused"]["took_s"] <= SEND_TIMEOUT_S + MARGIN_S, m["redirect_paused"]
    assert m["redirect_retry"]["status"] == 302 and m["redirect_retry"]["ll_click"], m["redirect_retry"]
    assert [c for c, _ in m["link_clicks_in_topic"]] == [m["redirect_retry"]["ll_click"]], m["link_clicks_in_topic"]
