"""``python -m consumers clickhouse``: the ClickHouse sink process."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

from consumers.clickhouse_sink import ClickHouseSink
from liveledger.settings import get_settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m consumers")
    parser.add_argument("role", choices=["clickhouse"], help="which sink to run")
    parser.add_argument("--max-rows", type=int, default=20000)
    parser.add_argument("--max-age", type=float, default=1.0, help="seconds before a partial batch is flushed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s")
    for name in ("aiokafka", "kafka", "clickhouse_connect", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    sink = ClickHouseSink(get_settings(), max_rows=args.max_rows, max_age=args.max_age)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(sink.run())


if __name__ == "__main__":
    main()
