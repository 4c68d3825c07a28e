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


# ---- profile "cluster": Kafka with replication (docs/scaling.md "Kafka cluster") ------------------
CLUSTER_ENV_FILE = ROOT / "deploy" / "kafka-cluster.env"
BROKERS = {name: s for name, s in SERVICES.items() if re.fullmatch(r"kafka-\d+", name)}


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def _default(value: str) -> str:
    """``${NAME:-default}`` -> default; anything else as it is."""
    match = _INTERPOLATION.fullmatch(value)
    return match.group(3) if match is not None and match.group(2) == ":-" else value


def _listener(listeners: str, name: str) -> str:
    (found,) = [item.split("://", 1)[1] for item in listeners.split(",") if item.startswith(f"{name}://")]
    return found


def test_cluster_profile_has_three_kraft_nodes_with_one_quorum() -> None:
    from devstack.kafka_cluster import BROKER_PORTS

    assert sorted(BROKERS) == ["kafka-1", "kafka-2", "kafka-3"]
    envs = {name: _env(s) for name, s in BROKERS.items()}
    voters = {e["KAFKA_CONTROLLER_QUORUM_VOTERS"] for e in envs.values()}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}, voters
    assert len({e["CLUSTER_ID"] for e in envs.values()}) == 1
    for name, service in BROKERS.items():
        env = envs[name]
        node = int(name.removeprefix("kafka-"))
        assert service["profiles"] == ["cluster"] and service["image"] == SERVICES["kafka"]["image"], name
        assert int(env["KAFKA_NODE_ID"]) == node and env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        # containers reach it under its service name, the host on the devstack cluster's port
        assert _listener(env["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT") == f"{name}:19092"
        assert _listener(env["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT_HOST") == f"127.0.0.1:{BROKER_PORTS[node - 1]}"
        assert f"127.0.0.1:{BROKER_PORTS[node - 1]}:{BROKER_PORTS[node - 1]}" in service["ports"]
        assert service["volumes"] == [f"{name}-data:/var/lib/kafka/data"]
        assert f"{name}-data" in COMPOSE["volumes"]
        assert service["restart"] == "unless-stopped" and "healthcheck" in service


def test_cluster_profile_replicates_everything_three_times_two_in_sync() -> None:
    for name, service in BROKERS.items():
        env = _env(service)
        for key in ("KAFKA_DEFAULT_REPLICATION_FACTOR", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
                    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR"):
            assert int(env[key]) == len(BROKERS), (name, key)
        for key in ("KAFKA_MIN_INSYNC_REPLICAS", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
                    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR"):
            assert int(env[key]) == 2, (name, key)
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"


def test_the_app_uses_the_single_broker_by_default_and_the_cluster_with_its_env_file() -> None:
    from liveledger.topics import replication

    app_env = _env(APP["ingest"])
    names = ("LIVELEDGER_KAFKA_BOOTSTRAP", "LIVELEDGER_KAFKA_REPLICATION_FACTOR",
             "LIVELEDGER_KAFKA_MIN_INSYNC_REPLICAS")
    for key in names:  # every app service reads them from the environment, with the single broker's defaults
        match = _INTERPOLATION.fullmatch(app_env[key])
        assert match is not None and match.group(1) == key and match.group(2) == ":-", app_env[key]
    single = _env(SERVICES["kafka"])
    single_bootstrap = _listener(single["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT")
    assert _default(app_env["LIVELEDGER_KAFKA_BOOTSTRAP"]) == single_bootstrap
    assert int(_default(app_env["LIVELEDGER_KAFKA_REPLICATION_FACTOR"])) == 1
    assert int(_default(app_env["LIVELEDGER_KAFKA_MIN_INSYNC_REPLICAS"])) == int(single["KAFKA_MIN_INSYNC_REPLICAS"])

    cluster = _env_file(CLUSTER_ENV_FILE)
    assert set(cluster) == {"COMPOSE_PROFILES", *names}, cluster
    assert cluster["COMPOSE_PROFILES"] == "cluster"
    advertised = {_listener(_env(s)["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT") for s in BROKERS.values()}
    assert set(cluster["LIVELEDGER_KAFKA_BOOTSTRAP"].split(",")) == advertised
    settings = Settings(kafka_replication_factor=int(cluster["LIVELEDGER_KAFKA_REPLICATION_FACTOR"]),
                        kafka_min_insync_replicas=int(cluster["LIVELEDGER_KAFKA_MIN_INSYNC_REPLICAS"]))
    assert replication(settings) == (len(BROKERS), {"min.insync.replicas": "2"})
    # migrate (topic creation) waits for the brokers when the profile is on
    for name in BROKERS:
        assert SERVICES["migrate"]["depends_on"][name] == {"condition": "service_healthy", "required": False}
