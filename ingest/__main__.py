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
                access_log=None, print=None, handle_signals=True,
                # aiohttp closes a connection that has no complete request within this long, from
                # its start or its last response: idle keep-alives and slow (half-sent) headers alike.
                keepalive_timeout=settings.ingest_idle_timeout_s,
                # after answering early (401, 413, 408) the unread rest of a body is drained for at
                # most 1 s (aiohttp's default is 10 s of a connection held open by the sender)
                lingering_time=1.0)


if __name__ == "__main__":
    main()
