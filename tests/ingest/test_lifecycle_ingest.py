"""Setup lifecycle as ingest applies it (contract "Secrets, keys and setup lifecycle"): a rotated
webhook secret and its predecessor both verify for 24 h on both webhooks, a deactivated link or a
paused campaign still redirects but counts no click."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from ingest.signatures import sign_liveledger
from liveledger.settings import DEV_ADMIN_TOKEN
from tests.harness import BROWSER_UA
from tests.ingest.conftest import World, read_topic
from tests.ingest.test_ingest_api import order_body, post_shopify, shopify_order

pytestmark = [pytest.mark.kafka]


def admin(world: World, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.request(method, world.stack.api_url + path, json=body, timeout=30,
                         headers={"Authorization": f"Bearer {DEV_ADMIN_TOKEN}"})


def native(world: World, body: bytes, secret: str) -> int:
    return httpx.post(f"{world.stack.ingest_url}/v1/webhooks/orders", content=body, headers={
        "Content-Type": "application/json",
        "X-LiveLedger-Signature": sign_liveledger(body, secret, int(time.time()))}).status_code


def test_rotated_webhook_secret_and_its_predecessor_both_verify(world: World) -> None:
    old = world.brand["webhook_secret"]
    resp = admin(world, "POST", "/v1/admin/brands/b1/webhook-secret")
    assert resp.status_code == 200, resp.text
    new = resp.json()["webhook_secret"]
    assert new != old
    for i, secret in enumerate((old, new)):
        assert native(world, orjson.dumps(order_body(f"rot-{i}", f"rot-o{i}")), secret) == 202
        body = orjson.dumps(shopify_order(9100 + i))
        assert post_shopify(world, body, "orders/create", f"wh-rot-{i}", secret=secret).status_code == 202
    assert native(world, orjson.dumps(order_body("rot-x", "rot-ox")), "whsec_not_the_brands_secret") == 401
    world.brand["webhook_secret"] = new  # later tests of this module sign with the current one


def redirect_click(world: World, code: str, ip: str) -> str | None:
    resp = httpx.get(f"{world.stack.ingest_url}/l/{code}", headers={"User-Agent": BROWSER_UA, "X-Forwarded-For": ip})
    assert resp.status_code == 302
    found = parse_qs(urlsplit(resp.headers["location"]).query).get("ll_click")
    return found[0] if found else None


def until_no_click(world: World, code: str, ip_prefix: str) -> None:
    """Setup changes reach ingest's replica within a fetch (~0.1-0.5 s): redirect (each time as
    another client) until the change shows, at most 5 s."""
    deadline = time.monotonic() + 5
    n = 0
    while redirect_click(world, code, f"{ip_prefix}{n}") is not None:
        n += 1
        assert time.monotonic() < deadline, "the change did not reach ingest within 5 s"
        time.sleep(0.1)


def clicks_on(world: World, code: str) -> int:
    recs = read_topic("127.0.0.1:9092", f"{world.stack.prefix}.events", idle_ms=800)
    return sum(1 for _, v, _ in recs for e in v["events"] if e.get("link_code") == code)


def test_a_deactivated_link_redirects_without_a_click(world: World) -> None:
    link = admin(world, "POST", "/v1/links", {"creator_id": "c1", "campaign_id": "cmp1",
                                              "destination_url": "https://shop.example/gone"}).json()
    code = link["link_code"]
    assert redirect_click(world, code, "192.0.2.201") is not None
    assert admin(world, "DELETE", f"/v1/links/{code}").status_code == 200
    until_no_click(world, code, "198.51.100.")
    counted = clicks_on(world, code)
    assert redirect_click(world, code, "192.0.2.202") is None
    assert clicks_on(world, code) == counted


def test_a_paused_campaign_counts_no_clicks_until_resumed(world: World) -> None:
    admin(world, "POST", "/v1/campaigns", {"campaign_id": "cmp-pause", "brand_id": "b1", "rate_bps": 500})
    code = admin(world, "POST", "/v1/links", {"creator_id": "c1", "campaign_id": "cmp-pause",
                                              "destination_url": "https://shop.example/p"}).json()["link_code"]
    assert admin(world, "PATCH", "/v1/campaigns/cmp-pause", {"active": False}).status_code == 200
    until_no_click(world, code, "198.51.101.")
    counted = clicks_on(world, code)
    assert admin(world, "PATCH", "/v1/campaigns/cmp-pause", {"active": True}).status_code == 200
    deadline = time.monotonic() + 5
    n = 0
    while redirect_click(world, code, f"192.0.2.{n}") is None:
        n += 1
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert clicks_on(world, code) == counted + 1
