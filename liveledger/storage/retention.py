"""How long each piece of Redis state lives (the "What expires, when" table of docs/stream-processing.md).

Every duration is a relative TTL set when the key is written (``PX``: wall clock of Redis), never an
``EXPIREAT`` derived from the event's time: a key is therefore never dropped *earlier* than its
horizon after the last write, whatever the event time says (a late or replayed event keeps its state
a little longer than strictly needed, which is harmless). :meth:`Retention.scaled` shrinks every
duration by one factor, so a benchmark can replay a month of event time in a minute of wall time.

Money state never expires: an order's state (``<p>:lstate:<part>:orders``), its applied contribution
(``<p>:order:*``) and every aggregate stay, so an order is refundable for ever.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from liveledger.storage.redis_keys import DEDUP_TTL_S

DAY_MS = 24 * 3600 * 1000
# the longest attribution window a campaign may set (schemas.setup.CampaignCreate: 1..400 days; the
# window cannot be changed by a PATCH), used for a click whose campaign this worker does not know
MAX_WINDOW_DAYS = 400


@dataclass(frozen=True, slots=True)
class Retention:
    """TTLs in milliseconds (defaults: production)."""

    day_ms: int = DAY_MS
    # how late a record may arrive and still be joined: an order placed inside its click's window but
    # delivered up to this much later still finds the click; a click delivered up to this much after
    # an order that named it still attributes it (the order's ``waiting`` entry lives this long)
    late_ms: int = DEDUP_TTL_S * 1000
    # event-id de-dup (live path ``dedup`` keys, the ledger's ``seen`` webhook/event ids)
    dedup_ms: int = DEDUP_TTL_S * 1000
    # a refund or cancellation whose order has not arrived (an order state with ``order = None``)
    pending_ms: int = 30 * DAY_MS
    # a stream's viewer set and presence sorted sets, after the last flush that touched the stream
    stream_idle_ms: int = 7 * DAY_MS

    def scaled(self, factor: float) -> Retention:
        """Every duration multiplied by ``factor`` (≥ 1 ms): ``scaled(1 / 86400)`` makes a day a second."""
        def f(ms: int) -> int:
            return max(1, int(ms * factor))
        return replace(self, day_ms=f(self.day_ms), late_ms=f(self.late_ms), dedup_ms=f(self.dedup_ms),
                       pending_ms=f(self.pending_ms), stream_idle_ms=f(self.stream_idle_ms))

    def click_ms(self, window_days: int | None) -> int:
        """A click lives its campaign's attribution window plus :attr:`late_ms`; a click whose campaign
        is unknown here (none, or setup not replicated yet) the longest window any campaign may set."""
        days = MAX_WINDOW_DAYS if window_days is None else window_days
        return days * self.day_ms + self.late_ms


DEFAULT = Retention()
