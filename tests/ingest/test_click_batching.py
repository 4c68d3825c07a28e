"""Micro-batched click records against real Kafka (ingest/batcher.py, docs/ingest.md):

- concurrent redirects share records (fewer records than clicks), and every click id answered with
  a 302 is in Kafka exactly once;
- when the write of a shared record times out, each of its redirects is ``503``; the claims stay
  pending, and each person's retry answers with the same click id (the record may land late: one
  click per person, every copy with the same id and time).

A record refused by the broker (not a timeout) is not tested here: the idempotent producer's
sequence for the partition is then broken (aiokafka answers ``OutOfOrderSequenceNumber`` to every
later write), so it cannot be provoked without breaking the process (docs/ingest.md).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.harness import BROWSER_UA, free_port
from tests.ingest.conftest import World, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

BOOTSTRAP = "127.0.0.1:9092"


def click_of(resp: httpx.Response) -> str | None:
    found = parse_qs(urlsplit(resp.headers.get("Location", "")).query).get("ll_click")
    return found[0] if found else None


async def burst(url: str, addresses: list[str]) -> list[httpx.Response]:
    """One GET per address, all at once (each another person behind the trusted proxy)."""
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=len(addresses))) as client:
        return await asyncio.gather(*(client.get(url, headers={"User-Agent": BROWSER_UA, "X-Forwarded-For": a})
                                      for a in addresses))


def link_records(prefix: str, link_code: str) -> list[dict[str, Any]]:
    """The ``ll.events`` records holding clicks of ``link_code``."""
    return [v for _, v, _ in read_topic(BOOTSTRAP, f"{prefix}.events")
            if any(e.get("link_code") == link_code for e in v["events"])]


def test_concurrent_redirects_share_records_and_each_302_click_is_in_kafka_once(world: World) -> None:
    code = world.link["link_code"]
    n = 120
    before = httpx.get(f"{world.stack.ingest_url}/healthz").json()
    responses = asyncio.run(burst(f"{world.stack.ingest_url}/l/{code}",
                                  [f"198.51.100.{i % 250}, 2001:db8:bb::{i:x}" for i in range(n)]))
    after = httpx.get(f"{world.stack.ingest_url}/healthz").json()
    assert [r.status_code for r in responses] == [302] * n
    answered = [click_of(r) for r in responses]
    assert None not in answered and len(set(answered)) == n
    records = [r for r in link_records(world.stack.prefix, code) if r["source"] == "redirect"]
    in_kafka = Counter(e["event_id"] for r in records for e in r["events"] if e.get("link_code") == code)
    burst_records = [r for r in records if any(e["event_id"] in set(answered) for e in r["events"])]
    assert {c: in_kafka[c] for c in answered} == {c: 1 for c in answered}  # each exactly once
    assert len(burst_records) < n, len(burst_records)  # several clicks per record
    assert all(r["brand_id"] == "b1" for r in burst_records)
    assert after["clicks_written"] - before["clicks_written"] == n
    assert after["click_records"] - before["click_records"] == len(burst_records)
    print(f"\n{n} concurrent redirects -> {len(burst_records)} records "
          f"(largest {max(len(r['events']) for r in burst_records)} clicks)")


@pytest.fixture(scope="module")
def slow_ingest(world: World) -> Iterator[str]:
    """A second ingest on the same stack whose Kafka writes time out at once (the records may still
    land after the 503, as with a paused broker: tests/chaos/test_ingest_kafka_down.py)."""
    url = world.stack.start_ingest("ingest-timeouts", port=free_port(),
                                   env={"LIVELEDGER_INGEST_SEND_TIMEOUT_S": "0.000001"})
    try:
        yield url
    finally:
        proc = world.stack.procs.pop("ingest-timeouts")
        proc.terminate()
        proc.wait(timeout=15)


def test_timed_out_records_are_503_for_each_click_and_the_retries_count_each_person_once(
        world: World, slow_ingest: str) -> None:
    link = world.setup.link("c1", "cmp1", stream_id="s1")
    code = link["link_code"]
    people = [f"2001:db8:dd::{i:x}" for i in range(40)]
    before = httpx.get(f"{slow_ingest}/healthz").json()
    first = asyncio.run(burst(f"{slow_ingest}/l/{code}", people))
    after = httpx.get(f"{slow_ingest}/healthz").json()
    assert [r.status_code for r in first] == [503] * len(people), Counter(r.status_code for r in first)
    assert all(r.headers.get("Retry-After") and r.json()["error"]["code"] == "unavailable" for r in first)
    assert all(click_of(r) is None for r in first)
    written = after["clicks_written"] - before["clicks_written"]
    assert written == len(people) and after["click_records"] - before["click_records"] < written  # shared
    # each person retries on the healthy ingest: the claim stayed pending (the record may have
    # landed), so the retry writes that same click again -- same id, same time -- and answers it
    retry = asyncio.run(burst(f"{world.stack.ingest_url}/l/{code}", people))
    assert [r.status_code for r in retry] == [302] * len(people)
    answered = {click_of(r) for r in retry}
    assert None not in answered and len(answered) == len(people)
    events = [e for r in link_records(world.stack.prefix, code) for e in r["events"]]
    assert {e["event_id"] for e in events} == answered  # no click that nobody was answered with
    assert len({(e["event_id"], e["occurred_at"]) for e in events}) == len(people)  # copies are identical
    assert len({e["client_hash"] for e in events}) == len(people)  # one click per person
