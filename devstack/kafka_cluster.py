"""The 3-node Kafka KRaft cluster of ``make up CLUSTER=1`` (and of tests/cluster/kafka_cluster.py).

Every node is broker + controller in one JVM (KRaft combined mode, the single dev broker's jars and
JVM options); the three controllers form a static quorum (``controller.quorum.voters``), so with one
node down the other two still elect a controller and every partition keeps a leader among its
in-sync replicas. The node config is ``devstack/kafka/cluster.properties.in``, rendered by
:func:`render` -- here for the dev stack's fixed ports, in the tests for free ports.

    python -m devstack.kafka_cluster render --node 2 --data DIR       # server.properties on stdout
    python -m devstack.kafka_cluster wait [--bootstrap B] [--brokers 3] [--timeout 120]
    python -m devstack.kafka_cluster isr [--bootstrap B]              # under-replicated partitions
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "devstack" / "kafka" / "cluster.properties.in"
NODES = 3
# The dev stack's ports: clients 19092-19094, controllers 19192-19194 (the single broker has 9092/9093).
BROKER_PORTS = (19092, 19093, 19094)
CONTROLLER_PORTS = (19192, 19193, 19194)


@dataclass(frozen=True)
class Node:
    node_id: int
    port: int
    controller_port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def nodes(broker_ports: Sequence[int] = BROKER_PORTS, controller_ports: Sequence[int] = CONTROLLER_PORTS) -> list[Node]:
    assert len(broker_ports) == len(controller_ports)
    return [Node(i + 1, p, c) for i, (p, c) in enumerate(zip(broker_ports, controller_ports, strict=True))]


def bootstrap(members: Sequence[Node]) -> str:
    """The client bootstrap list (``LIVELEDGER_KAFKA_BOOTSTRAP``)."""
    return ",".join(n.address for n in members)


def voters(members: Sequence[Node]) -> str:
    return ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in members)


def render(node: Node, members: Sequence[Node], data_dir: Path | str, template: str | None = None) -> str:
    """``server.properties`` of ``node`` in the cluster of ``members``."""
    text = TEMPLATE.read_text() if template is None else template
    values = {"@NODE_ID@": str(node.node_id), "@PORT@": str(node.port), "@CONTROLLER_PORT@": str(node.controller_port),
              "@VOTERS@": voters(members), "@DATA_DIR@": str(data_dir)}
    for key, value in values.items():
        assert key in text, f"{TEMPLATE.name} no longer names {key}"
        text = text.replace(key, value)
    return text


async def describe(bootstrap_servers: str) -> dict[str, Any]:
    """``describe_cluster`` of the admin API (brokers, controller id)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        await admin.start()
        cluster: dict[str, Any] = await admin.describe_cluster()
        return cluster
    finally:
        await admin.close()


async def wait_brokers(bootstrap_servers: str, brokers: int = NODES, timeout: float = 120.0) -> float:
    """Seconds until the cluster has a controller and ``brokers`` registered brokers."""
    t0 = time.monotonic()
    last = "no answer"
    while time.monotonic() - t0 < timeout:
        try:
            # A plain connect to every node first: an admin client started against a closed port
            # keeps reconnecting (and logging) in the background.
            for server in bootstrap_servers.split(","):
                host, _, port = server.strip().rpartition(":")
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout=2)
                writer.close()
                await writer.wait_closed()
            cluster = await asyncio.wait_for(describe(bootstrap_servers), timeout=10)
            have = len(cluster.get("brokers") or [])
            if cluster.get("controller_id", -1) >= 0 and have >= brokers:
                return time.monotonic() - t0
            last = f"{have} broker(s), controller {cluster.get('controller_id')}"
        except Exception as exc:
            last = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(0.5)
    raise TimeoutError(f"Kafka cluster at {bootstrap_servers}: not {brokers} brokers after {timeout:.0f}s ({last})")


async def partitions(bootstrap_servers: str, topics: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every partition of ``topics`` (all non-internal topics when None): topic, partition, leader,
    replicas, isr."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=5000)
    try:
        await admin.start()
        described = await admin.describe_topics(list(topics) if topics is not None else None)
    finally:
        await admin.close()
    out: list[dict[str, Any]] = []
    for t in described:
        if t["error_code"] != 0 or (topics is None and t.get("is_internal", False)):
            continue
        for p in t["partitions"]:
            out.append({"topic": t["topic"], "partition": p["partition"], "leader": p["leader"],
                        "replicas": list(p["replicas"]), "isr": list(p["isr"])})
    return out


def under_replicated(parts: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The partitions whose in-sync replicas are fewer than their replicas."""
    return [p for p in parts if len(p["isr"]) < len(p["replicas"])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="print one node's server.properties")
    r.add_argument("--node", type=int, required=True, choices=range(1, NODES + 1))
    r.add_argument("--data", required=True, help="the node's log dir")
    w = sub.add_parser("wait", help="wait until every broker registered")
    w.add_argument("--bootstrap", default=bootstrap(nodes()))
    w.add_argument("--brokers", type=int, default=NODES)
    w.add_argument("--timeout", type=float, default=120.0)
    i = sub.add_parser("isr", help="list under-replicated partitions; exit 1 when there are any")
    i.add_argument("--bootstrap", default=bootstrap(nodes()))
    args = parser.parse_args(argv)
    if args.cmd == "render":
        members = nodes()
        sys.stdout.write(render(members[args.node - 1], members, args.data))
        return 0
    if args.cmd == "wait":
        try:
            took = asyncio.run(wait_brokers(args.bootstrap, args.brokers, args.timeout))
        except TimeoutError as exc:
            print(f"[devstack] ERROR: {exc}", file=sys.stderr)
            return 1
        print(f"[devstack] kafka-cluster {args.brokers} brokers at {args.bootstrap} ready after {took:.1f}s")
        return 0
    bad = under_replicated(asyncio.run(partitions(args.bootstrap)))
    for p in bad:
        print(f"{p['topic']}[{p['partition']}] leader {p['leader']} replicas {p['replicas']} isr {p['isr']}")
    print(f"{len(bad)} under-replicated partition(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
