"""Long-lived clients of the API process, created once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import Request

from liveledger.settings import Settings
from liveledger.setup_state import SetupReplica


@dataclass
class ApiContext:
    settings: Settings
    producer: AIOKafkaProducer
    setup: SetupReplica
    # Clients other route modules register at startup (redis, clickhouse, ...).
    extras: dict[str, Any] = field(default_factory=dict)


def ctx_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx
