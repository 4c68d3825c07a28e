"""Hostile input against a real ingest process: nothing unauthenticated makes it do real work,
nothing makes it answer 5xx or anything but the contract's JSON error, and idle, half-sent and
slow connections are closed (issue 11, "Hostile input")."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.signatures import sign_liveledger
from liveledger.settings import DEV_ADMIN_TOKEN
from tests.harness import AppStack, SetupClient

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

IDLE_S = 2.0
BODY_S = 2.0


class Target:
    def __init__(self, stack: AppStack, brand: dict[str, Any]) -> None:
        self.stack = stack
        self.brand = brand
        self.http = httpx.Client(base_url=stack.ingest_url, timeout=10)

    def raw(self, data: bytes, wait_s: float, until_answer: bool = False) -> tuple[bytes, float]:
        """Send ``data`` on a fresh connection; what the server sends until it closes (or
        ``wait_s`` passes, or — ``until_answer`` — its first bytes arrive), and how long it took."""
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.stack.ingest_port), timeout=wait_s) as sock:
            if data:
                sock.sendall(data)
            out = b""
            try:
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    out += chunk
                    if until_answer and b"\r\n\r\n" in out:
                        break
            except TimeoutError:
                pass
        return out, time.monotonic() - start


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    stack = AppStack(log_dir=Path(tmp_path_factory.mktemp("hostile")),
                     extra_env={"LIVELEDGER_INGEST_IDLE_TIMEOUT_S": str(IDLE_S),
                                "LIVELEDGER_INGEST_BODY_TIMEOUT_S": str(BODY_S)})
    stack.create_topics()
    try:
        stack.start_api()
        stack.start_ingest()
        setup = SetupClient(stack.api_url, DEV_ADMIN_TOKEN)
        brand = setup.brand("b1", "USD")
        setup.creator("c1")
        setup.stream("s1", "b1", "c1")
        yield Target(stack, brand)
    finally:
        stack.stop_all()


def assert_error_shape(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body = resp.json()
    err = body["error"]
    assert isinstance(err["code"], str) and isinstance(err["message"], str) and isinstance(err["details"], list)
    assert "Traceback" not in resp.text
    return dict(err)


def test_deeply_nested_json_is_400_not_500(target: Target) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    resp = target.http.post("/v1/events", content=b'{"events": ' + deep + b"}", headers={
        "Authorization": f"Bearer {target.brand['api_key']}", "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert assert_error_shape(resp)["code"] == "malformed_json"
    # NaN bodies still take the lenient path (and deep ones there too)
    nan_deep = b'{"events": [' + b"[" * 5000 + b"NaN" + b"]" * 5000 + b"]}"
    resp = target.http.post("/v1/events", content=nan_deep, headers={
        "Authorization": f"Bearer {target.brand['api_key']}", "Content-Type": "application/json"})
    assert 400 <= resp.status_code < 500
    assert_error_shape(resp)


def test_native_webhook_checks_the_signature_before_parsing(target: Target) -> None:
    garbage = b'{"brand_id": "b1", "event_id": ' + b"[" * 100_000
    resp = target.http.post("/v1/webhooks/orders", content=garbage, headers={
        "Content-Type": "application/json",
        "X-LiveLedger-Signature": sign_liveledger(garbage, "wrong", int(time.time()))})
    assert resp.status_code == 401 and assert_error_shape(resp)["code"] == "unauthorized"
    # signed by the brand, the same garbage is a 400 (the parse comes after the proof)
    resp = target.http.post("/v1/webhooks/orders", content=garbage, headers={
        "Content-Type": "application/json",
        "X-LiveLedger-Signature": sign_liveledger(garbage, target.brand["webhook_secret"], int(time.time()))})
    assert resp.status_code == 400


def test_a_body_signed_for_another_brand_than_it_names_is_refused(target: Target) -> None:
    body = orjson.dumps({"note": {"brand_id": "b1"}, "brand_id": "b2", "event_id": "e1", "type": "order.created"})
    resp = target.http.post("/v1/webhooks/orders", content=body, headers={
        "Content-Type": "application/json",
        "X-LiveLedger-Signature": sign_liveledger(body, target.brand["webhook_secret"], int(time.time()))})
    assert resp.status_code in (403, 422), resp.text
    assert_error_shape(resp)


def test_unknown_shopify_brand_is_refused_without_waiting_for_the_body(target: Target) -> None:
    head = (b"POST /v1/webhooks/shopify/no-such-brand HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Shopify-Hmac-Sha256: AAAA\r\nContent-Length: 1000000\r\n\r\n")
    out, took = target.raw(head, wait_s=BODY_S + 3, until_answer=True)
    assert out.startswith(b"HTTP/1.1 401"), out[:200]
    assert took < BODY_S  # answered before the body timeout could have fired: it never read the body


def test_an_idle_connection_is_closed(target: Target) -> None:
    out, took = target.raw(b"", wait_s=IDLE_S + 5)
    assert out == b"" and took < IDLE_S + 4


def test_half_sent_headers_are_closed(target: Target) -> None:
    out, took = target.raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", wait_s=IDLE_S + 5)
    assert took < IDLE_S + 4, took
    assert out == b"" or out.startswith(b"HTTP/1.1 4"), out[:200]


def test_a_slow_body_is_408(target: Target) -> None:
    head = (b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + target.brand["api_key"].encode() + b"\r\nContent-Length: 100\r\n\r\n{\"ev")
    out, took = target.raw(head, wait_s=BODY_S + 5)
    assert out.startswith(b"HTTP/1.1 408"), out[:300]
    assert b'"request_timeout"' in out and b"Connection: close" in out.split(b"\r\n\r\n")[0]
    assert took < BODY_S + 3  # answered after BODY_S and closed at once


def test_many_unknown_keys_do_not_slow_a_real_one(target: Target) -> None:
    """200 concurrent requests with random keys (each a setup miss) and one real key in the middle:
    the misses share catch-ups (single flight), so the real request is answered like the others."""

    async def run() -> tuple[list[int], int]:
        async with httpx.AsyncClient(base_url=target.stack.ingest_url, timeout=30) as client:
            body = json.dumps({"events": [{"event_id": f"v-{uuid.uuid4().hex[:8]}", "type": "view",
                                           "stream_id": "s1", "viewer_id": "v1", "action": "join",
                                           "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]})

            async def post(key: str) -> int:
                resp = await client.post("/v1/events", content=body, headers={
                    "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
                return resp.status_code

            randoms = [post(f"llb_{uuid.uuid4().hex}") for _ in range(200)]
            results = await asyncio.gather(*randoms[:100], post(target.brand["api_key"]), *randoms[100:])
            return [r for i, r in enumerate(results) if i != 100], results[100]

    before = target.http.get("/healthz").json()["setup_catch_ups"]
    misses, real = asyncio.run(run())
    after = target.http.get("/healthz").json()["setup_catch_ups"]
    assert real == 202 and set(misses) == {401}
    assert after - before <= 10, after - before  # 201 lookups, a handful of end-offset requests


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                     max_leaves=20)
_event_like = st.fixed_dictionaries({}, optional={
    "event_id": st.text(max_size=140) | st.integers(), "type": st.sampled_from(["view", "click", "add_to_cart", "x"]),
    "stream_id": st.sampled_from(["s1", "s2", "", "x" * 200]), "viewer_id": _json, "action": _json,
    "product_id": _json, "campaign_id": _json, "occurred_at": st.text(max_size=40) | st.integers(), "extra": _json})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(path=st.sampled_from(["/v1/events", "/v1/webhooks/orders", "/v1/webhooks/shopify/b1",
                             "/v1/webhooks/shopify/zz", "/l/abc", "/nope"]),
       body=st.one_of(_json.map(lambda v: json.dumps(v).encode()),  # NaN, huge integers included
                      st.lists(_event_like, max_size=5).map(lambda evs: json.dumps({"events": evs}).encode()),
                      st.binary(max_size=200)),
       content_type=st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1"]),
       keyed=st.booleans(), topic=st.sampled_from(["orders/create", "refunds/create", "orders/cancelled", "x"]))
def test_fuzz_never_5xx_and_always_the_error_shape(target: Target, path: str, body: bytes, content_type: str,
                                                    keyed: bool, topic: str) -> None:
    headers = {"Content-Type": content_type, "X-Shopify-Topic": topic, "X-Shopify-Webhook-Id": "wh-fuzz",
               "X-LiveLedger-Signature": sign_liveledger(body, target.brand["webhook_secret"], int(time.time()))}
    if keyed:
        headers["Authorization"] = f"Bearer {target.brand['api_key']}"
    method = "GET" if path.startswith("/l/") or path == "/nope" else "POST"
    resp = target.http.request(method, path, content=body if method == "POST" else None, headers=headers)
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    if resp.status_code >= 400:
        assert_error_shape(resp)
