"""ClickHouse sink rows/s vs raw clickhouse-connect batch inserts into the same table.

Both write the ``events`` table of a fresh database migrated with the project's migrations:
- baseline: pre-built rows (no Kafka, no parsing) inserted with ``client.insert`` in batches of
  10,000 — the ceiling of the driver and server;
- sink: ``python -m consumers clickhouse`` on a fresh topic prefix pre-filled with the same number
  of events; rows/s from the first to the last row visible (``SELECT count()``).
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import ROOT, cpu_seconds, fresh_prefix, start_module
from bench.config import BenchConfig
from bench.kafka_util import cleanup, make_topics, produce_events, settings_for
from liveledger.ch import get_client
from liveledger.settings import Settings

COLUMNS = ["brand_id", "stream_id", "occurred_at", "event_id", "type", "viewer_id", "product_id", "action",
           "campaign_id", "creator_id", "link_code", "batch_id", "received_at", "source_partition", "source_offset"]
BATCH = 10_000


def sink_available() -> bool:
    return (ROOT / "consumers" / "__main__.py").exists()


def migrate_database(database: str, settings: Settings | None = None) -> None:
    """Create ``database`` with the project's ClickHouse migrations applied."""
    from consumers.migrate import migrate

    client = get_client(settings or Settings(), database="default")
    try:
        migrate(client, database)
    finally:
        client.close()


def drop_database(database: str, settings: Settings | None = None) -> None:
    with contextlib.suppress(Exception):
        client = get_client(settings or Settings(), database="default")
        try:
            client.command(f"DROP DATABASE IF EXISTS `{database}`")
        finally:
            client.close()


def raw_inserts(settings: Settings, rows: int) -> dict[str, Any]:
    database = fresh_prefix("ch")
    migrate_database(database, settings)
    now = datetime.now(UTC)
    data = [[f"bb{i % 12}", f"bb{i % 12}-s{i % 4}", now, f"raw-{i}", "view", f"v{i % 5000}", "", "join", "", "",
             "", f"batch-{i // 100}", now, i % 6, i] for i in range(rows)]
    client = get_client(settings, database=database)
    try:
        t0 = time.perf_counter()
        for i in range(0, rows, BATCH):
            client.insert("events", data[i:i + BATCH], column_names=COLUMNS)
        span = time.perf_counter() - t0
        got = int(client.query("SELECT count() FROM events").result_rows[0][0])
    finally:
        client.close()
        drop_database(database, settings)
    return {"rows": rows, "rows_seen": got, "seconds": round(span, 3), "rows_per_s": round(rows / span, 1),
            "batch_rows": BATCH}


def sink(settings_base: Settings, rows: int, timeout_s: float, log_dir: Path) -> dict[str, Any]:
    prefix = fresh_prefix("k")
    database = prefix
    settings = settings_for(prefix)
    make_topics(settings)
    migrate_database(database, settings_base)
    produced = produce_events(settings, rows)
    proc = start_module(f"sink-{prefix}", ["consumers", "clickhouse"], log_dir,
                        {"LIVELEDGER_TOPIC_PREFIX": prefix, "LIVELEDGER_CLICKHOUSE_DATABASE": database})
    client = get_client(settings_base, database=database)
    try:
        t_start = time.monotonic()
        first: tuple[float, int, float] | None = None
        seen = 0
        while time.monotonic() < t_start + timeout_s:
            if not proc.alive():
                return {"skipped": f"sink exited ({proc.popen.returncode}): {proc.tail(5)}"}
            seen = int(client.query("SELECT count() FROM events").result_rows[0][0])
            now = time.monotonic()
            if seen and first is None:
                first = (now, seen, cpu_seconds(proc.pid))
            if seen >= produced:
                break
            time.sleep(0.1)
        t_end, cpu_end = time.monotonic(), cpu_seconds(proc.pid)
        if seen < produced or first is None:
            return {"skipped": f"sink wrote {seen}/{produced} rows in {timeout_s}s"}
        t_first, n_first, cpu_first = first
        if n_first < produced / 2:
            span, counted, cpu = t_end - t_first, produced - n_first, cpu_end - cpu_first
        else:
            span, counted, cpu = t_end - t_start, produced, cpu_end
        return {"rows": produced, "seconds": round(span, 3), "rows_per_s": round(counted / span, 1),
                "cpu_us_per_row": round(cpu / counted * 1e6, 2)}
    finally:
        proc.stop()
        client.close()
        cleanup(settings)
        drop_database(database, settings_base)


def run(cfg: BenchConfig, log_dir: Path) -> dict[str, Any]:
    settings = Settings()
    try:
        base = raw_inserts(settings, cfg.sink_rows)
    except Exception as exc:
        return {"skipped": f"ClickHouse unavailable for raw inserts: {exc!r}"[:300]}
    out: dict[str, Any] = {"baseline_rows_per_s": base["rows_per_s"], "baseline": base}
    if sink_available():
        s = sink(settings, cfg.sink_rows, max(60.0, cfg.sink_rows / 2000), log_dir)
        out["sink"] = s
        out["rows_per_s"] = s.get("rows_per_s")
        if "skipped" in s:
            out["skipped"] = s["skipped"]
    else:
        out["rows_per_s"] = None
        out["skipped"] = "consumers/__main__.py (python -m consumers clickhouse) does not exist yet"
    return out
