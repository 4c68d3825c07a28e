"""Webhook signatures exactly as shops compute them (contract "Ingest").

- native: ``X-LiveLedger-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``
- Shopify: ``X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the raw body>``
"""

from __future__ import annotations

import base64
import hashlib
import hmac

NATIVE_HEADER = "X-LiveLedger-Signature"
SHOPIFY_HMAC_HEADER = "X-Shopify-Hmac-Sha256"


def native_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Header value for the native order webhook."""
    signed = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def shopify_hmac(secret: str, body: bytes) -> str:
    """``X-Shopify-Hmac-Sha256`` value: base64 of the raw HMAC-SHA256 digest of the body."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
