"""Error responses of the ingest service, in the contract's JSON shape."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


class IngestError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {"error": {"code": self.code, "message": self.message, "details": self.details}}
        return web.Response(status=self.status, body=orjson.dumps(body), content_type="application/json",
                            headers=self.headers)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload), content_type="application/json",
                        headers=headers)


def unauthorized(reason: str, field: str = "Authorization") -> IngestError:
    return IngestError(401, "unauthorized", reason, [{"field": field, "reason": reason}])


def forbidden(reason: str, field: str) -> IngestError:
    return IngestError(403, "forbidden", reason, [{"field": field, "reason": reason}])
