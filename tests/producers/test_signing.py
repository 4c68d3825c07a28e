"""Webhook signatures against fixed vectors (cross-checked with `openssl dgst -sha256 -hmac`)."""

from __future__ import annotations

from producers.signing import native_signature, shopify_hmac

BODY = b'{"id":820982911946154508,"total_price":"199.00"}'


def test_native_signature_known_vector() -> None:
    assert native_signature("whsec_test", 1_760_000_000, BODY) == (
        "t=1760000000,v1=1e1c1b85ec980b8fa67213d50ae9ce01dadefa8c57939507ec58e2285fe303f2"
    )


def test_shopify_hmac_known_vector() -> None:
    assert shopify_hmac("shpss_secret", BODY) == "uJTvfx6jXmQHI8nYo+y2vNTdLvWr3UwdwV55J4ID4WI="


def test_signature_covers_every_byte() -> None:
    assert native_signature("s", 1, BODY) != native_signature("s", 1, BODY + b" ")
    assert native_signature("s", 1, BODY) != native_signature("s", 2, BODY)
    assert shopify_hmac("s", BODY) != shopify_hmac("s", BODY.replace(b"199.00", b"199.0"))
