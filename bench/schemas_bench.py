"""Validation cost of the ingest schemas, beside baselines, in one invocation.

    python -m bench.schemas_bench [--events 1000] [--repeat 50]

Prints µs per event and writes ``bench/out/schemas.json``:
- ``orjson_loads``: parsing the JSON body only (the floor of any validation);
- ``typeadapter_union``: a plain pydantic ``TypeAdapter`` over the discriminated union, validating the
  whole list at once (the straightforward approach; one bad event fails the batch);
- ``validate_batch_events``: ours, per event so valid events survive bad neighbours;
- ``validate_batch_events_all_rejected``: the error path (every event invalid).
Ratios are against ``typeadapter_union``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from schemas.events import Event, validate_batch_events

OUT = Path(__file__).resolve().parent / "out"


def batch(n: int, now: datetime) -> list[dict[str, Any]]:
    at = (now - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.123Z")
    kinds = [
        {"type": "view", "stream_id": "s1", "viewer_id": "v1", "action": "heartbeat"},
        {"type": "click", "stream_id": "s1", "viewer_id": "v1", "product_id": "p1", "campaign_id": "cmp1"},
        {"type": "add_to_cart", "stream_id": "s1", "viewer_id": "v1", "product_id": "p1"},
    ]
    return [{"event_id": f"e{i}", "occurred_at": at, **kinds[i % 3]} for i in range(n)]


def per_event_us(fn: Callable[[], object], n: int, repeat: int) -> float:
    fn()  # warm up
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1e6 / n)
    return round(statistics.median(runs), 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args()
    now = datetime.now(UTC)
    events = batch(args.events, now)
    body = orjson.dumps({"events": events})
    bad = [{**e, "viewer_id": 12} for e in events]
    union: TypeAdapter[list[Any]] = TypeAdapter(list[Event])
    n = args.events
    res = {
        "orjson_loads": per_event_us(lambda: orjson.loads(body), n, args.repeat),
        "typeadapter_union": per_event_us(lambda: union.validate_python(events, context={"now": now}), n,
                                          args.repeat),
        "validate_batch_events": per_event_us(lambda: validate_batch_events(events, now), n, args.repeat),
        "validate_batch_events_all_rejected": per_event_us(lambda: validate_batch_events(bad, now), n,
                                                           args.repeat),
    }
    out = {"events": n, "repeat": args.repeat, "us_per_event": res,
           "ratio_vs_typeadapter_union": round(res["validate_batch_events"] / res["typeadapter_union"], 3)}
    for name, us in res.items():
        print(f"{name:36s} {us:8.3f} µs/event")
    print(f"validate_batch_events / typeadapter_union = {out['ratio_vs_typeadapter_union']}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "schemas.json").write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    print(f"wrote {OUT / 'schemas.json'}")


if __name__ == "__main__":
    main()
