"""`python -m api` — serve the API on LIVELEDGER_API_HOST:LIVELEDGER_API_PORT (default 127.0.0.1:8000).

Connection limits (docs/api.md "Limits"): idle keep-alive connections close after
``api_keep_alive_s``; a request head must be complete within ``api_header_timeout_s`` of the
connection opening or the previous response, and at most ``api_max_header_bytes`` (api/server.py).
"""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_app
from api.server import guarded_protocol
from liveledger.settings import get_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_level="info", access_log=False,
                http=guarded_protocol(settings.api_header_timeout_s, settings.api_max_header_bytes),
                timeout_keep_alive=settings.api_keep_alive_s)


if __name__ == "__main__":
    main()
