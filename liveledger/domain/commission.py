"""Net revenue and commission of one order, recomputed as refunds arrive.

Integers only (minor units of the order's currency); no float ever touches money.

- net = max(0, gross items - discount - refunds)
- commission = floor(net * rate_bps / 10000) + (flat_minor if net > 0 else 0)
- reversed = commission(original net) - commission(current net)   (>= 0, refunds only lower net)

A refund id counts once: the first amount seen for a ``refund_id`` wins, later duplicates are
ignored even when their amount differs. A refund for an order not seen yet waits in the stream
worker's order state until the order arrives (streams/ledger.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import Protocol

from liveledger.domain.attribution import UNATTRIBUTED, Attribution, CampaignTerms, require_utc

__all__ = [
    "OrderState",
    "PricedOrder",
    "apply_refund",
    "commission_minor",
    "items_gross_minor",
    "net_minor",
    "reversed_minor",
]


def _check_int(value: int, name: str, *, allow_negative: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int (minor units), got {type(value).__name__}")
    if not allow_negative and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def items_gross_minor(items: Iterable[tuple[int, int]]) -> int:
    """Sum of ``quantity * unit_price_minor`` over ``(quantity, unit_price_minor)`` pairs."""
    total = 0
    for quantity, unit_price in items:
        _check_int(quantity, "quantity")
        _check_int(unit_price, "unit_price_minor")
        total += quantity * unit_price
    return total


def net_minor(gross_minor: int, discount_minor: int, refunds_total_minor: int) -> int:
    """Net item revenue: gross - discount - refunds, never below 0."""
    _check_int(gross_minor, "gross_minor")
    _check_int(discount_minor, "discount_minor")
    _check_int(refunds_total_minor, "refunds_total_minor")
    return max(0, gross_minor - discount_minor - refunds_total_minor)


def commission_minor(net: int, rate_bps: int, flat_minor: int) -> int:
    """floor(net * rate_bps / 10000) + flat_minor while net > 0; 0 when net == 0."""
    _check_int(net, "net")
    _check_int(rate_bps, "rate_bps")
    _check_int(flat_minor, "flat_minor")
    if net == 0:
        return 0
    return (net * rate_bps) // 10000 + flat_minor


class PricedOrder(Protocol):
    """An order as the status rules need it: its money as already priced. The ledger's stored rows
    (the read path reports the commission the worker stored; it never recomputes it) and
    :class:`OrderState` both satisfy it. ``hold_days`` is 0 when the
    order has no campaign terms."""

    @property
    def brand_id(self) -> str: ...
    @property
    def order_id(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def creator_id(self) -> str | None: ...
    @property
    def hold_days(self) -> int: ...
    @property
    def net_minor(self) -> int: ...
    @property
    def commission_minor(self) -> int: ...
    @property
    def reversed_minor(self) -> int: ...


@dataclass(frozen=True, slots=True)
class OrderState:
    """Everything needed to price one order's commission now.

    ``refunds`` maps refund_id -> amount_minor (read-only). ``terms`` is the campaign of the
    attribution (``None`` when unattributed or without campaign: commission 0).
    """

    brand_id: str
    order_id: str
    currency: str
    occurred_at: datetime
    gross_items_minor: int
    discount_minor: int
    attribution: Attribution = UNATTRIBUTED
    terms: CampaignTerms | None = None
    refunds: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        require_utc(self.occurred_at, "OrderState.occurred_at")
        _check_int(self.gross_items_minor, "gross_items_minor")
        _check_int(self.discount_minor, "discount_minor")
        for refund_id, amount in self.refunds.items():
            _check_int(amount, f"refund {refund_id}")
        if not isinstance(self.refunds, MappingProxyType):
            object.__setattr__(self, "refunds", MappingProxyType(dict(self.refunds)))
        if self.terms is not None:
            if self.attribution.campaign_id != self.terms.campaign_id:
                raise ValueError("terms must be the campaign of the attribution")
            if self.terms.brand_id != self.brand_id:
                raise ValueError("terms belong to another brand")

    @property
    def refunds_total_minor(self) -> int:
        return sum(self.refunds.values())

    @property
    def original_net_minor(self) -> int:
        return net_minor(self.gross_items_minor, self.discount_minor, 0)

    @property
    def net_minor(self) -> int:
        return net_minor(self.gross_items_minor, self.discount_minor, self.refunds_total_minor)

    def _commission(self, net: int) -> int:
        if self.terms is None or self.attribution.creator_id is None:
            return 0
        return commission_minor(net, self.terms.rate_bps, self.terms.flat_minor)

    @property
    def original_commission_minor(self) -> int:
        """Commission before any refund."""
        return self._commission(self.original_net_minor)

    @property
    def commission_minor(self) -> int:
        """Current commission (after the refunds seen so far)."""
        return self._commission(self.net_minor)

    @property
    def reversed_minor(self) -> int:
        return self.original_commission_minor - self.commission_minor

    @property
    def creator_id(self) -> str | None:
        return self.attribution.creator_id

    @property
    def campaign_id(self) -> str | None:
        return self.attribution.campaign_id

    @property
    def stream_id(self) -> str | None:
        return self.attribution.stream_id

    @property
    def hold_days(self) -> int:
        return self.terms.hold_days if self.terms is not None else 0


def apply_refund(state: OrderState, refund_id: str, amount_minor: int) -> tuple[OrderState, bool]:
    """Add a refund; ``(state, False)`` when ``refund_id`` was already applied (counts once)."""
    _check_int(amount_minor, "amount_minor")
    if refund_id in state.refunds:
        return state, False
    refunds = dict(state.refunds)
    refunds[refund_id] = amount_minor
    return replace(state, refunds=MappingProxyType(refunds)), True


def reversed_minor(state: OrderState) -> int:
    """Commission removed by refunds: commission(original net) - commission(current net)."""
    return state.reversed_minor
