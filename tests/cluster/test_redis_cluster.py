"""The whole pipeline on a 3-master Redis Cluster: the same code, exact totals.

A private Redis Cluster (tests/cluster/redis_cluster.py: three ``redis-server --cluster-enabled``
masters on loopback, 5461/5461/5462 slots) takes the place of the single Redis; Kafka and ClickHouse
are the shared dev services with a fresh topic prefix and database. The real processes
(``python -m api``, ``ingest``, ``streams worker``, ``consumers clickhouse``) run with
``LIVELEDGER_REDIS_CLUSTER=true``. A simulated day goes through the HTTP ingest; once every stage has
applied the end of every topic, the live state read through the API and the cluster's hashes must
equal the simulator's ground truth exactly (the checks of tests/e2e/test_pipeline_truth.py), and the
keys must really be spread over the three masters (one hash slot per source partition: every Lua
step touches one slot, redis_keys.part_tag).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis

from consumers.migrate import run as migrate_run
from liveledger.ch import get_client
from liveledger.redis_client import redis_client, sync_redis_client
from liveledger.settings import Settings
from liveledger.storage import redis_keys as keys
from producers.config import SimConfig
from producers.simulator import GroundTruth, run_simulation
from streams.redis_state import LedgerStore, LiveStore
from tests.cluster.redis_cluster import RedisClusterNodes
from tests.e2e import test_pipeline_truth as truth
from tests.harness import AppStack, fresh_prefix
from tests.streams import test_ledger_fence, test_lua_fence

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.clickhouse, pytest.mark.slow]

BRANDS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    nodes = RedisClusterNodes(tmp_path_factory.mktemp("redis-cluster"))
    took = nodes.start()
    print(f"\nredis cluster of {nodes.masters} masters up in {took:.1f}s on ports {nodes.ports}")
    try:
        yield nodes
    finally:
        nodes.stop()


def settings_of(stack: AppStack, cluster: RedisClusterNodes) -> Settings:
    return Settings(topic_prefix=stack.prefix, clickhouse_database=f"{stack.prefix}_db", ingest_port=stack.ingest_port,
                    api_port=stack.api_port, redis_url=cluster.url, redis_cluster=True)


def slot_owners(cluster: RedisClusterNodes) -> dict[int, int]:
    """slot -> port of the master that serves it (CLUSTER SLOTS)."""
    r = redis.Redis(port=cluster.ports[0])
    try:
        owners = {}
        for start, end, master, *_ in r.execute_command("CLUSTER SLOTS", NEVER_DECODE=True):  # type: ignore[no-untyped-call]
            for slot in range(int(start), int(end) + 1):
                owners[slot] = int(master[1])
        return owners
    finally:
        r.close()


def partition_master(cluster: RedisClusterNodes, owners: dict[int, int], prefix: str, part: int) -> int:
    return owners[redis.crc.key_slot(keys.offsets(prefix, part, "live").encode())]


def spread_id_prefix(cluster: RedisClusterNodes, settings: Settings) -> str:
    """A simulator id prefix whose brands' partitions are served by every master (the brands' ids are
    ``<id prefix>-b<i>``; Kafka puts each brand in one partition, our keys put each partition in one
    slot). With 6 brands most prefixes do; the test takes the first that does, so it can assert it."""
    owners = slot_owners(cluster)
    rng = random.Random()
    for _ in range(200):
        candidate = f"rc{uuid.UUID(int=rng.getrandbits(128)).hex[:8]}"
        parts = {keys.brand_partition(f"{candidate}-b{i}", settings.event_partitions) for i in range(BRANDS)}
        masters = {partition_master(cluster, owners, settings.topic_prefix, q) for q in parts}
        if len(masters) == cluster.masters:
            return candidate
    raise AssertionError("no id prefix spreads the brands over every master")


FENCE_TESTS = [(test_lua_fence, n) for n in dir(test_lua_fence) if n.startswith("test_")] + \
              [(test_ledger_fence, n) for n in dir(test_ledger_fence) if n.startswith("test_")]


@pytest.mark.parametrize(("module", "name"), FENCE_TESTS, ids=[n for _, n in FENCE_TESTS])
async def test_fenced_scripts_on_the_cluster(cluster: RedisClusterNodes, module: Any, name: str) -> None:
    """The exactly-once core on the cluster: the Redis tests of the live flush and the ledger step
    (replays and gaps refused, a stale member fenced off, versioned snapshots) against the cluster."""
    prefix = fresh_prefix()
    client = redis_client(Settings(redis_url=cluster.url, redis_cluster=True, topic_prefix=prefix))
    store = (LiveStore if module is test_lua_fence else LedgerStore)(client, prefix)
    try:
        await getattr(module, name)(store)
    finally:
        await client.aclose()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, cluster: RedisClusterNodes) -> Iterator[AppStack]:
    stack = AppStack(log_dir=tmp_path_factory.mktemp("cluster-apps"))
    stack.extra_env.update({"LIVELEDGER_CLICKHOUSE_DATABASE": f"{stack.prefix}_db",
                            "LIVELEDGER_REDIS_URL": cluster.url, "LIVELEDGER_REDIS_CLUSTER": "true"})
    settings = settings_of(stack, cluster)
    stack.create_topics()
    with open(stack.log_dir / "migrate.log", "w") as out:
        migrate_run(settings, out=out)
    try:
        stack.start_pipeline()
        yield stack
    finally:
        stack.stop_all()
        client = get_client(settings, database="default")
        try:
            client.command(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")
        finally:
            client.close()


@pytest.fixture(scope="module")
def day(stack: AppStack, cluster: RedisClusterNodes) -> tuple[GroundTruth, Settings]:
    settings = settings_of(stack, cluster)
    cfg = SimConfig(
        seed=29, id_prefix=spread_id_prefix(cluster, settings), ingest_url=stack.ingest_url, api_url=stack.api_url,
        admin_token=settings.admin_token, brands=BRANDS, creators=6, streams=8, viewers=100, minutes=4, speed=200,
        dup_rate=0.08, retry_rate=0.05, late_rate=0.05, shopify_rate=0.4, refund_rate=0.3, coupon_rate=0.3,
        edge_rate=0.15, invalid_rate=0.01, progress=False,
    )
    t0 = time.monotonic()
    gt = asyncio.run(run_simulation(cfg))
    sim_s = time.monotonic() - t0
    t1 = time.monotonic()
    asyncio.run(truth.drain(settings, timeout=truth.DRAIN_TIMEOUT_S))
    print(f"\nsimulation {sim_s:.1f}s, pipeline drained {time.monotonic() - t1:.1f}s after it; totals {gt.totals}")
    return gt, settings


def test_the_day_reached_the_pipeline(day: tuple[GroundTruth, Settings]) -> None:
    gt, settings = day
    t = gt.totals
    assert t["event_batches_failed"] == 0 and t["orders_failed"] == 0 and t["redirects_failed"] == 0
    assert t["duplicate_events_sent"] > 0 and t["redirect_clicks_acked"] > 0 and t["repeat_redirects_sent"] > 0
    r = sync_redis_client(settings, decode_responses=True)
    try:
        stats = {k: int(v) for k, v in truth._sum(r, keys.stats_keys(settings.topic_prefix,
                                                                       settings.event_partitions)).items()}
    finally:
        r.close()
    for name in ("events_accepted", "events_deduplicated", "orders_deduplicated", "orders_late_click_attributed"):
        assert stats.get(name, 0) > 0, (name, stats)


def test_streams_live_api_equals_truth(stack: AppStack, day: tuple[GroundTruth, Settings]) -> None:
    gt, _ = day
    truth._same(truth.truth_streams(gt), truth.api_streams(stack, gt))


def test_creators_redis_equals_truth(day: tuple[GroundTruth, Settings]) -> None:
    gt, settings = day
    truth._same(truth.truth_creators(gt), truth.redis_creators(settings, gt))


def test_brands_redis_equals_truth(day: tuple[GroundTruth, Settings]) -> None:
    gt, settings = day
    truth._same(truth.truth_brands(gt), truth.redis_brands(settings, gt))


def test_creator_earnings_api_equals_truth(stack: AppStack, day: tuple[GroundTruth, Settings]) -> None:
    gt, _ = day
    truth._same(truth.truth_creators(gt, "run_end"), truth.api_earnings(stack, gt, "run_end"))


def test_keys_spread_over_every_master(cluster: RedisClusterNodes, day: tuple[GroundTruth, Settings]) -> None:
    _, settings = day
    p = settings.topic_prefix
    per_master = cluster.keys_per_master(f"{p}:*")
    print(f"\nkeys per master (port: keys): {per_master}")
    assert all(n > 0 for n in per_master.values()), per_master
    # every partition that got records keeps its fence, stats and aggregates on one master: the one
    # serving its tag's slot
    owners = slot_owners(cluster)
    for q in range(settings.event_partitions):
        port = partition_master(cluster, owners, p, q)
        r = redis.Redis(port=port)
        try:
            found = list(r.scan_iter(match=f"{keys.part_tag(p, q)}:*", count=1000))
        finally:
            r.close()
        others = [n for other, n in cluster.keys_per_master(f"{keys.part_tag(p, q)}:*").items() if other != port]
        assert sum(others) == 0, (q, others)
        if found:
            assert {redis.crc.key_slot(k) for k in found} == {redis.crc.key_slot(keys.part_tag(p, q).encode())}


def test_live_notifications_cross_nodes(cluster: RedisClusterNodes, day: tuple[GroundTruth, Settings]) -> None:
    """The API's live hub pattern-subscribes on one node; a PUBLISH sent to any node reaches it."""
    _, settings = day
    seed = redis.Redis(port=cluster.ports[0])
    try:
        assert int(seed.execute_command("PUBSUB NUMPAT")) >= 1  # type: ignore[no-untyped-call]  # the API's LiveHub
        sub = seed.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        sub.psubscribe(keys.stream_channel(settings.topic_prefix, "*"))
        time.sleep(0.2)
        other = redis.Redis(port=cluster.ports[-1])
        try:
            other.publish(keys.stream_channel(settings.topic_prefix, "probe"), b"{}")
        finally:
            other.close()
        deadline = time.monotonic() + 5
        msg = None
        while msg is None and time.monotonic() < deadline:
            msg = sub.get_message(timeout=0.5)
        assert msg is not None and msg["channel"] == keys.stream_channel(settings.topic_prefix, "probe").encode()
        sub.close()
    finally:
        seed.close()


def test_worker_notifications_reach_every_node_and_sse(stack: AppStack, cluster: RedisClusterNodes,
                                                       day: tuple[GroundTruth, Settings]) -> None:
    """Last (it adds a view): the worker's coalesced PUBLISH (through the cluster client) reaches a
    subscriber on every node, and the API's SSE stream pushes the new state."""
    gt, settings = day
    brand = gt.document["setup"]["brands"][0]
    sid = next(s for s, v in gt.document["streams"].items() if v["brand_id"] == brand["brand_id"])
    subs = []
    for port in cluster.ports:
        sub = redis.Redis(port=port).pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        sub.subscribe(keys.stream_channel(settings.topic_prefix, sid))
        subs.append(sub)
    auth = {"Authorization": f"Bearer {brand['api_key']}"}
    try:
        with httpx.Client(base_url=stack.api_url, timeout=30) as http, \
                http.stream("GET", f"/v1/streams/{sid}/live/events", headers=auth) as sse:
            frames = (line for line in sse.iter_lines() if line.startswith("data:"))
            first = json.loads(next(frames)[5:])
            event = {"event_id": f"probe-{uuid.uuid4().hex[:8]}", "type": "view", "stream_id": sid,
                     "viewer_id": "probe-viewer", "action": "join",
                     "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}
            resp = httpx.post(f"{stack.ingest_url}/v1/events", json={"events": [event]}, headers=auth, timeout=30)
            assert resp.status_code == 202, resp.text
            seen = [first["views"]]
            deadline = time.monotonic() + 20
            while seen[-1] != first["views"] + 1 and time.monotonic() < deadline:  # viewers_now also moves
                seen.append(json.loads(next(frames)[5:])["views"])
            assert seen[-1] == first["views"] + 1, seen
        deadline = time.monotonic() + 10
        heard = [False] * len(subs)
        while not all(heard) and time.monotonic() < deadline:
            for i, sub in enumerate(subs):
                heard[i] = heard[i] or sub.get_message(timeout=0.1) is not None
        assert all(heard), dict(zip(cluster.ports, heard, strict=True))
    finally:
        for sub in subs:
            sub.close()
