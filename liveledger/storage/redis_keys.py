"""The Redis key layout of the live state (read by the API; documented in docs/stream-processing.md,
"Redis key layout", and docs/scaling.md, "Redis Cluster").

Every key starts with the settings' ``topic_prefix`` (``ll`` in production), so a test with a fresh
topic prefix also gets a fresh Redis namespace.

**Hash slots.** Every key one source partition's step writes carries the partition's hash tag
``{<prefix>:<partition>}`` (:func:`part_tag`): ``ll:{ll:3}:live:<stream>:counts``. The fence of the
partition (``offsets``), its state, outbox and stats, and every aggregate its records change (a
brand's records are all in one partition: Kafka key ``brand_id``) therefore hash to one slot, so each
Lua step -- fence check, de-dup, counters, fence move -- stays one atomic call on Redis Cluster too,
and the same names serve a single Redis. A reader finds a brand's (or its stream's) keys at
:func:`brand_partition` (Kafka's default partitioner: murmur2 of the key); aggregates that span brands
(a creator's earnings) are kept per partition and read as the sum over all partitions.
"""

from __future__ import annotations

import zlib

from aiokafka.partitioner import murmur2

DEDUP_TTL_S = 8 * 24 * 3600  # event-id de-dup horizon: 8 days (> Shopify 48 h, Stripe 3 days)
REPEAT_SHARDS = 16  # click_repeat keys: hash tags per link-code shard (the ingest batches claims per slot)


def brand_partition(brand_id: str, partitions: int) -> int:
    """The partition of ``ll.events`` / ``ll.orders`` that holds ``brand_id``'s records: what the
    producers' default partitioner (aiokafka, like Kafka's Java client) picks for the key ``brand_id``."""
    return (int(murmur2(brand_id.encode())) & 0x7FFFFFFF) % partitions


def part_tag(p: str, part: int) -> str:
    """``<prefix>:{<prefix>:<partition>}``: the start of every key of one source partition (one hash slot)."""
    return f"{p}:{{{p}:{part}}}"


def stream_counts(p: str, part: int, stream_id: str) -> str:
    """HASH views, clicks, add_to_carts, orders, peak_viewers, updated_at (epoch ms),
    ``gmv|<CUR>`` (net minor units of orders attributed through this stream's clicks).
    ``part``: the partition of the stream's brand (so for every ``stream_*`` key)."""
    return f"{part_tag(p, part)}:live:{stream_id}:counts"


def stream_viewers(p: str, part: int, stream_id: str) -> str:
    """SET of viewer ids that sent a view (exact unique viewers: SCARD)."""
    return f"{part_tag(p, part)}:live:{stream_id}:viewers"


def stream_now(p: str, part: int, stream_id: str) -> str:
    """ZSET viewer → epoch ms of the viewer's last join/heartbeat (viewers who left are removed)."""
    return f"{part_tag(p, part)}:live:{stream_id}:now"


def stream_left(p: str, part: int, stream_id: str) -> str:
    """ZSET viewer → epoch ms of the viewer's last leave (so a late heartbeat does not revive them)."""
    return f"{part_tag(p, part)}:live:{stream_id}:left"


def stream_products(p: str, part: int, stream_id: str) -> str:
    """HASH ``clicks|<product_id>``, ``orders|<product_id>`` and ``revenue|<product_id>|<CUR>`` (Σ
    quantity x unit price of that product's lines in orders attributed through the stream's clicks,
    before order-level discounts and refunds: the contract's ``line_revenue``)."""
    return f"{part_tag(p, part)}:live:{stream_id}:products"


def stream_channel(p: str, stream_id: str) -> str:
    """Pub/sub channel: a JSON ``{stream_id, updated_at}`` is published after a change (coalesced).
    Channels are not keys: a PUBLISH reaches the subscribers of every node of a cluster."""
    return f"{p}:live:{stream_id}"


def creator_earnings(p: str, part: int, creator_id: str) -> str:
    """HASH ``<CUR>|orders``, ``<CUR>|net_minor``, ``<CUR>|commission_minor``, ``<CUR>|reversed_minor``
    of the creator's orders with the brands of partition ``part``; the creator's totals are the sum
    over every partition (:func:`creator_earnings_keys`)."""
    return f"{part_tag(p, part)}:creator:{creator_id}:earnings"


def creator_earnings_keys(p: str, partitions: int, creator_id: str) -> list[str]:
    return [creator_earnings(p, part, creator_id) for part in range(partitions)]


def creator_by_campaign(p: str, part: int, creator_id: str) -> str:
    """HASH ``<campaign_id>|<CUR>|<field>`` with the fields of :func:`creator_earnings` (per partition)."""
    return f"{part_tag(p, part)}:creator:{creator_id}:by_campaign"


def creator_by_stream(p: str, part: int, creator_id: str) -> str:
    """HASH ``<stream_id>|<CUR>|<field>`` (orders attributed through a click of that stream; per partition)."""
    return f"{part_tag(p, part)}:creator:{creator_id}:by_stream"


def creator_conversion(p: str, part: int, brand_id: str, creator_id: str) -> str:
    """HASH: one creator's live conversion funnel with one brand (contract "Per-creator conversion,
    live"). Fields, each also per dimension with the prefix ``stream|<id>|``, ``campaign|<id>|``,
    ``link|<code>|`` or ``day|<YYYY-MM-DD>|`` (the click's / the order's UTC day): ``clicks``
    (counted clicks, written by the live path), ``orders``, ``click_orders``, ``coupon_orders``,
    ``gmv|<CUR>`` (net after refunds) and ``commission|<CUR>`` (current commission, all statuses)
    of the attributed orders (written by the ledger path); plus
    ``last_order_at`` (epoch ms of the latest attributed order) and ``updated_at`` (epoch ms of the
    last change), not per dimension. ``part``: the brand's partition."""
    return f"{part_tag(p, part)}:conv:{brand_id}:{creator_id}"


def brand_creators(p: str, part: int, brand_id: str) -> str:
    """SET of the creators that have a :func:`creator_conversion` hash with ``brand_id``."""
    return f"{part_tag(p, part)}:convidx:{brand_id}"


def conversion_channel(p: str, brand_id: str) -> str:
    """Pub/sub channel: a JSON ``{brand_id, updated_at}`` after a change of one of the brand's
    :func:`creator_conversion` hashes (coalesced, like :func:`stream_channel`)."""
    return f"{p}:convch:{brand_id}"


def brand_sales(p: str, part: int, brand_id: str) -> str:
    """HASH ``<CUR>|orders``, ``<CUR>|net_minor`` (all orders), ``<CUR>|attributed_orders``,
    ``<CUR>|attributed_net_minor``, ``<CUR>|commission_minor``."""
    return f"{part_tag(p, part)}:brand:{brand_id}:sales"


def order_contribution(p: str, part: int, brand_id: str, order_id: str) -> str:
    """STRING JSON: the order snapshot last applied to the aggregates (with its version)."""
    return f"{part_tag(p, part)}:order:{brand_id}:{order_id}"


def dedup(p: str, part: int, brand_id: str, event_id: str) -> str:
    """STRING with TTL :data:`DEDUP_TTL_S`: event id seen (view/click/add_to_cart)."""
    return f"{part_tag(p, part)}:dedup:{brand_id}:{event_id}"


def offsets(p: str, part: int, consumer: str) -> str:
    """HASH ``<topic>:<partition>`` → last Kafka offset whose effects are applied (the fence), for the
    topics' partition ``part`` (the ledger fences ``ll.events`` and ``ll.orders`` of one partition in one hash)."""
    return f"{part_tag(p, part)}:offsets:{consumer}"


def ledger_state(p: str, partition: int, table: str) -> str:
    """HASH ``<brand_id>:<id>`` → JSON: the ledger consumer's state of one source partition, one hash per
    table (``clicks``, ``orders``, ``waiting``, ``seen``; layouts in :mod:`streams.ledger`)."""
    return f"{part_tag(p, partition)}:lstate:{table}"


def ledger_entry(p: str, partition: int, table: str, key: str) -> str:
    """STRING JSON with a TTL (liveledger/storage/retention.py): one expiring ledger state entry of a
    source partition (tables ``clicks``, ``waiting``, ``seen``, and ``pending``: an order state whose
    order has not arrived yet), named after :func:`ledger_state` so it shares the partition's slot."""
    return f"{ledger_state(p, partition, table)}:{key}"


def ledger_outbox(p: str, partition: int) -> str:
    """LIST of JSON records (ledger facts, dead letters) committed with the partition's last step and
    not yet known to be in Kafka; re-sent by whoever owns the partition next."""
    return f"{part_tag(p, partition)}:loutbox"


def stats(p: str, part: int | None = None) -> str:
    """HASH of counters: events_received/accepted/deduplicated/dead_lettered, orders_*, refunds_*,
    ``dlq|<reason>``, dlq_records. The stream steps of partition ``part`` count in its own hash;
    ``part`` None: the hash of the counters written outside them (ingest). The totals are the sum
    over :func:`stats_keys`."""
    return f"{p}:stats" if part is None else f"{part_tag(p, part)}:stats"


def stats_keys(p: str, partitions: int) -> list[str]:
    return [stats(p), *(stats(p, part) for part in range(partitions))]


def repeat_shard(link_code: str) -> int:
    return zlib.crc32(link_code.encode()) % REPEAT_SHARDS


def click_repeat(p: str, link_code: str, client_hash: str) -> str:
    """STRING: the first click id of a client (keyed hash of IP + User-Agent) on a link, for the
    contract's 1-hour repeat window (ingest: ``SET NX GET EX 3600``; expires with the window). Hash
    tag ``{<prefix>:r<shard of the link>}``: a batch of claims is one call per slot on a cluster."""
    return f"{p}:{{{p}:r{repeat_shard(link_code)}}}:clickrep:{link_code}:{client_hash}"
