"""Body codecs of ClickHouse's HTTP interface, for the chDB dev server (devstack/chserver.py).

- HTTP ``Content-Encoding`` of request bodies and ``Accept-Encoding`` responses: lz4 (LZ4 frames),
  zstd, br, gzip, deflate. clickhouse-connect compresses each insert block as its own lz4/zstd
  frame, so request decoders accept concatenated frames.
- ``decompress=1`` request bodies in ClickHouse's own block format (checksum, method byte, sizes,
  payload); the CityHash128 checksum is not verified.
- ``multipart/form-data`` bodies carrying ``query`` and ``param_*`` fields (clickhouse-connect
  switches to them when bind parameters are too long for the URL).
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from email.parser import BytesParser
from email.policy import HTTP

import lz4.block
import lz4.frame
import zstandard

try:
    import brotli
except ImportError:  # pragma: no cover - brotli ships with clickhouse-connect's extras
    brotli = None


class CodecError(Exception):
    """A body that cannot be decoded; ``code``/``name`` are the ClickHouse error it maps to."""

    def __init__(self, message: str, code: int = 36, name: str = "BAD_ARGUMENTS") -> None:
        super().__init__(message)
        self.code = code
        self.name = name


RESPONSE_ENCODINGS = ("lz4", "zstd", "br", "gzip", "deflate")


def _lz4_frames(data: bytes) -> bytes:
    out = io.BytesIO()
    rest = data
    while rest:
        dec = lz4.frame.LZ4FrameDecompressor()
        out.write(dec.decompress(rest))
        if not dec.eof:
            raise CodecError("Truncated lz4 frame in request body", 33, "CANNOT_READ_ALL_DATA")
        rest = dec.unused_data
    return out.getvalue()


def _zstd_frames(data: bytes) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    return reader.read()


def _deflate(data: bytes) -> bytes:
    try:
        return zlib.decompress(data)
    except zlib.error:
        return zlib.decompress(data, -15)


def decode_content(data: bytes, encoding: str) -> bytes:
    """Undo a request's ``Content-Encoding`` (may be a comma list, applied in order)."""
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    for coding in reversed(codings):
        try:
            if coding in ("identity", "none"):
                continue
            if coding == "lz4":
                data = _lz4_frames(data)
            elif coding == "zstd":
                data = _zstd_frames(data)
            elif coding in ("gzip", "x-gzip"):
                data = gzip.decompress(data)
            elif coding == "deflate":
                data = _deflate(data)
            elif coding == "br" and brotli is not None:
                data = brotli.decompress(data)
            else:
                raise CodecError(
                    f"Unknown compression method '{coding}'. Supported: lz4, zstd, br, gzip, deflate",
                    48,
                    "NOT_IMPLEMENTED",
                )
        except CodecError:
            raise
        except Exception as ex:
            raise CodecError(f"Cannot decompress request body ({coding}): {ex}", 271, "CANNOT_DECOMPRESS") from ex
    return data


def choose_response_encoding(accept_encoding: str) -> str | None:
    """The first encoding of the client's list that the server can produce."""
    for part in accept_encoding.split(","):
        name = part.split(";")[0].strip().lower()
        if name in RESPONSE_ENCODINGS and (name != "br" or brotli is not None):
            return name
    return None


def encode_content(data: bytes, encoding: str, zlib_level: int = 3) -> bytes:
    if encoding == "lz4":
        return bytes(lz4.frame.compress(data))
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if encoding == "br" and brotli is not None:
        return bytes(brotli.compress(data, quality=4))
    if encoding == "gzip":
        return gzip.compress(data, compresslevel=zlib_level)
    if encoding == "deflate":
        return zlib.compress(data, zlib_level)
    raise CodecError(f"Unsupported response encoding {encoding}", 48, "NOT_IMPLEMENTED")


# ClickHouse block compression (the `decompress=1` URL parameter)
_CH_NONE, _CH_LZ4, _CH_ZSTD = 0x02, 0x82, 0x90


def decode_clickhouse_blocks(data: bytes) -> bytes:
    """Decode a stream of ClickHouse compressed blocks (16-byte checksum + 9-byte header each)."""
    out = io.BytesIO()
    pos = 0
    while pos < len(data):
        if len(data) - pos < 25:
            raise CodecError("Truncated compressed block", 33, "CANNOT_READ_ALL_DATA")
        method = data[pos + 16]
        size_compressed, size_plain = struct.unpack_from("<II", data, pos + 17)
        payload = data[pos + 25 : pos + 16 + size_compressed]
        if len(payload) != size_compressed - 9:
            raise CodecError("Truncated compressed block", 33, "CANNOT_READ_ALL_DATA")
        if method == _CH_LZ4:
            out.write(lz4.block.decompress(payload, uncompressed_size=size_plain))
        elif method == _CH_ZSTD:
            out.write(zstandard.ZstdDecompressor().decompress(payload, max_output_size=size_plain))
        elif method == _CH_NONE:
            out.write(payload)
        else:
            raise CodecError(f"Unknown compression method {method:#x}", 89, "UNKNOWN_COMPRESSION_METHOD")
        pos += 16 + size_compressed
    return out.getvalue()


def parse_multipart(body: bytes, content_type: str) -> dict[str, str]:
    """Text fields of a ``multipart/form-data`` body. File parts (external data) are refused."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = BytesParser(policy=HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        raise CodecError("Malformed multipart/form-data body")
    fields: dict[str, str] = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if part.get_filename() is not None:
            raise CodecError("External data (file parts) is not implemented by the dev server", 48, "NOT_IMPLEMENTED")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        fields[name] = payload.decode() if isinstance(payload, bytes) else ""
    return fields
