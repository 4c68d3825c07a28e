"""docker-compose.yml against the code (no Docker engine here to run it): every application
service runs a module or CLI command that exists, sets only settings the code reads, requires the
admin token, exposes the ports the code listens on, is healthchecked on that port's /readyz,
restarts, and is scraped by the monitoring profile's Prometheus."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from liveledger.ops_server import PORT_RANGES
from liveledger.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APP = {name: s for name, s in SERVICES.items() if s.get("image", "").startswith("liveledger")}
LONG_RUNNING = {name: s for name, s in APP.items() if name != "migrate"}
DEFAULTS = Settings()
# the port each long-running process listens on, as the code decides it
PORTS = {"ingest": DEFAULTS.ingest_port, "api": DEFAULTS.api_port,
         "streams": PORT_RANGES["streams"][0], "sink": PORT_RANGES["sink"][0]}
_INTERPOLATION = re.compile(r"\$\{([A-Z_]+)(:?[-?])?([^}]*)\}")


def test_the_whole_product_starts_without_a_profile() -> None:
    assert set(LONG_RUNNING) == set(PORTS), "every process of the product is a service"
    for name, service in APP.items():
        assert "profiles" not in service, f"{name} must start with a plain `docker compose up`"


@pytest.mark.parametrize("name", sorted(APP))
def test_commands_exist(name: str) -> None:
    command: list[str] = APP[name]["command"]
    if command[:2] == ["python", "-m"]:
        module = command[2]
        assert importlib.util.find_spec(f"{module}.__main__") is not None, command
        return
    assert command[:2] == ["sh", "-c"]
    from liveledger.cli import build_parser

    parser = build_parser()
    for part in command[2].split("&&"):
        words = part.split()
        assert words[0] == "liveledger", part
        parser.parse_args(words[1:])  # SystemExit on an unknown subcommand


def _env(service: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


@pytest.mark.parametrize("name", sorted(APP))
def test_environment_names_settings_the_code_reads(name: str) -> None:
    fields = set(Settings.model_fields)
    for key in _env(APP[name]):
        if key == "CLICKHOUSE_URL":  # the one setting without the prefix (a validation alias)
            continue
        assert key.startswith("LIVELEDGER_"), key
        assert key.removeprefix("LIVELEDGER_").lower() in fields, f"{name}: {key} is not a setting"


@pytest.mark.parametrize("name", sorted(APP))
def test_admin_token_is_required_and_has_no_default(name: str) -> None:
    value = _env(APP[name])["LIVELEDGER_ADMIN_TOKEN"]
    match = _INTERPOLATION.fullmatch(value)
    assert match is not None and match.group(1) == "LIVELEDGER_ADMIN_TOKEN" and match.group(2) == ":?", value


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_ports_healthchecks_and_restart(name: str) -> None:
    service = LONG_RUNNING[name]
    port = PORTS[name]
    env = _env(service)
    if name in ("streams", "sink"):
        assert int(env["LIVELEDGER_METRICS_PORT"]) == port
        assert env["LIVELEDGER_METRICS_HOST"] == "0.0.0.0"
    else:
        assert env[f"LIVELEDGER_{name.upper()}_HOST"] == "0.0.0.0"
    published = {int(p.rsplit(":", 1)[-1]) for p in service["ports"]}
    assert port in published, (name, service["ports"])
    check = " ".join(service["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/readyz" in check, check
    assert service["restart"] in ("unless-stopped", "always", "on-failure")
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_depends_on_names_services() -> None:
    for name, service in SERVICES.items():
        for dep in service.get("depends_on") or {}:
            assert dep in SERVICES, f"{name} depends on unknown {dep}"


def test_prometheus_scrapes_every_process_and_grafana_is_provisioned() -> None:
    for name in ("prometheus", "grafana"):
        assert SERVICES[name]["profiles"] == ["monitoring"]
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    for name, port in PORTS.items():
        assert f"{name}:{port}" in targets, (name, sorted(targets))
    for volume in SERVICES["grafana"]["volumes"] + SERVICES["prometheus"]["volumes"]:
        source = volume.split(":", 1)[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), source
    dashboards = list((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
    assert dashboards, "a Grafana dashboard for the metrics"
