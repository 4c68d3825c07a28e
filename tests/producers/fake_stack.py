"""A contract-shaped stand-in for the setup API and the ingest, in-process on free ports.

It lets the simulator's own accounting be tested without Kafka: it validates what the contract makes
checkable at the edge (ids, types, actions, time window, keys, signatures), answers some requests
with 503 + Retry-After, and records exactly what it acknowledged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiohttp import web

ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
ADMIN = "fake-admin"


@dataclass
class FakeStack:
    unavailable_every: int = 0  # answer every n-th ingest request with 503 + Retry-After
    brands: dict[str, dict[str, str]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # api key -> brand_id
    streams: dict[str, str] = field(default_factory=dict)  # stream -> brand
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    accepted_events: list[str] = field(default_factory=list)
    redirect_clicks: list[str] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)  # (brand, body) as accepted
    refunds: list[dict[str, Any]] = field(default_factory=list)
    shopify_topics: list[str] = field(default_factory=list)
    cancellations: list[dict[str, Any]] = field(default_factory=list)
    served_503: int = 0
    _n: itertools.count[int] = field(default_factory=itertools.count)
    _first_click: dict[tuple[str, str | None, str | None], str] = field(default_factory=dict)
    _requests: itertools.count[int] = field(default_factory=itertools.count)

    # --- API ----------------------------------------------------------------------------------
    def _auth(self, request: web.Request) -> str:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token == ADMIN:
            return "admin"
        if token in self.keys:
            return self.keys[token]
        raise web.HTTPUnauthorized()

    async def brand(self, request: web.Request) -> web.Response:
        assert self._auth(request) == "admin"
        body = await request.json()
        key, secret = f"bk{next(self._n)}", f"whsec{next(self._n)}"
        self.brands[body["brand_id"]] = {"currency": body["currency"], "secret": secret}
        self.keys[key] = body["brand_id"]
        return web.json_response({"brand_id": body["brand_id"], "api_key": key, "webhook_secret": secret}, status=201)

    async def creator(self, request: web.Request) -> web.Response:
        assert self._auth(request) == "admin"
        body = await request.json()
        return web.json_response({"creator_id": body["creator_id"], "api_key": f"ck{next(self._n)}"}, status=201)

    async def campaign(self, request: web.Request) -> web.Response:
        who, body = self._auth(request), await request.json()
        assert who in ("admin", body["brand_id"])
        return web.json_response(body, status=201)

    async def stream(self, request: web.Request) -> web.Response:
        who, body = self._auth(request), await request.json()
        assert who in ("admin", body["brand_id"])
        self.streams[body["stream_id"]] = body["brand_id"]
        return web.json_response(body, status=201)

    async def link(self, request: web.Request) -> web.Response:
        self._auth(request)
        body = await request.json()
        code = f"k{next(self._n)}"
        self.links[code] = body
        return web.json_response({"link_code": code, "url": f"http://x/l/{code}"}, status=201)

    # --- ingest -------------------------------------------------------------------------------
    def _overloaded(self) -> bool:
        n = next(self._requests)
        if self.unavailable_every and n % self.unavailable_every == self.unavailable_every - 1:
            self.served_503 += 1
            return True
        return False

    def _busy(self) -> web.Response:
        return web.json_response(
            {"error": {"code": "overloaded", "message": "busy"}}, status=503, headers={"Retry-After": "0.01"}
        )

    async def redirect(self, request: web.Request) -> web.Response:
        code = request.match_info["code"]
        if code not in self.links:
            return web.json_response({"error": {"code": "not_found"}}, status=404)
        dest = self.links[code]["destination_url"]
        if "bot" in request.headers.get("User-Agent", "").lower():  # click hygiene, roughly: no click
            return web.Response(status=302, headers={"Location": dest})
        client = (code, request.headers.get("X-Forwarded-For"), request.headers.get("User-Agent"))
        click = self._first_click.get(client)
        if click is None:
            click = self._first_click[client] = f"clk{next(self._n)}"
            self.redirect_clicks.append(click)
        sep = "&" if "?" in dest else "?"
        return web.Response(
            status=302, headers={"Location": f"{dest}{sep}ll_click={click}", "Set-Cookie": f"ll_click={click}"}
        )

    @staticmethod
    def _problem(ev: Any, brand: str, streams: dict[str, str]) -> str | None:
        if not isinstance(ev, dict) or not ID.match(str(ev.get("event_id", ""))):
            return "event_id"
        if ev.get("type") not in ("view", "click", "add_to_cart"):
            return "type"
        if ev["type"] == "view" and ev.get("action") not in ("join", "heartbeat", "leave"):
            return "action"
        if streams.get(ev.get("stream_id", "")) != brand:
            return "stream_id"
        try:
            at = datetime.fromisoformat(str(ev["occurred_at"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            return "occurred_at"
        now = datetime.now(tz=UTC)
        if at > now + timedelta(minutes=5) or at < now - timedelta(days=400):
            return "occurred_at: outside the window"
        return None

    async def events(self, request: web.Request) -> web.Response:
        if self._overloaded():
            return self._busy()
        brand = self._auth(request)
        items = orjson.loads(await request.read())["events"]
        rejected = []
        for i, ev in enumerate(items):
            problem = self._problem(ev, brand, self.streams)
            if problem:
                rejected.append({"index": i, "error": problem})
            else:
                self.accepted_events.append(ev["event_id"])
        return web.json_response({"accepted": len(items) - len(rejected), "rejected": rejected}, status=202)

    async def native(self, request: web.Request) -> web.Response:
        if self._overloaded():
            return self._busy()
        raw = await request.read()
        body = orjson.loads(raw)
        secret = self.brands[body["brand_id"]]["secret"]
        parts = dict(p.split("=", 1) for p in request.headers["X-LiveLedger-Signature"].split(","))
        want = hmac.new(secret.encode(), parts["t"].encode() + b"." + raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, parts["v1"]) or abs(time.time() - int(parts["t"])) > 300:
            return web.json_response({"error": {"code": "bad_signature"}}, status=401)
        (self.orders if body["type"] == "order.created" else self.refunds).append(body)
        return web.json_response({"accepted": True}, status=202)

    async def shopify(self, request: web.Request) -> web.Response:
        if self._overloaded():
            return self._busy()
        brand = request.match_info["brand_id"]
        raw = await request.read()
        want = base64.b64encode(hmac.new(self.brands[brand]["secret"].encode(), raw, hashlib.sha256).digest())
        if not hmac.compare_digest(want.decode(), request.headers["X-Shopify-Hmac-Sha256"]):
            return web.json_response({"error": {"code": "bad_signature"}}, status=401)
        topic = request.headers["X-Shopify-Topic"]
        self.shopify_topics.append(topic)
        body = {"brand": brand, "webhook_id": request.headers["X-Shopify-Webhook-Id"], **orjson.loads(raw)}
        if topic not in ("orders/create", "refunds/create", "orders/cancelled") or body.get("test") is True:
            return web.json_response({"accepted": 0, "ignored": topic}, status=200)
        if topic == "orders/cancelled":
            self.cancellations.append(body)
            return web.json_response({"accepted": 1}, status=202)
        (self.orders if topic == "orders/create" else self.refunds).append(body)
        return web.json_response({"accepted": True}, status=202)

    def apps(self) -> tuple[web.Application, web.Application]:
        api = web.Application()
        api.add_routes(
            [
                web.post("/v1/admin/brands", self.brand),
                web.post("/v1/admin/creators", self.creator),
                web.post("/v1/campaigns", self.campaign),
                web.post("/v1/streams", self.stream),
                web.post("/v1/links", self.link),
            ]
        )
        ingest = web.Application()
        ingest.add_routes(
            [
                web.get("/l/{code}", self.redirect),
                web.post("/v1/events", self.events),
                web.post("/v1/webhooks/orders", self.native),
                web.post("/v1/webhooks/shopify/{brand_id}", self.shopify),
            ]
        )
        return api, ingest


async def start(stack: FakeStack) -> tuple[list[web.AppRunner], str, str]:
    """Serve both fakes on free ports; returns (runners, api_url, ingest_url)."""
    runners, urls = [], []
    for app in stack.apps():
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{port}")
    return runners, urls[0], urls[1]
