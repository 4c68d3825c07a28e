"""A private 3-node Kafka KRaft cluster for the cluster tests, beside private Redis and ClickHouse.

The nodes are the devstack's cluster nodes (``make up CLUSTER=1``: devstack/kafka_cluster.py renders
devstack/kafka/cluster.properties.in, the same jars and JVM options as the single broker) on free
ports with their data under the test's tmp dir, so one can be killed (``kill -9``) without touching
the shared dev services. :class:`ClusterServices` is :class:`tests.chaos.services.PrivateServices`
with the single broker replaced by the cluster and the application's topics at replication factor 3
and ``min.insync.replicas=2`` (``LIVELEDGER_KAFKA_REPLICATION_FACTOR`` / ``_MIN_INSYNC_REPLICAS``).
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack import kafka_cluster
from liveledger.settings import Settings
from tests.chaos.services import (
    KAFKA_DIR,
    KAFKA_LOG4J,
    ClickHouseServer,
    KafkaBroker,
    PrivateServices,
    RedisServer,
    Service,
    ServiceFailed,
)
from tests.harness import ROOT, free_port

REPLICATION_FACTOR = 3
MIN_INSYNC_REPLICAS = 2


class ClusterNode(KafkaBroker):
    """One broker+controller node; :class:`KafkaBroker`'s process and readiness check, the cluster's config."""

    def __init__(self, root: Path, node: kafka_cluster.Node, cluster: KafkaCluster) -> None:
        super().__init__(root)
        self.name = f"kafka-{node.node_id}"
        self.log = root / f"{self.name}.log"
        self.node = node
        self.cluster = cluster
        self.port = node.port
        self.controller_port = node.controller_port

    def prepare(self) -> None:
        classpath = KAFKA_DIR / "classpath.txt"
        if not classpath.is_file() or shutil.which("java") is None:
            raise ServiceFailed(f"no Kafka jars ({classpath}) or no java: run `make install`")
        self.props.write_text(kafka_cluster.render(self.node, self.cluster.members, self.data))
        self.jvm_args.write_text(f'-cp "{classpath.read_text().strip()}"\n')
        self.data.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            # a short-lived JVM: C1 only and the serial GC start faster on a busy 2-core box
            subprocess.run(["java", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", f"@{self.jvm_args}",
                            f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
                            "kafka.tools.StorageTool", "format", f"--cluster-id={self.cluster.cluster_id}",
                            "-c", str(self.props)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True,
                           timeout=120)


    def command(self) -> list[str]:
        # C1 only: three brokers (and their restarts) start faster on a busy 2-core box; the test's
        # few hundred records/s need no C2-compiled broker.
        java, *rest = super().command()
        return [java, "-XX:TieredStopAtLevel=1", *rest]


class KafkaCluster:
    """Three :class:`ClusterNode` on free ports, one cluster id."""

    def __init__(self, root: Path, size: int = kafka_cluster.NODES) -> None:
        self.root = root
        self.cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        self.members = kafka_cluster.nodes([free_port() for _ in range(size)], [free_port() for _ in range(size)])
        self.nodes = {n.node_id: ClusterNode(root / str(n.node_id), n, self) for n in self.members}

    @property
    def bootstrap(self) -> str:
        return kafka_cluster.bootstrap(self.members)

    async def start(self, timeout: float = 180.0) -> float:
        """Format and start every node at once; seconds until all of them registered as brokers."""
        t0 = time.monotonic()
        await asyncio.gather(*(asyncio.to_thread(n.prepare) for n in self.nodes.values() if n.starts == 0))
        for n in self.nodes.values():
            n.starts = max(n.starts, 1)  # prepared above: spawn() must not format again
            n.spawn()
        await asyncio.gather(*(n.wait_ready(timeout) for n in self.nodes.values()))
        await kafka_cluster.wait_brokers(self.bootstrap, len(self.nodes), timeout)
        return time.monotonic() - t0

    async def partitions(self, topics: list[str] | None = None) -> list[dict[str, Any]]:
        return await kafka_cluster.partitions(self.bootstrap, topics)

    async def leaders(self, topics: list[str]) -> Counter[int]:
        """node id -> partitions of ``topics`` it leads."""
        return Counter(p["leader"] for p in await self.partitions(topics))

    def stop(self) -> None:
        for n in self.nodes.values():  # TERM to all at once (a last node alone waits for a quorum)
            if n.running and n.proc is not None:
                n.resume()
                n.proc.terminate()
        for n in self.nodes.values():
            n.stop()


@dataclass
class ClusterServices(PrivateServices):
    """Private Redis and ClickHouse and a 3-node Kafka cluster (``kafka`` is not used)."""

    cluster: KafkaCluster = field(init=False)

    def __post_init__(self) -> None:
        self.cluster = KafkaCluster(self.root / "kafka-cluster")
        self.redis = RedisServer(self.root / "redis")
        self.clickhouse = ClickHouseServer(self.root / "clickhouse")

    @property
    def all(self) -> dict[str, Service]:
        return {**{n.name: n for n in self.cluster.nodes.values()}, "redis": self.redis, "clickhouse": self.clickhouse}

    async def start(self) -> dict[str, float]:
        took = await asyncio.gather(self.cluster.start(), self.redis.start(timeout=120),
                                    self.clickhouse.start(timeout=120))
        return dict(zip(("kafka cluster", "redis", "clickhouse"), took, strict=True))

    def stop(self) -> None:
        self.cluster.stop()
        self.redis.stop()
        self.clickhouse.stop()

    def settings(self, prefix: str) -> Settings:
        return Settings(topic_prefix=prefix, clickhouse_database=f"{prefix}_db", kafka_bootstrap=self.cluster.bootstrap,
                        kafka_replication_factor=REPLICATION_FACTOR, kafka_min_insync_replicas=MIN_INSYNC_REPLICAS,
                        redis_url=self.redis.url, clickhouse_url=self.clickhouse.url)

    def env(self, prefix: str) -> dict[str, str]:
        return {"LIVELEDGER_KAFKA_BOOTSTRAP": self.cluster.bootstrap,
                "LIVELEDGER_KAFKA_REPLICATION_FACTOR": str(REPLICATION_FACTOR),
                "LIVELEDGER_KAFKA_MIN_INSYNC_REPLICAS": str(MIN_INSYNC_REPLICAS),
                "LIVELEDGER_REDIS_URL": self.redis.url, "CLICKHOUSE_URL": self.clickhouse.url,
                "LIVELEDGER_CLICKHOUSE_DATABASE": f"{prefix}_db"}
