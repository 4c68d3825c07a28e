"""The API's HTTP server protocol: uvicorn's httptools protocol with a deadline on request heads.

uvicorn (0.54) closes a keep-alive connection that stays idle ``timeout_keep_alive`` seconds after a
response, but it arms no timer on a new connection and cancels the keep-alive timer on the first
byte of the next request, so a client that connects and sends nothing, or half a request line, holds
the connection forever (slowloris). :func:`guarded_protocol` adds what is missing:

- a **head deadline**: from the moment a connection waits for a request (it opened, or the previous
  response finished) the complete request line and headers must arrive within
  ``header_timeout_s``; otherwise the connection is closed;
- a **head size cap**: more than ``max_header_bytes`` without the end of the head is
  ``431`` and the connection is closed (httptools itself has no limit);
- malformed HTTP is answered ``400`` in the contract's JSON error shape (uvicorn's is text/plain).

The request body's own deadline and size are the ASGI guards' (api/guards.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from liveledger.errors import error_body

__all__ = ["GuardedHttpToolsProtocol", "guarded_protocol"]


def _raw_error(status: int, reason: str, code: str, message: str) -> bytes:
    body = orjson.dumps(error_body(code, message))
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("latin-1") + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._awaiting_head = False
        self._head_bytes = 0

    # -- the head deadline ------------------------------------------------------------------------

    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._awaiting_head = True
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._awaiting_head and not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._awaiting_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request's head is already complete
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing():
            self._await_head()

    # -- the head size cap and JSON 400s ----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        awaiting = self._awaiting_head
        super().data_received(data)
        if awaiting and self._awaiting_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self.transport.write(_raw_error(431, "Request Header Fields Too Large",
                                                "request_header_fields_too_large",
                                                f"request head larger than {self.max_header_bytes} bytes"))
                self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self.transport.write(_raw_error(400, "Bad Request", "bad_request", msg))
        self.transport.close()


def guarded_protocol(header_timeout_s: float, max_header_bytes: int) -> type[GuardedHttpToolsProtocol]:
    """The protocol class with these limits, for ``uvicorn.run(http=...)``."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes})
