"""The ingest hot path on :8080 (aiohttp): redirects, player event batches, order webhooks.

Every accepted request is answered ``202``/``302`` only after Kafka acknowledged the record with
acks=all from this process's one idempotent producer. Limits are enforced before parsing; when too
many sends are in flight the service answers ``503`` with ``Retry-After`` instead of queueing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import secrets
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from aiohttp import web

from ingest.batcher import ClickBatcher
from ingest.clicks import (
    BotDetector,
    RepeatGuard,
    client_hash,
    client_ip,
    client_secret,
    parse_claim,
    parse_networks,
    pending_claim,
)
from ingest.errors import error_response, json_response
from ingest.openapi import openapi_spec
from ingest.signatures import SignatureError, verify_liveledger, verify_shopify
from liveledger import metrics
from liveledger.auth import INGEST_KEYS, authenticate
from liveledger.errors import (
    ServiceError,
    forbidden,
    invalid,
    not_found,
    payload_too_large,
    unauthorized,
    unavailable,
    unsupported_media_type,
    validation_failed,
)
from liveledger.kafka import start_producer
from liveledger.ops_server import metrics_view, readyz_view
from liveledger.readiness import Readiness
from liveledger.redis_client import redis_client
from liveledger.settings import Settings
from liveledger.setup_state import Principal, SetupReplica, Table, link_redirect_counts, webhook_secrets
from liveledger.storage import redis_keys
from liveledger.topics import topic_name
from schemas.errors import EmptyRefund, ValidationFailed
from schemas.events import AddToCartEvent, ClickEvent, ViewEvent, validate_batch_events
from schemas.orders import OrderCreated, OrderRefunded, validate_order_webhook
from schemas.shopify import (
    is_test_order,
    normalise_shopify_cancellation,
    normalise_shopify_order,
    normalise_shopify_refund,
)
from schemas.time import format_rfc3339, from_ms, to_ms
from schemas.wire import (
    WIRE_VERSION,
    CancelRecord,
    EventsBatchRecord,
    OrderRecord,
    OrderSource,
    RefundRecord,
    WireClickEvent,
)

log = logging.getLogger("ingest")

_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The brand of a native webhook, found in the raw body so that the signature is checked before the
# body is parsed (the parsed brand_id must then be the same: _accept_order).
_BRAND_IN_BODY = re.compile(rb'"brand_id"\s*:\s*"([A-Za-z0-9._:-]{1,128})"')
# Shopify topics we book; every other topic is acknowledged (200) and counted as ignored.
_SHOPIFY_TOPICS = ("orders/create", "orders/cancelled", "refunds/create")
_JSON = "application/json"
SETTINGS_KEY = web.AppKey("settings", Settings)
# Metric children bound once (liveledger/metrics.py): the hot path only increments them.
_ACCEPTED = {s: metrics.EVENTS_ACCEPTED.labels(s) for s in ("events-api", "redirect", "native", "shopify")}
_REJECTED = {s: metrics.EVENTS_REJECTED.labels(s) for s in ("events-api", "native", "shopify")}
_REDIRECTS = {o: metrics.REDIRECTS.labels(o) for o in ("click", "repeat", "bot", "inactive", "head")}


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_click_id() -> str:
    return "clk:" + secrets.token_hex(12)


def add_query_param(url: str, name: str, value: str) -> str:
    """``url`` with ``name=value`` as its last query parameter (an existing ``name`` is replaced)."""
    head, fragment = _query_param_slot(url, name)
    return f"{head}{urlencode([(name, value)])}{fragment}"


@functools.lru_cache(maxsize=16384)
def _query_param_slot(url: str, name: str) -> tuple[str, str]:
    """``url`` split around where ``name=<value>`` goes: parsed once per link destination, not per
    redirect (url parsing was ~4 % of a redirect's CPU; docs/benchmarks.md)."""
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name])
    head = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return (f"{head}?{query}&" if query else f"{head}?"), (f"#{parts.fragment}" if parts.fragment else "")


class IngestState:
    """Long-lived clients and counters of one ingest process.

    :meth:`start` returns at once: the Kafka clients (producer, setup replica) connect in the
    background, retried until Kafka answers, so that ``/readyz`` (and ``/metrics``) answer while it
    is down; until then every other route, ``/healthz`` included, is ``503 starting``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.setup = SetupReplica(settings)
        self.producer: Any = None
        self.started = False
        self._connecting: asyncio.Task[None] | None = None
        self.readiness = Readiness(settings, ("kafka", "redis"), started=lambda: self.started)
        self.inflight = 0
        # Edge counters (events refused before Kafka, responses by status) for reconciliation;
        # flushed to the Redis stats hash once a second, off the request path.
        self.counters: Counter[str] = Counter()
        self.redis: Any = None
        self._flusher: asyncio.Task[None] | None = None
        self.events_topic = topic_name(settings, "events")
        self.orders_topic = topic_name(settings, "orders")
        self.bots = BotDetector()
        self.trusted_proxies = parse_networks(settings.trusted_proxies)
        self.client_secret = client_secret(settings.client_hash_secret, settings.admin_token)
        self.repeats: RepeatGuard | None = None
        # click id -> its write, from the claim until the claim is confirmed (ingest/batcher.py)
        self.click_writes: dict[str, asyncio.Future[None]] = {}
        self._confirming: set[asyncio.Task[None]] = set()
        # Clicks of concurrent redirects share a record: one per brand (the Kafka key) per
        # micro-batch, acknowledged before any of their 302s (ingest/batcher.py, docs/ingest.md).
        self.clicks: ClickBatcher[WireClickEvent] = ClickBatcher(
            self._send_clicks, max_clicks=settings.ingest_click_batch_max,
            linger_s=settings.ingest_click_linger_ms / 1000)

    async def start(self) -> None:
        # Short timeouts: the repeat check is on the redirect path and fails open (docs/ingest.md).
        self.redis = redis_client(self.settings, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.repeats = RepeatGuard(self.redis, self.settings.topic_prefix)
        self._flusher = asyncio.create_task(self._flush_counters_forever(), name="ingest-counters")
        self._connecting = asyncio.create_task(self._connect_forever(), name="ingest-connect")

    async def _connect(self) -> None:
        self.producer = await start_producer(self.settings, linger_ms=self.settings.ingest_kafka_linger_ms)
        try:
            await self.setup.start()
        except BaseException:
            await self.setup.stop()
            self.setup = SetupReplica(self.settings)  # a fresh replica for the next attempt
            await self.producer.stop()
            self.producer = None
            raise
        self.started = True

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._connect()
            except Exception as exc:
                log.warning("kafka not reachable (%r); ingest retries in %.1f s (/readyz: 503 kafka)", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            log.info("ingest ready on %s:%d", self.settings.ingest_host, self.settings.ingest_port)
            return

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        await self.readiness.aclose()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush_counters()
        if self._confirming:  # claims of written clicks: confirm them before Redis closes
            await asyncio.wait(self._confirming, timeout=2.0)
        await self.setup.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.redis is not None:
            await self.redis.aclose()

    async def flush_counters(self) -> None:
        if not self.counters or self.redis is None:
            return
        pending, self.counters = self.counters, Counter()
        try:
            pipe = self.redis.pipeline(transaction=False)
            for name, n in pending.items():
                pipe.hincrby(redis_keys.stats(self.settings.topic_prefix), name, n)
            await pipe.execute()
        except Exception as exc:  # Redis down: keep the counts for the next flush
            self.counters.update(pending)
            log.warning("could not flush ingest counters to Redis: %r", exc)

    async def _flush_counters_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.flush_counters()

    async def send(self, topic: str, key: str, value: bytes) -> None:
        """Durably write one record (acks=all); raises 503 when over the in-flight bound."""
        if self.inflight >= self.settings.ingest_max_inflight:
            raise unavailable("too many requests in flight, retry shortly", 1, code="overloaded")
        self.inflight += 1
        try:
            async with asyncio.timeout(self.settings.ingest_send_timeout_s):
                await self.producer.send_and_wait(topic, value, key=key.encode())
        except TimeoutError as exc:  # Kafka unresponsive (a paused broker, a partition): bounded wait
            self.counters["ingest_send_timeouts"] += 1
            log.error("kafka send to %s not acknowledged within %.1f s", topic, self.settings.ingest_send_timeout_s)
            raise unavailable("event log unavailable, retry shortly", 2) from exc
        except Exception as exc:  # Kafka unavailable: the client must retry, nothing was accepted
            log.error("kafka send to %s failed: %r", topic, exc)
            raise unavailable("event log unavailable, retry shortly", 2) from exc
        finally:
            self.inflight -= 1

    async def _send_clicks(self, brand_id: str, clicks: list[WireClickEvent]) -> None:
        record = EventsBatchRecord.build(batch_id=str(uuid.uuid4()), brand_id=brand_id, source="redirect",
                                         received_at=utc_now(), events=list(clicks))
        await self.send(self.events_topic, brand_id, record.to_bytes())
        if self.repeats is not None and any(c.client_hash for c in clicks):
            # the claims are confirmed off the redirects' path (one task per record): a repeat
            # meanwhile finds the write done in click_writes, which is kept until the confirm is in
            task = asyncio.get_running_loop().create_task(self._confirm_clicks(self.repeats, clicks))
            self._confirming.add(task)
            task.add_done_callback(self._confirming.discard)

    async def _confirm_clicks(self, repeats: RepeatGuard, clicks: list[WireClickEvent]) -> None:
        try:
            await asyncio.gather(*(repeats.confirm(str(c.link_code), c.client_hash, c.event_id, to_ms(c.occurred_at))
                                   for c in clicks if c.client_hash))
        finally:
            for c in clicks:
                write = self.click_writes.get(c.event_id)
                if write is not None and write.done():
                    del self.click_writes[c.event_id]

    async def lookup(self, table: Table, ident: object) -> dict[str, Any] | None:
        """The setup entity ``ident`` (read-your-writes), or ``None`` when ``ident`` is not an id."""
        if not isinstance(ident, str) or not _ID_RE.match(ident):
            return None
        return await self.setup.lookup(table, ident)

    async def principal(self, request: web.Request) -> Principal:
        return await authenticate(self.setup, request.headers.get("Authorization"), INGEST_KEYS)


STATE_KEY: web.AppKey[IngestState] = web.AppKey("state", IngestState)


def _state(request: web.Request) -> IngestState:
    """The process state, once its Kafka clients are up (``503 starting`` before)."""
    st = request.app[STATE_KEY]
    if not st.started:
        raise unavailable("starting: waiting for Kafka", 2, code="starting")
    return st


def _check_json_request(request: web.Request, max_bytes: int) -> None:
    if request.content_type != _JSON:
        raise unsupported_media_type("send Content-Type: application/json", "Content-Type",
                                     f"got {request.content_type!r}")
    length = request.content_length
    if length is not None and length > max_bytes:
        raise payload_too_large(f"body is larger than {max_bytes} bytes", "body", f"{length} bytes > {max_bytes}")


async def _read_body(request: web.Request, max_bytes: int) -> bytes:
    """The whole body, or 413 as soon as it exceeds ``max_bytes``.

    ``StreamReader.read(n)`` returns what is buffered *so far* (up to n), not n bytes: a single read
    truncated bodies larger than one socket read (~128 KiB), answering 400 malformed_json.
    """
    chunks: list[bytes] = []
    size = 0
    timeout_s = request.app[SETTINGS_KEY].ingest_body_timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                chunk = await request.content.read(max_bytes + 1 - size)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > max_bytes:
                    raise payload_too_large(f"body is larger than {max_bytes} bytes", "body",
                                            f"more than {max_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ServiceError(408, "request_timeout", f"the body did not arrive within {timeout_s:g} s",
                           [{"field": "body", "reason": "too slow"}]) from None


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # NaN / Infinity are not JSON, but some shops send them: parse them so that validation
        # names the field ("must be an integer") instead of rejecting the whole body as garbage.
        # orjson refuses nesting deeper than 1024 levels; json.loads would recurse until
        # RecursionError, so it only sees bodies orjson refused for another reason.
        if "recursion" in str(exc).lower():
            raise ServiceError(400, "malformed_json", "body is not valid JSON",
                               [{"field": "body", "reason": "nested deeper than 1024 levels"}]) from exc
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ServiceError(400, "malformed_json", "body is not valid JSON",
                               [{"field": "body", "reason": str(exc)}]) from exc


# --- handlers -------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    st = _state(request)
    return json_response(200, {"status": "ok", "inflight": st.inflight, "setup_records": st.setup.position,
                               "setup_catch_ups": st.setup.end_offset_requests,
                               "repeat_claims": st.repeats.claims if st.repeats else 0,
                               "repeat_claim_batches": st.repeats.batches if st.repeats else 0,
                "click_records": st.clicks.records, "clicks_written": st.clicks.items})


async def openapi(request: web.Request) -> web.Response:
    return json_response(200, openapi_spec())


def _redirect_response(destination: str, click_id: str | None, window_days: int) -> web.Response:
    """The 302: with ``ll_click`` (query parameter and cookie) when the redirect carries a click."""
    if click_id is None:
        return web.Response(status=302, headers={"Location": destination, "Cache-Control": "no-store"})
    # The Set-Cookie header is written directly: the click id is [a-z0-9:] (nothing to quote), and
    # http.cookies' Morsel cost ~5 % of a redirect's CPU (docs/benchmarks.md).
    return web.Response(status=302, headers={
        "Location": add_query_param(destination, "ll_click", click_id),
        "Cache-Control": "no-store",
        "Set-Cookie": f"ll_click={click_id}; Max-Age={window_days * 86400}; Path=/; SameSite=Lax",
    })


async def redirect(request: web.Request) -> web.Response:
    """``GET``/``HEAD /l/{code}`` with click hygiene (contract "Click hygiene", ingest/clicks.py):
    HEAD, bots and links that no longer count redirect without a click; a repeat of the same client
    within the hour gets its first click id back."""
    st = _state(request)
    code = request.match_info["code"]
    link = await st.lookup("links", code)
    if link is None:
        raise not_found("unknown link", "link_code", "unknown")
    destination: str = link["destination_url"]
    now = utc_now()
    if request.method == "HEAD":
        st.counters["head_requests"] += 1
        _REDIRECTS["head"].inc()
        return _redirect_response(destination, None, 0)
    state = st.setup.state
    if not link_redirect_counts(state, link, now):
        st.counters["inactive_link_redirects"] += 1
        _REDIRECTS["inactive"].inc()
        return _redirect_response(destination, None, 0)
    campaign = state.campaigns.get(link["campaign_id"], {})
    window_days = int(campaign.get("attribution_window_days", 30))
    if st.inflight + st.clicks.waiting >= st.settings.ingest_max_inflight:  # before any claim
        raise unavailable("too many requests in flight, retry shortly", 1, code="overloaded")
    click_id = new_click_id()
    client = claim = None
    if st.settings.click_hygiene:
        user_agent = request.headers.get("User-Agent", "")
        if st.bots.is_bot(user_agent):
            st.counters["bot_clicks"] += 1
            _REDIRECTS["bot"].inc()
            return _redirect_response(destination, None, 0)
        client = client_hash(st.client_secret, client_ip(request.remote, request.headers.get("X-Forwarded-For"),
                                                         st.trusted_proxies), user_agent)
        claim = pending_claim(click_id, to_ms(now))
        claimed = await _claim(st, code, client, claim)
        if claimed is not None:  # a repeat: the first click id again, no new click
            st.counters["repeat_clicks"] += 1
            _REDIRECTS["repeat"].inc()
            prior_id, pending_ms = parse_claim(claimed)
            if pending_ms is not None and not await _being_written(st, prior_id):
                # its click is not known to be in Kafka (the process that claimed it died, or its write
                # failed or timed out): write that click again, same id and time; consumers de-dup it
                await _write_click(st, link, code, client, prior_id, from_ms(pending_ms))
            return _redirect_response(destination, prior_id, window_days)
    write = _queue_click(st, link, code, client, click_id, now)
    st.click_writes[click_id] = write
    try:
        await asyncio.shield(write)  # the record is shared: a client going away must not cancel it
    except ServiceError as exc:
        st.click_writes.pop(click_id, None)
        # not written: a retry gets a fresh click -- unless the write only timed out (the record may
        # still land): then the claim stays pending and a retry writes this same click again
        if st.repeats is not None and client and claim and not isinstance(exc.__cause__, TimeoutError):
            await st.repeats.release(code, client, claim)
        raise
    except BaseException:
        st.click_writes.pop(click_id, None)
        raise
    if client is None:  # no claim to confirm (hygiene off)
        st.click_writes.pop(click_id, None)
    _ACCEPTED["redirect"].inc()
    _REDIRECTS["click"].inc()
    return _redirect_response(destination, click_id, window_days)


def _queue_click(st: IngestState, link: dict[str, Any], code: str, client: str | None, click_id: str,
                 at: datetime) -> asyncio.Future[None]:
    """Hand the click to the batcher; the future is done when its record is acknowledged."""
    # Hot path: parts straight from the setup record, no re-validation.
    click = WireClickEvent.assemble({
        "event_id": click_id, "type": "click", "stream_id": link.get("stream_id"), "viewer_id": None,
        "product_id": link.get("product_id"), "campaign_id": link["campaign_id"], "creator_id": link["creator_id"],
        "link_code": code, "client_hash": client, "occurred_at": at})
    return st.clicks.add(link["brand_id"], click)


async def _write_click(st: IngestState, link: dict[str, Any], code: str, client: str | None, click_id: str,
                       at: datetime) -> None:
    """Write the click (batched with others; its claim is confirmed after); raises ServiceError (503)."""
    await asyncio.shield(_queue_click(st, link, code, client, click_id, at))


async def _being_written(st: IngestState, click_id: str) -> bool:
    """Whether this process is writing ``click_id`` and the write succeeds (a concurrent tap waits for it)."""
    write = st.click_writes.get(click_id)
    if write is None:
        return False
    await asyncio.wait({write})
    return not write.cancelled() and write.exception() is None


async def _claim(st: IngestState, code: str, client: str, value: str) -> str | None:
    """The earlier claim of this client on this link, or ``None`` (this click counts). Fails
    open: with Redis unreachable the click counts (a possible repeat beats a lost click)."""
    if st.repeats is None:
        return None
    try:
        return await st.repeats.claim(code, client, value)
    except Exception as exc:
        st.counters["repeat_check_unavailable"] += 1
        log.warning("repeat-click check unavailable, counting the click: %r", exc)
        return None


def _batch_problem(payload: Any, max_events: int) -> ServiceError | None:
    """What is wrong with the shape of a ``POST /v1/events`` body, if anything (before any event)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        return invalid("body must be an object with an 'events' array", "events", "required array")
    extra = sorted(set(payload) - {"events"})
    if extra:
        return invalid(f"unknown field {extra[0]!r}", details=[{"field": f, "reason": "unknown field"} for f in extra])
    count = len(payload["events"])
    if count > max_events:
        return payload_too_large(f"at most {max_events} events per batch", "events", f"{count} events")
    if not count:
        return invalid("events: empty batch", "events", "at least one event")
    return None


async def post_events(request: web.Request) -> web.Response:
    st = _state(request)
    settings = st.settings
    _check_json_request(request, settings.max_body_bytes)
    principal = await st.principal(request)
    if principal.role != "brand" or principal.brand_id is None:
        raise forbidden("events are posted with a brand key", "Authorization")
    brand_id = principal.brand_id
    payload = _loads(await _read_body(request, settings.max_body_bytes))
    problem = _batch_problem(payload, settings.max_batch_events)
    if problem is not None:
        raise problem
    raw_events: list[Any] = payload["events"]

    now = utc_now()
    valid, rejections = validate_batch_events(raw_events, now)
    rejected: list[dict[str, Any]] = [r.as_dict() for r in rejections]
    rejected_idx = {r.index for r in rejections}
    indices = [i for i in range(len(raw_events)) if i not in rejected_idx]
    # One catch-up for the whole batch when it names a stream or campaign this replica lacks.
    await st.setup.catch_up_if_missing(
        [("streams", e.stream_id) for e in valid]
        + [("campaigns", e.campaign_id) for e in valid if isinstance(e, ClickEvent) and e.campaign_id is not None]
    )
    state = st.setup.state
    out: list[dict[str, Any]] = []
    forbidden_count = 0
    for index, event in zip(indices, valid, strict=True):
        stream = state.streams.get(event.stream_id)
        if stream is None:
            rejected.append({"index": index, "error": f"events[{index}].stream_id: unknown stream"})
            continue
        if stream["brand_id"] != brand_id:
            forbidden_count += 1
            rejected.append({"index": index,
                             "error": f"events[{index}].stream_id: belongs to another brand (forbidden)"})
            continue
        if isinstance(event, ClickEvent) and event.campaign_id is not None:
            campaign = state.campaigns.get(event.campaign_id)
            if campaign is None or campaign["brand_id"] != brand_id:
                rejected.append({"index": index,
                                 "error": f"events[{index}].campaign_id: unknown campaign of this brand"})
                continue
        out.append(wire_event_dict(event, raw_events[index], stream["creator_id"]))
    rejected.sort(key=lambda r: int(r["index"]))
    st.counters["ingest_events_received"] += len(raw_events)
    st.counters["events_rejected"] += len(rejected)
    _REJECTED["events-api"].inc(len(rejected))
    if not out:
        details = [_detail(r) for r in rejected]
        if forbidden_count and forbidden_count == len(rejected):
            raise forbidden("stream_id: belongs to another brand", details=details)
        raise invalid(rejected[0]["error"] if rejected else "no valid events", details=details)
    await st.send(st.events_topic, brand_id, events_record_bytes(brand_id, now, out))
    _ACCEPTED["events-api"].inc(len(out))
    return json_response(202, {"accepted": len(out), "rejected": rejected})


def _canonical_time(raw: Any) -> str | None:
    """The event's own ``occurred_at`` text when it is already the wire form ``YYYY-MM-DDTHH:MM:SS.mmmZ``
    (validation parsed it as is: formatting the parsed time gives these same characters back)."""
    value = raw.get("occurred_at")
    if type(value) is str and len(value) == 24 and value[23] == "Z" and value[10] == "T" and value[19] == ".":
        return value
    return None


def wire_event_dict(event: ViewEvent | ClickEvent | AddToCartEvent, raw: dict[str, Any],
                    creator_id: str | None) -> dict[str, Any]:
    """The ``ll.events`` JSON object of an accepted event, as ``to_wire_event(...)`` then
    ``EventsBatchRecord.to_bytes`` write it (tests/ingest/test_events_wire.py), without the wire
    models: those and their time formatting cost ~25 µs an event (docs/benchmarks.md)."""
    if isinstance(event, ClickEvent):
        d: dict[str, Any] = {
            "event_id": event.event_id, "type": "click", "stream_id": event.stream_id, "viewer_id": event.viewer_id,
            "product_id": event.product_id, "campaign_id": event.campaign_id, "creator_id": creator_id,
            "link_code": None, "client_hash": None, "occurred_at": event.occurred_at}
    else:  # the HTTP view / add-to-cart models have exactly the wire fields, in the same order
        d = dict(event.__dict__)
    d["occurred_at"] = _canonical_time(raw) or format_rfc3339(event.occurred_at)
    return d


def events_record_bytes(brand_id: str, received_at: datetime, events: list[dict[str, Any]]) -> bytes:
    """An ``events-api`` :class:`EventsBatchRecord` as JSON, from :func:`wire_event_dict` objects."""
    return orjson.dumps({"v": WIRE_VERSION, "batch_id": str(uuid.uuid4()), "brand_id": brand_id,
                         "source": "events-api", "received_at": format_rfc3339(received_at), "events": events})


def _detail(rejection: dict[str, Any]) -> dict[str, Any]:
    field, _, reason = str(rejection["error"]).partition(": ")
    return {"field": field, "reason": reason or field}


async def post_order_webhook(request: web.Request) -> web.Response:
    st = _state(request)
    settings = st.settings
    _check_json_request(request, settings.max_body_bytes)
    signature = request.headers.get("X-LiveLedger-Signature")
    if not signature:
        raise unauthorized("missing X-LiveLedger-Signature header", "X-LiveLedger-Signature")
    body = await _read_body(request, settings.max_body_bytes)
    # Signature before parsing: the brand (whose secret signs) is found in the raw bytes.
    found = _BRAND_IN_BODY.search(body)
    brand_id = found.group(1).decode() if found else None
    brand = await st.lookup("brands", brand_id)
    if brand is None or brand_id is None:
        raise unauthorized("cannot verify the signature: unknown brand_id", "brand_id")
    now = utc_now()
    try:
        verify_liveledger(signature, body, webhook_secrets(brand, now), time.time(), settings.webhook_tolerance_s)
    except SignatureError as exc:
        raise unauthorized(str(exc), "X-LiveLedger-Signature") from exc
    payload = _loads(body)
    try:
        order = validate_order_webhook(payload, now)
    except ValidationFailed as exc:
        _REJECTED["native"].inc()
        raise validation_failed(exc) from exc
    return await _accept_order(st, brand_id, order, now, "native")


def order_record(order: OrderCreated | OrderRefunded, now: datetime, source: OrderSource) -> OrderRecord | RefundRecord:
    """The normalised ``ll.orders`` record (docs/architecture.md)."""
    if isinstance(order, OrderRefunded):
        return RefundRecord.from_refund(order, received_at=now, source=source)
    return OrderRecord.from_order(order, received_at=now, source=source)


async def _accept_order(st: IngestState, brand_id: str, order: OrderCreated | OrderRefunded, now: datetime,
                        source: OrderSource) -> web.Response:
    if order.brand_id != brand_id:
        _REJECTED[source].inc()
        raise forbidden("brand_id does not match the signing brand", "brand_id")
    await st.send(st.orders_topic, brand_id, order_record(order, now, source).to_bytes())
    _ACCEPTED[source].inc()
    return json_response(202, {"accepted": 1, "event_id": order.event_id})


async def post_shopify_webhook(request: web.Request) -> web.Response:
    """Shopify as it really sends (contract): HMAC first; test orders and topics we do not book are
    acknowledged with 200 and counted, so Shopify neither retries nor drops the subscription."""
    st = _state(request)
    settings = st.settings
    brand_id = request.match_info["brand_id"]
    _check_json_request(request, settings.max_body_bytes)
    hmac_header = request.headers.get("X-Shopify-Hmac-Sha256")
    if not hmac_header:
        raise unauthorized("missing X-Shopify-Hmac-Sha256 header", "X-Shopify-Hmac-Sha256")
    brand = await st.lookup("brands", brand_id)
    if brand is None:
        raise unauthorized("cannot verify the HMAC: unknown brand", "brand_id")
    body = await _read_body(request, settings.max_body_bytes)
    now = utc_now()
    try:
        verify_shopify(hmac_header, body, webhook_secrets(brand, now))
    except SignatureError as exc:
        raise unauthorized(str(exc), "X-Shopify-Hmac-Sha256") from exc
    topic = request.headers.get("X-Shopify-Topic", "")
    webhook_id = request.headers.get("X-Shopify-Webhook-Id", "")
    if not webhook_id or not _ID_RE.match(webhook_id) or len(webhook_id) > 100:
        raise invalid("X-Shopify-Webhook-Id: missing or invalid", "X-Shopify-Webhook-Id", "missing or invalid")
    if topic not in _SHOPIFY_TOPICS:
        st.counters["ignored_webhooks"] += 1
        st.counters[f"ignored_webhooks|{topic[:40]}"] += 1
        return json_response(200, {"accepted": 0, "ignored": f"topic {topic[:100]!r} is not used"})
    payload = _loads(body)
    if topic != "refunds/create" and is_test_order(payload):
        st.counters["ignored_test_orders"] += 1
        return json_response(200, {"accepted": 0, "ignored": "test order"})
    try:
        if topic == "orders/cancelled":
            return await _accept_cancellation(st, brand_id, payload, webhook_id, now)
        order: OrderCreated | OrderRefunded
        if topic == "orders/create":
            order = normalise_shopify_order(payload, brand_id, webhook_id, now)
        else:
            order = normalise_shopify_refund(payload, brand_id, webhook_id, brand["currency"], now)
    except EmptyRefund as exc:
        # Valid Shopify input that gives back no item revenue (shipping-only, restock): acknowledge
        # so Shopify stops retrying, record nothing.
        return json_response(200, {"accepted": 0, "ignored": str(exc)})
    except ValidationFailed as exc:
        _REJECTED["shopify"].inc()
        raise validation_failed(exc) from exc
    response = await _accept_order(st, brand_id, order, now, "shopify")
    if isinstance(order, OrderCreated) and isinstance(payload, dict) and payload.get("cancelled_at"):
        # created already cancelled: booked, then cancelled (same key, so the ledger sees them in order)
        await _accept_cancellation(st, brand_id, payload, webhook_id, now)
    return response


async def _accept_cancellation(st: IngestState, brand_id: str, payload: Any, webhook_id: str,
                               now: datetime) -> web.Response:
    try:
        order_id, cancelled_at = normalise_shopify_cancellation(payload, now)
    except ValidationFailed as exc:
        _REJECTED["shopify"].inc()
        raise validation_failed(exc) from exc
    event_id = f"shopify-cancel:{webhook_id}"
    record = CancelRecord.model_construct(v=1, event_id=event_id, type="order.cancelled", brand_id=brand_id,
                                          order_id=order_id, occurred_at=min(cancelled_at, now),
                                          received_at=now, source="shopify")
    await st.send(st.orders_topic, brand_id, record.to_bytes())
    _ACCEPTED["shopify"].inc()
    return json_response(202, {"accepted": 1, "event_id": event_id})


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every error in the contract's JSON shape, and every answer counted: requests by route
    template (``/l/{code}``, never the raw path), method and status, with the latency until the
    answer was ready (liveledger/metrics.py). One middleware for both: each aiohttp layer costs ~1 µs."""
    start = time.perf_counter()
    status = 499  # the client went away (CancelledError) before an answer
    try:
        response: web.StreamResponse = await handler(request)
        status = response.status
        return response
    except ServiceError as exc:
        request.app[STATE_KEY].counters[f"ingest_http|{exc.status}|{exc.code}"] += 1
        response = error_response(exc)
        status = exc.status
        if exc.status == 408:  # the rest of a slow body is not waited for (aiohttp would linger 10 s)
            response.force_close()
        return response
    except web.HTTPRequestEntityTooLarge:
        status = 413
        return error_response(payload_too_large("body too large"))
    except web.HTTPException as exc:
        status = exc.status
        if exc.status >= 400:
            return error_response(ServiceError(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason))
        raise
    except asyncio.CancelledError:
        raise
    except Exception:  # a bug: logged with its traceback here, never sent to the client
        status = 500
        log.exception("unexpected error on %s %s", request.method, request.path)
        request.app[STATE_KEY].counters["ingest_http|500|internal_error"] += 1
        return error_response(ServiceError(500, "internal_error", "internal error; it was logged"))
    finally:
        resource = request.match_info.route.resource
        metrics.observe_request(metrics.UNMATCHED_ROUTE if resource is None else resource.canonical,
                                request.method, status, time.perf_counter() - start)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=settings.max_body_bytes + 1)
    state = IngestState(settings)
    app[SETTINGS_KEY] = settings
    app[STATE_KEY] = state

    async def on_startup(_: web.Application) -> None:
        metrics.identify("ingest")
        metrics.INGEST_INFLIGHT.set_function(lambda: state.inflight)
        await state.start()

    async def on_cleanup(_: web.Application) -> None:
        await state.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz_view(state.readiness))
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/l/{code}", redirect)
    app.router.add_post("/v1/events", post_events)
    app.router.add_post("/v1/webhooks/orders", post_order_webhook)
    app.router.add_post("/v1/webhooks/shopify/{brand_id}", post_shopify_webhook)
    return app
