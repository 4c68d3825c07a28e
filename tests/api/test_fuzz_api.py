"""Fuzz-style tests (hypothesis) of the API's request parsing against a real API process: random and
deeply nested JSON, invalid UTF-8, huge numbers and wrong types in otherwise valid bodies, random date
query strings and random paths. The API may refuse anything, but never with a 5xx, and every 4xx is
the contract's error shape ``{"error": {"code", "message", "details": [{field, reason}]}}``.

Bounded: ~250 requests in all (a few seconds), no example database written.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import World

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse]

FUZZ = settings(max_examples=90, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def client(world: World) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=world.stack.api_url, timeout=30) as http:
        yield http


def assert_not_hurt(resp: httpx.Response) -> None:
    """Never 5xx; a 4xx is the JSON error shape."""
    where = f"{resp.request.method} {resp.request.url}"
    assert resp.status_code < 500, (where, resp.status_code, resp.text[:500])
    if resp.status_code >= 400 and resp.request.method != "HEAD":
        assert resp.headers.get("content-type", "").startswith("application/json"), (where, resp.headers)
        body: Any = resp.json()
        assert set(body) == {"error"}, (where, body)
        err = body["error"]
        assert isinstance(err["code"], str) and err["code"], (where, body)
        assert isinstance(err["message"], str), (where, body)
        assert isinstance(err["details"], list), (where, body)
        for detail in err["details"]:
            assert isinstance(detail, dict) and {"field", "reason"} <= set(detail), (where, body)


# --- bodies ---------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
HUGE_NUMBERS = st.sampled_from(["1e999", "-1e999", "9" * 5000, "1" + "0" * 400, "-0", "1e-999", "NaN",
                                "Infinity", "0.00000000000000000000001", str(2**64), str(-(2**63) - 1)])

TEMPLATES: dict[str, dict[str, Any]] = {
    "/v1/admin/brands": {"brand_id": "fz-brand", "name": "Fuzz", "currency": "USD"},
    "/v1/admin/creators": {"creator_id": "fz-creator", "name": "Fuzz"},
    "/v1/admin/finance-keys": {"name": "fuzz"},
    "/v1/campaigns": {"campaign_id": "fz-cmp", "brand_id": "b1", "rate_bps": 1000, "flat_minor": 0,
                      "attribution_window_days": 30, "hold_days": 30, "min_payout_minor": 5000},
    "/v1/links": {"creator_id": "c1", "campaign_id": "cmp1", "destination_url": "https://shop.example/p",
                  "product_id": "p1", "stream_id": "s1", "coupon_code": "FUZZ"},
    "/v1/streams": {"stream_id": "fz-s", "brand_id": "b1", "creator_id": "c1", "title": "t"},
    "/v1/finance/payouts": {"period_end": "2026-01-01"},
}
ROUTES = [*TEMPLATES, "/v1/finance/reconciliation/orders?brand_id=b1", "/v1/no/such/route"]


@st.composite
def wrong_typed(draw: st.DrawFn) -> bytes:
    """A valid body with one field replaced (a random JSON value, or a huge number as raw text)."""
    template = dict(TEMPLATES[draw(st.sampled_from(sorted(TEMPLATES)))])
    field = draw(st.sampled_from(sorted(template)))
    if draw(st.booleans()):
        template[field] = draw(JSON_VALUES)
        return json.dumps(template).encode()
    marker = "__HUGE__"
    template[field] = marker
    return json.dumps(template).replace(f'"{marker}"', draw(HUGE_NUMBERS)).encode()




@st.composite
def deep(draw: st.DrawFn) -> bytes:
    """Nesting up to 150 000 levels, closed (valid JSON) or not."""
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'{"brand_id":[', b"]")]))
    depth = draw(st.integers(1, 150_000))
    return opener * depth + (closer * depth if draw(st.booleans()) else b"")


BODIES = st.one_of(
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    deep(),
    st.binary(max_size=300),  # invalid UTF-8 among others
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    wrong_typed(),
)
CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=latin-1", "text/csv",
                                 "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None])


def key_of(world: World, name: str) -> str | None:
    return {"none": None, "random": "llb_fuzz_unknown_key"}.get(name, world.keys.get(name))


KEYS = st.sampled_from(["admin", "admin", "admin", "b1", "c1", "finance", "none", "random"])


@FUZZ
@given(route=st.sampled_from(ROUTES), body=BODIES, content_type=CONTENT_TYPES, key=KEYS,
       method=st.sampled_from(["POST", "POST", "POST", "PUT", "PATCH"]))
def test_random_bodies_never_hurt(world: World, client: httpx.Client, route: str, body: bytes,
                                  content_type: str | None, key: str, method: str) -> None:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    token = key_of(world, key)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    assert_not_hurt(client.request(method, route, content=body, headers=headers))


# --- dates in query strings -----------------------------------------------------------------------

DATE_ROUTES = {
    "/v1/creators/c1/earnings": ["from", "to", "as_of"],
    "/v1/finance/reconciliation": ["from", "to"],
    "/v1/streams/s1/live/series": ["since"],
    "/v1/brands/b1/creators/series": ["since"],
}
DATE_VALUES = st.one_of(
    st.text(max_size=40),
    st.dates().map(lambda d: d.isoformat()),  # year 1 .. 9999
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.integers().map(str),
    st.sampled_from(["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00", "2026-02-30", "2026-13-01",
                     "2026-11-25T25:00:00Z", "1e309", "-0", "NaN", "", "\x00", "2026-11-25T20:00:00+99:00"]),
)


@FUZZ
@given(route=st.sampled_from(sorted(DATE_ROUTES)), data=st.data(), key=KEYS)
def test_random_date_parameters_never_hurt(world: World, client: httpx.Client, route: str,
                                           data: st.DataObject, key: str) -> None:
    names = data.draw(st.lists(st.sampled_from(DATE_ROUTES[route]), min_size=1, max_size=3, unique=True))
    params = {name: data.draw(DATE_VALUES) for name in names}
    token = key_of(world, key)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    assert_not_hurt(client.get(route, params=params, headers=headers))


# --- paths ----------------------------------------------------------------------------------------

PREFIXES = st.sampled_from(["/", "/v1/", "/v1/streams/", "/v1/creators/", "/v1/brands/", "/v1/finance/payouts/",
                            "/v1/admin/", "/dashboard/", "/dashboard/static/", "/dashboard/static/vendor/",
                            "/dashboard/streams/", "/openapi.json/"])


SEGMENTS = st.one_of(st.sampled_from(["\x00", "\x00x", "app.js\x00.css", "\x00.js", "..", "%00", "%2e%2e", "\\",
                                      "app.js", "uPlot.min.css", "s1", "c1", "b1", "live", "earnings", "x" * 300]),
                     st.text(max_size=30))


@settings(FUZZ, max_examples=120)
@given(prefix=PREFIXES, tail=st.lists(SEGMENTS, min_size=1, max_size=2), key=KEYS,
       method=st.sampled_from(["GET", "GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]),
       query=st.text(max_size=40))
def test_random_paths_never_hurt(world: World, client: httpx.Client, prefix: str, tail: list[str], key: str,
                                 method: str, query: str) -> None:
    path = prefix + "/".join(quote(t, safe="", errors="surrogatepass") for t in tail)
    if path.rstrip("/").endswith("/events"):
        return  # a Server-Sent Events stream does not end; its auth and tenancy are tested elsewhere
    token = key_of(world, key)
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    url = path + ("?" + quote(query, safe="=&", errors="surrogatepass") if query else "")
    assert_not_hurt(client.request(method, url, headers=headers))
