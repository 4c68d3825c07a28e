"""Small helpers shared by the bench parts: processes, CPU time, percentiles, synthetic records."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_prefix(tag: str) -> str:
    return f"bench{tag}{uuid.uuid4().hex[:8]}"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children) from /proc/<pid>/stat, in seconds."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime = field 14, stime = 15, cutime 16, cstime 17
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK


def pin(pid: int, cpus: set[int]) -> None:
    """Pin a process to CPUs when the machine has them (no-op on a one-CPU box)."""
    avail = os.sched_getaffinity(0)
    if cpus <= avail and len(avail) > 1:
        os.sched_setaffinity(pid, cpus)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class Proc:
    """A child process run by the bench, logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)


def start_module(name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Proc:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    full_env = dict(os.environ)
    full_env["PYTHONUNBUFFERED"] = "1"
    full_env.update(env or {})
    handle = open(log, "ab")  # noqa: SIM115 - owned by the child process
    popen = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=full_env, stdout=handle,
                             stderr=subprocess.STDOUT)
    return Proc(name, popen, log)


def wait_http(proc: Proc, url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not answering {url} after {timeout}s:\n{proc.tail()}")


@dataclass
class RecordGen:
    """``ll.events`` batch records as ingest writes them (``docs/architecture.md``)."""

    brand_ids: list[str]
    streams_per_brand: int = 4
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    seq: int = 0

    def record(self, n_events: int) -> tuple[bytes, bytes]:
        self.seq += 1
        brand = self.brand_ids[self.seq % len(self.brand_ids)]
        now_ms = int(time.time() * 1000)
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now_ms / 1000)) + f".{now_ms % 1000:03d}Z"
        events: list[dict[str, Any]] = []
        for i in range(n_events):
            sid = f"{brand}-s{self.rng.randrange(self.streams_per_brand)}"
            viewer = f"v{self.rng.randrange(5000)}"
            roll = self.rng.random()
            ev: dict[str, Any] = {"event_id": f"b{self.seq}-{i}", "stream_id": sid, "viewer_id": viewer,
                                  "occurred_at": ts}
            if roll < 0.8:
                ev.update(type="view", action=("join", "heartbeat", "heartbeat", "leave")[i % 4])
            elif roll < 0.92:
                ev.update(type="click", product_id=f"p{self.rng.randrange(20)}", campaign_id="cmp1",
                          creator_id="cr1", link_code=None)
            else:
                ev.update(type="add_to_cart", product_id=f"p{self.rng.randrange(20)}")
            events.append(ev)
        rec = {"v": 1, "batch_id": f"batch-{self.seq}", "brand_id": brand, "source": "events-api",
               "received_at": ts, "events": events}
        return brand.encode(), orjson.dumps(rec)
