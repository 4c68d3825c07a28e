"""Live stream JSON + SSE, creator earnings, OpenAPI and the dashboard shells, against a real API
process with Redis and ClickHouse seeded through their documented layouts."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from liveledger.storage import redis_keys as keys
from tests.api.conftest import World

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse]

NOW = datetime.now(UTC)


def days(n: float) -> datetime:
    return NOW - timedelta(days=n)


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"])
    if code:
        assert body["error"]["code"] == code
    return body


@pytest.fixture(scope="module")
def seeded(world: World) -> World:
    p = world.prefix
    now_ms = int(time.time() * 1000)
    world.live_counts("s1", views=200, clicks=50, add_to_carts=20, orders=5, peak_viewers=42,
                      updated_at=now_ms, gmv__USD=123450)
    q = world.stream_part("s1")  # the hash slot of s1's brand
    world.redis.sadd(keys.stream_viewers(p, q, "s1"), *[f"v{i}" for i in range(150)])
    world.redis.zadd(keys.stream_now(p, q, "s1"), {f"v{i}": now_ms - 1000 for i in range(30)}
                     | {"old": now_ms - 120_000})
    world.redis.hset(keys.stream_products(p, q, "s1"), mapping={"clicks|p1": 30, "clicks|p2": 20, "orders|p1": 3,
                                                               "orders|p3": 2, "revenue|p1|USD": 5997,
                                                               "revenue|p3|EUR": 1000})
    # Ledger: o1 approved, o2 pending, o3 (coupon) partly refunded, o4 another creator, o5 unattributed.
    world.order("b1", "o1", occurred_at=days(40), gross=100000, creator="c1", campaign="cmp1", stream="s1",
                ingested_at=days(35))
    world.order("b1", "o2", occurred_at=days(2), gross=50000, creator="c1", campaign="cmp1", stream="s1",
                ingested_at=days(2))
    world.order("b1", "o3", occurred_at=days(40), gross=20000, creator="c1", campaign="cmp1", via="coupon",
                ingested_at=days(35), link="L1")
    world.order("b1", "o3", occurred_at=days(40), gross=20000, refunded=5000, creator="c1", campaign="cmp1",
                via="coupon", ingested_at=days(34), link="L1")
    world.order("b2", "o4", occurred_at=days(40), gross=30000, creator="c2", campaign="cmp2", stream="s2",
                ingested_at=days(35))
    world.order("b1", "o5", occurred_at=days(10), gross=7000, ingested_at=days(10))
    return world


# --- live -------------------------------------------------------------------------------------------

def test_live_happy_path(seeded: World) -> None:
    resp = seeded.get("/v1/streams/s1/live", "b1")
    assert resp.status_code == 200, resp.text
    live = resp.json()
    assert live["stream_id"] == "s1"
    assert live["viewers_now"] == 30  # "old" last seen 120 s ago does not count
    assert live["peak_viewers"] == 42
    assert (live["views"], live["unique_viewers"], live["clicks"], live["add_to_carts"], live["orders"]) == (
        200, 150, 50, 20, 5)
    assert live["gmv"] == [{"currency": "USD", "net_minor": 123450}]
    assert live["ctr"] == 0.25 and live["cvr"] == 0.1
    assert live["top_products"] == [
        {"product_id": "p1", "clicks": 30, "orders": 3, "line_revenue": [{"currency": "USD", "amount_minor": 5997}]},
        {"product_id": "p2", "clicks": 20, "orders": 0, "line_revenue": []},
        {"product_id": "p3", "clicks": 0, "orders": 2, "line_revenue": [{"currency": "EUR", "amount_minor": 1000}]}]
    assert live["updated_at"].endswith("Z")


def test_live_stream_without_events_is_zero(seeded: World) -> None:
    live = seeded.get("/v1/streams/s2/live", "b2").json()
    assert live["views"] == 0 and live["gmv"] == [] and live["ctr"] == 0.0 and live["updated_at"] is None


@pytest.mark.parametrize(("key", "status"), [("admin", 200), ("finance", 200), ("b1", 200), ("b2", 404),
                                             ("c1", 403), ("none", 401)])
def test_live_tenancy(seeded: World, key: str, status: int) -> None:
    resp = seeded.get("/v1/streams/s1/live", key)
    assert resp.status_code == status, resp.text
    if status != 200:
        assert_error(resp, status)


def test_live_unknown_stream_is_404(seeded: World) -> None:
    assert_error(seeded.get("/v1/streams/nope/live", "admin"), 404, "not_found")
    # another brand's stream and an unknown one look the same to a brand key
    assert seeded.get("/v1/streams/nope/live", "b2").json()["error"]["message"].startswith("no stream")


def test_live_series(seeded: World) -> None:
    resp = seeded.get("/v1/streams/s1/live/series", "b1")
    assert resp.status_code == 200
    assert resp.json()["stream_id"] == "s1"
    assert_error(seeded.get("/v1/streams/s1/live/series?since=-1", "b1"), 422, "validation_failed")
    assert seeded.get("/v1/streams/s1/live/series", "b2").status_code == 404


class SseReader:
    """Reads SSE frames from a streaming response in a thread."""

    def __init__(self, url: str) -> None:
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self.comments: list[str] = []
        self.status = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(url,), daemon=True)
        self._thread.start()

    def _run(self, url: str) -> None:
        with httpx.stream("GET", url, timeout=httpx.Timeout(5, read=30)) as resp:
            self.status = resp.status_code
            if resp.status_code != 200:
                return
            event = ""
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "live":
                    self.frames.append((time.monotonic(), orjson.loads(line[5:])))

    def wait(self, pred: Any, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, frame in self.frames:
                if pred(frame):
                    return t
            time.sleep(0.01)
        return None

    def close(self) -> None:
        self._stop.set()


def test_sse_pushes_initial_state_and_changes(seeded: World) -> None:
    url = f"{seeded.stack.api_url}/v1/streams/s1/live/events?key={seeded.keys['b1']}"
    reader = SseReader(url)
    try:
        assert reader.wait(lambda f: f["clicks"] == 50, 5) is not None
        seeded.live_counts("s1", clicks=51)
        t0 = time.monotonic()
        seeded.publish("s1")
        t1 = reader.wait(lambda f: f["clicks"] == 51, 2)
        assert t1 is not None, "change not pushed"
        assert t1 - t0 < 1.0
    finally:
        reader.close()
        seeded.live_counts("s1", clicks=50)


@pytest.mark.parametrize(("key", "status"), [("b2", 404), ("c1", 403), ("bogus", 401)])
def test_sse_tenancy(seeded: World, key: str, status: int) -> None:
    k = seeded.keys.get(key, key)
    resp = httpx.get(f"{seeded.stack.api_url}/v1/streams/s1/live/events?key={k}", timeout=10)
    assert_error(resp, status)


def test_sse_bearer_header_works(seeded: World) -> None:
    headers = {"Authorization": f"Bearer {seeded.keys['finance']}"}
    with httpx.stream("GET", f"{seeded.stack.api_url}/v1/streams/s1/live/events", headers=headers,
                      timeout=10) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data:"):
                assert orjson.loads(line[5:])["stream_id"] == "s1"
                break


@pytest.mark.slow
def test_sse_keepalive_comment(seeded: World) -> None:
    reader = SseReader(f"{seeded.stack.api_url}/v1/streams/s2/live/events?key={seeded.keys['b2']}")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not reader.comments:
            time.sleep(0.2)
        assert reader.comments and reader.comments[0].startswith(": keepalive")
    finally:
        reader.close()


# --- earnings ---------------------------------------------------------------------------------------

def test_earnings_happy_path(seeded: World) -> None:
    resp = seeded.get("/v1/creators/c1/earnings", "c1")
    assert resp.status_code == 200, resp.text
    e = resp.json()
    assert e["creator_id"] == "c1"
    assert e["currencies"] == [{"currency": "USD", "orders": 3, "net_minor": 165000,
                                "commission": {"pending": 5000, "approved": 11500, "paid": 0, "reversed": 500}}]
    assert e["by_campaign"] == [{"campaign_id": "cmp1", **e["currencies"][0]}]
    assert e["by_stream"] == [{"stream_id": "s1", "currency": "USD", "orders": 2, "net_minor": 150000,
                               "commission": {"pending": 5000, "approved": 10000, "paid": 0, "reversed": 0}}]
    # by the orders' day, for the earnings-over-time chart
    assert [(r["day"], r["orders"], r["net_minor"]) for r in e["by_day"]] == [
        (days(40).date().isoformat(), 2, 115000), (days(2).date().isoformat(), 1, 50000)]
    # the coupon order counts under its coupon's link
    assert e["by_link"] == [{"link_code": "L1", "currency": "USD", "orders": 1, "net_minor": 15000,
                             "commission": {"pending": 0, "approved": 1500, "paid": 0, "reversed": 500}}]


def test_earnings_as_of_and_window(seeded: World) -> None:
    later = (NOW + timedelta(days=60)).strftime("%Y-%m-%dT%H:%M:%SZ")
    e = seeded.get(f"/v1/creators/c1/earnings?as_of={later}", "finance").json()
    assert e["currencies"][0]["commission"] == {"pending": 0, "approved": 16500, "paid": 0, "reversed": 500}
    frm = days(5).date().isoformat()
    e = seeded.get(f"/v1/creators/c1/earnings?from={frm}", "admin").json()
    assert e["currencies"][0]["orders"] == 1 and e["currencies"][0]["net_minor"] == 50000
    to = days(5).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    e = seeded.get("/v1/creators/c1/earnings", "admin", params={"to": to}).json()
    assert e["currencies"][0]["orders"] == 2
    e = seeded.get("/v1/creators/c1/earnings?from=2000-01-01&to=2000-01-02", "admin").json()
    assert e["currencies"] == [] and e["by_campaign"] == [] and e["by_stream"] == []


@pytest.mark.parametrize(("key", "status"), [("c1", 200), ("admin", 200), ("finance", 200), ("c2", 403),
                                             ("b1", 403), ("none", 401)])
def test_earnings_tenancy(seeded: World, key: str, status: int) -> None:
    resp = seeded.get("/v1/creators/c1/earnings", key)
    assert resp.status_code == status, resp.text


def test_earnings_unknown_creator(seeded: World) -> None:
    assert_error(seeded.get("/v1/creators/nobody/earnings", "finance"), 404, "not_found")
    assert_error(seeded.get("/v1/creators/nobody/earnings", "c1"), 403, "forbidden")


@pytest.mark.parametrize("query", ["from=yesterday", "to=2026-13-01", "as_of=2026-11-25T20:00:00",
                                   "from=2026-11-02&to=2026-11-01", "from=2026-11-01&to=2026-11-01"])
def test_earnings_bad_params(seeded: World, query: str) -> None:
    body = assert_error(seeded.get(f"/v1/creators/c1/earnings?{query}", "c1"), 422, "validation_failed")
    assert body["error"]["details"]


# --- OpenAPI and pages ------------------------------------------------------------------------------

def test_openapi_lists_every_read_endpoint(seeded: World) -> None:
    paths = httpx.get(seeded.stack.api_url + "/openapi.json").json()["paths"]
    for path in ["/v1/streams/{stream_id}/live", "/v1/streams/{stream_id}/live/events",
                 "/v1/streams/{stream_id}/live/series", "/v1/creators/{creator_id}/earnings",
                 "/v1/finance/payouts", "/v1/finance/payouts/{payout_id}", "/v1/finance/payouts/{payout_id}.csv",
                 "/v1/finance/reconciliation", "/v1/finance/reconciliation/orders", "/v1/admin/brands"]:
        assert path in paths, path
    assert "text/csv" in paths["/v1/finance/reconciliation/orders"]["post"]["requestBody"]["content"]


def test_pages_are_static_shells(seeded: World) -> None:
    base = seeded.stack.api_url
    for path in ["/dashboard", "/dashboard/streams/s1", "/dashboard/creators/c1", "/dashboard/finance"]:
        resp = httpx.get(base + path)
        assert resp.status_code == 200 and "text/html" in resp.headers["content-type"], path
        assert "/dashboard/static/app.js" in resp.text
        assert seeded.keys["b1"] not in resp.text
    assert httpx.get(base + "/dashboard/streams/%3Cscript%3E").text.count("<script>") == 0
    assert httpx.get(base + "/dashboard/static/app.js").status_code == 200
    assert httpx.get(base + "/dashboard/static/app.css").status_code == 200
    assert httpx.get(base + "/dashboard/static/..%2Fpages.py").status_code == 404
    assert httpx.get(base + "/dashboard/static/nope.js").status_code == 404
