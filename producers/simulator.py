"""Live-shopping day simulator: sets up brands/creators/campaigns/links/streams through the real API,
drives the real HTTP ingest, and writes the ground truth of everything that was acknowledged.

    python -m producers.simulator --seed 42 --out results/ground_truth.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from tqdm import tqdm

from producers import render, truth
from producers.config import SimConfig
from producers.model import (
    BatchOp,
    LinkSpec,
    Plan,
    PlannedCancel,
    PlannedEvent,
    PlannedOrder,
    PlannedRedirect,
    PlannedRefund,
    WebhookOp,
)
from producers.money import (
    DAY_MS,
    SHOP_UTC_OFFSET_MINUTES,
    ceil_to_second,
    ms_to_rfc3339,
    ms_to_shopify_time,
    now_ms,
)
from producers.plan import build_plan
from producers.signing import NATIVE_HEADER, SHOPIFY_HMAC_HEADER, native_signature, shopify_hmac
from producers.transport import Http, Reply

Json = dict[str, Any]
ACK = frozenset({200, 201, 202})
_INDEX = re.compile(r"events\[\d+\]\.")  # "events[17].action: ..." -> "action: ..." so reasons aggregate
COUNTERS = (
    "events_sent",
    "events_acked",
    "events_accepted_reported",
    "events_rejected",
    "events_unacked",
    "duplicate_events_sent",
    "late_events_sent",
    "invalid_events_sent",
    "retries_sent",
    "event_batches_sent",
    "event_batches_failed",
    "redirects_sent",
    "redirect_clicks_acked",
    "redirects_failed",
    "orders_sent",
    "orders_acked",
    "orders_failed",
    "order_duplicates_sent",
    "refunds_sent",
    "refunds_acked",
    "refunds_failed",
    "refund_duplicates_sent",
    "refunds_before_order_sent",
    "bot_redirects_sent",
    "bot_redirects_ignored",
    "bot_redirects_counted",
    "repeat_redirects_sent",
    "repeat_clicks_matched",
    "repeat_clicks_mismatched",
    "cancellations_sent",
    "cancellations_acked",
    "cancellations_failed",
    "cancellation_duplicates_sent",
    "ignored_test_orders_sent",
    "ignored_test_orders_acked",
    "ignored_webhooks_sent",
    "ignored_webhooks_acked",
)
# Link previews and people (click hygiene): a preview bot of the crawler list, and browsers. Each
# simulated client gets an address of its own in 2001:db8::/32 (documentation range) sent as
# X-Forwarded-For, which ingest believes from a trusted proxy (loopback by default).
PREVIEW_BOT_UA = "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"
BROWSER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
    "Safari/605.1.15",
)


def _client_digest(client: str) -> bytes:
    return hashlib.blake2b(client.encode(), digest_size=8).digest()


def browser_agent(client: str) -> str:
    return BROWSER_AGENTS[_client_digest(client)[0] % len(BROWSER_AGENTS)]


def client_address(client: str) -> str:
    d = _client_digest(client).hex()
    return f"2001:db8:{d[0:4]}:{d[4:8]}:{d[8:12]}:{d[12:16]}::1"


class SetupError(RuntimeError):
    """The setup API refused a call the simulator needs."""


@dataclass
class Keys:
    admin: str
    brand_api: dict[str, str] = field(default_factory=dict)
    brand_secret: dict[str, str] = field(default_factory=dict)
    creator_api: dict[str, str] = field(default_factory=dict)
    link_code: dict[str, str] = field(default_factory=dict)  # plan key -> server link_code
    link_url: dict[str, str] = field(default_factory=dict)


@dataclass
class GroundTruth:
    """The run's result. ``document`` is what ``--out`` writes; ``acked`` the raw acknowledged facts."""

    document: Json
    acked: truth.AckLog

    @property
    def totals(self) -> Json:
        t: Json = self.document["totals"]
        return t

    def write(self, path: str | Path) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(orjson.dumps(self.document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


# --- setup ------------------------------------------------------------------------------------------


async def _post_setup(http: Http, url: str, token: str, body: Json) -> Json:
    reply = await http.request(
        "POST", url, _dumps(body), {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    )
    if reply.status not in (200, 201):
        raise SetupError(f"POST {url} -> {reply.status}: {reply.body[:500]!r}")
    data = reply.json()
    if not isinstance(data, dict):
        raise SetupError(f"POST {url} -> non-object reply {reply.body[:200]!r}")
    return data


async def run_setup(http: Http, cfg: SimConfig, plan: Plan) -> Keys:
    api, s = cfg.api_url.rstrip("/"), plan.setup
    keys = Keys(admin=cfg.admin_token)
    replies = await asyncio.gather(
        *(
            _post_setup(
                http,
                f"{api}/v1/admin/brands",
                keys.admin,
                {"brand_id": b.brand_id, "name": b.name, "currency": b.currency},
            )
            for b in s.brands
        )
    )
    for b, r in zip(s.brands, replies, strict=True):
        keys.brand_api[b.brand_id], keys.brand_secret[b.brand_id] = r["api_key"], r["webhook_secret"]
    replies = await asyncio.gather(
        *(
            _post_setup(http, f"{api}/v1/admin/creators", keys.admin, {"creator_id": c.creator_id, "name": c.name})
            for c in s.creators
        )
    )
    for c, r in zip(s.creators, replies, strict=True):
        keys.creator_api[c.creator_id] = r["api_key"]
    await asyncio.gather(
        *(
            _post_setup(
                http,
                f"{api}/v1/campaigns",
                keys.brand_api[c.brand_id],
                {
                    "campaign_id": c.campaign_id,
                    "brand_id": c.brand_id,
                    "rate_bps": c.rate_bps,
                    "flat_minor": c.flat_minor,
                    "attribution_window_days": c.attribution_window_days,
                    "hold_days": c.hold_days,
                    "min_payout_minor": c.min_payout_minor,
                },
            )
            for c in s.campaigns
        )
    )
    await asyncio.gather(
        *(
            _post_setup(
                http,
                f"{api}/v1/streams",
                keys.brand_api[st.brand_id],
                {"stream_id": st.stream_id, "brand_id": st.brand_id, "creator_id": st.creator_id, "title": st.title},
            )
            for st in s.streams
        )
    )

    def link_body(lk: LinkSpec) -> Json:
        body: Json = {"creator_id": lk.creator_id, "campaign_id": lk.campaign_id, "destination_url": lk.destination_url}
        for k in ("product_id", "stream_id", "coupon_code"):
            if getattr(lk, k) is not None:
                body[k] = getattr(lk, k)
        return body

    replies = await asyncio.gather(
        *(_post_setup(http, f"{api}/v1/links", keys.brand_api[lk.brand_id], link_body(lk)) for lk in s.links)
    )
    for lk, r in zip(s.links, replies, strict=True):
        keys.link_code[lk.key], keys.link_url[lk.key] = r["link_code"], r.get("url", "")
    return keys


def truth_setup(plan: Plan, keys: Keys) -> truth.TruthSetup:
    s = plan.setup
    ts = truth.TruthSetup()
    ts.brands = {b.brand_id: b.currency for b in s.brands}
    ts.campaigns = {
        c.campaign_id: truth.Terms(
            c.brand_id, c.rate_bps, c.flat_minor, c.attribution_window_days, c.hold_days, c.min_payout_minor
        )
        for c in s.campaigns
    }
    ts.streams = {st.stream_id: (st.brand_id, st.creator_id) for st in s.streams}
    ts.links = {
        keys.link_code[lk.key]: truth.LinkInfo(
            keys.link_code[lk.key],
            lk.brand_id,
            lk.creator_id,
            lk.campaign_id,
            lk.stream_id,
            lk.product_id,
            lk.coupon_code,
        )
        for lk in s.links
        if lk.key in keys.link_code
    }
    return ts


# --- the day ----------------------------------------------------------------------------------------


class Runner:
    def __init__(self, cfg: SimConfig, plan: Plan, keys: Keys, http: Http, bar: Any) -> None:
        self.cfg, self.plan, self.keys, self.http, self.bar = cfg, plan, keys, http, bar
        self.ingest = cfg.ingest_url.rstrip("/")
        self.clock = render.Clock(now_ms() + 200, cfg.speed)
        self.log = truth.AckLog()
        self.counts: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.rejections: Counter[str] = Counter()
        self.sent_event_ids: set[str] = set()
        self.acked_event_ids: set[str] = set()
        self.invalid_acked: list[str] = []
        self.redirect_click: dict[str, tuple[str, int]] = {}  # slot -> (click_id, ms)
        self.planned_clicks: dict[str, PlannedEvent] = {
            e.event_id: e
            for st in plan.streams
            for t in st.ticks
            for b in t.batches
            for e in b.events
            if e.type == "click"
        }
        self.order_ms: dict[tuple[str, str], int] = {}
        self.currency = {b.brand_id: b.currency for b in plan.setup.brands}

    async def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str], retry: bool
    ) -> list[Reply]:
        """``retry``: the first answer is 'lost to a client timeout' and the identical request is resent."""
        replies = [await self.http.request(method, url, body, headers)]
        self.bar.update(1)
        if retry:
            self.counts["retries_sent"] += 1
            replies.append(await self.http.request(method, url, body, headers))
            self.bar.update(1)
        return replies

    async def batch(self, brand_id: str, op: BatchOp) -> None:
        occurred = [self.clock.wall_ms(e.sim_ms, e.offset_ms) for e in op.events]
        items = [render.event_body(e, ms) for e, ms in zip(op.events, occurred, strict=True)]
        for e in op.events:
            self.counts["events_sent"] += 1 + op.retry
            self.counts["duplicate_events_sent"] += (e.event_id in self.sent_event_ids) + op.retry
            self.counts["late_events_sent"] += e.offset_ms < 0 and not e.invalid
            self.counts["invalid_events_sent"] += (e.invalid is not None) * (1 + op.retry)
            self.sent_event_ids.add(e.event_id)
        headers = {"Authorization": f"Bearer {self.keys.brand_api[brand_id]}", "Content-Type": "application/json"}
        for reply in await self._send("POST", f"{self.ingest}/v1/events", _dumps({"events": items}), headers, op.retry):
            self.counts["event_batches_sent"] += 1
            data = reply.json()
            if reply.status != 202 or not isinstance(data, dict):
                self.counts["event_batches_failed"] += 1
                self.counts["events_unacked"] += len(items)
                self.rejections[f"batch:{reply.status}"] += 1
                continue
            rejected = {int(r["index"]) for r in data.get("rejected") or []}
            for r in data.get("rejected") or []:
                self.rejections[_INDEX.sub("", str(r.get("error", "?")))[:100]] += 1
            self.counts["events_accepted_reported"] += int(data.get("accepted", 0))
            self.counts["events_rejected"] += len(rejected)
            for i, (e, body, ms) in enumerate(zip(op.events, items, occurred, strict=True)):
                if i in rejected:
                    continue
                self.counts["events_acked"] += 1
                if e.invalid is not None:
                    self.invalid_acked.append(e.event_id)
                self.acked_event_ids.add(e.event_id)
                self.log.events.append((body, ms))

    async def redirect(self, op: PlannedRedirect) -> None:
        code = self.keys.link_code[op.link_key]
        client = op.client or op.slot
        headers = {"User-Agent": PREVIEW_BOT_UA if op.bot else browser_agent(client),
                   "X-Forwarded-For": client_address(client)}
        (reply,) = await self._send("GET", f"{self.ingest}/l/{code}", None, headers, False)
        received = now_ms()
        location = reply.headers.get("Location", "")
        found = parse_qs(urlsplit(location).query).get("ll_click")
        click = found[0] if found else None
        if op.bot:  # a link preview: redirected, never a click
            self.counts["bot_redirects_sent"] += 1
            self.counts["bot_redirects_counted" if click or reply.status != 302 else "bot_redirects_ignored"] += 1
            return
        if op.client:  # the same person again within the hour: the first click id, no new click
            self.counts["repeat_redirects_sent"] += 1
            first = self.redirect_click.get(op.client)
            if first is not None:
                self.counts["repeat_clicks_matched" if click == first[0] else "repeat_clicks_mismatched"] += 1
            return
        self.counts["redirects_sent"] += 1
        if reply.status != 302 or not click:
            self.counts["redirects_failed"] += 1
            self.rejections[f"redirect:{reply.status}"] += 1
            return
        self.counts["redirect_clicks_acked"] += 1
        self.redirect_click[op.slot] = (click, received)
        self.log.redirect_clicks.append((click, code, received))

    def _click_of(self, order: PlannedOrder) -> tuple[str | None, int | None]:
        if order.click_event_id is not None:
            ev = self.planned_clicks.get(order.click_event_id)
            return order.click_event_id, self.clock.wall_ms(ev.sim_ms, ev.offset_ms) if ev else None
        if order.click_redirect_slot is not None:
            got = self.redirect_click.get(order.click_redirect_slot)
            return (got[0], got[1]) if got else (None, None)
        return None, None

    async def webhook(self, op: WebhookOp) -> None:
        if op.cancel is not None:
            await self._cancel(op.cancel, op)
        elif op.ignored and op.order is not None:
            await self._ignored(op.order, op.ignored)
        elif op.order is not None:
            await self._order(op.order, op)
        elif op.refund is not None:
            await self._refund(op.refund, op)

    async def _cancel(self, cancel: PlannedCancel, op: WebhookOp) -> None:
        """Shopify ``orders/cancelled``: the order's payload with ``cancelled_at`` (booked: net 0)."""
        key = (cancel.brand_id, cancel.order.order_id)
        order_ms = self.order_ms.get(key)
        if order_ms is None:  # its order was never sent: nothing to cancel
            return
        ms = ceil_to_second(max(min(self.clock.wall_ms(cancel.sim_ms), now_ms()), order_ms + 1000))
        off = SHOP_UTC_OFFSET_MINUTES[cancel.order.currency]
        body = {**render.shopify_order_body(cancel.order, None, order_ms),
                "cancelled_at": ms_to_shopify_time(ms, off), "cancel_reason": "customer"}
        self.counts["cancellations_sent"] += 1
        self.counts["cancellation_duplicates_sent"] += op.resend
        acked = await self._deliver(cancel.brand_id, "shopify", "orders/cancelled", body, cancel.webhook_id, False)
        self.counts["cancellations_acked"] += acked
        self.counts["cancellations_failed"] += 1 - acked
        if acked:
            self.log.cancellations.append(key)

    async def _ignored(self, order: PlannedOrder, what: str) -> None:
        """A delivery Shopify sends that must be acknowledged (200) and booked as nothing."""
        ms = self.clock.wall_ms(order.sim_ms)
        body = render.shopify_order_body(order, None, ceil_to_second(min(ms, now_ms())))
        topic = "orders/create" if what == "test" else what
        if what == "test":
            body["test"] = True
        name = "ignored_test_orders" if what == "test" else "ignored_webhooks"
        self.counts[f"{name}_sent"] += 1
        self.counts[f"{name}_acked"] += await self._deliver(order.brand_id, "shopify", topic, body,
                                                            order.webhook_id, False)

    async def _deliver(self, brand_id: str, source: str, topic: str, body: Json, webhook_id: str, retry: bool) -> int:
        """Deliver a signed webhook; returns how many deliveries were acknowledged (a retry sends two)."""
        raw = _dumps(body)
        secret = self.keys.brand_secret[brand_id]
        if source == "native":
            url = f"{self.ingest}/v1/webhooks/orders"
            headers = {
                "Content-Type": "application/json",
                NATIVE_HEADER: native_signature(secret, int(time.time()), raw),
            }
        else:
            url = f"{self.ingest}/v1/webhooks/shopify/{brand_id}"
            headers = {
                "Content-Type": "application/json",
                SHOPIFY_HMAC_HEADER: shopify_hmac(secret, raw),
                "X-Shopify-Topic": topic,
                "X-Shopify-Webhook-Id": webhook_id,
                "X-Shopify-Shop-Domain": f"{brand_id.lower()}.myshopify.com",
                "X-Shopify-API-Version": "2025-01",
            }
        acked = 0
        for reply in await self._send("POST", url, raw, headers, retry):
            if reply.status in ACK:
                acked += 1
            else:
                self.rejections[f"{topic}:{reply.status}:{reply.body[:120]!r}"] += 1
        return acked

    async def _order(self, order: PlannedOrder, op: WebhookOp) -> None:
        click_id, click_ms = self._click_of(order)
        key = (order.brand_id, order.order_id)
        if op.resend and key in self.order_ms:
            ms = self.order_ms[key]
        else:
            ms = render.order_time_ms(order, self.clock.wall_ms(order.sim_ms, order.offset_ms), click_ms)
            self.order_ms.setdefault(key, ms)
            ms = self.order_ms[key]
        if order.source == "native":
            body = render.native_order_body(order, click_id, ms)
            fact = truth.order_from_native(body)
        else:
            body = render.shopify_order_body(order, click_id, ms)
            fact = truth.order_from_shopify(order.brand_id, body)
        self.counts["orders_sent"] += 1 + op.retry
        self.counts["order_duplicates_sent"] += op.resend + op.retry
        acked = await self._deliver(order.brand_id, order.source, "orders/create", body, order.webhook_id, op.retry)
        self.counts["orders_acked"] += acked
        self.counts["orders_failed"] += 1 + op.retry - acked
        if acked:
            self.log.orders.append(fact)

    async def _refund(self, refund: PlannedRefund, op: WebhookOp) -> None:
        # an early refund's planned time may lie ahead of the clock: keep it well inside the 5-minute limit
        ms = min(self.clock.wall_ms(refund.sim_ms), now_ms() + 60_000)
        ms = max(ms, self.order_ms.get((refund.brand_id, refund.order_id), ms - 1000) + 1000)
        if refund.source == "native":
            body = render.native_refund_body(refund, ms)
            fact = truth.refund_from_native(body)
        else:
            body = render.shopify_refund_body(refund, self.currency[refund.brand_id], ms)
            fact = truth.refund_from_shopify(refund.brand_id, self.currency[refund.brand_id], body)
        self.counts["refunds_sent"] += 1 + op.retry
        self.counts["refund_duplicates_sent"] += op.resend + op.retry
        self.counts["refunds_before_order_sent"] += (refund.brand_id, refund.order_id) not in self.order_ms
        acked = await self._deliver(refund.brand_id, refund.source, "refunds/create", body, refund.webhook_id, op.retry)
        self.counts["refunds_acked"] += acked
        self.counts["refunds_failed"] += 1 + op.retry - acked
        if acked:
            self.log.refunds.append(fact)

    async def stream(self, index: int) -> None:
        sp = self.plan.streams[index]
        for tick in sp.ticks:
            delay = (self.clock.t0_ms + tick.end_sim_ms / self.cfg.speed - now_ms()) / 1000
            if delay > 0:
                await asyncio.sleep(delay)
            await asyncio.gather(*(self.redirect(r) for r in tick.redirects))
            await asyncio.gather(*(self.batch(sp.brand_id, b) for b in tick.batches))
            for phase in sorted({w.phase for w in tick.webhooks}):
                await asyncio.gather(*(self.webhook(w) for w in tick.webhooks if w.phase == phase))

    async def run(self) -> None:
        await asyncio.gather(*(self.stream(i) for i in range(len(self.plan.streams))))


def _setup_doc(plan: Plan, keys: Keys) -> Json:
    s = plan.setup
    return {
        "brands": [
            {
                "brand_id": b.brand_id,
                "name": b.name,
                "currency": b.currency,
                "api_key": keys.brand_api.get(b.brand_id),
                "webhook_secret": keys.brand_secret.get(b.brand_id),
            }
            for b in s.brands
        ],
        "creators": [{"creator_id": c.creator_id, "api_key": keys.creator_api.get(c.creator_id)} for c in s.creators],
        "campaigns": [c.__dict__ for c in s.campaigns],
        "streams": [st.__dict__ for st in s.streams],
        "links": [
            {**lk.__dict__, "link_code": keys.link_code.get(lk.key), "url": keys.link_url.get(lk.key)} for lk in s.links
        ],
    }


async def run_simulation(config: SimConfig) -> GroundTruth:
    """Plan, set up, drive the ingest, and return the ground truth (the function API for tests)."""
    cfg = config.resolved()
    plan = build_plan(cfg)
    started = now_ms()
    async with Http(cfg.concurrency, cfg.max_retry_after_s, cfg.max_outage_s) as http:
        keys = await run_setup(http, cfg, plan)
        with tqdm(
            total=plan.requests(),
            file=sys.stderr,
            disable=not cfg.progress,
            unit="req",
            desc=f"simulating {cfg.id_prefix}",
        ) as bar:
            runner = Runner(cfg, plan, keys, http, bar)
            await runner.run()
        finished = now_ms()
        holds = sorted({c.hold_days for c in plan.setup.campaigns})
        as_of = {
            "run_end": finished,
            "after_min_hold": finished + (holds[0] + 1) * DAY_MS,
            "after_max_hold": finished + (holds[-1] + 1) * DAY_MS,
        }
        doc = truth.compute(truth_setup(plan, keys), runner.log, as_of)
        c = runner.counts
        totals: Json = {
            **{k: c[k] for k in sorted(c)},
            "events_unique_acked": len(runner.acked_event_ids),
            "events_unique_sent": len(runner.sent_event_ids),
            "invalid_events_acked": len(runner.invalid_acked),
            "http_attempts": http.stats.attempts,
            "http_statuses": {str(k): v for k, v in sorted(http.stats.statuses.items())},
            "retry_after_waits": http.stats.retry_after_waits,
            "transport_retries": http.stats.transport_retries,
            "rejections": dict(runner.rejections.most_common(50)),
        }
    document: Json = {
        "version": 1,
        "seed": cfg.seed,
        "id_prefix": cfg.id_prefix,
        "config": cfg.public_dict(),
        "started_at": ms_to_rfc3339(started),
        "finished_at": ms_to_rfc3339(finished),
        "as_of": {k: ms_to_rfc3339(v) for k, v in as_of.items()},
        "setup": _setup_doc(plan, keys),
        "totals": totals,
        **doc,
    }
    if cfg.record_acked:
        document["acked"] = {
            "event_ids": sorted(runner.acked_event_ids),
            "redirect_click_ids": sorted(c for c, _, _ in runner.log.redirect_clicks),
            "orders": sorted({f"{o.brand_id}/{o.order_id}" for o in runner.log.orders}),
            "refunds": sorted({f"{r.brand_id}/{r.refund_id}" for r in runner.log.refunds}),
            "cancellations": sorted({f"{b}/{o}" for b, o in runner.log.cancellations}),
        }
    return GroundTruth(document, runner.log)


# --- CLI ----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    d = SimConfig()
    p = argparse.ArgumentParser(
        prog="python -m producers.simulator",
        description="Simulate a live-shopping day against the real ingest and API and write the ground truth JSON.",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--id-prefix", default="", help="ids prefix (default: s<seed>-<random nonce>)")
    p.add_argument("--ingest", default=d.ingest_url, help="ingest base URL")
    p.add_argument("--api", default=d.api_url, help="setup API base URL")
    p.add_argument(
        "--admin-token",
        default=None,
        help="admin bearer token (default: LIVELEDGER_ADMIN_TOKEN or the documented dev default)",
    )
    p.add_argument("--out", default="results/ground_truth.json", help="ground truth JSON path")
    for name, typ, help_ in [
        ("brands", int, "brands (currencies cycle USD, JPY, EUR, KWD, GBP)"),
        ("creators", int, "creators"),
        ("streams", int, "concurrent live streams"),
        ("viewers", int, "viewers per stream"),
        ("minutes", float, "simulated minutes per stream"),
        ("speed", float, "simulated seconds per real second"),
        ("tick-seconds", float, "simulated seconds per tick (heartbeat interval)"),
        ("dup-rate", float, "share of events/webhooks re-sent with the same id"),
        ("retry-rate", float, "share of requests re-sent after a simulated timeout"),
        ("late-rate", float, "share of events with occurred_at minutes in the past"),
        ("shopify-rate", float, "share of orders in Shopify's webhook format"),
        ("refund-rate", float, "share of orders refunded (partly or fully)"),
        ("coupon-rate", float, "share of orders carrying a coupon code"),
        ("invalid-rate", float, "share of deliberately invalid events (must be rejected)"),
        ("edge-rate", float, "share of click orders on attribution edges (stale/cross-brand/after-order)"),
        ("concurrency", int, "requests in flight"),
        ("max-outage-s", float, "keep retrying refused connections this long"),
    ]:
        attr = name.replace("-", "_")
        p.add_argument(f"--{name}", type=typ, default=getattr(d, attr), help=f"{help_} (default {getattr(d, attr)})")
    p.add_argument("--record-acked", action="store_true", help="list every acked id in the JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> SimConfig:
    token = args.admin_token
    if token is None:
        from liveledger.settings import get_settings

        token = get_settings().admin_token
    return SimConfig(
        seed=args.seed,
        id_prefix=args.id_prefix,
        ingest_url=args.ingest,
        api_url=args.api,
        admin_token=token,
        brands=args.brands,
        creators=args.creators,
        streams=args.streams,
        viewers=args.viewers,
        minutes=args.minutes,
        speed=args.speed,
        tick_seconds=args.tick_seconds,
        dup_rate=args.dup_rate,
        retry_rate=args.retry_rate,
        late_rate=args.late_rate,
        shopify_rate=args.shopify_rate,
        refund_rate=args.refund_rate,
        coupon_rate=args.coupon_rate,
        invalid_rate=args.invalid_rate,
        edge_rate=args.edge_rate,
        concurrency=args.concurrency,
        max_outage_s=args.max_outage_s,
        record_acked=args.record_acked,
        progress=not args.quiet,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    try:
        gt = asyncio.run(run_simulation(cfg))
    except SetupError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2
    gt.write(args.out)
    t = gt.totals
    print(
        f"{gt.document['id_prefix']}: events sent {t.get('events_sent', 0)}, acked {t.get('events_acked', 0)}, "
        f"rejected {t.get('events_rejected', 0)}; orders acked {t.get('orders_acked', 0)}, refunds acked "
        f"{t.get('refunds_acked', 0)} -> {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
