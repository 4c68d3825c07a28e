"""Redis restarted from an AOF whose last second was lost, while the simulator keeps sending.

``appendfsync everysec`` (the devstack's and docker-compose's Redis) fsyncs the AOF once a second: a
power cut or a kernel crash loses up to the last second of writes. A kill -9 alone loses nothing
(the page cache keeps them), so the test makes the loss itself: Redis is killed right after a live
flush, the AOF's incr file is cut before its last stamped second (``redis-check-aof
--truncate-to-timestamp``, the AOF written with ``aof-timestamp-enabled yes``), and Redis restarts
from what is left.

The offset fences (``<p>:offsets:live|ledger``) are Redis keys beside the data they fence, and each
flush writes both in one script (one MULTI/EXEC block in the AOF): the lost tail takes fences and
effects back together, to an earlier consistent point. The worker keeps running and holds the newer
fences in memory; its next flush is refused by the stored fence (a gap), and the gate re-reads the
offsets Redis lost from Kafka. Shown here: fences went backwards at the restart and forwards again,
``offset_gaps_reread`` / ``records_reread`` grew, and at the end the simulator's ground truth = Redis =
ClickHouse exactly.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

import producers.plan
import producers.simulator
from liveledger.redis_client import sum_hashes
from liveledger.storage import redis_keys as keys
from producers.config import SimConfig
from producers.simulator import GroundTruth, run_simulation
from tests.chaos.checks import assert_everything_delivered, assert_truth
from tests.chaos.faults import ObservedHttp
from tests.chaos.services import ChaosStack, PrivateServices, running_stack
from tests.e2e.test_pipeline_truth import drain

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow]

Json = dict[str, Any]
REREAD_STATS = ("offset_gaps_reread", "records_reread", "records_replayed")


@pytest.fixture
def stack(chaos_services: PrivateServices, tmp_path: Path) -> Iterator[ChaosStack]:
    with pytest.MonkeyPatch.context() as mp, running_stack(chaos_services, tmp_path) as stack:
        mp.setattr(producers.plan, "REPEAT_REDIRECT_RATE", 0.0)  # see test_component_faults.py
        mp.setattr(producers.simulator, "Http", ObservedHttp)
        mp.setattr(ObservedHttp, "ingest_url", stack.ingest_url)
        mp.setattr(ObservedHttp, "current", None)
        yield stack


async def redis_fences(stack: ChaosStack) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """(path -> "<topic>:<partition>" -> fence, the re-read counters of ``<p>:stats``)."""
    p = stack.settings.topic_prefix
    r: Any = aioredis.from_url(stack.settings.redis_url, decode_responses=True, socket_timeout=2)
    try:
        n = stack.settings.event_partitions
        fences = {path: await sum_hashes(r, [keys.offsets(p, q, path) for q in range(n)])
                  for path in ("live", "ledger")}
        stats = await sum_hashes(r, keys.stats_keys(p, n))
        return fences, {k: int(stats.get(k, 0)) for k in REREAD_STATS}
    finally:
        await r.aclose()


async def scenario(stack: ChaosStack, services: PrivateServices) -> tuple[GroundTruth, Json]:
    cfg = SimConfig(
        seed=47, id_prefix=f"ra{uuid.uuid4().hex[:8]}", ingest_url=stack.ingest_url, api_url=stack.api_url,
        admin_token=stack.settings.admin_token, brands=3, creators=6, streams=6, viewers=200, minutes=8, speed=20,
        tick_seconds=10, dup_rate=0.05, retry_rate=0.03, late_rate=0.03, shopify_rate=0.4, refund_rate=0.3,
        coupon_rate=0.3, edge_rate=0.1, invalid_rate=0.005, max_outage_s=90, progress=False)
    sim = asyncio.create_task(run_simulation(cfg))
    try:
        await ObservedHttp.once_sending(sim)
        await asyncio.sleep(8)
        # kill -9 right after a live flush moved a fence, so the last second of the AOF holds flushes
        first, _ = await redis_fences(stack)
        at_kill, stats_at_kill = first, dict.fromkeys(REREAD_STATS, 0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            at_kill, stats_at_kill = await redis_fences(stack)
            if at_kill["live"] != first["live"]:
                break
            await asyncio.sleep(0.01)
        services.redis.kill9()
        t_kill = time.monotonic()
        cut = services.redis.lose_aof_tail(seconds=1)
        restart_s = await services.redis.restart()
        restored, stats_restored = await redis_fences(stack)
        t_back = time.monotonic()
        # forwards again: every fence at least where it was at the kill
        while time.monotonic() < t_back + 60:
            now, _ = await redis_fences(stack)
            if all(now[path].get(k, -1) >= v for path in at_kill for k, v in at_kill[path].items()):
                break
            await asyncio.sleep(0.1)
        t_forward = time.monotonic()
        gt = await sim
        await drain(stack.settings, timeout=120)
        final, stats_final = await redis_fences(stack)
        return gt, {"aof": cut, "fences_at_kill": at_kill, "fences_restored": restored, "fences_final": final,
                    "stats_at_kill": stats_at_kill, "stats_restored": stats_restored, "stats_final": stats_final,
                    "redis_restart_s": round(restart_s, 2), "down_s": round(t_back - t_kill, 2),
                    "fences_forward_again_s": round(t_forward - t_back, 2)}
    finally:
        if not sim.done():
            sim.cancel()


def test_redis_restarted_from_an_aof_missing_its_last_second(stack: ChaosStack, chaos_services: PrivateServices,
                                                            tmp_path: Path) -> None:
    gt, m = asyncio.run(scenario(stack, chaos_services))
    (tmp_path / "redis_aof_tail.json").write_text(json.dumps(m, indent=2))
    lost = {path: {k: (v, m["fences_restored"][path].get(k)) for k, v in m["fences_at_kill"][path].items()
                   if m["fences_restored"][path].get(k, -1) < v} for path in ("live", "ledger")}
    print(f"\nAOF incr {m['aof']['incr_bytes_before']} -> {m['aof']['incr_bytes_after']} bytes; fences that went "
          f"back (at kill, restored): {lost}; re-read counters at kill {m['stats_at_kill']}, restored "
          f"{m['stats_restored']}, final {m['stats_final']}; Redis back in {m['redis_restart_s']}s, fences past "
          f"the kill again {m['fences_forward_again_s']}s later; report {tmp_path / 'redis_aof_tail.json'}")
    # nothing lost or counted twice
    assert_everything_delivered(gt)
    assert_truth(stack, gt)
    # the lost tail took fences back (and the effects they fence with them, same script)
    assert lost["live"], m
    # the live path noticed the gap at its next flush and re-read what Redis lost from Kafka
    assert m["stats_final"]["offset_gaps_reread"] > m["stats_restored"]["offset_gaps_reread"], m
    assert m["stats_final"]["records_reread"] > m["stats_restored"]["records_reread"], m
    worker_log = (stack.log_dir / "worker.log").read_text(errors="replace")
    assert "refused at stored fence" in worker_log and "re-read" in worker_log
    # and forwards again
    assert all(m["fences_final"][path].get(k, -1) >= v for path in ("live", "ledger")
               for k, v in m["fences_at_kill"][path].items()), m
