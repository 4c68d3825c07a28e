"""Ratios against the goals of issue 5, the markdown table and the PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

Results = dict[str, Any]


def _num(section: dict[str, Any], key: str) -> float | None:
    v = section.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _by_rows(section: dict[str, Any], key: str, rows: int) -> float | None:
    table = section.get(key)
    return _num(table, str(rows)) if isinstance(table, dict) else None


def _level_off(series: Any) -> float | None:
    """Growth of the last third of a ``[[day, bytes], ...]`` series over the growth of its first third:
    about 1 for linear growth, near 0 once memory levels off."""
    if not isinstance(series, list) or len(series) < 6:
        return None
    ys = [float(p[1]) for p in series]
    third = len(ys) // 3
    first, last = ys[third] - ys[0], ys[-1] - ys[-1 - third]
    return round(last / first, 3) if first > 0 else None


# Where the profile of a part's miss is, when the part did not record one itself: the py-spy command
# that reproduces it and the docs/benchmarks.md section that reads it.
PROFILES = {
    "ingest": "python -m bench.profile ingest  (py-spy of the ingest process under wrk); read in docs/benchmarks.md "
              "'Release 2: ingest at scale': aiohttp's request/response work is ~the bare endpoint's whole cost, "
              "then the handler, redis-py (claim + confirm per click) and loop wake-ups; the events path: pydantic "
              "validation ~580 µs and per-event routing ~730 µs per 100-event batch, which the floor does not do",
    "stream": "python -m bench.profile worker; docs/benchmarks.md 'Release 2: stream peer (quixstreams)': the worker "
              "spends less CPU per event than the peer but each event also costs single-threaded Redis time in the "
              "live flush (de-dup SET NX, presence ZADD per viewer), work the peer does in-process in RocksDB",
    "e2e": "e2e.steps[].ack_* / after_ack_* split the latency; docs/benchmarks.md 'End to end at 20 k events/s': one "
           "brand is one partition, whose flushes run one after another (worker CPU + Redis flush ~50-70 µs/event)",
    "clickhouse_sink": "python -m bench.profile sink; docs/benchmarks.md 'Release 2: ClickHouse sink': ~70 % of the "
                       "sink's time is event validation in schemas/ (decode_events_record 44 %, to_ms 16 %)",
    "query": "query.by_rows.<n>.summary/scan; docs/benchmarks.md 'Release 2: ClickHouse sink and earnings at scale': "
             "the dev server's per-statement cost (SELECT 1 ≈ 5-8 ms through the chDB HTTP front) and the "
             "statement's scans of the summary/builds/dirty tables, 8 concurrent callers on 2 cores",
}
# (goal, section whose profile explains a miss, value, op, target). Release 1's goals stay as they were.
Goal = tuple[str, str, float | None, str, float]


def add_ratios(res: Results) -> None:
    """Fill ``res["ratios"]`` and ``res["goals"]`` (each goal: value, target, met or None = not measured,
    and for a miss the profile its section recorded)."""
    ing, st, e2e, sink, q, mem = (res.get(k, {}) for k in ("ingest", "stream", "e2e", "clickhouse_sink", "query",
                                                             "memory"))
    workers = st.get("workers_events_per_s") if isinstance(st.get("workers_events_per_s"), dict) else {}
    ratios = {
        "ingest_vs_framework_bare": _ratio(_num(ing, "rps"), _num(ing, "baseline_rps")),
        "ingest_vs_aiohttp_bare": _ratio(_num(ing, "rps"), _num(ing, "aiohttp_baseline_rps")),
        "ingest_events_vs_framework_bare_post": _ratio(_num(ing, "events_rps"), _num(ing, "events_baseline_rps")),
        "ingest_events_vs_floor": _ratio(_num(ing, "events_rps"), _num(ing, "events_floor_rps")),
        "stream_vs_naive_faust": _ratio(_num(st, "events_per_s"), _num(st, "naive_faust_events_per_s")),
        "stream_vs_raw_aiokafka": _ratio(_num(st, "events_per_s"), _num(st, "raw_aiokafka_events_per_s")),
        "stream_vs_quixstreams": _ratio(_num(st, "events_per_s"), _num(st, "quixstreams_events_per_s")),
        "stream_rss_vs_quixstreams": _ratio(_num(st.get("runs", {}).get("liveledger_x1", {}), "rss_mb"),
                                            _num(st, "quixstreams_rss_mb")),
        "stream_two_vs_one_worker": _ratio(_num(st, "two_workers_events_per_s"), _num(st, "events_per_s")),
        "stream_three_vs_one_worker": _ratio(_num(workers, "3"), _num(workers, "1")),
        "sink_vs_raw_inserts": _ratio(_num(sink, "rows_per_s"), _num(sink, "baseline_rows_per_s")),
        "earnings_summary_vs_scan_10m": _ratio(_by_rows(q, "earnings_p99_ms_by_rows", 10_000_000),
                                               _by_rows(q, "earnings_scan_p99_ms_by_rows", 10_000_000)),
        "ledger_assign_vs_full_load_1m_clicks": _ratio(_num(mem, "ledger_assign_s_1m_clicks"),
                                                       _num(mem, "ledger_assign_s_1m_clicks_baseline")),
        "worker_rss_vs_full_load_1m_clicks": _ratio(_num(mem, "worker_rss_mb_1m_clicks"),
                                                    _num(mem, "worker_rss_mb_1m_clicks_baseline")),
        "redis_month_growth_last_vs_first_third": _level_off(mem.get("month_series")),
    }
    res["ratios"] = ratios
    e2e_5k = _num(e2e, "p99_ms") if e2e.get("rate") == 5000 else _num(e2e, "p99_ms_5k")
    goals: list[Goal] = [
        ("ingest ≥ 60 % of its framework's bare endpoint", "ingest", ratios["ingest_vs_framework_bare"], ">=", 0.6),
        ("ingest ≥ 40 % of bare aiohttp", "ingest", ratios["ingest_vs_aiohttp_bare"], ">=", 0.4),
        ("ingest p99 ≤ 20 ms at half max load (redirect)", "ingest", _num(ing, "p99_half_load_ms"), "<=", 20.0),
        ("ingest p99 ≤ 20 ms at half max load (100-event batch)", "ingest", _num(ing, "events_p99_half_load_ms"),
         "<=", 20.0),
        ("events path ≥ 50 % of its floor (bare handler: orjson parse + one acks=all record)", "ingest",
         ratios["ingest_events_vs_floor"], ">=", 0.5),
        ("stream ≥ 8x naive Faust", "stream", ratios["stream_vs_naive_faust"], ">=", 8.0),
        ("stream ≥ 25 % of raw aiokafka", "stream", ratios["stream_vs_raw_aiokafka"], ">=", 0.25),
        ("stream ≥ 1.5x the quixstreams peer (exactly-once)", "stream", ratios["stream_vs_quixstreams"], ">=", 1.5),
        ("e2e p99 ≤ 250 ms at 5k events/s", "e2e", e2e_5k, "<=", 250.0),
        ("e2e p99 ≤ 100 ms at 20k events/s for 60 s", "e2e", _num(e2e, "p99_ms_20k"), "<=", 100.0),
        ("ClickHouse sink ≥ 50 % of raw inserts", "clickhouse_sink", ratios["sink_vs_raw_inserts"], ">=", 0.5),
        ("earnings p99 ≤ 50 ms at 10 M ledger rows", "query",
         _num(q, "earnings_p99_ms") if _by_rows(q, "earnings_p99_ms_by_rows", 10_000_000) is not None
         else None, "<=", 50.0),
        ("ledger assignment with 1 M clicks ≤ 10 % of the full-load time", "memory",
         ratios["ledger_assign_vs_full_load_1m_clicks"], "<=", 0.1),
        ("Redis memory levels off over a month (last third grows ≤ 25 % of the first)", "memory",
         ratios["redis_month_growth_last_vs_first_third"], "<=", 0.25),
    ]
    out = []
    for g, section, v, op, t in goals:
        met = None if v is None else (v >= t if op == ">=" else v <= t)
        entry: dict[str, Any] = {"goal": g, "value": v, "target": f"{op} {t:g}", "met": met}
        profile = res.get(section, {}).get("profile") or PROFILES.get(section)
        if met is False and profile:
            entry["profile"] = profile
        out.append(entry)
    res["goals"] = out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.0f}"
    return str(v)


def markdown(res: Results) -> str:
    lines = ["# LiveLedger benchmark results", "", f"Machine: {res['machine']['summary']}  ",
             f"Run: {res['started_at']} ({'quick' if res['quick'] else 'full'}, {res['seconds']:.0f} s)", "",
             "| part | measure | value | baseline(s) |", "|---|---|---|---|"]
    ing, st, e2e, sink, q = (res.get(k, {}) for k in ("ingest", "stream", "e2e", "clickhouse_sink", "query"))

    def row(part: str, measure: str, value: Any, base: str = "") -> None:
        lines.append(f"| {part} | {measure} | {_fmt(value)} | {base} |")

    for name, sec in (("ingest", ing), ("stream", st), ("e2e", e2e), ("clickhouse_sink", sink), ("query", q)):
        if "skipped" in sec and len(sec) <= 2:
            row(name, "skipped", sec["skipped"])
    if "rps" in ing:
        row("ingest", "GET /l/{code} req/s", ing.get("rps"),
            f"aiohttp+uvloop no-op {_fmt(ing.get('baseline_rps'))}; aiohttp (asyncio) no-op "
            f"{_fmt(ing.get('aiohttp_baseline_rps'))}")
        row("ingest", "GET /l/{code} p50 / p99 ms at peak", f"{_fmt(ing.get('p50_ms'))} / {_fmt(ing.get('p99_ms'))}")
        row("ingest", "GET /l/{code} p99 ms at half peak", ing.get("p99_half_load_ms"))
        row("ingest", "server CPU µs per redirect", ing.get("cpu_us_per_req"),
            f"{_fmt(ing.get('baseline_cpu_us_per_req'))} (uvloop no-op), "
            f"{_fmt(ing.get('aiohttp_baseline_cpu_us_per_req'))} (asyncio no-op)")
        row("ingest", "POST /v1/events (100 events) req/s", ing.get("events_rps"),
            f"uvloop no-op POST same body {_fmt(ing.get('events_baseline_rps'))}")
        row("ingest", "events/s through /v1/events", ing.get("events_per_s"))
        row("ingest", "POST /v1/events p99 ms at peak / half peak",
            f"{_fmt(ing.get('events_p99_ms'))} / {_fmt(ing.get('events_p99_half_load_ms'))}")
        row("ingest", "server CPU µs per 100-event batch", ing.get("events_cpu_us_per_req"))
    for name, label in (("liveledger_x1", "LiveLedger worker"), ("liveledger_x2", "2 LiveLedger workers"),
                        ("naive_faust", "naive Faust agent (Table update/event)"),
                        ("raw_aiokafka", "raw aiokafka getmany → Redis")):
        r = st.get("runs", {}).get(name)
        if r is not None:
            row("stream", f"{label} events/s", r.get("events_per_s", r.get("skipped")),
                f"CPU µs/event {_fmt(r.get('cpu_us_per_event'))}" if "cpu_us_per_event" in r else "")
    for s in e2e.get("steps", []):
        row("e2e", f"offered {s['offered_rate']} ev/s: p50 / p99 ms",
            f"{s['p50_ms']} / {s['p99_ms']}", f"achieved {_fmt(s['achieved_rate'])} ev/s, "
            f"{'sustainable' if s['sustainable'] else 'NOT sustainable'}")
    if "max_sustainable_rate" in e2e:
        row("e2e", "max sustainable events/s (of the offered steps)", e2e["max_sustainable_rate"])
    if sink.get("baseline_rows_per_s") is not None:
        row("clickhouse_sink", "sink rows/s", sink.get("rows_per_s") or sink.get("skipped"),
            f"raw clickhouse-connect inserts {_fmt(sink['baseline_rows_per_s'])}")
    if "earnings_p99_ms" in q:
        row("query", "earnings p50 / p99 ms",
            f"{_fmt((q.get('earnings') or {}).get('p50_ms'))} / {_fmt(q['earnings_p99_ms'])}")
    if "live_p99_ms" in q:
        row("query", "live p50 / p99 ms", f"{_fmt((q.get('live') or {}).get('p50_ms'))} / {_fmt(q['live_p99_ms'])}")
    if "events_floor_rps" in ing:
        row("ingest", "events floor req/s (bare handler: orjson + one acks=all record)", ing.get("events_floor_rps"),
            f"ours {_fmt(ing.get('events_rps'))}")
    if "quixstreams_events_per_s" in st:
        row("stream", "quixstreams peer (exactly-once) events/s", st.get("quixstreams_events_per_s"),
            f"RSS {_fmt(st.get('quixstreams_rss_mb'))} MB")
    for name, r in st.get("runs", {}).items():
        if isinstance(r, dict) and "rss_mb" in r:
            row("stream", f"{name} peak RSS MB", r["rss_mb"])
    workers = st.get("workers_events_per_s")
    if isinstance(workers, dict):
        for n, v in sorted(workers.items()):
            row("stream", f"{n} worker(s) events/s", v)
    if "p99_ms_20k" in e2e:
        row("e2e", "p99 ms at 20k events/s sustained 60 s", e2e["p99_ms_20k"])
    for rows_n, v in sorted((q.get("earnings_p99_ms_by_rows") or {}).items(), key=lambda kv: int(kv[0])):
        scan = (q.get("earnings_scan_p99_ms_by_rows") or {}).get(rows_n)
        one = (q.get("earnings_one_caller_p99_ms_by_rows") or {}).get(rows_n)
        row("query", f"earnings p99 ms at {int(rows_n):,} ledger rows (8 callers; 1 caller)",
            f"{_fmt(v)}; {_fmt(one)}", f"scan path {_fmt(scan)}")
    mem = res.get("memory", {})
    for key, label in (("ledger_assign_s_1m_clicks", "ledger assignment s, 1 M clicks"),
                       ("worker_rss_mb_1m_clicks", "worker RSS MB, 1 M clicks")):
        if key in mem:
            row("memory", label, mem[key], f"full load (before) {_fmt(mem.get(key + '_baseline'))}")
    if "redis_bytes_per_million_events" in mem:
        row("memory", "Redis bytes per million events", mem["redis_bytes_per_million_events"])
    lines += ["", "## Goals", "", "| goal | value | target | met |", "|---|---|---|---|"]
    for g in res["goals"]:
        met = "not measured" if g["met"] is None else ("yes" if g["met"] else "**no**")
        lines.append(f"| {g['goal']} | {_fmt(g['value'])} | {g['target']} | {met} |")
    misses = [g for g in res["goals"] if g.get("profile")]
    if misses:
        lines += ["", "## Why the misses", ""]
        for g in misses:
            lines += [f"### {g['goal']}", "", "```", str(g["profile"]).rstrip(), "```", ""]
    return "\n".join(lines) + "\n"


def plots(res: Results, out_dir: Path) -> list[Path]:
    """Bar charts: ingest req/s vs baselines, stream events/s vs baselines, e2e latency by rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []

    def bars(name: str, title: str, ylabel: str, data: dict[str, float | None]) -> None:
        items = [(k, v) for k, v in data.items() if v is not None]
        if not items:
            return
        fig, ax = plt.subplots(figsize=(7, 3.6))
        ax.bar([k for k, _ in items], [v for _, v in items], color="#4c72b0")
        for i, (_, v) in enumerate(items):
            ax.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.tick_params(axis="x", labelsize=8)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    def lines_plot(name: str, title: str, xlabel: str, ylabel: str, series: dict[str, list[tuple[float, float]]],
                   goal: tuple[float, str] | None = None, logx: bool = False) -> None:
        series = {k: v for k, v in series.items() if v}
        if not series:
            return
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for (label, pts), marker in zip(series.items(), "os^vD", strict=False):
            ax.plot([x for x, _ in pts], [y for _, y in pts], f"{marker}-", label=label)
        if goal is not None:
            ax.axhline(goal[0], color="grey", ls="--", lw=1, label=goal[1])
        if logx:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    ing, st, e2e = res.get("ingest", {}), res.get("stream", {}), res.get("e2e", {})
    sink, q, mem = res.get("clickhouse_sink", {}), res.get("query", {}), res.get("memory", {})
    bars("ingest_rps", "Ingest peak req/s (wrk, server on one core)", "req/s",
         {"aiohttp no-op\n(asyncio)": _num(ing, "aiohttp_baseline_rps"),
          "aiohttp no-op\n(uvloop)": _num(ing, "baseline_rps"), "ingest\nGET /l/{code}": _num(ing, "rps"),
          "no-op POST\n100 events": _num(ing, "events_baseline_rps"),
          "floor: parse +\none record": _num(ing, "events_floor_rps"),
          "ingest POST\n/v1/events": _num(ing, "events_rps")})
    runs = st.get("runs", {})
    bars("stream_events_per_s", "Stream processing events/s (same pre-filled topic)", "events/s",
         {"naive Faust": _num(runs.get("naive_faust", {}), "events_per_s"),
          "quixstreams\n(exactly-once)": _num(st, "quixstreams_events_per_s"),
          "raw aiokafka": _num(runs.get("raw_aiokafka", {}), "events_per_s"),
          "LiveLedger x1": _num(runs.get("liveledger_x1", {}), "events_per_s"),
          "LiveLedger x2": _num(runs.get("liveledger_x2", {}), "events_per_s")})
    bars("stream_rss_mb", "Stream contenders: peak RSS", "MB",
         {name.replace("_", " "): _num(r, "rss_mb") for name, r in runs.items() if isinstance(r, dict)}
         | {"quixstreams": _num(st, "quixstreams_rss_mb")})
    workers = st.get("workers_events_per_s")
    if isinstance(workers, dict):
        bars("stream_workers", "LiveLedger events/s by number of workers (2 cores)", "events/s",
             {f"{n} worker(s)": _num(workers, n) for n in sorted(workers)})
    bars("clickhouse_sink_rows_per_s", "ClickHouse sink rows/s", "rows/s",
         {"raw clickhouse-connect\ninserts": _num(sink, "baseline_rows_per_s"),
          "LiveLedger sink": _num(sink, "rows_per_s")})
    steps = e2e.get("steps", [])
    lines_plot("e2e_latency", "End-to-end latency (ingest → Redis)", "offered events/s", "ms",
               {"p50": [(s["offered_rate"], s["p50_ms"]) for s in steps],
                "p99": [(s["offered_rate"], s["p99_ms"]) for s in steps]},
               goal=(100.0, "goal p99 100 ms at 20k"), logx=True)

    def by_rows(key: str) -> list[tuple[float, float]]:
        table = q.get(key)
        return sorted((int(k) / 1e6, float(v)) for k, v in table.items()) if isinstance(table, dict) else []

    lines_plot("earnings_p99_by_rows", "GET /v1/creators/{id}/earnings p99", "ledger rows (millions)", "ms",
               {"summary, 8 callers": by_rows("earnings_p99_ms_by_rows"),
                "scan (before), 8 callers": by_rows("earnings_scan_p99_ms_by_rows"),
                "summary, 1 caller": by_rows("earnings_one_caller_p99_ms_by_rows"),
                "scan (before), 1 caller": by_rows("earnings_scan_one_caller_p99_ms_by_rows")},
               goal=(50.0, "goal 50 ms at 10 M"))
    series = mem.get("month_series")
    if isinstance(series, list):
        lines_plot("redis_memory_month", "Redis used_memory over a simulated month", "day", "MB",
                   {"used_memory": [(float(d), float(b) / 2**20) for d, b in series]})
    bars("ledger_assignment", "Ledger partition assignment with 1 M clicks", "seconds",
         {"full load (before)": _num(mem, "ledger_assign_s_1m_clicks_baseline"),
          "lazy (now)": _num(mem, "ledger_assign_s_1m_clicks")})
    return written
