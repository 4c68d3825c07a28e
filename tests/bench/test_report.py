"""bench/report.py on made-up results (no services): issue 12's goals, ratios, the misses' profiles,
and one plot per figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import report


def _results() -> dict[str, Any]:
    month = [[d, 1000 * min(d, 8)] for d in range(31)]  # grows for 8 days, then flat
    return {
        "started_at": "t", "quick": True, "seconds": 1.0, "machine": {"summary": "m"},
        "ingest": {"rps": 700.0, "baseline_rps": 1000.0, "aiohttp_baseline_rps": 900.0, "events_rps": 40.0,
                   "events_floor_rps": 100.0, "events_baseline_rps": 200.0, "p99_half_load_ms": 5.0,
                   "events_p99_half_load_ms": 25.0, "profile": "pydantic 40 %"},
        "stream": {"events_per_s": 30_000.0, "quixstreams_events_per_s": 10_000.0, "quixstreams_rss_mb": 90.0,
                   "naive_faust_events_per_s": 5000.0, "raw_aiokafka_events_per_s": 100_000.0,
                   "workers_events_per_s": {"1": 30_000.0, "2": 45_000.0, "3": 50_000.0},
                   "runs": {"liveledger_x1": {"events_per_s": 30_000.0, "rss_mb": 120.0}}},
        "e2e": {"p99_ms_20k": 80.0, "steps": [{"offered_rate": 20_000, "p50_ms": 10.0, "p99_ms": 80.0,
                                                   "achieved_rate": 19_900.0, "sustainable": True}]},
        "clickhouse_sink": {"rows_per_s": 60.0, "baseline_rows_per_s": 100.0},
        "query": {"earnings_p99_ms": 12.0, "earnings_p99_ms_by_rows": {"1000000": 8.0, "10000000": 12.0},
                  "earnings_scan_p99_ms_by_rows": {"1000000": 30.0, "10000000": 200.0}},
        "memory": {"ledger_assign_s_1m_clicks": 0.01, "ledger_assign_s_1m_clicks_baseline": 12.0,
                   "worker_rss_mb_1m_clicks": 80.0, "worker_rss_mb_1m_clicks_baseline": 900.0,
                   "redis_bytes_per_million_events": 5e7, "month_series": month},
    }


def _goals(res: dict[str, Any]) -> dict[str, dict[str, Any]]:
    report.add_ratios(res)
    return {g["goal"]: g for g in res["goals"]}


def test_issue_12_goals_and_ratios() -> None:
    res = _results()
    goals = _goals(res)
    r = res["ratios"]
    assert r["ingest_events_vs_floor"] == pytest.approx(0.4)
    assert r["stream_vs_quixstreams"] == pytest.approx(3.0)
    assert r["stream_three_vs_one_worker"] == pytest.approx(50 / 30, rel=1e-3)
    assert r["earnings_summary_vs_scan_10m"] == pytest.approx(0.06)
    assert r["redis_month_growth_last_vs_first_third"] == pytest.approx(0.0)
    assert goals["events path ≥ 50 % of its floor (bare handler: orjson parse + one acks=all record)"]["met"] is False
    assert goals["stream ≥ 1.5x the quixstreams peer (exactly-once)"]["met"] is True
    assert goals["e2e p99 ≤ 100 ms at 20k events/s for 60 s"]["met"] is True
    assert goals["earnings p99 ≤ 50 ms at 10 M ledger rows"]["met"] is True
    assert goals["ledger assignment with 1 M clicks ≤ 10 % of the full-load time"]["met"] is True
    assert goals["Redis memory levels off over a month (last third grows ≤ 25 % of the first)"]["met"] is True
    # A miss carries its section's profile; a met goal does not.
    miss = goals["ingest p99 ≤ 20 ms at half max load (100-event batch)"]
    assert miss["met"] is False and miss["profile"] == "pydantic 40 %"
    assert "profile" not in goals["ingest ≥ 60 % of its framework's bare endpoint"]
    md = report.markdown(res)
    assert "## Why the misses" in md and "pydantic 40 %" in md
    assert "| query | earnings p99 ms at 10,000,000 ledger rows (8 callers; 1 caller) | 12; - | scan path 200 |" in md


def test_linear_memory_growth_misses_and_unmeasured_is_none() -> None:
    res = _results()
    res["memory"]["month_series"] = [[d, 1000 * d] for d in range(31)]
    res["query"] = {"earnings_p99_ms": 12.0, "earnings_p99_ms_by_rows": {"1000000": 12.0}}  # no 10 M point
    goals = _goals(res)
    assert res["ratios"]["redis_month_growth_last_vs_first_third"] == pytest.approx(1.0)
    assert goals["Redis memory levels off over a month (last third grows ≤ 25 % of the first)"]["met"] is False
    assert goals["earnings p99 ≤ 50 ms at 10 M ledger rows"]["met"] is None


def test_one_plot_per_figure(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    res = _results()
    report.add_ratios(res)
    names = {p.name for p in report.plots(res, tmp_path)}
    assert names == {"ingest_rps.png", "stream_events_per_s.png", "stream_rss_mb.png", "stream_workers.png",
                     "clickhouse_sink_rows_per_s.png", "e2e_latency.png", "earnings_p99_by_rows.png",
                     "redis_memory_month.png", "ledger_assignment.png"}
    assert all((tmp_path / n).stat().st_size > 1000 for n in names)


def test_merge_keeps_the_other_parts_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.__main__ as main
    from bench.config import QUICK

    calls: list[str] = []

    def part(name: str, value: float) -> Any:
        def fn(_cfg: Any, _logs: Path) -> dict[str, Any]:
            calls.append(name)
            return {"rows_per_s": value, "baseline_rows_per_s": 100.0}
        return fn

    monkeypatch.setattr(main, "PARTS", {"sink": ("clickhouse_sink", part("sink", 60.0)),
                                        "other": ("other", part("other", 1.0))})
    monkeypatch.setattr(report, "plots", lambda _res, _out: [])
    main.run(["sink", "other"], QUICK, tmp_path, quick=True)
    monkeypatch.setattr(main, "PARTS", {"sink": ("clickhouse_sink", part("sink", 70.0)),
                                        "other": ("other", part("other", 2.0))})
    res = main.run(["other"], QUICK, tmp_path, quick=True, merge=True)
    assert calls == ["sink", "other", "other"]
    assert res["clickhouse_sink"]["rows_per_s"] == 60.0 and "started_at" in res["clickhouse_sink"]
    assert res["other"]["rows_per_s"] == 2.0
    assert res["ratios"]["sink_vs_raw_inserts"] == pytest.approx(0.6)
    res = main.run(["other"], QUICK, tmp_path, quick=True)  # without --merge: not selected
    assert res["clickhouse_sink"] == {"skipped": "not selected (--only)"}
