"""`liveledger setup|payouts|reconcile|export|simulate`: the operators' and finance's commands over the API."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from liveledger.cli_http import (
    EXIT_CODES_HELP,
    EXIT_DIFFERENCES,
    EXIT_OK,
    Api,
    CliError,
    add_api_options,
    print_json,
    run_command,
    table,
)
from schemas.money import format_minor

RAW = argparse.RawDescriptionHelpFormatter


# --- setup ------------------------------------------------------------------------------------------

_SETUP: dict[str, tuple[str, str, list[tuple[str, dict[str, Any]]]]] = {
    "brand": ("/v1/admin/brands", "create a brand (admin): prints its api_key and webhook_secret once", [
        ("--brand-id", {"required": True}), ("--name", {"required": True}),
        ("--currency", {"required": True, "help": "ISO-4217, e.g. USD"})]),
    "creator": ("/v1/admin/creators", "create a creator (admin): prints its api_key once", [
        ("--creator-id", {"required": True}), ("--name", {"required": True})]),
    "finance-key": ("/v1/admin/finance-keys", "issue a finance key (admin): all brands' money views", [
        ("--name", {"required": True})]),
    "campaign": ("/v1/campaigns", "create a campaign (brand key or admin)", [
        ("--campaign-id", {"required": True}), ("--brand-id", {"required": True}),
        ("--rate-bps", {"required": True, "type": int, "help": "commission rate, 1000 = 10%%"}),
        ("--flat-minor", {"type": int, "default": 0, "help": "flat commission per order, minor units"}),
        ("--attribution-window-days", {"type": int, "default": None}),
        ("--hold-days", {"type": int, "default": None}),
        ("--min-payout-minor", {"type": int, "default": None})]),
    "link": ("/v1/links", "create a tracking link (brand key or admin): prints link_code and url", [
        ("--creator-id", {"required": True}), ("--campaign-id", {"required": True}),
        ("--destination-url", {"required": True}), ("--product-id", {}), ("--stream-id", {}),
        ("--coupon-code", {})]),
    "stream": ("/v1/streams", "create a live stream (brand key or admin)", [
        ("--stream-id", {"required": True}), ("--brand-id", {"required": True}),
        ("--creator-id", {"required": True}), ("--title", {"required": True})]),
}


def _setup(args: argparse.Namespace) -> int:
    path, _, options = _SETUP[args.entity]
    body = {}
    for flag, _opts in options:
        name = flag[2:].replace("-", "_")
        value = getattr(args, name)
        if value is not None:
            body[name] = value
    print_json(Api(args).json("POST", path, json=body))
    return EXIT_OK


# --- payouts ----------------------------------------------------------------------------------------

def _money(minor: int, currency: str) -> str:
    return f"{format_minor(minor, currency)} {currency}"


def _print_batch(b: dict[str, Any]) -> None:
    print(f"payout {b['payout_id']}  period_end {b['period_end']}  created {b['created_at']}")
    if b["lines"]:
        print(table([[ln["creator_id"], ln["currency"], _money(ln["amount_minor"], ln["currency"]), ln["orders"],
                      _money(ln.get("clawback_minor", 0), ln["currency"])] for ln in b["lines"]],
                    ["creator", "currency", "amount", "orders", "clawbacks"]))
    else:
        print("no lines paid")
    if b["carried_over"]:
        print(f"\ncarried over ({len(b['carried_over'])}):")
        print(table([[c["creator_id"], c["currency"], _money(c["amount_minor"], c["currency"]), c["orders"],
                      c["reason"]] for c in b["carried_over"]], ["creator", "currency", "amount", "orders", "reason"]))
    print("\ntotals: " + (", ".join(_money(t["amount_minor"], t["currency"]) for t in b["totals"]) or "none"))


def _payouts(args: argparse.Namespace) -> int:
    api = Api(args)
    if args.action == "run":
        body: dict[str, object] = {"period_end": args.period_end}
        if args.force:  # past the completeness watermark: recorded in the audit log
            body["force"] = True
        resp = api.call("POST", "/v1/finance/payouts", json=body)
        batch = resp.json()
        if not args.json:
            print("created" if resp.status_code == 201 else "already existed (returned unchanged)", file=sys.stderr)
    elif args.action == "list":
        data = api.json("GET", "/v1/finance/payouts")
        if args.json:
            print_json(data)
        else:
            print(table([[b["payout_id"], b["period_end"], len(b["lines"]), len(b["carried_over"]),
                          ", ".join(_money(t["amount_minor"], t["currency"]) for t in b["totals"])]
                         for b in data["payouts"]], ["payout", "period_end", "lines", "carried", "totals"]))
        return EXIT_OK
    elif args.action == "csv":
        text = api.call("GET", f"/v1/finance/payouts/{args.payout_id}.csv").text
        if args.output and args.output != "-":
            Path(args.output).write_text(text, encoding="utf-8")
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return EXIT_OK
    else:
        batch = api.json("GET", f"/v1/finance/payouts/{args.payout_id}")
    if args.json:
        print_json(batch)
    else:
        _print_batch(batch)
    return EXIT_OK


# --- reconcile --------------------------------------------------------------------------------------

def _reconcile(args: argparse.Namespace) -> int:
    api = Api(args)
    params = {k: v for k, v in (("from", args.from_), ("to", args.to)) if v}
    if args.orders_csv:
        if not args.brand_id:
            raise CliError("--orders-csv needs --brand-id", 2)
        path = Path(args.orders_csv)
        data = bytearray()
        with path.open("rb") as fh, tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc="reading CSV",
                                         file=sys.stderr, disable=args.quiet) as bar:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                data += chunk
                bar.update(len(chunk))
        rec = api.json("POST", "/v1/finance/reconciliation/orders", params={"brand_id": args.brand_id, **params},
                       content=bytes(data), headers={"Content-Type": "text/csv"})
        if args.json:
            print_json(rec)
        else:
            print(f"brand {rec['brand_id']}: {rec['csv_orders']} orders in the CSV, {rec['ledger_orders']} in the "
                  f"ledger for {rec['from']} .. {rec['to']}, {rec['matched']} match")
            for title, key in (("missing in the ledger", "missing_in_ledger"),
                               ("missing in the CSV", "missing_in_csv")):
                rows = rec[key]
                print(f"{title}: {len(rows)}")
                for o in rows[:20]:
                    print(f"  {o['order_id']}  {o['occurred_at']}  {_money(o['net_minor'], o['currency'])}")
            print(f"mismatches: {len(rec['mismatches'])}")
            for m in rec["mismatches"][:20]:
                print(f"  {m['order_id']}  {m['field']}: CSV {m['csv']} vs ledger {m['ledger']}")
        return EXIT_OK if rec["status"] == "ok" else EXIT_DIFFERENCES
    rec = api.json("GET", "/v1/finance/reconciliation", params=params)
    if args.json:
        print_json(rec)
    else:
        ev = rec["events"]
        print(f"events (live counters): received {ev['received']}, accepted {ev['accepted']}, rejected "
              f"{ev['rejected']}, dead-lettered {ev['dead_lettered']}, de-duplicated {ev['deduplicated']}")
        le = rec["ledger_events"]
        print(f"events stored in ClickHouse: {le['stored']} (dead letters {le['dead_lettered']})"
              + (f", difference to live accepted {le['difference']}" if "difference" in le else ""))
        rows = [[c["creator_id"], c["currency"], c["ledger"]["orders"], c["live"]["orders"],
                 _money(c["ledger"]["commission_minor"], c["currency"]), _money(c["live"]["commission_minor"],
                                                                                c["currency"]),
                 ", ".join(f"{d['field']} {d['difference']:+d}" for d in c["differences"]) or "ok"]
                for c in rec["creators"] if c["differences"] or not args.only_differences]
        if rows:
            print(table(rows, ["creator", "currency", "ledger orders", "live orders", "ledger commission",
                               "live commission", "differences"]))
        print(f"status: {rec['status']} ({rec['creators_with_differences']} creator/currency rows differ)")
    return EXIT_OK if rec["status"] == "ok" else EXIT_DIFFERENCES


# --- export -----------------------------------------------------------------------------------------

EXPORT_COLUMNS = ["creator_id", "group", "id", "currency", "orders", "net_minor", "pending", "approved", "paid",
                  "reversed"]


def _export(args: argparse.Namespace) -> int:
    api = Api(args)
    params = {k: v for k, v in (("from", args.from_), ("to", args.to), ("as_of", args.as_of)) if v}
    out = sys.stdout if args.output in (None, "-") else open(args.output, "w", newline="", encoding="utf-8")  # noqa: SIM115
    try:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for creator_id in tqdm(args.creator_id, desc="earnings", unit="creator", file=sys.stderr,
                               disable=args.quiet or len(args.creator_id) < 2):
            e = api.json("GET", f"/v1/creators/{creator_id}/earnings", params=params)
            rows = [("total", creator_id, r) for r in e["currencies"]]
            rows += [("campaign", r["campaign_id"], r) for r in e["by_campaign"]]
            rows += [("stream", r["stream_id"], r) for r in e["by_stream"]]
            for group, ident, r in rows:
                c = r["commission"]
                writer.writerow([creator_id, group, ident, r["currency"], r["orders"], r["net_minor"], c["pending"],
                                 c["approved"], c["paid"], c["reversed"]])
    finally:
        if out is not sys.stdout:
            out.close()
            print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


# --- simulate ---------------------------------------------------------------------------------------

def _simulate(args: argparse.Namespace) -> int:
    from producers.simulator import main as simulator_main

    rest = list(args.sim_args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    return int(simulator_main(rest))


# --- wiring -----------------------------------------------------------------------------------------

def register(sub: Any) -> None:
    """Add the sub-commands to ``liveledger``'s argparse sub-parsers."""
    p = sub.add_parser("setup", help="create brands, creators, finance keys, campaigns, links, streams via the API",
                       description="Create setup entities through the API. Prints the API's JSON answer (keys are "
                                   "shown once).", epilog=EXIT_CODES_HELP, formatter_class=RAW)
    ents = p.add_subparsers(dest="entity", required=True)
    for entity, (_path, help_text, options) in _SETUP.items():
        ep = ents.add_parser(entity, help=help_text, description=help_text, epilog=EXIT_CODES_HELP,
                             formatter_class=RAW)
        for flag, opts in options:
            ep.add_argument(flag, **opts)
        add_api_options(ep)
        ep.set_defaults(func=lambda a: run_command(_setup, a))

    p = sub.add_parser("payouts", help="run, list and show payout batches (finance key)",
                       description="Payout batches: one per period_end; running a period twice returns the first "
                                   "batch unchanged.", epilog=EXIT_CODES_HELP, formatter_class=RAW)
    acts = p.add_subparsers(dest="action", required=True)
    ap = acts.add_parser("run", help="run (or fetch) the batch for a period_end", epilog=EXIT_CODES_HELP,
                         formatter_class=RAW)
    ap.add_argument("period_end", help="YYYY-MM-DD, not in the future (UTC)")
    ap.add_argument("--force", action="store_true",
                    help="run although the period ends after the completeness watermark (409 not_complete "
                         "otherwise; see GET /v1/finance/watermark); recorded in the audit log")
    add_api_options(ap)
    ap = acts.add_parser("list", help="recent batches")
    add_api_options(ap)
    for name, help_text in (("show", "print a batch"), ("csv", "download a batch as CSV")):
        ap = acts.add_parser(name, help=help_text, epilog=EXIT_CODES_HELP, formatter_class=RAW)
        ap.add_argument("payout_id", help="e.g. po-2026-11-30")
        if name == "csv":
            ap.add_argument("-o", "--output", help="file to write (default stdout)")
        add_api_options(ap)
    p.set_defaults(func=lambda a: run_command(_payouts, a))

    p = sub.add_parser("reconcile", help="pipeline counts and ledger vs live; or check a brand's order CSV",
                       description="Without --orders-csv: event counts and, per creator, the ledger (ClickHouse) "
                                   "against the live view (Redis). With --orders-csv FILE --brand-id B: the brand's "
                                   "export (order_id,occurred_at,currency,net_minor) against the ledger.",
                       epilog=EXIT_CODES_HELP, formatter_class=RAW)
    p.add_argument("--from", dest="from_", help="RFC 3339 or YYYY-MM-DD")
    p.add_argument("--to", help="RFC 3339 or YYYY-MM-DD (exclusive)")
    p.add_argument("--orders-csv", help="a brand's order export to compare with the ledger")
    p.add_argument("--brand-id", help="the brand of --orders-csv")
    p.add_argument("--only-differences", action="store_true", help="list only creators with differences")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_api_options(p)
    p.set_defaults(func=lambda a: run_command(_reconcile, a))

    p = sub.add_parser("export", help="export creators' earnings as CSV",
                       description="Earnings of one or more creators (totals, by campaign, by stream) as CSV.",
                       epilog=EXIT_CODES_HELP, formatter_class=RAW)
    p.add_argument("what", choices=["earnings"])
    p.add_argument("--creator-id", action="append", required=True, help="repeat for several creators")
    p.add_argument("--from", dest="from_")
    p.add_argument("--to")
    p.add_argument("--as-of")
    p.add_argument("-o", "--output", help="file to write (default stdout)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_api_options(p)
    p.set_defaults(func=lambda a: run_command(_export, a))

    p = sub.add_parser("simulate", help="run the live-stream simulator against the running stack",
                       description="Runs `python -m producers.simulator` with the given arguments, e.g. "
                                   "`liveledger simulate -- --streams 4 --out results/ground_truth.json`. "
                                   "See `liveledger simulate -- --help`.", formatter_class=RAW)
    p.add_argument("sim_args", nargs=argparse.REMAINDER, help="arguments for the simulator")
    p.set_defaults(func=_simulate)
