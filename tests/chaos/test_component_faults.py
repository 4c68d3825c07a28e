"""kill -9 of every component, twice, during one simulator run; then ground truth = Redis = ClickHouse.

The stack (API, ingest, one stream worker, the ClickHouse sink) runs on private Kafka, Redis and
ClickHouse (tests/chaos/services.py), so the broker, Redis and ClickHouse can be killed too. While the
simulator (``producers``, its own HTTP client: refused/reset connections resent with identical bytes
for up to ``max_outage_s``, 503 waited out after Retry-After) drives the real ingest, each component
is killed with SIGKILL, kept down, restarted, and the stages behind it must catch up before the next
fault: stream worker, sink, ingest, Redis, ClickHouse, Kafka -- then the same again, the second
ClickHouse fault being a 60 s outage while ingest keeps taking traffic.

Measured per fault (printed, and written to ``faults.json`` in this module's tmp dir): requests and
events in flight at the simulator at the kill, the events in Kafka not yet applied by the stages
behind the component (``backlog_at_kill``), the simulator's retries until caught up, the time until
the component answered again and until its stages had applied everything in Kafka when it was back.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest

import producers.plan
import producers.simulator
from producers.config import SimConfig
from producers.simulator import GroundTruth, run_simulation
from tests.chaos.checks import assert_everything_delivered, assert_truth
from tests.chaos.faults import Faults, Json, ObservedHttp, summary
from tests.chaos.services import ChaosStack, PrivateServices, running_stack
from tests.e2e.test_pipeline_truth import PipelineProbe, drain

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.slow]

KINDS = ("stream worker", "sink", "ingest", "redis", "clickhouse", "kafka")
DOWN_S = {"stream worker": 1.0, "sink": 1.0, "ingest": 1.0, "redis": 2.0, "clickhouse": 2.0, "kafka": 2.0}
CLICKHOUSE_OUTAGE_S = 60.0
# Round 1: each component once. Round 2: each again, ClickHouse last and for a minute.
SCHEDULE = [(1, k, DOWN_S[k]) for k in KINDS] + \
           [(2, k, DOWN_S[k]) for k in KINDS if k != "clickhouse"] + [(2, "clickhouse", CLICKHOUSE_OUTAGE_S)]


@dataclass
class FaultRun:
    stack: ChaosStack
    gt: GroundTruth
    faults: list[Json]
    watermark_during: list[Json]
    watermark_after: Json | None
    report: Path


def sim_config(stack: ChaosStack) -> SimConfig:
    # ~180 s of traffic (30 simulated minutes at 10x; the refunds and cancellations of the last
    # orders follow for up to 10 simulated minutes more): 6 streams, a tick (batches, redirects and
    # webhooks per stream) every 2 s. A refused connection is resent for up to 90 s (an ingest
    # restart takes ~2 s); a 503 (Kafka down: ingest answers within LIVELEDGER_INGEST_SEND_TIMEOUT_S)
    # is resent after its Retry-After (2 s), up to 20 times.
    return SimConfig(
        seed=31, id_prefix=f"cf{uuid.uuid4().hex[:8]}", ingest_url=stack.ingest_url, api_url=stack.api_url,
        admin_token=stack.settings.admin_token, brands=3, creators=6, streams=6, viewers=150, minutes=30, speed=10,
        tick_seconds=20, dup_rate=0.05, retry_rate=0.03, late_rate=0.03, shopify_rate=0.4, refund_rate=0.3,
        coupon_rate=0.3, edge_rate=0.1, invalid_rate=0.005, max_outage_s=90, progress=False)


async def watermark(stack: ChaosStack) -> Json:
    """One sample of ``GET /v1/finance/watermark`` (admin): wall time, status, body."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        try:
            resp = await client.get(f"{stack.api_url}/v1/finance/watermark",
                                    headers={"Authorization": f"Bearer {stack.settings.admin_token}"})
            body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else None
            return {"at": time.time(), "status": resp.status_code, "body": body}
        except httpx.HTTPError as exc:
            return {"at": time.time(), "status": 0, "body": repr(exc)}


async def scenario(stack: ChaosStack, services: PrivateServices) -> tuple[GroundTruth, list[Json], list[Json], Json]:
    faults = Faults(stack, services)
    sim = asyncio.create_task(run_simulation(sim_config(stack)))
    watermarks: list[Json] = []
    try:
        http = await ObservedHttp.once_sending(sim)
        faults.t0 = time.monotonic()
        await asyncio.sleep(3)

        async def clickhouse_outage(deadline: float) -> Json:
            """While ClickHouse is down: how far behind the sink falls, the watermark each second."""
            sink_behind = 0
            t_kill = time.monotonic()
            async with PipelineProbe(stack.settings) as probe:
                while time.monotonic() < deadline - 1:
                    behind = probe.behind(await probe.ends(), await probe.applied(("sink",)))
                    sink_behind = max(sink_behind, sum(behind.values()))
                    watermarks.append(await watermark(stack))
                    await asyncio.sleep(1.0)
            requests, events = http.acks_between(t_kill, deadline)
            return {"sink_records_behind_max": sink_behind, "ingest_acked_requests_during_outage": requests,
                    "ingest_acked_events_during_outage": events}

        for round_, kind, down_s in SCHEDULE:
            outage = kind == "clickhouse" and down_s >= CLICKHOUSE_OUTAGE_S
            rec = await faults.inject(kind, round_, down_s, http, during=clickhouse_outage if outage else None)
            print(f"fault {kind:13} #{round_}: killed at {rec['killed_at_s']:6.1f}s, down {rec['down_s']:5.1f}s, "
                  f"back {rec['restart_s']:4.1f}s, caught up {rec['caught_up_s']:5.1f}s after the restart, "
                  f"in flight {rec['in_flight_http_requests']} requests / {rec['in_flight_http_events']} events, "
                  f"retries {rec['retries']}", flush=True)
        gt = await sim
        await drain(stack.settings, timeout=120)
        after = await watermark(stack)
        await faults.count_backlogs()
        return gt, faults.records, watermarks, after
    finally:
        if not sim.done():
            sim.cancel()


@pytest.fixture(scope="module")
def run(chaos_services: PrivateServices, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRun]:
    tmp = tmp_path_factory.mktemp("component-faults")
    with pytest.MonkeyPatch.context() as mp, running_stack(chaos_services, tmp) as stack:
        # Repeat opens of a link (click hygiene) are claimed in Redis and the claim fails open while
        # Redis is down (docs/ingest.md): a repeat then counts a click the ground truth does not.
        # This run is about faults; tests/e2e/test_pipeline_truth.py covers repeats.
        mp.setattr(producers.plan, "REPEAT_REDIRECT_RATE", 0.0)
        mp.setattr(producers.simulator, "Http", ObservedHttp)
        mp.setattr(ObservedHttp, "ingest_url", stack.ingest_url)
        mp.setattr(ObservedHttp, "current", None)
        t0 = time.monotonic()
        gt, records, watermarks, after = asyncio.run(scenario(stack, chaos_services))
        gt.write(tmp / "ground_truth.json")
        report = tmp / "faults.json"
        by_kind = summary(records)
        doc = {"total_s": round(time.monotonic() - t0, 1), "simulator_totals": gt.totals,
               "by_kind": by_kind, "faults": records,
               "watermark_during_clickhouse_outage": watermarks, "watermark_after": after}
        report.write_text(json.dumps(doc, indent=2, default=str))
        print(f"\n{len(records)} faults in {doc['total_s']}s; per kind:\n"
              + "\n".join(f"  {k:13} {json.dumps(v)}" for k, v in by_kind.items()) + f"\nreport: {report}")
        yield FaultRun(stack, gt, records, watermarks, after, report)


def test_every_component_killed_twice_while_the_simulator_kept_sending(run: FaultRun) -> None:
    kills = {k: sum(1 for r in run.faults if r["fault"] == k) for k in KINDS}
    assert all(n >= 2 for n in kills.values()), kills
    assert all(r["simulator_sending"] for r in run.faults), [r["fault"] for r in run.faults
                                                             if not r["simulator_sending"]]
    assert_everything_delivered(run.gt)
    # the faults reached the senders: resent connections (ingest down) and 503s (Kafka down)
    by_kind = {k: sum(r["retries"]["transport"] + r["retries"]["retry_after_503"] for r in run.faults
                      if r["fault"] == k) for k in KINDS}
    assert by_kind["ingest"] > 0 and by_kind["kafka"] > 0, by_kind


def test_ground_truth_equals_redis_and_clickhouse(run: FaultRun) -> None:
    assert_truth(run.stack, run.gt)


def test_clickhouse_down_60s_while_ingest_keeps_taking_traffic(run: FaultRun) -> None:
    """Nothing lost (the truth test above) and: ingest answered throughout, the sink fell behind
    while ClickHouse was down and caught up after it came back."""
    (outage,) = [r for r in run.faults if r["fault"] == "clickhouse" and r["down_s"] >= CLICKHOUSE_OUTAGE_S]
    assert outage["ingest_acked_requests_during_outage"] > 50, outage
    assert outage["ingest_acked_events_during_outage"] > 1000, outage
    assert not {s for s in outage["answers"] if s.startswith("5") or s == "0"}, outage["answers"]
    assert outage["sink_records_behind_max"] > 0, outage
    assert outage["caught_up_s"] < 60, outage


def test_watermark_stays_behind_during_the_clickhouse_outage_and_advances_after(run: FaultRun) -> None:
    """Contract "Completeness for finance": the watermark stops while a stage is down."""
    (outage,) = [r for r in run.faults if r["fault"] == "clickhouse" and r["down_s"] >= CLICKHOUSE_OUTAGE_S]
    samples = run.watermark_during
    assert samples, "no watermark samples taken during the outage"

    def at(sample: Json) -> float:
        return datetime.fromisoformat(sample["body"]["complete_up_to"]).timestamp()

    ok = [s for s in samples if s["status"] == 200]
    assert ok, samples
    # while ClickHouse is down, nothing acknowledged after the kill can be complete
    assert max(at(s) for s in ok) <= outage["t_kill_wall"] + 0.5, ok[-3:]
    # and once the sink caught up, the watermark passed the end of the outage
    assert run.watermark_after is not None and run.watermark_after["status"] == 200, run.watermark_after
    assert at(run.watermark_after) > outage["t_restart_wall"], run.watermark_after
