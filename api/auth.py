"""Bearer-key authentication and tenancy checks for the API."""

from __future__ import annotations

import hmac

from fastapi import Request

from api.errors import ApiError
from liveledger.setup_state import Principal, SetupReplica


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing bearer key", [{"field": "Authorization",
                                                                     "reason": "expected 'Bearer <key>'"}],
                       headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


async def authenticate(request: Request) -> Principal:
    token = bearer(request)
    ctx = request.app.state.ctx
    if hmac.compare_digest(token.encode(), ctx.settings.admin_token.encode()):
        return Principal(role="admin")
    replica: SetupReplica = ctx.setup
    principal = replica.state.principal(token)
    if principal is None:
        await replica.catch_up()
        principal = replica.state.principal(token)
    if principal is None:
        raise ApiError(401, "unauthorized", "unknown API key", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise ApiError(403, "forbidden", f"this endpoint needs one of: {', '.join(roles)}")


def require_brand_access(principal: Principal, brand_id: str) -> None:
    """Admin may act for any brand; a brand key only for itself."""
    if principal.role == "admin":
        return
    if principal.role == "brand" and principal.brand_id == brand_id:
        return
    raise ApiError(403, "forbidden", "this key may not act for that brand")
