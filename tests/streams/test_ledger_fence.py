"""The ledger consumer's Redis step against a real Redis: fence compare-and-set, state, outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from liveledger.redis_client import redis_client
from liveledger.settings import Settings
from liveledger.storage import redis_keys as keys
from streams.ledger_path import outbox_entry
from streams.redis_state import Fenced, LedgerStore
from tests.streams import kit

pytestmark = pytest.mark.redis

TOPICS = ["x.events", "x.orders"]


@pytest.fixture
async def store() -> AsyncIterator[LedgerStore]:
    settings: Settings = kit.fresh_settings()
    client = redis_client(settings)  # a Redis Cluster too (LIVELEDGER_REDIS_CLUSTER)
    yield LedgerStore(client, settings.topic_prefix)
    keys = await client.keys(f"{settings.topic_prefix}:*")
    if keys:
        await client.delete(*keys)
    await client.aclose()


def orders_set(store: LedgerStore, value: dict[str, Any]) -> dict[str, Any]:
    """The state writes of one order state ``b1:o1`` (see ``LedgerStore.state_ops``)."""
    return store.state_ops(0, {"orders": ({"b1:o1": value}, [])}, lambda key, click: None)


def step(fences: dict[str, list[int]], *, sets: dict[str, Any] | None = None, net: int = 1000,
         version: int = 1, outbox: list[str] | None = None) -> dict[str, Any]:
    snap = {"brand_id": "b1", "order_id": "o1", "version": version, "currency": "USD", "net_minor": net,
            "commission_minor": net // 10, "reversed_minor": 0, "via": "click", "creator_id": "cr1",
            "stream_id": "s1", "skus": ["p1"]}
    return {"part": 0, "fences": fences, **(sets or {}), "snaps": [snap],
            "st": {"orders_accepted": 1}, "outbox": outbox or [], "now": 1}


async def test_step_writes_state_effects_outbox_and_fences_atomically(store: LedgerStore) -> None:
    first = await store.load(0, TOPICS)
    assert first.fences == {"x.events:0": -1, "x.orders:0": -1}
    assert await store.read(0, {"orders": {"b1:o1"}}) == {"orders": {"b1:o1": None}}
    entry = outbox_entry("x.ledger", 0, b"b1", b'{"kind":"order"}')
    touched = await store.step(step({"x.events:0": [-1, 4], "x.orders:0": [-1, 9]},
                                    sets=orders_set(store, {"order": {}, "version": 1}), outbox=[entry]))
    assert touched == ["s1"]
    loaded = await store.load(0, TOPICS)
    assert loaded.fences == {"x.events:0": 4, "x.orders:0": 9}
    assert await store.read(0, {"orders": {"b1:o1"}}) == {"orders": {"b1:o1": {"order": {}, "version": 1}}}
    assert await store.outbox(0) == [entry.encode()]
    earnings = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:creator:cr1:earnings")
    assert earnings[b"USD|net_minor"] == b"1000"
    # the outbox is cleared only by a member holding the current fences
    assert not await store.clear_outbox(0, {"x.events:0": 4, "x.orders:0": 8})
    assert await store.clear_outbox(0, loaded.fences)
    assert await store.outbox(0) == []


async def test_a_stale_member_is_refused_and_changes_nothing(store: LedgerStore) -> None:
    # members A and B both loaded partition 0 at fences (-1, -1); B wins the partition and steps first
    await store.step(step({"x.events:0": [-1, 4], "x.orders:0": [-1, 9]},
                          sets=orders_set(store, {"order": {}, "by": "B"})))
    before = {k: await store.client.hgetall(k) for k in (
        keys.creator_earnings(store.prefix, 0, "cr1"), keys.stats(store.prefix, 0),
        keys.offsets(store.prefix, 0, "ledger"))}
    # A (a zombie after the rebalance) tries to write its own version of the same offsets
    with pytest.raises(Fenced) as refused:
        await store.step(step({"x.events:0": [-1, 6], "x.orders:0": [-1, 9]}, net=5,
                              sets=orders_set(store, {"order": {}, "by": "A"}),
                              outbox=[outbox_entry("x.ledger", 0, b"b1", b"A")]))
    assert (refused.value.tp, refused.value.stored) in {("x.events:0", 4), ("x.orders:0", 9)}
    # one matching fence is not enough: both must be the loaded ones
    with pytest.raises(Fenced):
        await store.step(step({"x.events:0": [4, 6], "x.orders:0": [-1, 12]}))
    after = {k: await store.client.hgetall(k) for k in before}
    assert after == before
    await store.load(0, TOPICS)
    assert (await store.read(0, {"orders": {"b1:o1"}}))["orders"] == {"b1:o1": {"order": {}, "by": "B"}}
    assert await store.outbox(0) == []
    # after reloading, A holds the current fences and may step again
    await store.step(step({"x.events:0": [4, 6], "x.orders:0": [9, 9]}, version=2, net=400))
    assert (await store.load(0, TOPICS)).fences == {"x.events:0": 6, "x.orders:0": 9}
    earnings = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:creator:cr1:earnings")
    assert (earnings[b"USD|orders"], earnings[b"USD|net_minor"]) == (b"1", b"400")


async def test_order_snapshots_apply_deltas_by_version(store: LedgerStore) -> None:
    """Snapshots replace the order's previous contribution, and only a newer version does."""

    def snap_step(fence: int, version: int, net: int, creator: str) -> dict[str, Any]:
        arg = step({"x.events:0": [-1, -1], "x.orders:0": [fence - 1, fence]}, net=net, version=version)
        arg["snaps"][0]["creator_id"] = creator
        arg["st"] = {}
        return arg

    assert await store.step(snap_step(0, 1, 1000, "cr1")) == ["s1"]
    assert await store.step(snap_step(1, 1, 1000, "cr1")) == []  # same version again: no change
    await store.step(snap_step(2, 2, 400, "cr2"))  # re-attributed and refunded
    c1 = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:creator:cr1:earnings")
    c2 = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:creator:cr2:earnings")
    s1 = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:live:s1:counts")
    assert c1[b"USD|orders"] == b"0" and c1[b"USD|net_minor"] == b"0"
    assert (c2[b"USD|orders"], c2[b"USD|net_minor"], c2[b"USD|commission_minor"]) == (b"1", b"400", b"40")
    assert (s1[b"orders"], s1[b"gmv|USD"]) == (b"1", b"400")


async def test_order_snapshots_keep_each_creators_conversion(store: LedgerStore) -> None:
    """orders / click_orders / coupon_orders, gmv and commission per creator and dimension follow
    the order's latest version: a late click moves the order from the coupon's creator."""
    coupon = step({"x.events:0": [-1, -1], "x.orders:0": [-1, 0]}, net=1000, version=1)
    coupon["snaps"][0].update(via="coupon", creator_id="crc", campaign_id="cmp", link_code="L1", stream_id="s9",
                              occurred_ms=1_700_000_000_000)
    await store.step(coupon)
    crc = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:conv:b1:crc")
    assert (crc[b"orders"], crc[b"coupon_orders"], crc[b"gmv|USD"], crc[b"commission|USD"]) == (
        b"1", b"1", b"1000", b"100")
    assert (crc[b"link|L1|orders"], crc[b"stream|s9|coupon_orders"], crc[b"campaign|cmp|gmv|USD"]) == (
        b"1", b"1", b"1000")
    assert crc[b"last_order_at"] == b"1700000000000"
    click = step({"x.events:0": [-1, -1], "x.orders:0": [0, 1]}, net=600, version=2)
    click["snaps"][0].update(campaign_id="cmp", occurred_ms=1_700_000_000_000)
    await store.step(click)
    crc = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:conv:b1:crc")
    cr1 = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:conv:b1:cr1")
    assert (crc[b"orders"], crc[b"coupon_orders"], crc[b"gmv|USD"], crc[b"link|L1|orders"]) == (b"0", b"0", b"0", b"0")
    assert (cr1[b"orders"], cr1[b"click_orders"], cr1[b"stream|s1|click_orders"], cr1[b"gmv|USD"]) == (
        b"1", b"1", b"1", b"600")
    assert b"coupon_orders" not in cr1
    assert await store.client.smembers(f"{keys.part_tag(store.prefix, 0)}:convidx:b1") == {b"crc", b"cr1"}
