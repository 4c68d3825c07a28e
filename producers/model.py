"""The planned live-shopping day: setup entities and per-stream ticks of requests.

Everything here is pure data built from the seed (``producers.plan``). Wall-clock times and
server-assigned values (link codes, redirect click ids, keys) are bound only when a request is sent,
so the same seed and id prefix always plan the identical sequence of events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["native", "shopify"]


@dataclass(frozen=True)
class BrandSpec:
    brand_id: str
    name: str
    currency: str


@dataclass(frozen=True)
class CreatorSpec:
    creator_id: str
    name: str


@dataclass(frozen=True)
class CampaignSpec:
    campaign_id: str
    brand_id: str
    rate_bps: int
    flat_minor: int
    attribution_window_days: int
    hold_days: int
    min_payout_minor: int


@dataclass(frozen=True)
class ProductSpec:
    product_id: str  # also the order line's sku
    brand_id: str
    price_minor: int


@dataclass(frozen=True)
class StreamSpec:
    stream_id: str
    brand_id: str
    creator_id: str
    title: str
    campaign_id: str  # what the player sends with most clicks
    alt_campaign_id: str  # a second campaign some product taps carry


@dataclass(frozen=True)
class LinkSpec:
    key: str  # plan-local name; the server assigns the link_code
    brand_id: str
    creator_id: str
    campaign_id: str
    destination_url: str
    product_id: str | None = None
    stream_id: str | None = None
    coupon_code: str | None = None


@dataclass(frozen=True)
class SetupPlan:
    brands: tuple[BrandSpec, ...]
    creators: tuple[CreatorSpec, ...]
    campaigns: tuple[CampaignSpec, ...]
    products: tuple[ProductSpec, ...]
    streams: tuple[StreamSpec, ...]
    links: tuple[LinkSpec, ...]


@dataclass(frozen=True)
class PlannedEvent:
    """A /v1/events item. ``sim_ms`` is stream time; ``offset_ms`` shifts the wall time (late events)."""

    event_id: str
    type: str  # view | click | add_to_cart (anything else only for invalid events)
    brand_id: str
    stream_id: str
    viewer_id: str
    sim_ms: int
    offset_ms: int = 0
    action: str | None = None
    product_id: str | None = None
    campaign_id: str | None = None
    invalid: str | None = None  # why the server must reject it


@dataclass(frozen=True)
class PlannedRedirect:
    """A viewer opening ``/l/{code}``; the click id comes back in the 302's Location."""

    slot: str
    link_key: str
    sim_ms: int
    # Who opens the link (the simulator maps it to a User-Agent and an IP, docs/simulator.md):
    # "" = a client of its own (the slot); another redirect's slot = that client again (a repeat
    # within the hour: ingest answers with the first click id and counts no click).
    client: str = ""
    bot: bool = False  # a link-preview bot: the 302 carries no click


@dataclass(frozen=True)
class OrderLine:
    line_id: int
    sku: str
    quantity: int
    unit_price_minor: int


@dataclass(frozen=True)
class PlannedOrder:
    event_id: str  # native event_id; Shopify uses the webhook id
    brand_id: str
    order_id: str  # str(shopify_order_id) for Shopify orders
    sim_ms: int
    offset_ms: int
    currency: str
    lines: tuple[OrderLine, ...]
    discount_minor: int
    tax_minor: int
    shipping_minor: int
    source: Source
    kind: str  # why it exists: click | redirect | coupon | none | stale | near_window | cross_brand | ...
    click_event_id: str | None = None
    click_redirect_slot: str | None = None
    coupon_code: str | None = None
    click_via: Literal["note", "landing"] = "note"  # Shopify: where the click id travels
    webhook_id: str = ""  # Shopify X-Shopify-Webhook-Id
    min_after_click_ms: int | None = 1000  # order time >= click time + this; None: leave as planned


@dataclass(frozen=True)
class RefundLine:
    line_id: int
    quantity: int
    unit_price_minor: int
    subtotal_minor: int | None  # None: Shopify payload omits subtotal (amount = price x quantity)


@dataclass(frozen=True)
class PlannedRefund:
    event_id: str
    brand_id: str
    order_id: str
    refund_id: str  # str(shopify refund id) for Shopify
    sim_ms: int
    source: Source
    amount_minor: int  # native amount; for Shopify the amount its lines imply
    lines: tuple[RefundLine, ...] = ()
    webhook_id: str = ""


@dataclass(frozen=True)
class PlannedCancel:
    """Shopify ``orders/cancelled`` for an order planned earlier (net becomes 0)."""

    brand_id: str
    order: PlannedOrder
    sim_ms: int
    webhook_id: str


@dataclass(frozen=True)
class BatchOp:
    events: tuple[PlannedEvent, ...]
    retry: bool = False  # sent twice: the first answer is treated as a timeout


@dataclass(frozen=True)
class WebhookOp:
    """An order or refund webhook. Phases order a tick: 2 early refunds, 3 orders, 4 refunds and
    same-id-new-event duplicates, 5 re-deliveries."""

    phase: int
    order: PlannedOrder | None = None
    refund: PlannedRefund | None = None
    retry: bool = False
    resend: bool = False  # a duplicate delivery of a webhook planned earlier
    cancel: PlannedCancel | None = None
    # Shopify deliveries that must be acknowledged and booked as nothing: "test" (a test order
    # of ``order``, "test": true) or another topic name (e.g. "customers/update")
    ignored: str = ""


@dataclass(frozen=True)
class TickPlan:
    index: int
    end_sim_ms: int  # the tick is sent once this much stream time has elapsed
    redirects: tuple[PlannedRedirect, ...]
    batches: tuple[BatchOp, ...]
    webhooks: tuple[WebhookOp, ...]


@dataclass(frozen=True)
class StreamPlan:
    stream_id: str
    brand_id: str
    ticks: tuple[TickPlan, ...]


@dataclass(frozen=True)
class Plan:
    seed: int
    id_prefix: str
    setup: SetupPlan
    streams: tuple[StreamPlan, ...]

    def requests(self) -> int:
        """Planned HTTP requests after setup (progress-bar total; retries count twice)."""
        n = 0
        for stream in self.streams:
            for tick in stream.ticks:
                n += len(tick.redirects)
                n += sum(2 if b.retry else 1 for b in tick.batches)
                n += sum(2 if w.retry else 1 for w in tick.webhooks)
        return n
