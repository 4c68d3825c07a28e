"""Hostile input against a real API process (issue 11, "no input that hurts the service"): body
limits before any parsing or key lookup, keys before bodies, bounded JSON depth, the JSON error
shape for everything (unexpected errors and malformed HTTP included), range-checked dates,
connection timeouts (idle, half-sent heads, slow bodies) and per-key rate limits.

Raw sockets are used wherever "the server answers before it has the body" is the point: an HTTP
client would send the body first.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.api.conftest import World, make_world

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse]

MIB = 1024 * 1024


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json"), resp.headers
    body: dict[str, Any] = resp.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    assert isinstance(body["error"]["details"], list)
    if code:
        assert body["error"]["code"] == code, body
    return body


# --- raw HTTP -------------------------------------------------------------------------------------

class Raw:
    """One raw TCP connection to the API."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)
        self.buf += chunk
        return chunk

    def response(self) -> tuple[int, dict[str, str], bytes]:
        """The next response (status, lower-case headers, body); fails on timeout or close."""
        while b"\r\n\r\n" not in self.buf:
            if not self._recv():
                raise AssertionError(f"connection closed before a response: {self.buf!r}")
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        self.buf = rest
        while len(self.buf) < length:
            if not self._recv():
                break
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def closed_within(self, seconds: float) -> float:
        """Seconds until the server closed the connection (no data may arrive); fails after ``seconds``."""
        start = time.monotonic()
        self.sock.settimeout(seconds)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return time.monotonic() - start
                raise AssertionError(f"unexpected data: {data[:200]!r}")
        except ConnectionResetError:
            return time.monotonic() - start
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open for {seconds} s") from None

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def raw(port: int, timeout: float = 10.0) -> Iterator[Raw]:
    conn = Raw(port, timeout)
    try:
        yield conn
    finally:
        conn.close()


def head(method: str, path: str, key: str | None, *extra: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", *extra]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def assert_json_error(status: int, headers: dict[str, str], body: bytes, want: int, code: str) -> None:
    assert status == want, (status, body)
    assert headers["content-type"].startswith("application/json"), headers
    data = orjson.loads(body)
    assert data["error"]["code"] == code and isinstance(data["error"]["message"], str)
    assert isinstance(data["error"]["details"], list)


# --- 1. body limits -------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["admin", "bad"])
def test_content_length_over_the_limit_is_413_before_the_body_or_the_key(world: World, key: str) -> None:
    """50 MiB announced, nothing sent: the answer comes at once (the body is never read), whatever the key."""
    token = world.keys["admin"] if key == "admin" else "llb_not_a_key"
    with raw(world.stack.api_port, timeout=5) as conn:
        conn.send(head("POST", "/v1/admin/brands", token, f"Content-Length: {50 * MIB}"))
        status, headers, body = conn.response()
        assert_json_error(status, headers, body, 413, "payload_too_large")
        assert headers.get("connection") == "close"
        conn.closed_within(5)


def test_just_over_1mib_is_413_and_the_csv_upload_takes_20mib(world: World) -> None:
    admin = world.keys["admin"]
    with raw(world.stack.api_port, timeout=5) as conn:
        conn.send(head("POST", "/v1/campaigns", admin, f"Content-Length: {MIB + 1}"))
        assert_json_error(*conn.response(), 413, "payload_too_large")
    with raw(world.stack.api_port, timeout=5) as conn:
        conn.send(head("POST", "/v1/finance/reconciliation/orders?brand_id=b1", admin,
                       f"Content-Length: {20 * MIB + 1}"))
        assert_json_error(*conn.response(), 413, "payload_too_large")
    # a 3 MiB CSV is read and compared (over the JSON limit, under the CSV one)
    rows = "".join(f"o{i:07d},2026-11-01T10:00:00Z,USD,{i}\n" for i in range(80_000))
    csv = ("order_id,occurred_at,currency,net_minor\n" + rows).encode()
    assert len(csv) > 2 * MIB
    resp = world.post("/v1/finance/reconciliation/orders?brand_id=b1", "finance", content=csv,
                      headers={"Content-Type": "text/csv"})
    assert resp.status_code == 200, resp.text[:300]
    assert resp.json()["csv_orders"] == 80_000


def test_chunked_body_is_counted_as_it_streams(world: World) -> None:
    """No Content-Length: the guard counts the bytes and answers 413 once they pass 1 MiB."""
    with raw(world.stack.api_port, timeout=10) as conn:
        conn.send(head("POST", "/v1/admin/finance-keys", world.keys["admin"], "Transfer-Encoding: chunked"))
        chunk = b" " * 65536
        for _ in range(17):  # 1.06 MiB of whitespace, no final chunk
            conn.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        assert_json_error(*conn.response(), 413, "payload_too_large")
    # a small chunked body still works
    def body() -> Iterator[bytes]:
        yield b'{"name": '
        yield b'"chunked finance key"}'

    resp = world.post("/v1/admin/finance-keys", content=body(), headers={"Content-Type": "application/json"})
    assert resp.status_code == 201, resp.text
    assert resp.request.headers.get("transfer-encoding") == "chunked"


# --- 2. the key before the body -------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/admin/brands", "/v1/campaigns", "/v1/finance/payouts",
                                  "/v1/finance/reconciliation/orders?brand_id=b1", "/v1/no/such/route"])
@pytest.mark.parametrize("key", [None, "llb_random_unknown_key"])
def test_a_body_route_refuses_a_bad_key_without_reading_the_body(world: World, path: str, key: str | None) -> None:
    """Head only (a chunked body that never comes): a missing or unknown key is 401 at once."""
    with raw(world.stack.api_port, timeout=5) as conn:
        conn.send(head("POST", path, key, "Transfer-Encoding: chunked"))
        status, headers, body = conn.response()
        assert_json_error(status, headers, body, 401, "unauthorized")
        assert headers.get("connection") == "close"
        if key is None:
            assert headers.get("www-authenticate") == "Bearer"


def test_a_known_key_still_reaches_the_route(world: World) -> None:
    resp = world.post("/v1/campaigns", "b1", json={"campaign_id": "hostile-c", "brand_id": "b2", "rate_bps": 100,
                                                   "flat_minor": 0})
    assert_error(resp, 403, "forbidden")  # authenticated once, in the guard; tenancy is the route's
    assert_error(world.post("/v1/campaigns", "b1", json={"campaign_id": 7}), 422, "validation_failed")


# --- 3. bounded JSON depth ------------------------------------------------------------------------

@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000, b"[" * 5000 + b"]" * 5000,
                                  b'{"brand_id": ' + b"[" * 50_000])
def test_deep_json_is_400_for_a_key_and_401_without(world: World, body: bytes) -> None:
    started = time.monotonic()
    resp = world.post("/v1/admin/brands", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code in (400, 422), resp.text[:300]
    assert_error(resp, resp.status_code)
    assert time.monotonic() - started < 5
    assert_error(world.post("/v1/admin/brands", "none", content=body, headers={"Content-Type": "application/json"}),
                 401, "unauthorized")
    assert_error(world.post("/v1/admin/brands", content=body,
                            headers={"Content-Type": "application/json", "Authorization": "Bearer nope"}),
                 401, "unauthorized")


# --- 4. every error is the JSON shape -------------------------------------------------------------

@pytest.mark.parametrize("path", ["/dashboard/static/%00x", "/dashboard/static/vendor/%00uPlot.min.css",
                                  "/dashboard/static/..%2F..%2Fapp.py", "/dashboard/static/.hidden.js",
                                  "/dashboard/static/app.js%00.css"])
def test_bad_static_names_are_404_json(world: World, path: str) -> None:
    assert_error(httpx.get(world.stack.api_url + path, timeout=10), 404, "not_found")
    assert httpx.get(world.stack.api_url + "/dashboard/static/app.js", timeout=10).status_code == 200


@pytest.mark.parametrize("request_bytes", [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
                                           b"GET /healthz HTTP/1.1\r\nContent-Length: -5\r\n\r\n"])
def test_malformed_http_is_a_json_400(world: World, request_bytes: bytes) -> None:
    with raw(world.stack.api_port, timeout=5) as conn:
        conn.send(request_bytes)
        assert_json_error(*conn.response(), 400, "bad_request")


def test_unknown_route_and_method_are_json(world: World) -> None:
    assert_error(world.get("/v1/nope"), 404, "not_found")
    assert_error(httpx.put(world.stack.api_url + "/healthz", timeout=10), 405, "method_not_allowed")


async def test_an_unexpected_error_is_a_json_500_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """The catch-all handler, in-process (no real route fails on purpose): 500 ``internal_error``,
    the traceback in the log, none of it in the answer."""
    from api.app import create_app
    from liveledger.settings import Settings

    app = create_app(Settings())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals /etc/passwd")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            resp = await client.get("/boom")
    assert_error(resp, 500, "internal_error")
    assert "secret" not in resp.text and "Traceback" not in resp.text
    logged = [r for r in caplog.records if r.name == "api.errors"]
    assert logged and logged[0].exc_info is not None and "GET /boom" in logged[0].getMessage()


# --- 5. dates are range-checked -------------------------------------------------------------------

DATE_CASES = [
    ("/v1/creators/c1/earnings?from=0001-01-01", "from"),
    ("/v1/creators/c1/earnings?to=9999-12-31", "to"),
    ("/v1/creators/c1/earnings?from=0001-01-01T00:00:00%2B01:00", "from"),
    ("/v1/creators/c1/earnings?as_of=9999-12-31T23:00:00-05:00", "as_of"),
    ("/v1/creators/c1/earnings?as_of=1999-12-31T23:59:59Z", "as_of"),
    ("/v1/finance/reconciliation?from=0001-01-01", "from"),
    ("/v1/finance/reconciliation?to=9999-12-31T00:00:00Z", "to"),
    ("/v1/finance/reconciliation?from=1970-01-01", "from"),
    ("/v1/streams/s1/live/series?since=1", "since"),
    ("/v1/streams/s1/live/series?since=" + "9" * 30, "since"),
    ("/v1/brands/b1/creators/series?since=253402300799000", "since"),
]


@pytest.mark.parametrize(("path", "field"), DATE_CASES)
def test_out_of_range_query_dates_are_422_naming_the_field(world: World, path: str, field: str) -> None:
    body = assert_error(world.get(path), 422, "validation_failed")
    assert field in [d["field"] for d in body["error"]["details"]], body


@pytest.mark.parametrize("period_end", ["0001-01-01", "1970-01-01", "1999-12-31"])
def test_out_of_range_payout_period_is_422(world: World, period_end: str) -> None:
    body = assert_error(world.post("/v1/finance/payouts", "finance", json={"period_end": period_end}), 422)
    assert body["error"]["details"][0]["field"] == "period_end"


def test_out_of_range_csv_dates_and_window(world: World) -> None:
    csv = b"order_id,occurred_at,currency,net_minor\no1,0001-01-01T00:00:00Z,USD,100\n"
    resp = world.post("/v1/finance/reconciliation/orders?brand_id=b1", "finance", content=csv,
                      headers={"Content-Type": "text/csv"})
    assert_error(resp, 422, "validation_failed")
    resp = world.post("/v1/finance/reconciliation/orders?brand_id=b1&to=9999-01-01", "finance", content=csv,
                      headers={"Content-Type": "text/csv"})
    assert assert_error(resp, 422)["error"]["details"][0]["field"] == "to"


def test_in_range_dates_still_work(world: World) -> None:
    assert world.get("/v1/creators/c1/earnings?from=2000-01-01&to=2100-01-01&as_of=2026-01-01").status_code == 200
    assert world.get("/v1/finance/reconciliation?from=2000-01-01T00:00:00Z&to=2099-12-31").status_code == 200
    since = int((time.time() - 60) * 1000)
    assert world.get(f"/v1/streams/s1/live/series?since={since}").status_code == 200


# --- 6 and 7: timeouts and rate limits (an API process with tight settings) -----------------------

TIGHT_ENV = {
    "LIVELEDGER_API_HEADER_TIMEOUT_S": "1.5",
    "LIVELEDGER_API_BODY_TIMEOUT_S": "1.5",
    "LIVELEDGER_API_KEEP_ALIVE_S": "1",
    "LIVELEDGER_API_RATE_LIMIT_READS": "5/minute",
    "LIVELEDGER_API_RATE_LIMIT_WRITES": "3/minute",
}
BOUND_S = 8.0  # generous: the point is that the server closes at all


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp:  # the API subprocess inherits the environment at start
        for name, value in TIGHT_ENV.items():
            mp.setenv(name, value)
        worlds = make_world(Path(tmp_path_factory.mktemp("tight")))
        world = next(worlds)
    yield world
    with contextlib.suppress(StopIteration):
        next(worlds)


def test_a_connection_that_sends_nothing_is_closed(tight: World) -> None:
    with raw(tight.stack.api_port) as conn:
        assert conn.closed_within(BOUND_S) >= 1.0


@pytest.mark.parametrize("partial", [b"GET /heal", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "])
def test_a_half_sent_head_is_closed(tight: World, partial: bytes) -> None:
    with raw(tight.stack.api_port) as conn:
        conn.send(partial)
        conn.closed_within(BOUND_S)


def test_a_head_trickled_byte_by_byte_is_closed(tight: World) -> None:
    """Bytes that keep coming reset nothing: the whole head must arrive within the deadline."""
    with raw(tight.stack.api_port) as conn:
        with contextlib.suppress(OSError):  # the server may close while we still trickle
            for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 40:
                conn.send(bytes([byte]))
                time.sleep(0.05)
        conn.closed_within(BOUND_S)


def test_idle_keep_alive_is_closed_and_busy_keep_alive_is_not(tight: World) -> None:
    with raw(tight.stack.api_port) as conn:
        for _ in range(3):  # requests 0.5 s apart share the connection
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert conn.response()[0] == 200
            time.sleep(0.5)
        conn.closed_within(BOUND_S)


def test_an_oversized_head_is_431(tight: World) -> None:
    with raw(tight.stack.api_port) as conn:
        # a little over 64 KiB and then nothing: all of it is read, so the close sends no reset
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (66 * 1024))
        assert_json_error(*conn.response(), 431, "request_header_fields_too_large")


def test_a_slow_body_is_408(tight: World) -> None:
    with raw(tight.stack.api_port) as conn:
        conn.send(head("POST", "/v1/admin/finance-keys", tight.keys["admin"], "Content-Length: 100") + b'{"na')
        status, headers, body = conn.response()
        assert_json_error(status, headers, body, 408, "request_timeout")
        conn.closed_within(BOUND_S)


def _rate_limited(resp: httpx.Response) -> int:
    body = assert_error(resp, 429, "rate_limited")
    assert body["error"]["details"][0]["field"] == "Authorization"
    retry_after = int(resp.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    return retry_after


def test_reads_are_rate_limited_per_key(tight: World) -> None:
    for _ in range(5):
        assert tight.get("/v1/brands/b1/streams/live", "b1").status_code == 200
    _rate_limited(tight.get("/v1/brands/b1/streams/live", "b1"))
    _rate_limited(tight.get("/v1/streams/s1/live", "b1"))  # one budget for all of the key's reads
    _rate_limited(tight.get(f"/v1/streams/s1/live/events?key={tight.keys['b1']}", "none"))
    assert tight.get("/v1/brands/b2/streams/live", "b2").status_code == 200  # another key: its own budget
    for _ in range(12):  # the admin token is exempt
        assert tight.get("/v1/brands/b1/streams/live", "admin").status_code == 200
    unknown = httpx.get(tight.stack.api_url + "/v1/brands/b1/streams/live", timeout=10,
                        headers={"Authorization": "Bearer llb_unknown"})
    assert_error(unknown, 401, "unauthorized")  # an unknown key is refused, never counted


def test_writes_are_rate_limited_per_key_before_the_body(tight: World) -> None:
    for _ in range(3):  # invalid bodies count: the budget is spent before the body is read
        assert_error(tight.post("/v1/streams", "b2", json={"stream_id": 1}), 422)
    _rate_limited(tight.post("/v1/streams", "b2", json={"stream_id": 1}))
    with raw(tight.stack.api_port, timeout=5) as conn:  # and the 429 needs no body either
        conn.send(head("POST", "/v1/campaigns", tight.keys["b2"], "Transfer-Encoding: chunked"))
        status, headers, body = conn.response()
        assert_json_error(status, headers, body, 429, "rate_limited")
        assert int(headers["retry-after"]) >= 1
    assert tight.get("/v1/brands/b2/streams/live", "b2").status_code == 200  # reads: a separate budget
    stream = {"stream_id": "sx", "brand_id": "b1", "creator_id": "c1", "title": "t"}
    assert_error(tight.post("/v1/streams", "c1", json=stream), 403)  # another key is not limited
