"""Per-key rate limits of the API (docs/api.md "Limits"): ``429 rate_limited`` with ``Retry-After``.

Two budgets per issued key, counted in this API process's memory with the ``limits`` package's
moving window: reads (``GET``/``HEAD`` under ``/v1/``) and writes (every other method under
``/v1/``: setup changes, payouts, reconciliation uploads). A key is counted by its SHA-256 digest
(the id the setup topic stores), never by the key itself. The admin token is exempt: it is the
operator's and the setup tooling's, and a limit on it would only slow the operator down.
Unknown keys never reach the limiter (they are ``401`` first), so random keys cannot grow it.
"""

from __future__ import annotations

import math
import time
from typing import Literal

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from liveledger.errors import ServiceError
from liveledger.settings import Settings
from liveledger.setup_state import Principal, hash_key

Budget = Literal["read", "write"]
READ_METHODS = frozenset({"GET", "HEAD"})


def budget_of(method: str) -> Budget:
    return "read" if method.upper() in READ_METHODS else "write"


class KeyRateLimiter:
    """``check(principal, key, budget)``: count one request of ``key``, or raise ``429``."""

    def __init__(self, settings: Settings) -> None:
        self._items: dict[Budget, RateLimitItem] = {"read": parse(settings.api_rate_limit_reads),
                                                    "write": parse(settings.api_rate_limit_writes)}
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, principal: Principal, key: str, budget: Budget) -> None:
        if principal.role == "admin":
            return
        item = self._items[budget]
        digest = hash_key(key)
        if self._limiter.hit(item, budget, digest):
            return
        reset_at, _remaining = self._limiter.get_window_stats(item, budget, digest)
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise ServiceError(429, "rate_limited", f"more than {item} {budget} requests for this key; retry later",
                           [{"field": "Authorization", "reason": f"{budget} limit {item} per key"}],
                           headers={"Retry-After": str(retry_after)})
