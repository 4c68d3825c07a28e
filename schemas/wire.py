"""Kafka record shapes (docs/architecture.md "Topics"): the one contract of every record on every topic.

Ingest builds ``ll.events`` / ``ll.orders`` records with these models, the stream workers and the
ClickHouse sink decode them with the ``decode_*`` functions below, the ledger worker builds the
``ll.ledger`` facts and dead letters, and the sink decodes those too.

Strict: unknown fields and any ``v`` other than the ones listed are refused, so a processor never
silently misreads a record written by a newer producer (it goes to the DLQ instead). Times are
RFC 3339 UTC with milliseconds and ``Z``. No acceptance-window check here: records are replayed
long after ingest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.errors import InvalidRecord, SchemaError, ValidationFailed, errors_from_pydantic
from schemas.events import MAX_BATCH_EVENTS, AddToCartEvent, ClickEvent, ViewAction, ViewEvent
from schemas.ids import CouponCode, Id
from schemas.money import Currency, MinorAmount, PositiveMinorAmount
from schemas.orders import MAX_ORDER_ITEMS, OrderCreated, OrderItem, OrderRefunded, net_items_minor
from schemas.time import WireDatetime, format_rfc3339, to_ms

__all__ = [
    "WIRE_VERSION",
    "CancelRecord",
    "DeadLetter",
    "DecodedEvents",
    "EventSource",
    "EventsBatchRecord",
    "Headers",
    "LedgerFact",
    "LedgerOrderFact",
    "LedgerRefundFact",
    "OrderRecord",
    "OrderSource",
    "OrdersTopicRecord",
    "RefundRecord",
    "WireAddToCartEvent",
    "WireClickEvent",
    "WireEvent",
    "WireViewEvent",
    "clicks_of_events_record",
    "decode_events_record",
    "decode_ledger_fact",
    "decode_orders_record",
    "order_record_from_bytes",
    "record_problem",
    "to_wire_event",
]

WIRE_VERSION: Final = 1
EventSource = Literal["events-api", "redirect"]
OrderSource = Literal["native", "shopify"]

_WIRE = ConfigDict(extra="forbid", strict=True, frozen=True)


# per record class: the set of all its fields (shared, never mutated: the records are frozen)
_ALL_FIELDS: dict[type[BaseModel], set[str]] = {}


class _Record(BaseModel):
    model_config = _WIRE

    def to_bytes(self) -> bytes:
        """Compact JSON (pydantic-core serializer; times as ``...123Z``)."""
        return self.__pydantic_serializer__.to_json(self)

    @classmethod
    def assemble(cls, fields: dict[str, Any]) -> Self:
        """A record from already-validated values, **every** field given, in declaration order,
        without validation: the hot path's constructor (~1 µs; ``model_construct`` costs ~4 µs
        because it fills defaults and sorts out extras). Only for values that passed the HTTP
        models' validation or come from the setup replica."""
        obj = cls.__new__(cls)
        _set = object.__setattr__
        _set(obj, "__dict__", fields)
        _set(obj, "__pydantic_fields_set__", _ALL_FIELDS.get(cls) or _ALL_FIELDS.setdefault(cls, set(cls.model_fields)))
        _set(obj, "__pydantic_extra__", None)
        _set(obj, "__pydantic_private__", None)
        return obj

    @classmethod
    def from_bytes(cls, data: bytes | str) -> Self:
        """Parse and validate; raises :class:`ValidationFailed` (for the DLQ reason header)."""
        try:
            return cls.__pydantic_validator__.validate_json(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise ValidationFailed(errors_from_pydantic(exc), f"invalid {cls.__name__}") from None


class WireViewEvent(_Record):
    event_id: Id
    type: Literal["view"]
    stream_id: Id
    viewer_id: Id
    action: ViewAction
    occurred_at: WireDatetime


class WireClickEvent(_Record):
    """A click enriched at ingest. Redirect clicks: ``viewer_id`` null, ``link_code`` set,
    ``stream_id``/``product_id`` from the link (may be null), ``event_id`` = the click id."""

    event_id: Id
    type: Literal["click"]
    stream_id: Id | None = None
    viewer_id: Id | None = None
    product_id: Id | None = None
    campaign_id: Id | None = None
    creator_id: Id | None = None
    link_code: Id | None = None
    # Redirect clicks: keyed hash of the client's IP and User-Agent (ingest/clicks.py), never the IP.
    client_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = None
    occurred_at: WireDatetime


class WireAddToCartEvent(_Record):
    event_id: Id
    type: Literal["add_to_cart"]
    stream_id: Id
    viewer_id: Id
    product_id: Id
    occurred_at: WireDatetime


WireEvent = Annotated[
    WireViewEvent | WireClickEvent | WireAddToCartEvent, Field(discriminator="type")
]


class EventsBatchRecord(_Record):
    """``ll.events`` value: one accepted HTTP batch or one redirect click. Key: ``brand_id``."""

    v: Literal[1]
    batch_id: Id
    brand_id: Id
    source: EventSource
    received_at: WireDatetime
    events: list[WireEvent] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)

    @classmethod
    def build(
        cls,
        *,
        batch_id: str,
        brand_id: str,
        source: EventSource,
        received_at: datetime,
        events: list[WireViewEvent | WireClickEvent | WireAddToCartEvent],
    ) -> EventsBatchRecord:
        """Assemble from already-validated parts without re-validating (hot path)."""
        return cls.assemble({"v": WIRE_VERSION, "batch_id": batch_id, "brand_id": brand_id, "source": source,
                             "received_at": received_at, "events": events})

    def to_bytes(self) -> bytes:
        """The same JSON as the pydantic serializer (tested), built with orjson from the fields:
        the events path writes one per accepted batch, and pydantic's union serializer with a
        Python time formatter per event cost ~4 µs an event, this ~1 µs."""
        out = dict(self.__dict__)
        received = out["received_at"] = format_rfc3339(self.received_at)
        events = []
        for e in self.events:
            d = dict(e.__dict__)
            d["occurred_at"] = received if e.occurred_at is self.received_at else format_rfc3339(e.occurred_at)
            events.append(d)
        out["events"] = events
        return orjson.dumps(out)


def to_wire_event(
    event: ViewEvent | ClickEvent | AddToCartEvent,
    *,
    creator_id: str | None = None,
    campaign_id: str | None = None,
) -> WireViewEvent | WireClickEvent | WireAddToCartEvent:
    """A validated ingest event → its ``ll.events`` form. Clicks get ``creator_id`` (the stream's
    creator) and ``campaign_id`` (the event's own, else the one given); ``link_code`` is null."""
    if isinstance(event, ClickEvent):
        return WireClickEvent.assemble({
            "event_id": event.event_id, "type": "click", "stream_id": event.stream_id,
            "viewer_id": event.viewer_id, "product_id": event.product_id,
            "campaign_id": event.campaign_id or campaign_id, "creator_id": creator_id, "link_code": None,
            "client_hash": None, "occurred_at": event.occurred_at})
    # the HTTP view / add-to-cart models have exactly the wire fields, in the same order
    if isinstance(event, ViewEvent):
        return WireViewEvent.assemble(dict(event.__dict__))
    return WireAddToCartEvent.assemble(dict(event.__dict__))


class OrderRecord(_Record):
    """``ll.orders`` value for a created order. Key: ``brand_id``."""

    v: Literal[1]
    event_id: Id
    type: Literal["order.created"]
    brand_id: Id
    order_id: Id
    click_id: Id | None = None
    coupon_code: CouponCode | None = None
    occurred_at: WireDatetime
    received_at: WireDatetime
    currency: Currency
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_ORDER_ITEMS)
    discount_minor: MinorAmount = 0
    tax_minor: MinorAmount = 0
    shipping_minor: MinorAmount = 0
    source: OrderSource

    @classmethod
    def from_order(cls, order: OrderCreated, *, received_at: datetime, source: OrderSource) -> OrderRecord:
        return cls.model_construct(
            v=WIRE_VERSION, **order.__dict__, received_at=received_at, source=source
        )

    def net_items_minor(self) -> int:
        """Net item revenue before refunds (:func:`schemas.orders.net_items_minor`)."""
        return net_items_minor(self)

    def line_revenue(self) -> dict[str, int]:
        """SKU → Σ quantity x unit price of its lines (before the order-level discount and refunds)."""
        out: dict[str, int] = {}
        for i in self.items:
            out[i.sku] = out.get(i.sku, 0) + i.quantity * i.unit_price_minor
        return out

    @property
    def skus(self) -> list[str]:
        """The distinct SKUs of the order's lines, sorted."""
        return sorted({i.sku for i in self.items})


class RefundRecord(_Record):
    """``ll.orders`` value for a refund (``currency`` null when the source did not say)."""

    v: Literal[1]
    event_id: Id
    type: Literal["order.refunded"]
    brand_id: Id
    order_id: Id
    refund_id: Id
    amount_minor: PositiveMinorAmount
    currency: Currency | None = None
    occurred_at: WireDatetime
    received_at: WireDatetime
    source: OrderSource

    @classmethod
    def from_refund(
        cls, refund: OrderRefunded, *, received_at: datetime, source: OrderSource
    ) -> RefundRecord:
        return cls.model_construct(
            v=WIRE_VERSION, **refund.__dict__, received_at=received_at, source=source
        )


class CancelRecord(_Record):
    """``ll.orders`` value for a cancelled order (Shopify ``orders/cancelled``): its net revenue
    becomes 0, like a full refund (contract "Shopify as it really sends")."""

    v: Literal[1]
    event_id: Id
    type: Literal["order.cancelled"]
    brand_id: Id
    order_id: Id
    occurred_at: WireDatetime
    received_at: WireDatetime
    source: OrderSource


OrdersRecord = OrderRecord | RefundRecord | CancelRecord
OrdersTopicRecord = Annotated[OrdersRecord, Field(discriminator="type")]
_ORDERS_ADAPTER: Final[TypeAdapter[OrdersRecord]] = TypeAdapter(OrdersTopicRecord)


def order_record_from_bytes(data: bytes | str) -> OrdersRecord:
    """Parse an ``ll.orders`` value of either type; raises :class:`ValidationFailed`."""
    try:
        return _ORDERS_ADAPTER.validate_json(data)
    except ValidationError as exc:
        errors = errors_from_pydantic(exc)
        # drop the union tag from locations: ("order.created", "items", 0) → items[0]
        cleaned = [
            SchemaError(e.field.split(".", 2)[-1] if e.field.startswith("order.") else e.field, e.reason)
            for e in errors
        ]
        raise ValidationFailed(cleaned, "invalid ll.orders record") from None


# --- decoding what any producer wrote (the stream workers and the sink) ---------------------------
#
# The models above are the contract; the functions below decode a raw Kafka value with them and
# translate pydantic's errors into the short ``dlq.reason`` codes (docs/stream-processing.md). On
# top of the model rules, an event's or order's ``occurred_at`` must lie within the acceptance
# window around the record's own ``received_at`` (not the wall clock, so a replay decides the same),
# and the record key must be the brand id.

_EVENT_ADAPTER: Final[TypeAdapter[WireViewEvent | WireClickEvent | WireAddToCartEvent]] = TypeAdapter(WireEvent)
_CLICK_VALIDATOR: Final = WireClickEvent.__pydantic_validator__
_FUTURE_MS: Final = 5 * 60 * 1000
_PAST_MS: Final = 400 * 24 * 3600 * 1000
# Checked before any other problem, in this order (a record with several problems names the first).
_FIRST_REASONS: Final = ("invalid_json", "empty_value", "not_an_object", "unsupported_version", "unknown_event_type")
_OBJECT_ERRORS: Final = frozenset({"model_type", "model_attributes_type", "dict_type"})
_FIELD_REASONS: Final = {"currency": "invalid_currency", "coupon_code": "invalid_coupon", "action": "invalid_action",
                         "occurred_at": "invalid_time", "received_at": "invalid_time", "quantity": "invalid_amount"}


class _EventsEnvelope(_Record):
    """``ll.events`` with the events left undecoded: used only to find which events are bad."""

    v: Literal[1]
    batch_id: Id
    brand_id: Id
    source: EventSource
    received_at: WireDatetime
    events: list[Any] = Field(max_length=MAX_BATCH_EVENTS)  # an empty list is a no-op, not an error


@dataclass(frozen=True, slots=True)
class DecodedEvents:
    """One ``ll.events`` record: its valid events, and ``(index, reason, event JSON)`` of the others."""

    brand_id: str
    batch_id: str
    received_at: datetime
    events: list[WireViewEvent | WireClickEvent | WireAddToCartEvent]
    rejected: list[tuple[int, str, bytes]]


def _error_reason(err: Any) -> str:
    kind: str = err["type"]
    loc = err["loc"]
    names = [p for p in loc if isinstance(p, str)]
    name = names[-1] if names else ""
    if kind == "json_invalid":
        return "invalid_json"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        return "unknown_event_type"
    if name == "v":
        return "unsupported_version"
    if kind in _OBJECT_ERRORS:
        return "invalid_item" if "items" in names else "not_an_object"
    if kind == "missing" or (err.get("input", "") is None and kind.endswith("_type")):
        return "missing_field"
    if kind == "extra_forbidden":
        return "unknown_field"
    if name in ("items", "events"):
        return "missing_field"
    if name in _FIELD_REASONS:
        return _FIELD_REASONS[name]
    if name.endswith("_minor"):
        return "invalid_amount"
    return "invalid_id"


def record_problem(exc: ValidationError) -> InvalidRecord:
    """The one :class:`InvalidRecord` that names a failed record's first problem."""
    errors = exc.errors(include_url=False)
    reasons = [_error_reason(e) for e in errors]
    pick = next((reasons.index(r) for r in _FIRST_REASONS if r in reasons), 0)
    err = errors[pick]
    field = ".".join(str(p) for p in err["loc"])
    return InvalidRecord(reasons[pick], f"{field}: {err['msg']}"[:200])


def _window_reason(occurred_ms: int, received_ms: int) -> str | None:
    if occurred_ms > received_ms + _FUTURE_MS:
        return "occurred_in_future"
    if occurred_ms < received_ms - _PAST_MS:
        return "occurred_too_old"
    return None


def _check_key(key: bytes | None, brand_id: str) -> None:
    if key is not None and key != brand_id.encode():
        raise InvalidRecord("key_mismatch", "record key is not the brand_id")


def decode_events_record(raw: bytes | None, key: bytes | None = None) -> DecodedEvents:
    """Decode one ``ll.events`` value. A bad envelope raises :class:`InvalidRecord`; bad events are
    returned in ``rejected`` (the good ones of the same record are kept)."""
    if raw is None:
        raise InvalidRecord("empty_value")
    indexed: list[tuple[int, WireViewEvent | WireClickEvent | WireAddToCartEvent]]
    rejected: list[tuple[int, str, bytes]] = []
    try:
        rec: EventsBatchRecord | _EventsEnvelope = EventsBatchRecord.__pydantic_validator__.validate_json(raw)
        indexed = list(enumerate(rec.events))
    except ValidationError as exc:
        if not all(e["loc"][:1] == ("events",) and (len(e["loc"]) > 1 or e["type"] == "too_short")
                   for e in exc.errors(include_url=False)):
            raise record_problem(exc) from None
        rec = _EventsEnvelope.__pydantic_validator__.validate_json(raw)
        indexed = []
        for i, ev in enumerate(rec.events):
            data = orjson.dumps(ev)
            try:
                indexed.append((i, _EVENT_ADAPTER.validate_json(data)))
            except ValidationError as bad:
                rejected.append((i, record_problem(bad).reason, data))
    _check_key(key, rec.brand_id)
    received_ms = to_ms(rec.received_at)
    events = []
    for i, ev in indexed:
        problem = _window_reason(to_ms(ev.occurred_at), received_ms)
        if problem is None:
            events.append(ev)
        else:
            rejected.append((i, problem, ev.to_bytes()))
    rejected.sort(key=lambda r: r[0])
    return DecodedEvents(rec.brand_id, rec.batch_id, rec.received_at, events, rejected)


def clicks_of_events_record(raw: bytes | None, key: bytes | None = None) -> tuple[str, list[WireClickEvent]]:
    """``(brand_id, valid clicks)`` of an ``ll.events`` value: exactly the clicks
    :func:`decode_events_record` would return, without building the views and carts (the ledger
    needs only clicks). Nothing for a bad envelope: whoever decodes the whole record (the live
    path) dead-letters it."""
    if raw is None:
        return "", []
    try:
        rec = _EventsEnvelope.__pydantic_validator__.validate_json(raw)
        _check_key(key, rec.brand_id)
    except (ValidationError, InvalidRecord):
        return "", []
    received_ms = to_ms(rec.received_at)
    clicks = []
    for ev in rec.events:
        if isinstance(ev, dict) and ev.get("type") == "click":
            try:
                click = _CLICK_VALIDATOR.validate_python(ev)
            except ValidationError:
                continue
            if _window_reason(to_ms(click.occurred_at), received_ms) is None:
                clicks.append(click)
    return rec.brand_id, clicks


def decode_orders_record(raw: bytes | None, key: bytes | None = None) -> OrdersRecord:
    """Decode one ``ll.orders`` value (``order.created``, ``order.refunded`` or ``order.cancelled``);
    raises :class:`InvalidRecord`."""
    if raw is None:
        raise InvalidRecord("empty_value")
    try:
        rec = _ORDERS_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise record_problem(exc) from None
    _check_key(key, rec.brand_id)
    problem = _window_reason(to_ms(rec.occurred_at), to_ms(rec.received_at))
    if problem is not None:
        raise InvalidRecord(problem, "occurred_at outside the window around received_at")
    return rec


# --- ll.ledger: the money facts the ledger worker publishes for the ClickHouse sink ---------------

Via = Literal["click", "coupon"]
Count = Annotated[int, Field(ge=0, le=2**53)]


class LedgerOrderFact(_Record):
    """One commission version of an order: its full current state after every record seen so far.
    ``version`` grows by one each time the state changes; readers keep the highest."""

    kind: Literal["order"]
    brand_id: Id
    order_id: Id
    version: Annotated[int, Field(ge=1, le=2**53)]
    occurred_at: WireDatetime
    currency: Currency
    gross_minor: MinorAmount
    refunded_minor: MinorAmount
    net_minor: MinorAmount
    via: Via | None
    creator_id: Id | None
    campaign_id: Id | None
    stream_id: Id | None
    click_id: Id | None
    coupon_code: CouponCode | None
    link_code: Id | None = None  # the coupon's link, or the link of a redirect click
    rate_bps: Count
    flat_minor: MinorAmount
    hold_days: Count
    commission_minor: MinorAmount
    reversed_minor: MinorAmount
    skus: list[Id]
    source: OrderSource


class LedgerRefundFact(_Record):
    """A refund netted against its order (in the order's currency). 0 only for a cancellation's row
    (``cancel:<order>``) after a later refund took what it had reversed (streams/ledger.py)."""

    kind: Literal["refund"]
    brand_id: Id
    order_id: Id
    refund_id: Id
    amount_minor: MinorAmount
    currency: Currency
    occurred_at: WireDatetime


LedgerFact = Annotated[LedgerOrderFact | LedgerRefundFact, Field(discriminator="kind")]
_LEDGER_ADAPTER: Final[TypeAdapter[LedgerOrderFact | LedgerRefundFact]] = TypeAdapter(LedgerFact)


def decode_ledger_fact(raw: bytes | None) -> LedgerOrderFact | LedgerRefundFact:
    """Decode one ``ll.ledger`` value; raises :class:`InvalidRecord`."""
    if raw is None:
        raise InvalidRecord("empty_value")
    try:
        return _LEDGER_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise record_problem(exc) from None


# --- ll.dlq: the original bytes, with why and where from in the headers ---------------------------

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Headers of a dead-letter record (its key and value are the original record's, or one event's)."""

    reason: str
    topic: str
    partition: int
    offset: int
    index: int | None = None  # the event's position in its batch, for one bad event of a batch
    detail: str = ""

    def headers(self) -> Headers:
        out: Headers = [("dlq.reason", self.reason.encode()), ("dlq.topic", self.topic.encode()),
                        ("dlq.partition", str(self.partition).encode()), ("dlq.offset", str(self.offset).encode())]
        if self.index is not None:
            out.append(("dlq.index", str(self.index).encode()))
        if self.detail:
            out.append(("dlq.detail", self.detail[:500].encode()))
        return out

    @classmethod
    def from_headers(cls, headers: Iterable[tuple[str, bytes]]) -> DeadLetter:
        h = {k: v.decode("utf-8", "replace") for k, v in headers}
        index = h.get("dlq.index")
        return cls(reason=h.get("dlq.reason", ""), topic=h.get("dlq.topic", ""),
                   partition=int(h.get("dlq.partition", "0")), offset=int(h.get("dlq.offset", "0")),
                   index=int(index) if index is not None else None, detail=h.get("dlq.detail", ""))
