"""The operations endpoints over aiohttp: ``/metrics``, ``/healthz``, ``/readyz``.

Ingest mounts :func:`metrics_view` and :func:`readyz_view` on its own port. A stream worker or a
sink, which has no HTTP port of its own, runs an :class:`OpsServer` in its event loop on
``LIVELEDGER_METRICS_HOST:LIVELEDGER_METRICS_PORT``; when the port is not set it takes the role's
default and, when another process holds it, the next free one in the role's range (so several
workers on one host need no configuration; the chosen port is logged). An explicitly set port that
is taken is an error: the process does not start.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from liveledger import metrics
from liveledger.readiness import Readiness
from liveledger.settings import Settings

__all__ = ["PORT_RANGES", "OpsServer", "metrics_view", "readyz_view"]

log = logging.getLogger(__name__)

# role -> (default port, last port tried when the port is not set and the default is taken)
PORT_RANGES = {"streams": (9201, 9299), "sink": (9301, 9399)}


def _json(status: int, body: object) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def metrics_view(_: web.Request) -> web.Response:
    return web.Response(body=await metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})


def readyz_view(readiness: Readiness) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def readyz(_: web.Request) -> web.Response:
        status, body = await readiness.check()
        return _json(status, body)

    return readyz


class OpsServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` of a worker or sink process."""

    def __init__(self, settings: Settings, role: str, readiness: Readiness) -> None:
        self.settings = settings
        self.role = role
        self.readiness = readiness
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def _app(self) -> web.Application:
        app = web.Application()

        async def healthz(_: web.Request) -> web.Response:
            return _json(200, {"status": "ok", "process": self.role})

        app.router.add_get("/metrics", metrics_view)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz_view(self.readiness))
        return app

    def _candidates(self) -> list[int]:
        if self.settings.metrics_port is not None:
            return [self.settings.metrics_port]
        first, last = PORT_RANGES[self.role]
        return list(range(first, last + 1))

    async def start(self) -> int:
        runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
        await runner.setup()
        host = self.settings.metrics_host
        candidates = self._candidates()
        for port in candidates:
            site = web.TCPSite(runner, host, port, reuse_port=False)
            try:
                await site.start()
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or len(candidates) == 1:
                    await runner.cleanup()
                    raise
                continue
            self._runner, self.port = runner, port
            log.info("%s metrics on http://%s:%d/metrics (also /healthz, /readyz)", self.role, host, port)
            return port
        await runner.cleanup()
        raise OSError(errno.EADDRINUSE, f"no free metrics port in {candidates[0]}-{candidates[-1]} on {host}")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.readiness.aclose()
