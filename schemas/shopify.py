"""Shopify ``orders/create`` and ``refunds/create`` webhook payloads, and their normalisation.

The models are lenient (``extra="allow"``): Shopify sends dozens of fields we keep but do not
read. Only what normalisation needs is typed. Normalisers are pure functions returning the same
:class:`~schemas.orders.OrderCreated` / :class:`~schemas.orders.OrderRefunded` as the native
webhook, so everything downstream handles one shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from schemas.errors import EmptyRefund, SchemaError, ValidationFailed, errors_from_pydantic
from schemas.ids import is_valid_id
from schemas.money import MAX_MINOR, Currency, MoneyError, parse_decimal_to_minor
from schemas.orders import OrderCreated, OrderRefunded
from schemas.time import UtcDatetime, utcnow

__all__ = [
    "CLICK_PARAM",
    "ShopifyCancellation",
    "ShopifyDecimal",
    "ShopifyDiscountCode",
    "ShopifyLineItem",
    "ShopifyMoney",
    "ShopifyMoneySet",
    "ShopifyNoteAttribute",
    "ShopifyOrder",
    "ShopifyRefund",
    "ShopifyRefundLineItem",
    "ShopifyTransaction",
    "click_id_from_order",
    "is_test_order",
    "normalise_shopify_cancellation",
    "normalise_shopify_order",
    "normalise_shopify_refund",
]

CLICK_PARAM: Final = "ll_click"


def _decimal_text(value: Any) -> str:
    """Shopify sends money as decimal strings (``"199.00"``) and, in a few places (refund line
    ``subtotal``), as JSON numbers. Numbers become the shortest text that round-trips
    (``repr``), which is the JSON literal itself for any amount with up to 15 significant digits;
    the text is then converted exactly by :func:`parse_decimal_to_minor`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise PydanticCustomError("decimal", "must be a decimal string, not a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise PydanticCustomError("decimal", "must be a decimal number, not NaN/Infinity")
        text = repr(value)
        if "e" in text or "E" in text:
            raise PydanticCustomError("decimal", "must be a plain decimal number")
        return text
    raise PydanticCustomError("decimal", "must be a decimal string such as \"199.00\"")


ShopifyDecimal = Annotated[str, BeforeValidator(_decimal_text)]
"""A Shopify money amount kept as exact decimal text (validated against the currency later)."""

_LENIENT = ConfigDict(extra="allow", frozen=True)


class ShopifyMoney(BaseModel):
    model_config = _LENIENT
    amount: ShopifyDecimal
    currency_code: str | None = None


class ShopifyMoneySet(BaseModel):
    model_config = _LENIENT
    shop_money: ShopifyMoney | None = None
    presentment_money: ShopifyMoney | None = None


class ShopifyLineItem(BaseModel):
    model_config = _LENIENT
    id: int | None = None
    sku: str | None = None
    product_id: int | None = None
    variant_id: int | None = None
    title: str | None = None
    price: ShopifyDecimal
    quantity: int


class ShopifyDiscountCode(BaseModel):
    model_config = _LENIENT
    code: str
    amount: ShopifyDecimal | None = None
    type: str | None = None


class ShopifyNoteAttribute(BaseModel):
    model_config = _LENIENT
    name: str
    value: Any = None


class ShopifyShippingLine(BaseModel):
    model_config = _LENIENT
    price: ShopifyDecimal = "0"


class ShopifyOrder(BaseModel):
    """The ``orders/create`` payload (the REST Order resource)."""

    model_config = _LENIENT
    id: int
    currency: Currency
    created_at: UtcDatetime
    line_items: list[ShopifyLineItem]
    total_discounts: ShopifyDecimal = "0"
    total_tax: ShopifyDecimal = "0"
    total_shipping_price_set: ShopifyMoneySet | None = None
    shipping_lines: list[ShopifyShippingLine] = []
    discount_codes: list[ShopifyDiscountCode] = []
    note_attributes: list[ShopifyNoteAttribute] = []
    landing_site: str | None = None


class ShopifyCancellation(BaseModel):
    """The ``orders/cancelled`` payload: the Order resource with ``cancelled_at`` set."""

    model_config = _LENIENT
    id: int
    cancelled_at: UtcDatetime | None = None


class ShopifyRefundLineItem(BaseModel):
    model_config = _LENIENT
    id: int | None = None
    line_item_id: int | None = None
    quantity: int
    subtotal: ShopifyDecimal | None = None
    subtotal_set: ShopifyMoneySet | None = None
    line_item: ShopifyLineItem | None = None


class ShopifyTransaction(BaseModel):
    model_config = _LENIENT
    id: int | None = None
    kind: str | None = None
    amount: ShopifyDecimal | None = None
    currency: str | None = None


class ShopifyRefund(BaseModel):
    """The ``refunds/create`` payload (the REST Refund resource)."""

    model_config = _LENIENT
    id: int
    order_id: int
    created_at: UtcDatetime
    processed_at: UtcDatetime | None = None
    refund_line_items: list[ShopifyRefundLineItem] = []
    transactions: list[ShopifyTransaction] = []


def _validate(model: type[BaseModel], payload: Any) -> Any:
    if isinstance(payload, model):
        return payload
    if not isinstance(payload, dict):
        raise ValidationFailed([SchemaError("", "must be a JSON object")])
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise ValidationFailed(errors_from_pydantic(exc)) from None


def _minor(text: str, currency: str, field: str, errors: list[SchemaError]) -> int:
    try:
        return parse_decimal_to_minor(text, currency)
    except MoneyError as exc:
        errors.append(SchemaError(field, str(exc)))
        return 0


def click_id_from_order(order: ShopifyOrder) -> str | None:
    """``note_attributes`` entry ``ll_click``, else the ``ll_click`` query parameter of
    ``landing_site``. Values that are not valid ids are ignored (``None``): the order still counts,
    it is just not attributed by click."""
    for attr in order.note_attributes:
        if attr.name == CLICK_PARAM and is_valid_id(attr.value):
            return str(attr.value)
    if order.landing_site:
        try:
            query = urlsplit(order.landing_site).query
        except ValueError:
            return None
        for value in parse_qs(query).get(CLICK_PARAM, []):
            if is_valid_id(value):
                return value
    return None


def _sku(item: ShopifyLineItem) -> str | None:
    if item.sku and is_valid_id(item.sku):
        return item.sku
    for fallback in (item.product_id, item.variant_id, item.id):
        if fallback is not None:
            return str(fallback)
    return None


def normalise_shopify_order(
    payload: Any, brand_id: str, webhook_id: str, now: datetime | None = None
) -> OrderCreated:
    """Shopify ``orders/create`` → :class:`OrderCreated` (``event_id = "shopify:" + webhook_id``).

    Items: line items with ``quantity > 0``; ``sku`` (else product id, variant id, line id);
    ``price`` converted exactly in the order's ``currency``. ``discount_minor`` from
    ``total_discounts``, ``tax_minor`` from ``total_tax``, ``shipping_minor`` from
    ``total_shipping_price_set.shop_money`` (else Σ ``shipping_lines[].price``). Coupon: the first
    ``discount_codes[].code`` that is a valid id (upper-cased). Raises :class:`ValidationFailed`.
    """
    order: ShopifyOrder = _validate(ShopifyOrder, payload)
    cur = order.currency
    errors: list[SchemaError] = []
    items: list[dict[str, Any]] = []
    for i, line in enumerate(order.line_items):
        price = _minor(line.price, cur, f"line_items[{i}].price", errors)
        if line.quantity < 0:
            errors.append(SchemaError(f"line_items[{i}].quantity", "must not be negative"))
        if line.quantity <= 0:
            continue
        sku = _sku(line)
        if sku is None:
            errors.append(SchemaError(f"line_items[{i}].sku", "no sku, product_id, variant_id or id"))
            continue
        items.append({"sku": sku, "quantity": line.quantity, "unit_price_minor": price})
    if not items and not errors:
        errors.append(SchemaError("line_items", "no line item with a positive quantity"))
    discount = _minor(order.total_discounts, cur, "total_discounts", errors)
    tax = _minor(order.total_tax, cur, "total_tax", errors)
    ship_set = order.total_shipping_price_set
    if ship_set is not None and ship_set.shop_money is not None:
        shipping = _minor(ship_set.shop_money.amount, cur, "total_shipping_price_set", errors)
    else:
        shipping = sum(
            _minor(s.price, cur, f"shipping_lines[{i}].price", errors)
            for i, s in enumerate(order.shipping_lines)
        )
    if errors:
        raise ValidationFailed(errors)
    coupon = next((d.code for d in order.discount_codes if is_valid_id(d.code)), None)
    raw = {
        "event_id": "shopify:" + webhook_id,
        "type": "order.created",
        "brand_id": brand_id,
        "order_id": str(order.id),
        "click_id": click_id_from_order(order),
        "coupon_code": coupon,
        "occurred_at": order.created_at,
        "currency": cur,
        "items": items,
        "discount_minor": discount,
        "tax_minor": tax,
        "shipping_minor": min(shipping, MAX_MINOR),
    }
    try:
        return OrderCreated.model_validate(raw, context={"now": now or utcnow()})
    except ValidationError as exc:
        raise ValidationFailed(errors_from_pydantic(exc)) from None


def _refund_currency(refund: ShopifyRefund, given: str | None) -> str | None:
    for rli in refund.refund_line_items:
        ss = rli.subtotal_set
        if ss is not None and ss.shop_money is not None and ss.shop_money.currency_code:
            return ss.shop_money.currency_code
    for tx in refund.transactions:
        if tx.currency:
            return tx.currency
    return given


def normalise_shopify_refund(
    payload: Any,
    brand_id: str,
    webhook_id: str,
    currency: str | None = None,
    now: datetime | None = None,
) -> OrderRefunded:
    """Shopify ``refunds/create`` → :class:`OrderRefunded` (``event_id = "shopify:" + webhook_id``).

    ``amount_minor`` = Σ ``refund_line_items[].subtotal`` (the shop-money ``subtotal_set`` amount
    when present, it is the exact string form), else ``line_item.price x quantity`` for lines
    without a subtotal. Currency: the refund's ``subtotal_set`` / ``transactions[].currency``, else
    ``currency`` (e.g. the brand's); one is needed for the exact conversion. Raises
    :class:`EmptyRefund` when no line-item money is given back (shipping-only / restock-only
    refunds), :class:`ValidationFailed` otherwise.
    """
    refund: ShopifyRefund = _validate(ShopifyRefund, payload)
    cur = _refund_currency(refund, currency)
    if cur is None:
        raise ValidationFailed([SchemaError("currency", "unknown: not in the refund and not given")])
    errors: list[SchemaError] = []
    total = 0
    for i, rli in enumerate(refund.refund_line_items):
        field = f"refund_line_items[{i}]"
        if rli.quantity < 0:
            errors.append(SchemaError(f"{field}.quantity", "must not be negative"))
            continue
        ss = rli.subtotal_set
        if ss is not None and ss.shop_money is not None:
            total += _minor(ss.shop_money.amount, cur, f"{field}.subtotal_set", errors)
        elif rli.subtotal is not None:
            total += _minor(rli.subtotal, cur, f"{field}.subtotal", errors)
        elif rli.line_item is not None:
            total += rli.quantity * _minor(rli.line_item.price, cur, f"{field}.line_item.price", errors)
        else:
            errors.append(SchemaError(field, "no subtotal and no line_item price"))
    if errors:
        raise ValidationFailed(errors)
    if total <= 0:
        raise EmptyRefund([SchemaError("refund_line_items", "no line-item amount refunded")])
    raw = {
        "event_id": "shopify:" + webhook_id,
        "type": "order.refunded",
        "brand_id": brand_id,
        "order_id": str(refund.order_id),
        "refund_id": str(refund.id),
        "amount_minor": total,
        "currency": cur,
        "occurred_at": refund.created_at,
    }
    try:
        return OrderRefunded.model_validate(raw, context={"now": now or utcnow()})
    except ValidationError as exc:
        raise ValidationFailed(errors_from_pydantic(exc)) from None


def is_test_order(payload: Any) -> bool:
    """Shopify's sample and test-mode orders carry ``"test": true``: never revenue."""
    return isinstance(payload, dict) and payload.get("test") is True


def normalise_shopify_cancellation(payload: Any, now: datetime) -> tuple[str, datetime]:
    """``orders/cancelled`` (or an ``orders/create`` that arrives already cancelled) → ``(order_id,
    cancelled_at)``; ``cancelled_at`` falls back to ``now``. Raises :class:`ValidationFailed`."""
    cancellation: ShopifyCancellation = _validate(ShopifyCancellation, payload)
    return str(cancellation.id), cancellation.cancelled_at or now
