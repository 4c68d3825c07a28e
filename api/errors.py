"""FastAPI handlers that answer every error in the contract's shape ``{"error": {"code", "message", "details"}}``:
:class:`liveledger.errors.ServiceError`, request validation, Starlette's HTTP exceptions and, last,
anything unexpected (``500 internal_error``: the traceback goes to the log, never to the caller)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from liveledger.errors import Detail, ServiceError, error_body

log = logging.getLogger("api.errors")

_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 408: "request_timeout", 409: "conflict", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "validation_failed", 429: "rate_limited"}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details: list[Detail] = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
            details.append({"field": ".".join(loc) or "body", "reason": str(err.get("msg", "invalid"))})
        return JSONResponse(error_body("validation_failed", "request did not validate", details),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Starlette's ServerErrorMiddleware calls this for anything no handler above took, sends
        # the answer, then re-raises (uvicorn logs it once more).
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal_error", "internal error; the service logged the details"),
                            status_code=500)
