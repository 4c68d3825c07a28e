"""The API's bearer-key dependency (rules in :mod:`liveledger.auth`: admin token or an issued key)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.context import ctx_of
from liveledger.auth import API_KEYS, authenticate_key, require_role
from liveledger.auth import authenticate as authenticate_header
from liveledger.errors import forbidden, not_found
from liveledger.setup_state import Principal

__all__ = ["AuthPrincipal", "authenticate", "principal_from_query_or_header", "require_creator_view"]


async def authenticate(request: Request) -> Principal:
    """``Authorization: Bearer <key>`` → principal, else 401 (with ``WWW-Authenticate: Bearer``)."""
    return await authenticate_header(ctx_of(request).setup, request.headers.get("authorization"), API_KEYS)


async def principal_from_query_or_header(request: Request, key: str | None) -> Principal:
    """Bearer header, or ``?key=`` (EventSource cannot send headers; docs/api.md warns about logs).
    An unknown query key is 401 without a ``WWW-Authenticate`` challenge (it was not a header)."""
    if request.headers.get("authorization") or not key:
        return await authenticate(request)
    return await authenticate_key(ctx_of(request).setup, key, API_KEYS, challenge=False)


async def require_creator_view(request: Request, principal: Principal, creator_id: str, what: str) -> None:
    """A creator's own numbers: that creator's key, or admin / finance (an unknown creator is 404)."""
    if principal.role == "creator":
        if principal.creator_id != creator_id:
            raise forbidden(f"a creator key sees only its own {what}")
    else:
        require_role(principal, "admin", "finance")
        if await ctx_of(request).setup.lookup("creators", creator_id) is None:
            raise not_found(f"no creator {creator_id!r}")


AuthPrincipal = Annotated[Principal, Depends(authenticate)]
