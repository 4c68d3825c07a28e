"""The API's bearer-key dependency (rules in :mod:`liveledger.auth`: admin token or an issued key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.context import ctx_of
from liveledger.auth import API_KEYS, authenticate_key
from liveledger.auth import authenticate as authenticate_header
from liveledger.setup_state import Principal

__all__ = ["AuthPrincipal", "authenticate", "principal_from_query_or_header"]


async def authenticate(request: Request) -> Principal:
    """``Authorization: Bearer <key>`` → principal, else 401 (with ``WWW-Authenticate: Bearer``)."""
    return await authenticate_header(ctx_of(request).setup, request.headers.get("authorization"), API_KEYS)


async def principal_from_query_or_header(request: Request, key: str | None) -> Principal:
    """Bearer header, or ``?key=`` (EventSource cannot send headers; docs/api.md warns about logs).
    An unknown query key is 401 without a ``WWW-Authenticate`` challenge (it was not a header)."""
    if request.headers.get("authorization") or not key:
        return await authenticate(request)
    return await authenticate_key(ctx_of(request).setup, key, API_KEYS, challenge=False)


AuthPrincipal = Annotated[Principal, Depends(authenticate)]
