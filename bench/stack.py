"""An isolated LiveLedger stack for the bench: tests.harness.AppStack (fresh topic prefix, free
ports) plus a brand, streams and links created through the setup API."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from bench.common import free_port
from bench.kafka_util import cleanup
from bench.sink_bench import drop_database, migrate_database
from liveledger.settings import DEV_ADMIN_TOKEN
from loadtests.payloads import World, setup_world
from tests.harness import AppStack


@contextlib.contextmanager
def app_stack(log_dir: Path, *, worker: bool = False, sink: bool = False,
              streams: int = 8) -> Iterator[tuple[AppStack, World]]:
    """Ingest + API (+ the stream worker, + the ClickHouse sink) on a fresh topic prefix, ClickHouse
    database and Redis namespace; everything is deleted afterwards."""
    log_dir.mkdir(parents=True, exist_ok=True)
    stack = AppStack(log_dir=log_dir)
    database = stack.prefix
    stack.extra_env["LIVELEDGER_CLICKHOUSE_DATABASE"] = database
    stack.create_topics()
    try:
        migrate_database(database)
        stack.start_api()
        stack.start_ingest()
        if worker:
            data = log_dir / f"data-{stack.prefix}"
            data.mkdir(parents=True, exist_ok=True)
            stack.start("streams", "streams", "--datadir", str(data), "worker", "--web-port", str(free_port()))
        if sink:
            stack.start("sink", "consumers", "clickhouse")
        world = setup_world(stack.api_url, DEV_ADMIN_TOKEN, streams=streams, links=8)
        yield stack, world
    finally:
        stack.stop_all()
        cleanup(stack.settings)
        drop_database(database)
