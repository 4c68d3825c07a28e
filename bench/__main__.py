"""``python -m bench [--quick] [--only ingest,stream,conversion,e2e,sink,query,memory] [--merge] [--out DIR]``.

Runs each measurement beside its baseline and writes ``results.json``, ``results.md`` and PNG
plots to ``bench/out/`` (see docs/benchmarks.md). A part whose component does not exist yet, or
that fails, is recorded as ``{"skipped": "<reason>"}`` and the others still run. ``--merge`` keeps the
sections of the parts not selected from the existing ``results.json`` (each with its own
``started_at``), so the parts can be measured one at a time on a quiet machine; every part still
measures its baselines in its own run.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench import conversion_bench, e2e_bench, ingest_bench, memory_bench, query_bench, report, sink_bench, stream_bench
from bench.config import FULL, QUICK, BenchConfig

PARTS: dict[str, tuple[str, Callable[[BenchConfig, Path], dict[str, Any]]]] = {
    "ingest": ("ingest", ingest_bench.run),
    "stream": ("stream", stream_bench.run),
    "conversion": ("stream_conversion", conversion_bench.run),
    "e2e": ("e2e", e2e_bench.run),
    "sink": ("clickhouse_sink", sink_bench.run),
    "query": ("query", query_bench.run),
    "memory": ("memory", memory_bench.run),
}
DEFAULT_OUT = Path(__file__).resolve().parent / "out"


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpus = os.cpu_count() or 0
    return {"cpus": cpus, "cpu_model": model, "memory_gb": round(mem_gb, 1), "python": platform.python_version(),
            "kernel": platform.release(),
            "summary": f"{cpus} CPUs ({model or 'unknown'}), {mem_gb:.1f} GiB RAM, Python {platform.python_version()}"}


def _previous(out: Path) -> dict[str, Any]:
    try:
        prev = orjson.loads((out / "results.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return prev if isinstance(prev, dict) else {}


def run(parts: list[str], cfg: BenchConfig, out: Path, quick: bool, merge: bool = False) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    log_dir = out / "logs"
    t0 = time.monotonic()
    started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    prev = _previous(out) if merge else {}
    res: dict[str, Any] = {"started_at": started, "quick": quick, "machine": machine()}
    for part in PARTS:
        key, fn = PARTS[part]
        if part not in parts:
            kept = prev.get(key)
            if isinstance(kept, dict) and "skipped" not in kept and prev.get("quick") == quick:
                res[key] = kept  # measured by an earlier run (--merge); its started_at says when
            else:
                res[key] = {"skipped": "not selected (--only)"}
            continue
        print(f"[bench] {part} ...", flush=True)
        t = time.monotonic()
        try:
            res[key] = fn(cfg, log_dir)
            res[key]["started_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except Exception as exc:
            traceback.print_exc()
            res[key] = {"skipped": f"failed: {type(exc).__name__}: {exc}"[:500]}
        print(f"[bench] {part} done in {time.monotonic() - t:.0f}s: "
              f"{ {k: v for k, v in res[key].items() if not isinstance(v, (dict, list))} }", flush=True)
    res["seconds"] = round(time.monotonic() - t0, 1)
    report.add_ratios(res)
    data = orjson.dumps(res, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    (out / "results.json").write_bytes(data)
    # The agreed location, beside the package; bench/out/ keeps the logs, table and plots.
    if out.resolve() == DEFAULT_OUT:  # a run into another directory (tests, --out) leaves it alone
        (Path(__file__).resolve().parent / "results.json").write_bytes(data)
    (out / "results.md").write_text(report.markdown(res))
    try:
        res_plots = report.plots(res, out)
        print(f"[bench] plots: {', '.join(p.name for p in res_plots)}")
    except ImportError as exc:  # matplotlib is a dev extra
        print(f"[bench] no plots: {exc}")
    print(f"[bench] wrote {out / 'results.json'} and {out / 'results.md'} in {res['seconds']:.0f}s")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test, ~1-2 min)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other parts' sections of the existing results.json (measure parts one by one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; choose from {list(PARTS)}")
    logging.basicConfig(level=logging.WARNING)
    run(parts, QUICK if args.quick else FULL, args.out, args.quick, merge=args.merge)


if __name__ == "__main__":
    main()
