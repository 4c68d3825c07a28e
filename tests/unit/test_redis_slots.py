"""Every Redis script call and transaction touches the keys of one hash slot (Redis Cluster), for
realistic inputs (no services: key names and redis-py's CRC16 ``key_slot``).

Each script takes every key name it touches in its JSON argument (liveledger/storage/lua.py), so the
names in the argument are the keys it touches; a cluster refuses a call whose keys span slots.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import redis.asyncio as aioredis
from redis.crc import key_slot

from api.privacy_routes import erase_script_arg
from ingest.clicks import _by_slot
from liveledger.storage import redis_keys as K
from schemas.wire import decode_events_record
from streams.live import LiveBatch
from streams.redis_state import LedgerStore
from tests.streams import kit

P = "ll"
PARTITIONS = 6
MASTERS = 3


def key_names(arg: Any, prefix: str = P) -> set[str]:
    """Every string in a script argument that is one of our key names."""
    out: set[str] = set()
    if isinstance(arg, str):
        if arg.startswith(prefix + ":"):
            out.add(arg)
    elif isinstance(arg, dict):
        for v in arg.values():
            out |= key_names(v, prefix)
    elif isinstance(arg, list | tuple | set):
        for v in arg:
            out |= key_names(v, prefix)
    return out


def slots(names: set[str]) -> set[int]:
    return {key_slot(n.encode()) for n in names}


def world(rng: random.Random) -> tuple[list[str], dict[str, str], list[str]]:
    brands = [f"brand-{i}" for i in range(40)]
    streams = {f"live-{b}-{j}": b for b in brands for j in range(3)}
    creators = [f"creator-{i}" for i in range(25)]  # each works with many brands
    return brands, streams, creators


def live_batch(rng: random.Random, part: int) -> dict[str, Any]:
    brands, streams, creators = world(rng)
    mine = [b for b in brands if K.brand_partition(b, PARTITIONS) == part]
    assert mine, part
    lb = LiveBatch(P, "live", f"{P}.events", part)
    for offset in range(50):
        brand = rng.choice(mine)
        sids = [s for s, b in streams.items() if b == brand]
        events = []
        for n in range(20):
            sid, viewer, eid = rng.choice(sids), f"v{rng.randrange(500)}", f"e{offset}-{n}"
            kind = rng.random()
            if kind < 0.6:
                events.append(kit.view(eid, sid, viewer, rng.choice(["join", "heartbeat", "leave"])))
            elif kind < 0.85:
                events.append(kit.click(eid, sid, viewer, f"p{rng.randrange(9)}", rng.choice(creators),
                                        rng.choice([None, f"cmp-{brand}"])))
            else:
                events.append(kit.cart(eid, sid, viewer, f"p{rng.randrange(9)}"))
        lb.add_offset(offset)
        lb.add_events(decode_events_record(kit.batch(brand, events), brand.encode()))
    lb.count("records_replayed", 2)
    return lb.to_script_arg(1)


def ledger_step(rng: random.Random, part: int) -> dict[str, Any]:
    brands, streams, creators = world(rng)
    mine = [b for b in brands if K.brand_partition(b, PARTITIONS) == part]
    store = LedgerStore(aioredis.Redis(), P)  # lazy: never connects
    snaps: list[dict[str, Any]] = []
    tables = ("orders", "clicks", "waiting", "seen")
    changes: dict[str, tuple[dict[str, Any], list[str]]] = {t: ({}, []) for t in tables}
    for n in range(60):
        brand = rng.choice(mine)
        sid = rng.choice([s for s, b in streams.items() if b == brand])
        snaps.append({"brand_id": brand, "order_id": f"o{n}", "version": 1, "currency": "USD", "net_minor": 1000,
                      "commission_minor": 100, "reversed_minor": 0, "via": "click",
                      "creator_id": rng.choice(creators), "campaign_id": f"cmp-{brand}", "stream_id": sid,
                      "link_code": "L1", "skus": ["p1"], "lines": {"p1": 1000}, "occurred_ms": 1, "day": "2026-12-01"})
        changes["orders"][0][f"{brand}:o{n}"] = {"order": {"id": n}, "version": 1}
        changes["clicks"][0][f"{brand}:c{n}"] = {"campaign_id": f"cmp-{brand}"}
        changes["waiting"][0][f"{brand}:c{n + 100}"] = [f"o{n}"]
        changes["seen"][0][f"{brand}:e{n}"] = 1
    changes["orders"][0][f"{mine[0]}:refund-first"] = {"order": None, "refunds": []}
    changes["orders"][1].append(f"{mine[0]}:gone")
    ops = store.state_ops(part, changes, lambda key, click: 30)
    fixed = store._fixed_keys(part)
    return {**fixed, **ops, "snaps": [store._with_keys(s, part) for s in snaps]}


def test_live_flush_touches_one_slot_per_partition() -> None:
    rng = random.Random(7)
    for part in range(PARTITIONS):
        arg = live_batch(rng, part)
        names = key_names(arg)
        assert len(names) > 100  # streams, dedup keys, conversion hashes, fence, stats
        assert slots(names) == {key_slot(arg["off"].encode())}, part  # the key the call declares


def test_ledger_step_and_outbox_touch_one_slot_per_partition() -> None:
    rng = random.Random(11)
    for part in range(PARTITIONS):
        arg = ledger_step(rng, part)
        names = key_names(arg)
        assert len(names) > 100  # order snapshots' aggregates (creator hashes of many brands), state, fence
        assert slots(names) == {key_slot(arg["off"].encode())}, part
        # the creator-level aggregates of this partition: the API sums them over the partitions
        creators = {n for n in names if ":creator:" in n}
        assert creators and all(n.startswith(K.part_tag(P, part) + ":") for n in creators)


def test_erasure_touches_the_brand_slot() -> None:
    _, streams, _ = world(random.Random(3))
    for brand in ("brand-1", "brand-22", "brand-39"):
        arg = erase_script_arg(P, PARTITIONS, brand, [s for s, b in streams.items() if b == brand], "viewer-1",
                               "e1", 3, 1)
        assert slots(key_names(arg)) == {key_slot(arg["stats"].encode())}


def test_reader_pipelines_per_partition_are_one_slot() -> None:
    """The transactions the readers run: the ledger's partition state, the watermark's fences+outbox."""
    for part in range(PARTITIONS):
        names = {K.offsets(P, part, "live"), K.offsets(P, part, "ledger"), K.ledger_outbox(P, part),
                 *(K.ledger_state(P, part, t) for t in ("clicks", "orders", "waiting", "seen")),
                 K.ledger_entry(P, part, "clicks", "brand-1:c1")}
        assert len(slots(names)) == 1


def test_click_claims_are_grouped_per_slot() -> None:
    rng = random.Random(5)
    batch = [(K.click_repeat(P, f"L{rng.randrange(300)}", f"client{n}"), "?c 1", None) for n in range(200)]
    groups = _by_slot(batch)
    assert sum(len(g) for g in groups) == 200
    assert all(len(slots({k for k, _, _ in g})) == 1 for g in groups)
    assert len(groups) <= K.REPEAT_SHARDS


def test_brand_partition_is_kafkas_default_partitioner() -> None:
    """aiokafka's DefaultPartitioner (murmur2 of the key, as Kafka's Java client) -- the producers'."""
    from aiokafka.partitioner import DefaultPartitioner

    parts = list(range(PARTITIONS))
    for i in range(200):
        brand = f"brand-{i}"
        assert K.brand_partition(brand, PARTITIONS) == DefaultPartitioner()(brand.encode(), parts, parts)


def master_of(slot: int, masters: int = MASTERS) -> int:
    """The master serving ``slot`` after ``redis-cli --cluster create`` (even contiguous ranges)."""
    per = 16384 / masters
    return min(int(slot // per), masters - 1)


def test_partitions_spread_over_three_masters() -> None:
    """The production prefix ``ll``: with the default 6 partitions each of 3 masters serves 2."""
    spread = {}
    for n in (6, 12, 24):
        spread[n] = Counter(master_of(key_slot(K.part_tag(P, q).encode() + b":x")) for q in range(n))
    print({n: dict(sorted(c.items())) for n, c in spread.items()})
    assert sorted(spread[6].values()) == [2, 2, 2]
    assert all(len(c) == MASTERS for c in spread.values())


def test_one_client_factory_for_both_modes() -> None:
    from redis.asyncio.cluster import RedisCluster

    from liveledger.redis_client import node_url, redis_client
    from liveledger.settings import Settings

    single = Settings(redis_url="redis://127.0.0.1:6379/0")
    assert isinstance(redis_client(single), aioredis.Redis) and node_url(single) == "redis://127.0.0.1:6379/0"
    for cluster in (Settings(redis_url="redis+cluster://127.0.0.1:7000"),
                    Settings(redis_url="redis://127.0.0.1:7000/0", redis_cluster=True)):
        assert isinstance(redis_client(cluster), RedisCluster)  # lazy: connects on first command
        assert node_url(cluster) == "redis://127.0.0.1:7000"  # the seed node, database 0
