"""Status of commission as of a time T: pending, approved, paid and reversed.

Per order (and the creator it is attributed to), with ``paid`` = the sum of that creator's payout
items for the order in batches made at or before T (``paid_at <= as_of``; clawbacks negative):

    current  = commission after the refunds known now
    reversed = commission(original net) - current
    unpaid   = current - paid
    pending  = unpaid  when T < order time + hold_days and unpaid > 0, else 0
    approved = unpaid - pending            (negative = a clawback not yet netted by a payout)

so ``pending + approved + paid == current`` always holds, per order and summed per currency.
Payout items whose ``(brand_id, order_id, creator_id)`` matches none of the given states (the order
was re-attributed to someone else after payment) count as paid with current 0, i.e. as a
clawback in ``approved``.

Refunds are those in the states passed in (the caller decides which are known); ``as_of`` moves
the hold clock and selects which payout batches have happened.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from liveledger.domain.attribution import require_utc
from liveledger.domain.commission import PricedOrder
from liveledger.domain.payouts import PayoutItem

__all__ = [
    "CommissionBreakdown",
    "EarningsTotals",
    "OrderCommissionStatus",
    "PricedOrder",
    "approves_at",
    "commission_breakdown",
    "earnings_by",
    "earnings_totals",
    "is_pending",
    "order_breakdown",
    "order_status",
    "paid_by_order",
]

K = TypeVar("K", bound=Hashable)


P = TypeVar("P", bound=PricedOrder)

OrderCommissionStatus = Literal["none", "pending", "approved", "paid", "reversed"]


@dataclass(frozen=True, slots=True)
class CommissionBreakdown:
    pending: int = 0
    approved: int = 0
    paid: int = 0
    reversed: int = 0

    @property
    def current(self) -> int:
        return self.pending + self.approved + self.paid

    def __add__(self, other: CommissionBreakdown) -> CommissionBreakdown:
        return CommissionBreakdown(
            self.pending + other.pending,
            self.approved + other.approved,
            self.paid + other.paid,
            self.reversed + other.reversed,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "pending": self.pending,
            "approved": self.approved,
            "paid": self.paid,
            "reversed": self.reversed,
        }


@dataclass(frozen=True, slots=True)
class EarningsTotals:
    """One row of the earnings endpoint: ``orders`` counts attributed orders, refunded or not."""

    currency: str
    orders: int
    net_minor: int
    commission: CommissionBreakdown

    def __add__(self, other: EarningsTotals) -> EarningsTotals:
        if other.currency != self.currency:
            raise ValueError("amounts of different currencies are never added")
        return EarningsTotals(
            self.currency,
            self.orders + other.orders,
            self.net_minor + other.net_minor,
            self.commission + other.commission,
        )


def approves_at(state: PricedOrder) -> datetime:
    """Order time + the campaign's hold days (hold 0 when there are no terms)."""
    return state.occurred_at + timedelta(days=state.hold_days)


def is_pending(state: PricedOrder, as_of: datetime) -> bool:
    """Pending while ``as_of < order time + hold_days``; approved from that instant on."""
    require_utc(as_of, "as_of")
    return as_of < approves_at(state)


def order_breakdown(state: PricedOrder, paid_minor: int, as_of: datetime) -> CommissionBreakdown:
    """Breakdown of one order's commission for its creator, given what was paid for it so far."""
    current = state.commission_minor
    unpaid = current - paid_minor
    pending = unpaid if unpaid > 0 and is_pending(state, as_of) else 0
    return CommissionBreakdown(
        pending=pending,
        approved=unpaid - pending,
        paid=paid_minor,
        reversed=state.reversed_minor,
    )


def order_status(state: PricedOrder, paid_minor: int, as_of: datetime) -> OrderCommissionStatus:
    """One label for an order: none (never earned), reversed (refunded to 0 commission),
    paid (fully paid, including after a netted clawback), pending or approved."""
    if state.commission_minor + state.reversed_minor == 0:  # commission before any refund
        return "none"
    current = state.commission_minor
    if current == 0:
        return "reversed"
    if paid_minor >= current:
        return "paid"
    return "pending" if is_pending(state, as_of) else "approved"


def paid_by_order(items: Iterable[PayoutItem], as_of: datetime) -> dict[tuple[str, str, str], tuple[str, int]]:
    """``(brand_id, order_id, creator_id) -> (currency, paid)`` over items with ``paid_at <= as_of``."""
    require_utc(as_of, "as_of")
    out: dict[tuple[str, str, str], tuple[str, int]] = {}
    for item in items:
        if item.paid_at > as_of:
            continue
        key = (item.brand_id, item.order_id, item.creator_id)
        prev = out.get(key)
        out[key] = (item.currency, (prev[1] if prev else 0) + item.amount_minor)
    return out


def earnings_by(
    states: Iterable[P],
    payouts_included: Iterable[PayoutItem],
    as_of: datetime,
    key: Callable[[P], K],
) -> dict[tuple[K | None, str], EarningsTotals]:
    """Earnings grouped by ``(key(state), currency)``; only attributed states count.

    Orphan payout items (no matching state, see module docstring) are grouped under key ``None``.
    """
    return earnings_grouped(states, payouts_included, as_of, {"k": key})["k"]


def earnings_grouped(
    states: Iterable[P],
    payouts_included: Iterable[PayoutItem],
    as_of: datetime,
    keys: Mapping[str, Callable[[P], Any]],
) -> dict[str, dict[tuple[Any, str], EarningsTotals]]:
    """:func:`earnings_by` for several groupings at once: each order's breakdown is computed once
    and added to every grouping (``name -> {(key, currency): totals}``)."""
    paid = paid_by_order(payouts_included, as_of)
    out: dict[str, dict[tuple[Any, str], EarningsTotals]] = {name: {} for name in keys}
    seen: set[tuple[str, str, str]] = set()

    def add(group: tuple[Any, str], row: EarningsTotals, totals: dict[tuple[Any, str], EarningsTotals]) -> None:
        prev = totals.get(group)
        totals[group] = row if prev is None else prev + row

    for state in states:
        if state.creator_id is None:
            continue
        okey = (state.brand_id, state.order_id, state.creator_id)
        if okey in seen:
            raise ValueError(f"order {okey} passed twice")
        seen.add(okey)
        paid_minor = paid[okey][1] if okey in paid else 0
        row = EarningsTotals(state.currency, 1, state.net_minor, order_breakdown(state, paid_minor, as_of))
        for name, key in keys.items():
            add((key(state), state.currency), row, out[name])
    for okey, (currency, paid_minor) in sorted(paid.items()):
        if okey in seen:
            continue
        orphan = CommissionBreakdown(pending=0, approved=-paid_minor, paid=paid_minor, reversed=0)
        for name in keys:
            add((None, currency), EarningsTotals(currency, 0, 0, orphan), out[name])
    return out


def totals_by_currency(grouped: Mapping[tuple[Any, str], EarningsTotals]) -> dict[str, EarningsTotals]:
    """Collapse a grouping to one :class:`EarningsTotals` per currency."""
    out: dict[str, EarningsTotals] = {}
    for (_k, currency), row in grouped.items():
        prev = out.get(currency)
        out[currency] = row if prev is None else prev + row
    return out


def earnings_totals(
    states: Iterable[P], payouts_included: Iterable[PayoutItem], as_of: datetime
) -> dict[str, EarningsTotals]:
    """Earnings per currency (orders, net, commission breakdown)."""
    return totals_by_currency(earnings_by(states, payouts_included, as_of, lambda _s: 0))


def commission_breakdown(
    order_states: Iterable[P], payouts_included: Iterable[PayoutItem], as_of: datetime
) -> dict[str, CommissionBreakdown]:
    """``currency -> {pending, approved, paid, reversed}``; pending + approved + paid = current."""
    return {c: row.commission for c, row in earnings_totals(order_states, payouts_included, as_of).items()}
