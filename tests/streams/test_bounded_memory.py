"""Bounded memory (issue 12) against a real Redis: the TTLs of docs/stream-processing.md "What expires,
when", orders refundable after their clicks expired, the lazy ledger state after a restart, assignment
reading no state, and exactly-once under replays. The ledger path runs without Kafka: its records come
from an in-memory log (the gate's re-reader reads it too) and each step's outbox is cleared directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition

from liveledger.settings import Settings
from liveledger.setup_state import SetupReplica
from liveledger.storage import redis_keys as keys
from liveledger.storage.retention import DEFAULT, Retention
from liveledger.topics import topic_name
from streams.gate import OffsetGate
from streams.ledger_path import LedgerPath, parse_outbox_entry
from streams.live_path import LivePath
from streams.redis_state import LedgerStore, LiveStore, Notifier
from tests.streams import kit
from tests.streams.kit import Msg

pytestmark = pytest.mark.redis

DAY_MS = 24 * 3600 * 1000
WINDOW_DAYS = 7  # the campaign's attribution window



class Env:
    def __init__(self, settings: Settings, client: aioredis.Redis) -> None:
        self.settings = settings
        self.p = settings.topic_prefix
        self.client = client
        self.replica = SetupReplica(settings)  # folded by hand below: no setup topic needed
        self.replica.state.apply(*kit.setup_record("campaign", "cmp", {
            "campaign_id": "cmp", "brand_id": "b1", "rate_bps": 1000, "flat_minor": 0,
            "attribution_window_days": WINDOW_DAYS, "hold_days": 30, "min_payout_minor": 5000}))
        assert "cmp" in self.replica.state.campaigns
        self.log: dict[str, list[Msg]] = {"events": [], "orders": []}
        self.ts = 1

    def add(self, short: str, value: bytes) -> Msg:
        topic = topic_name(self.settings, short)
        msgs = self.log[short]
        self.ts += 1
        m = Msg(TopicPartition(topic, 0), len(msgs), b"b1", value, self.ts)
        msgs.append(m)
        return m

    async def refill(self, tp: Any, start: int, end: int) -> list[Msg]:
        short = "events" if tp.topic.endswith("events") else "orders"
        return [m for m in self.log[short] if start <= m.offset < end]

    def ledger(self, retention: Retention = DEFAULT) -> LedgerPath:
        """A fresh ledger path, as a restarted worker has it (nothing in memory)."""
        store = LedgerStore(self.client, self.p, retention)
        return LedgerPath(self.settings, store, self.replica, Notifier(self.client, self.p),
                          cast(AIOKafkaProducer, None), OffsetGate(self.refill))

    async def step(self, path: LedgerPath, msgs: list[Msg]) -> list[dict[str, Any]] | None:
        """One step of partition 0 → the ledger facts it produced (None: nothing admitted)."""
        state = path.parts.get(0) or await path.load(0)
        by_tp: dict[Any, list[Msg]] = {}
        for m in msgs:
            by_tp.setdefault(m.tp, []).append(m)
        out = await path.step(state, list(by_tp.items()))
        if out is None:
            return None
        assert await path.store.clear_outbox(0, state.fences)  # "produced"
        return [orjson.loads(parse_outbox_entry(e)[3] or b"null") for e in out]

    def entry(self, table: str, key: str) -> str:
        return keys.ledger_entry(self.p, 0, table, key)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    settings = kit.fresh_settings()
    client = aioredis.from_url(settings.redis_url)
    yield Env(settings, client)
    found = await client.keys(f"{settings.topic_prefix}:*")
    if found:
        await client.delete(*found)
    await client.aclose()


def clicks(*ids: str, campaign: str | None = "cmp", at_minutes_ago: float = 5) -> bytes:
    return kit.batch("b1", [kit.click(c, "s1", "v1", "p1", "cr1", campaign, kit.ago(minutes=at_minutes_ago))
                            for c in ids])


def orders_of(facts: list[dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    return {f["order_id"]: f for f in facts or [] if f.get("kind") == "order"}


def near(ttl_ms: int, expected_ms: int) -> bool:
    return expected_ms - 60_000 <= ttl_ms <= expected_ms


async def test_keys_carry_the_ttls_of_the_policy(env: Env) -> None:
    path = env.ledger()
    await env.step(path, [env.add("events", clicks("c1")),
                          env.add("events", clicks("c2", campaign=None)),
                          env.add("events", clicks("c3", campaign="unknown-cmp")),
                          env.add("orders", kit.order("b1", "o1", click_id="c1")),
                          env.add("orders", kit.order("b1", "o2", click_id="c-not-yet")),
                          env.add("orders", kit.refund("b1", "o-not-yet", "r1", 100))])
    pttl = env.client.pttl
    late = 8 * DAY_MS
    assert near(await pttl(env.entry("clicks", "b1:c1")), WINDOW_DAYS * DAY_MS + late)  # its campaign's window
    assert near(await pttl(env.entry("clicks", "b1:c2")), 30 * DAY_MS + late)  # no campaign: the default window
    assert near(await pttl(env.entry("clicks", "b1:c3")), 400 * DAY_MS + late)  # unknown: the longest possible
    assert near(await pttl(env.entry("waiting", "b1:c-not-yet")), late)
    assert near(await pttl(env.entry("seen", "b1:evt-o1")), 8 * DAY_MS)
    assert near(await pttl(env.entry("pending", "b1:o-not-yet")), 30 * DAY_MS)  # a refund waiting for its order
    # money never expires: the order state (hash) and its applied contribution
    orders_hash = keys.ledger_state(env.p, 0, "orders")
    assert await env.client.hexists(orders_hash, "b1:o1") and await pttl(orders_hash) == -1
    contributions = await env.client.keys(f"{env.p}:*order:b1:o1")
    assert len(contributions) == 1 and await pttl(contributions[0]) == -1
    # the refund's order arrives: its state moves to the hash (no TTL), the pending entry is deleted
    await env.step(path, [env.add("orders", kit.order("b1", "o-not-yet"))])
    assert await env.client.exists(env.entry("pending", "b1:o-not-yet")) == 0
    assert await env.client.hexists(orders_hash, "b1:o-not-yet")

    # the live path: de-dup keys 8 days, a stream's viewer set / presence 7 days after its last flush,
    # its counts hash kept (with unique_viewers, which the API reads once the set has expired)
    tp = TopicPartition(topic_name(env.settings, "events"), 0)
    views = [Msg(tp, 0, b"b1", kit.batch("b1", [kit.view("e1", "s1", "v1"), kit.view("e2", "s1", "v2")]), 1)]

    async def send(*_: Any) -> Any:
        raise AssertionError("nothing is dead-lettered here")

    live = LivePath(LiveStore(env.client, env.p), Notifier(env.client, env.p), send, OffsetGate(env.refill),
                    topic_name(env.settings, "dlq"))
    await live.process(tp, views)
    viewer_keys = await env.client.keys(f"{env.p}:*live:s1:viewers")
    now_keys = await env.client.keys(f"{env.p}:*live:s1:now")
    counts = (await env.client.keys(f"{env.p}:*live:s1:counts"))[0]
    dedups = await env.client.keys(f"{env.p}:*dedup:b1:e1")
    assert len(viewer_keys) == len(now_keys) == len(dedups) == 1
    assert near(await pttl(viewer_keys[0]), 7 * DAY_MS) and near(await pttl(now_keys[0]), 7 * DAY_MS)
    assert near(await pttl(dedups[0]), 8 * DAY_MS)
    assert await pttl(counts) == -1 and await env.client.hget(counts, "unique_viewers") == b"2"


async def test_an_order_stays_refundable_after_its_click_expired(env: Env) -> None:
    # every TTL scaled down: the click lives (7 + 8) days x factor = 0.6 s
    retention = DEFAULT.scaled(600 / ((WINDOW_DAYS + 8) * DAY_MS))
    path = env.ledger(retention)
    await env.step(path, [env.add("events", clicks("c1"))])
    facts = orders_of(await env.step(path, [env.add("orders", kit.order("b1", "o1", click_id="c1"))]))
    assert facts["o1"]["via"] == "click" and facts["o1"]["commission_minor"] == 1000
    await kit.wait_for(lambda: _gone(env, env.entry("clicks", "b1:c1")), timeout=10)
    assert await env.client.exists(env.entry("seen", "b1:evt-o1")) == 0  # expired as well
    # a restarted worker: the refund still reverses the click-attributed commission
    facts = orders_of(await env.step(env.ledger(retention), [env.add("orders", kit.refund("b1", "o1", "r1", 4000))]))
    o1 = facts["o1"]
    assert (o1["via"], o1["creator_id"], o1["net_minor"]) == ("click", "cr1", 6000)
    assert (o1["commission_minor"], o1["reversed_minor"], o1["version"]) == (600, 400, 2)


async def _gone(env: Env, key: str) -> bool:
    return int(await env.client.exists(key)) == 0


async def test_a_click_inside_its_window_attributes_after_a_restart(env: Env) -> None:
    await env.step(env.ledger(), [env.add("events", clicks("c1", at_minutes_ago=3 * 24 * 60))])  # 3 days ago
    await env.step(env.ledger(), [env.add("orders", kit.order("b1", "o2", click_id="c2"))])  # before its click
    restarted = env.ledger()
    facts = orders_of(await env.step(restarted, [env.add("orders", kit.order("b1", "o1", click_id="c1"))]))
    assert (facts["o1"]["via"], facts["o1"]["creator_id"], facts["o1"]["campaign_id"]) == ("click", "cr1", "cmp")
    # the late click of o2, on yet another worker: the order its waiting entry names is read and re-attributed
    late = env.ledger()
    facts = orders_of(await env.step(late, [env.add("events", clicks("c2"))]))
    assert (facts["o2"]["via"], facts["o2"]["version"]) == ("click", 2)
    stats: dict[str, int] = {}
    for k in await env.client.keys(f"{env.p}:*stats"):
        stats.update({_text(f): int(v) for f, v in (await env.client.hgetall(k)).items()})
    assert stats["orders_late_click_attributed"] == 1


@pytest.mark.parametrize("n_clicks", [10, 2000])
async def test_assignment_reads_no_state_and_a_step_only_what_it_names(env: Env, n_clicks: int) -> None:
    ids = [f"c{i}" for i in range(n_clicks)]
    await env.step(env.ledger(), [env.add("events", clicks(*ids[i:i + 500])) for i in range(0, n_clicks, 500)])
    assert await env.client.exists(env.entry("clicks", f"b1:c{n_clicks - 1}")) == 1
    path = env.ledger()
    state = await path.load(0)
    assert path.store.entries_read == 0
    assert state.fences[f"{topic_name(env.settings, 'events')}:0"] == len(env.log["events"]) - 1
    facts = orders_of(await env.step(path, [env.add("orders", kit.order("b1", "o1", click_id="c1"))]))
    assert facts["o1"]["via"] == "click"
    # seen (event id), orders (hash + pending), clicks and waiting of its click id: 4, however many clicks
    assert path.store.entries_read == 4 and state.entries_read == 4


async def test_exactly_once_holds_under_a_replayed_batch(env: Env) -> None:
    batch = [env.add("events", clicks("c1")), env.add("orders", kit.order("b1", "o1", click_id="c1")),
             env.add("orders", kit.refund("b1", "o1", "r1", 1000)),
             env.add("orders", kit.refund("b1", "o1", "r1", 1000, event_id="evt-r1-retry"))]
    a, b = env.ledger(), env.ledger()
    await a.load(0)
    await b.load(0)  # both members loaded the partition at the same fences; b wins it
    facts = orders_of(await env.step(b, batch))
    assert (facts["o1"]["net_minor"], facts["o1"]["version"]) == (9000, 2)
    before = await _money(env)
    assert await env.step(a, batch) is None  # the zombie's step is refused (fences moved); it reloads
    assert await env.step(a, batch) is None  # and then its gate drops the replay
    assert await env.step(env.ledger(), batch) is None  # a restarted worker too
    assert await _money(env) == before
    # the next record after the replays applies once, on the state the first step wrote
    facts = orders_of(await env.step(env.ledger(), [env.add("orders", kit.refund("b1", "o1", "r2", 500))]))
    assert (facts["o1"]["net_minor"], facts["o1"]["version"], facts["o1"]["reversed_minor"]) == (8500, 3, 150)


def _text(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


async def _money(env: Env) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for pattern in ("*creator:cr1:earnings", "*brand:b1:sales", "*stats", "*offsets:ledger"):
        for k in await env.client.keys(f"{env.p}:{pattern}"):
            out[k] = await env.client.hgetall(k)
    return out


def test_scaled_retention_keeps_the_ratios() -> None:
    r = DEFAULT.scaled(1 / 86400)  # a day is a second
    assert (r.day_ms, r.late_ms, r.dedup_ms, r.stream_idle_ms, r.pending_ms) == (1000, 8000, 8000, 7000, 30000)
    assert r.click_ms(7) == 15000 and r.click_ms(None) == 408000
    assert DEFAULT.click_ms(30) == (30 + 8) * 86400 * 1000


async def test_the_live_dedup_horizon_is_configurable(env: Env) -> None:
    """LIVELEDGER_LIVE_DEDUP_TTL_S sets the live path's event-id horizon (the worker's LiveStore), and a
    duplicate inside it still counts once."""
    from streams.app import live_retention

    settings = env.settings.model_copy(update={"live_dedup_ttl_s": 3600})
    tp = TopicPartition(topic_name(env.settings, "events"), 0)

    async def send(*_: Any) -> Any:
        raise AssertionError("nothing is dead-lettered here")

    live = LivePath(LiveStore(env.client, env.p, live_retention(settings)), Notifier(env.client, env.p), send,
                    OffsetGate(env.refill), topic_name(env.settings, "dlq"))
    await live.process(tp, [Msg(tp, 0, b"b1", kit.batch("b1", [kit.view("e1", "s1", "v1")]), 1)])
    await live.process(tp, [Msg(tp, 1, b"b1", kit.batch("b1", [kit.view("e1", "s1", "v1")]), 2)])  # a resend
    dedups = await env.client.keys(f"{env.p}:*dedup:b1:e1")
    assert len(dedups) == 1 and near(await env.client.pttl(dedups[0]), 3600 * 1000)
    counts = (await env.client.keys(f"{env.p}:*live:s1:counts"))[0]
    assert await env.client.hget(counts, "views") == b"1"
    assert live_retention(Settings()).dedup_ms == 8 * DAY_MS  # the default is unchanged
