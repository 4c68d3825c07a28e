"""Run ``wrk`` (a C load generator, far faster than any Python client) and parse its report."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.common import cpu_seconds

_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LUA = """
wrk.method = "{method}"
wrk.body = io.open("{body}", "rb"):read("*a")
{headers}
{delay}
"""


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    non_2xx_3xx: int
    server_cpu_s: float
    cpu_us_per_req: float
    server_cpu_util: float

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def available() -> bool:
    return shutil.which("wrk") is not None


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def parse(out: str) -> dict[str, Any]:
    pct = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.M))
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not m or "50" not in pct or "99" not in pct:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    dur = float(m.group(2)) * _UNIT_MS[m.group(3)] / 1000
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": int(m.group(1)), "duration_s": dur, "p50_ms": _ms(pct["50"]), "p99_ms": _ms(pct["99"]),
            "errors": errors, "non_2xx_3xx": int(non.group(1)) if non else 0}


# Every request from another client (click hygiene counts one click per client and link an hour):
# a fresh X-Forwarded-For address per request, believed from the loopback proxy.
_NEW_CLIENT_PER_REQUEST = """
local n = 0
request = function()
  n = n + 1
  wrk.headers["X-Forwarded-For"] = string.format("2001:db8:%x:%x::%x", math.random(0, 65535), n % 65536, n)
  return wrk.format()
end
"""


def script(work_dir: Path, name: str, method: str = "GET", body: bytes | None = None,
           headers: dict[str, str] | None = None, delay_ms: float | None = None,
           new_client_per_request: bool = False) -> Path:
    """A wrk Lua script: method, body (from a file), headers, an optional mean per-request delay,
    and optionally another client address (X-Forwarded-For) on every request."""
    work_dir.mkdir(parents=True, exist_ok=True)
    body_path = work_dir / f"{name}.body"
    body_path.write_bytes(body or b"")
    hdrs = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    # exponential think time (mean delay_ms): Poisson-like arrivals, connections never in lock-step
    delay = f"function delay() return -math.log(1 - math.random()) * {delay_ms:.3f} end" if delay_ms else ""
    path = work_dir / f"{name}.lua"
    path.write_text(_LUA.format(method=method, body=body_path, headers=hdrs, delay=delay)
                    + (_NEW_CLIENT_PER_REQUEST if new_client_per_request else ""))
    return path


def run(url: str, server_pid: int, *, duration_s: float, connections: int, lua: Path | None = None,
        threads: int = 1, cpus: str | None = "0") -> WrkResult:
    """Drive ``url`` for ``duration_s`` and account the server process's CPU time over the run."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency",
           "--timeout", "5s"]
    if lua is not None:
        cmd += ["-s", str(lua)]
    cmd.append(url)
    if cpus is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpus, *cmd]
    cpu0 = cpu_seconds(server_pid)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30, check=False)
    cpu = cpu_seconds(server_pid) - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}")
    p = parse(proc.stdout)
    rps = p["requests"] / p["duration_s"] if p["duration_s"] else 0.0
    return WrkResult(requests=p["requests"], duration_s=p["duration_s"], rps=rps, p50_ms=p["p50_ms"],
                     p99_ms=p["p99_ms"], errors=p["errors"], non_2xx_3xx=p["non_2xx_3xx"], server_cpu_s=cpu,
                     cpu_us_per_req=cpu / p["requests"] * 1e6 if p["requests"] else 0.0,
                     server_cpu_util=cpu / p["duration_s"] if p["duration_s"] else 0.0)
