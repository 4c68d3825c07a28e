"""Just enough SQL lexing for the chDB dev server (devstack/chserver.py).

ClickHouse's HTTP handler lets the engine's parser find where an ``INSERT ... FORMAT X`` statement
ends and its inline data begins. chDB cannot take a large binary body inside the query text (its
parser stops at ``max_query_size``), so the server splits the statement from the data itself and
streams the data into ``Connection.send_insert``. The lexer here only skips what could hide a
keyword — string literals, quoted identifiers, comments and parentheses — and never scans the data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_WORD = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(rb"[0-9][0-9A-Za-z_.]*")


@dataclass(frozen=True)
class Token:
    start: int
    end: int
    word: bytes  # upper-cased bare word; b"" for punctuation
    depth: int  # parenthesis depth at the token
    char: bytes  # the single punctuation character, or b""


def _skip_quoted(sql: bytes, i: int, quote: int) -> int:
    """Index just past the literal opened at ``sql[i]``; backslash escapes and doubled quotes."""
    n = len(sql)
    i += 1
    while i < n:
        c = sql[i]
        if c == 0x5C:  # backslash
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return n


def skip_space(sql: bytes, i: int) -> int:
    """Skip whitespace and comments (``-- ...``, ``/* ... */``, ``# ...``)."""
    n = len(sql)
    while i < n:
        c = sql[i]
        if c in b" \t\r\n\f\v":
            i += 1
        elif sql.startswith(b"--", i) or (c == 0x23 and sql[i + 1 : i + 2] in (b" ", b"!")):
            j = sql.find(b"\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith(b"/*", i):
            j = sql.find(b"*/", i + 2)
            i = n if j < 0 else j + 2
        else:
            return i
    return n


def tokens(sql: bytes, start: int = 0) -> Iterator[Token]:
    """Bare words and punctuation of ``sql``, skipping literals, quoted names and comments."""
    depth = 0
    i = start
    n = len(sql)
    while True:
        i = skip_space(sql, i)
        if i >= n:
            return
        c = sql[i]
        if c in (0x27, 0x22, 0x60):  # ' " `
            i = _skip_quoted(sql, i, c)
            continue
        m = _WORD.match(sql, i)
        if m:
            yield Token(i, m.end(), m.group().upper(), depth, b"")
            i = m.end()
            continue
        m = _NUMBER.match(sql, i)
        if m:
            i = m.end()
            continue
        if c == 0x28:  # (
            depth += 1
        elif c == 0x29:  # )
            depth = max(0, depth - 1)
        yield Token(i, i + 1, b"", depth, bytes([c]))
        i += 1


def first_word(sql: bytes) -> str:
    """The statement's leading keyword, upper-cased ('' when there is none)."""
    m = _WORD.match(sql, skip_space(sql, 0))
    return m.group().decode().upper() if m else ""


@dataclass(frozen=True)
class InsertSplit:
    statement: str  # the INSERT without its FORMAT/VALUES clause, for Connection.send_insert
    fmt: str  # input format of the data ("Values" for VALUES)
    data_offset: int  # where the inline data starts in the request text


def split_insert(sql: bytes) -> InsertSplit | None:
    """Split ``INSERT ... FORMAT X <data>`` / ``INSERT ... VALUES <data>`` into statement and data.

    Returns None for anything else (including ``INSERT ... SELECT``), which runs as a plain query.
    Data starts after the format name, its trailing blanks and at most one newline — as ClickHouse's
    ``ParserInsertQuery`` does — so a Native block whose first byte is ``\\n`` survives.
    """
    if first_word(sql) != "INSERT":
        return None
    for tok in tokens(sql):
        if tok.depth:
            continue
        if tok.char == b";" or tok.word in (b"SELECT", b"WITH"):
            return None
        if tok.word == b"VALUES":
            return InsertSplit(sql[: tok.start].decode(), "Values", tok.end)
        if tok.word == b"FORMAT":
            j = skip_space(sql, tok.end)
            m = _WORD.match(sql, j)
            if not m:
                return None
            k = m.end()
            while k < len(sql) and sql[k] in b" \t\f":
                k += 1
            if k < len(sql) and sql[k] == 0x0D:
                k += 1
            if k < len(sql) and sql[k] == 0x0A:
                k += 1
            return InsertSplit(sql[: tok.start].decode(), m.group().decode(), k)
    return None


def output_format(sql: bytes) -> str | None:
    """The format named by a top-level ``FORMAT x`` clause of a (non-INSERT) query, if any.

    A clause counts when it is followed only by the end, ``;`` or a ``SETTINGS`` clause, so a
    column called ``format`` is not mistaken for one.
    """
    found: str | None = None
    toks = list(tokens(sql))
    for idx, tok in enumerate(toks):
        if tok.word != b"FORMAT" or tok.depth != 0 or idx + 1 >= len(toks):
            continue
        name = toks[idx + 1]
        if not name.word:
            continue
        rest = toks[idx + 2 :]
        if not rest or rest[0].char == b";" or rest[0].word == b"SETTINGS":
            found = sql[name.start : name.end].decode()
    return found
