"""The Redis flush scripts against a real Redis: offset fencing and versioned order snapshots."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from liveledger.redis_client import redis_client
from liveledger.settings import Settings
from liveledger.storage import redis_keys as keys
from schemas.wire import decode_events_record as parse_event_batch
from streams.live import LiveBatch
from streams.redis_state import LiveStore
from tests.streams import kit

pytestmark = pytest.mark.redis


@pytest.fixture
async def store() -> AsyncIterator[LiveStore]:
    settings: Settings = kit.fresh_settings()
    client = redis_client(settings)  # a Redis Cluster too (LIVELEDGER_REDIS_CLUSTER)
    yield LiveStore(client, settings.topic_prefix)
    keys = await client.keys(f"{settings.topic_prefix}:*")
    if keys:
        await client.delete(*keys)
    await client.aclose()


def live_batch(store: LiveStore, first: int, last: int, events: list[dict[str, object]]) -> dict[str, object]:
    lb = LiveBatch(store.prefix, "live", "x.events", 0)
    lb.add_offset(first)
    lb.add_offset(last)
    lb.add_events(parse_event_batch(kit.batch("b1", events)))
    return lb.to_script_arg(1)


async def test_replayed_batch_is_fenced_and_duplicates_subtracted(store: LiveStore) -> None:
    evs = [kit.view("e1", "s1", "v1"), kit.view("e1", "s1", "v1"), kit.click("c1", "s1", "v1", "p1", "cr", None)]
    assert await store.apply_live(live_batch(store, 0, 1, evs)) == (True, 1)
    assert await store.apply_live(live_batch(store, 0, 1, evs)) == (False, 1)  # replay: skipped
    assert await store.apply_live(live_batch(store, 2, 2, evs[:1])) == (True, 1)  # re-sent later: de-duped
    h = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:live:s1:counts")
    assert (h[b"views"], h[b"clicks"]) == (b"1", b"1")
    assert await store.fence("live", "x.events", 0) == 2


async def test_a_gap_is_refused_unless_the_jump_is_declared(store: LiveStore) -> None:
    evs = [kit.view("e1", "s1", "v1")]
    assert (await store.apply_live(live_batch(store, 0, 0, evs)))[0]
    gap = live_batch(store, 5, 6, [kit.view("e2", "s1", "v2")])
    assert await store.apply_live(gap) == (False, 0)  # offsets 1..4 never applied: refused, nothing changes
    h = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:live:s1:counts")
    assert h[b"views"] == b"1" and await store.fence("live", "x.events", 0) == 0
    assert await store.apply_live({**gap, "jump": True}) == (True, 0)  # past the log start: allowed
    assert await store.fence("live", "x.events", 0) == 6


async def test_creator_clicks_count_once_per_click_id(store: LiveStore) -> None:
    c1 = kit.click("c1", "s1", "v1", "p1", "cr", "cmp")
    lb = LiveBatch(store.prefix, "live", "x.events", 0)
    lb.add_offset(0)
    lb.add_events(parse_event_batch(kit.batch("b1", [c1, c1, kit.click("c2", "s1", "v2", "p1", "cr", None)])))
    assert await store.apply_live(lb.to_script_arg(1)) == (True, 1)
    conv = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:conv:b1:cr")
    assert (conv[b"clicks"], conv[b"stream|s1|clicks"], conv[b"campaign|cmp|clicks"]) == (b"2", b"2", b"1")
    assert await store.client.smembers(f"{keys.part_tag(store.prefix, 0)}:convidx:b1") == {b"cr"}
    products = await store.client.hgetall(f"{keys.part_tag(store.prefix, 0)}:live:s1:products")
    assert products[b"clicks|p1"] == b"2"
