"""Private Kafka, Redis and ClickHouse for fault tests: started by the test, on free ports, with their
own data under the test's tmp dir, so they can be killed, paused and truncated without touching the
shared dev services (which other tests use at the same time).

- :class:`KafkaBroker`: the devstack's Kafka 4.x KRaft single node (the jars ``make install`` resolved,
  ``.devstack/kafka/classpath.txt``; the config is ``devstack/kafka/server.properties.in`` with
  this broker's ports and data dir; the java command of ``devstack/up.sh``);
- :class:`RedisServer`: Debian's ``redis-server`` with the devstack's persistence (``appendonly
  yes``, ``appendfsync everysec``) plus AOF timestamp annotations, so a test can cut "the last
  second" of the AOF with ``redis-check-aof --truncate-to-timestamp`` (:meth:`RedisServer.lose_aof_tail`);
- :class:`ClickHouseServer`: ``python -m devstack.chserver`` on its own port and data dir.

Each has ``start`` / ``kill9`` / ``restart`` / ``pause`` (SIGSTOP) / ``resume`` (SIGCONT) / ``stop``
and waits until a real client is answered (``devstack.wait``'s checks). :class:`PrivateServices`
bundles the three; :class:`ChaosStack` is a :class:`tests.harness.AppStack` pointed at them.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.wait import check_clickhouse, check_kafka, check_redis
from liveledger.settings import Settings
from tests.harness import ROOT, AppStack, free_port

KAFKA_DIR = ROOT / ".devstack" / "kafka"
KAFKA_TEMPLATE = ROOT / "devstack" / "kafka" / "server.properties.in"
KAFKA_LOG4J = ROOT / "devstack" / "kafka" / "log4j2.properties"


class ServiceFailed(RuntimeError):
    """A private service did not come up (its log tail is in the message)."""


class Service:
    """One server process of ours: its own session (a kill reaches it alone), its log in ``root``."""

    name = "service"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = root / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.starts = 0

    # -- what each service defines ----------------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    async def check(self) -> None:
        """Raise unless a real client is answered."""
        raise NotImplementedError

    def prepare(self) -> None:
        """One-time set-up before the first start (config files, storage format)."""

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        if self.starts == 0:
            self.prepare()
        self.starts += 1
        with open(self.log, "ab") as log:
            log.write(f"\n===== {self.name} start {self.starts} {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self.paused = False

    async def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds until the service answered; raises :class:`ServiceFailed` (with its log) otherwise."""
        t0 = time.monotonic()
        last = "no attempt"
        while time.monotonic() - t0 < timeout:
            if not self.running:
                raise ServiceFailed(f"{self.name} exited ({self.proc and self.proc.returncode}):\n{self.tail()}")
            try:
                await asyncio.wait_for(self.check(), timeout=10)
                return time.monotonic() - t0
            except Exception as exc:
                last = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.1)
        raise ServiceFailed(f"{self.name} not ready after {timeout:.0f}s ({last}):\n{self.tail()}")

    async def start(self, timeout: float = 60.0) -> float:
        self.spawn()
        return await self.wait_ready(timeout)

    def kill9(self) -> None:
        """SIGKILL, as a crash (or the OOM killer) does; waits until the process is gone."""
        if self.running:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.paused = False

    async def restart(self, timeout: float = 60.0) -> float:
        """Start again on the same port and data (after :meth:`kill9`); seconds until ready."""
        assert not self.running, f"{self.name} still runs: kill it first"
        return await self.start(timeout)

    def pause(self) -> None:
        """SIGSTOP: the process keeps its sockets but answers nothing (what a network partition or a
        long GC pause looks like to clients)."""
        assert self.running and self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.running and self.paused:
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        """Teardown: SIGTERM (SIGKILL after 15 s)."""
        if not self.running:
            return
        assert self.proc is not None
        self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill9()

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class KafkaBroker(Service):
    name = "kafka"

    def __init__(self, root: Path, heap: str = "-Xms128m -Xmx512m") -> None:
        super().__init__(root)
        self.port = free_port()
        self.controller_port = free_port()
        self.heap = heap
        self.data = root / "data"
        self.props = root / "server.properties"
        self.jvm_args = root / "jvm.args"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def prepare(self) -> None:
        classpath = KAFKA_DIR / "classpath.txt"
        if not classpath.is_file() or shutil.which("java") is None:
            raise ServiceFailed(f"no Kafka jars ({classpath}) or no java: run `make install`")
        text = KAFKA_TEMPLATE.read_text()
        for shared, own in (("127.0.0.1:9092", self.bootstrap), ("127.0.0.1:9093", f"127.0.0.1:{self.controller_port}"),
                            ("@DATA_DIR@", str(self.data))):
            assert shared in text, f"{KAFKA_TEMPLATE} no longer names {shared}"
            text = text.replace(shared, own)
        # A restarted single node waits out its previous incarnation's broker session before it
        # registers again (DUPLICATE_BROKER_REGISTRATION): 9 s by default, 3 s here, so a kill -9
        # costs the test ~5 s instead of ~13 s. Nothing else differs from the devstack's broker.
        text += "\n# tests/chaos/services.py\nbroker.session.timeout.ms=3000\nbroker.heartbeat.interval.ms=500\n"
        self.props.write_text(text)
        self.jvm_args.write_text(f'-cp "{classpath.read_text().strip()}"\n')
        self.data.mkdir(parents=True, exist_ok=True)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        with open(self.log, "ab") as log:
            subprocess.run(["java", f"@{self.jvm_args}", f"-Dlog4j2.configurationFile={KAFKA_LOG4J}",
                            "kafka.tools.StorageTool", "format", "--standalone", f"--cluster-id={cluster_id}",
                            "-c", str(self.props)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True,
                           timeout=120)

    def command(self) -> list[str]:
        return ["java", *self.heap.split(), "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                "-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", f"@{self.jvm_args}", "kafka.Kafka", str(self.props)]

    async def check(self) -> None:
        # A plain connect first: an admin client started against a closed port keeps reconnecting
        # (and logging) in the background after its start was given up.
        _, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.close()
        await writer.wait_closed()
        await check_kafka(Settings(kafka_bootstrap=self.bootstrap))


class RedisServer(Service):
    name = "redis"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = free_port()
        self.conf = root / "redis.conf"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def aof_dir(self) -> Path:
        return self.root / "appendonlydir"

    def prepare(self) -> None:
        if shutil.which("redis-server") is None:
            raise ServiceFailed("redis-server not found: run `make install`")
        # The devstack's persistence (devstack/up.sh), no RDB snapshots (the AOF is the only copy),
        # no automatic AOF rewrite during a test, and a "#TS:<unix seconds>" annotation in the AOF
        # before the commands of each new second (what --truncate-to-timestamp cuts at).
        self.conf.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", "protected-mode yes", "daemonize no", 'logfile ""',
            f"dir {self.root}", "appendonly yes", "appendfsync everysec", 'save ""',
            "auto-aof-rewrite-percentage 0", "aof-timestamp-enabled yes", "maxmemory-policy noeviction", "",
        ]))

    def command(self) -> list[str]:
        return ["redis-server", str(self.conf)]

    async def check(self) -> None:
        await check_redis(Settings(redis_url=self.url))
        import redis.asyncio as aioredis

        r = aioredis.from_url(self.url, socket_timeout=2)
        try:
            if int((await r.info("persistence")).get("loading", 0)):
                raise RuntimeError("still loading the AOF")
        finally:
            await r.aclose()

    def incr_aof(self) -> Path:
        """The AOF file the server appends to (Redis 7 multi-part AOF: the manifest's ``type i`` file)."""
        manifest = next(self.aof_dir.glob("*.manifest"))
        names = [line.split()[1] for line in manifest.read_text().splitlines() if line.split()[-1:] == ["i"]]
        assert names, f"no incr file in {manifest}: {manifest.read_text()!r}"
        return self.aof_dir / names[-1]

    def lose_aof_tail(self, seconds: int = 1) -> dict[str, int]:
        """With the server stopped: drop what the AOF got during its last ``seconds`` stamped seconds
        (the last one is partial: up to ``seconds`` s of writes; what an ``appendfsync everysec``
        server loses to a power cut), with ``redis-check-aof --truncate-to-timestamp T``, which keeps
        the commands stamped <= T. A Lua script's effects are one MULTI/EXEC block in the AOF, so a
        flush is kept or lost whole. Returns the incr file's sizes before and after, and T."""
        assert not self.running, "stop (kill -9) Redis before cutting its AOF"
        incr = self.incr_aof()
        before = incr.stat().st_size
        stamps = [int(line[4:]) for line in incr.read_bytes().splitlines() if line.startswith(b"#TS:")]
        assert stamps, f"no #TS annotations in {incr}"
        cut = stamps[-1] - seconds
        out = subprocess.run(["redis-check-aof", "--truncate-to-timestamp", str(cut), str(incr)],
                             input=b"y\n", capture_output=True, timeout=60)
        with open(self.log, "ab") as log:
            log.write(b"----- redis-check-aof --truncate-to-timestamp -----\n" + out.stdout + out.stderr)
        after = incr.stat().st_size
        assert out.returncode == 0 and after < before, (out.returncode, out.stdout, out.stderr, before, after)
        return {"incr_bytes_before": before, "incr_bytes_after": after, "cut_at_unix_s": cut,
                "last_stamp_unix_s": stamps[-1]}


class ClickHouseServer(Service):
    name = "clickhouse"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.port = free_port()
        self.data = root / "data"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        self.data.mkdir(parents=True, exist_ok=True)
        return [sys.executable, "-m", "devstack.chserver", "--host", "127.0.0.1", "--port", str(self.port),
                "--data", str(self.data)]

    async def check(self) -> None:
        async with httpx.AsyncClient(timeout=3) as client:
            resp = await client.get(f"{self.url}/ping")
            resp.raise_for_status()
        await check_clickhouse(Settings(clickhouse_url=self.url))


@dataclass
class PrivateServices:
    root: Path
    kafka: KafkaBroker = field(init=False)
    redis: RedisServer = field(init=False)
    clickhouse: ClickHouseServer = field(init=False)

    def __post_init__(self) -> None:
        self.kafka = KafkaBroker(self.root / "kafka")
        self.redis = RedisServer(self.root / "redis")
        self.clickhouse = ClickHouseServer(self.root / "clickhouse")

    @property
    def all(self) -> dict[str, Service]:
        return {"kafka": self.kafka, "redis": self.redis, "clickhouse": self.clickhouse}

    async def start(self) -> dict[str, float]:
        """Start the three at once; seconds each took until it answered."""
        names = list(self.all)
        took = await asyncio.gather(*(s.start(timeout=120) for s in self.all.values()))
        return dict(zip(names, took, strict=True))

    async def heal(self) -> None:
        """Resume a paused service and restart a dead one (after a test that failed mid-fault)."""
        for s in self.all.values():
            s.resume()
        await asyncio.gather(*(s.start() for s in self.all.values() if not s.running))

    def stop(self) -> None:
        for s in self.all.values():
            s.stop()

    def settings(self, prefix: str) -> Settings:
        return Settings(topic_prefix=prefix, clickhouse_database=f"{prefix}_db", kafka_bootstrap=self.kafka.bootstrap,
                        redis_url=self.redis.url, clickhouse_url=self.clickhouse.url)

    def env(self, prefix: str) -> dict[str, str]:
        return {"LIVELEDGER_KAFKA_BOOTSTRAP": self.kafka.bootstrap, "LIVELEDGER_REDIS_URL": self.redis.url,
                "CLICKHOUSE_URL": self.clickhouse.url, "LIVELEDGER_CLICKHOUSE_DATABASE": f"{prefix}_db"}


@dataclass
class ChaosStack(AppStack):
    """An :class:`AppStack` (fresh topic prefix, own ports) whose processes use :class:`PrivateServices`,
    with the command of each process remembered so :meth:`restart` starts it again after :meth:`kill9`."""

    services: PrivateServices | None = None
    commands: dict[str, tuple[tuple[str, ...], str | None, dict[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        assert self.services is not None
        self.extra_env.update(self.services.env(self.prefix))

    @property
    def settings(self) -> Settings:
        assert self.services is not None
        return self.services.settings(self.prefix)

    def start(self, name: str, *args: str, health: str | None = None, env: dict[str, str] | None = None) -> None:
        # Processes that serve metrics get a port of their own (never the shared stack's 9201/9301).
        env = {"LIVELEDGER_METRICS_PORT": str(free_port()), **(env or {})}
        self.commands[name] = (args, health, env)
        super().start(name, *args, health=health, env=env)

    def start_api(self) -> None:
        """Migrate this stack's database on the private ClickHouse, then start the API (its audit
        table is written before every setup change)."""
        from consumers.migrate import run as migrate_run

        with open(self.log_dir / "migrate.log", "a") as out:
            migrate_run(self.settings, out=out)
        self.start("api", "api", health=f"{self.api_url}/healthz")

    async def restart(self, name: str, timeout: float = 60.0) -> float:
        """Start ``name`` again (after :meth:`kill9`) without blocking the event loop (a simulator may
        be sending on it); seconds until its ``/healthz`` answers (0 for processes without one)."""
        args, health, env = self.commands[name]
        assert self.procs[name].poll() is not None, f"{name} still runs"
        t0 = time.monotonic()
        super().start(name, *args, health=None, env=env)
        if health is None:
            return 0.0
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() - t0 < timeout:
                if self.procs[name].poll() is not None:
                    raise RuntimeError(f"{name} exited on restart; log:\n{self.tail(name)}")
                try:
                    if (await client.get(health)).status_code == 200:
                        return time.monotonic() - t0
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{name} not healthy {timeout:.0f}s after a restart; log:\n{self.tail(name)}")

    def running(self, name: str) -> bool:
        return self.procs[name].poll() is None


@contextmanager
def running_stack(services: PrivateServices, log_dir: Path,
                  processes: tuple[str, ...] = ("api", "ingest", "worker", "sink")) -> Iterator[ChaosStack]:
    """A fresh :class:`ChaosStack` on ``services`` (healed first) with topics, its ClickHouse
    database and the named processes started; stopped on exit. Call it outside an event loop."""
    asyncio.run(services.heal())
    stack = ChaosStack(log_dir=log_dir, services=services)
    stack.create_topics()
    try:
        for name in processes:
            if name == "api":
                stack.start_api()
            elif name == "ingest":
                stack.start_ingest()
            elif name == "worker":
                stack.start("worker", "streams", "worker")
            elif name == "sink":
                stack.start("sink", "consumers", "clickhouse")
            else:
                raise ValueError(name)
        yield stack
    finally:
        stack.stop_all()
