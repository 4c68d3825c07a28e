"""Who is calling, and what they may do: the one bearer-key and tenancy module of ingest and the API.

A request carries ``Authorization: Bearer <key>``. The key is the admin token from the settings
(compared in constant time; accepted only where the service's :class:`KeyRules` say so: the API,
not ingest), or an issued key, found by its digest in the setup replica, with a catch-up on a miss
so that a key issued before the request works at once (read-your-writes).

Each service keeps its own 401 wording (:data:`INGEST_KEYS`, :data:`API_KEYS`): clients and docs
already rely on it. Roles and brand access (:func:`require_role`, :func:`require_brand_access`) are
one rule set for everyone.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from liveledger.errors import ServiceError, forbidden, unauthorized
from liveledger.settings import Settings
from liveledger.setup_state import Principal, SetupReplica

__all__ = [
    "ADMIN",
    "API_KEYS",
    "INGEST_KEYS",
    "KeyRules",
    "authenticate",
    "authenticate_key",
    "bearer_token",
    "is_admin_token",
    "require_brand_access",
    "require_role",
]

ADMIN = Principal(role="admin")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class KeyRules:
    """What one service accepts as a key and how it answers 401."""

    accept_admin: bool  # the admin token is a principal here
    missing_message: str  # no usable ``Authorization: Bearer`` header
    missing_reason: str
    challenge: bool  # 401s to header credentials carry ``WWW-Authenticate: Bearer``
    unknown_names_field: bool  # the unknown-key 401 has an ``Authorization`` detail

    def missing_key(self) -> ServiceError:
        return unauthorized(self.missing_message, "Authorization", self.missing_reason,
                            headers=_CHALLENGE if self.challenge else None)

    def unknown_key(self, challenge: bool | None = None) -> ServiceError:
        challenge = self.challenge if challenge is None else challenge
        return unauthorized("unknown API key", "Authorization" if self.unknown_names_field else None,
                            headers=_CHALLENGE if challenge else None)


_INGEST_MISSING = "missing bearer key: send 'Authorization: Bearer <brand key>'"
INGEST_KEYS = KeyRules(accept_admin=False, missing_message=_INGEST_MISSING, missing_reason=_INGEST_MISSING,
                       challenge=False, unknown_names_field=True)
API_KEYS = KeyRules(accept_admin=True, missing_message="missing bearer key",
                    missing_reason="expected 'Bearer <key>'", challenge=True, unknown_names_field=False)


def bearer_token(authorization: str | None) -> str | None:
    """The key of an ``Authorization: Bearer <key>`` header (scheme case-insensitive), else ``None``."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def is_admin_token(key: str, settings: Settings) -> bool:
    return hmac.compare_digest(key.encode(), settings.admin_token.encode())


async def authenticate_key(replica: SetupReplica, key: str, rules: KeyRules, *,
                           challenge: bool | None = None) -> Principal:
    """The principal of ``key`` (admin where ``rules`` accept it), else 401 ``unknown API key``.
    ``challenge`` overrides the rules' ``WWW-Authenticate`` (a key sent in the query string)."""
    if rules.accept_admin and is_admin_token(key, replica.settings):
        return ADMIN
    principal = await replica.principal(key)
    if principal is None:
        raise rules.unknown_key(challenge)
    return principal


async def authenticate(replica: SetupReplica, authorization: str | None, rules: KeyRules) -> Principal:
    """The principal of an ``Authorization`` header value, else 401."""
    key = bearer_token(authorization)
    if key is None:
        raise rules.missing_key()
    return await authenticate_key(replica, key, rules)


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise forbidden(f"this endpoint needs one of: {', '.join(roles)}")


def require_brand_access(principal: Principal, brand_id: str) -> None:
    """Admin may act for any brand; a brand key only for itself."""
    if principal.role == "admin":
        return
    if principal.role == "brand" and principal.brand_id == brand_id:
        return
    raise forbidden("this key may not act for that brand")
