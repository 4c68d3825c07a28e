"""Setup entities (contract "Setup"): request bodies and responses of the admin/brand setup API, and
the records of the compacted ``ll.setup`` topic they are stored as (:func:`encode_setup` /
:func:`decode_setup`: the API writes them, every process's setup replica reads them)."""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from schemas.errors import InvalidRecord
from schemas.ids import CouponCode, Id
from schemas.money import Currency, MinorAmount

__all__ = [
    "MAX_URL_LEN",
    "SETUP_KINDS",
    "ApiKey",
    "Brand",
    "BrandCreate",
    "BrandCreated",
    "Campaign",
    "CampaignCreate",
    "Creator",
    "CreatorCreate",
    "CreatorCreated",
    "DestinationUrl",
    "FinanceKeyCreate",
    "FinanceKeyCreated",
    "Link",
    "LinkCreate",
    "LinkCreated",
    "Name",
    "SetupEntity",
    "Stream",
    "StreamCreate",
    "check_destination_url",
    "decode_setup",
    "encode_setup",
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


class CampaignCreate(BaseModel):
    """Commission = ⌊net x rate_bps / 10000⌋ + flat_minor (in the order's currency)."""

    model_config = _REQ
    campaign_id: Id
    brand_id: Id
    rate_bps: Annotated[int, Strict(), Field(ge=0, le=10_000)]
    flat_minor: MinorAmount = 0
    attribution_window_days: Annotated[int, Strict(), Field(ge=1, le=400)] = 30
    hold_days: Annotated[int, Strict(), Field(ge=0, le=400)] = 30
    min_payout_minor: MinorAmount = 5000


class Campaign(CampaignCreate):
    """The stored campaign (the response of ``POST /v1/campaigns``)."""


class LinkCreate(BaseModel):
    model_config = _REQ
    creator_id: Id
    campaign_id: Id
    destination_url: DestinationUrl
    product_id: Id | None = None
    stream_id: Id | None = None
    coupon_code: CouponCode | None = None


class Link(LinkCreate):
    """The stored link: the request plus its generated ``link_code`` and ``brand_id``."""

    link_code: Id
    brand_id: Id


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

class Brand(BrandCreate):
    """The stored brand: its webhook secret is kept as issued (HMAC verification needs it)."""

    webhook_secret: Annotated[str, Strict(), Field(min_length=16, max_length=256)]


class Creator(CreatorCreate):
    """The stored creator."""


Role = Literal["brand", "creator", "finance"]


class ApiKey(BaseModel):
    """An issued API key, stored under ``apikey:<sha256 of the key>`` (never the key itself)."""

    model_config = _REQ
    role: Role
    brand_id: Id | None = None
    creator_id: Id | None = None
    name: Name | None = None


SetupEntity = Brand | Creator | Campaign | Link | Stream | ApiKey
SETUP_KINDS: Final[dict[str, type[SetupEntity]]] = {
    "brand": Brand, "creator": Creator, "campaign": Campaign, "link": Link, "stream": Stream, "apikey": ApiKey,
}
_KIND_OF: Final = {model: kind for kind, model in SETUP_KINDS.items()}


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
