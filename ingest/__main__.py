"""`python -m ingest` — serve the ingest hot path (default 127.0.0.1:8080) on uvloop."""

from __future__ import annotations

import logging

from aiohttp import web

from ingest.app import create_app
from liveledger.settings import get_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency, but keep the service usable
        pass
    settings = get_settings()
    web.run_app(create_app(settings), host=settings.ingest_host, port=settings.ingest_port,
                access_log=None, print=None, handle_signals=True)


if __name__ == "__main__":
    main()
