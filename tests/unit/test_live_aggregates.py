"""Live ratios and rankings of the read API (pure)."""

from __future__ import annotations

import pytest

from liveledger.domain.live import ctr, cvr, ratio, top_products


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [(0, 0, 0.0), (5, 0, 0.0), (1, 3, 0.3333), (2, 3, 0.6667), (3, 3, 1.0), (7, 2, 3.5)],
)
def test_ratios(num: int, den: int, expected: float) -> None:
    assert ratio(num, den) == expected
    assert ctr(num, den) == expected
    assert cvr(num, den) == expected


def test_top_products() -> None:
    rows = top_products({"a": 5, "b": 5, "c": 1}, {"b": 2, "d": 3}, limit=3)
    assert rows == [("b", 5, 2), ("a", 5, 0), ("c", 1, 0)]
    assert top_products({}, {}) == []
