"""Every process serves Prometheus metrics (contract "Operating it"; docs/operations.md).

Real processes on a fresh topic prefix, Redis namespace and ClickHouse database (tests/harness.py):
ingest and the API (``/metrics`` on their own port), one stream worker and the ClickHouse sink (on
``LIVELEDGER_METRICS_PORT``). Each endpoint is parsed with prometheus-client's own parser; the
contract's families must exist, and move by exactly what the test sent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from liveledger.settings import DEV_ADMIN_TOKEN
from liveledger.topics import topic_name
from tests.harness import BROWSER_UA, AppStack, SetupClient, free_port
from tests.ops.cleanup import cleanup

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse, pytest.mark.slow]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

# family names as the parser reports them (counters without _total; text format 0.0.4 has no info type)
EVERY_PROCESS = {"liveledger_process_info", "liveledger_watermark_seconds", "process_cpu_seconds"}
HTTP = {"liveledger_http_requests", "liveledger_http_request_duration_seconds"}
CONSUMER = {"liveledger_consumer_lag_records", "liveledger_flush_size", "liveledger_flush_duration_seconds",
            "liveledger_events_dead_lettered"}
FAMILIES = {
    "ingest": EVERY_PROCESS | HTTP | {"liveledger_events_accepted", "liveledger_events_rejected",
                                      "liveledger_redirects"},
    "api": EVERY_PROCESS | HTTP,
    "streams": EVERY_PROCESS | CONSUMER,
    "sink": EVERY_PROCESS | CONSUMER | {"liveledger_sink_rows", "liveledger_sink_insert_errors"},
}


@dataclass
class Ops:
    stack: AppStack
    setup: SetupClient
    brand: dict[str, Any]
    link: dict[str, Any]
    urls: dict[str, str]  # process -> its /metrics URL

    def scrape(self, process: str) -> tuple[set[str], Samples]:
        resp = httpx.get(self.urls[process], timeout=10)
        assert resp.status_code == 200, (process, resp.status_code, resp.text[:200])
        assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
        families, samples = set(), {}
        for family in text_string_to_metric_families(resp.text):
            families.add(family.name)
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        return families, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def matching(samples: Samples, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
    want = set(labels.items())
    return {lbl: v for (n, lbl), v in samples.items() if n == name and want <= lbl}


def eventually(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout}s: {what} (last: {last!r})")


@pytest.fixture(scope="module")
def ops(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    stack = AppStack(log_dir=Path(tmp_path_factory.mktemp("ops-metrics")))
    database = f"{stack.prefix}_db"
    stack.extra_env["LIVELEDGER_CLICKHOUSE_DATABASE"] = database
    stack.create_topics()
    worker_port, sink_port = free_port(), free_port()
    try:
        stack.start_api()  # migrates the database
        stack.start_ingest()
        stack.start("streams", "streams", "--datadir", str(stack.log_dir / "faust"), "worker",
                    env={"LIVELEDGER_METRICS_PORT": str(worker_port)})
        stack.start("sink", "consumers", "clickhouse", env={"LIVELEDGER_METRICS_PORT": str(sink_port)})
        urls = {"ingest": f"{stack.ingest_url}/metrics", "api": f"{stack.api_url}/metrics",
                "streams": f"http://127.0.0.1:{worker_port}/metrics", "sink": f"http://127.0.0.1:{sink_port}/metrics"}
        for name in ("streams", "sink"):
            stack.wait_healthy(name, urls[name].replace("/metrics", "/healthz"))
        setup = SetupClient(stack.api_url, DEV_ADMIN_TOKEN)
        brand = setup.brand("mb1")
        setup.creator("mc1")
        setup.campaign("mcmp1", "mb1")
        setup.stream("ms1", "mb1", "mc1")
        link = setup.link("mc1", "mcmp1", stream_id="ms1", product_id="p1")
        yield Ops(stack, setup, brand, link, urls)
    finally:
        stack.stop_all()
        cleanup(stack.prefix, database)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def post_views(ops: Ops, n: int, bad: int = 0) -> httpx.Response:
    run = uuid.uuid4().hex[:8]
    events: list[dict[str, Any]] = [
        {"event_id": f"mv-{run}-{i}", "type": "view", "stream_id": "ms1", "viewer_id": f"v{i}", "action": "join",
         "occurred_at": now_iso()} for i in range(n)]
    events += [{"event_id": f"mbad-{run}-{i}", "type": "view", "stream_id": "ms1", "viewer_id": "v", "action": "dance",
                "occurred_at": now_iso()} for i in range(bad)]
    return httpx.post(f"{ops.stack.ingest_url}/v1/events", json={"events": events}, timeout=10,
                      headers={"Authorization": f"Bearer {ops.brand['api_key']}"})


# --- every process ------------------------------------------------------------------------------

@pytest.mark.parametrize("process", ["ingest", "api", "streams", "sink"])
def test_every_process_serves_the_contract_families(ops: Ops, process: str) -> None:
    families, samples = ops.scrape(process)
    missing = FAMILIES[process] - families
    assert not missing, f"{process} /metrics lacks {sorted(missing)}"
    assert matching(samples, "liveledger_process_info", process=process), "process info names the role"


# --- ingest ---------------------------------------------------------------------------------------

def test_events_accepted_and_rejected_move_by_what_was_posted(ops: Ops) -> None:
    _, before = ops.scrape("ingest")
    resp = post_views(ops, 7, bad=2)
    assert resp.status_code == 202 and resp.json()["accepted"] == 7, resp.text
    _, after = ops.scrape("ingest")
    for name, n in (("liveledger_events_accepted_total", 7), ("liveledger_events_rejected_total", 2)):
        assert value(after, name, source="events-api") - value(before, name, source="events-api") == n, name
    route = {"route": "/v1/events", "method": "POST", "status": "202"}
    assert value(after, "liveledger_http_requests_total", **route) \
        - value(before, "liveledger_http_requests_total", **route) == 1
    hist = {"route": "/v1/events", "method": "POST"}
    assert value(after, "liveledger_http_request_duration_seconds_count", **hist) \
        > value(before, "liveledger_http_request_duration_seconds_count", **hist)


def test_redirects_are_labelled_by_route_template_not_path(ops: Ops) -> None:
    code = ops.link["link_code"]
    _, before = ops.scrape("ingest")
    resp = httpx.get(f"{ops.stack.ingest_url}/l/{code}", headers={"User-Agent": BROWSER_UA})
    assert resp.status_code == 302
    bot = httpx.get(f"{ops.stack.ingest_url}/l/{code}", headers={"User-Agent": "Googlebot/2.1"})
    assert bot.status_code == 302
    for _ in range(3):  # three unknown codes: one label set, never the raw paths
        assert httpx.get(f"{ops.stack.ingest_url}/l/nope-{uuid.uuid4().hex[:6]}").status_code == 404
    assert httpx.get(f"{ops.stack.ingest_url}/no/such/{uuid.uuid4().hex[:6]}").status_code == 404
    _, after = ops.scrape("ingest")

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("liveledger_http_requests_total", route="/l/{code}", method="GET", status="302") == 2
    assert delta("liveledger_http_requests_total", route="/l/{code}", method="GET", status="404") == 3
    assert delta("liveledger_http_requests_total", route="<unmatched>", method="GET", status="404") == 1
    assert delta("liveledger_events_accepted_total", source="redirect") == 1
    assert delta("liveledger_redirects_total", outcome="click") == 1
    assert delta("liveledger_redirects_total", outcome="bot") == 1
    routes = {dict(lbl)["route"] for lbl in matching(after, "liveledger_http_requests_total")}
    assert not [r for r in routes if "nope" in r or "/no/such" in r or code in r], routes


# --- API -----------------------------------------------------------------------------------------

def test_api_requests_by_route_template(ops: Ops) -> None:
    _, before = ops.scrape("api")
    headers = {"Authorization": f"Bearer {ops.brand['api_key']}"}
    assert httpx.get(f"{ops.stack.api_url}/v1/streams/ms1/live", headers=headers, timeout=10).status_code == 200
    assert httpx.get(f"{ops.stack.api_url}/v1/streams/nope-{uuid.uuid4().hex[:6]}/live", headers=headers,
                     timeout=10).status_code == 404
    # answered by the body guard before routing: still the route's template
    big = httpx.post(f"{ops.stack.api_url}/v1/streams", content=b"x" * (1024 * 1024 + 10), headers=headers,
                     timeout=10)
    assert big.status_code == 413
    _, after = ops.scrape("api")

    def delta(**labels: str) -> float:
        return value(after, "liveledger_http_requests_total", **labels) \
            - value(before, "liveledger_http_requests_total", **labels)

    live = "/v1/streams/{stream_id}/live"
    assert delta(route=live, method="GET", status="200") == 1
    assert delta(route=live, method="GET", status="404") == 1
    assert delta(route="/v1/streams", method="POST", status="413") == 1
    assert value(after, "liveledger_http_request_duration_seconds_count", route=live, method="GET") >= 2
    routes = {dict(lbl)["route"] for lbl in matching(after, "liveledger_http_requests_total")}
    assert all(r.startswith("/") or r == "<unmatched>" for r in routes) and not [r for r in routes if "nope" in r]


# --- stream worker and sink ------------------------------------------------------------------------

def test_worker_flushes_lag_and_dead_letters(ops: Ops) -> None:
    _, before = ops.scrape("streams")
    assert post_views(ops, 5).status_code == 202
    settings = ops.stack.settings

    async def produce_garbage() -> None:  # a record the live path must dead-letter
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic_name(settings, "events"), b"not json", key=b"mb1")
        finally:
            await producer.stop()

    asyncio.run(produce_garbage())

    def moved() -> Samples | None:
        _, now = ops.scrape("streams")
        dead = sum(matching(now, "liveledger_events_dead_lettered_total", consumer="live").values())
        dead_before = sum(matching(before, "liveledger_events_dead_lettered_total", consumer="live").values())
        events = value(now, "liveledger_flush_size_sum", path="live") - value(before, "liveledger_flush_size_sum",
                                                                               path="live")
        return now if dead - dead_before >= 1 and events >= 5 else None

    after = eventually(moved, what="live flushes of the 5 views and one dead letter")
    assert value(after, "liveledger_flush_duration_seconds_count", path="live") \
        > value(before, "liveledger_flush_duration_seconds_count", path="live")
    assert value(after, "liveledger_flush_size_count", path="ledger") > 0  # the ledger path read the records

    events_topic = topic_name(settings, "events")

    def caught_up() -> dict[Any, float] | None:
        _, now = ops.scrape("streams")
        lag = matching(now, "liveledger_consumer_lag_records", consumer="live", topic=events_topic)
        return lag if len(lag) == settings.event_partitions and not any(lag.values()) else None

    eventually(caught_up, what="live lag 0 on every partition")
    _, now = ops.scrape("streams")
    ledger = matching(now, "liveledger_consumer_lag_records", consumer="ledger")
    assert {dict(lbl)["topic"] for lbl in ledger} == {events_topic, topic_name(settings, "orders")}


def test_sink_flushes_rows_and_reports_lag(ops: Ops) -> None:
    _, before = ops.scrape("sink")
    assert post_views(ops, 4).status_code == 202

    def moved() -> Samples | None:
        _, now = ops.scrape("sink")
        rows = value(now, "liveledger_sink_rows_total", table="events") - value(
            before, "liveledger_sink_rows_total", table="events")
        return now if rows >= 4 else None

    after = eventually(moved, what="4 event rows inserted")
    assert value(after, "liveledger_flush_size_count", path="clickhouse") \
        > value(before, "liveledger_flush_size_count", path="clickhouse")
    assert value(after, "liveledger_flush_duration_seconds_sum", path="clickhouse") > 0
    settings = ops.stack.settings
    lag = matching(after, "liveledger_consumer_lag_records", consumer="clickhouse")
    topics = {dict(lbl)["topic"] for lbl in lag}
    assert topic_name(settings, "events") in topics, lag


@pytest.mark.parametrize("process", ["streams", "sink"])
def test_worker_and_sink_ports_answer_healthz_and_readyz(ops: Ops, process: str) -> None:
    base = ops.urls[process].removesuffix("/metrics")
    assert httpx.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"
    resp = httpx.get(f"{base}/readyz", timeout=5)
    assert (resp.status_code, resp.json()) == (200, {"status": "ready"})


def test_api_exports_the_finance_watermark(ops: Ops) -> None:
    """The API's watermark reader (about once a second) sets liveledger_watermark_seconds: within
    a minute of now once the pipeline is caught up (0 until its first complete reading)."""

    def set_recently() -> Samples | None:
        _, now = ops.scrape("api")
        return now if value(now, "liveledger_watermark_seconds") > time.time() - 60 else None

    after = eventually(set_recently, what="the watermark gauge within a minute of now")
    assert value(after, "liveledger_watermark_seconds") <= time.time() + 5
