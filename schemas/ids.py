"""Identifiers: 1-128 characters of ``[A-Za-z0-9._:-]`` (contract "Money, time, identifiers")."""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator, Strict, StringConstraints, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = ["ID_MAX_LEN", "ID_PATTERN", "CouponCode", "Id", "check_id", "id_problem", "is_valid_id"]

ID_MAX_LEN: Final = 128
ID_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,128}$"
_ID_RE: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_BAD_CHAR_RE: Final = re.compile(r"[^A-Za-z0-9._:-]")


def id_problem(value: str) -> str | None:
    """``None`` when ``value`` is a valid id, else a reason that never echoes the raw input."""
    if _ID_RE.fullmatch(value) is not None:
        return None
    if not value:
        return "must not be empty"
    if len(value) > ID_MAX_LEN:
        return f"too long: {len(value)} characters, at most {ID_MAX_LEN}"
    m = _BAD_CHAR_RE.search(value)
    pos = m.start() if m else 0
    ch = value[pos]
    return (
        f"invalid character U+{ord(ch):04X} at position {pos} "
        "(ids are 1-128 characters of A-Z a-z 0-9 . _ : -)"
    )


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and _ID_RE.fullmatch(value) is not None


def check_id(value: str) -> str:
    """Pydantic after-validator for :data:`Id`."""
    if _ID_RE.fullmatch(value) is None:
        raise PydanticCustomError("id", "{reason}", {"reason": id_problem(value)})
    return value


def _upper_coupon(value: str) -> str:
    return check_id(value).upper()


_ID_SCHEMA: Final = {"type": "string", "pattern": ID_PATTERN, "minLength": 1, "maxLength": ID_MAX_LEN}

Id = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=ID_MAX_LEN, pattern=ID_PATTERN),
    WithJsonSchema(_ID_SCHEMA),
]
"""An id string: 1-128 characters of ``[A-Za-z0-9._:-]``; anything else is refused, never cleaned.

Checked by pydantic-core's (Rust, ASCII-only) regex for speed; :func:`schemas.errors.errors_from_pydantic`
turns the generic pattern/length errors into :func:`id_problem`'s reasons."""

CouponCode = Annotated[
    str,
    Strict(),
    AfterValidator(_upper_coupon),
    WithJsonSchema({**_ID_SCHEMA, "description": "case-insensitive; stored upper-case"}),
]
"""A coupon code: an :data:`Id`, matched case-insensitively by normalising to upper case."""
