"""Deterministic planning of a live-shopping day from ``random.Random(seed)``.

The id prefix only names things; the seed alone decides the shape, so the same seed and prefix give
an identical plan (``build_plan(cfg) == build_plan(cfg)``).
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace

from producers.config import SimConfig
from producers.model import (
    BatchOp,
    BrandSpec,
    CampaignSpec,
    CreatorSpec,
    LinkSpec,
    OrderLine,
    Plan,
    PlannedCancel,
    PlannedEvent,
    PlannedOrder,
    PlannedRedirect,
    PlannedRefund,
    ProductSpec,
    RefundLine,
    SetupPlan,
    Source,
    StreamPlan,
    StreamSpec,
    TickPlan,
    WebhookOp,
)
from producers.money import DAY_MS, EXPONENTS

CURRENCY_CYCLE = ("USD", "JPY", "EUR", "KWD", "GBP")
PRODUCTS_PER_BRAND = 8

MINUTE_MS = 60_000
HELD_CLICK_RATE = 0.08  # click orders whose click batch is sent only after the order
# How likely a cart in a creator's stream becomes an order, by the creator's position: creators
# convert visibly differently, so the brand's creator leaderboard means something.
CART_TO_ORDER_BY_CREATOR = (0.7, 0.35, 0.55, 0.2, 0.45, 0.6)
EARLY_REFUND_RATE = 0.2  # refunds sent before their order
BOT_REDIRECT_RATE = 0.05  # redirects preceded by a link-preview bot (Slack, WhatsApp, ...) unfurling the link
REPEAT_REDIRECT_RATE = 0.08  # redirects opened again by the same person within the hour
SHOPIFY_CANCEL_RATE = 0.08  # Shopify orders later cancelled (orders/cancelled)
SHOPIFY_NOISE_RATE = 0.05  # per Shopify order: a test order; and (again) a delivery of another topic
MIN_BATCH, MAX_BATCH = 50, 500


def _unit(currency: str) -> int:
    """One major unit in minor units (USD 100, JPY 1, KWD 1000)."""
    return int(10 ** EXPONENTS[currency])


def _price(rng: random.Random, currency: str) -> int:
    if currency == "JPY":
        return rng.randint(5, 300) * 100 - rng.choice([0, 10, 20])
    if currency == "KWD":
        return rng.randint(1500, 60000)  # odd fils amounts exercise the 3-decimal exponent
    return rng.randint(5, 200) * 100 - rng.choice([1, 5, 50, 100])


def build_setup(cfg: SimConfig, rng: random.Random) -> SetupPlan:
    p = cfg.id_prefix
    brands = tuple(
        BrandSpec(
            f"{p}-b{i}",
            f"Brand {i} ({CURRENCY_CYCLE[i % len(CURRENCY_CYCLE)]})",
            CURRENCY_CYCLE[i % len(CURRENCY_CYCLE)],
        )
        for i in range(cfg.brands)
    )
    creators = tuple(CreatorSpec(f"{p}-cr{j}", f"Creator {j}") for j in range(cfg.creators))
    campaigns: list[CampaignSpec] = []
    products: list[ProductSpec] = []
    for i, b in enumerate(brands):
        u = _unit(b.currency)
        campaigns += [
            CampaignSpec(f"{p}-b{i}-cmp0", b.brand_id, 1000, 0, 30, 30, 50 * u),
            CampaignSpec(f"{p}-b{i}-cmp1", b.brand_id, rng.choice([500, 750, 1200, 1500]), u // 2 or 1, 7, 14, 20 * u),
            # short window + short hold: stale clicks fall outside it; approval within two days
            CampaignSpec(f"{p}-b{i}-cmp2", b.brand_id, rng.choice([300, 800, 1234]), 0, 1, 1, 10 * u),
        ]
        products += [
            ProductSpec(f"{p}-b{i}-p{n}", b.brand_id, _price(rng, b.currency)) for n in range(PRODUCTS_PER_BRAND)
        ]
    streams: list[StreamSpec] = []
    for k in range(cfg.streams):
        bi = k % cfg.brands
        streams.append(
            StreamSpec(
                f"{p}-st{k}",
                brands[bi].brand_id,
                creators[k % cfg.creators].creator_id,
                f"Live show {k}",
                rng.choice([f"{p}-b{bi}-cmp0", f"{p}-b{bi}-cmp1"]),
                f"{p}-b{bi}-cmp2",
            )
        )
    links: list[LinkSpec] = []
    n_coupon = 0

    def coupon() -> str:
        nonlocal n_coupon
        n_coupon += 1
        return f"LIVE{n_coupon:03d}"

    for i, b in enumerate(brands):
        bp = [pr for pr in products if pr.brand_id == b.brand_id]
        affiliates = [c for j, c in enumerate(creators) if j % cfg.brands == i] or [creators[i % len(creators)]]
        for c in affiliates:
            links.append(
                LinkSpec(
                    f"L{len(links)}",
                    b.brand_id,
                    c.creator_id,
                    f"{p}-b{i}-cmp0",
                    f"https://shop{i}.example/?ref=aff",
                    coupon_code=coupon(),
                )
            )
            prod = rng.choice(bp)
            links.append(
                LinkSpec(
                    f"L{len(links)}",
                    b.brand_id,
                    c.creator_id,
                    f"{p}-b{i}-cmp1",
                    f"https://shop{i}.example/products/{prod.product_id}",
                    product_id=prod.product_id,
                    coupon_code=coupon() if rng.random() < 0.5 else None,
                )
            )
    for s in streams:
        i = int(s.brand_id.rsplit("-b", 1)[1])
        prod = rng.choice([pr for pr in products if pr.brand_id == s.brand_id])
        links.append(
            LinkSpec(
                f"L{len(links)}",
                s.brand_id,
                s.creator_id,
                s.campaign_id,
                f"https://shop{i}.example/live?show={s.stream_id}",
                stream_id=s.stream_id,
                coupon_code=coupon(),
            )
        )
        links.append(
            LinkSpec(
                f"L{len(links)}",
                s.brand_id,
                s.creator_id,
                s.campaign_id,
                f"https://shop{i}.example/products/{prod.product_id}?live=1",
                stream_id=s.stream_id,
                product_id=prod.product_id,
            )
        )
    return SetupPlan(brands, creators, tuple(campaigns), tuple(products), tuple(streams), tuple(links))


@dataclass
class _Timeline:
    """Everything one stream plans, before it is cut into ticks."""

    tick_ms: int
    events: dict[int, list[PlannedEvent]] = field(default_factory=lambda: defaultdict(list))
    redirects: dict[int, list[PlannedRedirect]] = field(default_factory=lambda: defaultdict(list))
    webhooks: dict[int, list[WebhookOp]] = field(default_factory=lambda: defaultdict(list))

    def tick(self, sim_ms: int) -> int:
        return max(0, sim_ms) // self.tick_ms


class _StreamPlanner:
    def __init__(self, cfg: SimConfig, setup: SetupPlan, k: int, rng: random.Random, viewer_pool: list[str]) -> None:
        self.cfg, self.setup, self.k, self.rng = cfg, setup, k, rng
        self.stream = setup.streams[k]
        creator_index = next(j for j, c in enumerate(setup.creators) if c.creator_id == self.stream.creator_id)
        self.cart_to_order = CART_TO_ORDER_BY_CREATOR[creator_index % len(CART_TO_ORDER_BY_CREATOR)]
        self.brand = next(b for b in setup.brands if b.brand_id == self.stream.brand_id)
        self.products = [pr for pr in setup.products if pr.brand_id == self.brand.brand_id]
        self.featured = rng.sample(self.products, min(4, len(self.products)))
        self.tl = _Timeline(int(cfg.tick_seconds * 1000))
        self.viewer_pool = viewer_pool
        self.extras_rng = random.Random(f"{cfg.seed}:shopify-extras:{k}")
        self.pfx = f"{cfg.id_prefix}-s{k}"
        self.n = 0
        self.shop_ids = 0
        self.click_orders = 0

    # ids ---------------------------------------------------------------------------------------
    def _id(self, kind: str) -> str:
        self.n += 1
        return f"{self.pfx}-{kind}{self.n}"

    def _shopify_int(self) -> int:
        self.shop_ids += 1
        return 7_000_000_000_000 + self.k * 10_000_000 + self.shop_ids

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # events ------------------------------------------------------------------------------------
    def _late(self) -> int:
        return -self.rng.randint(MINUTE_MS, 20 * MINUTE_MS) if self.rng.random() < self.cfg.late_rate else 0

    def _event(
        self,
        type_: str,
        viewer: str,
        sim_ms: int,
        *,
        action: str | None = None,
        product_id: str | None = None,
        campaign_id: str | None = None,
        offset_ms: int | None = None,
    ) -> PlannedEvent:
        ev = PlannedEvent(
            self._id("e"),
            type_,
            self.brand.brand_id,
            self.stream.stream_id,
            viewer,
            sim_ms,
            self._late() if offset_ms is None else offset_ms,
            action=action,
            product_id=product_id,
            campaign_id=campaign_id,
        )
        self.tl.events[self.tl.tick(sim_ms)].append(ev)
        if self.rng.random() < self.cfg.invalid_rate:
            self._invalid(sim_ms)
        return ev

    def _invalid(self, sim_ms: int) -> None:
        why = self.rng.choice(["bad_action", "future", "bad_id", "unknown_type"])
        eid = self._id("x")
        viewer = f"{self.pfx}-junk{self.n}"
        ev = {
            "bad_action": PlannedEvent(
                eid, "view", self.brand.brand_id, self.stream.stream_id, viewer, sim_ms, action="dance", invalid=why
            ),
            "future": PlannedEvent(
                eid,
                "view",
                self.brand.brand_id,
                self.stream.stream_id,
                viewer,
                sim_ms,
                offset_ms=10 * MINUTE_MS,
                action="heartbeat",
                invalid=why,
            ),
            "bad_id": PlannedEvent(
                eid + " DROP TABLE",
                "view",
                self.brand.brand_id,
                self.stream.stream_id,
                viewer,
                sim_ms,
                action="heartbeat",
                invalid=why,
            ),
            "unknown_type": PlannedEvent(
                eid, "purchase", self.brand.brand_id, self.stream.stream_id, viewer, sim_ms, invalid=why
            ),
        }[why]
        self.tl.events[self.tl.tick(sim_ms)].append(ev)

    # orders ------------------------------------------------------------------------------------
    def _lines(self, first: str | None, catalog: list[ProductSpec]) -> tuple[OrderLine, ...]:
        chosen = [p for p in catalog if p.product_id == first][:1]
        extra = [p for p in catalog if p not in chosen]
        chosen += self.rng.sample(extra, self.rng.choices([0, 1, 2, 3], [50, 30, 15, 5])[0])
        return tuple(
            OrderLine(self._shopify_int(), p.product_id, self.rng.choices([1, 2, 3], [75, 20, 5])[0], p.price_minor)
            for p in chosen
        )

    def _coupons(self, brand_id: str) -> list[str]:
        return [lk.coupon_code for lk in self.setup.links if lk.brand_id == brand_id and lk.coupon_code]

    def order(
        self,
        sim_ms: int,
        kind: str,
        first_product: str | None = None,
        *,
        brand: BrandSpec | None = None,
        click_event_id: str | None = None,
        click_redirect_slot: str | None = None,
        coupon: bool | None = None,
        offset_ms: int = 0,
        min_after_click_ms: int | None = 1000,
    ) -> None:
        brand = brand or self.brand
        catalog = [p for p in self.setup.products if p.brand_id == brand.brand_id]
        if first_product is None:
            first_product = self.rng.choice(catalog).product_id
        lines = self._lines(first_product, catalog)
        items = sum(ln.quantity * ln.unit_price_minor for ln in lines)
        use_coupon = self.rng.random() < self.cfg.coupon_rate if coupon is None else coupon
        coupons = self._coupons(brand.brand_id)
        code = self.rng.choice(coupons) if use_coupon and coupons else None
        if code:
            discount = items // 10
        elif self.rng.random() < 0.15:
            discount = items * 5 // 100
        else:
            discount = 0
        unit = _unit(brand.currency)
        source: Source = "shopify" if self.rng.random() < self.cfg.shopify_rate else "native"
        order_id = str(self._shopify_int()) if source == "shopify" else self._id("o")
        order = PlannedOrder(
            event_id=self._id("oe"),
            brand_id=brand.brand_id,
            order_id=order_id,
            sim_ms=sim_ms,
            offset_ms=offset_ms,
            currency=brand.currency,
            lines=lines,
            discount_minor=discount,
            tax_minor=(items - discount) * 8 // 100,
            shipping_minor=self.rng.choice([0, 0, 5 * unit]),
            source=source,
            kind=kind,
            click_event_id=click_event_id,
            click_redirect_slot=click_redirect_slot,
            coupon_code=code,
            click_via=self.rng.choice(["note", "landing"]),
            webhook_id=self._uuid() if source == "shopify" else "",
            min_after_click_ms=min_after_click_ms,
        )
        self._webhook(self.tl.tick(sim_ms), 3, order=order)
        if self.rng.random() < self.cfg.dup_rate * 0.2:  # same order_id under a new event / webhook id
            again = replace(order, event_id=self._id("oe"), webhook_id=self._uuid() if order.webhook_id else "")
            self._webhook(self.tl.tick(sim_ms) + self.rng.randint(0, 2), 4, order=again)
        if self.rng.random() < self.cfg.refund_rate:
            self._refunds(order, items - discount)
        if source == "shopify":
            self._shopify_extras(order)

    def _shopify_extras(self, order: PlannedOrder) -> None:
        """What a real shop also sends (contract "Shopify as it really sends"): cancellations,
        test orders and topics we do not book. A random stream of its own, as for hygiene."""
        rng = self.extras_rng

        def webhook_id() -> str:
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))

        if rng.random() < SHOPIFY_CANCEL_RATE:
            when = order.sim_ms + rng.randint(60_000, 600_000)
            cancel = PlannedCancel(order.brand_id, order, when, webhook_id())
            self.tl.webhooks[self.tl.tick(when)].append(WebhookOp(4, cancel=cancel))
            if rng.random() < 0.3:  # Shopify re-delivers it (same webhook id)
                self.tl.webhooks[self.tl.tick(when) + 1].append(WebhookOp(5, cancel=cancel, resend=True))
        if rng.random() < SHOPIFY_NOISE_RATE:
            test = replace(order, order_id=str(self._shopify_int()), webhook_id=webhook_id())
            self.tl.webhooks[self.tl.tick(order.sim_ms)].append(WebhookOp(3, order=test, ignored="test"))
        if rng.random() < SHOPIFY_NOISE_RATE:
            topic = rng.choice(["orders/updated", "orders/paid", "customers/update", "fulfillments/create"])
            other = replace(order, webhook_id=webhook_id())
            self.tl.webhooks[self.tl.tick(order.sim_ms) + 1].append(WebhookOp(5, order=other, ignored=topic))

    def _refunds(self, order: PlannedOrder, net: int) -> None:
        n_refunds = 2 if self.rng.random() < 0.15 else 1
        for r in range(n_refunds):
            full = r == 0 and n_refunds == 1 and self.rng.random() < 0.4
            sim_ms = order.sim_ms + self.rng.randint(30_000, 300_000)
            early = self.rng.random() < EARLY_REFUND_RATE
            if order.source == "native":
                amount = net if full else self.rng.randint(1, max(1, net // 2))
                refund = PlannedRefund(
                    self._id("re"), order.brand_id, order.order_id, self._id("r"), sim_ms, "native", amount
                )
            else:
                refund = self._shopify_refund(order, net, full, sim_ms)
            tick = self.tl.tick(order.sim_ms) if early else self.tl.tick(sim_ms)
            self._webhook(tick, 2 if early else 4, refund=refund)
            if self.rng.random() < self.cfg.dup_rate * 0.2:  # same refund_id under a new event id
                again = replace(refund, event_id=self._id("re"), webhook_id=self._uuid() if refund.webhook_id else "")
                self._webhook(self.tl.tick(sim_ms) + 1, 4, refund=again)

    def _shopify_refund(self, order: PlannedOrder, net: int, full: bool, sim_ms: int) -> PlannedRefund:
        with_subtotal = self.rng.random() < 0.7
        if full:
            lines, left = [], order.discount_minor
            for ln in order.lines:
                gross = ln.quantity * ln.unit_price_minor
                alloc = min(left, gross)
                left -= alloc
                lines.append(
                    RefundLine(ln.line_id, ln.quantity, ln.unit_price_minor, gross - alloc if with_subtotal else None)
                )
        else:
            ln = self.rng.choice(order.lines)
            lines = [RefundLine(ln.line_id, 1, ln.unit_price_minor, ln.unit_price_minor if with_subtotal else None)]
        amount = sum(
            x.subtotal_minor if x.subtotal_minor is not None else x.quantity * x.unit_price_minor for x in lines
        )
        rid = self._shopify_int()
        return PlannedRefund(
            self._id("re"),
            order.brand_id,
            order.order_id,
            str(rid),
            sim_ms,
            "shopify",
            amount,
            tuple(lines),
            self._uuid(),
        )

    def _webhook(
        self, tick: int, phase: int, *, order: PlannedOrder | None = None, refund: PlannedRefund | None = None
    ) -> None:
        op = WebhookOp(phase, order, refund, retry=self.rng.random() < self.cfg.retry_rate)
        self.tl.webhooks[tick].append(op)
        if self.rng.random() < self.cfg.dup_rate:
            self.tl.webhooks[tick + self.rng.randint(0, 2)].append(WebhookOp(5, order, refund, resend=True))

    # the show ----------------------------------------------------------------------------------
    def run(self) -> StreamPlan:
        rng, cfg = self.rng, self.cfg
        duration = int(cfg.minutes * MINUTE_MS * rng.uniform(0.85, 1.0))
        hb = int(cfg.tick_seconds * 1000)
        stream_links = [lk for lk in self.setup.links if lk.stream_id == self.stream.stream_id]
        brand_links = [lk for lk in self.setup.links if lk.brand_id == self.brand.brand_id and not lk.stream_id]
        weights = [4, 3, 2, 1][: len(self.featured)]
        held: list[PlannedEvent] = []
        for viewer in rng.sample(self.viewer_pool, min(cfg.viewers, len(self.viewer_pool))):
            start = int(duration * rng.random() ** 1.6)
            sessions = 2 if rng.random() < 0.1 else 1
            for _ in range(sessions):
                if start >= duration:
                    break
                stays = rng.random() < 0.15
                end = duration if stays else min(duration, start + int(rng.expovariate(1 / (duration * 0.35))) + 1000)
                self._event("view", viewer, start, action="join")
                t = start + hb + rng.randint(-2000, 2000)
                while t < end:
                    self._event("view", viewer, t, action="heartbeat")
                    t += hb + rng.randint(-2000, 2000)
                if not stays:
                    self._event("view", viewer, end, action="leave")
                for _ in range(rng.choices([0, 1, 2, 3], [50, 32, 13, 5])[0]):
                    tap = rng.randint(start, max(start, end - 1))
                    product = rng.choices(self.featured, weights)[0].product_id
                    if rng.random() < 0.25 and stream_links:
                        slot = self._redirect(rng.choice(stream_links), tap)
                        if rng.random() < 0.15:
                            self.order(
                                tap + rng.randint(30_000, 180_000), "redirect", product, click_redirect_slot=slot
                            )
                        continue
                    campaign = self.stream.campaign_id if rng.random() < 0.8 else self.stream.alt_campaign_id
                    click = self._event("click", viewer, tap, product_id=product, campaign_id=campaign)
                    if rng.random() >= 0.4:
                        continue
                    cart = tap + rng.randint(5_000, 60_000)
                    self._event("add_to_cart", viewer, cart, product_id=product)
                    if rng.random() < self.cart_to_order:
                        self.click_orders += 1
                        when = cart + rng.randint(10_000, 120_000)
                        if rng.random() < cfg.edge_rate:
                            self._edge(viewer, when, product)
                            continue
                        self.order(when, "click", product, click_event_id=click.event_id)
                        if rng.random() < HELD_CLICK_RATE:
                            held.append(click)
                start = end + int(rng.expovariate(1 / 60_000))
        for _ in range(max(1, cfg.viewers // 10)):  # affiliate traffic to the brand's other links
            slot = self._redirect(rng.choice(brand_links), rng.randint(0, duration))
            if rng.random() < 0.2:
                self.order(
                    self._redirect_time(slot) + rng.randint(30_000, 300_000), "redirect", click_redirect_slot=slot
                )
        self._hygiene_traffic()
        base = max(self.click_orders, 5)
        for _ in range(int(base * cfg.coupon_rate + rng.random())):
            when = rng.randint(0, duration)
            self.order(when, "coupon", coupon=True, offset_ms=self._late())
        for _ in range(int(base * 0.1 + rng.random())):
            self.order(rng.randint(0, duration), "none", coupon=False, offset_ms=self._late())
        return self._cut(held)

    def _redirect_time(self, slot: str) -> int:
        return next(r.sim_ms for rs in self.tl.redirects.values() for r in rs if r.slot == slot)

    def _hygiene_traffic(self) -> None:
        """What real links get besides people (contract "Click hygiene"): link-preview bots that
        unfurl a shared link, and people who open it again within the hour. Drawn from a random
        stream of its own, so the rest of the plan does not change with these rates."""
        rng = random.Random(f"{self.cfg.seed}:hygiene:{self.k}")
        for planned in list(self.tl.redirects.values()):
            for r in list(planned):
                if r.bot or r.client:
                    continue
                if rng.random() < BOT_REDIRECT_RATE:
                    when = max(0, r.sim_ms - rng.randint(1_000, 30_000))  # the preview comes first
                    self.tl.redirects[self.tl.tick(when)].append(
                        PlannedRedirect(self._id("rb"), r.link_key, when, bot=True))
                if rng.random() < REPEAT_REDIRECT_RATE:
                    when = r.sim_ms + rng.randint(5_000, 120_000)
                    self.tl.redirects[self.tl.tick(when)].append(
                        PlannedRedirect(self._id("rr"), r.link_key, when, client=r.slot))

    def _redirect(self, link: LinkSpec, sim_ms: int) -> str:
        slot = self._id("rd")
        self.tl.redirects[self.tl.tick(sim_ms)].append(PlannedRedirect(slot, link.key, sim_ms))
        return slot

    def _edge(self, viewer: str, when: int, product: str) -> None:
        rng = self.rng
        kinds = ["stale", "near_window", "click_after_order"]
        if len(self.setup.brands) > 1:
            kinds.append("cross_brand")
        kind = rng.choice(kinds)
        if kind == "stale":  # a click older than the 1-day window of its campaign: falls to coupon or none
            click = self._event(
                "click",
                viewer,
                when - 60_000,
                product_id=product,
                campaign_id=self.stream.alt_campaign_id,
                offset_ms=-2 * DAY_MS,
            )
            self.order(
                when, kind, product, click_event_id=click.event_id, coupon=rng.random() < 0.5, min_after_click_ms=None
            )
        elif kind == "near_window":  # 29 days old, inside the 30-day window of cmp0: still attributes
            cmp0 = self.stream.alt_campaign_id.rsplit("-cmp", 1)[0] + "-cmp0"
            click = self._event(
                "click", viewer, when - 60_000, product_id=product, campaign_id=cmp0, offset_ms=-29 * DAY_MS
            )
            self.order(when, kind, product, click_event_id=click.event_id, min_after_click_ms=None)
        elif kind == "click_after_order":  # the click happened after the order: does not attribute
            later = PlannedEvent(
                self._id("e"),
                "click",
                self.brand.brand_id,
                self.stream.stream_id,
                viewer,
                when,
                60_000,
                product_id=product,
                campaign_id=self.stream.campaign_id,
            )
            self.order(when, kind, product, click_event_id=later.event_id, min_after_click_ms=None)
            self.tl.events[self.tl.tick(when) + 1].append(later)
        else:  # an order at another brand carrying this brand's click id
            others = [b for b in self.setup.brands if b.brand_id != self.brand.brand_id]
            click = self._event("click", viewer, when - 60_000, product_id=product, campaign_id=self.stream.campaign_id)
            self.order(when, kind, brand=rng.choice(others), click_event_id=click.event_id)

    # cutting into ticks ------------------------------------------------------------------------
    def _cut(self, held: list[PlannedEvent]) -> StreamPlan:
        tl, rng = self.tl, self.rng
        held_ids = {e.event_id for e in held}
        orders_tick: dict[str, int] = {}  # held click -> tick of its order's first delivery
        for t, ws in sorted(tl.webhooks.items()):
            for w in ws:
                if w.order and not w.resend and w.order.click_event_id in held_ids:
                    orders_tick.setdefault(w.order.click_event_id, t)
        moves: list[tuple[int, PlannedEvent]] = []
        for t in sorted(tl.events):  # held clicks move to the tick after their order
            moves += [(max(t, orders_tick.get(e.event_id, t)) + 1, e) for e in tl.events[t] if e.event_id in held_ids]
            tl.events[t] = [e for e in tl.events[t] if e.event_id not in held_ids]
        for t, e in moves:
            tl.events[t].append(e)
        dups: list[tuple[int, PlannedEvent]] = []
        for t, evs in sorted(tl.events.items()):
            dups += [(t + rng.randint(1, 2), e) for e in evs if not e.invalid and rng.random() < self.cfg.dup_rate]
        for t, e in dups:
            tl.events[t].append(e)
        last = max([*tl.events, *tl.redirects, *tl.webhooks, 0])
        ticks: list[TickPlan] = []
        carry: list[PlannedEvent] = []
        for t in range(last + 1):
            evs = carry + sorted(tl.events.get(t, []), key=lambda e: (e.sim_ms, e.event_id))
            carry = []
            batches: list[BatchOp] = []
            if len(evs) < MIN_BATCH and t < last:
                carry = evs
            elif evs:
                size = rng.randint(200, MAX_BATCH)
                n = -(-len(evs) // size)
                step = -(-len(evs) // n)
                batches = [
                    BatchOp(tuple(evs[i : i + step]), rng.random() < self.cfg.retry_rate)
                    for i in range(0, len(evs), step)
                ]
            ticks.append(
                TickPlan(
                    t,
                    (t + 1) * tl.tick_ms,
                    tuple(sorted(tl.redirects.get(t, []), key=lambda r: r.sim_ms)),
                    tuple(batches),
                    tuple(sorted(tl.webhooks.get(t, []), key=lambda w: w.phase)),
                )
            )
        return StreamPlan(self.stream.stream_id, self.brand.brand_id, tuple(ticks))


def build_plan(cfg: SimConfig) -> Plan:
    """The whole day. ``cfg`` must be ``resolved()`` (its id prefix fixed)."""
    if not cfg.id_prefix:
        raise ValueError("resolve the config first (id prefix)")
    rng = random.Random(cfg.seed)
    setup = build_setup(cfg, rng)
    pool = [f"{cfg.id_prefix}-v{n}" for n in range(max(cfg.viewers, int(cfg.viewers * cfg.streams * 0.7)))]
    streams = tuple(
        _StreamPlanner(cfg, setup, k, random.Random(rng.getrandbits(64)), pool).run() for k in range(cfg.streams)
    )
    return Plan(cfg.seed, cfg.id_prefix, setup, streams)
