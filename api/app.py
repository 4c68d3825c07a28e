"""The API process on :8000: setup, reading, dashboards. OpenAPI at /openapi.json."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from api.context import ApiContext
from api.conversion_routes import router as conversion_router
from api.errors import install_error_handlers
from api.finance_routes import router as finance_router
from api.guards import BodyGuard, KeyBeforeBody
from api.ops_routes import RequestMetrics, StartupGate
from api.ops_routes import router as ops_router
from api.pages import router as pages_router
from api.privacy_routes import router as privacy_router
from api.ratelimit import KeyRateLimiter
from api.read_routes import router as read_router
from api.setup_routes import router as setup_router
from api.stores import start_read_clients, stop_read_clients
from liveledger import metrics
from liveledger.errors import unavailable
from liveledger.kafka import start_producer
from liveledger.readiness import Readiness
from liveledger.settings import Settings, get_settings
from liveledger.setup_state import SetupReplica

log = logging.getLogger("api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    async def connect() -> ApiContext:
        producer = await start_producer(settings)
        setup = SetupReplica(settings)
        try:
            await setup.start()
        except BaseException:
            await setup.stop()
            await producer.stop()
            raise
        ctx = ApiContext(settings=settings, producer=producer, setup=setup)
        await start_read_clients(ctx)
        return ctx

    async def connect_forever(app: FastAPI) -> None:
        """The Kafka clients, retried until Kafka answers (``/readyz`` says 503 kafka meanwhile)."""
        delay = 0.5
        while True:
            try:
                app.state.ctx = await connect()
                break
            except Exception as exc:
                log.warning("kafka not reachable (%r); the api retries in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        app.state.starting = False
        log.info("api ready on %s:%d", settings.api_host, settings.api_port)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics.identify("api")
        app.state.starting = True
        connecting = asyncio.create_task(connect_forever(app), name="api-connect")
        try:
            yield
        finally:
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await connecting
            await app.state.readiness.aclose()
            ctx: ApiContext | None = getattr(app.state, "ctx", None)
            if ctx is not None:
                await stop_read_clients(ctx)
                await ctx.setup.stop()
                await ctx.producer.stop()

    app = FastAPI(title="LiveLedger API", version="0.1.0", lifespan=lifespan,
                  description="Setup, live stream metrics, creator earnings, payouts and reconciliation.")
    install_error_handlers(app)
    app.state.rate_limiter = KeyRateLimiter(settings)
    app.state.readiness = Readiness(settings, ("kafka", "redis", "clickhouse"),
                                    started=lambda: not getattr(app.state, "starting", False))
    # Pure ASGI, outermost last: the body's size is checked before the key, the key before the body
    # is read (api/guards.py); both sit inside Starlette's catch-all 500 handler.
    app.add_middleware(KeyBeforeBody)
    app.add_middleware(BodyGuard, max_body_bytes=settings.api_max_body_bytes,
                       body_timeout_s=settings.api_body_timeout_s)
    # Outside the guards: requests they answer are counted too; the gate answers 503 while starting.
    app.add_middleware(StartupGate)
    app.add_middleware(RequestMetrics)
    app.include_router(setup_router)
    app.include_router(read_router)
    app.include_router(conversion_router)
    app.include_router(finance_router)
    app.include_router(privacy_router)
    app.include_router(pages_router)
    app.include_router(ops_router)

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict[str, Any]:
        ctx: ApiContext | None = getattr(request.app.state, "ctx", None)
        if ctx is None:  # liveness once started; while starting, 503 like every route but /readyz
            raise unavailable("starting: waiting for Kafka", 2, code="starting")
        return {"status": "ok", "setup_records": ctx.setup.position}

    return app
