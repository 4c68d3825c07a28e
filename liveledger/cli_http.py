"""The CLI's API client: one place for the base URL, the key, errors and exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import httpx
import orjson

from liveledger.settings import get_settings

EXIT_OK = 0
EXIT_API_ERROR = 1  # the API answered 4xx/5xx (message on stderr)
EXIT_USAGE = 2  # bad command line (argparse)
EXIT_UNREACHABLE = 3  # the API could not be reached
EXIT_DIFFERENCES = 4  # reconciliation found differences

EXIT_CODES_HELP = """exit codes:
  0  success
  1  the API refused the request (the error code and message are printed on stderr)
  2  bad command line
  3  the API is not reachable (is `make serve` running?)
  4  reconciliation found differences"""


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_api_options(parser: argparse.ArgumentParser) -> None:
    settings = get_settings()
    parser.add_argument("--api", default=os.environ.get("LIVELEDGER_API_URL",
                                                        f"http://{settings.api_host}:{settings.api_port}"),
                        help="API base URL (env LIVELEDGER_API_URL; default from LIVELEDGER_API_HOST/PORT)")
    parser.add_argument("--key", default=os.environ.get("LIVELEDGER_KEY", settings.admin_token),
                        help="API key sent as Bearer (env LIVELEDGER_KEY; default: the admin token)")
    parser.add_argument("--json", action="store_true", help="print the raw JSON answer")


class Api:
    def __init__(self, args: argparse.Namespace) -> None:
        self.base = str(args.api).rstrip("/")
        self.http = httpx.Client(base_url=self.base, timeout=httpx.Timeout(10, read=300),
                                 headers={"Authorization": f"Bearer {args.key}"})

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise CliError(f"cannot reach the API at {self.base}: {exc}", EXIT_UNREACHABLE) from exc
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                detail = "; ".join(f"{d.get('field')}: {d.get('reason')}" for d in err.get("details") or [])
                msg = f"{resp.status_code} {err['code']}: {err['message']}" + (f" ({detail})" if detail else "")
            except (ValueError, KeyError, TypeError):
                msg = f"{resp.status_code}: {resp.text[:500]}"
            raise CliError(msg, EXIT_API_ERROR)
        return resp

    def json(self, method: str, path: str, **kw: Any) -> Any:
        return self.call(method, path, **kw).json()


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header, *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    return "\n".join(lines)


def run_command(func: Any, args: argparse.Namespace) -> int:
    try:
        return int(func(args))
    except CliError as exc:
        print(f"liveledger: {exc}", file=sys.stderr)
        return exc.code
