"""Numbered ClickHouse migrations: ``consumers/migrations/NNNN_name.sql``, applied in order, recorded.

- A file holds one or more statements; a statement ends with ``;`` at the end of a line. Lines that
  are only ``--`` comments are dropped. ``{db}`` is replaced by the target database name and
  ``{events_retention_days}`` by the setting ``LIVELEDGER_EVENTS_RETENTION_DAYS`` (the checksum is
  of the file as written, so a changed setting is not an edited migration).
- Retention (0106): after the migrations, every run compares the TTL of the raw event tables
  (:data:`RETENTION_TABLES`) with the setting and applies ``ALTER TABLE … MODIFY TTL`` where it
  differs, so changing the setting and running ``liveledger migrate`` again changes the retention.
- Applied migrations are recorded in ``<db>.schema_migrations`` (version, name, checksum, applied_at)
  and never run again. Editing an applied file is refused (checksum mismatch): add a new file.
- A file is not atomic (ClickHouse DDL is not transactional): write statements that can be re-run
  (``IF NOT EXISTS``), so a migration that failed half-way can simply be applied again.

- Cluster (``LIVELEDGER_CLICKHOUSE_CLUSTER=<name>``): every statement, the bookkeeping table's
  too, is rewritten by :mod:`consumers.cluster_ddl` (``ON CLUSTER``, ``Replicated*MergeTree``
  ``<table>_local`` tables under ``Distributed`` tables of the names the code uses); unset, the
  DDL is exactly the files'.

``liveledger migrate [--dry-run]`` (liveledger/cli.py) calls ``migrate_cli``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from clickhouse_connect.driver.client import Client

from consumers.cluster_ddl import cluster_statements, local_name
from liveledger.ch import get_client
from liveledger.settings import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BOOKKEEPING_TABLE = "schema_migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STATEMENT_END = re.compile(r";[ \t]*(?:\r?\n|$)")
# Raw event tables and the time their rows expire from (0106); the ledger tables have no TTL.
RETENTION_TABLES: Mapping[str, str] = {"events": "received_at", "dead_letters": "dead_lettered_at"}
_TTL_CLAUSE = re.compile(r"\bTTL\s+(.*?)\s*(?:\bSETTINGS\b|$)", re.DOTALL)


class MigrationError(Exception):
    """The migrations on disk and the ones recorded in the database do not fit together."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    text: str
    checksum: str

    @classmethod
    def load(cls, path: Path) -> Migration:
        m = _FILE_NAME.match(path.name)
        if not m:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        raw = path.read_bytes()
        return cls(int(m.group(1)), m.group(2), path, raw.decode(), hashlib.sha256(raw).hexdigest())

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def statements(self, database: str, values: Mapping[str, str] | None = None, *,
                   cluster: str | None = None, tables: set[str] | None = None) -> list[str]:
        """The statements with ``{db}`` and the ``{name}`` placeholders of ``values`` substituted;
        with ``cluster``, their cluster form (``tables``: every table the migrations create)."""
        text = self.text.replace("{db}", database)
        for name, value in (values or {}).items():
            text = text.replace("{" + name + "}", value)
        out = split_statements(text)
        if cluster:
            known = set(tables) if tables is not None else created_tables([self], database)
            out = cluster_statements(out, database, cluster, known)
        return out


_CREATES = re.compile(r"^CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?`?\w+`?\.`?(\w+)`?", re.I)


def created_tables(migrations: Sequence[Migration], database: str = "db") -> set[str]:
    """The tables the ``migrations`` create (and the bookkeeping table)."""
    names = {BOOKKEEPING_TABLE}
    for m in migrations:
        for statement in m.statements(database):
            if found := _CREATES.match(statement):
                names.add(found.group(1))
    return names


def split_statements(text: str) -> list[str]:
    """Statements of a migration file: split at ``;`` ending a line, comment-only lines dropped."""
    out: list[str] = []
    for chunk in _STATEMENT_END.split(text):
        lines = [line for line in chunk.splitlines() if not line.strip().startswith("--")]
        statement = "\n".join(lines).strip()
        if statement:
            out.append(statement)
    return out


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every ``*.sql`` in ``directory`` in version order; duplicate versions are an error."""
    migrations = [Migration.load(p) for p in sorted(directory.glob("*.sql"))]
    seen: dict[int, str] = {}
    for m in migrations:
        if m.version in seen:
            raise MigrationError(f"two migrations with version {m.version:04d}: {seen[m.version]}, {m.label}")
        seen[m.version] = m.label
    return sorted(migrations, key=lambda m: m.version)


@dataclass
class MigrationReport:
    database: str
    applied: list[str] = field(default_factory=list)  # applied by this run
    pending: list[str] = field(default_factory=list)  # would be applied (dry run)
    already: list[str] = field(default_factory=list)  # recorded before this run
    retention: list[str] = field(default_factory=list)  # TTL statements applied (or, dry run, due)


def _check_database_name(database: str) -> None:
    if not _IDENTIFIER.match(database):
        raise MigrationError(f"database name {database!r} is not a plain identifier")


def bookkeeping_statements(database: str, cluster: str | None = None) -> list[str]:
    _check_database_name(database)
    statements = [
        f"CREATE DATABASE IF NOT EXISTS `{database}`",
        f"""CREATE TABLE IF NOT EXISTS `{database}`.{BOOKKEEPING_TABLE} (
            version UInt32,
            name String,
            checksum String,
            applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
        ) ENGINE = ReplacingMergeTree(applied_at) ORDER BY version""",
    ]
    return cluster_statements(statements, database, cluster) if cluster else statements


def ensure_bookkeeping(client: Client, database: str, cluster: str | None = None) -> None:
    for statement in bookkeeping_statements(database, cluster):
        client.command(statement)


def applied_migrations(client: Client, database: str) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of the migrations recorded in ``database`` ({} if none yet)."""
    _check_database_name(database)
    exists = client.command(
        "SELECT count() FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        parameters={"db": database, "t": BOOKKEEPING_TABLE},
    )
    if not exists:
        return {}
    rows = client.query(
        f"SELECT version, argMax(name, applied_at), argMax(checksum, applied_at) "
        f"FROM `{database}`.{BOOKKEEPING_TABLE} GROUP BY version ORDER BY version"
    ).result_rows
    return {int(v): (str(n), str(c)) for v, n, c in rows}


def retention_ttl(column: str, days: int) -> str:
    """The TTL expression of a raw event table, as ClickHouse shows it in ``SHOW CREATE TABLE``."""
    return f"toDateTime({column}) + toIntervalDay({int(days)})"


def retention_statements(client: Client, database: str, days: int, cluster: str | None = None) -> list[str]:
    """``ALTER TABLE … MODIFY TTL`` for each existing raw event table whose TTL is not ``days``
    (on a cluster: the ``_local`` tables, ``ON CLUSTER``)."""
    _check_database_name(database)
    names = {(local_name(t) if cluster else t): t for t in RETENTION_TABLES}
    rows = client.query(
        "SELECT name, create_table_query FROM system.tables WHERE database = {db:String} AND name IN {t:Array(String)}",
        parameters={"db": database, "t": sorted(names)},
    ).result_rows
    out = []
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    for name, create in sorted((str(n), str(c)) for n, c in rows):
        column = RETENTION_TABLES[names[name]]
        found = _TTL_CLAUSE.search(create)
        current = " ".join(found.group(1).split()) if found else None
        if current != retention_ttl(column, days):
            out.append(f"ALTER TABLE `{database}`.{name}{on_cluster} MODIFY TTL toDateTime({column}) "
                       f"+ INTERVAL {int(days)} DAY")
    return out


def migrate(
    client: Client,
    database: str,
    migrations: Sequence[Migration] | None = None,
    dry_run: bool = False,
    *,
    events_retention_days: int | None = None,
    cluster: str | None = None,
) -> MigrationReport:
    """Apply the migrations not yet recorded in ``database``, in version order, then bring the raw
    event tables' TTL to ``events_retention_days`` (default: the setting). ``cluster``: the
    cluster form of every statement (default: the setting ``LIVELEDGER_CLICKHOUSE_CLUSTER``)."""
    _check_database_name(database)
    settings = get_settings()
    days = settings.events_retention_days if events_retention_days is None else int(events_retention_days)
    cluster = (settings.clickhouse_cluster if cluster is None else cluster) or None
    if days < 1:
        raise MigrationError(f"events retention must be at least 1 day, not {days}")
    values = {"events_retention_days": str(days)}
    migrations = list(discover() if migrations is None else migrations)
    recorded = applied_migrations(client, database)
    report = MigrationReport(database)
    changed = [m.label for m in migrations if m.version in recorded and recorded[m.version][1] != m.checksum]
    if changed:
        raise MigrationError(
            f"applied migrations were edited since they ran: {', '.join(changed)}; add a new migration instead"
        )
    for m in migrations:
        if m.version in recorded:
            report.already.append(m.label)
        elif dry_run:
            report.pending.append(m.label)
    if dry_run:
        if not report.pending:
            report.retention = retention_statements(client, database, days, cluster)
        return report
    ensure_bookkeeping(client, database, cluster)
    tables = created_tables(migrations, database)
    for m in migrations:
        if m.version in recorded:
            continue
        for statement in m.statements(database, values, cluster=cluster, tables=tables):
            client.command(statement)
        client.insert(
            f"{database}.{BOOKKEEPING_TABLE}",
            [[m.version, m.name, m.checksum]],
            column_names=["version", "name", "checksum"],
            settings={"insert_distributed_sync": 1} if cluster else None,
        )
        report.applied.append(m.label)
    for statement in retention_statements(client, database, days, cluster):
        client.command(statement)
        report.retention.append(statement)
    return report


def run(settings: Settings, dry_run: bool = False, out: TextIO = sys.stdout) -> MigrationReport:
    database = settings.clickhouse_database
    client = get_client(settings, database="default")
    try:
        report = migrate(client, database, dry_run=dry_run, events_retention_days=settings.events_retention_days,
                         cluster=settings.clickhouse_cluster)
    finally:
        client.close()
    for label in report.already:
        print(f"  applied earlier  {label}", file=out)
    for label in report.pending:
        print(f"  pending          {label}", file=out)
    for label in report.applied:
        print(f"  applied          {label}", file=out)
    for statement in report.retention:
        print(f"  {'retention due   ' if dry_run else 'retention        '} {statement}", file=out)
    verb = "would apply" if dry_run else "applied"
    count = len(report.pending) if dry_run else len(report.applied)
    print(f"migrate: database {database}: {verb} {count}, {len(report.already)} already applied", file=out)
    return report


def migrate_cli(args: argparse.Namespace) -> int:
    try:
        run(get_settings(), dry_run=bool(getattr(args, "dry_run", False)))
    except MigrationError as ex:
        print(f"migrate: {ex}", file=sys.stderr)
        return 1
    return 0
