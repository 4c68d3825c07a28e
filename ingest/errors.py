"""aiohttp adapter of :class:`liveledger.errors.ServiceError`: the contract's error body as a response."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from liveledger.errors import ServiceError


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json",
                        headers=headers)


def error_response(exc: ServiceError) -> web.Response:
    return json_response(exc.status, exc.body(), exc.headers)
