"""kill -9 of one broker of a 3-node Kafka cluster while the simulator sends: nothing acknowledged is
lost, ingest keeps answering, the broker rejoins.

The whole pipeline (API, ingest, one stream worker, the ClickHouse sink) runs on a private 3-node
KRaft cluster (tests/cluster/kafka_cluster.py: the nodes of ``make up CLUSTER=1`` on free ports) with
the application's topics at replication factor 3 and ``min.insync.replicas=2``, every producer
``acks=all``, and private Redis and ClickHouse. While the simulator (its own retrying HTTP client:
503 waited out after Retry-After) drives the real ingest, the broker leading the most partitions of
the application's topics is killed with SIGKILL while requests are in flight, kept down 10 s,
restarted, and must get back into every partition's in-sync replicas.

Measured (printed, and written to ``kafka_cluster.json`` in the test's tmp dir): requests and events
in flight at the kill, ingest's 503 answers and how long after the kill the last one came, requests
ingest acknowledged while the broker was down, the time until the stages behind had applied
everything, and the time from the restart until every partition had 3 in-sync replicas again.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

import producers.plan
import producers.simulator
from devstack import kafka_cluster
from liveledger.topics import topic_specs
from producers.config import SimConfig
from producers.simulator import GroundTruth, run_simulation
from producers.transport import Reply
from tests.chaos.checks import assert_everything_delivered, assert_truth
from tests.chaos.faults import EVERY_STAGE, Faults, Json, ObservedHttp, Target
from tests.chaos.services import ChaosStack, running_stack
from tests.cluster.kafka_cluster import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, ClusterNode, ClusterServices
from tests.e2e.test_pipeline_truth import drain

pytestmark = [pytest.mark.cluster, pytest.mark.e2e, pytest.mark.slow]

DOWN_S = 10.0  # the broker stays dead this long: longer than failover (broker.session.timeout.ms=3000)
ISR_TIMEOUT_S = 120.0


class AnswerLog(ObservedHttp):
    """:class:`ObservedHttp` that also keeps the time of every 503 answer (each attempt: the
    transport waits out its Retry-After and resends, so the request's final answer is a success)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unavailable: list[float] = []

    def _retry_after(self, reply: Reply) -> float:
        self.unavailable.append(time.monotonic())
        return super()._retry_after(reply)


@dataclass
class BrokerFaults(Faults):
    """:class:`Faults` with one target: the broker chosen at run time."""

    target: Target | None = None

    def targets(self) -> dict[str, Target]:
        assert self.target is not None
        return {"kafka broker": self.target}


@dataclass
class ClusterRun:
    stack: ChaosStack
    gt: GroundTruth
    record: Json
    topic_check: Json


def sim_config(stack: ChaosStack) -> SimConfig:
    # ~48 s of traffic (16 simulated minutes at 20x), refunds and cancellations of the last orders
    # up to ~30 s more (the fault, its restart and catch-up take ~60 s from the first request); a
    # 503 is resent after its Retry-After, a refused connection for up to 90 s.
    return SimConfig(
        seed=47, id_prefix=f"kc{uuid.uuid4().hex[:8]}", ingest_url=stack.ingest_url, api_url=stack.api_url,
        admin_token=stack.settings.admin_token, brands=3, creators=6, streams=6, viewers=150, minutes=16, speed=20,
        tick_seconds=20, dup_rate=0.05, retry_rate=0.03, late_rate=0.03, shopify_rate=0.4, refund_rate=0.3,
        coupon_rate=0.3, edge_rate=0.1, invalid_rate=0.005, max_outage_s=90, progress=False)


async def topic_replication(stack: ChaosStack, services: ClusterServices) -> Json:
    """Replicas per partition and ``min.insync.replicas`` of each application topic, as the cluster has them."""
    names = [s.name for s in topic_specs(stack.settings)]
    parts = await services.cluster.partitions(names)
    admin = AIOKafkaAdminClient(bootstrap_servers=services.cluster.bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    min_isr: dict[str, str] = {}
    for response in described:
        for resource in response.resources:
            name, configs = resource[3], resource[4]
            min_isr[name] = next(str(c[1]) for c in configs if c[0] == "min.insync.replicas")
    return {"replicas": sorted({len(p["replicas"]) for p in parts}), "partitions": len(parts),
            "min_insync_replicas": min_isr}


async def wait_isr_full(services: ClusterServices, topics: list[str], since: float) -> Json:
    """Until every partition of ``topics`` has all its replicas in sync; seconds since ``since``."""
    last: Any = None
    while time.monotonic() - since < ISR_TIMEOUT_S:
        try:
            parts = await services.cluster.partitions(topics)
            last = kafka_cluster.under_replicated(parts)
            if parts and not last:
                return {"isr_full_after_restart_s": round(time.monotonic() - since, 2),
                        "isr_sizes": sorted({len(p["isr"]) for p in parts})}
        except Exception as exc:  # a node still coming back
            last = repr(exc)
        await asyncio.sleep(0.2)
    return {"isr_full_after_restart_s": None, "under_replicated": last}


async def scenario(stack: ChaosStack, services: ClusterServices) -> tuple[GroundTruth, Json]:
    app_topics = [s.name for s in topic_specs(stack.settings)]
    faults = BrokerFaults(stack, services)
    sim = asyncio.create_task(run_simulation(sim_config(stack)))
    try:
        http = await AnswerLog.once_sending(sim)
        assert isinstance(http, AnswerLog)
        faults.t0 = time.monotonic()
        await asyncio.sleep(8)
        leaders = await services.cluster.leaders(app_topics)
        victim_id = leaders.most_common(1)[0][0]
        victim: ClusterNode = services.cluster.nodes[victim_id]
        isr_task: list[asyncio.Task[Json]] = []

        async def restart() -> float:
            took = await victim.restart()
            isr_task.append(asyncio.create_task(wait_isr_full(services, app_topics, time.monotonic() - took)))
            return took

        async def while_down(deadline: float) -> Json:
            """Leadership once the cluster fenced the dead node (sampled at the end of the outage)."""
            await asyncio.sleep(max(0.0, deadline - time.monotonic() - 1.0))
            parts = await services.cluster.partitions(app_topics)
            leaders_now = Counter(str(p["leader"]) for p in parts)
            return {"leaders_at_end_of_outage": dict(sorted(leaders_now.items())),
                    "isr_sizes_during_outage": sorted({len(p["isr"]) for p in parts})}

        faults.target = Target(victim.kill9, restart, EVERY_STAGE, when="requests")
        record = await faults.inject("kafka broker", 1, DOWN_S, http, during=while_down)
        record["killed_node"] = victim_id
        record["partitions_led_by_killed_node"] = leaders[victim_id]
        assert isr_task, "the restart did not run"
        record.update(await isr_task[0])
        t_kill, t_restart = record["t_kill"], record["t_restart"]
        record["ingest_acked_requests_while_down"], record["ingest_acked_events_while_down"] = \
            http.acks_between(t_kill, t_restart)
        after_kill = [t - t_kill for t in http.unavailable if t >= t_kill]
        record["ingest_503_after_kill"] = len(after_kill)
        record["last_503_after_kill_s"] = round(max(after_kill), 2) if after_kill else None
        # the longest time without any acknowledgement by ingest while the broker was down
        acks = [t_kill, *(t for t in http.ingest_acks if t_kill < t < t_restart), t_restart]
        record["longest_ack_gap_while_down_s"] = round(max(b - a for a, b in pairwise(acks)), 2)
        gt = await sim
        await drain(stack.settings, timeout=120)
        record["ingest_503_total"] = http.stats.statuses.get(503, 0)
        return gt, record
    finally:
        if not sim.done():
            sim.cancel()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterRun]:
    tmp = tmp_path_factory.mktemp("kafka-cluster")
    services = ClusterServices(tmp / "services")
    t0 = time.monotonic()
    try:
        took = asyncio.run(services.start())
        print(f"\nprivate services ready ({', '.join(f'{k} {v:.1f}s' for k, v in took.items())}) under {tmp}")
        with pytest.MonkeyPatch.context() as mp, running_stack(services, tmp) as stack:
            # as tests/chaos/test_component_faults.py: repeat opens of a link are covered elsewhere
            mp.setattr(producers.plan, "REPEAT_REDIRECT_RATE", 0.0)
            mp.setattr(producers.simulator, "Http", AnswerLog)
            mp.setattr(ObservedHttp, "ingest_url", stack.ingest_url)
            mp.setattr(ObservedHttp, "current", None)
            topic_check = asyncio.run(topic_replication(stack, services))
            gt, record = asyncio.run(scenario(stack, services))
            gt.write(tmp / "ground_truth.json")
            record["services_start_s"] = {k: round(v, 1) for k, v in took.items()}
            record["test_s"] = round(time.monotonic() - t0, 1)
            doc = {"topics": topic_check, "fault": record, "simulator_totals": gt.totals}
            (tmp / "kafka_cluster.json").write_text(json.dumps(doc, indent=2, default=str))
            print(f"broker {record['killed_node']} killed at {record['killed_at_s']}s (led "
                  f"{record['partitions_led_by_killed_node']} partitions), in flight "
                  f"{record['in_flight_http_requests']} requests / {record['in_flight_http_events']} events; "
                  f"down {record['down_s']}s, ingest acked "
                  f"{record['ingest_acked_requests_while_down']} requests meanwhile; 503s after the kill "
                  f"{record['ingest_503_after_kill']} (last {record['last_503_after_kill_s']}s after it), "
                  f"longest time without an ack while down {record['longest_ack_gap_while_down_s']}s; back in "
                  f"{record['restart_s']}s, caught up {record['caught_up_s']}s after the restart, ISR 3 again "
                  f"{record['isr_full_after_restart_s']}s after the restart; test {record['test_s']}s | "
                  f"report {tmp / 'kafka_cluster.json'}", flush=True)
            yield ClusterRun(stack, gt, record, topic_check)
    finally:
        services.stop()


def test_topics_have_three_replicas_and_two_must_be_in_sync(run: ClusterRun) -> None:
    assert run.topic_check["replicas"] == [REPLICATION_FACTOR], run.topic_check
    assert set(run.topic_check["min_insync_replicas"].values()) == {str(MIN_INSYNC_REPLICAS)}, run.topic_check
    assert len(run.topic_check["min_insync_replicas"]) == len(topic_specs(run.stack.settings)), run.topic_check


def test_a_killed_leader_loses_nothing_acknowledged(run: ClusterRun) -> None:
    rec = run.record
    assert rec["partitions_led_by_killed_node"] > 0, rec
    assert rec["in_flight_http_requests"] > 0, rec  # killed while the simulator waited for answers
    assert_everything_delivered(run.gt)
    assert_truth(run.stack, run.gt)


def test_ingest_kept_taking_writes_with_one_broker_down(run: ClusterRun) -> None:
    rec = run.record
    # the partitions the dead node led moved to the two others, each still with 2 replicas in sync
    assert str(rec["killed_node"]) not in rec["leaders_at_end_of_outage"], rec
    assert "-1" not in rec["leaders_at_end_of_outage"], rec
    assert min(rec["isr_sizes_during_outage"]) >= MIN_INSYNC_REPLICAS, rec
    assert rec["ingest_acked_requests_while_down"] > 0, rec


def test_the_restarted_broker_rejoins_every_isr(run: ClusterRun) -> None:
    rec = run.record
    assert rec["isr_full_after_restart_s"] is not None, rec
    assert rec["isr_sizes"] == [REPLICATION_FACTOR], rec
