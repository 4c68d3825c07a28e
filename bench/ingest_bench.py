"""Ingest: peak req/s, p50/p99 and server CPU per request of the real endpoints vs two baselines.

- ``aiohttp_uvloop_noop``: aiohttp no-op on uvloop — the same framework *and* loop as ingest
  (``python -m ingest`` installs uvloop), i.e. "its own framework's bare endpoint";
- ``aiohttp_asyncio_noop``: plain aiohttp no-op on the default asyncio loop — "bare aiohttp";
- ``events_floor``: the floor of the events path (``bench/bare.py`` ``POST /produce``): aiohttp on
  uvloop reading the same 100-event body, parsing it with orjson and producing it to the stack's
  events topic as one record with ingest's producer (acks=all) before answering.

Server processes are pinned to CPU 1 and wrk to CPU 0 (Kafka and Redis float). Contenders are
interleaved ``rounds`` times and the best run of each counts. Then the real endpoints are driven at
half their measured peak (wrk with a per-connection delay) for the p99-at-half-load goal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from bench import wrk
from bench.common import Proc, free_port, pin, start_module, wait_http
from bench.config import BenchConfig
from bench.stack import app_stack
from loadtests.payloads import BROWSER_UA, PREVIEW_BOT_UA, dumps, event_batch

SERVER_CPU = {1}
EVENTS_PER_BODY = 100


def _best(runs: list[wrk.WrkResult]) -> wrk.WrkResult:
    return max(runs, key=lambda r: r.rps)


def _start_bare(loop: str, log_dir: Path, *extra: str, name: str | None = None) -> tuple[Proc, str]:
    port = free_port()
    proc = start_module(name or f"bare-{loop}", ["bench.bare", "--port", str(port), "--loop", loop, *extra], log_dir)
    base = f"http://127.0.0.1:{port}"
    wait_http(proc, f"{base}/noop")
    pin(proc.pid, SERVER_CPU)
    return proc, base


def run(cfg: BenchConfig, log_dir: Path) -> dict[str, Any]:
    if not wrk.available():
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    work = log_dir / "wrk"
    bare = {loop: _start_bare(loop, log_dir) for loop in ("asyncio", "uvloop")}
    try:
        with app_stack(log_dir / "ingest-stack") as (stack, world):
            ingest_pid = stack.procs["ingest"].pid
            pin(ingest_pid, SERVER_CPU)
            floor = _start_bare("uvloop", log_dir, "--kafka-topic", f"{stack.prefix}.events", "--kafka-key",
                                world.brand_id, name="bare-events-floor")
            bare["floor"] = floor
            import random

            body = dumps(event_batch(world, EVENTS_PER_BODY, random.Random(1), 0))
            auth = {"Authorization": f"Bearer {world.api_key}", "Content-Type": "application/json"}
            events_lua = wrk.script(work, "events", "POST", body, auth)
            noop_post_lua = wrk.script(work, "noop_post", "POST", body, {"Content-Type": "application/json"})
            # Click hygiene (ingest/clicks.py): a browser, another client on every request (each
            # a first click: bot check, client hash, Redis claim, Kafka); the same client again (a
            # repeat: no Kafka record); a preview bot; and a second ingest with hygiene off (the
            # redirect as it was before), all in this run.
            browser = {"User-Agent": BROWSER_UA}
            plain_port = free_port()
            plain_url = stack.start_ingest("ingest-no-hygiene", plain_port, env={"LIVELEDGER_CLICK_HYGIENE": "false"})
            plain_pid = stack.procs["ingest-no-hygiene"].pid
            pin(plain_pid, SERVER_CPU)
            first_lua = wrk.script(work, "redirect_first", "GET", None, browser, new_client_per_request=True)
            repeat_lua = wrk.script(work, "redirect_repeat", "GET", None, {**browser, "X-Forwarded-For": "2001:db8::7"})
            bot_lua = wrk.script(work, "redirect_bot", "GET", None, {"User-Agent": PREVIEW_BOT_UA})
            link = f"{stack.ingest_url}/l/{world.link_codes[0]}"
            contenders: dict[str, tuple[str, int, Path | None]] = {
                "aiohttp_asyncio_noop": (f"{bare['asyncio'][1]}/noop", bare["asyncio"][0].pid, None),
                "aiohttp_uvloop_noop": (f"{bare['uvloop'][1]}/noop", bare["uvloop"][0].pid, None),
                "ingest_redirect": (link, ingest_pid, first_lua),
                "ingest_redirect_no_hygiene": (f"{plain_url}/l/{world.link_codes[0]}", plain_pid, first_lua),
                "ingest_redirect_repeat": (link, ingest_pid, repeat_lua),
                "ingest_redirect_bot": (link, ingest_pid, bot_lua),
                "aiohttp_uvloop_noop_post100": (f"{bare['uvloop'][1]}/noop", bare["uvloop"][0].pid, noop_post_lua),
                "ingest_events100": (f"{stack.ingest_url}/v1/events", ingest_pid, events_lua),
                "events_floor": (f"{floor[1]}/produce", floor[0].pid, noop_post_lua),
            }
            # warm-up (JIT-free Python, but connection pools, Kafka metadata, setup replica)
            for url, pid, lua in contenders.values():
                wrk.run(url, pid, duration_s=1, connections=cfg.wrk_connections, lua=lua)
            runs: dict[str, list[wrk.WrkResult]] = {k: [] for k in contenders}
            for _ in range(cfg.rounds):
                for name, (url, pid, lua) in contenders.items():
                    runs[name].append(wrk.run(url, pid, duration_s=cfg.wrk_seconds,
                                              connections=cfg.wrk_connections, lua=lua))
                    time.sleep(0.5)
            best = {k: _best(v) for k, v in runs.items()}
            half: dict[str, Any] = {}
            conns = max(4, cfg.wrk_connections // 4)
            for name, (url, pid, lua_base) in (("ingest_redirect", contenders["ingest_redirect"]),
                                               ("ingest_events100", contenders["ingest_events100"])):
                target = best[name].rps / 2
                delay_ms = conns / target * 1000 if target > 0 else 0
                if name == "ingest_redirect":
                    lua = wrk.script(work, f"{name}_half", "GET", None, browser, delay_ms, new_client_per_request=True)
                elif lua_base is None:
                    lua = wrk.script(work, f"{name}_half", "GET", None, None, delay_ms)
                else:
                    lua = wrk.script(work, f"{name}_half", "POST", body, auth, delay_ms)
                r = wrk.run(url, pid, duration_s=cfg.wrk_seconds, connections=conns, lua=lua)
                half[name] = {"target_rps": round(target, 1), **r.as_dict()}
            health = httpx.get(f"{stack.ingest_url}/healthz", timeout=5).json()
    finally:
        for proc, _ in bare.values():
            proc.stop()

    red, ev, fl = best["ingest_redirect"], best["ingest_events100"], best["events_floor"]
    base_uv, base_asy = best["aiohttp_uvloop_noop"], best["aiohttp_asyncio_noop"]
    return {
        "rps": round(red.rps, 1),
        "baseline_rps": round(base_uv.rps, 1),
        "aiohttp_baseline_rps": round(base_asy.rps, 1),
        "p50_ms": red.p50_ms,
        "p99_ms": red.p99_ms,
        "p99_half_load_ms": half["ingest_redirect"]["p99_ms"],
        "events_rps": round(ev.rps, 1),
        "events_per_s": round(ev.rps * EVENTS_PER_BODY, 1),
        "events_p99_ms": ev.p99_ms,
        "events_p99_half_load_ms": half["ingest_events100"]["p99_ms"],
        "events_baseline_rps": round(best["aiohttp_uvloop_noop_post100"].rps, 1),
        # the events path's floor (orjson parse + one acks=all record); the report divides by it
        "events_floor_rps": round(fl.rps, 1),
        "events_floor_cpu_us_per_req": round(fl.cpu_us_per_req, 1),
        "events_floor_p99_ms": fl.p99_ms,
        # redirect clicks per Kafka record over the whole run (ingest/batcher.py micro-batches)
        "clicks_per_record": round(health["clicks_written"] / health["click_records"], 2)
        if health.get("click_records") else None,
        "cpu_us_per_req": round(red.cpu_us_per_req, 1),
        # click hygiene: µs of ingest CPU per redirect with it (first clicks), without it, and on
        # its short paths (a repeat, a bot), beside the bare endpoint's
        "hygiene": {
            "first_click_cpu_us": round(red.cpu_us_per_req, 1),
            "no_hygiene_cpu_us": round(best["ingest_redirect_no_hygiene"].cpu_us_per_req, 1),
            "cost_cpu_us": round(red.cpu_us_per_req - best["ingest_redirect_no_hygiene"].cpu_us_per_req, 1),
            "repeat_cpu_us": round(best["ingest_redirect_repeat"].cpu_us_per_req, 1),
            "bot_cpu_us": round(best["ingest_redirect_bot"].cpu_us_per_req, 1),
            "no_hygiene_rps": round(best["ingest_redirect_no_hygiene"].rps, 1),
            "repeat_rps": round(best["ingest_redirect_repeat"].rps, 1),
            "bot_rps": round(best["ingest_redirect_bot"].rps, 1),
            "ratio_to_bare": round(red.rps / base_uv.rps, 3) if base_uv.rps else None,
            "no_hygiene_ratio_to_bare": round(best["ingest_redirect_no_hygiene"].rps / base_uv.rps, 3)
            if base_uv.rps else None,
        },
        "baseline_cpu_us_per_req": round(base_uv.cpu_us_per_req, 1),
        "aiohttp_baseline_cpu_us_per_req": round(base_asy.cpu_us_per_req, 1),
        "events_cpu_us_per_req": round(ev.cpu_us_per_req, 1),
        "connections": cfg.wrk_connections,
        "runs": {k: [r.as_dict() for r in v] for k, v in runs.items()},
        "half_load": half,
    }
