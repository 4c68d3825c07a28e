"""``python -m bench --quick`` end to end at tiny sizes: the JSON shape and positive numbers.

No timing asserts: these machines are noisy, the numbers are the bench's business. Pure parts
(wrk output parsing, ratios, the markdown table) are checked without services.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from bench import report, wrk

WRK_OUT = """Running 2s test @ http://127.0.0.1:1/noop
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.75ms  623.36us   9.75ms   86.39%
  Latency Distribution
     50%    1.59ms
     75%    1.84ms
     90%    2.34ms
     99%    1.62s{TRAILING_SPACE}
  73726 requests in 2.00s, 10.90MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  36823.07
""".replace("{TRAILING_SPACE}", " ")  # wrk pads some values with a space

REQUIRED = {
    "ingest": {"rps", "baseline_rps", "aiohttp_baseline_rps", "p99_ms"},
    "stream": {"events_per_s", "naive_faust_events_per_s", "raw_aiokafka_events_per_s"},
    "e2e": {"p50_ms", "p99_ms", "rate"},
    "clickhouse_sink": {"rows_per_s", "baseline_rows_per_s"},
    "query": {"earnings_p99_ms", "live_p99_ms"},
}


def test_parse_wrk_output() -> None:
    p = wrk.parse(WRK_OUT)
    assert p["requests"] == 73726
    assert p["duration_s"] == pytest.approx(2.0)
    assert p["p50_ms"] == pytest.approx(1.59)
    assert p["p99_ms"] == pytest.approx(1620.0)
    assert p["errors"] == 5
    assert p["non_2xx_3xx"] == 7


def test_ratios_and_markdown_without_measurements() -> None:
    res: dict[str, Any] = {"ingest": {"rps": 600.0, "baseline_rps": 1000.0, "aiohttp_baseline_rps": 1200.0},
                           "stream": {"skipped": "x"}, "started_at": "t", "quick": True, "seconds": 1.0,
                           "machine": {"summary": "m"}}
    report.add_ratios(res)
    assert res["ratios"]["ingest_vs_framework_bare"] == pytest.approx(0.6)
    goals = {g["goal"]: g["met"] for g in res["goals"]}
    assert goals["ingest ≥ 60 % of its framework's bare endpoint"] is True
    assert goals["ingest ≥ 40 % of bare aiohttp"] is True
    assert goals["stream ≥ 8x naive Faust"] is None
    assert "| stream | skipped | x |" in report.markdown(res)


def _positive_numbers(section: dict[str, Any], keys: set[str]) -> None:
    for k in keys:
        v = section[k]
        assert isinstance(v, (int, float)) and v > 0, (k, v)


@pytest.mark.e2e
@pytest.mark.kafka
@pytest.mark.redis
@pytest.mark.clickhouse
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (devstack/install.sh installs it)")
def test_quick_bench_end_to_end(tmp_path: Path) -> None:
    from bench.__main__ import PARTS, run
    from bench.config import QUICK

    res = run(list(PARTS), QUICK, tmp_path, quick=True)
    for name in ("results.json", "results.md", "ingest_rps.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    for section, keys in REQUIRED.items():
        sec = res[section]
        assert "skipped" not in sec or section in ("clickhouse_sink", "query"), (section, sec)
        if "skipped" in sec:  # a component that has not landed yet: the reason is recorded
            assert isinstance(sec["skipped"], str) and sec["skipped"]
            continue
        _positive_numbers(sec, keys)
    assert res["ratios"]["ingest_vs_framework_bare"] > 0
    assert {g["goal"] for g in res["goals"]} >= {"stream ≥ 8x naive Faust", "ClickHouse sink ≥ 50 % of raw inserts"}
