"""devstack/lib.sh ``pid_of`` recognises every stream worker it started (no services)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def pid_of(name: str, pid: int, run: Path) -> str:
    """``pid_of NAME`` of devstack/lib.sh with its pid file in ``run`` (a throwaway run dir)."""
    (run / f"{name}.pid").write_text(str(pid))
    script = f'source "{REPO}/devstack/lib.sh"; RUN="{run}"; pid_of {name} || echo none'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout.strip()


def test_extra_stream_workers_are_not_taken_for_stale_pid_files(tmp_path: Path) -> None:
    # the command lines serve.sh gives the first and the extra workers (a sleeping Python stands in)
    lines = {"streams": ["-m", "streams", "worker"],
             "streams-2": ["-m", "streams", "--datadir", str(tmp_path / "s2"), "worker", "--web-port", "6067"]}
    procs = {name: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *argv])
             for name, argv in lines.items()}
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "ingest"])
    try:
        for name, proc in procs.items():
            assert pid_of(name, proc.pid, tmp_path) == str(proc.pid)
        # a pid file whose pid now belongs to another program is stale
        assert pid_of("streams-3", other.pid, tmp_path) == "none"
        assert not (tmp_path / "streams-3.pid").exists()
    finally:
        for p in (*procs.values(), other):
            p.kill()
            p.wait()
