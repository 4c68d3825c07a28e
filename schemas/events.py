"""Player/browser events accepted by ``POST /v1/events`` (contract "Ingest").

Strict: unknown fields are refused, ints must be JSON integers, strings must be strings. The hot
path is :func:`validate_batch_events`, which validates each event on its own so that one bad event
never costs the others their acceptance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.errors import SchemaError, errors_from_pydantic
from schemas.ids import Id
from schemas.time import OccurredAt, utcnow

__all__ = [
    "EVENT_MODELS",
    "EVENT_TYPES",
    "MAX_BATCH_EVENTS",
    "AddToCartEvent",
    "ClickEvent",
    "Event",
    "EventAdapter",
    "EventBatch",
    "Rejection",
    "ViewAction",
    "ViewEvent",
    "validate_batch_events",
    "validate_event",
]

MAX_BATCH_EVENTS: Final = 1000

ViewAction = Literal["join", "heartbeat", "leave"]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class ViewEvent(BaseModel):
    """A viewer joined, is still watching (heartbeat) or left a stream."""

    model_config = _STRICT

    event_id: Id
    type: Literal["view"]
    stream_id: Id
    viewer_id: Id
    action: ViewAction
    occurred_at: OccurredAt


class ClickEvent(BaseModel):
    """A product tap in the player; its click id is its ``event_id``."""

    model_config = _STRICT

    event_id: Id
    type: Literal["click"]
    stream_id: Id
    viewer_id: Id
    product_id: Id
    campaign_id: Id | None = None
    occurred_at: OccurredAt


class AddToCartEvent(BaseModel):
    """A product added to the cart from the player."""

    model_config = _STRICT

    event_id: Id
    type: Literal["add_to_cart"]
    stream_id: Id
    viewer_id: Id
    product_id: Id
    occurred_at: OccurredAt


Event = Annotated[ViewEvent | ClickEvent | AddToCartEvent, Field(discriminator="type")]
EventAdapter: Final[TypeAdapter[ViewEvent | ClickEvent | AddToCartEvent]] = TypeAdapter(Event)

EVENT_MODELS: Final[dict[str, type[ViewEvent] | type[ClickEvent] | type[AddToCartEvent]]] = {
    "view": ViewEvent,
    "click": ClickEvent,
    "add_to_cart": AddToCartEvent,
}
EVENT_TYPES: Final = tuple(EVENT_MODELS)
_VALIDATORS: Final = {name: model.__pydantic_validator__ for name, model in EVENT_MODELS.items()}
_TYPES_TEXT: Final = ", ".join(repr(t) for t in EVENT_TYPES)


class EventBatch(BaseModel):
    """The request body of ``POST /v1/events``: ``{"events": [...]}`` with 1-1000 entries.

    ``events`` is deliberately untyped here: each entry is validated by
    :func:`validate_batch_events` so valid events survive invalid neighbours.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    events: list[Any] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


@dataclass(frozen=True, slots=True)
class Rejection:
    """One refused event of a batch: ``{"index": i, "error": "events[i].field: reason"}``."""

    index: int
    error: str
    errors: tuple[SchemaError, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "error": self.error}


def validate_event(
    raw: Any, now: datetime | None = None, prefix: str = ""
) -> ViewEvent | ClickEvent | AddToCartEvent:
    """Validate one event dict; raises ``schemas.errors.ValidationFailed``."""
    from schemas.errors import ValidationFailed

    result = _validate_one(raw, {"now": now or utcnow()}, prefix)
    if isinstance(result, list):
        raise ValidationFailed(result)
    return result


def _validate_one(
    raw: Any, ctx: dict[str, Any], prefix: str
) -> ViewEvent | ClickEvent | AddToCartEvent | list[SchemaError]:
    if not isinstance(raw, dict):
        return [SchemaError(prefix, "must be an object")]
    etype = raw.get("type")
    validator = _VALIDATORS.get(etype) if isinstance(etype, str) else None
    if validator is None:
        field = f"{prefix}.type" if prefix else "type"
        if etype is None:
            return [SchemaError(field, f"required (one of {_TYPES_TEXT})")]
        if not isinstance(etype, str):
            return [SchemaError(field, "must be a string")]
        return [SchemaError(field, f"unknown event type (expected one of {_TYPES_TEXT})")]
    try:
        event: ViewEvent | ClickEvent | AddToCartEvent = validator.validate_python(raw, context=ctx)
    except ValidationError as exc:
        return errors_from_pydantic(exc, prefix)
    return event


def validate_batch_events(
    raw_events: Sequence[Any], now: datetime | None = None
) -> tuple[list[ViewEvent | ClickEvent | AddToCartEvent], list[Rejection]]:
    """Validate each event of a batch independently.

    Returns the valid events (in input order) and one :class:`Rejection` per invalid event, whose
    ``error`` names every broken field, e.g. ``"events[3].occurred_at: more than 5 minutes in the
    future"`` (several problems are joined with ``"; "``). The batch-size limit is the caller's
    (see :class:`EventBatch` / :data:`MAX_BATCH_EVENTS`).
    """
    ctx = {"now": now or utcnow()}
    accepted: list[ViewEvent | ClickEvent | AddToCartEvent] = []
    rejected: list[Rejection] = []
    for i, raw in enumerate(raw_events):
        result = _validate_one(raw, ctx, f"events[{i}]")
        if isinstance(result, list):
            rejected.append(Rejection(i, "; ".join(str(e) for e in result), tuple(result)))
        else:
            accepted.append(result)
    return accepted, rejected
