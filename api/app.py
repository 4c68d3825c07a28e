"""The API process on :8000: setup, reading, dashboards. OpenAPI at /openapi.json."""

from __future__ import annotations

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
from api.pages import router as pages_router
from api.privacy_routes import router as privacy_router
from api.ratelimit import KeyRateLimiter
from api.read_routes import router as read_router
from api.setup_routes import router as setup_router
from api.stores import start_read_clients, stop_read_clients
from liveledger.kafka import start_producer
from liveledger.settings import Settings, get_settings
from liveledger.setup_state import SetupReplica

log = logging.getLogger("api")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = await start_producer(settings)
        setup = SetupReplica(settings)
        await setup.start()
        ctx = ApiContext(settings=settings, producer=producer, setup=setup)
        app.state.ctx = ctx
        await start_read_clients(ctx)
        log.info("api ready on %s:%d", settings.api_host, settings.api_port)
        try:
            yield
        finally:
            await stop_read_clients(ctx)
            await setup.stop()
            await producer.stop()

    app = FastAPI(title="LiveLedger API", version="0.1.0", lifespan=lifespan,
                  description="Setup, live stream metrics, creator earnings, payouts and reconciliation.")
    install_error_handlers(app)
    app.state.rate_limiter = KeyRateLimiter(settings)
    # Pure ASGI, outermost last: the body's size is checked before the key, the key before the body
    # is read (api/guards.py); both sit inside Starlette's catch-all 500 handler.
    app.add_middleware(KeyBeforeBody)
    app.add_middleware(BodyGuard, max_body_bytes=settings.api_max_body_bytes,
                       body_timeout_s=settings.api_body_timeout_s)
    app.include_router(setup_router)
    app.include_router(read_router)
    app.include_router(conversion_router)
    app.include_router(finance_router)
    app.include_router(privacy_router)
    app.include_router(pages_router)

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> dict[str, Any]:
        ctx: ApiContext = request.app.state.ctx
        return {"status": "ok", "setup_records": ctx.setup.position}

    return app
