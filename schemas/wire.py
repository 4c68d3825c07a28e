"""Kafka record shapes (docs/architecture.md "Topics"): what ingest writes and stream processors parse.

Strict: unknown fields and any ``v`` other than the ones listed are refused, so a processor never
silently misreads a record written by a newer producer (it goes to the DLQ instead). Times are
RFC 3339 UTC with milliseconds and ``Z``. No acceptance-window check here: records are replayed
long after ingest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.errors import SchemaError, ValidationFailed, errors_from_pydantic
from schemas.events import MAX_BATCH_EVENTS, AddToCartEvent, ClickEvent, ViewAction, ViewEvent
from schemas.ids import CouponCode, Id
from schemas.money import Currency, MinorAmount, PositiveMinorAmount
from schemas.orders import MAX_ORDER_ITEMS, OrderCreated, OrderItem, OrderRefunded
from schemas.time import UtcDatetime

__all__ = [
    "WIRE_VERSION",
    "EventSource",
    "EventsBatchRecord",
    "OrderRecord",
    "OrderSource",
    "OrdersTopicRecord",
    "RefundRecord",
    "WireAddToCartEvent",
    "WireClickEvent",
    "WireEvent",
    "WireViewEvent",
    "order_record_from_bytes",
    "to_wire_event",
]

WIRE_VERSION: Final = 1
EventSource = Literal["events-api", "redirect"]
OrderSource = Literal["native", "shopify"]

_WIRE = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Record(BaseModel):
    model_config = _WIRE

    def to_bytes(self) -> bytes:
        """Compact JSON (pydantic-core serializer; times as ``...123Z``)."""
        return self.__pydantic_serializer__.to_json(self)

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
    occurred_at: UtcDatetime


class WireClickEvent(_Record):
    """A click enriched at ingest. Redirect clicks: ``viewer_id`` null, ``link_code`` set,
    ``stream_id``/``product_id`` from the link (may be null), ``event_id`` = the click id."""

    event_id: Id
    type: Literal["click"]
    stream_id: Id | None
    viewer_id: Id | None
    product_id: Id | None
    campaign_id: Id | None
    creator_id: Id | None
    link_code: Id | None
    occurred_at: UtcDatetime


class WireAddToCartEvent(_Record):
    event_id: Id
    type: Literal["add_to_cart"]
    stream_id: Id
    viewer_id: Id
    product_id: Id
    occurred_at: UtcDatetime


WireEvent = Annotated[
    WireViewEvent | WireClickEvent | WireAddToCartEvent, Field(discriminator="type")
]


class EventsBatchRecord(_Record):
    """``ll.events`` value: one accepted HTTP batch or one redirect click. Key: ``brand_id``."""

    v: Literal[1]
    batch_id: Id
    brand_id: Id
    source: EventSource
    received_at: UtcDatetime
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
        return cls.model_construct(
            v=WIRE_VERSION,
            batch_id=batch_id,
            brand_id=brand_id,
            source=source,
            received_at=received_at,
            events=events,
        )


def to_wire_event(
    event: ViewEvent | ClickEvent | AddToCartEvent,
    *,
    creator_id: str | None = None,
    campaign_id: str | None = None,
) -> WireViewEvent | WireClickEvent | WireAddToCartEvent:
    """A validated ingest event → its ``ll.events`` form. Clicks get ``creator_id`` (the stream's
    creator) and ``campaign_id`` (the event's own, else the one given); ``link_code`` is null."""
    if isinstance(event, ClickEvent):
        return WireClickEvent.model_construct(
            event_id=event.event_id,
            type="click",
            stream_id=event.stream_id,
            viewer_id=event.viewer_id,
            product_id=event.product_id,
            campaign_id=event.campaign_id or campaign_id,
            creator_id=creator_id,
            link_code=None,
            occurred_at=event.occurred_at,
        )
    if isinstance(event, ViewEvent):
        return WireViewEvent.model_construct(**event.__dict__)
    return WireAddToCartEvent.model_construct(**event.__dict__)


class OrderRecord(_Record):
    """``ll.orders`` value for a created order. Key: ``brand_id``."""

    v: Literal[1]
    event_id: Id
    type: Literal["order.created"]
    brand_id: Id
    order_id: Id
    click_id: Id | None
    coupon_code: CouponCode | None
    occurred_at: UtcDatetime
    received_at: UtcDatetime
    currency: Currency
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_ORDER_ITEMS)
    discount_minor: MinorAmount
    tax_minor: MinorAmount
    shipping_minor: MinorAmount
    source: OrderSource

    @classmethod
    def from_order(cls, order: OrderCreated, *, received_at: datetime, source: OrderSource) -> OrderRecord:
        return cls.model_construct(
            v=WIRE_VERSION, **order.__dict__, received_at=received_at, source=source
        )

    def net_items_minor(self) -> int:
        """Σ quantity x unit price - discount, never below 0."""
        gross = sum(i.quantity * i.unit_price_minor for i in self.items)
        return max(0, gross - self.discount_minor)


class RefundRecord(_Record):
    """``ll.orders`` value for a refund (``currency`` null when the source did not say)."""

    v: Literal[1]
    event_id: Id
    type: Literal["order.refunded"]
    brand_id: Id
    order_id: Id
    refund_id: Id
    amount_minor: PositiveMinorAmount
    currency: Currency | None
    occurred_at: UtcDatetime
    received_at: UtcDatetime
    source: OrderSource

    @classmethod
    def from_refund(
        cls, refund: OrderRefunded, *, received_at: datetime, source: OrderSource
    ) -> RefundRecord:
        return cls.model_construct(
            v=WIRE_VERSION, **refund.__dict__, received_at=received_at, source=source
        )


OrdersTopicRecord = Annotated[OrderRecord | RefundRecord, Field(discriminator="type")]
_ORDERS_ADAPTER: Final[TypeAdapter[OrderRecord | RefundRecord]] = TypeAdapter(OrdersTopicRecord)


def order_record_from_bytes(data: bytes | str) -> OrderRecord | RefundRecord:
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
