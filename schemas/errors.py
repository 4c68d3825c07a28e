"""Typed validation errors shared by every schema module.

Ingest turns a list of :class:`SchemaError` into the contract's 422 body with
:func:`error_body`; stream processors turn them into a ``dlq.reason`` header.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

__all__ = [
    "EmptyRefund",
    "InvalidRecord",
    "MalformedJson",
    "SchemaError",
    "ValidationFailed",
    "error_body",
    "errors_from_pydantic",
    "format_loc",
]


@dataclass(frozen=True, slots=True)
class SchemaError:
    """One problem with an input: the dotted/indexed path of the field and a human reason."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}


class InvalidRecord(Exception):
    """A Kafka record (or one event of it) that cannot be processed. ``reason`` is short and
    machine-readable (it becomes the ``dlq.reason`` header); ``detail`` is for humans."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ValidationFailed(ValueError):
    """Input was well-formed JSON but broke the contract (HTTP 422)."""

    def __init__(self, errors: Sequence[SchemaError], message: str = "validation failed") -> None:
        self.errors: list[SchemaError] = list(errors)
        self.message = message
        super().__init__("; ".join(str(e) for e in self.errors) or message)

    def body(self) -> dict[str, Any]:
        return error_body(self.errors, self.message)


class EmptyRefund(ValidationFailed):
    """A Shopify refund that gives back no line-item money (e.g. shipping-only or restock-only).

    It is valid Shopify input with nothing for LiveLedger to record: ingest may acknowledge it
    (2xx) instead of answering 422, so that Shopify does not retry it.
    """


class MalformedJson(ValueError):
    """The body is not JSON at all (HTTP 400)."""


_REASONS: dict[str, str] = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be an array",
    "none_required": "must be null",
    "datetime_type": "must be an RFC 3339 date-time string with an offset",
}


def format_loc(loc: Iterable[int | str], prefix: str = "") -> str:
    """``("items", 0, "sku")`` → ``items[0].sku`` (with ``prefix`` in front)."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += "." + part
        else:
            out = part
    return out


def _reason(err: Any) -> str:
    etype: str = err["type"]
    if etype in ("int_type", "int_parsing", "int_from_float"):
        value = err.get("input")
        if isinstance(value, bool):
            return "must be an integer, not a boolean"
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                return "must be an integer, not NaN/Infinity"
            return "must be an integer, not a fractional number"
        return "must be an integer"
    if etype == "string_pattern_mismatch" and isinstance(err.get("input"), str):
        from schemas.ids import ID_PATTERN, id_problem

        if (err.get("ctx") or {}).get("pattern") == ID_PATTERN:
            return id_problem(err["input"]) or "invalid id"
        return "has an invalid format"
    if etype == "string_too_long":
        ctx = err.get("ctx") or {}
        value = err.get("input")
        got = f"{len(value)} characters, " if isinstance(value, str) else ""
        return f"too long: {got}at most {ctx.get('max_length')}"
    if etype == "string_too_short":
        ctx = err.get("ctx") or {}
        low = ctx.get("min_length")
        return "must not be empty" if low == 1 else f"too short: at least {low} characters"
    if etype == "too_long":
        ctx = err.get("ctx") or {}
        return f"too many entries (at most {ctx.get('max_length')})"
    if etype == "too_short":
        ctx = err.get("ctx") or {}
        return f"too few entries (at least {ctx.get('min_length')})"
    if etype in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ctx = err.get("ctx") or {}
        bound = next(iter(ctx.values()), "?")
        word = {
            "greater_than": "greater than",
            "greater_than_equal": "at least",
            "less_than": "less than",
            "less_than_equal": "at most",
        }[etype]
        return f"must be {word} {bound}"
    if etype == "literal_error":
        ctx = err.get("ctx") or {}
        return f"must be one of {ctx.get('expected')}"
    if etype == "union_tag_invalid":
        ctx = err.get("ctx") or {}
        return f"unknown type (expected one of {ctx.get('expected_tags')})"
    if etype == "union_tag_not_found":
        return "required (the discriminator 'type' is missing)"
    reason = _REASONS.get(etype)
    if reason is not None:
        return reason
    msg: str = err["msg"]
    return msg[:1].lower() + msg[1:] if msg[:2] != msg[:2].upper() else msg


def errors_from_pydantic(exc: ValidationError, prefix: str = "") -> list[SchemaError]:
    """Flatten a pydantic ``ValidationError`` into field/reason pairs (input values never echoed)."""
    return [
        SchemaError(format_loc(err["loc"], prefix), _reason(err))
        for err in exc.errors(include_url=False, include_context=True, include_input=True)
    ]


def error_body(
    errors: Sequence[SchemaError], message: str = "validation failed", code: str = "validation_failed"
) -> dict[str, Any]:
    """The contract's error JSON: ``{"error": {"code", "message", "details": [{field, reason}]}}``."""
    return {
        "error": {
            "code": code,
            "message": message,
            "details": [e.as_dict() for e in errors],
        }
    }
