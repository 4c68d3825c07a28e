"""Setup entities (contract "Setup"): request bodies and responses of the admin/brand setup API, and
the records of the compacted ``ll.setup`` topic they are stored as (:func:`encode_setup` /
:func:`decode_setup`: the API writes them, every process's setup replica reads them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from schemas.errors import InvalidRecord
from schemas.ids import CouponCode, Id
from schemas.money import Currency, MinorAmount
from schemas.time import UtcDatetime

__all__ = [
    "MAX_PAUSES",
    "MAX_URL_LEN",
    "SETUP_KINDS",
    "ApiKey",
    "ApiKeyIssued",
    "Brand",
    "BrandCreate",
    "BrandCreated",
    "Campaign",
    "CampaignCreate",
    "CampaignPatch",
    "CampaignPause",
    "Creator",
    "CreatorCreate",
    "CreatorCreated",
    "DestinationUrl",
    "FinanceKeyCreate",
    "FinanceKeyCreated",
    "KeyRevoked",
    "Link",
    "LinkCreate",
    "LinkCreated",
    "Name",
    "RevokeKey",
    "SetupEntity",
    "SetupTime",
    "Stream",
    "StreamCreate",
    "WebhookSecretRotated",
    "check_destination_url",
    "decode_setup",
    "encode_setup",
    "public_view",
    "setup_key",
]

MAX_URL_LEN: Final = 2048
_CONTROL_OR_SPACE: Final = re.compile(r"[\x00-\x20\x7f]")
_NAME_BAD: Final = re.compile(r"[\x00-\x1f\x7f]")


def _check_name(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("name", "must not be blank")
    if _NAME_BAD.search(value):
        raise PydanticCustomError("name", "must not contain control characters (NUL, CR, LF, ...)")
    return value


Name = Annotated[str, Strict(), Field(min_length=1, max_length=200), AfterValidator(_check_name)]
"""A display name/title: 1-200 characters, not blank, no control characters."""


def check_destination_url(value: str) -> str:
    if len(value) > MAX_URL_LEN:
        raise PydanticCustomError("url", "too long: at most {n} characters", {"n": MAX_URL_LEN})
    if _CONTROL_OR_SPACE.search(value):
        raise PydanticCustomError("url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        raise PydanticCustomError("url", "not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise PydanticCustomError("url", "must be an absolute http:// or https:// URL")
    if not parts.hostname:
        raise PydanticCustomError("url", "must have a host")
    if parts.username is not None or parts.password is not None:
        raise PydanticCustomError("url", "must not contain credentials")
    return value


DestinationUrl = Annotated[
    str,
    Strict(),
    AfterValidator(check_destination_url),
    WithJsonSchema({"type": "string", "format": "uri", "maxLength": MAX_URL_LEN}),
]
"""An absolute http(s) URL kept exactly as given (not re-normalised)."""

_REQ = ConfigDict(extra="forbid", strict=True, frozen=True)


class BrandCreate(BaseModel):
    model_config = _REQ
    brand_id: Id
    name: Name
    currency: Currency


class BrandCreated(BaseModel):
    model_config = _REQ
    brand_id: Id
    api_key: str
    webhook_secret: str


class CreatorCreate(BaseModel):
    model_config = _REQ
    creator_id: Id
    name: Name


class CreatorCreated(BaseModel):
    model_config = _REQ
    creator_id: Id
    api_key: str


class FinanceKeyCreate(BaseModel):
    model_config = _REQ
    name: Name


class FinanceKeyCreated(BaseModel):
    model_config = _REQ
    api_key: str


_SETUP_TIME_MIN: Final = datetime(2000, 1, 1, tzinfo=UTC)
_SETUP_TIME_MAX: Final = datetime(2200, 1, 1, tzinfo=UTC)


def _check_setup_time(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    try:
        at: datetime = handler(value)
    except OverflowError:  # year 1 or 9999 with an offset: not representable in UTC
        at = _SETUP_TIME_MIN - timedelta(days=1)
    if not _SETUP_TIME_MIN <= at < _SETUP_TIME_MAX:
        raise PydanticCustomError("time_range", "must be between 2000-01-01 and 2200-01-01 (UTC)")
    return at


SetupTime = Annotated[UtcDatetime, WrapValidator(_check_setup_time)]
"""A setup instant (``ends_at``, ...): RFC 3339 with an offset, UTC, in [2000, 2200)."""

RateBps = Annotated[int, Strict(), Field(ge=0, le=10_000)]
HoldDays = Annotated[int, Strict(), Field(ge=0, le=400)]


class CampaignCreate(BaseModel):
    """Commission = ⌊net x rate_bps / 10000⌋ + flat_minor (in the order's currency)."""

    model_config = _REQ
    campaign_id: Id
    brand_id: Id
    rate_bps: RateBps
    flat_minor: MinorAmount = 0
    attribution_window_days: Annotated[int, Strict(), Field(ge=1, le=400)] = 30
    hold_days: HoldDays = 30
    min_payout_minor: MinorAmount = 5000


class CampaignPause(BaseModel):
    """A past pause of a campaign: inactive from ``paused_at`` until ``resumed_at``."""

    model_config = _REQ
    paused_at: UtcDatetime
    resumed_at: UtcDatetime


MAX_PAUSES: Final = 100
"""Past pauses kept per campaign (the oldest is dropped beyond that)."""


class Campaign(CampaignCreate):
    """The stored campaign (the response of ``POST /v1/campaigns`` and ``PATCH``). Lifecycle (all
    optional, so records written before it still decode): closed at and after ``ends_at``; while
    ``active`` is false it is paused since ``paused_at``; ``pauses`` are the earlier pauses (the
    attribution rules compare an order's time with all of them, docs/setup.md)."""

    ends_at: SetupTime | None = None
    active: Annotated[bool, Strict()] = True
    paused_at: UtcDatetime | None = None
    pauses: tuple[CampaignPause, ...] = ()


_PATCH_NOT_NULL: Final = ("rate_bps", "flat_minor", "hold_days", "min_payout_minor", "active")


class CampaignPatch(BaseModel):
    """``PATCH /v1/campaigns/{id}``: the fields to change (at least one). ``ends_at: null`` removes
    the end; every other field may be left out but not be ``null``."""

    model_config = _REQ
    rate_bps: RateBps | None = None
    flat_minor: MinorAmount | None = None
    hold_days: HoldDays | None = None
    min_payout_minor: MinorAmount | None = None
    ends_at: SetupTime | None = None
    active: Annotated[bool, Strict()] | None = None

    @field_validator(*_PATCH_NOT_NULL)
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise PydanticCustomError("not_null", "must not be null (leave the field out to keep it)")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> CampaignPatch:
        if not self.model_fields_set:
            raise PydanticCustomError("empty_patch", "give at least one field to change")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields given, with their values."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    def apply(self, campaign: Campaign, now: datetime) -> Campaign:
        """The campaign after this patch at ``now``. ``active: false`` on an active campaign starts a
        pause (``paused_at = now``); ``active: true`` on a paused one ends it (kept in ``pauses``, at
        most :data:`MAX_PAUSES`). Setting ``active`` to what it already is changes nothing."""
        update = self.changes()
        active = update.pop("active", None)
        if active is False and campaign.active:
            update |= {"active": False, "paused_at": now}
        elif active is True and not campaign.active:
            pauses = campaign.pauses
            if campaign.paused_at is not None:
                pause = CampaignPause(paused_at=campaign.paused_at, resumed_at=max(now, campaign.paused_at))
                pauses = (*pauses, pause)[-MAX_PAUSES:]
            update |= {"active": True, "paused_at": None, "pauses": pauses}
        return Campaign.model_validate({**campaign.model_dump(), **update})


class RevokeKey(BaseModel):
    """``POST /v1/admin/keys/revoke``."""

    model_config = _REQ
    api_key: Annotated[str, Strict(), Field(min_length=1, max_length=512)]


class KeyRevoked(BaseModel):
    model_config = _REQ
    revoked: bool
    key_id: str | None  # the revoked key's public id (None for a key issued before key ids)


class ApiKeyIssued(BaseModel):
    """A rotated API key (``POST /v1/admin/{brands,creators}/{id}/api-key``), shown once."""

    model_config = _REQ
    api_key: str


class WebhookSecretRotated(BaseModel):
    model_config = _REQ
    webhook_secret: str


class LinkCreate(BaseModel):
    model_config = _REQ
    creator_id: Id
    campaign_id: Id
    destination_url: DestinationUrl
    product_id: Id | None = None
    stream_id: Id | None = None
    coupon_code: CouponCode | None = None


class Link(LinkCreate):
    """The stored link: the request plus its generated ``link_code`` and ``brand_id``;
    ``deactivated_at`` once ``DELETE /v1/links/{code}`` deactivated it."""

    link_code: Id
    brand_id: Id
    deactivated_at: UtcDatetime | None = None


class LinkCreated(BaseModel):
    model_config = _REQ
    link_code: Id
    url: str


class StreamCreate(BaseModel):
    model_config = _REQ
    stream_id: Id
    brand_id: Id
    creator_id: Id
    title: Name


class Stream(StreamCreate):
    """The stored stream (the response of ``POST /v1/streams``)."""


# --- the ll.setup topic: one typed record per entity, key "<kind>:<id>" --------------------------

Secret = Annotated[str, Strict(), Field(min_length=16, max_length=256)]


class Brand(BrandCreate):
    """The stored brand: its webhook secret is kept as issued (HMAC verification needs it). After a
    rotation the previous secret stays valid until ``previous_secret_expires_at``."""

    webhook_secret: Secret
    previous_webhook_secret: Secret | None = None
    previous_secret_expires_at: UtcDatetime | None = None


class Creator(CreatorCreate):
    """The stored creator."""


Role = Literal["brand", "creator", "finance"]


class ApiKey(BaseModel):
    """An issued API key, stored under ``apikey:<sha256 of the key>`` (never the key itself).
    ``key_id`` is a random public name of the key (audit log, revocation), unrelated to its value;
    keys issued before it existed have none."""

    model_config = _REQ
    role: Role
    brand_id: Id | None = None
    creator_id: Id | None = None
    name: Name | None = None
    key_id: Id | None = None


SetupEntity = Brand | Creator | Campaign | Link | Stream | ApiKey
SETUP_KINDS: Final[dict[str, type[SetupEntity]]] = {
    "brand": Brand, "creator": Creator, "campaign": Campaign, "link": Link, "stream": Stream, "apikey": ApiKey,
}
_KIND_OF: Final = {model: kind for kind, model in SETUP_KINDS.items()}


_SECRET_FIELDS: Final = frozenset({"webhook_secret", "previous_webhook_secret"})


def public_view(entity: SetupEntity) -> dict[str, Any]:
    """The entity as JSON values without its secrets (webhook secrets; an API key record never holds
    the key or its digest, which is the record's key): what the audit log may show."""
    return {k: v for k, v in entity.model_dump(mode="json").items() if k not in _SECRET_FIELDS}


def setup_key(kind: str, ident: str) -> str:
    """``"<kind>:<id>"`` (``apikey:<sha256>`` for keys)."""
    if kind not in SETUP_KINDS:
        raise ValueError(f"unknown setup kind {kind!r}")
    return f"{kind}:{ident}"


def encode_setup(ident: str, entity: SetupEntity) -> tuple[bytes, bytes]:
    """(key, value) of the setup record holding ``entity``."""
    return setup_key(_KIND_OF[type(entity)], ident).encode(), entity.__pydantic_serializer__.to_json(entity)


def decode_setup(key: bytes | str | None, value: bytes | None) -> tuple[str, str, SetupEntity | None]:
    """(kind, id, entity) of one setup record; entity ``None`` for a tombstone. Raises
    :class:`schemas.errors.InvalidRecord` for an unknown kind or a value that does not validate."""
    text = key.decode("utf-8", "replace") if isinstance(key, bytes) else (key or "")
    kind, _, ident = text.partition(":")
    model = SETUP_KINDS.get(kind)
    if model is None or not ident:
        raise InvalidRecord("unknown_setup_kind", repr(text)[:80])
    if value is None:
        return kind, ident, None
    try:
        return kind, ident, model.__pydantic_validator__.validate_json(value)
    except ValidationError as exc:
        raise InvalidRecord("invalid_setup_record", f"{text[:80]}: {exc.errors(include_url=False)[0]['msg']}") from None
