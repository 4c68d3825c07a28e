"""The migrations' DDL for a ClickHouse cluster (``LIVELEDGER_CLICKHOUSE_CLUSTER=<name>``).

Without a cluster the migrations run as written. With one, every statement is rewritten
(:func:`cluster_statements`) so the same files build a sharded, replicated schema:

- ``CREATE DATABASE``, ``CREATE TABLE``, ``CREATE MATERIALIZED VIEW``, ``ALTER``, ``DROP`` get
  ``ON CLUSTER <name>``;
- a table ``t`` becomes ``t_local`` with the ``Replicated`` variant of its engine
  (``ReplacingMergeTree(version)`` → ``ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}',
  '{replica}', version)``: same columns, ORDER BY, PARTITION BY, version column, TTL, settings;
  ``non_replicated_deduplication_window`` becomes ``replicated_deduplication_window``), plus a
  ``Distributed`` table ``t`` over ``t_local`` — so every reader and writer keeps using ``t``;
- the sharding key of ``t`` is a hash of columns of its sorting key (:data:`SHARD_KEYS`), so all
  versions and re-sends of one row land on one shard and ``FINAL`` / ``argMax`` stay exact per shard;
  the ledger family is sharded by ``(brand_id, order_id)``;
- a materialized view reads the *local* source table and writes the *local* target: it fires on
  the replica that receives the (Distributed-forwarded) insert, and the target's replication copies
  its output (views do not fire on replicated fetches);
- ``ALTER … ADD COLUMN`` goes to ``t_local`` and to ``t``; ``MODIFY TTL`` and ``TRUNCATE`` only to
  ``t_local``; ``DROP TABLE t`` drops both;
- ``INSERT … SELECT`` (back-fills) keep the Distributed names: rows are read from every shard
  and re-sharded by the target's key.

The output is plain text, unit-tested for every migration (tests/unit/test_cluster_ddl.py);
docs/scaling.md "ClickHouse cluster" has the deployment (deploy/clickhouse-cluster/).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

LOCAL_SUFFIX = "_local"
ZK_PATH = "'/clickhouse/tables/{shard}/{database}/{table}'"
REPLICA = "'{replica}'"
# Sharding keys (columns of the table's sorting key, so duplicates and versions co-locate). A table
# not listed is sharded by its first two ORDER BY columns.
SHARD_KEYS: Mapping[str, str] = {
    "events": "cityHash64(brand_id, event_id)",
    "orders_ledger": "cityHash64(brand_id, order_id)",
    "commission_versions": "cityHash64(brand_id, order_id)",
    "refunds": "cityHash64(brand_id, refund_id)",
    "dead_letters": "cityHash64(source_topic, source_partition, source_offset)",
    "payout_batches": "cityHash64(payout_id)",
    "payout_items": "cityHash64(creator_id)",
    "creator_ledger": "cityHash64(brand_id, order_id)",
    "order_versions": "cityHash64(brand_id, order_id)",
    "setup_audit": "cityHash64(change_id)",
    "schema_migrations": "cityHash64(version)",
    "creator_summary": "cityHash64(creator_id)",
    "creator_summary_dirty": "cityHash64(creator_id)",
    "creator_summary_builds": "cityHash64(creator_id)",
}

_NAME = r"`?([A-Za-z_][A-Za-z0-9_]*)`?"
_CREATE_DB = re.compile(r"^(CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _NAME + r")(.*)$", re.S | re.I)
_CREATE_TABLE = re.compile(r"^CREATE\s+TABLE\s+(IF\s+NOT\s+EXISTS\s+)?" + _NAME + r"\." + _NAME + r"\s*\(",
                           re.S | re.I)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*MergeTree)\b(\s*\(([^()]*)\))?", re.I)
_ORDER_BY = re.compile(r"\bORDER\s+BY\s+(\([^()]*\)|[A-Za-z_][A-Za-z0-9_]*)", re.I)
_CREATE_MV = re.compile(r"^(CREATE\s+MATERIALIZED\s+VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?" + _NAME + r"\." + _NAME
                        + r")\s+TO\s+" + _NAME + r"\." + _NAME + r"(\s+AS\s+.*)$", re.S | re.I)
_ALTER = re.compile(r"^ALTER\s+TABLE\s+" + _NAME + r"\." + _NAME + r"\s+(.*)$", re.S | re.I)
_DROP = re.compile(r"^(DROP\s+(?:VIEW|TABLE)\s+(?:IF\s+EXISTS\s+)?" + _NAME + r"\." + _NAME + r")(.*)$",
                   re.S | re.I)
_TRUNCATE = re.compile(r"^(TRUNCATE\s+TABLE\s+(?:IF\s+EXISTS\s+)?)" + _NAME + r"\." + _NAME + r"(.*)$", re.S | re.I)
_INSERT = re.compile(r"^INSERT\s+INTO\s+", re.I)


class ClusterDDLError(ValueError):
    """A statement the cluster rewrite does not know how to place."""


def local_name(table: str) -> str:
    return table + LOCAL_SUFFIX


def replicated_engine(engine: str, args: str | None, table: str) -> str:
    """``ReplacingMergeTree(version)`` → ``ReplicatedReplacingMergeTree('<zk path>', '{replica}', version)``."""
    if engine.lower().startswith("replicated"):
        raise ClusterDDLError(f"{table}: the migrations name plain engines; {engine} is already replicated")
    params = [ZK_PATH, REPLICA] + ([args.strip()] if args and args.strip() else [])
    return f"ENGINE = Replicated{engine}({', '.join(params)})"


def order_by_columns(ddl: str) -> list[str]:
    m = _ORDER_BY.search(ddl)
    if not m:
        raise ClusterDDLError("a MergeTree table without ORDER BY")
    return [c.strip() for c in m.group(1).strip("()").split(",") if c.strip()]


def shard_key(table: str, ddl: str) -> str:
    if table in SHARD_KEYS:
        return SHARD_KEYS[table]
    return f"cityHash64({', '.join(order_by_columns(ddl)[:2])})"


def distributed_table(database: str, table: str, cluster: str, key: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {database}.{table} ON CLUSTER {cluster} AS {database}.{local_name(table)}\n"
            f"ENGINE = Distributed({cluster}, {database}, {local_name(table)}, {key})")


def _create_table(stmt: str, m: re.Match[str], cluster: str) -> list[str]:
    database, table = m.group(2), m.group(3)
    engine = _ENGINE.search(stmt)
    if engine is None:
        raise ClusterDDLError(f"{table}: only MergeTree-family tables are created by the migrations")
    body = stmt[m.end() - 1:]  # from the column list's "("
    body = body.replace(engine.group(0), replicated_engine(engine.group(1), engine.group(3), local_name(table)), 1)
    body = re.sub(r"\bnon_replicated_deduplication_window\b", "replicated_deduplication_window", body)
    local = f"CREATE TABLE {m.group(1) or ''}{database}.{local_name(table)} ON CLUSTER {cluster} {body}"
    return [local, distributed_table(database, table, cluster, shard_key(table, stmt))]


def _rewrite(stmt: str, database: str, cluster: str, tables: set[str]) -> list[str]:
    if m := _CREATE_DB.match(stmt):
        return [f"{m.group(1)} ON CLUSTER {cluster}{m.group(3)}"]
    if m := _CREATE_TABLE.match(stmt):
        tables.add(m.group(3))
        return _create_table(stmt, m, cluster)
    if m := _CREATE_MV.match(stmt):
        target = m.group(5)
        select = m.group(6)
        for t in sorted(tables, key=len, reverse=True):  # the view reads the local source table
            select = re.sub(rf"\b{re.escape(m.group(2))}\.{re.escape(t)}\b(?!_)", f"{database}.{local_name(t)}",
                            select)
        to = local_name(target) if target in tables else target
        return [f"{m.group(1)} ON CLUSTER {cluster} TO {m.group(4)}.{to}{select}"]
    if m := _ALTER.match(stmt):
        db, table, rest = m.group(1), m.group(2), m.group(3)
        if table not in tables:
            raise ClusterDDLError(f"ALTER of {table}, which no migration created")
        out = [f"ALTER TABLE {db}.{local_name(table)} ON CLUSTER {cluster} {rest}"]
        if re.match(r"(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", rest, re.I):
            out.append(f"ALTER TABLE {db}.{table} ON CLUSTER {cluster} {rest}")  # the Distributed table's columns
        return out
    if m := _DROP.match(stmt):
        out = [f"{m.group(1)} ON CLUSTER {cluster}{m.group(4)}"]
        if m.group(3) in tables and re.match(r"DROP\s+TABLE", stmt, re.I):
            out.append(f"DROP TABLE IF EXISTS {m.group(2)}.{local_name(m.group(3))} ON CLUSTER {cluster}")
        return out
    if m := _TRUNCATE.match(stmt):  # the data is in the local tables
        table = local_name(m.group(3)) if m.group(3) in tables else m.group(3)
        return [f"{m.group(1)}{m.group(2)}.{table} ON CLUSTER {cluster}{m.group(4)}"]
    if _INSERT.match(stmt):
        return [stmt]  # Distributed names: read every shard, re-shard into the target
    raise ClusterDDLError(f"no cluster form for: {stmt[:80]}")


def cluster_statements(statements: Iterable[str], database: str, cluster: str,
                       tables: set[str] | None = None) -> list[str]:
    """The cluster form of ``statements`` (already ``{db}``-substituted). ``tables`` collects the
    tables created so far (pass the same set across migrations, in order)."""
    known = tables if tables is not None else set()
    out: list[str] = []
    for stmt in statements:
        out.extend(_rewrite(stmt.strip(), database, cluster, known))
    return out
