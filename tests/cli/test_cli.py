"""`liveledger` sub-commands against a real API process: output, files and exit codes."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.api.conftest import World
from tests.harness import ROOT, free_port

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.clickhouse]
NOW = datetime.now(UTC)


def cli(world: World, *args: str, key: str = "admin", api: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LIVELEDGER_API_URL=api or world.stack.api_url, LIVELEDGER_KEY=world.keys[key])
    return subprocess.run([sys.executable, "-m", "liveledger.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_setup_commands(world: World) -> None:
    res = cli(world, "setup", "creator", "--creator-id", "c9", "--name", "Nine")
    assert res.returncode == 0, res.stderr
    assert orjson.loads(res.stdout)["api_key"]
    res = cli(world, "setup", "stream", "--stream-id", "s9", "--brand-id", "b1", "--creator-id", "c9",
              "--title", "Live", key="b1")
    assert res.returncode == 0, res.stderr
    res = cli(world, "setup", "stream", "--stream-id", "s9b", "--brand-id", "b2", "--creator-id", "c9",
              "--title", "x", key="b1")
    assert res.returncode == 1 and "403 forbidden" in res.stderr
    assert cli(world, "setup", "brand", "--brand-id", "x").returncode == 2  # missing flags


def test_payouts_export_and_reconcile(world: World, tmp_path: Path) -> None:
    world.order("b1", "o1", occurred_at=NOW - timedelta(days=40), gross=100000, creator="c1", campaign="cmp1",
                stream="s1", ingested_at=NOW - timedelta(days=35))
    period = (NOW.date() - timedelta(days=1)).isoformat()
    res = cli(world, "payouts", "run", period, key="finance")
    assert res.returncode == 0, res.stderr
    assert "created" in res.stderr and "c1" in res.stdout and "100.00 USD" in res.stdout
    res = cli(world, "payouts", "run", period, "--json", key="finance")
    assert res.returncode == 0 and orjson.loads(res.stdout)["payout_id"] == f"po-{period}"
    out = tmp_path / "batch.csv"
    res = cli(world, "payouts", "csv", f"po-{period}", "-o", str(out), key="finance")
    assert res.returncode == 0 and next(iter(csv.DictReader(out.open())))["amount_minor"] == "10000"
    assert cli(world, "payouts", "show", "po-1999-01-01", key="finance").returncode == 1
    assert cli(world, "payouts", "list", key="finance").returncode == 0
    # today's period ends after the completeness watermark: refused unless forced (audited)
    today = NOW.date().isoformat()
    res = cli(world, "payouts", "run", today, key="finance")
    assert res.returncode == 1 and "409" in res.stderr and "not_complete" in res.stderr, res.stderr
    res = cli(world, "payouts", "run", today, "--force", key="finance")
    assert res.returncode == 0 and "created" in res.stderr, res.stderr

    res = cli(world, "export", "earnings", "--creator-id", "c1", "--creator-id", "c2", key="finance")
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert {"creator_id": "c1", "group": "total", "paid": "10000"}.items() <= rows[0].items()

    # the live view in Redis is empty: the ledger's c1 row differs -> exit code 4
    res = cli(world, "reconcile", key="finance")
    assert res.returncode == 4, res.stderr
    assert "differences" in res.stdout
    orders = tmp_path / "orders.csv"
    orders.write_text("order_id,occurred_at,currency,net_minor\n"
                      f"o1,{(NOW - timedelta(days=40)).strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z,USD,100000\n")
    res = cli(world, "reconcile", "--orders-csv", str(orders), "--brand-id", "b1", "--quiet", key="finance")
    assert res.returncode == 0, res.stdout + res.stderr


def test_unreachable_api_is_exit_3(world: World) -> None:
    res = cli(world, "payouts", "list", api=f"http://127.0.0.1:{free_port()}")
    assert res.returncode == 3 and "cannot reach" in res.stderr


def test_help_explains(world: World) -> None:
    for args in (["--help"], ["payouts", "--help"], ["reconcile", "--help"], ["export", "--help"],
                 ["setup", "campaign", "--help"]):
        res = subprocess.run([sys.executable, "-m", "liveledger.cli", *args], cwd=ROOT, capture_output=True,
                             text=True, timeout=30)
        assert res.returncode == 0 and "exit codes" in res.stdout, args
