"""The Grafana dashboard and the Prometheus scrape configs against the code (no services needed):
every series a panel queries is a family liveledger/metrics.py defines, and every process's
metrics port is scraped. (The YAML files are read with two regular expressions: they are written
in one plain shape, and the project has no YAML parser among its dependencies.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

import liveledger.metrics  # noqa: F401  (registers the families)
from liveledger.ops_server import PORT_RANGES
from liveledger.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "liveledger.json"
_NAME = re.compile(r"\b(liveledger_[a-z_]+|process_[a-z_]+|up)\b")
_SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_info")
_JOB = re.compile(r"^\s*-\s*job_name:\s*(\S+)", re.M)
_TARGETS = re.compile(r"^\s*-\s*targets:\s*\[([^\]]*)\]", re.M)


def exprs(panels: list[dict[str, Any]]) -> list[str]:
    out = []
    for panel in panels:
        out += [t["expr"] for t in panel.get("targets", [])]
        out += exprs(panel.get("panels", []))
    return out


def exposed_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(s.name for s in family.samples)
    return names


def test_every_panel_queries_series_the_code_exposes() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    known = exposed_names()
    queried = {m for e in exprs(dashboard["panels"]) for m in _NAME.findall(e)}
    assert any(q.startswith("liveledger_") for q in queried)
    unknown = []
    for name in queried - {"up"}:
        base = next((name.removesuffix(s) for s in _SUFFIXES if name.endswith(s)), name)
        if name not in known and base not in known:
            unknown.append(name)
    assert not unknown, f"the dashboard queries series no process exposes: {sorted(unknown)}"
    assert dashboard["uid"] == "liveledger"


def test_every_contract_family_has_a_panel() -> None:
    text = DASHBOARD.read_text()
    for family in ("liveledger_http_requests_total", "liveledger_http_request_duration_seconds_bucket",
                   "liveledger_events_accepted_total", "liveledger_events_rejected_total",
                   "liveledger_events_dead_lettered_total", "liveledger_consumer_lag_records",
                   "liveledger_flush_size", "liveledger_flush_duration_seconds", "liveledger_watermark_seconds"):
        assert family in text, family


def test_datasource_uid_matches_the_provisioned_one() -> None:
    provisioned = (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    uids = set(re.findall(r"^\s*uid:\s*(\S+)", provisioned, re.M))
    text = DASHBOARD.read_text()
    assert uids == {"prometheus"} and '"uid": "prometheus"' in text


@pytest.mark.parametrize(("config", "host"), [("prometheus.yml", None), ("prometheus.devstack.yml", "127.0.0.1")])
def test_scrape_configs_name_every_metrics_port(config: str, host: str | None) -> None:
    text = (ROOT / "deploy" / config).read_text()
    jobs = _JOB.findall(text)
    lists = [json.loads(f"[{t}]") for t in _TARGETS.findall(text)]
    assert len(jobs) == len(lists), "one targets line per job"
    targets = {job: t for job, ts in zip(jobs, lists, strict=True) for t in ts}
    defaults = Settings()
    ports = {"ingest": defaults.ingest_port, "api": defaults.api_port, "streams": PORT_RANGES["streams"][0],
             "sink": PORT_RANGES["sink"][0]}
    assert targets == {job: f"{host or job}:{port}" for job, port in ports.items()}
