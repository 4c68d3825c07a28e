"""Locust users for the ingest hot path in a realistic mix (run headless by ``loadtests/run.sh``).

- :class:`Viewer` follows affiliate links: ``GET /l/{code}`` → 302 (the most frequent request);
- :class:`LivePlayer` posts ``/v1/events`` batches of 50-500 views / clicks / add-to-carts;
- :class:`ShopWebhooks` sends signed native order webhooks (some refunds) and Shopify
  ``orders/create`` webhooks, carrying click ids the viewers received.

Setup (brand, creator, campaign, streams, links) is created once at test start through the setup
API with the admin token. Pass/fail thresholds (environment, defaults in brackets):
``LL_LOAD_MAX_ERROR_RATIO`` [0.001] and ``LL_LOAD_P99_MS`` [400] over all requests; when either is
exceeded the process exits with code 1.
"""

from __future__ import annotations

import collections
import logging
import os
import random
from typing import Any
from urllib.parse import parse_qs, urlsplit

from locust import between, constant_pacing, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from liveledger.settings import get_settings
from loadtests.payloads import (
    BROWSER_UA,
    World,
    dumps,
    event_batch,
    native_headers,
    native_order,
    native_refund,
    setup_world,
    shopify_headers,
    shopify_order,
)

log = logging.getLogger("loadtests")
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_ERROR_RATIO = float(os.environ.get("LL_LOAD_MAX_ERROR_RATIO", "0.001"))
P99_MS = float(os.environ.get("LL_LOAD_P99_MS", "400"))

_world: World | None = None
# Click ids handed out by redirects, for orders that attribute to them (bounded).
_clicks: collections.deque[str] = collections.deque(maxlen=10_000)
# (order_id, amount) of accepted native orders, for refunds.
_orders: collections.deque[tuple[str, int]] = collections.deque(maxlen=10_000)


def world() -> World:
    if _world is None:
        raise RuntimeError("setup did not run (test_start)")
    return _world


def _setup(environment: Environment, **_: Any) -> None:
    global _world
    settings = get_settings()
    api_url = os.environ.get("LL_LOAD_API_URL", f"http://{settings.api_host}:{settings.api_port}")
    _world = setup_world(api_url, settings.admin_token, streams=8, links=16)
    log.info("load setup: brand %s, %d streams, %d links", _world.brand_id, len(_world.stream_ids),
             len(_world.link_codes))


def _thresholds(environment: Environment, **_: Any) -> None:
    total = environment.stats.total
    if total.num_requests == 0:
        log.error("FAIL: no requests were made")
        environment.process_exit_code = 1
        return
    p99 = total.get_response_time_percentile(0.99) or 0.0
    problems = []
    if total.fail_ratio > MAX_ERROR_RATIO:
        problems.append(f"error ratio {total.fail_ratio:.4%} > {MAX_ERROR_RATIO:.4%}")
    if p99 > P99_MS:
        problems.append(f"p99 {p99:.0f} ms > {P99_MS:.0f} ms")
    summary = (f"{total.num_requests} requests, {total.num_failures} failures, "
               f"{total.total_rps:.0f} req/s, p50 {total.median_response_time:.0f} ms, p99 {p99:.0f} ms")
    if problems:
        log.error("FAIL: %s (%s)", "; ".join(problems), summary)
        environment.process_exit_code = 1
    else:
        log.info("PASS: %s", summary)
        environment.process_exit_code = 0


events.test_start.add_listener(_setup)  # type: ignore[no-untyped-call]
events.quitting.add_listener(_thresholds)  # type: ignore[no-untyped-call]


def _body(raw: bytes) -> str:
    """Locust's FastHttpSession sends bytes as they are; its annotation only names str."""
    return raw  # type: ignore[return-value]


class Viewer(FastHttpUser):
    """A viewer tapping an affiliate link in the live stream."""

    weight = 6
    wait_time = between(0.05, 0.3)

    @task
    def follow_link(self) -> None:
        w = world()
        code = random.choice(w.link_codes)
        # a browser, and every tap another viewer of a large audience (click hygiene counts one
        # click per client and link an hour; X-Forwarded-For is believed from the loopback proxy)
        address = f"2001:db8:{random.getrandbits(16):x}:{random.getrandbits(16):x}::{random.getrandbits(16):x}"
        headers = {"User-Agent": BROWSER_UA, "X-Forwarded-For": address}
        with self.client.get(f"/l/{code}", name="/l/{code}", allow_redirects=False, headers=headers,
                             catch_response=True) as resp:
            if resp.status_code != 302:
                resp.failure(f"expected 302, got {resp.status_code}")
                return
            location = resp.headers.get("Location", "")
            click = parse_qs(urlsplit(location).query).get("ll_click")
            if not click:
                resp.failure("302 without ll_click")
                return
            _clicks.append(click[0])


class LivePlayer(FastHttpUser):
    """A live-stream player flushing its buffered events every ~second."""

    weight = 3
    wait_time = constant_pacing(1.0)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.seq = 0

    @task
    def post_batch(self) -> None:
        w = world()
        self.seq += 1
        body = dumps(event_batch(w, self.rng.randint(50, 500), self.rng, self.seq))
        with self.client.post("/v1/events", data=_body(body), name="/v1/events", catch_response=True,
                              headers={"Authorization": f"Bearer {w.api_key}",
                                       "Content-Type": "application/json"}) as resp:
            if resp.status_code != 202:
                resp.failure(f"expected 202, got {resp.status_code}: {resp.text[:200]}")
            elif resp.json().get("rejected"):
                resp.failure(f"events rejected: {resp.text[:200]}")


class ShopWebhooks(FastHttpUser):
    """A brand's shop: native order webhooks (with refunds) and Shopify webhooks."""

    weight = 1
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        self.rng = random.Random()

    def _click(self) -> str | None:
        return random.choice(_clicks) if _clicks and self.rng.random() < 0.7 else None

    @task(5)
    def native_order(self) -> None:
        w = world()
        order = native_order(w, self.rng, self._click())
        body = dumps(order)
        with self.client.post("/v1/webhooks/orders", data=_body(body), name="/v1/webhooks/orders [order]",
                              headers=native_headers(w, body), catch_response=True) as resp:
            if resp.status_code != 202:
                resp.failure(f"expected 202, got {resp.status_code}: {resp.text[:200]}")
                return
        item = order["items"][0]
        _orders.append((str(order["order_id"]), int(item["quantity"]) * int(item["unit_price_minor"])))

    @task(1)
    def native_refund(self) -> None:
        if not _orders:
            return
        w = world()
        order_id, amount = random.choice(_orders)
        body = dumps(native_refund(w, order_id, max(1, amount // 2)))
        with self.client.post("/v1/webhooks/orders", data=_body(body), name="/v1/webhooks/orders [refund]",
                              headers=native_headers(w, body), catch_response=True) as resp:
            if resp.status_code != 202:
                resp.failure(f"expected 202, got {resp.status_code}: {resp.text[:200]}")

    @task(3)
    def shopify_order(self) -> None:
        w = world()
        body = dumps(shopify_order(w, self.rng, self._click()))
        with self.client.post(f"/v1/webhooks/shopify/{w.brand_id}", data=_body(body),
                              name="/v1/webhooks/shopify/{brand}", headers=shopify_headers(w, body),
                              catch_response=True) as resp:
            if resp.status_code != 202:
                resp.failure(f"expected 202, got {resp.status_code}: {resp.text[:200]}")
