"""Session-wide rules for tests that need the dev services (see pyproject's pytest markers).

1. A test marked ``kafka``, ``redis`` or ``clickhouse`` fails at once with a clear message when
   that service does not answer -- it is not skipped: a green run must mean the tests ran. The
   check runs once per service per session (``make up`` starts the services).
2. A test that is *not* marked for a service but connects to it fails with a message naming the
   missing marker (the habit of snuba's tests/conftest.py), so ``make test-fast``'s
   ``-m "not kafka and not redis and not clickhouse"`` really selects tests that need nothing.
   ``e2e`` tests may use every service.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from liveledger.settings import Settings

SERVICE_MARKERS = ("kafka", "redis", "clickhouse")
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}

# service -> None when it answered, else the reason it did not
_service_state: dict[str, str | None] = {}


def _hostport(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url if "//" in url else f"//{url}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


def _service_ports(settings: Settings) -> dict[tuple[str, int], str]:
    """(host, port) -> service for every dev service address this run would use."""
    ports: dict[tuple[str, int], str] = {}
    for server in settings.kafka_bootstrap.split(","):
        ports[_hostport(server.strip(), 9092)] = "kafka"
    ports[("127.0.0.1", 9093)] = "kafka"  # the KRaft controller listener
    ports[_hostport(settings.redis_url, 6379)] = "redis"
    ports[_hostport(settings.clickhouse_url, 8123)] = "clickhouse"
    return ports


def _check(service: str) -> str | None:
    if service not in _service_state:
        from devstack.wait import CHECKS

        async def probe() -> None:
            await asyncio.wait_for(CHECKS[service](Settings()), timeout=10)

        try:
            asyncio.run(probe())
            _service_state[service] = None
        except Exception as exc:
            _service_state[service] = f"{type(exc).__name__}: {exc}"
    return _service_state[service]


def pytest_runtest_setup(item: pytest.Item) -> None:
    for service in SERVICE_MARKERS:
        if item.get_closest_marker(service) is None:
            continue
        reason = _check(service)
        if reason is not None:
            pytest.fail(
                f"{service} is not reachable ({reason}). This test is marked `{service}`: start the dev "
                "stack with `make up` (or run `make test-fast` for the tests that need no services).",
                pytrace=False,
            )


@pytest.fixture(autouse=True)
def _services_need_markers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make an unmarked test that connects to a dev service fail, naming the marker it lacks."""
    if request.node.get_closest_marker("e2e") is not None:
        yield
        return
    allowed = {s for s in SERVICE_MARKERS if request.node.get_closest_marker(s) is not None}
    if allowed == set(SERVICE_MARKERS):
        yield
        return
    guarded = {
        (host if host not in _LOCAL_HOSTS else "local", port): service
        for (host, port), service in _service_ports(Settings()).items()
        if service not in allowed
    }
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def _guard(address: Any) -> None:
        if isinstance(address, tuple) and len(address) >= 2:
            host = "local" if address[0] in _LOCAL_HOSTS else address[0]
            service = guarded.get((host, address[1]))
            if service is not None:
                raise RuntimeError(
                    f"test {request.node.nodeid} connects to {service} ({address[0]}:{address[1]}) "
                    f"but is not marked @pytest.mark.{service}"
                )

    def connect(self: socket.socket, address: Any) -> None:
        _guard(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _guard(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    yield
