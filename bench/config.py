"""Bench sizes: the full run (``make bench``, ~10-15 min on 2 cores) and ``--quick`` (smoke tests)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    wrk_seconds: float          # one wrk run
    wrk_connections: int
    rounds: int                 # ingest contenders are interleaved this many times; best run counts
    stream_events: int          # events pre-filled for each stream contender
    naive_events: int
    stream_timeout_s: float
    worker_counts: tuple[int, ...]  # LiveLedger runs with this many worker processes (the scale-out table)
    e2e_rates: tuple[int, ...]  # offered events/s; 1k and 5k first, then steps to find the max
    e2e_seconds: float          # per offered rate
    e2e_sustained: tuple[int, float] | None  # (events/s, seconds): the sustained step (e2e.p99_ms_20k)
    e2e_batch: int              # events per POST /v1/events in the e2e runs
    sink_rows: int
    query_seconds: float


FULL = BenchConfig(wrk_seconds=8, wrk_connections=64, rounds=2, stream_events=400_000, naive_events=200_000,
                   stream_timeout_s=180, worker_counts=(1, 2, 3),
                   e2e_rates=(1000, 5000, 10_000, 15_000, 20_000, 30_000), e2e_seconds=10,
                   e2e_sustained=(20_000, 60), e2e_batch=100, sink_rows=500_000, query_seconds=5)
QUICK = BenchConfig(wrk_seconds=1, wrk_connections=8, rounds=1, stream_events=3000, naive_events=1000,
                    stream_timeout_s=60, worker_counts=(1,), e2e_rates=(500,), e2e_seconds=2,
                    e2e_sustained=None, e2e_batch=50,
                    sink_rows=5000, query_seconds=1)
