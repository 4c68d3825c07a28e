"""The dev server's statement/data split (devstack/chserver_sql.py) and body codecs; no services needed."""

from __future__ import annotations

import gzip
import zlib

import lz4.frame
import pytest
import zstandard

from devstack.chserver_codec import choose_response_encoding, decode_content, encode_content
from devstack.chserver_sql import first_word, output_format, split_insert


def test_split_native_insert_keeps_leading_newline_byte_of_data() -> None:
    body = b"INSERT INTO `t` (`a`, `b`) FORMAT Native\n\n\x01rest"
    split = split_insert(body)
    assert split is not None
    assert split.statement.strip() == "INSERT INTO `t` (`a`, `b`)"
    assert split.fmt == "Native"
    assert body[split.data_offset :] == b"\n\x01rest"


@pytest.mark.parametrize(
    ("sql", "statement", "fmt", "data"),
    [
        ("INSERT INTO t VALUES (1, 'a')", "INSERT INTO t", "Values", " (1, 'a')"),
        ("insert into t format TSV 1\t2\n", "insert into t", "TSV", "1\t2\n"),
        (
            "INSERT INTO t SETTINGS insert_deduplication_token = 'FORMAT x' FORMAT CSV\n1,2",
            "INSERT INTO t SETTINGS insert_deduplication_token = 'FORMAT x'",
            "CSV",
            "1,2",
        ),
        ("/* c */ -- x\nINSERT INTO `format` (`values`) FORMAT JSONEachRow\n{}", None, "JSONEachRow", "{}"),
    ],
)
def test_split_insert_variants(sql: str, statement: str | None, fmt: str, data: str) -> None:
    split = split_insert(sql.encode())
    assert split is not None
    if statement is not None:
        assert split.statement.strip() == statement
    assert split.fmt == fmt
    assert sql.encode()[split.data_offset :].decode() == data


@pytest.mark.parametrize(
    "sql", ["INSERT INTO t SELECT * FROM s", "INSERT INTO t WITH 1 AS x SELECT x", "SELECT 1", "CREATE TABLE t"]
)
def test_not_an_insert_with_data(sql: str) -> None:
    assert split_insert(sql.encode()) is None


def test_output_format_and_first_word() -> None:
    assert output_format(b"SELECT 1 FORMAT JSON") == "JSON"
    assert output_format(b"SELECT format FROM t") is None
    assert output_format(b"SELECT 'FORMAT CSV' AS x") is None
    assert output_format(b"SELECT 1 FORMAT Native SETTINGS max_threads = 1") == "Native"
    assert output_format(b"SELECT * FROM (SELECT 1 FORMAT CSV)") is None
    assert first_word(b"  -- hi\n  set x = 1") == "SET"


def test_request_decoding_accepts_concatenated_frames() -> None:
    parts = [b"block-one|", b"block-two|", b"three"]
    assert decode_content(b"".join(lz4.frame.compress(p) for p in parts), "lz4") == b"".join(parts)
    zc = zstandard.ZstdCompressor()
    assert decode_content(b"".join(zc.compress(p) for p in parts), "zstd") == b"".join(parts)
    assert decode_content(gzip.compress(b"abc"), "gzip") == b"abc"
    assert decode_content(zlib.compress(b"abc"), "deflate") == b"abc"


def test_response_encoding_round_trip() -> None:
    assert choose_response_encoding("lz4,zstd,br,gzip,deflate") == "lz4"
    assert choose_response_encoding("identity, gzip;q=0.5") == "gzip"
    assert choose_response_encoding("xz") is None
    for enc in ("lz4", "zstd", "gzip", "deflate"):
        assert decode_content(encode_content(b"x" * 1000, enc), enc) == b"x" * 1000
