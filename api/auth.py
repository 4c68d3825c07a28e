"""The API's bearer-key dependency (rules in :mod:`liveledger.auth`: admin token or an issued key),
with the per-key rate limit (:mod:`api.ratelimit`).

A request with a body under ``/v1/`` is authenticated by :class:`api.guards.KeyBeforeBody` before a
byte of its body is read; the principal it found is kept in the ASGI scope
(:data:`PRINCIPAL_SCOPE_KEY`) and reused here, so such a request is looked up and counted once.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.context import ctx_of
from api.ratelimit import KeyRateLimiter, budget_of
from liveledger.auth import API_KEYS, authenticate_key, bearer_token, require_role
from liveledger.errors import forbidden, not_found
from liveledger.setup_state import Principal

__all__ = ["PRINCIPAL_SCOPE_KEY", "AuthPrincipal", "authenticate", "principal_from_query_or_header",
           "require_creator_view"]

PRINCIPAL_SCOPE_KEY = "liveledger.principal"


async def _principal_of(request: Request, key: str, *, challenge: bool | None = None) -> Principal:
    """The principal of ``key`` (401 when unknown), counted against its rate limit (429)."""
    principal = await authenticate_key(ctx_of(request).setup, key, API_KEYS, challenge=challenge)
    limiter: KeyRateLimiter = request.app.state.rate_limiter
    limiter.check(principal, key, budget_of(request.method))
    request.scope[PRINCIPAL_SCOPE_KEY] = principal
    return principal


async def authenticate(request: Request) -> Principal:
    """``Authorization: Bearer <key>`` → principal, else 401 (with ``WWW-Authenticate: Bearer``)."""
    known: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if known is not None:
        return known
    key = bearer_token(request.headers.get("authorization"))
    if key is None:
        raise API_KEYS.missing_key()
    return await _principal_of(request, key)


async def principal_from_query_or_header(request: Request, key: str | None) -> Principal:
    """Bearer header, or ``?key=`` (EventSource cannot send headers; docs/api.md warns about logs).
    An unknown query key is 401 without a ``WWW-Authenticate`` challenge (it was not a header)."""
    if request.headers.get("authorization") or not key:
        return await authenticate(request)
    return await _principal_of(request, key, challenge=False)


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
