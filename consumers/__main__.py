"""``python -m consumers clickhouse``: the ClickHouse sink process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from consumers.clickhouse_sink import ClickHouseSink
from liveledger import metrics
from liveledger.ops_server import OpsServer
from liveledger.readiness import Readiness
from liveledger.settings import Settings, get_settings


async def serve(settings: Settings, sink: ClickHouseSink) -> None:
    """The sink with its metrics port (/metrics, /healthz, /readyz: Kafka and ClickHouse)."""
    metrics.identify("sink")
    ops = OpsServer(settings, "sink", Readiness(settings, ("kafka", "clickhouse")))
    await ops.start()
    metrics.on_scrape(sink.report_lag)
    try:
        await sink.run()
    finally:
        await ops.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m consumers")
    parser.add_argument("role", choices=["clickhouse"], help="which sink to run")
    parser.add_argument("--max-rows", type=int, default=20000)
    parser.add_argument("--max-age", type=float, default=1.0, help="seconds before a partial batch is flushed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    for name in ("aiokafka", "kafka", "clickhouse_connect", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    settings = get_settings()
    sink = ClickHouseSink(settings, max_rows=args.max_rows, max_age=args.max_age)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, sink))


if __name__ == "__main__":
    main()
