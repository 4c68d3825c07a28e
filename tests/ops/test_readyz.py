"""``/readyz`` names the dependency that is down (contract "Operating it"; docs/operations.md).

The shared Kafka, Redis and ClickHouse are never stopped here (other test runs use them): each
case starts an *extra* process whose address of one dependency points at a closed port
(``tests.harness.free_port``), or at a port that accepts connections and never answers (what a
paused broker looks like), and its ``/readyz`` must be ``503`` naming exactly that dependency,
within about the 1 s probe timeout, while the normally configured processes answer ``200``.
A process whose Kafka is unreachable still starts: it answers ``/readyz`` (503 kafka) and
``/metrics``, every other route is ``503 starting``, and it becomes ready once Kafka answers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from liveledger.settings import DEV_ADMIN_TOKEN, Settings
from tests.harness import AppStack, SetupClient, free_port
from tests.ops.cleanup import cleanup

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse, pytest.mark.slow]

PROBE_BUDGET_S = 2.5  # 1 s per probe (concurrent) plus HTTP and interpreter slack on a busy host


class Silent:
    """A listening socket that never accepts: connects complete (kernel backlog), nothing answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


class Forwarder:
    """A TCP port that is closed until :meth:`open`, then forwards every connection to ``target``."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self.server: socket.socket | None = None
        self._stop = threading.Event()

    def open(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        server.settimeout(0.2)
        self.server = server
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self.server is not None
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.close()


@dataclass
class Ready:
    stack: AppStack
    urls: dict[str, str]  # process name -> base URL of its /readyz
    brand: dict[str, Any]
    stream_id: str
    kafka_proxy: Forwarder

    def post_view(self, name: str) -> httpx.Response:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        event = {"event_id": f"rv-{uuid.uuid4().hex[:8]}", "type": "view", "stream_id": self.stream_id,
                 "viewer_id": "v", "action": "join", "occurred_at": now}
        return httpx.post(f"{self.urls[name]}/v1/events", json={"events": [event]}, timeout=10,
                          headers={"Authorization": f"Bearer {self.brand['api_key']}"})


def _kafka_target() -> tuple[str, int]:
    host, _, port = Settings().kafka_bootstrap.split(",")[0].rpartition(":")
    return host or "127.0.0.1", int(port)


@pytest.fixture(scope="module")
def ready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ready]:
    stack = AppStack(log_dir=Path(tmp_path_factory.mktemp("ops-readyz")))
    database = f"{stack.prefix}_db"  # a database of its own: the API's audit table is migrated into it
    stack.extra_env["LIVELEDGER_CLICKHOUSE_DATABASE"] = database
    stack.create_topics()
    closed = {"redis": f"redis://127.0.0.1:{free_port()}/0", "clickhouse": f"http://127.0.0.1:{free_port()}",
              "kafka": f"127.0.0.1:{free_port()}"}
    silent = Silent()
    proxy = Forwarder(free_port(), _kafka_target())
    env_of = {"redis": "LIVELEDGER_REDIS_URL", "clickhouse": "CLICKHOUSE_URL", "kafka": "LIVELEDGER_KAFKA_BOOTSTRAP"}
    urls: dict[str, str] = {}
    try:
        stack.start_api()
        stack.start_ingest()
        urls.update(api=stack.api_url, ingest=stack.ingest_url)
        run = uuid.uuid4().hex[:6]
        setup = SetupClient(stack.api_url, DEV_ADMIN_TOKEN)
        brand = setup.brand(f"rb{run}")
        setup.creator(f"rc{run}")
        setup.stream(f"rs{run}", brand["brand_id"], f"rc{run}")
        extra = {
            # ingest uses Kafka and Redis: a closed ClickHouse must not matter to it
            "ingest-no-redis": ("ingest", {env_of["redis"]: closed["redis"],
                                           env_of["clickhouse"]: closed["clickhouse"]}),
            "ingest-no-kafka": ("ingest", {env_of["kafka"]: closed["kafka"]}),
            "ingest-kafka-later": ("ingest", {env_of["kafka"]: f"127.0.0.1:{proxy.port}"}),
            "api-no-redis": ("api", {env_of["redis"]: closed["redis"]}),
            "api-no-clickhouse": ("api", {env_of["clickhouse"]: closed["clickhouse"]}),
            "api-kafka-silent": ("api", {env_of["kafka"]: f"127.0.0.1:{silent.port}"}),
        }
        for name, (module, env) in extra.items():
            port = free_port()
            port_env = "LIVELEDGER_INGEST_PORT" if module == "ingest" else "LIVELEDGER_API_PORT"
            stack.start(name, module, env={port_env: str(port), **env})
            urls[name] = f"http://127.0.0.1:{port}"
        sink_port = free_port()
        stack.start("sink-no-clickhouse", "consumers", "clickhouse",
                    env={env_of["clickhouse"]: closed["clickhouse"], "LIVELEDGER_METRICS_PORT": str(sink_port)})
        urls["sink-no-clickhouse"] = f"http://127.0.0.1:{sink_port}"
        for name in urls:
            wait_answering(stack, name, urls[name])
        yield Ready(stack, urls, brand, f"rs{run}", proxy)
    finally:
        stack.stop_all()
        silent.close()
        proxy.close()
        cleanup(stack.prefix, database)


def wait_answering(stack: AppStack, name: str, url: str, timeout: float = 60.0) -> None:
    """Until ``/readyz`` answers at all (any status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = stack.procs.get(name)
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{name} exited with {proc.returncode}:\n{stack.tail(name)}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{url}/readyz", timeout=5)
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} /readyz did not answer within {timeout}s:\n{stack.tail(name)}")


def readyz(url: str) -> tuple[httpx.Response, float]:
    t0 = time.monotonic()
    resp = httpx.get(f"{url}/readyz", timeout=10)
    return resp, time.monotonic() - t0


def down_fields(resp: httpx.Response) -> list[str]:
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == "not_ready", body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return [d["field"] for d in body["error"]["details"]]


@pytest.mark.parametrize("name", ["ingest", "api"])
def test_normal_processes_are_ready(ready: Ready, name: str) -> None:
    resp, took = readyz(ready.urls[name])
    assert (resp.status_code, resp.json()) == (200, {"status": "ready"})
    assert took < PROBE_BUDGET_S
    assert httpx.get(f"{ready.urls[name]}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize(("name", "dependency"), [
    ("ingest-no-redis", "redis"),
    ("ingest-no-kafka", "kafka"),
    ("api-no-redis", "redis"),
    ("api-no-clickhouse", "clickhouse"),
    ("api-kafka-silent", "kafka"),
    ("sink-no-clickhouse", "clickhouse"),
])
def test_readyz_is_503_naming_exactly_the_dependency_that_is_down(ready: Ready, name: str, dependency: str) -> None:
    resp, took = readyz(ready.urls[name])
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert down_fields(resp) == [dependency]
    assert dependency in resp.json()["error"]["message"]
    assert took < PROBE_BUDGET_S, f"readyz took {took:.2f}s"


def test_a_silent_broker_is_reported_as_no_answer_in_time(ready: Ready) -> None:
    resp, took = readyz(ready.urls["api-kafka-silent"])
    assert resp.json()["error"]["details"] == [{"field": "kafka", "reason": "no answer in time"}]
    assert took < PROBE_BUDGET_S


def test_ingest_without_kafka_serves_only_readyz_and_metrics(ready: Ready) -> None:
    url = ready.urls["ingest-no-kafka"]
    health = httpx.get(f"{url}/healthz", timeout=5)
    assert health.status_code == 503 and health.json()["error"]["code"] == "starting"
    post = httpx.post(f"{url}/v1/events", json={"events": []}, timeout=5,
                      headers={"Authorization": f"Bearer {ready.brand['api_key']}"})
    assert post.status_code == 503 and post.json()["error"]["code"] == "starting"
    assert post.headers.get("Retry-After") == "2"
    assert httpx.get(f"{url}/metrics", timeout=5).status_code == 200


def test_api_without_kafka_serves_only_readyz_and_metrics(ready: Ready) -> None:
    url = ready.urls["api-kafka-silent"]
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 503
    resp = httpx.get(f"{url}/v1/streams/s1/live", timeout=5, headers={"Authorization": f"Bearer {DEV_ADMIN_TOKEN}"})
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "starting"
    assert httpx.get(f"{url}/metrics", timeout=5).status_code == 200


def test_ingest_without_redis_still_accepts_events(ready: Ready) -> None:
    """Redis down is not-ready (503 redis), but ingest keeps its fail-open behaviour: 202."""
    assert httpx.get(f"{ready.urls['ingest-no-redis']}/healthz", timeout=5).status_code == 200
    resp = ready.post_view("ingest-no-redis")
    assert resp.status_code == 202 and resp.json()["accepted"] == 1, resp.text


def test_ingest_started_without_kafka_becomes_ready_when_kafka_answers(ready: Ready) -> None:
    url = ready.urls["ingest-kafka-later"]
    resp, _ = readyz(url)
    assert resp.status_code == 503 and down_fields(resp) == ["kafka"]
    ready.kafka_proxy.open()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        resp, _ = readyz(url)
        if resp.status_code == 200:
            break
        time.sleep(0.3)
    assert (resp.status_code, resp.json()) == (200, {"status": "ready"}), resp.text
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    post = ready.post_view("ingest-kafka-later")
    assert post.status_code == 202 and post.json()["accepted"] == 1, post.text
