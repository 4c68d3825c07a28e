"""The redirect's fast paths give byte-identical headers to the straightforward code they replaced
(perf change from docs/benchmarks.md: URL split cached per destination, Set-Cookie written directly)."""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from ingest.app import add_query_param, new_click_id


def reference_add_query_param(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
    query.append((name, value))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


URLS = [
    "https://shop.example",
    "https://shop.example/",
    "https://shop.example/p/1",
    "https://shop.example/p/1?",
    "https://shop.example/p/1?ref=x",
    "https://shop.example/p/1?ref=x&ll_click=old&b=",
    "https://shop.example:8443/p/1?q=a%20b&q=c+d#frag",
    "https://shop.example/p/1#only-fragment",
    "https://shop.example/p%2F1?ll_click=a&ll_click=b",
    "http://user@shop.example/x?utf=%C3%A9",
]


@pytest.mark.parametrize("url", URLS)
def test_add_query_param_matches_reference(url: str) -> None:
    for value in ("clk:0123abcd", "needs quoting & = #"):
        assert add_query_param(url, "ll_click", value) == reference_add_query_param(url, "ll_click", value)
        assert add_query_param(url, "ll_click", value) == reference_add_query_param(url, "ll_click", value)  # cached


def test_direct_set_cookie_matches_http_cookies() -> None:
    click_id = new_click_id()
    cookie: SimpleCookie = SimpleCookie()
    cookie["ll_click"] = click_id
    cookie["ll_click"]["max-age"] = 30 * 86400
    cookie["ll_click"]["path"] = "/"
    cookie["ll_click"]["samesite"] = "Lax"
    expected = cookie.output(header="").strip()
    assert f"ll_click={click_id}; Max-Age={30 * 86400}; Path=/; SameSite=Lax" == expected
