"""Completeness for finance and the right to erasure, with real processes on a fresh topic prefix,
Redis namespace and ClickHouse database (tests/harness.py ``AppStack``): ``python -m api``,
``python -m ingest``, ``python -m streams worker`` and ``python -m consumers clickhouse``.

- erasure: a viewer's views, click and cart go through ingest; ``POST /v1/admin/viewers/erase``
  leaves no raw row and no Redis member with the id, while the stream's counts (``unique_viewers``
  and ``viewers_now`` included) and the reconciliation stay the same;
- watermark: with the pipeline running it is within seconds of now; the stream worker killed with
  SIGKILL, it still advances while nothing arrives, then stops below the time of events and an order
  posted meanwhile, and payouts whose period ends after it are ``409 not_complete`` (forced: created
  and audited); the worker restarted, it passes them, the records are in Redis and ClickHouse, and
  the payout runs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer

from consumers.migrate import run as migrate_run
from liveledger.ch import get_client
from liveledger.settings import DEV_ADMIN_TOKEN, Settings
from liveledger.topics import topic_name
from producers.signing import NATIVE_HEADER, native_signature
from schemas.wire import decode_orders_record
from tests.harness import AppStack, SetupClient

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse]

TIMEOUT_S = 90.0


@dataclass
class Env:
    stack: AppStack
    settings: Settings
    keys: dict[str, str]
    secret: str

    def api(self, method: str, path: str, key: str = "admin", **kw: Any) -> httpx.Response:
        return httpx.request(method, self.stack.api_url + path, headers={"Authorization": f"Bearer {self.keys[key]}"},
                             timeout=60, **kw)

    def watermark(self) -> dict[str, Any]:
        resp = self.api("GET", "/v1/finance/watermark", "finance")
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def complete(self) -> datetime | None:
        value = self.watermark()["complete_up_to"]
        return None if value is None else datetime.fromisoformat(value)

    def wait_complete(self, at: datetime, timeout: float = TIMEOUT_S) -> datetime:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            complete = self.complete()
            if complete is not None and complete >= at:
                return complete
            time.sleep(0.25)
        raise AssertionError(f"watermark did not pass {at}: {self.watermark()}")

    def events(self, events: list[dict[str, Any]]) -> None:
        resp = httpx.post(self.stack.ingest_url + "/v1/events", json={"events": events}, timeout=30,
                          headers={"Authorization": f"Bearer {self.keys['b1']}"})
        assert resp.status_code == 202 and resp.json()["accepted"] == len(events), resp.text

    def order(self, order: dict[str, Any]) -> None:
        body = orjson.dumps(order)
        sig = native_signature(self.secret, int(time.time()), body)
        resp = httpx.post(self.stack.ingest_url + "/v1/webhooks/orders", content=body, timeout=30,
                          headers={NATIVE_HEADER: sig, "Content-Type": "application/json"})
        assert resp.status_code == 202, resp.text

    def live(self) -> dict[str, Any]:
        resp = self.api("GET", "/v1/streams/s1/live", "b1")
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def payout(self, period_end: date, **extra: Any) -> httpx.Response:
        return self.api("POST", "/v1/finance/payouts", "finance", json={"period_end": period_end.isoformat(), **extra})

    def ch_rows(self, sql: str) -> list[Any]:
        client = get_client(self.settings, database=self.settings.clickhouse_database)
        try:
            return list(client.query(sql).result_rows)
        finally:
            client.close()


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def view(viewer: str, action: str = "join") -> dict[str, Any]:
    return {"event_id": f"e-{uuid.uuid4().hex[:12]}", "type": "view", "stream_id": "s1", "viewer_id": viewer,
            "action": action, "occurred_at": iso(datetime.now(UTC))}


def product_event(kind: str, viewer: str, **kw: Any) -> dict[str, Any]:
    return {"event_id": f"e-{uuid.uuid4().hex[:12]}", "type": kind, "stream_id": "s1", "viewer_id": viewer,
            "product_id": "p1", "occurred_at": iso(datetime.now(UTC)), **kw}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    stack = AppStack(log_dir=tmp_path_factory.mktemp("completeness-apps"))
    database = f"{stack.prefix}_db"
    stack.extra_env["LIVELEDGER_CLICKHOUSE_DATABASE"] = database
    settings = Settings(topic_prefix=stack.prefix, clickhouse_database=database)
    stack.create_topics()
    with open(stack.log_dir / "migrate.log", "w") as out:
        migrate_run(settings, out=out)
    try:
        stack.start_pipeline()
        setup = SetupClient(stack.api_url, DEV_ADMIN_TOKEN)
        b1 = setup.brand("b1")
        b2 = setup.brand("b2")
        setup.creator("c1")
        fin = setup.post("/v1/admin/finance-keys", {"name": "finance team"})
        setup.campaign("cmp1", "b1", rate_bps=1000, hold_days=0, min_payout_minor=1)
        setup.stream("s1", "b1", "c1")
        keys = {"admin": DEV_ADMIN_TOKEN, "b1": b1["api_key"], "b2": b2["api_key"], "finance": fin["api_key"]}
        yield Env(stack, settings, keys, b1["webhook_secret"])
    finally:
        stack.stop_all()
        client = get_client(settings, database="default")
        client.command(f"DROP DATABASE IF EXISTS `{database}`")
        client.close()
        r = redis.Redis.from_url(settings.redis_url)
        for k in r.scan_iter(f"{stack.prefix}:*", count=1000):
            r.delete(k)
        r.close()


def redis_values(settings: Settings) -> list[str]:
    """Every key, member, field and value under the test's prefix, as text."""
    r: Any = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    out: list[str] = []
    try:
        for key in r.scan_iter(f"{settings.topic_prefix}:*", count=1000):
            out.append(key)
            kind = r.type(key)
            if kind == "set":
                out += [str(m) for m in r.smembers(key)]
            elif kind == "zset":
                out += [str(m) for m in r.zrange(key, 0, -1)]
            elif kind == "hash":
                for f, v in r.hgetall(key).items():
                    out += [str(f), str(v)]
            elif kind == "list":
                out += [str(v) for v in r.lrange(key, 0, -1)]
            elif kind == "string":
                out.append(str(r.get(key)))
    finally:
        r.close()
    return out


# --- erasure ------------------------------------------------------------------------------------------

def test_erase_viewer_keeps_counts(env: Env) -> None:
    gone, kept = "v-gone.1", "v-kept"
    posted = datetime.now(UTC)
    env.events([view(gone), view(kept), view(gone, "heartbeat"), view(kept, "heartbeat"),
                product_event("click", gone), product_event("add_to_cart", gone)])
    env.wait_complete(posted + timedelta(seconds=1))
    before = env.live()
    assert (before["views"], before["unique_viewers"], before["clicks"], before["add_to_carts"]) == (2, 2, 1, 1)
    assert before["viewers_now"] == 2
    assert env.ch_rows(f"SELECT count() FROM events WHERE viewer_id = '{gone}'")[0][0] == 4
    assert gone in redis_values(env.settings)

    for key, body, status in (("b2", {"brand_id": "b1", "viewer_id": gone}, 403),
                              ("admin", {"brand_id": "nope", "viewer_id": gone}, 404),
                              ("finance", {"brand_id": "b1", "viewer_id": gone}, 403),
                              ("admin", {"brand_id": "b1", "viewer_id": "bad id"}, 422)):
        assert env.api("POST", "/v1/admin/viewers/erase", key, json=body).status_code == status, (key, body)
    t0 = time.monotonic()
    resp = env.api("POST", "/v1/admin/viewers/erase", "b1", json={"brand_id": "b1", "viewer_id": gone})
    took = time.monotonic() - t0
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["complete"] is True and took < 60
    assert out["erased"] == {"events": 4, "dead_letters": 0, "redis_ids": 2, "streams": 1}  # SET + presence ZSET

    assert env.ch_rows(f"SELECT count() FROM events WHERE viewer_id = '{gone}'")[0][0] == 0
    assert env.ch_rows(f"SELECT count() FROM events WHERE viewer_id = '{kept}'")[0][0] == 2
    assert env.ch_rows(f"SELECT count() FROM dead_letters WHERE position(payload, '{gone}') > 0")[0][0] == 0
    assert not [v for v in redis_values(env.settings) if gone in v]
    after = env.live()
    for field in ("views", "unique_viewers", "clicks", "add_to_carts", "viewers_now", "peak_viewers", "orders", "gmv"):
        assert after[field] == before[field], field

    # the audit log names the viewer by the keyed hash only
    audit = env.api("GET", f"/v1/admin/audit?since={iso(posted)}").json()["entries"]
    erasures = [a for a in audit if a["entity"] == "viewer"]
    assert [a["action"] for a in erasures] == ["viewer.erase", "viewer.erased"]
    assert {a["entity_id"] for a in erasures} == {out["subject"]} and erasures[0]["actor"].startswith("brand:b1")
    assert erasures[1]["after"]["events"] == 4 and gone not in orjson.dumps(audit).decode()

    # reconciliation: stored + erased = accepted (the erased events are accounted for)
    rec = env.api("GET", "/v1/finance/reconciliation", "finance").json()
    assert rec["events"]["erased"] == 4
    assert rec["ledger_events"]["erased"] == 4 and rec["ledger_events"]["difference"] == 0, rec["ledger_events"]

    # again: nothing left to erase, the counts still hold
    again = env.api("POST", "/v1/admin/viewers/erase", json={"brand_id": "b1", "viewer_id": gone}).json()
    assert again["erased"]["events"] == 0 and again["erased"]["redis_ids"] == 0
    assert env.live()["unique_viewers"] == before["unique_viewers"]


# --- watermark -----------------------------------------------------------------------------------------

async def produce(settings: Settings, topic: str, partition: int, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, partition=partition)
    finally:
        await producer.stop()


def late_order(received: datetime) -> bytes:
    """An ``ll.orders`` record as ingest writes it, acknowledged just before midnight (to stand for
    an order the stopped worker has not applied when yesterday's payout is asked for)."""
    at = iso(received)
    record = {"v": 1, "event_id": "late-evt-1", "type": "order.created", "brand_id": "b1", "order_id": "late-1",
              "click_id": None, "coupon_code": None, "occurred_at": at, "received_at": at, "currency": "USD",
              "items": [{"sku": "p1", "quantity": 1, "unit_price_minor": 1000}], "discount_minor": 0,
              "tax_minor": 0, "shipping_minor": 0, "source": "native"}
    value = orjson.dumps(record)
    decode_orders_record(value, b"b1")  # a valid record: the worker will apply it
    return value


def test_watermark_stops_with_the_worker_and_gates_payouts(env: Env) -> None:
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    # running: within seconds of now
    posted = datetime.now(UTC)
    env.events([view("v-run")])
    complete = env.wait_complete(posted)
    assert datetime.now(UTC) - complete < timedelta(seconds=5), complete
    assert all(e["basis"] in ("caught_up", "first_unapplied", "mapped") for e in env.watermark()["partitions"])

    env.stack.kill9("worker")
    killed = datetime.now(UTC)
    # nothing arrives: every stage is caught up, so it keeps advancing with the worker down
    env.wait_complete(killed + timedelta(seconds=1), timeout=15)

    first_post = datetime.now(UTC)
    click_id = f"clk-{uuid.uuid4().hex[:8]}"
    env.events([view("v-dead"), product_event("click", "v-dead", event_id=click_id, campaign_id="cmp1")])
    env.order({"event_id": f"o-evt-{uuid.uuid4().hex[:8]}", "type": "order.created", "brand_id": "b1",
               "order_id": "o-dead", "click_id": click_id, "occurred_at": iso(datetime.now(UTC)), "currency": "USD",
               "items": [{"sku": "p1", "quantity": 2, "unit_price_minor": 2500}], "discount_minor": 0,
               "tax_minor": 0, "shipping_minor": 0})
    acked = datetime.now(UTC)
    # it stops: below their time, however long we wait
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        wm = env.watermark()
        assert wm["complete_up_to"] is not None and datetime.fromisoformat(wm["complete_up_to"]) < acked, wm
        time.sleep(0.5)
    behind = [e for e in wm["partitions"] if e["lag"] > 0]
    assert {e["stage"] for e in behind} == {"live", "ledger"}, behind
    assert all(e["basis"] == "first_unapplied" and datetime.fromisoformat(e["complete_up_to"]) >= first_post
               - timedelta(seconds=2) for e in behind), behind
    assert datetime.now(UTC) - datetime.fromisoformat(wm["complete_up_to"]) > timedelta(seconds=4)

    # a period ending after it: 409 not_complete with the watermark in the details
    refused = env.payout(today)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_complete", refused.text
    details = refused.json()["error"]["details"]
    assert details[0]["field"] == "period_end" and datetime.fromisoformat(details[0]["complete_up_to"]) < acked
    assert any(d["field"] == "watermark" and d["stage"] == "ledger" for d in details[1:]), details

    # an order acknowledged just before midnight, not applied yet (its own partition): yesterday is
    # not complete either
    busy = {e["partition"] for e in behind}
    spare = next(p for p in range(env.settings.event_partitions) if p not in busy)
    midnight = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    asyncio.run(produce(env.settings, topic_name(env.settings, "orders"), spare, b"b1",
                        late_order(midnight - timedelta(seconds=1))))
    deadline = time.monotonic() + 10
    while (c := env.complete()) is None or c >= midnight:
        assert time.monotonic() < deadline, env.watermark()
        time.sleep(0.25)
    assert env.payout(yesterday).json()["error"]["code"] == "not_complete"

    env.stack.start("worker", "streams", "worker")
    complete = env.wait_complete(acked)
    assert complete > acked
    # what it vouches for is there: Redis (live views, earnings) and ClickHouse (events, ledger)
    live = env.live()
    assert live["clicks"] >= 2 and live["orders"] == 1, live
    assert env.ch_rows(f"SELECT count() FROM events WHERE event_id = '{click_id}'")[0][0] == 1
    orders = {r[0] for r in env.ch_rows("SELECT order_id FROM orders_ledger FINAL")}
    assert {"o-dead", "late-1"} <= orders, orders
    earnings = env.api("GET", "/v1/creators/c1/earnings", "finance").json()
    assert datetime.fromisoformat(earnings["complete_up_to"]) >= acked
    assert earnings["currencies"][0]["orders"] == 1 and earnings["currencies"][0]["net_minor"] == 5000

    # the payout runs
    created = env.payout(yesterday)
    assert created.status_code == 201, created.text
    # today is not over: still refused; forced, created and audited; then returned as before
    assert env.payout(today).status_code == 409
    since = iso(datetime.now(UTC) - timedelta(seconds=1))
    forced = env.payout(today, force=True)
    assert forced.status_code == 201, forced.text
    audit = env.api("GET", f"/v1/admin/audit?since={since}").json()["entries"]
    assert [a["action"] for a in audit if a["entity"] == "payout"] == ["payout.force"], audit
    again = env.payout(today)
    assert again.status_code == 200 and again.json() == forced.json()
