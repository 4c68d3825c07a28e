"""clickhouse-connect against ``settings.clickhouse_url``: the chDB dev server must behave like ClickHouse.

The same suite runs against a real server when ``CLICKHOUSE_URL`` names one. Every test works in a
fresh database (``ll_test_<uuid>``) that it drops afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.compression import available_compression
from clickhouse_connect.driver.exceptions import DatabaseError

from consumers.migrate import MigrationError, applied_migrations, discover, migrate
from liveledger.ch import get_async_client, get_client, parse_clickhouse_url
from liveledger.settings import Settings

pytestmark = pytest.mark.clickhouse

HOSTILE = [
    "plain",
    "it's",
    "''; DROP TABLE t; --",
    "back\\slash \\' \\\\ end\\",
    'double "quotes"',
    "tab\tnew\nline\rcr",
    "nul\x00byte",
    "{x:String} $1 %s %(x)s ?",
    "unicode: žluťoučký 😀 中文",
    "\\N",
    "",
]

ALL_TYPES = """(
    id UInt64,
    i Int64,
    s String,
    lc LowCardinality(String),
    amount Decimal(18, 4),
    ts DateTime64(3, 'UTC'),
    ns Nullable(String),
    ni Nullable(Int64),
    tags Array(String)
)"""


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture
def db(settings: Settings) -> Iterator[str]:
    name = f"ll_test_{uuid.uuid4().hex}"
    admin = get_client(settings, database="default")
    admin.command(f"CREATE DATABASE {name}")
    yield name
    admin.command(f"DROP DATABASE IF EXISTS {name}")
    admin.close()


@pytest.fixture
def client(settings: Settings, db: str) -> Iterator[Client]:
    c = get_client(settings, database=db)
    yield c
    c.close()


def _rows(n: int, start: int = 0) -> list[list[Any]]:
    base = datetime(2026, 11, 25, 20, 0, 0, 123000)
    return [
        [
            i,
            -(2**62) + i,
            HOSTILE[i % len(HOSTILE)] + str(i),
            f"brand-{i % 5}",
            Decimal(f"{i}.{i % 10000:04d}"),
            base + timedelta(milliseconds=i),
            None if i % 2 else f"n{i}",
            None if i % 3 else -i,
            [f"t{i}", "x'y", ""] if i % 4 else [],
        ]
        for i in range(start, start + n)
    ]


def _all_types_table(client: Client, name: str = "t") -> None:
    client.command(f"CREATE TABLE {name} {ALL_TYPES} ENGINE = MergeTree ORDER BY id")


def _http(
    settings: Settings,
    query: str,
    *,
    method: str = "POST",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    **params: str,
) -> tuple[int, dict[str, str], bytes]:
    """A raw HTTP request to the ClickHouse URL (what curl would do)."""
    addr = parse_clickhouse_url(settings.clickhouse_url)
    url = f"{addr.scheme}://{addr.host}:{addr.port}/?" + urlencode({"query": query, **params})
    req = urllib.request.Request(url, data=body if method == "POST" else None, method=method)
    token = base64.b64encode(f"{addr.username}:{addr.password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


# --- connecting ----------------------------------------------------------------------------------


def test_connect_version_timezone_ping(client: Client) -> None:
    assert client.ping()
    assert client.server_version and int(client.server_version.split(".")[0]) >= 23
    assert client.command("SELECT timezone()")
    assert client.command("SELECT currentDatabase()") == client.database


def test_ping_and_headers(settings: Settings, db: str) -> None:
    addr = parse_clickhouse_url(settings.clickhouse_url)
    with urllib.request.urlopen(f"{addr.scheme}://{addr.host}:{addr.port}/ping", timeout=10) as resp:
        assert resp.read() == b"Ok.\n"
    status, headers, body = _http(settings, "SELECT 1 AS one FORMAT JSONEachRow", database=db)
    assert status == 200 and body == b'{"one":1}\n'
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert headers.get("X-ClickHouse-Query-Id")
    assert headers.get("X-ClickHouse-Timezone")
    assert '"read_rows"' in headers["X-ClickHouse-Summary"]


# --- DDL and round trips -------------------------------------------------------------------------


COMPRESSIONS: list[bool | str] = [
    True,
    False,
    *[c for c in ("lz4", "zstd", "gzip", "br") if c in available_compression],
]


@pytest.mark.parametrize("compress", COMPRESSIONS, ids=[str(c) for c in COMPRESSIONS])
def test_all_types_round_trip(settings: Settings, db: str, compress: bool | str) -> None:
    client = get_client(settings, database=db, compress=compress)
    _all_types_table(client)
    rows = _rows(3000)
    summary = client.insert("t", rows)
    assert summary.written_rows == 3000
    got = client.query("SELECT * FROM t ORDER BY id").result_rows
    assert [list(r) for r in got] == rows
    assert client.query("SELECT toTypeName(lc), toTypeName(ts) FROM t LIMIT 1").result_rows == [
        ("LowCardinality(String)", "DateTime64(3, 'UTC')")
    ]
    # Aggregates run in the engine, not in Python: exact decimals and 64-bit integers.
    total, min_i = client.query("SELECT sum(amount), min(i) FROM t").result_rows[0]
    assert total == sum((r[4] for r in rows), Decimal(0))
    assert min_i == -(2**62)
    client.close()


def test_large_insert_in_many_blocks(client: Client) -> None:
    client.command("CREATE TABLE big (id UInt64, s String, amount Decimal(18, 4)) ENGINE = MergeTree ORDER BY id")
    n = 300_000
    client.insert(
        "big",
        [list(range(n)), [f"row-{i}" for i in range(n)], [Decimal(i) / 4 for i in range(n)]],
        column_oriented=True,
    )
    assert client.query("SELECT count(), sum(id), sum(amount) FROM big").result_rows == [
        (n, n * (n - 1) // 2, Decimal(n * (n - 1) // 2) / 4)
    ]
    blocks = 0
    with client.query_row_block_stream("SELECT id FROM big ORDER BY id") as stream:
        for block in stream:
            blocks += 1
            assert block
    assert blocks >= 1


def test_replacing_merge_tree_final_and_argmax(client: Client) -> None:
    client.command(
        "CREATE TABLE facts (id String, version UInt64, amount Int64, status LowCardinality(String)) "
        "ENGINE = ReplacingMergeTree(version) ORDER BY id"
    )
    client.insert("facts", [["a", 1, 100, "pending"], ["b", 1, 50, "pending"]])
    client.insert("facts", [["a", 2, 80, "approved"]])
    client.insert("facts", [["a", 2, 80, "approved"], ["b", 3, 0, "reversed"]])  # a replayed batch
    final = client.query("SELECT id, amount, status FROM facts FINAL ORDER BY id").result_rows
    assert final == [("a", 80, "approved"), ("b", 0, "reversed")]
    latest = client.query(
        "SELECT id, argMax(amount, version), argMax(status, version) FROM facts GROUP BY id ORDER BY id"
    ).result_rows
    assert latest == [("a", 80, "approved"), ("b", 0, "reversed")]
    client.command("OPTIMIZE TABLE facts FINAL")
    assert client.command("SELECT count() FROM facts") == 2


def test_insert_deduplication_token(client: Client) -> None:
    # Non-replicated MergeTree deduplicates only with a window (a real server behaves the same).
    client.command(
        "CREATE TABLE ledger (id String, amount Int64) ENGINE = MergeTree ORDER BY id "
        "SETTINGS non_replicated_deduplication_window = 1000"
    )
    batch = [["x", 1], ["y", 2]]
    client.insert("ledger", batch, settings={"insert_deduplication_token": "ll.ledger-0-10-11"})
    client.insert("ledger", batch, settings={"insert_deduplication_token": "ll.ledger-0-10-11"})
    assert client.command("SELECT count() FROM ledger") == 2
    client.insert("ledger", batch, settings={"insert_deduplication_token": "ll.ledger-0-12-13"})
    assert client.command("SELECT count() FROM ledger") == 4


# --- parameters ----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_server_side_params_hostile_strings(client: Client, value: str) -> None:
    assert client.query("SELECT {v:String}", parameters={"v": value}).result_rows == [(value,)]
    client.command("CREATE TABLE IF NOT EXISTS p (k String, n UInt64) ENGINE = MergeTree ORDER BY k")
    client.insert("p", [[value, 7], ["other", 8]])
    got = client.query("SELECT n FROM p WHERE k = {k:String}", parameters={"k": value}).result_rows
    assert got == [(7,)]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_client_side_params_hostile_strings(client: Client, value: str) -> None:
    assert client.query("SELECT %(v)s", parameters={"v": value}).result_rows == [(value,)]


def test_typed_server_side_params(client: Client) -> None:
    ts = datetime(2026, 11, 25, 20, 0, 0, 123000, tzinfo=UTC)
    row = client.query(
        "SELECT {n:UInt64}, {i:Int64}, {d:Decimal(18, 4)}, {a:Array(String)}, {ns:Nullable(String)}, "
        "toUnixTimestamp64Milli({ts:DateTime64(3, 'UTC')})",
        parameters={
            "n": 2**64 - 1,
            "i": -(2**63),
            "d": Decimal("12345.6789"),
            "a": ["x'y", "z\\"],
            "ns": None,
            "ts": ts,
        },
    ).result_rows[0]
    assert row == (2**64 - 1, -(2**63), Decimal("12345.6789"), ["x'y", "z\\"], None, int(ts.timestamp() * 1000))


def test_bad_typed_param_is_an_error_not_an_injection(client: Client) -> None:
    with pytest.raises(DatabaseError) as err:
        client.query("SELECT {n:Int64}", parameters={"n": "1; DROP DATABASE default"})
    assert err.value.code == 457  # BAD_QUERY_PARAMETER


def test_long_params_go_as_form_data(client: Client) -> None:
    value = "ü'" * 20_000  # longer than clickhouse-connect puts in a URL
    assert client.query("SELECT length({v:String})", parameters={"v": value}).result_rows == [(len(value.encode()),)]


# --- errors --------------------------------------------------------------------------------------


def test_unknown_table_is_code_60(client: Client) -> None:
    with pytest.raises(DatabaseError) as err:
        client.query("SELECT * FROM no_such_table")
    assert err.value.code == 60
    assert "UNKNOWN_TABLE" in str(err.value)


def test_syntax_error_is_code_62(client: Client) -> None:
    with pytest.raises(DatabaseError) as err:
        client.command("SELEC 1")
    assert err.value.code == 62


def test_unknown_setting_is_code_115(client: Client) -> None:
    with pytest.raises(DatabaseError) as err:
        client.query("SELECT 1", settings={"no_such_setting_xyz": 1})
    assert err.value.code == 115


def test_insert_into_missing_table_and_bad_data(client: Client) -> None:
    with pytest.raises(DatabaseError) as err:
        client.insert("missing", [[1]], column_names=["a"], column_type_names=["UInt64"])
    assert err.value.code == 60
    client.command("CREATE TABLE n (a UInt8) ENGINE = MergeTree ORDER BY a")
    with pytest.raises(DatabaseError):
        client.raw_insert("n", ["a"], b"not-a-number\n", fmt="TabSeparated")
    assert client.command("SELECT count() FROM n") == 0


def test_error_http_shape(settings: Settings) -> None:
    status, headers, body = _http(settings, "SELECT * FROM system.no_such_table")
    assert status == 404
    assert headers["X-ClickHouse-Exception-Code"] == "60"
    assert body.startswith(b"Code: 60. DB::Exception: ")
    status, headers, _ = _http(settings, "SELEC 1")
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "62"


def test_get_and_readonly_setting_refuse_writes(settings: Settings, db: str) -> None:
    status, headers, body = _http(settings, f"CREATE TABLE {db}.g (a UInt8) ENGINE = Memory", method="GET")
    assert headers.get("X-ClickHouse-Exception-Code") == "164", body
    assert status == 500
    status, headers, body = _http(settings, f"CREATE TABLE {db}.g (a UInt8) ENGINE = Memory", readonly="1")
    assert headers.get("X-ClickHouse-Exception-Code") == "164", body
    status, _, body = _http(settings, "SELECT 1", method="GET", readonly="1")
    assert status == 200 and body == b"1\n"
    status, _, _ = _http(settings, f"CREATE TABLE {db}.g (a UInt8) ENGINE = Memory")
    assert status == 200


# --- raw HTTP features ---------------------------------------------------------------------------


def test_insert_with_query_in_url_and_data_in_body(settings: Settings, client: Client, db: str) -> None:
    client.command("CREATE TABLE raw (a UInt64, s String) ENGINE = MergeTree ORDER BY a")
    status, _, _ = _http(settings, "INSERT INTO raw FORMAT TabSeparated", body=b"1\tone\n2\ttwo\\tx\n", database=db)
    assert status == 200
    status, _, _ = _http(settings, "INSERT INTO raw VALUES", body=b"(3, 'th''ree')", database=db)
    assert status == 200
    body = gzip.compress(b'{"a": 4, "s": "four"}\n')
    status, _, _ = _http(
        settings, "INSERT INTO raw FORMAT JSONEachRow", body=body, database=db, headers={"Content-Encoding": "gzip"}
    )
    assert status == 200
    assert client.query("SELECT * FROM raw ORDER BY a").result_rows == [
        (1, "one"),
        (2, "two\tx"),
        (3, "th'ree"),
        (4, "four"),
    ]


def test_response_compression(settings: Settings) -> None:
    query = "SELECT number FROM numbers(1000) FORMAT TabSeparated"
    status, headers, body = _http(settings, query, headers={"Accept-Encoding": "gzip"}, enable_http_compression="1")
    assert status == 200 and headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == b"".join(b"%d\n" % i for i in range(1000))
    status, headers, body = _http(settings, query, headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in headers and body.startswith(b"0\n1\n")


# --- sessions and concurrency --------------------------------------------------------------------


def test_session_keeps_set_and_temporary_tables(settings: Settings, db: str) -> None:
    client = get_client(settings, database=db, session_id=f"ll-test-{uuid.uuid4().hex}")
    client.command("SET max_threads = 1")
    assert client.command("SELECT getSetting('max_threads')") == 1
    client.command("CREATE TEMPORARY TABLE tmp (a UInt8)")
    client.command("INSERT INTO tmp VALUES (1), (2)")
    assert client.command("SELECT count() FROM tmp") == 2
    # Settings passed with one request apply to that request only.
    assert client.query("SELECT getSetting('max_threads')", settings={"max_threads": 2}).result_rows == [(2,)]
    assert client.command("SELECT getSetting('max_threads')") == 1
    other = get_client(settings, database=db)
    with pytest.raises(DatabaseError):
        other.command("SELECT count() FROM tmp")
    client.close()
    other.close()


def test_concurrent_use_of_a_session_is_refused(settings: Settings) -> None:
    session = f"ll-test-{uuid.uuid4().hex}"
    results: list[tuple[int, dict[str, str], bytes]] = []
    slow = threading.Thread(target=lambda: results.append(_http(settings, "SELECT sleep(1.5)", session_id=session)))
    slow.start()
    time.sleep(0.5)
    status, headers, _ = _http(settings, "SELECT 1", session_id=session)
    slow.join()
    assert headers.get("X-ClickHouse-Exception-Code") == "373" and status == 500
    assert results[0][0] == 200
    status, _, body = _http(settings, "SELECT 1", session_id=session)
    assert (status, body) == (200, b"1\n")
    status, headers, _ = _http(settings, "SELECT 1", session_id=f"missing-{session}", session_check="1")
    assert headers.get("X-ClickHouse-Exception-Code") == "372"


def test_eight_concurrent_clients(settings: Settings, db: str) -> None:
    setup = get_client(settings, database=db)
    setup.command("CREATE TABLE c (worker UInt8, seq UInt64, payload String) ENGINE = MergeTree ORDER BY (worker, seq)")
    errors: list[BaseException] = []
    batches, batch_size = 10, 500

    def worker(w: int) -> None:
        try:
            c = get_client(settings, database=db)
            for b in range(batches):
                c.insert("c", [[w, b * batch_size + i, f"w{w}-{i}"] for i in range(batch_size)])
                n = c.command("SELECT count() FROM c WHERE worker = {w:UInt8}", parameters={"w": w})
                assert n == (b + 1) * batch_size
            c.close()
        except BaseException as ex:  # re-raised in the main thread
            errors.append(ex)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert setup.query("SELECT worker, count(), uniqExact(seq) FROM c GROUP BY worker ORDER BY worker").result_rows == [
        (w, batches * batch_size, batches * batch_size) for w in range(8)
    ]
    setup.close()


def test_async_client(settings: Settings, db: str) -> None:
    async def go() -> list[Any]:
        client = await get_async_client(settings, database=db)
        await client.command("CREATE TABLE a (k String) ENGINE = MergeTree ORDER BY k")
        await client.insert("a", [["x"], ["y"]])
        rows = (await client.query("SELECT k FROM a ORDER BY k")).result_rows
        await client.close()
        return list(rows)

    assert asyncio.run(go()) == [("x",), ("y",)]


# --- migrations ----------------------------------------------------------------------------------


def test_migrate_runner(client: Client, db: str, tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text(
        "-- two statements\nCREATE TABLE IF NOT EXISTS {db}.one (a UInt8) ENGINE = MergeTree ORDER BY a;\n"
        "INSERT INTO {db}.one VALUES (1);\n"
    )
    (tmp_path / "0002_second.sql").write_text(
        "CREATE TABLE IF NOT EXISTS {db}.two (s String DEFAULT 'a;b') ENGINE = MergeTree ORDER BY s\n"
    )
    dry = migrate(client, db, discover(tmp_path), dry_run=True)
    assert dry.pending == ["0001_first", "0002_second"] and not dry.applied
    first = migrate(client, db, discover(tmp_path))
    assert first.applied == ["0001_first", "0002_second"]
    again = migrate(client, db, discover(tmp_path))
    assert again.applied == [] and again.already == ["0001_first", "0002_second"]
    assert client.command("SELECT count() FROM one") == 1
    assert set(applied_migrations(client, db)) == {1, 2}
    (tmp_path / "0003_third.sql").write_text("ALTER TABLE {db}.two ADD COLUMN IF NOT EXISTS n UInt8;\n")
    assert migrate(client, db, discover(tmp_path)).applied == ["0003_third"]
    (tmp_path / "0001_first.sql").write_text("SELECT 1;\n")
    with pytest.raises(MigrationError):
        migrate(client, db, discover(tmp_path))
