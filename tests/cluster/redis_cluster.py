"""A private 3-master Redis Cluster on loopback for the cluster tests (Debian's ``redis-server``).

Three ``redis-server`` processes with ``cluster-enabled yes`` on free ports, each with its own
directory under the test's tmp dir (config, nodes file, AOF), joined by
``redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`` (16384 slots split in three
even ranges). Nothing of the shared dev Redis is touched.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import RedisCluster


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too; Redis refuses ports above 55535."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        if all(_free(p) for p in (port, port + 10000)):
            return port
    raise ClusterFailed("no free port pair for a cluster node")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ClusterFailed(RuntimeError):
    pass


@dataclass
class RedisClusterNodes:
    root: Path
    masters: int = 3
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The seed URL the application gets (LIVELEDGER_REDIS_URL, with LIVELEDGER_REDIS_CLUSTER=true)."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 30.0) -> float:
        if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
            raise ClusterFailed("redis-server / redis-cli not found: run `make install`")
        t0 = time.monotonic()
        self.ports = []
        while len(self.ports) < self.masters:
            port = cluster_port()
            if port not in self.ports and port + 10000 not in self.ports:
                self.ports.append(port)
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - t0

    def _start(self, timeout: float) -> None:
        for port in self.ports:
            d = self.root / f"node-{port}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "redis.conf").write_text("\n".join([
                "bind 127.0.0.1", f"port {port}", f"dir {d}", "cluster-enabled yes",
                f"cluster-config-file {d / 'nodes.conf'}", "cluster-node-timeout 5000",
                "appendonly yes", "appendfsync everysec", "save ''", "protected-mode yes",
                f"logfile {d / 'redis.log'}", "daemonize no", ""]))
            self.procs.append(subprocess.Popen(["redis-server", str(d / "redis.conf")],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                               start_new_session=True))
        for port in self.ports:
            self._wait(lambda p=port: redis.Redis(port=p, socket_timeout=1).ping(), timeout, f"node {port}")
        out = subprocess.run(["redis-cli", "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                              "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, timeout=60)
        if out.returncode != 0:
            raise ClusterFailed(f"cluster create failed: {out.stdout.decode()} {out.stderr.decode()}")
        for port in self.ports:
            self._wait(lambda p=port: self._state_ok(p), timeout, f"cluster state of {port}")

    @staticmethod
    def _state_ok(port: int) -> bool:
        r = redis.Redis(port=port, socket_timeout=1)
        try:
            info = r.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]  # parsed into a dict by redis-py
            return bool(info.get("cluster_state") == "ok") if isinstance(info, dict) else b"cluster_state:ok" in info
        finally:
            r.close()

    def _wait(self, check: object, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():  # type: ignore[operator]
                    return
            except Exception as exc:
                last = exc
            time.sleep(0.1)
        raise ClusterFailed(f"{what} not ready after {timeout}s ({last!r})")

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0], decode_responses=True)

    def keys_per_master(self, pattern: str) -> dict[int, int]:
        """port -> number of keys matching ``pattern`` on that master (SCAN of each node)."""
        out = {}
        for port in self.ports:
            r = redis.Redis(port=port)
            try:
                out[port] = sum(1 for _ in r.scan_iter(match=pattern, count=1000))
            finally:
                r.close()
        return out

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []
