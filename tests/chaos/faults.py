"""Injecting one fault into a running pipeline and measuring it.

- :class:`ObservedHttp`: the simulator's own HTTP client (``producers.transport.Http``: 503 →
  Retry-After, refused/reset → the identical bytes again), observed: requests in flight and the
  events they carry, answers by time;
- :class:`Faults`: ``kill -9`` a component, keep it down, restart it, and measure what was in flight
  at the kill (HTTP requests at the simulator; records in Kafka that the stages behind it had not
  applied), the retries the simulator made meanwhile, and how long until the restarted component
  answered and its stage had caught up with everything that was in Kafka when it came back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from liveledger.settings import Settings
from producers.transport import Http, Reply
from tests.chaos.services import ChaosStack, PrivateServices
from tests.e2e.test_pipeline_truth import PipelineProbe, Positions

Json = dict[str, Any]
# Which stages (tests/e2e/test_pipeline_truth.py STAGES) must catch up after a fault of each component.
WORKER = ("live", "ledger")
SINK = ("sink",)
EVERY_STAGE = ("live", "ledger", "sink")


class ObservedHttp(Http):
    """``producers.transport.Http`` with counters a fault test reads while the simulator runs
    (installed with ``monkeypatch.setattr(producers.simulator, "Http", ObservedHttp)``)."""

    current: ClassVar[ObservedHttp | None] = None
    ingest_url: ClassVar[str] = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_flight = 0
        self.in_flight_events = 0
        self.ingest_acks: list[float] = []  # time.monotonic() of every 2xx/302 answer of ingest
        self.ingest_acked_events: list[int] = []  # and the events of that request (1 for a webhook or redirect)
        self.ingest_answers: Counter[int] = Counter()
        self.traffic = asyncio.Event()  # set by the first request to ingest (the setup through the API is done)
        self.finished = False
        ObservedHttp.current = self

    @classmethod
    async def once_sending(cls, sim: asyncio.Task[Any], timeout: float = 120) -> ObservedHttp:
        """The simulator's client, once ``sim`` has sent its first request to ingest (setup done)."""
        while cls.current is None and not sim.done():
            await asyncio.sleep(0.05)
        http = cls.current
        assert http is not None, sim.result()
        await asyncio.wait_for(http.traffic.wait(), timeout=timeout)
        return http

    async def __aexit__(self, *exc: object) -> None:
        self.finished = True
        await super().__aexit__(*exc)

    async def request(self, method: str, url: str, body: bytes | None = None,
                      headers: dict[str, str] | None = None) -> Reply:
        to_ingest = url.startswith(self.ingest_url)
        events = 1
        if url.endswith("/v1/events") and body:
            events = len(orjson.loads(body).get("events", []))
        if to_ingest:
            self.traffic.set()
        self.in_flight += 1
        self.in_flight_events += events
        try:
            reply = await super().request(method, url, body, headers)
        finally:
            self.in_flight -= 1
            self.in_flight_events -= events
        if to_ingest:
            self.ingest_answers[reply.status] += 1
            if 200 <= reply.status < 400:
                self.ingest_acks.append(time.monotonic())
                self.ingest_acked_events.append(events)
        return reply

    def snapshot(self) -> Json:
        return {"in_flight_requests": self.in_flight, "in_flight_events": self.in_flight_events,
                "attempts": self.stats.attempts, "transport_retries": self.stats.transport_retries,
                "retry_after_waits": self.stats.retry_after_waits,
                "statuses": dict(self.stats.statuses)}

    def acks_between(self, start: float, end: float) -> tuple[int, int]:
        """(requests, events) ingest acknowledged between two ``time.monotonic()`` instants."""
        hits = [n for t, n in zip(self.ingest_acks, self.ingest_acked_events, strict=True) if start <= t <= end]
        return len(hits), sum(hits)

    def first_ack_after(self, t: float) -> float | None:
        return next((a for a in self.ingest_acks if a > t), None)


@dataclass
class Target:
    kill: Callable[[], None]
    restart: Callable[[], Awaitable[float]]
    stages: tuple[str, ...]  # what must catch up after it
    # when to kill: "backlog" -- while its stages have records in Kafka they have not applied yet;
    # "requests" -- while the simulator has requests in flight
    when: str = "backlog"


@dataclass
class Faults:
    stack: ChaosStack
    services: PrivateServices
    records: list[Json] = field(default_factory=list)
    backlogs: list[Positions] = field(default_factory=list)  # per record: stage -> tp -> first unapplied
    ends: list[dict[TopicPartition, int]] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)  # "killed_at_s" counts from here

    @property
    def settings(self) -> Settings:
        return self.stack.settings

    def targets(self) -> dict[str, Target]:
        st, sv = self.stack, self.services
        return {
            "stream worker": Target(lambda: st.kill9("worker"), lambda: st.restart("worker"), WORKER),
            "sink": Target(lambda: st.kill9("sink"), lambda: st.restart("sink"), SINK),
            "ingest": Target(lambda: st.kill9("ingest"), lambda: st.restart("ingest"), WORKER, when="requests"),
            "redis": Target(sv.redis.kill9, sv.redis.restart, WORKER),
            "clickhouse": Target(sv.clickhouse.kill9, sv.clickhouse.restart, SINK),
            "kafka": Target(sv.kafka.kill9, sv.kafka.restart, EVERY_STAGE, when="requests"),
        }

    async def kill_at_the_moment(self, target: Target, http: ObservedHttp, timeout: float = 20.0
                                 ) -> tuple[dict[TopicPartition, int], Positions, Json, float, float]:
        """Kill ``target`` at its moment (see :attr:`Target.when`; within ``timeout``, else anyway).
        Returns the Kafka end offsets and every stage's position just before the kill, the
        simulator's counters at the kill, and the kill's monotonic and wall-clock times."""
        deadline = time.monotonic() + timeout
        async with PipelineProbe(self.settings) as probe:
            while True:
                if target.when == "requests":
                    while http.in_flight == 0 and time.monotonic() < deadline:
                        await asyncio.sleep(0.005)
                ends, applied = await probe.ends(), await probe.applied()
                if target.when == "requests":
                    ready = http.in_flight > 0
                else:
                    ready = bool(probe.behind(ends, {s: applied[s] for s in target.stages}))
                if ready or time.monotonic() >= deadline:
                    before = http.snapshot()
                    t_kill, t_kill_wall = time.monotonic(), time.time()
                    target.kill()
                    return ends, applied, before, t_kill, t_kill_wall
                await asyncio.sleep(0.01)

    async def ends_past(self, reference: Positions, stages: tuple[str, ...], timeout: float = 60.0
                        ) -> dict[TopicPartition, int]:
        """End offsets as soon as some topic of ``stages`` has records past ``reference`` (records
        the stage had not applied at the kill, or that were written after it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                async with PipelineProbe(self.settings) as probe:
                    while time.monotonic() < deadline:
                        ends = await probe.ends()
                        if any(ends[tp] > off for s in stages for tp, off in reference[s].items()):
                            return ends
                        await asyncio.sleep(0.1)
            except Exception:  # Kafka still coming back
                await asyncio.sleep(0.5)
        raise AssertionError(f"no new records for {stages} within {timeout:.0f}s of the restart")

    async def caught_up(self, stages: tuple[str, ...], ends: dict[TopicPartition, int], timeout: float) -> None:
        """Until ``stages`` applied every record below ``ends`` (polling; a stage's store may still
        be reconnecting)."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                async with PipelineProbe(self.settings) as probe:
                    while time.monotonic() < deadline:
                        last = probe.behind(ends, await probe.applied(stages))
                        if not last:
                            return
                        await asyncio.sleep(0.1)
            except Exception as exc:  # a service still coming back: try again with fresh clients
                last = repr(exc)
                await asyncio.sleep(0.5)
        raise AssertionError(f"{stages} not caught up within {timeout:.0f}s: {last}")

    async def inject(self, kind: str, round_: int, down_s: float, http: ObservedHttp,
                     during: Callable[[float], Awaitable[Json]] | None = None,
                     catch_up_timeout: float = 120.0) -> Json:
        """kill -9 ``kind``, keep it down ``down_s`` (running ``during(deadline)`` meanwhile, its
        result merged into the record), restart it, wait until its stages applied every record that
        was in Kafka once records past the kill exist; returns the measurements (also kept in
        :attr:`records`)."""
        target = self.targets()[kind]
        ends, applied, before, t_kill, t_kill_wall = await self.kill_at_the_moment(target, http)
        extra = await during(t_kill + down_s) if during is not None else {}
        await asyncio.sleep(max(0.0, down_s - (time.monotonic() - t_kill)))
        t_restart, t_restart_wall = time.monotonic(), time.time()
        restart_s = await target.restart()
        t_back = time.monotonic()
        reference = applied if target.when == "backlog" else {s: {tp: ends[tp] for tp in applied[s]}
                                                               for s in applied}
        goal = await self.ends_past(reference, target.stages)
        await self.caught_up(target.stages, goal, catch_up_timeout)
        t_done = time.monotonic()
        after = http.snapshot()
        first_ack = http.first_ack_after(t_kill)
        statuses: Counter[int] = Counter(after["statuses"])
        statuses.subtract(before["statuses"])
        record: Json = {
            "t_kill": t_kill, "t_restart": t_restart, "t_back": t_back, "t_done": t_done,
            "t_kill_wall": t_kill_wall, "t_restart_wall": t_restart_wall,
            "fault": kind, "round": round_, "killed_at_s": round(t_kill - self.t0, 2),
            "simulator_sending": not http.finished,
            "in_flight_http_requests": before["in_flight_requests"],
            "in_flight_http_events": before["in_flight_events"],
            "down_s": round(t_restart - t_kill, 2),
            "restart_s": round(restart_s or (t_back - t_restart), 2),
            "caught_up_s": round(t_done - t_restart, 2),
            "first_ingest_ack_after_kill_s": None if first_ack is None else round(first_ack - t_kill, 2),
            "retries": {"transport": after["transport_retries"] - before["transport_retries"],
                        "retry_after_503": after["retry_after_waits"] - before["retry_after_waits"]},
            "answers": {str(k): v for k, v in sorted(statuses.items()) if v},
            "stages": list(target.stages),
            **extra,
        }
        self.records.append(record)
        self.ends.append(ends)
        self.backlogs.append(applied)
        return record

    async def count_backlogs(self) -> None:
        """Fill in every record's ``backlog_at_kill``: the events (and ledger facts) acknowledged by
        ingest, in Kafka at the kill, that the stages behind the killed component had not applied yet."""
        wanted: dict[TopicPartition, tuple[int, int]] = {}
        for ends, applied in zip(self.ends, self.backlogs, strict=True):
            for done in applied.values():
                for tp, start in done.items():
                    lo, hi = wanted.get(tp, (start, ends[tp]))
                    wanted[tp] = (min(lo, start), max(hi, ends[tp]))
        sizes = await _record_sizes(self.settings, wanted)
        for rec, ends, applied in zip(self.records, self.ends, self.backlogs, strict=True):
            backlog: Json = {}
            for stage, stage_done in applied.items():
                n: Counter[str] = Counter()
                for tp, start in stage_done.items():
                    short = tp.topic.rsplit(".", 1)[1]
                    for off in range(start, ends[tp]):
                        n[short] += sizes.get((tp, off), 0)
                backlog[stage] = dict(n)
            rec["backlog_at_kill"] = backlog


async def _record_sizes(settings: Settings, ranges: dict[TopicPartition, tuple[int, int]]
                        ) -> dict[tuple[TopicPartition, int], int]:
    """(tp, offset) -> events in that record (an ingest batch: its events; any other record: 1)."""
    ranges = {tp: r for tp, r in ranges.items() if r[1] > r[0]}
    out: dict[tuple[TopicPartition, int], int] = {}
    if not ranges:
        return out
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(ranges))
        for tp, (start, _) in ranges.items():
            consumer.seek(tp, start)
        pending = set(ranges)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=2000)
            if not batch:
                break
            for tp, recs in batch.items():
                for rec in recs:
                    if rec.offset < ranges[tp][1]:
                        n = 1
                        if tp.topic.endswith(".events") and rec.value:
                            n = len(orjson.loads(rec.value).get("events", []))
                        out[(tp, rec.offset)] = n
                    if rec.offset >= ranges[tp][1] - 1:
                        pending.discard(tp)
    finally:
        await consumer.stop()
    return out


def summary(records: list[Json]) -> dict[str, Json]:
    """Per fault kind: kills, events in flight, retries, time to catch up (each kill and the worst)."""
    out: dict[str, Json] = {}
    for rec in records:
        k = out.setdefault(rec["fault"], {"kills": 0, "in_flight_http_events": [], "backlog_events": [],
                                          "retries": [], "restart_s": [], "caught_up_s": [], "down_s": []})
        k["kills"] += 1
        k["in_flight_http_events"].append(rec["in_flight_http_events"])
        stages = rec.get("backlog_at_kill", {})
        k["backlog_events"].append({s: v.get("events", 0) + v.get("orders", 0) + v.get("ledger", 0)
                                    for s, v in stages.items() if s in rec["stages"]})
        k["retries"].append(rec["retries"]["transport"] + rec["retries"]["retry_after_503"])
        for f in ("restart_s", "caught_up_s", "down_s"):
            k[f].append(rec[f])
    return out
