"""Operations of the API process: ``GET /metrics``, ``GET /readyz``, request metrics and the startup gate.

- :class:`RequestMetrics` (pure ASGI, outermost of ours): every request counted by route *template*
  (``/v1/streams/{stream_id}/live``: the route Starlette matched, or for a request a guard answered
  before routing, the route it would have matched; ``<unmatched>`` otherwise), method and status,
  with its latency until the response head (an SSE stream is timed to its first byte, not its life).
- :class:`StartupGate`: the API's Kafka clients connect in the background (api/app.py); until they
  are up every route but ``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI pages answers
  ``503 starting`` (``/healthz`` itself answers 503 until then).
- ``/readyz``: Kafka, Redis and ClickHouse (liveledger/readiness.py), each probe ≤ 1 s.
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liveledger import metrics
from liveledger.errors import error_body
from liveledger.readiness import Readiness

__all__ = ["OPS_PATHS", "RequestMetrics", "StartupGate", "router"]

router = APIRouter(tags=["ops"])
# answered while the API is still starting
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"})


@router.get("/metrics", include_in_schema=False)
async def get_metrics() -> Response:
    return Response(await metrics.render(), media_type=metrics.CONTENT_TYPE)


@router.get("/readyz", summary="Readiness: 200 when Kafka, Redis and ClickHouse answer, else 503 naming them")
async def readyz(request: Request) -> JSONResponse:
    readiness: Readiness = request.app.state.readiness
    status, body = await readiness.check()
    return JSONResponse(body, status_code=status)


def _templates(app: Any) -> list[tuple[re.Pattern[str], str, frozenset[str]]]:
    """Every documented route as (regex, template, methods), from the app's OpenAPI paths."""
    out = []
    for template, operations in app.openapi().get("paths", {}).items():
        regex, _, _ = compile_path(template)
        out.append((regex, template, frozenset(m.upper() for m in operations)))
    return out


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._table: list[tuple[re.Pattern[str], str, frozenset[str]]] | None = None

    def route_template(self, scope: Scope) -> str:
        """The matched route's template; for a request answered before routing (a guard's 413 or
        401), the documented route its path and method would have matched."""
        route = scope.get("route")
        if route is not None:
            return str(getattr(route, "path", metrics.UNMATCHED_ROUTE))
        if self._table is None:
            self._table = _templates(scope["app"])
        path, method = scope["path"], scope["method"]
        candidates = [template for regex, template, _ in self._table if regex.match(path)]
        for regex, template, methods in self._table:
            if method in methods and regex.match(path):
                return template
        return candidates[0] if candidates else metrics.UNMATCHED_ROUTE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        seen: list[Any] = []  # [status, seconds] once the response head went out

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not seen:
                seen.extend((message["status"], time.perf_counter() - start))
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            status, seconds = seen if seen else (500, time.perf_counter() - start)
            metrics.observe_request(self.route_template(scope), scope["method"], status, seconds)


class StartupGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and getattr(scope["app"].state, "starting", False)
                and scope["path"] not in OPS_PATHS):
            body = orjson.dumps(error_body("starting", "starting: waiting for Kafka"))
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"2")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
