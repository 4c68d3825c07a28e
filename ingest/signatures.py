"""Webhook signature checks (pure): LiveLedger's Stripe-style header and Shopify's HMAC."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence


class SignatureError(Exception):
    """The request is not proven to come from the brand: answer 401 with this reason."""


def sign_liveledger(body: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_liveledger(header: str | None, body: bytes, secrets: Sequence[str], now: float, tolerance_s: int) -> None:
    """``X-LiveLedger-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``.

    Several ``v1`` entries are allowed, and several valid ``secrets`` (the current one and, for
    24 h after a rotation, the previous one): one pair must match.
    """
    if isinstance(secrets, str):
        raise TypeError("secrets must be a list of secrets, not one string")
    if not header:
        raise SignatureError("missing X-LiveLedger-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("garbled signature header")
        if name == "t":
            if not value.isdigit() or len(value) > 12:
                raise SignatureError("signature timestamp is not unix seconds")
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("signature header needs t= and v1=")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"signature timestamp is more than {tolerance_s} s from the server clock")
    if len(candidates) > 8:
        raise SignatureError("at most 8 v1= signatures")
    signed = f"{timestamp}.".encode() + body
    expected = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in secrets]
    if not any(hmac.compare_digest(e, c.lower()) for e in expected for c in candidates):
        raise SignatureError("signature does not match the body")


def sign_shopify(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_shopify(header: str | None, body: bytes, secrets: Sequence[str]) -> None:
    """``X-Shopify-Hmac-Sha256`` = base64(HMAC-SHA256(secret, raw body)) for one of ``secrets``."""
    if isinstance(secrets, str):
        raise TypeError("secrets must be a list of secrets, not one string")
    if not header:
        raise SignatureError("missing X-Shopify-Hmac-Sha256 header")
    given = header.strip().encode()
    if not any(hmac.compare_digest(sign_shopify(body, secret).encode(), given) for secret in secrets):
        raise SignatureError("Shopify HMAC does not match the body")
