"""The one error type of the HTTP services (ingest and API) and the contract's error body.

Handlers raise :class:`ServiceError` (usually through a helper below); each service turns it into
a response with its framework's adapter (``ingest/errors.py`` for aiohttp, ``api/errors.py`` for
FastAPI). The body is always ``{"error": {"code", "message", "details": [{field, reason}]}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from schemas.errors import ValidationFailed

__all__ = [
    "Detail",
    "ServiceError",
    "conflict",
    "error_body",
    "forbidden",
    "invalid",
    "not_found",
    "payload_too_large",
    "unauthorized",
    "unavailable",
    "unsupported_media_type",
    "validation_failed",
]

Detail = dict[str, Any]


def error_body(code: str, message: str, details: list[Detail] | None = None) -> dict[str, Any]:
    """The contract's error JSON."""
    return {"error": {"code": code, "message": message, "details": details or []}}


class ServiceError(Exception):
    """An answer other than success: HTTP ``status``, contract ``code``, ``message``, ``details``
    (``[{"field", "reason"}]``) and extra response ``headers`` (``Retry-After``, ``WWW-Authenticate``)."""

    def __init__(self, status: int, code: str, message: str, details: list[Detail] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: list[Detail] = details or []
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)

    def __repr__(self) -> str:
        return f"ServiceError({self.status}, {self.code!r}, {self.message!r})"


class _Helper(Protocol):
    def __call__(self, message: str, field: str | None = None, reason: str | None = None, *,
                 details: list[Detail] | None = None, headers: Mapping[str, str] | None = None) -> ServiceError: ...


def _helper(status: int, code: str) -> _Helper:
    """``helper(message, field=None, reason=None, *, details=None, headers=None)``: with ``field`` the
    details are ``[{"field": field, "reason": reason or message}]``; ``details`` replaces them;
    without either they are empty."""

    def make(message: str, field: str | None = None, reason: str | None = None, *,
             details: list[Detail] | None = None, headers: Mapping[str, str] | None = None) -> ServiceError:
        if details is None:
            details = [] if field is None else [{"field": field, "reason": message if reason is None else reason}]
        return ServiceError(status, code, message, details, headers)

    return make


unauthorized = _helper(401, "unauthorized")  # no credentials, or ones that prove nothing
forbidden = _helper(403, "forbidden")  # the principal is known but may not do this
not_found = _helper(404, "not_found")
conflict = _helper(409, "conflict")
payload_too_large = _helper(413, "payload_too_large")
unsupported_media_type = _helper(415, "unsupported_media_type")
invalid = _helper(422, "validation_failed")  # a problem found by hand, not by a schema (see below)


def unavailable(message: str, retry_after_s: int | None = None, *, code: str = "unavailable") -> ServiceError:
    """503 (with ``Retry-After`` when given): nothing was accepted, retry later."""
    headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
    return ServiceError(503, code, message, headers=headers)


def validation_failed(exc: ValidationFailed) -> ServiceError:
    """422 from a schema's :class:`~schemas.errors.ValidationFailed`: every field in the details,
    the first one in the message."""
    details: list[Detail] = [e.as_dict() for e in exc.errors]
    first = details[0] if details else {"field": "body", "reason": "invalid"}
    return ServiceError(422, "validation_failed", f"{first['field']}: {first['reason']}", details)
