"""The Faust app: two agents, the live path and the ledger path, over the raw Kafka topics.

- ``live`` (``@app.agent`` over ``ll.events``): counters, presence, unique viewers, per-creator clicks
  (:mod:`streams.live_path`);
- ``ledger`` (``@app.agent`` over ``ll.events`` + ``ll.orders``, co-partitioned by Faust's assignor):
  de-dup, attribution, commission, refunds, ledger facts (:mod:`streams.ledger_path`).

Each agent is a thin loop: ``stream.take_events(n, within=…)`` buffers records (Faust's per-record
cost, ~20-60 µs, is shared by the ~100 events an ingest record carries) and hands the batch to its
path. No Tables, ``concurrency=1``. Faust's own offset commits are *not* the truth: the paths apply
effects fenced by Redis offsets and the :class:`~streams.gate.OffsetGate` re-reads any gap Faust
leaves (docs/stream-processing.md, "What we rely on, what we guard against"). On assignment both
paths seek to their fences. ``python -m streams worker`` runs it; several workers share the work.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from faust.types import TP, EventT
from mode import Service

from liveledger import metrics
from liveledger.kafka import start_producer
from liveledger.ops_server import OpsServer
from liveledger.readiness import Readiness
from liveledger.redis_client import pubsub_client, redis_client
from liveledger.settings import Settings
from liveledger.setup_state import SetupReplica
from liveledger.storage.retention import DEFAULT as DEFAULT_RETENTION
from liveledger.storage.retention import Retention
from liveledger.topics import topic_name
from schemas.wire import Headers
from streams.gate import OffsetGate
from streams.ledger_path import LedgerPath
from streams.live_path import CONSUMER as LIVE_CONSUMER
from streams.live_path import LivePath
from streams.redis_state import LedgerStore, LiveStore, Notifier
from streams.reread import Rereader

log = logging.getLogger(__name__)

LIVE_BATCH = 500  # records (of up to 1000 events each) per live flush at most
LEDGER_BATCH = 2000
WITHIN_S = 0.01  # how long an agent waits to fill a batch: the latency it adds at low traffic
SESSION_TIMEOUT_S = 10.0  # a kill -9'd member's partitions move after ~10 s


def app_id(settings: Settings) -> str:
    return "liveledger" if settings.topic_prefix == "ll" else f"{settings.topic_prefix}-liveledger"



def live_retention(settings: Settings) -> Retention:
    """The live path's TTLs: the defaults with the configured event-id de-dup horizon."""
    return replace(DEFAULT_RETENTION, dedup_ms=settings.live_dedup_ttl_s * 1000)

class Pipelines:
    """The long-lived clients and the two paths of one worker process (created on start)."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.redis = redis_client(settings)
        # PUBLISH on a plain connection to one node: a cluster's nodes all deliver it (and a cluster
        # pipeline refuses PUBLISH)
        self.pubsub = pubsub_client(settings)
        self.notifier = Notifier(self.pubsub, settings.topic_prefix)
        self.replica = SetupReplica(settings)
        self.producer: AIOKafkaProducer | None = None
        self.live: LivePath | None = None
        self.ledger: LedgerPath | None = None
        self.started = asyncio.Event()
        self._unsynced: set[TP] = set()
        self.rereader = Rereader(settings.kafka_bootstrap, app_id(settings))
        self._wake = asyncio.Event()

    async def start(self) -> None:
        await self.replica.start()
        self.notifier.start()
        await self.rereader.start()
        producer = self.producer = await start_producer(self.settings)

        async def send(topic: str, key: bytes | None, value: bytes | None, headers: Headers) -> Any:
            return await producer.send(topic, value, key=key, headers=headers)

        self.live = LivePath(LiveStore(self.redis, self.settings.topic_prefix, live_retention(self.settings)),
                             self.notifier, send,
                             OffsetGate(self.rereader.read), topic_name(self.settings, "dlq"))
        self.ledger = LedgerPath(self.settings, LedgerStore(self.redis, self.settings.topic_prefix), self.replica,
                                 self.notifier, producer, OffsetGate(self.rereader.read))
        self.started.set()

    async def stop(self) -> None:
        await self.rereader.stop()
        await self.notifier.stop()
        await self.replica.stop()
        if self.producer is not None:
            await self.producer.stop()
        await self.redis.aclose()
        await self.pubsub.aclose()

    def on_assigned(self, assigned: Iterable[TP]) -> None:
        """Faust's rebalance callback: note the partitions and return at once (in-memory only: the
        consumer thread waits for this callback); :meth:`resync` does the rest."""
        assigned = set(assigned)
        if self.live is not None:
            self.live.forget(assigned)
        if self.ledger is not None:
            self.ledger.on_revoked(assigned)  # reloaded by resync (or by the first batch that needs them)
        self._unsynced |= assigned
        self._wake.set()

    def on_revoked(self, revoked: Iterable[TP]) -> None:
        revoked = set(revoked)
        self._unsynced -= revoked
        if self.live is not None:
            self.live.forget(revoked)
        if self.ledger is not None:
            self.ledger.on_revoked(revoked)

    async def report_lag(self) -> None:
        """Consumer lag per assigned partition for /metrics: Faust's last fetched high watermark
        minus the next offset each path applies (its Redis fence + 1, which is the truth here,
        not Faust's commits). A live fence not loaded yet is read from Redis (not cached)."""
        if self.live is None or self.ledger is None:
            return
        consumer = self.app.consumer
        events = topic_name(self.settings, "events")
        live: dict[tuple[str, int], int] = {}
        ledger: dict[tuple[str, int], int] = {}
        for tp in sorted(consumer.assignment()):
            try:
                high = consumer.highwater(tp)
            except AssertionError:  # revoked meanwhile
                continue
            if high is None:  # nothing fetched yet
                continue
            if tp.topic == events:
                fence = self.live.fences.get(tp)
                if fence is None:
                    stored = await self.live.store.fence(LIVE_CONSUMER, tp.topic, tp.partition)
                    fence = -1 if stored is None else stored
                live[(tp.topic, tp.partition)] = high - fence - 1
            if tp.partition in self.ledger.parts:
                ledger[(tp.topic, tp.partition)] = high - self.ledger.fence(tp) - 1
        metrics.set_lag("live", live)
        metrics.set_lag("ledger", ledger)

    async def resync(self) -> None:
        """Apply what newly assigned partitions lack: Faust resumes a partition at its committed
        offset, which may lie past records no agent applied (the bug this design guards against),
        and when nothing new arrives the gate would not notice. Re-reads the fence..committed range
        through the paths; records Faust delivers meanwhile are fenced as usual."""
        await self.started.wait()
        assert self.live is not None and self.ledger is not None
        events = topic_name(self.settings, "events")
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._unsynced = self._unsynced, set()
            try:
                await self.ledger.sync(batch)
                behind: list[Any] = []
                for tp in sorted(batch):
                    committed = await self.rereader.committed(tp)
                    fence = await self.live.fence(tp) if tp.topic == events else self.ledger.fence(tp)
                    if committed is not None and committed > fence + 1:
                        behind += await self.rereader.read(tp, fence + 1, committed)
                if behind:
                    log.warning("re-reading %d records below Faust's committed offsets", len(behind))
                    await self.live.handle([r for r in behind if r.tp.topic == events])
                    await self.ledger.handle(behind)
            except Exception:
                log.exception("re-reading assigned partitions failed; the gate re-reads gaps as records arrive")


async def run_batches(name: str, stream: Any, size: int, handle: Callable[[Sequence[Any]], Awaitable[None]],
                      on_error: Callable[[Iterable[Any]], None]) -> None:
    """The body of an agent: batches of messages to ``handle``. An unexpected error in one batch is
    logged and that batch's partitions re-read from their fences; the agent keeps running (an agent
    that dies would stall its partitions)."""
    events: Sequence[EventT[Any]]
    async for events in stream.take_events(size, within=WITHIN_S):
        messages = [e.message for e in events]
        try:
            await handle(messages)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s agent: batch of %d records failed; re-reading its partitions", name, len(messages))
            on_error({m.tp for m in messages})
            await asyncio.sleep(1)


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        app_id(settings),
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        topic_partitions=settings.event_partitions,
        topic_allow_declare=False,  # topics are created with their declared partitions (liveledger topics create)
        topic_disable_leader=True,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=2.0,
        stream_wait_empty=False,  # a rebalance need not wait for agents to drain: Redis fences decide
        web_enabled=False,
        # memory:// keeps nothing on disk, but Faust still wants a data dir: keep it out of the cwd.
        datadir=str(Path(tempfile.gettempdir()) / "liveledger-faust"),
    )
    events_topic = app.topic(topic_name(settings, "events"), key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw")
    ledger_topics = app.topic(topic_name(settings, "events"), topic_name(settings, "orders"), key_type=bytes,
                              value_type=bytes, key_serializer="raw", value_serializer="raw")
    pipes = Pipelines(app, settings)
    ops = OpsServer(settings, "streams", Readiness(settings, ("kafka", "redis"), started=pipes.started.is_set))

    @app.service
    class Clients(Service):
        """Metrics port, setup replica, change notifier, producer and the two paths; up before the agents."""

        async def on_start(self) -> None:
            metrics.identify("streams")
            await ops.start()
            metrics.on_scrape(pipes.report_lag)
            await pipes.start()

        @Service.task
        async def _resync(self) -> None:
            await pipes.resync()

        async def on_stop(self) -> None:
            await pipes.stop()
            await ops.stop()

    async def _assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        pipes.on_assigned(assigned)

    async def _revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        pipes.on_revoked(revoked)

    app.on_partitions_assigned.connect(_assigned)  # type: ignore[arg-type]  # mode's stub wants signal=
    app.on_partitions_revoked.connect(_revoked)  # type: ignore[arg-type]

    @app.agent(events_topic, concurrency=1, name="live")
    async def live(stream: Any) -> None:
        await pipes.started.wait()
        assert pipes.live is not None
        await run_batches("live", stream, LIVE_BATCH, pipes.live.handle, pipes.live.forget)

    @app.agent(ledger_topics, concurrency=1, name="ledger")
    async def ledger(stream: Any) -> None:
        await pipes.started.wait()
        assert pipes.ledger is not None
        path = pipes.ledger

        def reload(tps: Iterable[Any]) -> None:
            for p in {tp.partition for tp in tps}:
                path.parts.pop(p, None)

        await run_batches("ledger", stream, LEDGER_BATCH, path.handle, reload)

    app.pipelines = pipes  # type: ignore[attr-defined]  # for tests and the bench
    app.ops = ops  # type: ignore[attr-defined]
    return app
