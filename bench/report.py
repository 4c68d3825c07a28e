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


def add_ratios(res: Results) -> None:
    """Fill ``res["ratios"]`` and ``res["goals"]`` (each goal: value, target, met or None = not measured)."""
    ing, st, e2e, sink = (res.get(k, {}) for k in ("ingest", "stream", "e2e", "clickhouse_sink"))
    ratios = {
        "ingest_vs_framework_bare": _ratio(_num(ing, "rps"), _num(ing, "baseline_rps")),
        "ingest_vs_aiohttp_bare": _ratio(_num(ing, "rps"), _num(ing, "aiohttp_baseline_rps")),
        "ingest_events_vs_framework_bare_post": _ratio(_num(ing, "events_rps"), _num(ing, "events_baseline_rps")),
        "stream_vs_naive_faust": _ratio(_num(st, "events_per_s"), _num(st, "naive_faust_events_per_s")),
        "stream_vs_raw_aiokafka": _ratio(_num(st, "events_per_s"), _num(st, "raw_aiokafka_events_per_s")),
        "stream_two_vs_one_worker": _ratio(_num(st, "two_workers_events_per_s"), _num(st, "events_per_s")),
        "sink_vs_raw_inserts": _ratio(_num(sink, "rows_per_s"), _num(sink, "baseline_rows_per_s")),
    }
    res["ratios"] = ratios
    goals: list[tuple[str, float | None, str, float]] = [
        ("ingest ≥ 60 % of its framework's bare endpoint", ratios["ingest_vs_framework_bare"], ">=", 0.6),
        ("ingest ≥ 40 % of bare aiohttp", ratios["ingest_vs_aiohttp_bare"], ">=", 0.4),
        ("ingest p99 ≤ 20 ms at half max load (redirect)", _num(ing, "p99_half_load_ms"), "<=", 20.0),
        ("ingest p99 ≤ 20 ms at half max load (100-event batch)", _num(ing, "events_p99_half_load_ms"), "<=", 20.0),
        ("stream ≥ 8x naive Faust", ratios["stream_vs_naive_faust"], ">=", 8.0),
        ("stream ≥ 25 % of raw aiokafka", ratios["stream_vs_raw_aiokafka"], ">=", 0.25),
        ("e2e p99 ≤ 250 ms at 5k events/s", _num(e2e, "p99_ms") if e2e.get("rate") == 5000 else None, "<=", 250.0),
        ("ClickHouse sink ≥ 50 % of raw inserts", ratios["sink_vs_raw_inserts"], ">=", 0.5),
    ]
    res["goals"] = [{"goal": g, "value": v, "target": f"{op} {t:g}",
                     "met": None if v is None else (v >= t if op == ">=" else v <= t)} for g, v, op, t in goals]


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
        row("query", "earnings p50 / p99 ms", f"{q['earnings']['p50_ms']} / {q['earnings_p99_ms']}")
        row("query", "live p50 / p99 ms", f"{q['live']['p50_ms']} / {q['live_p99_ms']}")
    lines += ["", "## Goals", "", "| goal | value | target | met |", "|---|---|---|---|"]
    for g in res["goals"]:
        met = "not measured" if g["met"] is None else ("yes" if g["met"] else "**no**")
        lines.append(f"| {g['goal']} | {_fmt(g['value'])} | {g['target']} | {met} |")
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

    ing, st, e2e = res.get("ingest", {}), res.get("stream", {}), res.get("e2e", {})
    bars("ingest_rps", "Ingest peak req/s (wrk, server on one core)", "req/s",
         {"aiohttp no-op\n(asyncio)": _num(ing, "aiohttp_baseline_rps"),
          "aiohttp no-op\n(uvloop)": _num(ing, "baseline_rps"), "ingest\nGET /l/{code}": _num(ing, "rps"),
          "no-op POST\n100 events": _num(ing, "events_baseline_rps"),
          "ingest POST\n/v1/events": _num(ing, "events_rps")})
    runs = st.get("runs", {})
    bars("stream_events_per_s", "Stream processing events/s", "events/s",
         {"naive Faust": _num(runs.get("naive_faust", {}), "events_per_s"),
          "raw aiokafka": _num(runs.get("raw_aiokafka", {}), "events_per_s"),
          "LiveLedger x1": _num(runs.get("liveledger_x1", {}), "events_per_s"),
          "LiveLedger x2": _num(runs.get("liveledger_x2", {}), "events_per_s")})
    steps = e2e.get("steps", [])
    if steps:
        fig, ax = plt.subplots(figsize=(7, 3.6))
        rates = [s["offered_rate"] for s in steps]
        ax.plot(rates, [s["p50_ms"] for s in steps], "o-", label="p50")
        ax.plot(rates, [s["p99_ms"] for s in steps], "s-", label="p99")
        ax.axhline(250, color="grey", ls="--", lw=1, label="goal p99 250 ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered events/s")
        ax.set_ylabel("ingest → Redis latency, ms")
        ax.set_title("End-to-end latency")
        ax.legend()
        fig.tight_layout()
        path = out_dir / "e2e_latency.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
