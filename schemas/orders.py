"""The native order webhook (``POST /v1/webhooks/orders``): ``order.created`` / ``order.refunded``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Final, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from liveledger.domain.commission import items_gross_minor, net_minor
from schemas.errors import MalformedJson, SchemaError, ValidationFailed, errors_from_pydantic
from schemas.ids import CouponCode, Id
from schemas.money import Currency, MinorAmount, PositiveMinorAmount, Quantity
from schemas.time import OccurredAt, utcnow

__all__ = [
    "MAX_ORDER_ITEMS",
    "OrderAdapter",
    "OrderCreated",
    "OrderItem",
    "OrderRefunded",
    "OrderWebhook",
    "gross_items_minor",
    "net_items_minor",
    "parse_order_webhook",
    "validate_order_webhook",
]

MAX_ORDER_ITEMS: Final = 1000

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class OrderItem(BaseModel):
    model_config = _STRICT

    sku: Id
    quantity: Quantity
    unit_price_minor: MinorAmount


class OrderCreated(BaseModel):
    """A placed order. ``discount_minor``/``tax_minor``/``shipping_minor`` default to 0."""

    model_config = _STRICT

    event_id: Id
    type: Literal["order.created"]
    brand_id: Id
    order_id: Id
    click_id: Id | None = None
    coupon_code: CouponCode | None = None
    occurred_at: OccurredAt
    currency: Currency
    items: list[OrderItem] = Field(min_length=1, max_length=MAX_ORDER_ITEMS)
    discount_minor: MinorAmount = 0
    tax_minor: MinorAmount = 0
    shipping_minor: MinorAmount = 0


class OrderRefunded(BaseModel):
    """Net item revenue given back for an order. ``currency`` is an optional extension: when given
    it must equal the order's currency (checked downstream, where the order is known)."""

    model_config = _STRICT

    event_id: Id
    type: Literal["order.refunded"]
    brand_id: Id
    order_id: Id
    refund_id: Id
    amount_minor: PositiveMinorAmount
    currency: Currency | None = None
    occurred_at: OccurredAt


OrderWebhook = Annotated[OrderCreated | OrderRefunded, Field(discriminator="type")]
OrderAdapter: Final[TypeAdapter[OrderCreated | OrderRefunded]] = TypeAdapter(OrderWebhook)
_ORDER_VALIDATORS: Final = {
    "order.created": OrderCreated.__pydantic_validator__,
    "order.refunded": OrderRefunded.__pydantic_validator__,
}


class HasLines(Protocol):
    """An order with lines and an order-level discount (webhook body or ``ll.orders`` record)."""

    @property
    def items(self) -> Sequence[OrderItem]: ...

    @property
    def discount_minor(self) -> int: ...


def gross_items_minor(order: HasLines) -> int:
    """Σ quantity x unit_price_minor (:func:`liveledger.domain.commission.items_gross_minor`)."""
    return items_gross_minor((item.quantity, item.unit_price_minor) for item in order.items)


def net_items_minor(order: HasLines) -> int:
    """Net item revenue before refunds: the contract's formula, kept once in
    :func:`liveledger.domain.commission.net_minor` (tax and shipping excluded, never below 0)."""
    return net_minor(gross_items_minor(order), order.discount_minor, 0)


def validate_order_webhook(raw: Any, now: datetime | None = None) -> OrderCreated | OrderRefunded:
    """Validate an already-decoded native webhook object; raises :class:`ValidationFailed`."""
    if not isinstance(raw, dict):
        raise ValidationFailed([SchemaError("", "must be a JSON object")])
    etype = raw.get("type")
    validator = _ORDER_VALIDATORS.get(etype) if isinstance(etype, str) else None
    if validator is None:
        reason = "required" if etype is None else "unknown type"
        raise ValidationFailed(
            [SchemaError("type", f"{reason} (expected 'order.created' or 'order.refunded')")]
        )
    try:
        order: OrderCreated | OrderRefunded = validator.validate_python(
            raw, context={"now": now or utcnow()}
        )
    except ValidationError as exc:
        raise ValidationFailed(errors_from_pydantic(exc)) from None
    return order


def parse_order_webhook(body: bytes, now: datetime | None = None) -> OrderCreated | OrderRefunded:
    """Raw request body → model. ``MalformedJson`` (400) or ``ValidationFailed`` (422)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"malformed JSON: {exc}") from None
    return validate_order_webhook(raw, now)
