import hashlib
import hmac

import pytest

from ingest.signatures import SignatureError, sign_liveledger, sign_shopify, verify_liveledger, verify_shopify

BODY = b'{"event_id":"e1","type":"order.created"}'
SECRET = "whsec_test"
NOW = 1_760_000_000


def test_liveledger_signature_known_vector() -> None:
    mac = hmac.new(b"whsec_test", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign_liveledger(BODY, SECRET, NOW) == f"t={NOW},v1={mac}"
    verify_liveledger(f"t={NOW},v1={mac}", BODY, [SECRET], NOW, 300)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        ("garbage", "garbled"),
        (f"t={NOW}", "needs t= and v1="),
        ("t=abc,v1=00", "unix seconds"),
        (f"t={NOW},v1={'0' * 64}", "does not match"),
    ],
)
def test_liveledger_signature_rejects(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_liveledger(header, BODY, [SECRET], NOW, 300)


def test_liveledger_signature_tolerance_boundaries() -> None:
    header = sign_liveledger(BODY, SECRET, NOW)
    verify_liveledger(header, BODY, [SECRET], NOW + 300, 300)
    verify_liveledger(header, BODY, [SECRET], NOW - 300, 300)
    with pytest.raises(SignatureError, match="300 s"):
        verify_liveledger(header, BODY, [SECRET], NOW + 301, 300)


def test_reserialised_body_fails() -> None:
    header = sign_liveledger(BODY, SECRET, NOW)
    with pytest.raises(SignatureError):
        verify_liveledger(header, b'{"event_id": "e1", "type": "order.created"}', [SECRET], NOW, 300)


def test_rotation_any_v1_matches() -> None:
    good = sign_liveledger(BODY, SECRET, NOW).split(",")[1]
    verify_liveledger(f"t={NOW},v1={'a' * 64},{good}", BODY, [SECRET], NOW, 300)


def test_shopify_hmac() -> None:
    header = sign_shopify(BODY, SECRET)
    verify_shopify(header, BODY, [SECRET])
    with pytest.raises(SignatureError):
        verify_shopify(header, BODY + b" ", [SECRET])
    with pytest.raises(SignatureError):
        verify_shopify(None, BODY, [SECRET])
    with pytest.raises(SignatureError):
        verify_shopify(sign_shopify(BODY, "other"), BODY, [SECRET])


def test_rotation_either_secret_verifies_and_no_other() -> None:
    old, new = SECRET, "whsec_new_secret_after_rotation"
    for secret in (old, new):
        mac = sign_liveledger(BODY, secret, NOW)
        verify_liveledger(mac, BODY, [new, old], NOW, 300)
        verify_shopify(sign_shopify(BODY, secret), BODY, [new, old])
    with pytest.raises(SignatureError):
        verify_liveledger(sign_liveledger(BODY, old, NOW), BODY, [new], NOW, 300)
    with pytest.raises(SignatureError):
        verify_shopify(sign_shopify(BODY, old), BODY, [new])
    with pytest.raises(TypeError):
        verify_shopify(sign_shopify(BODY, old), BODY, old)
