"""Click hygiene on a real ingest process, Kafka and Redis (contract "Click hygiene"): HEAD, bots,
repeats by the same client (across a restart and across two ingest processes), no raw IP anywhere,
and the counts in reconciliation."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis

from liveledger.settings import DEV_ADMIN_TOKEN, Settings
from liveledger.storage import redis_keys
from tests.harness import BROWSER_UA, AppStack, SetupClient, free_port
from tests.ingest.conftest import read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

ANDROID_UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/124.0.0.0 Mobile Safari/537.36")
PREVIEW_BOTS = [
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Twitterbot/1.0",
    "WhatsApp/2.23.20.0",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
]


class Hygiene:
    def __init__(self, stack: AppStack, link: dict[str, Any]) -> None:
        self.stack = stack
        self.link = link
        self.redis = redis.Redis.from_url(Settings().redis_url)

    def get(self, ua: str, ip: str | None = None, url: str | None = None, method: str = "GET") -> httpx.Response:
        headers = {"User-Agent": ua}
        if ip is not None:
            headers["X-Forwarded-For"] = ip
        return httpx.request(method, f"{url or self.stack.ingest_url}/l/{self.link['link_code']}", headers=headers)

    def clicks(self) -> list[dict[str, Any]]:
        recs = read_topic("127.0.0.1:9092", f"{self.stack.prefix}.events", idle_ms=800)
        return [e for _, v, _ in recs for e in v["events"] if e["link_code"] == self.link["link_code"]]

    def stat(self, name: str, expect: int | None = None) -> int:
        """A counter of the stats hash (ingest flushes its counters once a second)."""
        deadline = time.monotonic() + 5
        while True:
            raw = self.redis.hget(redis_keys.stats(self.stack.prefix), name)
            value = int(raw or 0)
            if expect is None or value >= expect or time.monotonic() > deadline:
                return value
            time.sleep(0.2)


@pytest.fixture(scope="module")
def hyg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hygiene]:
    stack = AppStack(log_dir=Path(tmp_path_factory.mktemp("hygiene")))
    stack.create_topics()
    try:
        stack.start_api()
        stack.start_ingest()
        setup = SetupClient(stack.api_url, DEV_ADMIN_TOKEN)
        setup.brand("b1", "USD")
        setup.creator("c1")
        setup.campaign("cmp1", "b1")
        link = setup.link("c1", "cmp1", destination_url="https://shop.example/p?ref=x")
        yield Hygiene(stack, link)
    finally:
        stack.stop_all()


def click_of(resp: httpx.Response) -> str | None:
    found = parse_qs(urlsplit(resp.headers["location"]).query).get("ll_click")
    return found[0] if found else None


def test_head_redirects_without_a_click(hyg: Hygiene) -> None:
    ip = f"198.51.100.{uuid.uuid4().int % 200}"
    before = len(hyg.clicks())
    resp = hyg.get(BROWSER_UA, ip, method="HEAD")
    assert resp.status_code == 302
    assert resp.headers["location"] == "https://shop.example/p?ref=x"
    assert "set-cookie" not in resp.headers
    # a GET from the same client right after is a first click, not a repeat of the HEAD
    first = hyg.get(BROWSER_UA, ip)
    assert click_of(first) is not None
    assert len(hyg.clicks()) == before + 1


@pytest.mark.parametrize("ua", PREVIEW_BOTS)
def test_bots_get_the_redirect_without_a_click(hyg: Hygiene, ua: str) -> None:
    before_clicks, before_bots = len(hyg.clicks()), hyg.stat("bot_clicks")
    resp = hyg.get(ua, "203.0.113.9")
    assert resp.status_code == 302
    assert click_of(resp) is None and "set-cookie" not in resp.headers
    assert hyg.stat("bot_clicks", before_bots + 1) == before_bots + 1
    assert len(hyg.clicks()) == before_clicks


def test_a_repeat_within_the_hour_reuses_the_click_id(hyg: Hygiene) -> None:
    ip = "192.0.2.77"
    before_clicks, before_repeats = len(hyg.clicks()), hyg.stat("repeat_clicks")
    first = click_of(hyg.get(BROWSER_UA, ip))
    again = [click_of(hyg.get(BROWSER_UA, ip)) for _ in range(5)]
    assert first is not None and again == [first] * 5
    # another client: another agent on the same IP, or the same agent on another IP
    other_ua = click_of(hyg.get(ANDROID_UA, ip))
    other_ip = click_of(hyg.get(BROWSER_UA, "192.0.2.78"))
    assert len({first, other_ua, other_ip}) == 3
    clicks = hyg.clicks()
    assert len(clicks) == before_clicks + 3
    assert [c["event_id"] for c in clicks].count(first) == 1
    assert hyg.stat("repeat_clicks", before_repeats + 5) == before_repeats + 5
    # the claim lives in Redis for the window (an hour), so it outlives any one process
    ttl = int(hyg.redis.ttl(redis_keys.click_repeat(hyg.stack.prefix, hyg.link["link_code"],
                                                     clicks[-3]["client_hash"])))
    assert 3500 < ttl <= 3600


def test_concurrent_taps_of_one_client_are_one_click(hyg: Hygiene) -> None:
    """Claims made together go to Redis in one batch, in order: still one click per client."""

    async def taps() -> list[str | None]:
        async with httpx.AsyncClient(timeout=30) as client:
            async def tap(ip: str) -> str | None:
                resp = await client.get(f"{hyg.stack.ingest_url}/l/{hyg.link['link_code']}",
                                        headers={"User-Agent": BROWSER_UA, "X-Forwarded-For": ip})
                return click_of(resp)
            return await asyncio.gather(*(tap(f"192.0.2.{180 + i % 4}") for i in range(40)))

    before = httpx.get(f"{hyg.stack.ingest_url}/healthz").json()
    got = asyncio.run(taps())
    after = httpx.get(f"{hyg.stack.ingest_url}/healthz").json()
    by_ip: dict[int, set[str | None]] = {}
    for i, click in enumerate(got):
        by_ip.setdefault(i % 4, set()).add(click)
    assert all(len(ids) == 1 and None not in ids for ids in by_ip.values()), by_ip
    ids = {next(iter(v)) for v in by_ip.values()}
    assert sum(1 for c in hyg.clicks() if c["event_id"] in ids) == 4
    claims = after["repeat_claims"] - before["repeat_claims"]
    batches = after["repeat_claim_batches"] - before["repeat_claim_batches"]
    assert claims == 40 and batches < claims  # several claims per round trip


def test_repeats_survive_a_restart_and_span_ingest_processes(hyg: Hygiene) -> None:
    ip = "192.0.2.99"
    first = click_of(hyg.get(BROWSER_UA, ip))
    assert first is not None
    hyg.stack.kill9("ingest")
    hyg.stack.start_ingest()
    assert click_of(hyg.get(BROWSER_UA, ip)) == first
    second_url = hyg.stack.start_ingest("ingest-2", free_port())
    assert click_of(hyg.get(BROWSER_UA, ip, url=second_url)) == first
    # and a client first seen by the second process is a repeat on the first one
    fresh = click_of(hyg.get(ANDROID_UA, "192.0.2.100", url=second_url))
    assert fresh is not None and click_of(hyg.get(ANDROID_UA, "192.0.2.100")) == fresh
    assert [c["event_id"] for c in hyg.clicks()].count(first) == 1


def test_no_raw_ip_reaches_kafka(hyg: Hygiene) -> None:
    ip = "198.18.42.123"
    click = click_of(hyg.get(BROWSER_UA, ip))
    recs = read_topic("127.0.0.1:9092", f"{hyg.stack.prefix}.events", idle_ms=800)
    raw = [v for _, v, _ in recs if any(e["event_id"] == click for e in v["events"])]
    assert len(raw) == 1
    assert ip not in repr(raw) and BROWSER_UA not in repr(raw)
    (event,) = [e for e in raw[0]["events"] if e["event_id"] == click]
    assert len(event["client_hash"]) == 32


def test_untrusted_peers_cannot_pick_their_ip(hyg: Hygiene) -> None:
    """X-Forwarded-For is believed only from trusted proxies; a client behind one cannot forge the
    hop the proxy added (the right-most untrusted entry counts)."""
    a = click_of(hyg.get(BROWSER_UA, "10.9.9.9, 192.0.2.150"))
    b = click_of(hyg.get(BROWSER_UA, "10.8.8.8, 192.0.2.150"))
    assert a is not None and a == b


def test_reconciliation_reports_bot_and_repeat_clicks(hyg: Hygiene) -> None:
    # ingest flushes its counters once a second: wait until two readings 1.5 s apart agree
    bots, repeats = -1, -1
    while (bots, repeats) != (hyg.stat("bot_clicks"), hyg.stat("repeat_clicks")):
        bots, repeats = hyg.stat("bot_clicks"), hyg.stat("repeat_clicks")
        time.sleep(1.5)
    assert bots >= len(PREVIEW_BOTS) and repeats >= 5
    resp = httpx.get(f"{hyg.stack.api_url}/v1/finance/reconciliation",
                     headers={"Authorization": f"Bearer {DEV_ADMIN_TOKEN}"}, timeout=30)
    assert resp.status_code == 200, resp.text
    counts = resp.json()["events"]
    assert counts["bot_clicks"] == bots and counts["repeat_clicks"] == repeats
    assert "ignored_test_orders" in counts and "ignored_webhooks" in counts
