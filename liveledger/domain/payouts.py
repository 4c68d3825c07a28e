"""Payout planning: what each creator is paid (or carries over) for a period.

Data model the ledger feeds in (docs/money-rules.md, "Payouts"):

- :class:`CommissionVersion` - one row per change of an order's commission (order created,
  refund applied, re-attributed). ``version`` grows by one per change of the same
  ``(brand_id, order_id)``; ``effective_at`` is when the change entered the ledger (the triggering
  record's ``received_at``, kept non-decreasing per order: see :func:`version_from_state`).
- :class:`PayoutItem` - one row per ``(payout batch, order, creator)`` recording the amount paid
  for that order in that batch; negative for a clawback.

For ``period_end`` P the cutoff is the next day 00:00 UTC. For each order the latest version with
``effective_at < cutoff`` is used. Per ``(order, creator)``:

    entitled = version.commission_minor if the order's creator is this creator and approved
               (approves_at < cutoff), else 0
    delta    = entitled - paid_before            (approved orders / former creators)
    delta    = min(0, entitled - paid_before)    (orders still on hold: clawbacks only)

Per ``(creator, currency)`` the deltas are summed; the line is paid when the total is > 0 and
>= the threshold (largest ``min_payout_minor`` of the creator's campaigns in that currency), else
the whole group is carried over (nothing of it is marked paid, it is re-planned next time).

Pure: the same inputs give the same plan. Items of batches for ``period_end >= P`` are not "paid
before" (so re-planning P after its batch was stored reproduces it); items of a *later* batch
make planning P an error (:class:`PayoutSequenceError`), since it would pay twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, Protocol

from liveledger.domain.attribution import DEFAULT_MIN_PAYOUT_MINOR, require_utc
from liveledger.domain.commission import OrderState, PricedOrder

__all__ = [
    "CarriedOver",
    "CommissionVersion",
    "PayoutItem",
    "PayoutLine",
    "PayoutOrderAmount",
    "PayoutPlan",
    "PayoutSequenceError",
    "payout_cutoff",
    "payout_id_for",
    "payout_items",
    "plan_payout",
    "version_from_state",
]


class PayoutSequenceError(ValueError):
    """Planning a period that a later payout batch already covered."""


def payout_cutoff(period_end: date) -> datetime:
    """The exclusive end of ``period_end``: the next day at 00:00 UTC."""
    return datetime.combine(period_end + timedelta(days=1), time(0), tzinfo=UTC)


def payout_id_for(period_end: date) -> str:
    """Deterministic id of the one batch per period: ``po-YYYY-MM-DD``."""
    return f"po-{period_end.isoformat()}"


@dataclass(frozen=True, slots=True)
class CommissionVersion:
    """One version of an order's commission as the ledger recorded it."""

    brand_id: str
    order_id: str
    version: int
    effective_at: datetime
    order_occurred_at: datetime
    currency: str
    creator_id: str | None
    campaign_id: str | None
    stream_id: str | None
    net_minor: int
    commission_minor: int
    reversed_minor: int
    hold_days: int
    min_payout_minor: int

    def __post_init__(self) -> None:
        require_utc(self.effective_at, "CommissionVersion.effective_at")
        require_utc(self.order_occurred_at, "CommissionVersion.order_occurred_at")
        if self.commission_minor < 0 or self.hold_days < 0 or self.min_payout_minor < 0:
            raise ValueError("commission, hold_days and min_payout_minor must be >= 0")

    @property
    def approves_at(self) -> datetime:
        """The instant the commission stops being pending: order time + hold days."""
        return self.order_occurred_at + timedelta(days=self.hold_days)


class VersionSource(PricedOrder, Protocol):
    """What a commission version is made from: a priced order with its campaign and stream (an
    :class:`OrderState`, or a ledger row as the API reads it)."""

    @property
    def campaign_id(self) -> str | None: ...
    @property
    def stream_id(self) -> str | None: ...


def version_from_state(
    state: VersionSource,
    version: int,
    effective_at: datetime,
    previous: CommissionVersion | None = None,
    *,
    min_payout_minor: int | None = None,
) -> CommissionVersion:
    """The ledger row for ``state``. ``effective_at`` is clamped to be >= ``previous.effective_at``.
    ``min_payout_minor`` defaults to the state's campaign terms (an :class:`OrderState`), else the
    contract's default; the API passes the campaign's current setting."""
    require_utc(effective_at, "effective_at")
    if previous is not None:
        if version <= previous.version:
            raise ValueError("version must grow")
        effective_at = max(effective_at, previous.effective_at)
    if min_payout_minor is None:
        terms = state.terms if isinstance(state, OrderState) else None
        min_payout_minor = terms.min_payout_minor if terms is not None else DEFAULT_MIN_PAYOUT_MINOR
    return CommissionVersion(
        brand_id=state.brand_id,
        order_id=state.order_id,
        version=version,
        effective_at=effective_at,
        order_occurred_at=state.occurred_at,
        currency=state.currency,
        creator_id=state.creator_id,
        campaign_id=state.campaign_id,
        stream_id=state.stream_id,
        net_minor=state.net_minor,
        commission_minor=state.commission_minor,
        reversed_minor=state.reversed_minor,
        hold_days=state.hold_days,
        min_payout_minor=min_payout_minor,
    )


@dataclass(frozen=True, slots=True)
class PayoutItem:
    """Amount paid (negative: clawed back) for one order to one creator in one payout batch."""

    payout_id: str
    period_end: date
    brand_id: str
    order_id: str
    creator_id: str
    currency: str
    amount_minor: int
    paid_at: datetime

    def __post_init__(self) -> None:
        require_utc(self.paid_at, "PayoutItem.paid_at")


@dataclass(frozen=True, slots=True)
class PayoutOrderAmount:
    brand_id: str
    order_id: str
    amount_minor: int


@dataclass(frozen=True, slots=True)
class PayoutLine:
    """What one creator is paid in one currency. ``orders`` counts the orders in ``items``."""

    creator_id: str
    currency: str
    amount_minor: int
    orders: int
    items: tuple[PayoutOrderAmount, ...]


@dataclass(frozen=True, slots=True)
class CarriedOver:
    """A creator's unpaid balance in a currency that is not paid in this batch."""

    creator_id: str
    currency: str
    amount_minor: int
    orders: int
    threshold_minor: int
    reason: Literal["below_minimum", "not_positive"]
    items: tuple[PayoutOrderAmount, ...]


@dataclass(frozen=True, slots=True)
class PayoutPlan:
    payout_id: str
    period_end: date
    cutoff: datetime
    lines: tuple[PayoutLine, ...]
    carried_over: tuple[CarriedOver, ...]

    def totals(self) -> dict[str, int]:
        """Paid total per currency."""
        out: dict[str, int] = defaultdict(int)
        for line in self.lines:
            out[line.currency] += line.amount_minor
        return dict(out)


def _latest_versions(
    versions: Iterable[CommissionVersion], cutoff: datetime
) -> dict[tuple[str, str], CommissionVersion]:
    latest: dict[tuple[str, str], CommissionVersion] = {}
    for v in versions:
        if v.effective_at >= cutoff:
            continue
        key = (v.brand_id, v.order_id)
        cur = latest.get(key)
        if cur is None or v.version > cur.version:
            latest[key] = v
        elif v.version == cur.version and v != cur:
            raise ValueError(f"two different rows for version {v.version} of order {key}")
    return latest


def plan_payout(
    period_end: date,
    versions: Iterable[CommissionVersion],
    paid_items: Iterable[PayoutItem],
    min_payout_by_creator_currency: Mapping[tuple[str, str], int] | None = None,
    *,
    payout_id: str | None = None,
) -> PayoutPlan:
    """Plan the batch for ``period_end`` (see the module docstring for the rules).

    ``versions``: every commission version of the orders concerned (any order, any time; those
    effective at or after the cutoff are ignored). ``paid_items``: every payout item recorded so
    far. ``min_payout_by_creator_currency``: optional extra thresholds, combined with the versions'
    ``min_payout_minor`` by taking the largest; when nothing is known ``DEFAULT_MIN_PAYOUT_MINOR``.
    """
    cutoff = payout_cutoff(period_end)
    latest = _latest_versions(versions, cutoff)

    paid: dict[tuple[str, str, str], int] = defaultdict(int)  # (brand, order, creator) -> paid
    currency_of: dict[tuple[str, str, str], str] = {}
    for item in paid_items:
        if item.period_end > period_end:
            raise PayoutSequenceError(
                f"payout {item.payout_id} for {item.period_end} already exists after {period_end}"
            )
        if item.period_end == period_end:
            continue  # this period's own batch: planning again must reproduce it
        key = (item.brand_id, item.order_id, item.creator_id)
        paid[key] += item.amount_minor
        currency_of[key] = item.currency

    thresholds: dict[tuple[str, str], int] = {}
    entitled: dict[tuple[str, str, str], int] = {}
    approved: dict[tuple[str, str, str], bool] = {}
    for (brand_id, order_id), v in latest.items():
        if v.creator_id is None:
            continue
        key = (brand_id, order_id, v.creator_id)
        entitled[key] = v.commission_minor
        approved[key] = v.approves_at < cutoff
        currency_of[key] = v.currency
        if v.campaign_id is not None:
            tkey = (v.creator_id, v.currency)
            thresholds[tkey] = max(thresholds.get(tkey, 0), v.min_payout_minor)
    for tkey, value in (min_payout_by_creator_currency or {}).items():
        thresholds[tkey] = max(thresholds.get(tkey, 0), value)

    groups: dict[tuple[str, str], list[PayoutOrderAmount]] = defaultdict(list)
    for key in sorted(set(entitled) | set(paid)):
        brand_id, order_id, creator_id = key
        diff = entitled.get(key, 0) - paid.get(key, 0)
        if key in entitled and not approved[key]:
            diff = min(0, diff)
        if diff != 0:
            groups[(creator_id, currency_of[key])].append(PayoutOrderAmount(brand_id, order_id, diff))

    lines: list[PayoutLine] = []
    carried: list[CarriedOver] = []
    for (creator_id, currency), items in sorted(groups.items()):
        total = sum(i.amount_minor for i in items)
        threshold = thresholds.get((creator_id, currency), DEFAULT_MIN_PAYOUT_MINOR)
        orders = len({(i.brand_id, i.order_id) for i in items})
        if total > 0 and total >= threshold:
            lines.append(PayoutLine(creator_id, currency, total, orders, tuple(items)))
        else:
            carried.append(
                CarriedOver(
                    creator_id,
                    currency,
                    total,
                    orders,
                    threshold,
                    "not_positive" if total <= 0 else "below_minimum",
                    tuple(items),
                )
            )
    return PayoutPlan(
        payout_id=payout_id if payout_id is not None else payout_id_for(period_end),
        period_end=period_end,
        cutoff=cutoff,
        lines=tuple(lines),
        carried_over=tuple(carried),
    )


def payout_items(plan: PayoutPlan, paid_at: datetime) -> tuple[PayoutItem, ...]:
    """The rows to store for a plan's paid lines (carried-over groups produce none)."""
    require_utc(paid_at, "paid_at")
    out: list[PayoutItem] = []
    for line in plan.lines:
        for item in line.items:
            out.append(
                PayoutItem(
                    payout_id=plan.payout_id,
                    period_end=plan.period_end,
                    brand_id=item.brand_id,
                    order_id=item.order_id,
                    creator_id=line.creator_id,
                    currency=line.currency,
                    amount_minor=item.amount_minor,
                    paid_at=paid_at,
                )
            )
    return tuple(out)
