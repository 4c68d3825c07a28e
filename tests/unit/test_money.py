from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from schemas.money import (
    CURRENCY_EXPONENTS,
    Currency,
    CurrencyMismatch,
    Money,
    MoneyError,
    exponent,
    format_minor,
    parse_decimal_to_minor,
)


@pytest.mark.parametrize(
    ("code", "exp"),
    [
        *[(c, 2) for c in ["USD", "EUR", "GBP", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK"]],
        *[(c, 2) for c in ["PLN", "CZK", "HUF", "BRL", "MXN", "INR", "CNY", "HKD"]],
        *[(c, 2) for c in ["SGD", "TWD", "THB", "IDR", "MYR", "PHP", "ZAR", "TRY", "AED", "SAR", "ILS"]],
        *[(c, 0) for c in ["JPY", "KRW", "VND", "CLP", "ISK", "UGX"]],
        *[(c, 3) for c in ["KWD", "BHD", "JOD", "OMR", "TND", "IQD", "LYD"]],
    ],
)
def test_exponents(code: str, exp: int) -> None:
    assert exponent(code) == exp
    assert CURRENCY_EXPONENTS[code] == exp


@pytest.mark.parametrize(
    ("text", "cur", "minor"),
    [
        ("199.00", "USD", 19900),
        ("199", "USD", 19900),
        ("0.01", "USD", 1),
        ("19.9", "USD", 1990),
        ("0", "USD", 0),
        ("1000", "JPY", 1000),
        ("1000.00", "JPY", 1000),
        ("1.234", "KWD", 1234),
        ("1.2340", "KWD", 1234),
        ("0.001", "BHD", 1),
        ("12345678.99", "EUR", 1234567899),
        ("0.10000000000000000000", "USD", 10),
        ("007.50", "USD", 750),
    ],
)
def test_parse_exact(text: str, cur: str, minor: int) -> None:
    assert parse_decimal_to_minor(text, cur) == minor


def test_never_float_rounding() -> None:
    # 0.1 + 0.2 style float artefacts must not appear
    assert parse_decimal_to_minor("0.29", "USD") == 29
    assert parse_decimal_to_minor("1.15", "USD") == 115
    assert parse_decimal_to_minor("4.35", "USD") == 435


@pytest.mark.parametrize(
    ("text", "cur"),
    [("19.999", "USD"), ("1.5", "JPY"), ("0.0001", "KWD"), ("1.001", "EUR"), ("100.01", "KRW")],
)
def test_too_many_decimals_refused(text: str, cur: str) -> None:
    with pytest.raises(MoneyError, match="more decimals"):
        parse_decimal_to_minor(text, cur)


@pytest.mark.parametrize(
    "text",
    [
        "", " 1.00", "1.00 ", "+1.00", "1e3", "1E2", "NaN", "nan", "Infinity", "-Infinity", "inf",
        "1,000.00", "1_000", ".5", "5.", "0x10", "\u0661\u0662\u0663", "\uff11\uff12", "1.00\n", "1.0.0", "--1", "abc",
        "1;DROP TABLE", "9" * 20, "\x00", "12 345",
    ],
)
def test_garbage_refused(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_decimal_to_minor(text, "USD")


@pytest.mark.parametrize("value", [1.5, 100, None, b"1.00", True])
def test_non_string_refused(value: object) -> None:
    with pytest.raises(MoneyError, match="decimal string"):
        parse_decimal_to_minor(value, "USD")  # type: ignore[arg-type]


def test_negative_handling() -> None:
    with pytest.raises(MoneyError, match="negative"):
        parse_decimal_to_minor("-1.00", "USD")
    with pytest.raises(MoneyError, match="negative"):
        parse_decimal_to_minor("-0", "USD")
    assert parse_decimal_to_minor("-1.05", "USD", allow_negative=True) == -105


def test_unknown_currency() -> None:
    with pytest.raises(MoneyError, match="unknown"):
        parse_decimal_to_minor("1.00", "XYZ")
    with pytest.raises(MoneyError, match="upper-case"):
        parse_decimal_to_minor("1.00", "usd")


@pytest.mark.parametrize(
    ("minor", "cur", "text"),
    [
        (19900, "USD", "199.00"), (1, "USD", "0.01"), (0, "USD", "0.00"), (-5, "USD", "-0.05"),
        (1000, "JPY", "1000"), (1234, "KWD", "1.234"), (-5, "KWD", "-0.005"), (7, "CLF", "0.0007"),
    ],
)
def test_format_minor(minor: int, cur: str, text: str) -> None:
    assert format_minor(minor, cur) == text
    if minor >= 0:
        assert parse_decimal_to_minor(text, cur) == minor


def test_format_roundtrip_all_currencies() -> None:
    for cur in CURRENCY_EXPONENTS:
        for minor in (0, 1, 9, 10, 123456789):
            assert parse_decimal_to_minor(format_minor(minor, cur), cur) == minor


def test_money_same_currency_only() -> None:
    a = Money.of(100, "USD")
    assert (a + Money.of(50, "USD")).amount_minor == 150
    assert (a - Money.of(150, "USD")).amount_minor == -50
    assert (-a).amount_minor == -100
    assert a > Money.zero("USD")
    with pytest.raises(CurrencyMismatch):
        _ = a + Money.of(100, "EUR")
    with pytest.raises(CurrencyMismatch):
        _ = a < Money.of(100, "EUR")
    with pytest.raises(TypeError):
        _ = a + 5
    assert Money.from_decimal("199.00", "USD").format() == "199.00 USD"
    assert Money.from_decimal("1.5", "KWD").decimal_str() == "1.500"


def test_money_frozen_and_strict() -> None:
    m = Money.of(1, "USD")
    with pytest.raises(ValidationError):
        m.amount_minor = 2  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Money(amount_minor=1.0, currency="USD")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Money(amount_minor=1, currency="usd")


class _C(BaseModel):
    currency: Currency


@pytest.mark.parametrize("bad", ["usd", "Usd", "XXX", "US", "USDD", " USD", "", "ÜSD"])
def test_currency_type_rejects(bad: str) -> None:
    with pytest.raises(ValidationError) as info:
        _C(currency=bad)
    if bad == "usd":
        assert "upper-case" in str(info.value) and "'USD'" in str(info.value)


def test_currency_type_rejects_non_str() -> None:
    with pytest.raises(ValidationError):
        _C(currency=840)
    assert _C(currency="JPY").currency == "JPY"
