"""Baseline servers: ``python -m bench.bare --port N --loop asyncio|uvloop [--kafka-topic T]``.

A bare aiohttp application with a no-op ``GET /noop`` (200, tiny JSON) and ``POST /noop`` (reads
the body, 202) and no middleware, access log off — the ceiling of the framework ingest is built on.

With ``--kafka-topic``, also ``POST /produce``: the **floor of the events path** (issue 12,
``ingest.events_floor_rps``): read the body, parse it with orjson, and produce the body to Kafka as
one record (key ``--kafka-key``) with ingest's own producer (liveledger.kafka.start_producer:
idempotent, acks=all, lz4) awaiting the acknowledgement before the 202 -- everything a durable
events endpoint cannot skip, without authentication, validation, enrichment or routing.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from aiohttp import web

_BODY = b'{"ok":true}'


async def noop_get(_: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type="application/json")


async def noop_post(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202, body=_BODY, content_type="application/json")


def produce_app(app: web.Application, topic: str, key: str) -> None:
    """Add ``POST /produce`` (parse with orjson, one acks=all record, 202) to ``app``."""
    from liveledger.kafka import start_producer
    from liveledger.settings import get_settings

    producer_key: web.AppKey[Any] = web.AppKey("producer", object)
    key_bytes = key.encode()

    async def produce(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return web.Response(status=400, body=b'{"error":"malformed_json"}', content_type="application/json")
        await request.app[producer_key].send_and_wait(topic, body, key=key_bytes)
        return web.Response(status=202, body=orjson.dumps({"accepted": len(payload.get("events", ()))}),
                            content_type="application/json")

    async def start(app: web.Application) -> None:
        settings = get_settings()  # ingest's producer, with ingest's linger
        app[producer_key] = await start_producer(settings, linger_ms=settings.ingest_kafka_linger_ms)

    async def stop(app: web.Application) -> None:
        await app[producer_key].stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/produce", produce)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--kafka-topic", default=None, help="also serve POST /produce to this topic")
    parser.add_argument("--kafka-key", default="bench")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_get("/noop", noop_get)
    app.router.add_post("/noop", noop_post)
    if args.kafka_topic:
        produce_app(app, args.kafka_topic, args.kafka_key)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
