"""The events path writes its record without the wire models (ingest/app.py ``wire_event_dict``,
``events_record_bytes``): the bytes must be those of ``to_wire_event`` + ``EventsBatchRecord.to_bytes``."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.app import events_record_bytes, wire_event_dict
from schemas.events import ClickEvent, validate_batch_events
from schemas.wire import EventsBatchRecord, decode_events_record, to_wire_event

NOW = datetime(2026, 11, 25, 20, 0, 0, 123000, tzinfo=UTC)
TIME_FORMS = (
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",  # the wire form itself
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"),                                   # no fraction
    lambda t: (t + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S.%f+02:00"),    # an offset, microseconds
    lambda t: t.strftime("%Y-%m-%dt%H:%M:%S.") + f"{t.microsecond // 1000:03d}z",  # lower case
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 100:04d}Z",   # 4 fraction digits
)


def raw_event(rng: random.Random, i: int) -> dict[str, Any]:
    t = NOW - timedelta(milliseconds=rng.randrange(10**9))
    base: dict[str, Any] = {"event_id": f"e{i}", "stream_id": "s1", "viewer_id": f"v{i}",
                            "occurred_at": rng.choice(TIME_FORMS)(t)}
    kind = rng.choice(("view", "click", "click_no_campaign", "add_to_cart"))
    if kind == "view":
        return {**base, "type": "view", "action": rng.choice(("join", "heartbeat", "leave"))}
    if kind == "add_to_cart":
        return {**base, "type": "add_to_cart", "product_id": "p1"}
    return {**base, "type": "click", "product_id": "p2", **({"campaign_id": "cmp1"} if kind == "click" else {})}


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 40))
def test_fast_record_is_byte_identical_to_the_wire_models(seed: int, n: int) -> None:
    rng = random.Random(seed)
    raws = [raw_event(rng, i) for i in range(n)]
    valid, rejected = validate_batch_events(raws, NOW)
    assert not rejected, rejected
    dicts = [wire_event_dict(e, r, "c1") for e, r in zip(valid, raws, strict=True)]
    fast = orjson.loads(events_record_bytes("b1", NOW, dicts))
    models = orjson.loads(EventsBatchRecord.build(
        batch_id=fast["batch_id"], brand_id="b1", source="events-api", received_at=NOW,
        events=[to_wire_event(e, creator_id="c1") for e in valid]).to_bytes())
    assert orjson.dumps(fast) == orjson.dumps(models)  # same keys, order and values
    assert [type(e) is ClickEvent for e in valid] == [e["type"] == "click" for e in fast["events"]]
    decoded = decode_events_record(events_record_bytes("b1", NOW, dicts), b"b1")
    assert len(decoded.events) == n and not decoded.rejected
