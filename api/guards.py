"""Pure ASGI guards in front of the API's routes (docs/api.md "Limits"): nothing is buffered or parsed
before they have looked at a request.

- :class:`BodyGuard` (outermost): a request body is at most ``api_max_body_bytes`` (1 MiB; the brand
  CSV upload ``POST /v1/finance/reconciliation/orders`` 20 MiB). A ``Content-Length`` above the
  limit is ``413 payload_too_large`` at once, before any key lookup; a body without one (chunked)
  is counted as it streams in and answered ``413`` as soon as it crosses the limit. A body that has
  not fully arrived ``api_body_timeout_s`` after the request head (the CSV upload: that per MiB of
  its limit) is ``408 request_timeout``.
- :class:`KeyBeforeBody`: a request with a body (any method but ``GET``/``HEAD``/``OPTIONS``) under
  ``/v1/`` must carry a known key (admin token or an issued key) before a byte of its body is read;
  otherwise ``401`` (or ``429`` once the key's write budget is spent). The principal is kept in the
  scope for the route's own :data:`api.auth.AuthPrincipal`.

A rejection that leaves body bytes unread closes the connection (``Connection: close``), so the
server does not go on receiving a body nobody will read.
"""

from __future__ import annotations

import asyncio

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import authenticate
from api.finance_routes import MAX_CSV_BYTES
from liveledger.errors import ServiceError, invalid, payload_too_large

__all__ = ["BodyGuard", "KeyBeforeBody", "error_response"]

# path -> body limit for routes that take more than a JSON body
LARGE_BODY_ROUTES = {("POST", "/v1/finance/reconciliation/orders"): MAX_CSV_BYTES}
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def error_response(send: Send, exc: ServiceError, *, close: bool) -> None:
    """Send ``exc`` in the contract's JSON shape (optionally closing the connection after it)."""
    body = orjson.dumps(exc.body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Rejected(Exception):
    """Raised from ``receive`` once the body broke a limit; the guard answers (see ``_Guarded``)."""


def _content_length(scope: Scope) -> int | ServiceError | None:
    values = [v for k, v in scope["headers"] if k == b"content-length"]
    if not values:
        return None
    raw = values[0].decode("latin-1").strip()
    if len(values) > 1 or not raw.isdigit() or len(raw) > 18:
        return invalid("bad Content-Length", "Content-Length", "must be one non-negative integer")
    return int(raw)


class BodyGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    def limit_for(self, scope: Scope) -> int:
        return LARGE_BODY_ROUTES.get((scope["method"], scope["path"]), self.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        length = _content_length(scope)
        if isinstance(length, ServiceError):
            await error_response(send, length, close=True)
            return
        if length is not None and length > limit:
            await error_response(send, _too_large(limit), close=True)
            return
        # the CSV upload's 20 MiB get 20 times the time (its caller's key is known by then)
        timeout_s = self.body_timeout_s * max(1.0, limit / self.max_body_bytes)
        await _Guarded(self.app, limit, timeout_s)(scope, receive, send)


def _too_large(limit: int) -> ServiceError:
    return payload_too_large(f"request body larger than {limit} bytes", "body", f"at most {limit} bytes")


class _Guarded:
    """One request: counts body bytes and bounds the time the body may take; on a breach the
    response the app would send (FastAPI turns a failed body read into a 400) is replaced by the
    guard's own ``413`` / ``408``."""

    def __init__(self, app: ASGIApp, limit: int, timeout_s: float) -> None:
        self.app = app
        self.limit = limit
        self.timeout_s = timeout_s
        self.received = 0
        self.body_done = False
        self.rejection: ServiceError | None = None
        self.started = False
        self.deadline = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def guarded_receive() -> Message:
            if self.rejection is not None:
                raise _Rejected
            if self.body_done:
                return await receive()  # after the body: only http.disconnect, no deadline
            remaining = self.deadline - asyncio.get_running_loop().time()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.0))
            except TimeoutError:
                self.rejection = ServiceError(408, "request_timeout",
                                              f"request body not received within {self.timeout_s:g} s")
                raise _Rejected from None
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit:
                    self.rejection = _too_large(self.limit)
                    raise _Rejected
                if not message.get("more_body", False):
                    self.body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            if self.rejection is not None:
                if not self.started:  # the app's answer to the failed read: ours instead
                    self.started = True
                    await error_response(send, self.rejection, close=True)
                return
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _Rejected:
            pass
        except Exception:
            if self.rejection is None:
                raise
        if self.rejection is not None and not self.started:
            self.started = True
            await error_response(send, self.rejection, close=True)


class KeyBeforeBody:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in _NO_BODY_METHODS
                or not scope["path"].startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        request: Request = Request(scope)
        try:
            await authenticate(request)  # keeps the principal in the scope for the route
        except ServiceError as exc:
            await error_response(send, exc, close=True)
            return
        await self.app(scope, receive, send)
