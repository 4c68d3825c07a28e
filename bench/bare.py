"""Baseline servers: ``python -m bench.bare --port N --loop asyncio|uvloop``.

A bare aiohttp application with a no-op ``GET /noop`` (200, tiny JSON) and ``POST /noop`` (reads
the body, 202) and no middleware, access log off — the ceiling of the framework ingest is built on.
"""

from __future__ import annotations

import argparse

from aiohttp import web

_BODY = b'{"ok":true}'


async def noop_get(_: web.Request) -> web.Response:
    return web.Response(body=_BODY, content_type="application/json")


async def noop_post(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=202, body=_BODY, content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_get("/noop", noop_get)
    app.router.add_post("/noop", noop_post)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
