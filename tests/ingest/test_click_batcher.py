"""The click batcher's pure logic (ingest/batcher.py): grouping by key, batches that grow while a
write is out, the size cap, failures handed to every click of the failed record."""

from __future__ import annotations

import asyncio

import pytest

from ingest.batcher import ClickBatcher


class Log:
    """A ``send`` that records each record it is given; optionally held until released, or failing."""

    def __init__(self, fail_keys: set[str] | None = None) -> None:
        self.records: list[tuple[str, list[int]]] = []
        self.gate: asyncio.Event | None = None
        self.fail_keys = fail_keys or set()
        self.concurrent = 0
        self.max_concurrent = 0

    async def send(self, key: str, items: list[int]) -> None:
        self.records.append((key, list(items)))
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if self.gate is not None:
                await self.gate.wait()
            else:
                await asyncio.sleep(0)
            if key in self.fail_keys:
                raise RuntimeError(f"broker refused {key}")
        finally:
            self.concurrent -= 1


def test_items_added_together_are_one_record_per_key() -> None:
    async def run() -> Log:
        log = Log()
        b: ClickBatcher[int] = ClickBatcher(log.send)
        futures = [b.add("brand-a" if i % 3 else "brand-b", i) for i in range(30)]
        await asyncio.gather(*futures)
        assert b.waiting == 0 and b.records == 2 and b.items == 30
        return log

    log = asyncio.run(run())
    assert sorted(log.records) == [("brand-a", [i for i in range(30) if i % 3]),
                                   ("brand-b", [i for i in range(30) if not i % 3])]


def test_items_arriving_while_a_write_is_out_go_together_in_the_next_record() -> None:
    async def run() -> Log:
        log = Log()
        log.gate = asyncio.Event()
        b: ClickBatcher[int] = ClickBatcher(log.send)
        first = b.add("k", 0)
        await asyncio.sleep(0.01)  # the first record is out (held at the gate)
        assert log.records == [("k", [0])]
        later = [b.add("k", i) for i in range(1, 6)]
        await asyncio.sleep(0.01)
        assert log.records == [("k", [0])] and b.pending("k") == 5  # waiting for the write slot
        assert not first.done() and not any(f.done() for f in later)
        log.gate.set()
        await asyncio.gather(first, *later)
        return log

    log = asyncio.run(run())
    assert log.records == [("k", [0]), ("k", [1, 2, 3, 4, 5])]
    assert log.max_concurrent == 1


def test_batches_are_capped_and_written_in_order() -> None:
    async def run() -> Log:
        log = Log()
        b: ClickBatcher[int] = ClickBatcher(log.send, max_clicks=3, max_inflight_per_key=2)
        await asyncio.gather(*(b.add("k", i) for i in range(8)))
        return log

    log = asyncio.run(run())
    assert [items for _, items in log.records] == [[0, 1, 2], [3, 4, 5], [6, 7]]
    assert log.max_concurrent <= 2


def test_a_failed_write_fails_every_item_of_its_record_and_only_those() -> None:
    async def run() -> tuple[list[BaseException | None], list[BaseException | None]]:
        log = Log(fail_keys={"bad"})
        b: ClickBatcher[int] = ClickBatcher(log.send)
        bad = [b.add("bad", i) for i in range(4)]
        good = [b.add("good", i) for i in range(4)]
        bad_out = await asyncio.gather(*bad, return_exceptions=True)
        good_out = await asyncio.gather(*good, return_exceptions=True)
        assert b.waiting == 0
        return list(bad_out), list(good_out)

    bad, good = asyncio.run(run())
    assert all(isinstance(e, RuntimeError) and "bad" in str(e) for e in bad), bad
    assert good == [None] * 4


def test_linger_waits_for_more_items() -> None:
    async def run() -> Log:
        log = Log()
        b: ClickBatcher[int] = ClickBatcher(log.send, linger_s=0.05)
        futures = [b.add("k", 0)]
        await asyncio.sleep(0.01)
        futures.append(b.add("k", 1))  # still within the linger: same record
        await asyncio.gather(*futures)
        futures = [b.add("k", 2)]
        await asyncio.gather(*futures)
        return log

    log = asyncio.run(run())
    assert log.records == [("k", [0, 1]), ("k", [2])]


def test_a_cancelled_waiter_does_not_cancel_the_record_of_the_others() -> None:
    async def run() -> Log:
        log = Log()
        log.gate = asyncio.Event()
        b: ClickBatcher[int] = ClickBatcher(log.send)
        futures = [b.add("k", i) for i in range(3)]
        waiter = asyncio.ensure_future(asyncio.shield(futures[0]))
        await asyncio.sleep(0.01)
        waiter.cancel()
        log.gate.set()
        await asyncio.gather(*futures[1:])
        assert not futures[0].cancelled()
        return log

    assert asyncio.run(run()).records == [("k", [0, 1, 2])]


def test_bad_knobs_are_refused() -> None:
    async def send(_: str, __: list[int]) -> None:
        return None

    with pytest.raises(ValueError):
        ClickBatcher(send, max_clicks=0)
    with pytest.raises(ValueError):
        ClickBatcher(send, linger_s=-1)
