"""Fixtures of the fault tests: private Kafka, Redis and ClickHouse for the whole session
(tests/chaos/services.py), healed (resumed / restarted) before each stack starts on them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.chaos.services import PrivateServices


@pytest.fixture(scope="session")
def chaos_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServices]:
    services = PrivateServices(tmp_path_factory.mktemp("chaos-services"))
    try:
        took = asyncio.run(services.start())
        print(f"\nprivate services ready ({', '.join(f'{k} {v:.1f}s' for k, v in took.items())}) under {services.root}")
        yield services
    finally:
        services.stop()
