"""Money: integer minor units plus an ISO-4217 code, with exact decimal-string conversion.

Never goes through ``float``: decimal strings are parsed digit by digit (``"199.00"`` → 19900 for
USD, ``"1.234"`` → 1234 for KWD) and refused when they carry more precision than the currency's
minor unit can hold.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "CURRENCY_EXPONENTS",
    "MAX_MINOR",
    "MAX_QUANTITY",
    "Currency",
    "CurrencyMismatch",
    "MinorAmount",
    "Money",
    "MoneyError",
    "PositiveMinorAmount",
    "Quantity",
    "check_currency",
    "exponent",
    "format_minor",
    "parse_decimal_to_minor",
]

# ISO-4217 active codes → number of minor-unit digits (the "E" column of the ISO list).
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP "
    "GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP "
    "LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR "
    "NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN "
    "SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD YER ZAR ZMW "
    "ZWG"
)
CURRENCY_EXPONENTS: Final[dict[str, int]] = {
    **{c: 2 for c in _TWO.split()},
    **{c: 0 for c in _ZERO.split()},
    **{c: 3 for c in _THREE.split()},
    **{c: 4 for c in _FOUR.split()},
}

# Bounds that keep every sum well inside a signed 64-bit integer (ClickHouse Int64, JS-safe too).
MAX_MINOR: Final = 10**15
MAX_QUANTITY: Final = 1_000_000
_MAX_INT_DIGITS: Final = 16

_POW10: Final[tuple[int, ...]] = (1, 10, 100, 1000, 10000)
_DECIMAL_RE: Final = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


class MoneyError(ValueError):
    """A decimal string or currency that cannot be turned into exact minor units."""


class CurrencyMismatch(MoneyError):
    """Two amounts of different currencies were combined."""


def exponent(currency: str) -> int:
    """Minor-unit exponent of an ISO-4217 code (``USD`` → 2); ``MoneyError`` when unknown."""
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise MoneyError(_currency_reason(currency)) from None


def _currency_reason(value: str) -> str:
    shown = value if len(value) <= 12 else value[:12] + "…"
    if value.upper() in CURRENCY_EXPONENTS:
        return f"currency codes are upper-case ISO-4217 codes: got {shown!r}, use {value.upper()!r}"
    return f"unknown ISO-4217 currency code {shown!r}"


def parse_decimal_to_minor(s: str, currency: str, *, allow_negative: bool = False) -> int:
    """Exact ``"199.00"`` → ``19900`` (USD). Plain ASCII digits with an optional ``.`` only.

    Refused with ``MoneyError``: non-strings, empty or whitespace-padded text, ``+``/exponent
    forms (``1e3``), ``NaN``/``Infinity``, thousands separators, non-ASCII digits, more than 16
    integer digits, more fractional digits than the currency allows unless the extra ones are
    zeros (JPY ``"100.00"`` → 100, JPY ``"1.50"`` refused, USD ``"19.999"`` refused), and a
    leading ``-`` unless ``allow_negative`` (``"-0"`` included).
    """
    if not isinstance(s, str):
        raise MoneyError(f"must be a decimal string, got {type(s).__name__}")
    exp = exponent(currency)
    m = _DECIMAL_RE.fullmatch(s)
    if m is None:
        raise MoneyError("not a plain decimal number (digits with an optional '.', e.g. \"199.00\")")
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    if len(whole) > _MAX_INT_DIGITS:
        raise MoneyError("amount too large")
    if len(frac) > exp:
        if frac[exp:].strip("0"):
            raise MoneyError(
                f"more decimals than {currency} allows ({exp}); refusing to round {s!r}"
            )
        frac = frac[:exp]
    minor: int = int(whole) * _POW10[exp] + (int(frac.ljust(exp, "0")) if exp else 0)
    if minor > MAX_MINOR:
        raise MoneyError("amount too large")
    if sign:
        if not allow_negative:
            raise MoneyError("must not be negative")
        return -minor
    return minor


def format_minor(amount: int, currency: str) -> str:
    """``(19900, "USD")`` → ``"199.00"``; ``(1000, "JPY")`` → ``"1000"``; ``(-5, "KWD")`` → ``"-0.005"``."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise MoneyError("amount must be an int of minor units")
    exp = exponent(currency)
    sign = "-" if amount < 0 else ""
    digits = str(abs(amount))
    if exp == 0:
        return sign + digits
    digits = digits.rjust(exp + 1, "0")
    return f"{sign}{digits[:-exp]}.{digits[-exp:]}"


def check_currency(value: str) -> str:
    """Pydantic after-validator: an upper-case, known ISO-4217 code."""
    if value not in CURRENCY_EXPONENTS:
        raise PydanticCustomError("currency", "{reason}", {"reason": _currency_reason(value)})
    return value


Currency = Annotated[
    str,
    Strict(),
    AfterValidator(check_currency),
    WithJsonSchema({"type": "string", "enum": sorted(CURRENCY_EXPONENTS)}),
]
"""An upper-case ISO-4217 code known to :data:`CURRENCY_EXPONENTS` (``"usd"`` is refused)."""

MinorAmount = Annotated[int, Strict(), Field(ge=0, le=MAX_MINOR)]
"""A non-negative integer count of minor units (no floats, no booleans, no numeric strings)."""

PositiveMinorAmount = Annotated[int, Strict(), Field(gt=0, le=MAX_MINOR)]
"""A strictly positive integer count of minor units."""

Quantity = Annotated[int, Strict(), Field(gt=0, le=MAX_QUANTITY)]
"""A strictly positive integer item count."""


class Money(BaseModel):
    """An amount in one currency. Adding or comparing different currencies raises."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    amount_minor: Annotated[int, Strict()]
    currency: Currency

    @classmethod
    def of(cls, amount_minor: int, currency: str) -> Money:
        return cls(amount_minor=amount_minor, currency=currency)

    @classmethod
    def from_decimal(cls, s: str, currency: str, *, allow_negative: bool = False) -> Money:
        return cls(
            amount_minor=parse_decimal_to_minor(s, currency, allow_negative=allow_negative),
            currency=currency,
        )

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(amount_minor=0, currency=currency)

    def _same(self, other: Any) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")
        return other

    def __add__(self, other: Any) -> Money:
        o = self._same(other)
        return Money(amount_minor=self.amount_minor + o.amount_minor, currency=self.currency)

    def __sub__(self, other: Any) -> Money:
        o = self._same(other)
        return Money(amount_minor=self.amount_minor - o.amount_minor, currency=self.currency)

    def __neg__(self) -> Money:
        return Money(amount_minor=-self.amount_minor, currency=self.currency)

    def __lt__(self, other: Any) -> bool:
        return self.amount_minor < self._same(other).amount_minor

    def __le__(self, other: Any) -> bool:
        return self.amount_minor <= self._same(other).amount_minor

    def __gt__(self, other: Any) -> bool:
        return self.amount_minor > self._same(other).amount_minor

    def __ge__(self, other: Any) -> bool:
        return self.amount_minor >= self._same(other).amount_minor

    def format(self) -> str:
        """``"199.00 USD"``."""
        return f"{format_minor(self.amount_minor, self.currency)} {self.currency}"

    def decimal_str(self) -> str:
        """``"199.00"``."""
        return format_minor(self.amount_minor, self.currency)
