"""Validation of raw Kafka records on the events and orders topics (pure, no I/O).

Anything a producer may have written (ours or not) is checked here. A record that cannot be used
raises :class:`InvalidRecord` with a short machine-readable ``reason``; the agents route it to the
dead-letter topic. Times become integer epoch milliseconds (UTC). The "too far in the future /
past" checks use the record's own ``received_at`` (not the wall clock) so a replay decides the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

# The same id, currency and amount rules as the HTTP edge (schemas/): a record written to Kafka by
# another producer is held to the contract too.
from schemas.ids import is_valid_id
from schemas.money import CURRENCY_EXPONENTS, MAX_MINOR, MAX_QUANTITY

FUTURE_MS = 5 * 60 * 1000
PAST_MS = 400 * 24 * 3600 * 1000
VIEW_ACTIONS = frozenset({"join", "heartbeat", "leave"})
EVENT_TYPES = frozenset({"view", "click", "add_to_cart"})


class InvalidRecord(Exception):
    """A record or event that cannot be processed; ``reason`` goes into the ``dlq.reason`` header."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Event:
    """One view / click / add_to_cart event of a batch."""

    event_id: str
    type: str
    brand_id: str
    stream_id: str | None
    viewer_id: str | None
    product_id: str | None
    action: str | None
    campaign_id: str | None
    creator_id: str | None
    link_code: str | None
    occurred_ms: int


@dataclass(frozen=True, slots=True)
class EventBatch:
    brand_id: str
    batch_id: str
    received_ms: int
    events: list[Event]
    # (index in the batch, reason, the event's JSON bytes) for events that failed validation.
    rejected: list[tuple[int, str, bytes]]


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    quantity: int
    unit_price_minor: int


@dataclass(frozen=True, slots=True)
class Order:
    event_id: str
    brand_id: str
    order_id: str
    click_id: str | None
    coupon_code: str | None
    occurred_ms: int
    currency: str
    items: tuple[Item, ...]
    discount_minor: int
    source: str

    @property
    def gross_net_minor(self) -> int:
        """Σ items - discount (tax and shipping excluded), never below 0; refunds not applied."""
        return max(0, sum(i.quantity * i.unit_price_minor for i in self.items) - self.discount_minor)


@dataclass(frozen=True, slots=True)
class Refund:
    event_id: str
    brand_id: str
    order_id: str
    refund_id: str
    amount_minor: int
    currency: str | None
    occurred_ms: int
    source: str


def parse_time_ms(value: Any, field: str) -> int:
    if not isinstance(value, str) or not value:
        raise InvalidRecord("invalid_time", f"{field} missing or not a string")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRecord("invalid_time", f"{field}={value!r}") from exc
    if dt.tzinfo is None:
        raise InvalidRecord("invalid_time", f"{field} has no UTC offset")
    return int(dt.timestamp() * 1000)


def format_ms(ms: int) -> str:
    """Epoch ms → RFC 3339 UTC with milliseconds and ``Z`` (the wire format)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _id(obj: dict[str, Any], field: str, *, optional: bool = False) -> str | None:
    value = obj.get(field)
    if value is None:
        if optional:
            return None
        raise InvalidRecord("missing_field", field)
    if not isinstance(value, str) or not is_valid_id(value):
        raise InvalidRecord("invalid_id", field)
    return value


def _req_id(obj: dict[str, Any], field: str) -> str:
    value = _id(obj, field)
    assert value is not None
    return value


def _int(obj: dict[str, Any], field: str, *, minimum: int = 0, maximum: int = MAX_MINOR,
         default: int | None = None) -> int:
    value = obj.get(field, default)
    if value is None:
        raise InvalidRecord("missing_field", field)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidRecord("invalid_amount", field)
    return value


def _check_time(occurred_ms: int, received_ms: int) -> None:
    if occurred_ms > received_ms + FUTURE_MS:
        raise InvalidRecord("occurred_in_future")
    if occurred_ms < received_ms - PAST_MS:
        raise InvalidRecord("occurred_too_old")


def _loads(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise InvalidRecord("empty_value")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRecord("invalid_json", str(exc)[:200]) from exc
    if not isinstance(obj, dict):
        raise InvalidRecord("not_an_object")
    return obj


def _version(obj: dict[str, Any]) -> None:
    if obj.get("v") != 1:
        raise InvalidRecord("unsupported_version", repr(obj.get("v")))


def parse_event(ev: Any, brand_id: str, received_ms: int) -> Event:
    if not isinstance(ev, dict):
        raise InvalidRecord("not_an_object")
    etype = ev.get("type")
    if etype not in EVENT_TYPES:
        raise InvalidRecord("unknown_event_type", repr(etype)[:64])
    event_id = _req_id(ev, "event_id")
    occurred_ms = parse_time_ms(ev.get("occurred_at"), "occurred_at")
    _check_time(occurred_ms, received_ms)
    action: str | None = None
    stream_id: str | None
    viewer_id: str | None
    product_id: str | None
    if etype == "view":
        action = ev.get("action")
        if action not in VIEW_ACTIONS:
            raise InvalidRecord("invalid_action", repr(action)[:64])
        stream_id = _req_id(ev, "stream_id")
        viewer_id = _req_id(ev, "viewer_id")
        product_id = None
    elif etype == "add_to_cart":
        stream_id = _req_id(ev, "stream_id")
        viewer_id = _req_id(ev, "viewer_id")
        product_id = _req_id(ev, "product_id")
    else:  # click: redirect clicks may lack stream, viewer and product
        stream_id = _id(ev, "stream_id", optional=True)
        viewer_id = _id(ev, "viewer_id", optional=True)
        product_id = _id(ev, "product_id", optional=True)
    return Event(
        event_id=event_id,
        type=etype,
        brand_id=brand_id,
        stream_id=stream_id,
        viewer_id=viewer_id,
        product_id=product_id,
        action=action,
        campaign_id=_id(ev, "campaign_id", optional=True) if etype == "click" else None,
        creator_id=_id(ev, "creator_id", optional=True) if etype == "click" else None,
        link_code=_id(ev, "link_code", optional=True) if etype == "click" else None,
        occurred_ms=occurred_ms,
    )


def parse_event_batch(raw: bytes | None, key: bytes | None = None) -> EventBatch:
    """Parse one ``ll.events`` record. Raises for a bad envelope; bad events are returned in ``rejected``."""
    obj = _loads(raw)
    _version(obj)
    brand_id = _req_id(obj, "brand_id")
    if key is not None and key != brand_id.encode():
        raise InvalidRecord("key_mismatch", "record key is not the brand_id")
    batch_id = _req_id(obj, "batch_id")
    received_ms = parse_time_ms(obj.get("received_at"), "received_at")
    raw_events = obj.get("events")
    if not isinstance(raw_events, list):
        raise InvalidRecord("missing_field", "events")
    events: list[Event] = []
    rejected: list[tuple[int, str, bytes]] = []
    for i, ev in enumerate(raw_events):
        try:
            events.append(parse_event(ev, brand_id, received_ms))
        except InvalidRecord as exc:
            rejected.append((i, exc.reason, orjson.dumps(ev)))
    return EventBatch(brand_id, batch_id, received_ms, events, rejected)


def _currency(obj: dict[str, Any], *, optional: bool = False) -> str | None:
    value = obj.get("currency")
    if value is None and optional:
        return None
    if not isinstance(value, str) or value not in CURRENCY_EXPONENTS:
        raise InvalidRecord("invalid_currency", repr(value)[:16])
    return value


def parse_order_record(raw: bytes | None, key: bytes | None = None) -> Order | Refund:
    """Parse one ``ll.orders`` record (``order.created`` or ``order.refunded``)."""
    obj = _loads(raw)
    _version(obj)
    etype = obj.get("type")
    if etype not in ("order.created", "order.refunded"):
        raise InvalidRecord("unknown_event_type", repr(etype)[:64])
    event_id = _req_id(obj, "event_id")
    brand_id = _req_id(obj, "brand_id")
    if key is not None and key != brand_id.encode():
        raise InvalidRecord("key_mismatch", "record key is not the brand_id")
    order_id = _req_id(obj, "order_id")
    occurred_ms = parse_time_ms(obj.get("occurred_at"), "occurred_at")
    received = obj.get("received_at")
    if received is not None:
        _check_time(occurred_ms, parse_time_ms(received, "received_at"))
    source = obj.get("source") if isinstance(obj.get("source"), str) else "unknown"
    assert isinstance(source, str)
    if etype == "order.refunded":
        return Refund(
            event_id=event_id,
            brand_id=brand_id,
            order_id=order_id,
            refund_id=_req_id(obj, "refund_id"),
            amount_minor=_int(obj, "amount_minor"),
            currency=_currency(obj, optional=True),
            occurred_ms=occurred_ms,
            source=source,
        )
    raw_items = obj.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise InvalidRecord("missing_field", "items")
    items: list[Item] = []
    for it in raw_items:
        if not isinstance(it, dict):
            raise InvalidRecord("invalid_item")
        quantity = _int(it, "quantity", minimum=1, maximum=MAX_QUANTITY)
        items.append(Item(_req_id(it, "sku"), quantity, _int(it, "unit_price_minor")))
    coupon = obj.get("coupon_code")
    if coupon is not None:
        if not is_valid_id(coupon):
            raise InvalidRecord("invalid_coupon")
        coupon = coupon.upper()  # coupon codes compare case-insensitively (docs/setup.md)
    currency = _currency(obj)
    assert currency is not None
    return Order(
        event_id=event_id,
        brand_id=brand_id,
        order_id=order_id,
        click_id=_id(obj, "click_id", optional=True),
        coupon_code=coupon,
        occurred_ms=occurred_ms,
        currency=currency,
        items=tuple(items),
        discount_minor=_int(obj, "discount_minor", default=0),
        source=source,
    )


def clicks_in_batch(raw: bytes | None, key: bytes | None = None) -> list[Event]:
    """The valid clicks of an events record (the ledger agent needs only those); anything invalid is
    skipped here because the live consumer dead-letters it."""
    try:
        obj = _loads(raw)
        _version(obj)
        brand_id = _req_id(obj, "brand_id")
        if key is not None and key != brand_id.encode():
            return []
        received_ms = parse_time_ms(obj.get("received_at"), "received_at")
    except InvalidRecord:
        return []
    raw_events = obj.get("events")
    if not isinstance(raw_events, list):
        return []
    out: list[Event] = []
    for ev in raw_events:
        if isinstance(ev, dict) and ev.get("type") == "click":
            try:
                out.append(parse_event(ev, brand_id, received_ms))
            except InvalidRecord:
                continue
    return out
