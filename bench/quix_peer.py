"""The peer: the live aggregation written as a quixstreams application, with its exactly-once mode.

What a user would write instead of Faust (docs/benchmarks.md, "Stream processing: the quixstreams
peer"). It computes over ``ll.events`` batch records what the live path (:mod:`streams.live`)
computes, except presence (``viewers_now``):

- per stream: ``views`` (joins), ``clicks``, ``add_to_carts``, clicks per product, unique viewers
  (the viewers that sent a view);
- per (brand, creator): counted clicks in total and per UTC day, stream, campaign and link;
- de-duplication by ``event_id``: a replayed event counts once.

The quixstreams way: ``processing_guarantee="exactly-once"`` (a transactional producer commits the
state store's changelog and the consumer offsets together), the counters, the de-dup keys and the
per-(stream, viewer) "seen" marks live in the state store (RocksDB, scoped by message key = brand,
so every stream's state is on its brand's partition), and ``RedisSink`` writes each touched
stream's/creator's *absolute* snapshot (one JSON value per key) at every checkpoint. The sink
flushes before the transaction commits; a crash between the two replays records whose state was
rolled back, so the same absolute values are written again (idempotent, exact).
``commit_interval`` is 1 s (the default 5 s would leave a live dashboard 5 s behind).

The bench's progress: ``<prefix>:quix:done:<brand>`` holds the count of distinct events processed
for that brand, written by the same sink (:func:`progress`).

quixstreams 3.28 pins ``pydantic<2.14`` and ``pydantic-settings<2.16``, which the project's own pins
exclude, so it runs from its own virtualenv (:func:`ensure_venv`, ``.devstack/venvs/quix``, from
``bench/quix-requirements.txt``) and imports nothing from the project: the bench passes the
topic, Redis and prefix on the command line. This module's top level is stdlib-only so the bench
(main venv) can import :func:`ensure_venv` and :func:`progress`.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = Path(__file__).resolve().parent / "quix-requirements.txt"
VENV = ROOT / ".devstack" / "venvs" / "quix"
COMMIT_INTERVAL_S = 1.0


def ensure_venv() -> Path:
    """The peer's interpreter; creates (or refreshes) its venv when the requirements changed."""
    py = VENV / "bin" / "python"
    stamp = VENV / "requirements.stamp"
    want = REQUIREMENTS.read_text()
    if py.exists() and stamp.exists() and stamp.read_text() == want:
        return py
    if not py.exists():
        # the base interpreter of the running one (a venv's python creates a venv of its base)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
                   check=True)
    stamp.write_text(want)
    return py


def done_key(prefix: str, brand: str) -> str:
    return f"{prefix}:quix:done:{brand}"


def progress(client: Any, prefix: str, brands: list[str]) -> int:
    """Σ of the per-brand distinct-event counts the peer's sink wrote (``redis.Redis`` client; one
    MGET of the known brands, no SCAN: the bench polls every 20 ms on a shared Redis)."""
    return sum(int(v) for v in client.mget([done_key(prefix, b) for b in brands]) if v is not None)


def _day(ts: str) -> str:
    return ts[:10]  # ISO-8601 UTC "YYYY-MM-DD..." as ingest writes it


def aggregate(prefix: str, record: dict[str, Any], state: Any) -> list[tuple[str, dict[str, Any] | int]]:
    """One ``ll.events`` record (key = brand) → the absolute snapshots of what it touched."""
    brand = record["brand_id"]
    streams: dict[str, dict[str, Any]] = {}
    creators: dict[str, dict[str, Any]] = {}

    def stream(sid: str) -> dict[str, Any]:
        snap = streams.get(sid)
        if snap is None:
            snap = streams[sid] = state.get(f"s|{sid}") or {"views": 0, "clicks": 0, "add_to_carts": 0,
                                                            "unique_viewers": 0, "products": {}}
        return snap

    def creator(cid: str) -> dict[str, Any]:
        snap = creators.get(cid)
        if snap is None:
            snap = creators[cid] = state.get(f"c|{cid}") or {"clicks": 0, "by": {}}
        return snap

    fresh = 0
    for ev in record["events"]:
        dedup = f"d|{ev['event_id']}"
        if state.exists(dedup):
            continue
        state.set(dedup, 1)
        fresh += 1
        kind, sid = ev.get("type"), ev.get("stream_id")
        if kind == "view" and sid:
            snap = stream(sid)
            if ev.get("action") == "join":
                snap["views"] += 1
            seen = f"u|{sid}|{ev['viewer_id']}"
            if not state.exists(seen):
                state.set(seen, 1)
                snap["unique_viewers"] += 1
        elif kind == "add_to_cart" and sid:
            stream(sid)["add_to_carts"] += 1
        elif kind == "click":
            if sid:
                snap = stream(sid)
                snap["clicks"] += 1
                if ev.get("product_id"):
                    products = snap["products"]
                    products[ev["product_id"]] = products.get(ev["product_id"], 0) + 1
            if ev.get("creator_id"):
                c = creator(ev["creator_id"])
                c["clicks"] += 1
                by = c["by"]
                dims = [f"day|{_day(ev['occurred_at'])}"]
                dims += [f"stream|{sid}"] if sid else []
                dims += [f"campaign|{ev['campaign_id']}"] if ev.get("campaign_id") else []
                dims += [f"link|{ev['link_code']}"] if ev.get("link_code") else []
                for d in dims:
                    by[d] = by.get(d, 0) + 1
    out: list[tuple[str, dict[str, Any] | int]] = []
    for sid, snap in streams.items():
        state.set(f"s|{sid}", snap)
        out.append((f"{prefix}:quix:stream:{sid}", snap))
    for cid, snap in creators.items():
        state.set(f"c|{cid}", snap)
        out.append((f"{prefix}:quix:creator:{brand}:{cid}", snap))
    total = state.get("done", 0) + fresh
    state.set("done", total)
    out.append((done_key(prefix, brand), total))
    return out


def run(args: argparse.Namespace) -> None:
    import orjson
    from quixstreams import Application  # type: ignore[import-not-found, unused-ignore]
    from quixstreams.sinks.community.redis import RedisSink  # type: ignore[import-not-found, unused-ignore]

    url = urlparse(args.redis_url)
    app = Application(broker_address=args.bootstrap, consumer_group=f"{args.prefix}-quix",
                      auto_offset_reset="earliest", processing_guarantee="exactly-once",
                      commit_interval=COMMIT_INTERVAL_S, state_dir=args.state_dir, loglevel="WARNING")
    topic = app.topic(args.topic, key_deserializer="str", value_deserializer="json")
    sdf = app.dataframe(topic)
    prefix = args.prefix
    sdf = sdf.apply(lambda value, state: aggregate(prefix, value, state), stateful=True, expand=True)
    sdf.sink(RedisSink(host=url.hostname or "127.0.0.1", port=url.port or 6379, db=int((url.path or "/0")[1:] or 0),
                       key_serializer=lambda _key, item: item[0],
                       value_serializer=lambda item: orjson.dumps(item[1])))
    app.run()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quix_peer", description=__doc__)
    parser.add_argument("--bootstrap", default=os.environ.get("LIVELEDGER_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--redis-url", default=os.environ.get("LIVELEDGER_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--prefix", required=True, help="topic prefix of the run (Redis keys, consumer group)")
    parser.add_argument("--topic", required=True, help="the ll.events topic to read")
    parser.add_argument("--state-dir", required=True, help="quixstreams state directory (RocksDB)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    run(args)


if __name__ == "__main__":
    main()
