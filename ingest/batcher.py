"""Micro-batched click records: the clicks of concurrent redirects go to Kafka together.

A redirect hands its click to :meth:`ClickBatcher.add` and awaits the future it gets back; that
future resolves only once the Kafka record holding the click is acknowledged (acks=all), so the
``302`` still means "durably in Kafka". Clicks are grouped by Kafka key (the brand: one key, one
partition), so one micro-batch of one key is one ``ll.events`` record with several click events.

When a batch of a key is written:

- no write of that key is out: at the end of the current event-loop iteration (``linger_s`` 0,
  the default: every redirect woken by the same Redis reply joins), or after ``linger_s``;
- a write of that key is out (at most ``max_inflight_per_key``): when it comes back -- the clicks
  that arrived meanwhile go together in the next record, so the batch grows with the load and a
  quiet link still gets its record at once;
- a batch that reaches ``max_clicks`` is closed at once (a new one starts for the key).

A failed or timed-out write fails the future of every click in its record (each redirect then
answers ``503``, ingest/app.py); nothing is retried here. The batcher itself is pure logic over a
``send(key, clicks)`` coroutine function (tests/ingest/test_click_batcher.py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

SendFn = Callable[[str, list[T]], Awaitable[None]]


@dataclass
class _Batch(Generic[T]):
    items: list[T] = field(default_factory=list)
    future: asyncio.Future[None] | None = None


@dataclass
class _Key(Generic[T]):
    open: _Batch[T] | None = None          # the batch clicks join now
    closed: deque[_Batch[T]] = field(default_factory=deque)  # full, waiting for a write slot
    inflight: int = 0
    scheduled: asyncio.Handle | None = None  # the pending flush of ``open``


class ClickBatcher(Generic[T]):
    """Group items by key into batches written by ``send`` (see the module docstring)."""

    def __init__(self, send: SendFn[T], *, max_clicks: int = 500, linger_s: float = 0.0,
                 max_inflight_per_key: int = 1) -> None:
        if max_clicks < 1 or max_inflight_per_key < 1 or linger_s < 0:
            raise ValueError("max_clicks and max_inflight_per_key must be >= 1, linger_s >= 0")
        self._send = send
        self.max_clicks = max_clicks
        self.linger_s = linger_s
        self.max_inflight_per_key = max_inflight_per_key
        self._keys: dict[str, _Key[T]] = {}
        self.records = 0  # writes started (items / records = the mean batch size)
        self.items = 0
        self.waiting = 0  # items added whose record is not acknowledged (or failed) yet

    def add(self, key: str, item: T) -> asyncio.Future[None]:
        """Queue ``item`` under ``key``; the future is done when its record is acknowledged (or
        carries the write's exception). Await it with :func:`asyncio.shield` if the caller may be
        cancelled: the batch is written anyway."""
        loop = asyncio.get_running_loop()
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key()
        batch = state.open
        if batch is None:
            batch = state.open = _Batch(future=loop.create_future())
        batch.items.append(item)
        self.waiting += 1
        assert batch.future is not None
        future = batch.future
        if len(batch.items) >= self.max_clicks:
            self._close(key, state)
            self._pump(key, state)
        elif state.scheduled is None and state.inflight < self.max_inflight_per_key:
            if self.linger_s:
                state.scheduled = loop.call_later(self.linger_s, self._flush_open, key)
            else:
                state.scheduled = loop.call_soon(self._flush_open, key)
        return future

    def pending(self, key: str) -> int:
        """Items of ``key`` queued and not yet handed to ``send``."""
        state = self._keys.get(key)
        if state is None:
            return 0
        return (len(state.open.items) if state.open else 0) + sum(len(b.items) for b in state.closed)

    def _close(self, key: str, state: _Key[T]) -> None:
        if state.open is not None:
            state.closed.append(state.open)
            state.open = None
        if state.scheduled is not None:
            state.scheduled.cancel()
            state.scheduled = None

    def _flush_open(self, key: str) -> None:
        state = self._keys.get(key)
        if state is None:
            return
        state.scheduled = None
        self._close(key, state)
        self._pump(key, state)

    def _pump(self, key: str, state: _Key[T]) -> None:
        """Start writes of closed batches while there is a write slot for ``key``."""
        while state.closed and state.inflight < self.max_inflight_per_key:
            batch = state.closed.popleft()
            state.inflight += 1
            self.records += 1
            self.items += len(batch.items)
            asyncio.get_running_loop().create_task(self._write(key, state, batch))

    async def _write(self, key: str, state: _Key[T], batch: _Batch[T]) -> None:
        assert batch.future is not None
        try:
            await self._send(key, batch.items)
        except asyncio.CancelledError:  # shutdown: the waiting redirects are cancelled too
            batch.future.cancel()
            raise
        except Exception as exc:  # handed to every redirect of the batch
            if not batch.future.done():
                batch.future.set_exception(exc)
                batch.future.exception()  # retrieved: no "exception never retrieved" if nobody waits
        else:
            if not batch.future.done():
                batch.future.set_result(None)
        finally:
            self.waiting -= len(batch.items)
            state.inflight -= 1
            # the items that arrived while this write was out go now, together
            if state.inflight < self.max_inflight_per_key and state.open is not None and not state.closed:
                self._close(key, state)
            self._pump(key, state)
            if state.inflight == 0 and state.open is None and not state.closed and state.scheduled is None:
                self._keys.pop(key, None)
