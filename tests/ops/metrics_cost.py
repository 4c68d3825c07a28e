"""What the metrics add to one redirect, measured with timeit (docs/operations.md "Cost").

``python -m tests.ops.metrics_cost`` prints µs per call of:

- ingest's one middleware (errors + request metrics) around a handler that returns at once, minus
  the same middleware without the metrics (its success path as it was before): two
  ``perf_counter`` calls, the route template and one ``observe_request``;
- the two counter increments a counted click adds (events accepted, redirect outcome);
- :func:`liveledger.metrics.observe_request` alone.

No services needed; nothing is sent anywhere.
"""

from __future__ import annotations

import asyncio
import timeit
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from ingest.app import _ACCEPTED, _REDIRECTS, errors_middleware
from liveledger import metrics
from liveledger.errors import ServiceError

N = 200_000


async def _handler(_: web.Request) -> web.StreamResponse:
    return RESPONSE


async def _errors_before(request: web.Request, handler: Any) -> web.StreamResponse:
    """ingest's errors middleware before the metrics, on its success path."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ServiceError:
        raise
    except asyncio.CancelledError:
        raise


RESPONSE = web.Response(status=302)


def _request() -> web.Request:
    app = web.Application()
    app.router.add_get("/l/{code}", _handler)
    request = make_mocked_request("GET", "/l/abc123", app=app)
    match = asyncio.run(app.router.resolve(request))
    request._match_info = match  # what aiohttp's server does before the middlewares run
    return request


def per_call_us(stmt: str, env: dict[str, object]) -> float:
    best = min(timeit.repeat(stmt, globals=env, number=N, repeat=5))
    return best / N * 1e6


def main() -> None:
    request = _request()
    loop = asyncio.new_event_loop()

    async def bare(n: int) -> None:
        for _ in range(n):
            await _errors_before(request, _handler)

    async def wrapped(n: int) -> None:
        for _ in range(n):
            await errors_middleware(request, _handler)

    def run(coro_fn: object) -> float:
        best = min(timeit.repeat(lambda: loop.run_until_complete(coro_fn(N)), number=1, repeat=5))  # type: ignore[operator]
        return best / N * 1e6

    middleware = run(wrapped) - run(bare)
    counters = per_call_us('a.inc(); r.inc()', {"a": _ACCEPTED["redirect"], "r": _REDIRECTS["click"]})
    observe = per_call_us('o("/l/{code}", "GET", 302, 0.0001)', {"o": metrics.observe_request})
    loop.close()
    print(f"middleware (incl. observe_request):         {middleware:.2f} us per request")
    print(f"counted click's two counter increments:      {counters:.2f} us")
    print(f"observe_request alone:                       {observe:.2f} us")
    print(f"total added to a counted redirect:           {middleware + counters:.2f} us")


if __name__ == "__main__":
    main()
