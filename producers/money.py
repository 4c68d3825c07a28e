"""Currency exponents, exact minor-unit <-> decimal-string conversion and RFC 3339 rendering.

The simulator keeps every amount as an integer count of minor units; Shopify payloads get decimal
strings rendered from those integers (never through float), and parsing back uses ``Decimal``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

# ISO 4217 minor-unit exponents of the currencies the simulator uses.
EXPONENTS: dict[str, int] = {"USD": 2, "EUR": 2, "GBP": 2, "JPY": 0, "KWD": 3}

# A shop's local UTC offset per currency, so Shopify timestamps carry realistic offsets.
SHOP_UTC_OFFSET_MINUTES: dict[str, int] = {"USD": -300, "EUR": 60, "GBP": 0, "JPY": 540, "KWD": 180}


def exponent(currency: str) -> int:
    return EXPONENTS[currency]


def minor_to_decimal_str(amount_minor: int, currency: str) -> str:
    """1999 USD -> "19.99"; 1990 JPY -> "1990"; 12345 KWD -> "12.345"."""
    exp = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"


def decimal_str_to_minor(value: str, currency: str) -> int:
    """Exact inverse of :func:`minor_to_decimal_str`; raises ValueError on excess precision."""
    scaled = Decimal(value).scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value!r} has more decimals than {currency} allows")
    return int(scaled)


def ms_to_rfc3339(ms: int, offset_minutes: int = 0) -> str:
    """Epoch milliseconds -> RFC 3339 with milliseconds; UTC renders with ``Z``."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC).replace(microsecond=(ms % 1000) * 1000)
    if offset_minutes == 0:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    local = dt.astimezone(timezone(timedelta(minutes=offset_minutes)))
    return local.isoformat(timespec="milliseconds")


def ms_to_shopify_time(ms: int, offset_minutes: int) -> str:
    """Shopify style: whole seconds with the shop's offset, e.g. ``2026-11-25T15:00:00-05:00``.

    ``ms`` must already be a whole second (callers round up so an order never moves before its click).
    """
    if ms % 1000:
        raise ValueError("Shopify timestamps have whole seconds")
    dt = datetime.fromtimestamp(ms // 1000, tz=UTC).astimezone(timezone(timedelta(minutes=offset_minutes)))
    return dt.isoformat(timespec="seconds")


def ceil_to_second(ms: int) -> int:
    return -(-ms // 1000) * 1000


def now_ms() -> int:
    return int(datetime.now(tz=UTC).timestamp() * 1000)


DAY_MS = 86_400_000  # one day in milliseconds
