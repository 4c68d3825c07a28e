"""Order-side state machine (pure): de-dup, attribution, commission versions, refunds.

The Faust agent keeps the state in tables passed here as plain mutable mappings (unit tests use
dicts). Every state change is an idempotent "set" so that replaying a record after a crash (Faust
delivers at least once, changelog and offsets are not atomic) converges on the same state. Each
record's *effect* is the order's full current snapshot with a version number that only grows when
the snapshot changes; sinks apply a snapshot only if its version is newer (Redis Lua, ClickHouse
ReplacingMergeTree), so re-emitting a snapshot is harmless.

Table layouts (values are JSON-friendly dicts; keys are ``"<brand_id>:<id>"``):

- ``clicks[brand:click_id]`` = ``{creator_id, campaign_id, stream_id, product_id, link_code, occurred_ms, src}``
- ``orders[brand:order_id]`` = ``{order|None, src, refunds: {refund_id: {...}}, attr, version, snap}``
  (a refund for an unknown order creates the entry with ``order = None``: it waits there)
- ``waiting[brand:click_id]`` = ``[order_id, ...]`` orders whose click had not arrived yet
- ``seen[brand:event_id]`` = ``"o:<order_id>"`` / ``"r:<refund_id>"`` (de-dup by event / webhook id)
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from liveledger.domain import attribution as dom_attr
from liveledger.domain.commission import OrderState
from liveledger.setup_state import campaign_terms
from schemas.time import from_ms, to_ms
from schemas.wire import (
    CancelRecord,
    LedgerOrderFact,
    LedgerRefundFact,
    OrderRecord,
    RefundRecord,
    WireClickEvent,
)

DAY_MS = 24 * 3600 * 1000
DEFAULT_WINDOW_DAYS = dom_attr.DEFAULT_ATTRIBUTION_WINDOW_DAYS
DEFAULT_HOLD_DAYS = dom_attr.DEFAULT_HOLD_DAYS

Table = MutableMapping[str, Any]


class SetupView(Protocol):
    """What attribution needs from the setup entities (``liveledger.setup_state.SetupState``)."""

    campaigns: dict[str, dict[str, Any]]

    def link_for_coupon(self, brand_id: str, code: str) -> dict[str, Any] | None: ...


@dataclass(slots=True)
class Tables:
    clicks: Table
    orders: Table
    waiting: Table
    seen: Table


@dataclass(slots=True)
class Effects:
    """What one record changes outside the tables."""

    snapshots: list[dict[str, Any]] = field(default_factory=list)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, n: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + n

    def __bool__(self) -> bool:
        return bool(self.snapshots or self.refunds or self.stats)


def _campaign_lookup(setup: SetupView) -> dom_attr.CampaignLookup:
    def lookup(campaign_id: str) -> dom_attr.CampaignTerms | None:
        camp = setup.campaigns.get(campaign_id)
        return None if camp is None else campaign_terms(campaign_id, camp)  # with its end and pauses
    return lookup


def attribute(order: dict[str, Any], click: dict[str, Any] | None, setup: SetupView) -> dict[str, Any]:
    """Contract rules via :func:`liveledger.domain.attribution.attribute`; the campaign terms are
    frozen into the result so later setup edits do not rewrite past commissions."""
    brand_id = order["brand_id"]
    click_fact = None
    if click is not None and click.get("creator_id"):
        click_fact = dom_attr.ClickFact(
            click_id=order["click_id"], brand_id=brand_id, creator_id=click["creator_id"],
            campaign_id=click.get("campaign_id"), stream_id=click.get("stream_id"),
            product_id=click.get("product_id"), occurred_at=from_ms(click["occurred_ms"]))
    coupon_link = None
    if order.get("coupon_code"):
        link = setup.link_for_coupon(brand_id, order["coupon_code"])
        if link is not None and link.get("creator_id") and link.get("campaign_id"):
            coupon_link = dom_attr.CouponLink(
                brand_id=str(link.get("brand_id", brand_id)), coupon_code=order["coupon_code"],
                creator_id=link["creator_id"], campaign_id=link["campaign_id"],
                link_code=str(link.get("link_code", "")), stream_id=link.get("stream_id"),
                deactivated_at=link.get("deactivated_at"))
    lookup = _campaign_lookup(setup)
    a = dom_attr.attribute(brand_id, from_ms(order["occurred_ms"]), click_fact, coupon_link, lookup)
    terms = lookup(a.campaign_id) if a.campaign_id else None
    link_code = None
    if a.kind == "click" and click is not None:
        link_code = click.get("link_code")
    elif a.kind == "coupon" and coupon_link is not None:
        link_code = coupon_link.link_code or None
    return {
        "via": None if a.kind == "none" else a.kind,
        "creator_id": a.creator_id, "campaign_id": a.campaign_id, "stream_id": a.stream_id,
        "click_id": a.click_id, "link_code": link_code,
        "rate_bps": terms.rate_bps if terms else 0,
        "flat_minor": terms.flat_minor if terms else 0,
        "hold_days": terms.hold_days if terms else DEFAULT_HOLD_DAYS,
    }


def priced(order: dict[str, Any], attr: dict[str, Any], refunds: dict[str, int]) -> OrderState:
    """The domain's :class:`OrderState` of an order's state: net, commission and reversed come from
    :mod:`liveledger.domain.commission` (the one place the money rules live). ``gross_minor`` is
    already net of the order-level discount; ``attr`` holds the terms frozen at attribution."""
    attribution = dom_attr.UNATTRIBUTED
    terms = None
    if attr["via"]:
        attribution = dom_attr.Attribution(
            kind=attr["via"], creator_id=attr["creator_id"], campaign_id=attr["campaign_id"],
            stream_id=attr["stream_id"], click_id=attr["click_id"] if attr["via"] == "click" else None)
        if attr["campaign_id"]:
            terms = dom_attr.CampaignTerms(campaign_id=attr["campaign_id"], brand_id=order["brand_id"],
                                           rate_bps=attr["rate_bps"], flat_minor=attr["flat_minor"],
                                           hold_days=attr["hold_days"])
    return OrderState(brand_id=order["brand_id"], order_id=order["order_id"], currency=order["currency"],
                      occurred_at=from_ms(order["occurred_ms"]), gross_items_minor=order["gross_minor"],
                      discount_minor=0, attribution=attribution, terms=terms, refunds=refunds)


def snapshot(state: dict[str, Any]) -> dict[str, Any]:
    """The order's ledger view (without version) from its state."""
    order, attr = state["order"], state["attr"]
    refunds = {rid: r["amount_minor"] for rid, r in state["refunds"].items() if refund_applies(r, order)}
    cancelled = cancellation_minor(state)
    if cancelled:
        refunds[cancel_refund_id(order["order_id"])] = cancelled
    money = priced(order, attr, refunds)
    return {
        "brand_id": order["brand_id"],
        "order_id": order["order_id"],
        "occurred_ms": order["occurred_ms"],
        "currency": order["currency"],
        "gross_minor": order["gross_minor"],
        "refunded_minor": money.refunds_total_minor,
        "net_minor": money.net_minor,
        "via": attr["via"],
        "creator_id": attr["creator_id"],
        "campaign_id": attr["campaign_id"],
        "stream_id": attr["stream_id"],
        "click_id": order["click_id"],
        "coupon_code": order["coupon_code"],
        "link_code": attr.get("link_code"),
        "rate_bps": attr["rate_bps"],
        "flat_minor": attr["flat_minor"],
        "hold_days": attr["hold_days"],
        "commission_minor": money.commission_minor,
        "reversed_minor": money.reversed_minor,
        "skus": order["skus"],
        "lines": order.get("lines") or {},  # sku -> Σ quantity x unit price (before discount and refunds)
        "source": order["source"],
    }


def cancel_refund_id(order_id: str) -> str:
    """The refund id a cancellation is booked under: unique per brand like every refund id (the
    refunds table is keyed by brand and refund id), so it names the order (hashed when long)."""
    if len(order_id) <= 120:
        return f"cancel:{order_id}"
    return "cancel:" + hashlib.sha256(order_id.encode()).hexdigest()[:40]


def cancellation_minor(state: dict[str, Any]) -> int:
    """What a cancellation takes off the order: the net left after its other refunds (so the net
    becomes exactly 0, like a full refund); 0 when the order is not cancelled or not seen yet."""
    order = state.get("order")
    if not state.get("cancel") or order is None:
        return 0
    refunded = sum(r["amount_minor"] for r in state["refunds"].values() if refund_applies(r, order))
    return max(0, int(order["gross_minor"]) - int(refunded))


def refund_applies(refund: dict[str, Any], order: dict[str, Any]) -> bool:
    """A refund in another currency than its order is never netted against it (amounts of different
    currencies are never added); it is kept in the state, counted as ``refunds_currency_mismatch``."""
    currency = refund.get("currency")
    return currency is None or currency == order["currency"]


def _publish(state: dict[str, Any], fx: Effects) -> dict[str, Any]:
    """Recompute the snapshot; bump the version only if it changed; always emit the current one."""
    snap = snapshot(state)
    if snap != state.get("snap"):
        state = {**state, "snap": snap, "version": int(state.get("version", 0)) + 1}
    fx.snapshots.append({**snap, "version": state["version"]})
    return state


def _refund_fact(brand_id: str, order_id: str, refund_id: str, r: dict[str, Any], currency: str) -> dict[str, Any]:
    return {"brand_id": brand_id, "order_id": order_id, "refund_id": refund_id,
            "amount_minor": r["amount_minor"], "currency": currency, "occurred_ms": r["occurred_ms"]}


def _seen(t: Tables, brand_id: str, event_id: str, ref: str, fx: Effects, kind: str) -> bool:
    """De-dup by event id (Shopify webhook id): True if this event id already named something else."""
    key = f"{brand_id}:{event_id}"
    prior = t.seen.get(key)
    if prior is None:
        t.seen[key] = ref
        return False
    if prior != ref:
        fx.count(f"{kind}_deduplicated")
        return True
    return False


def _order_state(t: Tables, key: str) -> dict[str, Any]:
    """The order's state, or an empty one (no order yet: refunds may wait in it)."""
    state: dict[str, Any] = t.orders.get(key) or {"order": None, "src": None, "refunds": {}, "version": 0,
                                                 "snap": None, "attr": None}
    return state


def on_order(t: Tables, setup: SetupView, o: OrderRecord, src: str) -> Effects:
    """``src`` = "topic:partition:offset" of the record, so a replay is told apart from a duplicate."""
    fx = Effects()
    fx.count("orders_received")
    if _seen(t, o.brand_id, o.event_id, f"o:{o.order_id}", fx, "orders"):
        return fx
    key = f"{o.brand_id}:{o.order_id}"
    state: dict[str, Any] = _order_state(t, key)
    if state["order"] is not None:
        if state["src"] != src:
            fx.count("orders_deduplicated")
        else:
            fx.count("orders_accepted")
        state = _publish(state, fx)
        t.orders[key] = state
        return fx
    fx.count("orders_accepted")
    order = {
        "brand_id": o.brand_id, "order_id": o.order_id, "event_id": o.event_id, "click_id": o.click_id,
        "coupon_code": o.coupon_code, "occurred_ms": to_ms(o.occurred_at), "currency": o.currency,
        "gross_minor": o.net_items_minor(), "skus": o.skus, "source": o.source, "lines": o.line_revenue(),
    }
    click = t.clicks.get(f"{o.brand_id}:{o.click_id}") if o.click_id else None
    if o.click_id and click is None:
        wkey = f"{o.brand_id}:{o.click_id}"
        waiting = list(t.waiting.get(wkey) or [])
        if o.order_id not in waiting:
            t.waiting[wkey] = [*waiting, o.order_id]
    state = {**state, "order": order, "src": src, "attr": attribute(order, click, setup)}
    state = _publish(state, fx)
    for rid, r in sorted(state["refunds"].items()):
        if refund_applies(r, order):
            fx.refunds.append(_refund_fact(o.brand_id, o.order_id, rid, r, o.currency))
        else:
            fx.count("refunds_currency_mismatch")
    _cancel_fact(state, fx)
    t.orders[key] = state
    return fx


def _cancel_fact(state: dict[str, Any], fx: Effects, keep_zero: bool = False) -> None:
    """The refund fact of a cancellation (what it reversed), once the order is known; ``keep_zero``:
    also when it now reverses nothing (a later refund took the rest: its row shrinks to 0)."""
    cancel, order = state.get("cancel"), state["order"]
    amount = cancellation_minor(state)
    if cancel and (amount or keep_zero):
        fx.refunds.append(_refund_fact(order["brand_id"], order["order_id"], cancel_refund_id(order["order_id"]),
                                       {"amount_minor": amount, "occurred_ms": cancel["occurred_ms"]},
                                       order["currency"]))


def on_cancel(t: Tables, setup: SetupView, c: CancelRecord, src: str) -> Effects:
    """An order cancelled (Shopify ``orders/cancelled``): net 0, commission reversed (clawed back
    after payout, as for refunds). Once per webhook id and once per order; a cancellation that
    arrives before its order waits in the order's state like a refund."""
    fx = Effects()
    fx.count("cancellations_received")
    if _seen(t, c.brand_id, c.event_id, f"c:{c.order_id}", fx, "cancellations"):
        return fx
    key = f"{c.brand_id}:{c.order_id}"
    state: dict[str, Any] = _order_state(t, key)
    prior = state.get("cancel")
    if _first_or_replay(prior, src, fx, "cancellations"):  # else: already cancelled by another webhook
        if prior is None:
            state = {**state, "cancel": {"occurred_ms": to_ms(c.occurred_at), "event_id": c.event_id, "src": src}}
        if state["order"] is None:
            fx.count("cancellations_waiting")
        else:
            _cancel_fact(state, fx)
    _keep(t, key, state, fx)
    return fx


def _first_or_replay(prior: dict[str, Any] | None, src: str, fx: Effects, kind: str) -> bool:
    """Whether a refund / cancellation record is applied: its first delivery, or a replay of that
    same record (re-read after a crash: same ``src``). Another delivery is a duplicate."""
    if prior is not None and prior["src"] != src:
        fx.count(f"{kind}_deduplicated")
        return False
    fx.count(f"{kind}_accepted")
    return True


def _keep(t: Tables, key: str, state: dict[str, Any], fx: Effects) -> None:
    """Store the order's state, publishing its snapshot once the order itself is known."""
    if state["order"] is not None:
        state = _publish(state, fx)
    t.orders[key] = state


def on_refund(t: Tables, setup: SetupView, r: RefundRecord, src: str) -> Effects:
    fx = Effects()
    fx.count("refunds_received")
    if _seen(t, r.brand_id, r.event_id, f"r:{r.refund_id}", fx, "refunds"):
        return fx
    key = f"{r.brand_id}:{r.order_id}"
    state: dict[str, Any] = _order_state(t, key)
    prior = state["refunds"].get(r.refund_id)
    if _first_or_replay(prior, src, fx, "refunds"):
        if prior is None:
            refund = {"amount_minor": r.amount_minor, "occurred_ms": to_ms(r.occurred_at), "event_id": r.event_id,
                      "src": src, "currency": r.currency}
            state = {**state, "refunds": {**state["refunds"], r.refund_id: refund}}
        if state["order"] is None:
            fx.count("refunds_waiting")
        elif not refund_applies(state["refunds"][r.refund_id], state["order"]):
            fx.count("refunds_currency_mismatch")
        else:
            fx.refunds.append(_refund_fact(r.brand_id, r.order_id, r.refund_id, state["refunds"][r.refund_id],
                                           state["order"]["currency"]))
            # after a cancellation, the cancellation reverses only what this refund left (its refund
            # row in the ledger shrinks, so the refund rows of the order sum to what was given back)
            _cancel_fact(state, fx, keep_zero=True)
    _keep(t, key, state, fx)
    return fx


def on_click(t: Tables, setup: SetupView, c: WireClickEvent, brand_id: str, src: str) -> Effects:
    """Remember the click; re-attribute orders that arrived before it."""
    fx = Effects()
    key = f"{brand_id}:{c.event_id}"
    click = t.clicks.get(key)
    if click is None:
        click = {"creator_id": c.creator_id, "campaign_id": c.campaign_id, "stream_id": c.stream_id,
                 "product_id": c.product_id, "link_code": c.link_code, "occurred_ms": to_ms(c.occurred_at),
                 "src": src}
        t.clicks[key] = click
    elif click["src"] != src:
        return fx  # duplicate click: nothing changes
    for order_id in t.waiting.get(key) or []:
        okey = f"{brand_id}:{order_id}"
        state = t.orders.get(okey)
        if not state or state["order"] is None:
            continue
        attr = attribute(state["order"], click, setup)
        if attr["via"] == "click" and dom_attr.outranks("click", state["attr"]["via"] or "none"):
            state = _publish({**state, "attr": attr}, fx)
            t.orders[okey] = state
            fx.count("orders_late_click_attributed")
        elif state["attr"]["via"] == "click" and state["attr"]["click_id"] == c.event_id:
            _publish(state, fx)  # a replay: re-emit the (unchanged) snapshot, sinks ignore the same version
    return fx


def ledger_fact_order(snap: dict[str, Any]) -> LedgerOrderFact:
    """The ``ll.ledger`` record for an order snapshot (a commission version)."""
    out = {k: v for k, v in snap.items() if k != "occurred_ms"}
    return LedgerOrderFact.model_construct(kind="order", occurred_at=from_ms(snap["occurred_ms"]), **out)


def ledger_fact_refund(fact: dict[str, Any]) -> LedgerRefundFact:
    out = {k: v for k, v in fact.items() if k != "occurred_ms"}
    return LedgerRefundFact.model_construct(kind="refund", occurred_at=from_ms(fact["occurred_ms"]), **out)
