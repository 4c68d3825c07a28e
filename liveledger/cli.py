"""`liveledger` command line: operators' and finance's entry point.

Each sub-command lives in the module that owns it; this file only wires argparse.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Command = Callable[[argparse.Namespace], int]


def _topics(args: argparse.Namespace) -> int:
    from liveledger.kafka import create_topics_cli

    return create_topics_cli(args)


def _migrate(args: argparse.Namespace) -> int:
    from consumers.migrate import migrate_cli

    return migrate_cli(args)


def build_parser() -> argparse.ArgumentParser:
    from liveledger.cli_http import EXIT_CODES_HELP

    parser = argparse.ArgumentParser(
        prog="liveledger", description="LiveLedger operator and finance CLI. Commands that talk to the API take "
        "--api (default from LIVELEDGER_API_HOST/PORT) and --key (env LIVELEDGER_KEY; default the admin token).",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("topics", help="manage Kafka topics (create them with their declared partitions)")
    p.add_argument("action", choices=["create", "list"])
    p.set_defaults(func=_topics)

    p = sub.add_parser("migrate", help="apply ClickHouse migrations (consumers/migrations) and record them")
    p.add_argument("--dry-run", action="store_true", help="list pending migrations without applying")
    p.set_defaults(func=_migrate)

    from liveledger.cli_finance import register

    register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":
    sys.exit(main())
