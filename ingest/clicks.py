"""Click hygiene on the redirect (contract "Click hygiene"): bots, repeats, client identity.

- **Bots**: the crawler and link-preview list of the maintained ``crawlerdetect`` package (the
  PHP CrawlerDetect project's list, ~1,500 patterns). The package matches with Python's ``re``,
  ~660 µs for a user agent it has not seen (measured; docs/benchmarks.md) — three times a whole
  redirect, and an attacker picks the user agent. :class:`BotDetector` runs the package's own
  patterns on RE2 (``google-re2``, linear time), ~25 µs, and remembers verdicts of recent agents
  (real traffic repeats a few thousand agents), ~1 µs then. tests/ingest/test_clicks.py checks it
  agrees with the package on every agent of its list.
- **Client**: a keyed hash (HMAC-SHA256 with a server secret) of the client IP and User-Agent; the
  raw IP is never stored or sent anywhere. Behind a proxy the client IP is the last
  ``X-Forwarded-For`` entry added by a trusted proxy (``LIVELEDGER_TRUSTED_PROXIES``).
- **Repeats**: the first click of a client on a link claims :func:`liveledger.storage.redis_keys.click_repeat` in
  Redis (``SET NX GET EX 3600``, micro-batched); a repeat within the hour gets the claimed click id
  back. Redis is shared, so this holds across restarts and across ingest processes. A claim is
  *pending* (:func:`pending_claim`: click id and time) until its click record is in Kafka, then
  *confirmed* (just the click id): a repeat that finds a pending claim nobody is writing any more (a
  crash, a timed-out write) writes that same click again rather than handing out an id no record has.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import re
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Final

import re2
from crawlerdetect.providers.crawlers import data as CRAWLER_PATTERNS
from crawlerdetect.providers.exclusions import data as EXCLUSION_PATTERNS
from redis.crc import key_slot

from liveledger.redis_client import is_cluster
from liveledger.storage import redis_keys

log = logging.getLogger("ingest.clicks")

REPEAT_WINDOW_S: Final = 3600
_CACHE_SIZE: Final = 65536
_MAX_UA: Final = 1024  # longer agents are judged on their first KiB


def _re2_options() -> Any:
    opts = re2.Options()
    opts.case_sensitive = False
    opts.max_mem = 256 << 20
    return opts


class BotDetector:
    """``is_bot(user_agent)``: the ``crawlerdetect`` verdict (same patterns, same exclusions)."""

    def __init__(self, cache_size: int = _CACHE_SIZE) -> None:
        # The package strips its exclusions first (Python re: ~24 µs, faster than RE2's sub here),
        # then searches the crawler list: on RE2, except the patterns RE2 cannot run (lookaheads).
        self._exclusions = re.compile("|".join(EXCLUSION_PATTERNS), re.IGNORECASE)
        plain = [p for p in CRAWLER_PATTERNS if "(?!" not in p and "(?<" not in p and "(?=" not in p]
        special = [p for p in CRAWLER_PATTERNS if p not in set(plain)]
        self._crawlers = re2.compile("|".join(f"(?:{p})" for p in plain), _re2_options())
        self._special = re.compile("|".join(special), re.IGNORECASE) if special else None
        self._cache: OrderedDict[str, bool] = OrderedDict()
        self._cache_size = cache_size

    def _judge(self, user_agent: str) -> bool:
        agent = self._exclusions.sub("", user_agent)
        if not agent:
            return False
        if self._crawlers.search(agent) is not None:
            return True
        return self._special is not None and self._special.search(agent) is not None

    def is_bot(self, user_agent: str) -> bool:
        """A missing or blank agent is not on the list (the package says the same): it counts."""
        agent = user_agent.strip()[:_MAX_UA]
        if not agent:
            return False
        cache = self._cache
        verdict = cache.get(agent)
        if verdict is None:
            verdict = self._judge(agent)
            cache[agent] = verdict
            if len(cache) > self._cache_size:
                cache.popitem(last=False)
        return verdict


def parse_networks(spec: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``"127.0.0.1,::1,10.0.0.0/8"`` → networks (blank entries ignored)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def _trusted(addr: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        # the family from the text: ip_address() tries IPv4 first and pays an exception for IPv6
        ip = ipaddress.IPv6Address(addr) if ":" in addr else ipaddress.IPv4Address(addr)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(peer: str | None, forwarded_for: str | None,
              trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> str:
    """The client's address: the peer, or — when the peer is a trusted proxy — the right-most
    ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries left of it can be forged
    by the client)."""
    addr = peer or ""
    if not forwarded_for or not _trusted(addr, trusted):
        return addr
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if not hop:
            continue
        if not _trusted(hop, trusted):
            return hop[:64]
        addr = hop
    return addr


def client_hash(secret: bytes, ip: str, user_agent: str) -> str:
    """Keyed hash of (IP, User-Agent): 32 hex characters, not reversible without the secret."""
    return hmac.new(secret, f"{ip}\x00{user_agent[:_MAX_UA]}".encode("utf-8", "replace"),
                    hashlib.sha256).hexdigest()[:32]


def client_secret(configured: str, admin_token: str) -> bytes:
    """The hashing secret: ``LIVELEDGER_CLIENT_HASH_SECRET``, else derived from the admin token (so a
    deployment that sets its admin token gets its own secret without another setting)."""
    if configured:
        return configured.encode()
    return hmac.new(admin_token.encode(), b"liveledger client hash", hashlib.sha256).digest()


# One round trip for every claim made while the previous round trip was out (a micro-batch): each
# SET NX GET in order, so two concurrent taps of one client in one batch still get one click. An
# entry "=<click id> <ms>" instead confirms the pending claim "?<click id> <ms>" (its click is in
# Kafka): the value becomes the click id, the expiry stays.
CLAIM_MANY: Final = """
local out = {}
local ttl = ARGV[#ARGV]
for i = 1, #KEYS do
  local v = ARGV[i]
  if string.byte(v, 1) == 61 then
    local rest = string.sub(v, 2)
    if redis.call('GET', KEYS[i]) == '?' .. rest then
      redis.call('SET', KEYS[i], string.match(rest, '^(%S+)'), 'KEEPTTL')
    end
    out[i] = false
  else
    out[i] = redis.call('SET', KEYS[i], v, 'NX', 'GET', 'EX', ttl) or false
  end
end
return out
"""


def pending_claim(click_id: str, at_ms: int) -> str:
    """The value of a claim whose click record is not known to be in Kafka yet."""
    return f"?{click_id} {at_ms}"


def parse_claim(value: str) -> tuple[str, int | None]:
    """(click id, epoch ms of the click while the claim is pending -- ``None`` once confirmed)."""
    if value.startswith("?"):
        click_id, _, at_ms = value[1:].partition(" ")
        return click_id, int(at_ms)
    return value, None

# Compare-and-delete: release a claim only if it is still ours (its click never reached Kafka).
RELEASE_CLAIM: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RepeatGuard:
    """First click id of (link, client) within :data:`REPEAT_WINDOW_S`, kept in Redis.

    Claims are micro-batched: the first claim starts a round trip; claims made while it is out wait
    and go together in the next one (one ``EVALSHA`` of :data:`CLAIM_MANY`). redis-py spends
    ~200 µs of CPU per command; a batch of 8 costs ~30 µs a claim, of 50 ~9 µs (docs/ingest.md)."""

    def __init__(self, redis: Any, prefix: str, window_s: int = REPEAT_WINDOW_S) -> None:
        self.redis = redis
        self.prefix = prefix
        self.window_s = window_s
        self._claim_many = redis.register_script(CLAIM_MANY)
        self._release = redis.register_script(RELEASE_CLAIM)
        self._pending: list[tuple[str, str, asyncio.Future[str | None]]] = []
        self._flushing = False
        self.batches = 0  # round trips made (claims / batches = the batch size)
        self.claims = 0

    def key(self, link_code: str, client: str) -> str:
        return redis_keys.click_repeat(self.prefix, link_code, client)

    async def claim(self, link_code: str, client: str, value: str) -> str | None:
        """``None`` when ``value`` (a :func:`pending_claim`) is now the client's claim on the link; else
        the earlier claim's value (a repeat: :func:`parse_claim`). Raises on Redis errors (the caller
        decides: the click then counts)."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending.append((self.key(link_code, client), value, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def confirm(self, link_code: str, client: str, click_id: str, at_ms: int) -> None:
        """The click record of the pending claim ``(click_id, at_ms)`` is in Kafka. Errors are logged:
        a claim left pending costs at most one more (de-duplicated) write of the same click."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._pending.append((self.key(link_code, client), f"={click_id} {at_ms}", future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        try:
            await future
        except Exception as exc:
            log.warning("could not confirm click claim on %s: %r", link_code, exc)

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                self.batches += 1
                self.claims += sum(1 for _, v, _ in batch if not v.startswith("="))
                # one call per hash slot on a cluster (keys tagged by link shard: redis_keys.click_repeat)
                groups = _by_slot(batch) if is_cluster(self.redis) else [batch]
                await asyncio.gather(*(self._claim_group(group) for group in groups))
        finally:
            self._flushing = False

    async def _claim_group(self, batch: list[tuple[str, str, asyncio.Future[str | None]]]) -> None:
        try:
            priors = await self._claim_many(keys=[k for k, _, _ in batch],
                                            args=[v for _, v, _ in batch] + [self.window_s])
        except Exception as exc:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, _, future), prior in zip(batch, priors, strict=True):
            if not future.done():
                future.set_result(prior.decode() if isinstance(prior, bytes) else (prior or None))

    async def release(self, link_code: str, client: str, value: str) -> None:
        """Undo :meth:`claim` of ``value`` (the click was not written to Kafka): a retry gets a fresh click."""
        try:
            await self._release(keys=[self.key(link_code, client)], args=[value])
        except Exception as exc:  # the claim then expires with its window
            log.warning("could not release click claim on %s: %r", link_code, exc)


def _by_slot(batch: list[tuple[str, str, Any]]) -> list[list[tuple[str, str, Any]]]:
    """The claims grouped by the hash slot of their key (a Lua call on a cluster takes one slot's keys)."""
    groups: dict[int, list[tuple[str, str, Any]]] = {}
    for item in batch:
        groups.setdefault(key_slot(item[0].encode()), []).append(item)
    return list(groups.values())
