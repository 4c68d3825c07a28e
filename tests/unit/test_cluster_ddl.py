"""The DDL the migrator emits for a ClickHouse cluster (LIVELEDGER_CLICKHOUSE_CLUSTER), checked for
every migration against the single-server DDL of the same file, and the deploy/clickhouse-cluster
configuration it is meant for (no ClickHouse cluster runs here: docs/scaling.md)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from consumers.cluster_ddl import SHARD_KEYS, ClusterDDLError, cluster_statements
from consumers.migrate import Migration, bookkeeping_statements, created_tables, discover, split_statements
from liveledger.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "clickhouse-cluster"
DB = "liveledger"
CLUSTER = "ll_cluster"
VALUES = {"events_retention_days": "400"}
MIGRATIONS = discover()
TABLES = created_tables(MIGRATIONS, DB)

_CREATE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)( ON CLUSTER (\w+))? ", re.S)
_ENGINE = re.compile(r"ENGINE = (\w+)(?:\(([^()]*)\))?")
_ORDER = re.compile(r"ORDER BY (\([^()]*\)|\w+)")
_PARTITION = re.compile(r"PARTITION BY (\S+)")


def single(m: Migration) -> list[str]:
    return m.statements(DB, VALUES)


def clustered(m: Migration) -> list[str]:
    return m.statements(DB, VALUES, cluster=CLUSTER, tables=TABLES)


def creates(statements: list[str]) -> dict[str, str]:
    return {found.group(2): s for s in statements if (found := _CREATE.match(s))}


def test_without_a_cluster_the_ddl_is_the_files() -> None:
    assert Settings().clickhouse_cluster == ""
    for m in MIGRATIONS:
        assert single(m) == split_statements(m.text.replace("{db}", DB).replace("{events_retention_days}", "400"))
        assert all("ON CLUSTER" not in s and "Replicated" not in s and "Distributed" not in s for s in single(m))


@pytest.mark.parametrize("m", MIGRATIONS, ids=lambda m: m.label)
def test_every_ddl_statement_is_on_the_cluster(m: Migration) -> None:
    for statement in clustered(m):
        if statement.startswith("INSERT"):
            assert "ON CLUSTER" not in statement
            continue
        assert re.search(rf"\bON CLUSTER {CLUSTER}\b", statement), statement


@pytest.mark.parametrize("m", MIGRATIONS, ids=lambda m: m.label)
def test_tables_become_replicated_local_tables_under_distributed_ones(m: Migration) -> None:
    before, after = creates(single(m)), creates(clustered(m))
    assert set(after) == set(before) | {f"{t}_local" for t in before}
    for table, ddl in before.items():
        local, dist = after[f"{table}_local"], after[table]
        engine, args = _ENGINE.search(ddl).groups()  # type: ignore[union-attr]
        r_engine, r_args = _ENGINE.search(local).groups()  # type: ignore[union-attr]
        assert r_engine == f"Replicated{engine}"
        zk, replica, *rest = [a.strip() for a in r_args.split(",")]
        assert (zk, replica) == ("'/clickhouse/tables/{shard}/{database}/{table}'", "'{replica}'")
        assert rest == ([args.strip()] if args else []), "the same version column"
        assert _ORDER.search(local).group(1) == _ORDER.search(ddl).group(1)  # type: ignore[union-attr]
        assert _PARTITION.findall(local) == _PARTITION.findall(ddl)
        # the column list is the file's, untouched
        assert local[local.index("("):local.index("ENGINE")] == ddl[ddl.index("("):ddl.index("ENGINE")]
        if "non_replicated_deduplication_window" in ddl:
            assert "replicated_deduplication_window = 1000" in local
            assert "non_replicated" not in local
        key = SHARD_KEYS[table]
        assert dist == (f"CREATE TABLE IF NOT EXISTS {DB}.{table} ON CLUSTER {CLUSTER} AS {DB}.{table}_local\n"
                        f"ENGINE = Distributed({CLUSTER}, {DB}, {table}_local, {key})")
        sort_key = _ORDER.search(ddl).group(1).strip("()")  # type: ignore[union-attr]
        sort_cols = {c.strip() for c in sort_key.split(",")}
        hashed = {c.strip() for c in key[key.index("(") + 1:-1].split(",")}
        assert hashed <= sort_cols, f"{table}: shard by sorting-key columns, so FINAL stays exact per shard"


@pytest.mark.parametrize("m", MIGRATIONS, ids=lambda m: m.label)
def test_views_inserts_and_alters_go_where_they_should(m: Migration) -> None:
    for statement in clustered(m):
        if statement.startswith("CREATE MATERIALIZED VIEW"):
            target = re.search(r" TO \w+\.(\w+)", statement).group(1)  # type: ignore[union-attr]
            assert target.endswith("_local"), "a view writes the local table of its shard"
            sources = re.findall(rf"\bFROM {DB}\.(\w+)", statement)
            assert sources and all(s.endswith("_local") for s in sources), statement
        elif statement.startswith("INSERT INTO"):
            names = re.findall(rf"{DB}\.(\w+)", statement)
            assert names and not any(n.endswith("_local") for n in names), "back-fills use the Distributed tables"
        elif statement.startswith("ALTER TABLE"):
            table = re.match(rf"ALTER TABLE {DB}\.(\w+)", statement).group(1)  # type: ignore[union-attr]
            if "MODIFY TTL" in statement:
                assert table.endswith("_local")
        elif statement.startswith("TRUNCATE"):
            assert re.match(rf"TRUNCATE TABLE IF EXISTS {DB}\.\w+_local ON CLUSTER", statement), statement
    drops = [s for s in single(m) if s.startswith("DROP TABLE")]
    for s in drops:
        table = re.search(rf"{DB}\.(\w+)", s).group(1)  # type: ignore[union-attr]
        assert f"DROP TABLE IF EXISTS {DB}.{table} ON CLUSTER {CLUSTER}" in clustered(m)
        assert f"DROP TABLE IF EXISTS {DB}.{table}_local ON CLUSTER {CLUSTER}" in clustered(m)
    alters = [s for s in clustered(m) if s.startswith("ALTER TABLE") and "ADD COLUMN" in s]
    for s in single(m):
        if s.startswith("ALTER TABLE") and "ADD COLUMN" in s:
            table = re.match(rf"ALTER TABLE {DB}\.(\w+)", s).group(1)  # type: ignore[union-attr]
            rest = s.split(table, 1)[1]
            assert f"ALTER TABLE {DB}.{table}_local ON CLUSTER {CLUSTER}{rest}" in alters
            assert f"ALTER TABLE {DB}.{table} ON CLUSTER {CLUSTER}{rest}" in alters


def test_every_table_has_a_sharding_key_and_the_bookkeeping_table_too() -> None:
    assert set(SHARD_KEYS) >= TABLES
    statements = bookkeeping_statements(DB, CLUSTER)
    assert statements[0] == f"CREATE DATABASE IF NOT EXISTS `{DB}` ON CLUSTER {CLUSTER}"
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', applied_at)" \
        in statements[1]
    assert "Distributed(ll_cluster, liveledger, schema_migrations_local" in statements[2]
    assert bookkeeping_statements(DB) == bookkeeping_statements(DB, None)
    assert all("ON CLUSTER" not in s for s in bookkeeping_statements(DB))


def test_unknown_statements_are_refused_not_passed_through() -> None:
    with pytest.raises(ClusterDDLError):
        cluster_statements(["OPTIMIZE TABLE liveledger.events FINAL"], DB, CLUSTER)
    with pytest.raises(ClusterDDLError):
        cluster_statements(["CREATE TABLE IF NOT EXISTS liveledger.x (a UInt8) ENGINE = Memory"], DB, CLUSTER)
    with pytest.raises(ClusterDDLError):
        cluster_statements(["ALTER TABLE liveledger.nowhere ADD COLUMN a UInt8"], DB, CLUSTER)


def test_the_cluster_setting_is_a_plain_identifier() -> None:
    assert Settings(clickhouse_cluster="ll_cluster").clickhouse_cluster == "ll_cluster"
    with pytest.raises(ValueError):
        Settings(clickhouse_cluster="x; DROP DATABASE y")


# --- deploy/clickhouse-cluster: the compose override and the server configuration ----------------

def test_compose_override_runs_two_replicas_and_keeper_and_migrates_on_the_cluster() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.clickhouse-cluster.yml").read_text())
    services = compose["services"]
    assert {"clickhouse", "clickhouse-2", "keeper"} <= set(services)
    cluster = {str(v) for s in services.values() for k, v in (s.get("environment") or {}).items()
               if k == "LIVELEDGER_CLICKHOUSE_CLUSTER"}
    assert cluster == {CLUSTER}, "every application service names the same cluster"
    base = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name, s in services.items():
        if name in base and "environment" in s:
            assert base[name].get("image", "").startswith("liveledger") or name.startswith("clickhouse")
    for name in ("clickhouse", "clickhouse-2"):
        mounts = " ".join(services[name]["volumes"])
        assert "remote_servers.xml" in mounts and "keeper_client.xml" in mounts and "macros" in mounts


def test_server_config_names_the_cluster_replicas_and_keeper() -> None:
    remote = ET.parse(DEPLOY / "config.d" / "remote_servers.xml").getroot()
    cluster = remote.find(f"remote_servers/{CLUSTER}")
    assert cluster is not None
    replicas = cluster.findall("shard/replica")
    assert [r.findtext("host") for r in replicas] == ["clickhouse", "clickhouse-2"]
    assert cluster.findtext("shard/internal_replication") == "true", "Replicated tables copy; Distributed writes one"
    macros = {}
    for n in (1, 2):
        root = ET.parse(DEPLOY / f"macros-{n}.xml").getroot()
        macros[n] = (root.findtext("macros/shard"), root.findtext("macros/replica"))
    assert macros[1][0] == macros[2][0] and macros[1][1] != macros[2][1]
    keeper = ET.parse(DEPLOY / "config.d" / "keeper_client.xml").getroot()
    assert keeper.findtext("zookeeper/node/host") == "keeper"
    keeper_server = ET.parse(DEPLOY / "keeper" / "keeper_config.xml").getroot()
    assert keeper_server.findtext("keeper_server/tcp_port") == keeper.findtext("zookeeper/node/port")
