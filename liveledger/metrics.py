"""Every Prometheus metric family of LiveLedger, defined once (``prometheus-client``, default registry).

Each process imports this module, calls :func:`identify` once at start, and serves :func:`render`
at ``GET /metrics`` (text format 0.0.4): ingest and the API on their own HTTP port, stream workers
and sinks on ``LIVELEDGER_METRICS_PORT`` (:mod:`liveledger.ops_server`). The families, their labels
and the ports are documented in docs/operations.md; change both together.

Hot-path rule: label values are bounded (route *templates*, never raw paths; reasons from fixed
sets). The per-request and per-event families (HTTP requests and latency, events accepted /
rejected, redirects) are :class:`LoopCounter` / :class:`RequestStats` collectors: plain numbers
updated from the event loop's thread (no lock, a fraction of a µs; prometheus-client's own
``Counter`` takes a lock per update, ~1 µs) and turned into the library's metric families at
scrape time. Per-batch families (flushes, lag, dead letters, the watermark) are the library's own
classes. Costs are measured in docs/operations.md ("Cost").
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

__all__ = [
    "CONSUMER_LAG",
    "CONTENT_TYPE",
    "EVENTS_ACCEPTED",
    "EVENTS_DEAD_LETTERED",
    "EVENTS_REJECTED",
    "FLUSH_DURATION",
    "FLUSH_SIZE",
    "HTTP",
    "INGEST_INFLIGHT",
    "REDIRECTS",
    "SINK_INSERT_ERRORS",
    "SINK_ROWS",
    "UNMATCHED_ROUTE",
    "WATERMARK",
    "LoopCounter",
    "RequestStats",
    "count_dead_letters",
    "identify",
    "observe_request",
    "on_scrape",
    "render",
    "set_lag",
    "set_watermark",
]

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# The route label of a request that matched no route (a 404 of an unknown path, a rejected head).
UNMATCHED_ROUTE = "<unmatched>"

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: half the series

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 20000, 50000, 100000)


# -- lock-free families for the hot path ----------------------------------------------------------

class _Cell:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class LoopCounter:
    """A labelled counter family of plain numbers: ``labels(*values).inc(n)``. Update it from the
    event loop's thread only (as every LiveLedger process does); the registry reads it at scrape."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._cells: dict[tuple[str, ...], _Cell] = {}
        REGISTRY.register(self)

    def labels(self, *values: str) -> _Cell:
        cell = self._cells.get(values)
        if cell is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            cell = self._cells[values] = _Cell()
        return cell

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, cell in list(self._cells.items()):
            family.add_metric(values, cell.value)
        yield family


class _Latency:
    __slots__ = ("counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last one is +Inf
        self.sum = 0.0


class _RequestCell:
    __slots__ = ("count", "latency")

    def __init__(self, latency: _Latency) -> None:
        self.count = 0
        self.latency = latency


class RequestStats:
    """``liveledger_http_requests_total{route,method,status}`` and
    ``liveledger_http_request_duration_seconds{route,method}`` from one :meth:`observe` call."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        self._labels = [repr(b) for b in self.bounds] + ["+Inf"]  # "0.005", "1.0": as the client writes them
        self._requests: dict[tuple[str, str, int], _RequestCell] = {}
        self._latency: dict[tuple[str, str], _Latency] = {}
        REGISTRY.register(self)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        cell = self._requests.get((route, method, status))
        if cell is None:
            latency = self._latency.get((route, method))
            if latency is None:
                latency = self._latency[(route, method)] = _Latency(len(self.bounds))
            cell = self._requests[(route, method, status)] = _RequestCell(latency)
        cell.count += 1
        latency = cell.latency
        latency.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        latency.sum += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("liveledger_http_requests",
                                       "HTTP requests answered, by route template, method and status",
                                       labels=("route", "method", "status"))
        for (route, method, status), cell in list(self._requests.items()):
            requests.add_metric((route, method, str(status)), cell.count)
        yield requests
        latency = HistogramMetricFamily("liveledger_http_request_duration_seconds",
                                        "Time from a request reaching the app to its response head, by route "
                                        "template and method", labels=("route", "method"))
        for (route, method), hist in list(self._latency.items()):
            cumulative, buckets = 0, []
            for label, n in zip(self._labels, hist.counts, strict=True):
                cumulative += n
                buckets.append((label, float(cumulative)))
            latency.add_metric((route, method), buckets, hist.sum)
        yield latency


PROCESS = Info("liveledger_process", "The LiveLedger process serving these metrics (process = its role)")

# -- HTTP (ingest, API) ----------------------------------------------------------------------------
HTTP = RequestStats(_LATENCY_BUCKETS)

# -- events (ingest; dead letters in the stream workers) ---------------------------------------
EVENTS_ACCEPTED = LoopCounter("liveledger_events_accepted",
                              "Events ingest acknowledged (durably in Kafka), by source "
                              "(events-api, redirect, native, shopify)", ["source"])
EVENTS_REJECTED = LoopCounter("liveledger_events_rejected",
                              "Events ingest refused for their content (validation, tenancy), by source", ["source"])
EVENTS_DEAD_LETTERED = Counter("liveledger_events_dead_lettered",
                               "Records or events a stream worker sent to the dead-letter topic, by consumer and "
                               "reason (the dlq.reason header)", ["consumer", "reason"])
REDIRECTS = LoopCounter("liveledger_redirects",
                        "GET/HEAD /l/{code} answered with a redirect, by outcome (click, repeat, bot, inactive, head)",
                        ["outcome"])

INGEST_INFLIGHT = Gauge("liveledger_ingest_inflight_sends",
                        "Kafka sends of this ingest process awaiting acks=all (at LIVELEDGER_INGEST_MAX_INFLIGHT: 503)")

# -- consumers (stream workers, sinks) ---------------------------------------------------------
CONSUMER_LAG = Gauge("liveledger_consumer_lag_records",
                     "Records of a partition not yet applied: its high watermark minus the next offset to apply "
                     "(workers: the Redis fence + 1; sink: the committed offset)", ["consumer", "topic", "partition"])
FLUSH_SIZE = Histogram("liveledger_flush_size",
                       "Items per flush: events (live), records (ledger), rows (clickhouse)", ["path"],
                       buckets=_SIZE_BUCKETS)
FLUSH_DURATION = Histogram("liveledger_flush_duration_seconds",
                           "Time of one flush until its effects are durable (live/ledger: one partition's batch "
                           "through the fenced Redis write; clickhouse: every insert of a flush, retries included)",
                           ["path"], buckets=_LATENCY_BUCKETS)
SINK_ROWS = Counter("liveledger_sink_rows", "Rows the ClickHouse sink inserted, by table", ["table"])
SINK_INSERT_ERRORS = Counter("liveledger_sink_insert_errors", "ClickHouse inserts that failed (and were retried)")

# -- finance ----------------------------------------------------------------------------------
WATERMARK = Gauge("liveledger_watermark_seconds",
                  "complete_up_to of the finance watermark (GET /v1/finance/watermark) as unix seconds; "
                  "0 until the process computed one")

# which children each role starts with (at 0), so rate() and absent() work from the first scrape
_Initial = list[tuple[Any, tuple[str, ...]]]
_INGEST: _Initial = [(EVENTS_ACCEPTED, (s,)) for s in ("events-api", "redirect", "native", "shopify")]
_INGEST += [(EVENTS_REJECTED, (s,)) for s in ("events-api", "native", "shopify")]
_INGEST += [(REDIRECTS, (o,)) for o in ("click", "repeat", "bot", "inactive", "head")]
_INITIAL: dict[str, _Initial] = {
    "ingest": _INGEST,
    "streams": [(f, (p,)) for f in (FLUSH_SIZE, FLUSH_DURATION) for p in ("live", "ledger")],
    "sink": [(FLUSH_SIZE, ("clickhouse",)), (FLUSH_DURATION, ("clickhouse",))],
}

_hooks: list[Callable[[], Awaitable[None]]] = []
_lag_labels: dict[str, set[tuple[str, str]]] = {}
HOOK_TIMEOUT_S = 1.0


def identify(process: str, **labels: str) -> None:
    """Name this process (``liveledger_process_info{process=...}``) and create its children at 0."""
    PROCESS.info({"process": process, **labels})
    for family, values in _INITIAL.get(process, []):
        family.labels(*values)


# Count one answered request and its latency: ``observe_request(route, method, status, seconds)``.
observe_request = HTTP.observe


def set_lag(consumer: str, lags: Mapping[tuple[str, int], int]) -> None:
    """Replace ``consumer``'s per-partition lag gauges (partitions no longer assigned disappear)."""
    now = {(topic, str(partition)) for topic, partition in lags}
    for topic, label in _lag_labels.get(consumer, set()) - now:
        CONSUMER_LAG.remove(consumer, topic, label)
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(consumer, topic, str(partition)).set(max(lag, 0))
    _lag_labels[consumer] = now


def count_dead_letters(consumer: str, stats: Mapping[str, int] | Iterable[tuple[str, int]]) -> None:
    """Count dead letters from a path's flush stats (``dlq|<reason>`` entries)."""
    items: Iterable[tuple[str, int]] = stats.items() if isinstance(stats, Mapping) else stats
    for name, n in items:
        if name.startswith("dlq|") and n:
            EVENTS_DEAD_LETTERED.labels(consumer, name[4:]).inc(n)


def set_watermark(complete_up_to: datetime | float) -> None:
    """The hook for the finance watermark: call it wherever ``complete_up_to`` is computed."""
    WATERMARK.set(complete_up_to.timestamp() if isinstance(complete_up_to, datetime) else complete_up_to)


def on_scrape(hook: Callable[[], Awaitable[None]]) -> None:
    """Run ``hook`` before each scrape (e.g. to refresh consumer lag); bounded by ``HOOK_TIMEOUT_S``."""
    if hook not in _hooks:
        _hooks.append(hook)


async def render() -> bytes:
    """The text exposition of every family, after the scrape hooks ran (a slow or failing hook
    leaves its gauges as they were: a scrape never waits longer than ``HOOK_TIMEOUT_S``)."""
    for hook in list(_hooks):
        try:
            await asyncio.wait_for(hook(), HOOK_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("metrics hook %s failed: %r", getattr(hook, "__qualname__", hook), exc)
    return generate_latest(REGISTRY)
