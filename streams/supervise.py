"""Keep a consumer loop alive: restart it after an unexpected error instead of dying silently.

State is never lost by a restart: both consumers resume from their Redis fences on assignment.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger(__name__)


class Runnable(Protocol):
    async def run(self) -> None: ...


async def run_forever(consumer: Runnable, name: str) -> None:
    while True:
        try:
            await consumer.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s crashed; restarting in 1s", name)
            await asyncio.sleep(1)
