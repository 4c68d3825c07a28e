"""`python -m api` — serve the API on LIVELEDGER_API_HOST:LIVELEDGER_API_PORT (default 127.0.0.1:8000)."""

from __future__ import annotations

import logging

import uvicorn

from api.app import create_app
from liveledger.settings import get_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port,
                log_level="info", access_log=False)


if __name__ == "__main__":
    main()
