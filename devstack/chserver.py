"""ClickHouse's HTTP interface served from the real ClickHouse engine embedded in chDB (dev only).

No ClickHouse server can be installed on our machines, so ``make up`` starts this process on :8123:

    python -m devstack.chserver --host 127.0.0.1 --port 8123 --data .devstack/clickhouse

It implements what clickhouse-connect (and curl) use of the HTTP interface: ``/ping``, queries in
the URL ``query`` parameter and/or the body, ``database``, ``session_id`` (+ ``session_timeout``,
``session_check``), ``query_id``, settings as URL parameters (unknown ones fail with
UNKNOWN_SETTING like a real server), ``param_<name>`` server-side parameters (bound by the engine,
never pasted into SQL), multipart/form-data query bodies, ``INSERT ... FORMAT <any>`` inserts
streamed into the engine, request ``Content-Encoding`` (lz4/zstd/br/gzip/deflate, ``decompress=1``),
response compression with ``enable_http_compression=1``, ``X-ClickHouse-*`` response headers and
ClickHouse-style errors (status, ``X-ClickHouse-Exception-Code``, ``Code: N. DB::Exception: ...``).
What it does not implement is listed in docs/clickhouse-dev-server.md.

Concurrency: one chDB connection per session (or per in-flight request without a session), all
over one engine; chDB releases the GIL, so requests on different connections run in parallel.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb

from devstack.chserver_codec import (
    CodecError,
    choose_response_encoding,
    decode_clickhouse_blocks,
    decode_content,
    encode_content,
    parse_multipart,
)
from devstack.chserver_sql import first_word, output_format, split_insert

# URL parameters that are part of the HTTP protocol, not settings.
TRANSPORT_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "stacktrace",
        "with_stacktrace",
    }
)
# Engine defaults that differ between chDB and a ClickHouse server; pinned to the server's.
BASE_SETTINGS: dict[str, str] = {"async_insert": "0", "enable_http_compression": "0"}
DEFAULT_SESSION_TIMEOUT = 60
MAX_SESSION_TIMEOUT = 3600
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ERROR_CODE = re.compile(r"Code: (\d+)\. ")
_ERROR_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?: \(version [^)]*\))?\s*$")

# ClickHouse's exceptionCodeToHTTPStatus, by error name.
_STATUS_BY_NAME: dict[str, int] = {
    "REQUIRED_PASSWORD": 401,
    **dict.fromkeys(
        ["UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE", "ACCESS_DENIED"], 403
    ),
    **dict.fromkeys(
        [
            "BAD_ARGUMENTS",
            "CANNOT_COMPILE_REGEXP",
            "CANNOT_PARSE_TEXT",
            "CANNOT_PARSE_ESCAPE_SEQUENCE",
            "CANNOT_PARSE_QUOTED_STRING",
            "CANNOT_PARSE_DATE",
            "CANNOT_PARSE_DATETIME",
            "CANNOT_PARSE_NUMBER",
            "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING",
            "CANNOT_PARSE_IPV4",
            "CANNOT_PARSE_IPV6",
            "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
            "CANNOT_PARSE_UUID",
            "DUPLICATE_COLUMN",
            "ILLEGAL_COLUMN",
            "UNKNOWN_ELEMENT_IN_AST",
            "UNKNOWN_TYPE_OF_AST_NODE",
            "THERE_IS_NO_COLUMN",
            "TOO_DEEP_AST",
            "TOO_BIG_AST",
            "UNEXPECTED_AST_STRUCTURE",
            "SYNTAX_ERROR",
            "INCORRECT_DATA",
            "TYPE_MISMATCH",
            "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
        ],
        400,
    ),
    **dict.fromkeys(
        [
            "UNKNOWN_TABLE",
            "UNKNOWN_FUNCTION",
            "UNKNOWN_IDENTIFIER",
            "UNKNOWN_TYPE",
            "UNKNOWN_STORAGE",
            "UNKNOWN_DATABASE",
            "UNKNOWN_SETTING",
            "UNKNOWN_DIRECTION_OF_SORTING",
            "UNKNOWN_AGGREGATE_FUNCTION",
            "UNKNOWN_FORMAT",
            "UNKNOWN_DATABASE_ENGINE",
            "UNKNOWN_TYPE_OF_QUERY",
            "UNKNOWN_ROLE",
        ],
        404,
    ),
    "QUERY_IS_TOO_LARGE": 413,
    "NOT_IMPLEMENTED": 501,
    "SOCKET_TIMEOUT": 503,
    "CANNOT_OPEN_FILE": 503,
    "HTTP_LENGTH_REQUIRED": 411,
    "TIMEOUT_EXCEEDED": 408,
    "CANNOT_SCHEDULE_TASK": 503,
    "UNSUPPORTED_MEDIA_TYPE": 415,
}

_CONTENT_TYPES: list[tuple[str, str]] = [
    ("TabSeparated", "text/tab-separated-values; charset=UTF-8"),
    ("TSV", "text/tab-separated-values; charset=UTF-8"),
    ("CSV", "text/csv; charset=UTF-8"),
    ("JSONEachRow", "application/x-ndjson; charset=UTF-8"),
    ("JSONLines", "application/x-ndjson; charset=UTF-8"),
    ("NDJSON", "application/x-ndjson; charset=UTF-8"),
    ("JSON", "application/json; charset=UTF-8"),
    ("XML", "application/xml; charset=UTF-8"),
    ("Native", "application/octet-stream"),
    ("RowBinary", "application/octet-stream"),
    ("Parquet", "application/octet-stream"),
    ("Arrow", "application/octet-stream"),
    ("ORC", "application/octet-stream"),
    ("Avro", "application/octet-stream"),
]


def content_type_for(fmt: str) -> str:
    for prefix, ctype in _CONTENT_TYPES:
        if fmt.startswith(prefix):
            return ctype
    return "text/plain; charset=UTF-8"


class ServerError(Exception):
    """A ClickHouse exception: numeric code, symbolic name and message."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @classmethod
    def from_engine(cls, ex: BaseException) -> ServerError:
        text = str(ex).strip()
        start = text.find("Code: ")
        if start > 0:
            text = text[start:]
        m = _ERROR_CODE.match(text)
        if not m:
            return cls(1001, "STD_EXCEPTION", text or type(ex).__name__)
        name = _ERROR_NAME.search(text)
        return cls(int(m.group(1)), name.group(1) if name else "", text)

    @property
    def status(self) -> int:
        return _STATUS_BY_NAME.get(self.name, 500)

    def body(self, version: str) -> bytes:
        text = self.message
        if not text.startswith("Code: "):
            text = f"Code: {self.code}. DB::Exception: {text}. ({self.name})"
        if not text.rstrip().endswith(")") or "(version " not in text[-40:]:
            text = f"{text} (version {version})"
        return (text + "\n").encode()


def _connect(conn_string: str) -> Any:
    return chdb.connect(conn_string)  # type: ignore[no-untyped-call]


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


# --------------------------------------------------------------------------------------------------
# engine connections and sessions


@dataclass
class EngineConn:
    """One chDB connection and the session state the server layers over it.

    ``baseline`` holds settings changed by ``SET`` statements run in the session; ``url_applied``
    the settings currently in force because the last request passed them as URL parameters. A
    request's URL settings are diffed against ``url_applied`` so a client that sends the same
    settings on every request (clickhouse-connect does) costs no extra ``SET`` statements.
    """

    conn: Any
    session_id: str | None = None
    timeout: int = DEFAULT_SESSION_TIMEOUT
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_used: float = field(default_factory=time.monotonic)
    baseline: dict[str, str] = field(default_factory=dict)
    url_applied: dict[str, str] = field(default_factory=dict)
    base_db: str = "default"
    current_db: str = "default"
    discard: bool = False  # session state (SET/USE/temporary table) must not leak to the next user

    def run(self, sql: str | bytes, fmt: str = "TabSeparated", params: Mapping[str, str] | None = None) -> Any:
        try:
            return self.conn.query(sql, fmt, params=dict(params or {}))
        except Exception as ex:
            raise ServerError.from_engine(ex) from ex

    def apply_settings(self, settings: Mapping[str, str]) -> None:
        for name in list(self.url_applied):
            if name not in settings:
                self._restore(name)
                del self.url_applied[name]
        for name, value in settings.items():
            if self.url_applied.get(name) == value:
                continue
            if not _SETTING_NAME.match(name):
                raise ServerError(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
            self.url_applied.pop(name, None)
            self.run(f"SET {name} = {_quote(value)}")
            self.url_applied[name] = value

    def _restore(self, name: str) -> None:
        if name in self.baseline:
            self.run(f"SET {name} = {_quote(self.baseline[name])}")
        elif name in BASE_SETTINGS:
            self.run(f"SET {name} = {_quote(BASE_SETTINGS[name])}")
        else:
            self.run(f"SET {name} = DEFAULT")

    def use_database(self, database: str | None) -> None:
        wanted = database or self.base_db
        if wanted != self.current_db:
            self.run(f"USE {_quote_ident(wanted)}")
            self.current_db = wanted

    def after_session_statement(self, keyword: str) -> None:
        """Record what a ``SET``/``USE`` statement changed so it outlives the request, as in ClickHouse."""
        if keyword == "USE":
            self.base_db = self.current_db = self.run("SELECT currentDatabase()").bytes().decode().strip()
            return
        rows = self.run("SELECT name, value FROM system.settings WHERE changed", "JSONEachRow").bytes()
        changed = {r["name"]: r["value"] for r in map(json.loads, rows.splitlines()) if r}
        for name in list(self.baseline):
            if name not in changed:
                del self.baseline[name]
        for name, value in changed.items():
            if name in self.url_applied:
                if value != self.url_applied[name]:
                    self.baseline[name] = value
                    del self.url_applied[name]
            elif BASE_SETTINGS.get(name) != value:
                self.baseline[name] = value

    def setting(self, name: str, default: str) -> str:
        return self.url_applied.get(name) or self.baseline.get(name) or BASE_SETTINGS.get(name, default)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


class Engine:
    """The one chDB engine of this process, its pooled connections and its HTTP sessions."""

    def __init__(self, data_dir: str) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.abspath(data_dir)
        self.conn_string = self.path + "?" + "&".join(f"{k}={v}" for k, v in BASE_SETTINGS.items())
        self._root = _connect(self.conn_string)  # keeps the engine open between requests
        row = self._root.query("SELECT version(), timezone()", "TabSeparated").bytes().decode().split("\t")
        self.version, self.timezone = row[0].strip(), row[1].strip()
        self.display_name = socket.gethostname()
        self._lock = threading.Lock()
        self._pool: list[EngineConn] = []
        self._sessions: dict[str, EngineConn] = {}
        self._closed = False

    def _new_conn(self, session_id: str | None = None) -> EngineConn:
        return EngineConn(_connect(self.conn_string), session_id=session_id)

    @contextlib.contextmanager
    def connection(self, session_id: str | None, timeout: int, check: bool) -> Iterator[EngineConn]:
        if not session_id:
            with self._lock:
                ec = self._pool.pop() if self._pool else None
            ec = ec or self._new_conn()
            try:
                yield ec
            finally:
                pooled = False
                if not ec.discard:
                    with self._lock:
                        if len(self._pool) < 32 and not self._closed:
                            self._pool.append(ec)
                            pooled = True
                if not pooled:
                    ec.close()
            return
        with self._lock:
            ec = self._sessions.get(session_id)
            if ec is None:
                if check:
                    raise ServerError(372, "SESSION_NOT_FOUND", f"Session {session_id} not found")
                ec = self._sessions[session_id] = self._new_conn(session_id)
            # Taken under the registry lock so the reaper cannot close a session being picked up.
            if not ec.lock.acquire(blocking=False):
                raise ServerError(373, "SESSION_IS_LOCKED", f"Session {session_id} is locked by a concurrent client")
        try:
            ec.timeout = timeout
            yield ec
        finally:
            ec.last_used = time.monotonic()
            ec.lock.release()

    def reap_sessions(self) -> None:
        now = time.monotonic()
        expired: list[EngineConn] = []
        with self._lock:
            for sid, ec in list(self._sessions.items()):
                if now - ec.last_used > ec.timeout and ec.lock.acquire(blocking=False):
                    del self._sessions[sid]
                    expired.append(ec)
        for ec in expired:
            ec.close()

    def session_count(self) -> int:
        return len(self._sessions)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns = self._pool + list(self._sessions.values())
            self._pool, self._sessions = [], {}
        for ec in conns:
            ec.close()
        with contextlib.suppress(Exception):
            self._root.close()


# --------------------------------------------------------------------------------------------------
# one HTTP request


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)
    note: str = ""


def _summary(
    read_rows: int = 0,
    read_bytes: int = 0,
    written_rows: int = 0,
    written_bytes: int = 0,
    result_rows: int = 0,
    result_bytes: int = 0,
    elapsed_s: float = 0.0,
) -> dict[str, str]:
    return {
        "read_rows": str(read_rows),
        "read_bytes": str(read_bytes),
        "written_rows": str(written_rows),
        "written_bytes": str(written_bytes),
        "total_rows_to_read": str(read_rows),
        "result_rows": str(result_rows),
        "result_bytes": str(result_bytes),
        "elapsed_ns": str(int(elapsed_s * 1e9)),
    }


def _stat(result: Any, name: str) -> int:
    try:
        return int(getattr(result, name)())
    except Exception:
        return 0


class Request:
    """Parses one HTTP request into query text, data, settings and parameters, and runs it.

    ``headers`` has lower-cased names.
    """

    def __init__(
        self,
        engine: Engine,
        method: str,
        params: dict[str, str],
        headers: Mapping[str, str],
        body: bytes,
        password: str,
    ) -> None:
        self.engine = engine
        self.method = method
        self.params = params
        self.headers = headers
        self.body = body
        self.password = password
        self.readonly = 0  # ClickHouse's readonly level: 1 = reads only, 2 = reads and SET; GET implies 2

    def authenticate(self) -> None:
        user = self.headers.get("x-clickhouse-user") or self.params.get("user") or "default"
        password = self.headers.get("x-clickhouse-key") or self.params.get("password") or ""
        auth = self.headers.get("authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except Exception:
                user = "?"
            user = user or "default"
        if user != "default" or password != self.password:
            raise ServerError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
            )

    def execute(self) -> Reply:
        self.authenticate()
        body = self.body
        encoding = self.headers.get("content-encoding", "")
        try:
            if encoding:
                body = decode_content(body, encoding)
            if self.params.get("decompress") in ("1", "true"):
                body = decode_clickhouse_blocks(body)
            ctype = self.headers.get("content-type", "")
            if ctype.startswith("multipart/form-data"):
                self.params.update(parse_multipart(body, ctype))
                body = b""
        except CodecError as ex:
            raise ServerError(ex.code, ex.name, str(ex)) from ex
        if self.params.get("compress") in ("1", "true"):
            raise ServerError(48, "NOT_IMPLEMENTED", "compress=1 (ClickHouse-compressed responses) is not implemented")
        query_param = self.params.get("query", "")
        text = (query_param + "\n").encode() + body if query_param else body
        if not text.strip():
            raise ServerError(62, "SYNTAX_ERROR", "Empty query")

        settings = {k: v for k, v in self.params.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        # `readonly` is enforced here rather than SET on a pooled connection, where it would stick.
        try:
            requested = int(settings.pop("readonly", "0") or 0)
        except ValueError as ex:
            raise ServerError(36, "BAD_ARGUMENTS", "Invalid value for setting readonly") from ex
        self.readonly = max(requested, 2 if self.method == "GET" else 0)
        bind = {k[6:]: v for k, v in self.params.items() if k.startswith("param_")}
        database = self.params.get("database") or self.headers.get("x-clickhouse-database") or None
        session_id = self.params.get("session_id") or None
        try:
            timeout = int(self.params.get("session_timeout") or DEFAULT_SESSION_TIMEOUT)
        except ValueError as ex:
            raise ServerError(36, "BAD_ARGUMENTS", "Invalid session timeout") from ex
        if timeout > MAX_SESSION_TIMEOUT:
            raise ServerError(36, "BAD_ARGUMENTS", f"Session timeout {timeout} is larger than max_session_timeout")
        check = self.params.get("session_check") in ("1", "true")
        default_format = self.params.get("default_format") or self.headers.get("x-clickhouse-format") or "TabSeparated"

        with self.engine.connection(session_id, timeout, check) as ec:
            ec.apply_settings(settings)
            ec.use_database(database)
            reply = self._run(ec, text, bind, default_format)
            enable = ec.setting("enable_http_compression", "0")
            level = ec.setting("http_zlib_compression_level", "3")
        accept = self.headers.get("accept-encoding", "")
        if reply.body and enable in ("1", "true") and accept:
            chosen = choose_response_encoding(accept)
            if chosen:
                reply.body = encode_content(reply.body, chosen, int(level) if level.isdigit() else 3)
                reply.headers["Content-Encoding"] = chosen
        return reply

    def _run(self, ec: EngineConn, text: bytes, bind: dict[str, str], default_format: str) -> Reply:
        split = split_insert(text)
        if split is not None:
            return self._insert(ec, text, split.statement, split.fmt, split.data_offset)
        sql: str | bytes
        try:
            sql = text.decode()
        except UnicodeDecodeError:
            sql = text
        keyword = first_word(text)
        produces_result = self._check_statement(ec, sql, keyword)
        fmt = output_format(text) if produces_result else None
        started = time.perf_counter()
        result = ec.run(sql, fmt or default_format, bind)
        elapsed = time.perf_counter() - started
        data = result.bytes() or b""
        reply = Reply(body=data)
        reply.summary = _summary(
            read_rows=_stat(result, "storage_rows_read"),
            read_bytes=_stat(result, "storage_bytes_read"),
            written_rows=_stat(result, "rows_written"),
            written_bytes=_stat(result, "bytes_written"),
            result_rows=_stat(result, "rows_read") if produces_result else 0,
            result_bytes=len(data),
            elapsed_s=elapsed,
        )
        if produces_result:
            out_fmt = fmt or default_format
            reply.headers["X-ClickHouse-Format"] = out_fmt
            reply.headers["Content-Type"] = content_type_for(out_fmt)
        else:
            reply.headers["Content-Type"] = "text/plain; charset=UTF-8"
        if keyword in ("SET", "USE"):
            if ec.session_id:
                ec.after_session_statement(keyword)
            else:
                ec.discard = True
        elif keyword == "CREATE" and re.match(rb"\s*CREATE\s+TEMPORARY", text, re.IGNORECASE) and not ec.session_id:
            ec.discard = True
        reply.note = f"rows={reply.summary['result_rows']} written={reply.summary['written_rows']}"
        return reply

    def _check_statement(self, ec: EngineConn, sql: str | bytes, keyword: str) -> bool:
        """Reject what a ClickHouse server rejects over HTTP; True when the statement returns rows."""
        classify = getattr(ec.conn, "_conn", None)
        info: dict[str, Any] | None = None
        if classify is not None and hasattr(classify, "classify_query"):
            try:
                info = classify.classify_query(sql if isinstance(sql, str) else sql.decode(errors="replace"))
            except Exception:
                info = None
        if info is not None and int(info.get("statement_count", 1)) > 1:
            raise ServerError(62, "SYNTAX_ERROR", "Multi-statements are not allowed")
        if info is not None and int(info.get("statement_count", 1)) == 1:
            cls = str(info["query_class"]).rsplit(".", 1)[-1]
            read_only = cls == "READ_ONLY"
        else:
            read_only = keyword in ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXISTS", "EXPLAIN", "CHECK")
        if self.readonly and not read_only and (keyword not in ("SET", "USE") or self.readonly == 1):
            self._refuse_readonly()
        return read_only

    def _refuse_readonly(self) -> None:
        hint = (
            " For queries over HTTP, method GET implies readonly. You should use method POST for modifying queries"
            if self.method == "GET"
            else ""
        )
        raise ServerError(164, "READONLY", f"Cannot execute query in readonly mode.{hint}")

    def _insert(self, ec: EngineConn, text: bytes, statement: str, fmt: str, offset: int) -> Reply:
        if self.readonly:
            self._refuse_readonly()
        data = memoryview(text)[offset:]
        started = time.perf_counter()
        try:
            inserter = ec.conn.send_insert(statement, fmt)
        except Exception as ex:
            raise ServerError.from_engine(ex) from ex
        try:
            if len(data):
                inserter.append(data)
            result = inserter.finish()
        except Exception as ex:
            with contextlib.suppress(Exception):
                inserter.cancel()
            raise ServerError.from_engine(ex) from ex
        elapsed = time.perf_counter() - started
        reply = Reply(headers={"Content-Type": "text/plain; charset=UTF-8"})
        reply.summary = _summary(
            read_rows=result.rows_written,
            read_bytes=len(data),
            written_rows=result.rows_written,
            written_bytes=result.bytes_written,
            elapsed_s=elapsed,
        )
        reply.note = f"inserted={result.rows_written} bytes={len(data)} | {statement.strip()} FORMAT {fmt}"
        return reply


# --------------------------------------------------------------------------------------------------
# HTTP plumbing


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chdb-dev-server"
    timeout = 3600  # idle keep-alive connections are closed after an hour
    disable_nagle_algorithm = True  # headers and body go out as separate writes: avoid 40 ms delayed-ACK stalls

    server: DevServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            sys.stderr.write("chserver: " + (format % args) + "\n")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_HEAD(self) -> None:
        self._send(200, b"", {"Content-Type": "text/html; charset=UTF-8"}, head=True)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, headers: Mapping[str, str], head: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", "timeout=3600")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _handle(self, method: str) -> None:
        started = time.perf_counter()
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._read_body() if method == "POST" else b""
        engine = self.server.engine
        path = url.path.rstrip("/") or "/"
        if path in ("/ping", "/replicas_status") or (path == "/" and method == "GET" and "query" not in params):
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        query_id = params.get("query_id") or str(uuid.uuid4())
        common = {
            "X-ClickHouse-Server-Display-Name": engine.display_name,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": engine.timezone,
        }
        if path != "/":
            self._send(
                404,
                f"There is no handle {url.path}\n\nUse / or /ping for health checks.\n".encode(),
                {"Content-Type": "text/plain; charset=UTF-8", **common},
            )
            return
        lowered = {name.lower(): value for name, value in self.headers.items()}
        request = Request(engine, method, params, lowered, body, self.server.password)
        try:
            reply = request.execute()
        except ServerError as err:
            self._send(
                err.status,
                err.body(engine.version),
                {
                    **common,
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": str(err.code),
                },
            )
            self._log(method, params, body, err.status, f"error {err.code} {err.name}", started)
            return
        except Exception as ex:  # a bug here must still answer like ClickHouse would
            failure = ServerError(1001, "STD_EXCEPTION", f"{type(ex).__name__}: {ex}")
            self._send(
                500,
                failure.body(engine.version),
                {
                    **common,
                    "Content-Type": "text/plain; charset=UTF-8",
                    "X-ClickHouse-Exception-Code": "1001",
                },
            )
            self._log(method, params, body, 500, failure.message, started)
            return
        headers = {**common, **reply.headers, "X-ClickHouse-Summary": json.dumps(reply.summary, separators=(",", ":"))}
        self._send(reply.status, reply.body, headers)
        self._log(method, params, body, reply.status, reply.note, started)

    def _log(self, method: str, params: Mapping[str, str], body: bytes, status: int, note: str, started: float) -> None:
        query = params.get("query") or ""
        if not query and body and not self.headers.get("Content-Encoding"):
            query = body[:200].decode(errors="replace")
        if " | " in note:  # the note already names the statement (inserts)
            query = ""
        query = "".join(ch if ch.isprintable() else " " for ch in " ".join(query.split()))
        if len(query) > 120:
            query = query[:117] + "..."
        sid = params.get("session_id", "")[:8]
        ms = (time.perf_counter() - started) * 1000
        line = f"chserver: {method} {status} {ms:.1f}ms s={sid or '-'} {note}" + (f" | {query}" if query else "")
        sys.stderr.write(line + "\n")


class DevServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], engine: Engine, password: str = "", verbose: bool = False) -> None:
        super().__init__(address, Handler)
        self.engine = engine
        self.password = password
        self.verbose = verbose


def serve(host: str, port: int, data_dir: str, password: str = "", verbose: bool = False) -> None:
    engine = Engine(data_dir)
    server = DevServer((host, port), engine, password, verbose)
    stop = threading.Event()

    def reaper() -> None:
        while not stop.wait(5):
            engine.reap_sessions()

    def on_signal(signum: int, _frame: Any) -> None:
        sys.stderr.write(f"chserver: signal {signum}, shutting down\n")
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=reaper, daemon=True, name="session-reaper").start()
    sys.stderr.write(
        f"chserver: ClickHouse {engine.version} (chDB {chdb.__version__}) on http://{host}:{port} data={data_dir}\n"
    )
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        server.server_close()
        engine.close()
        sys.stderr.write("chserver: stopped\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ClickHouse HTTP interface over chDB (development only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--data", default=".devstack/clickhouse", help="engine data directory (kept across restarts)")
    parser.add_argument("--password", default="", help="password of the 'default' user (default: empty)")
    parser.add_argument("--verbose", action="store_true", help="also log raw HTTP request lines")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.data, args.password, args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
