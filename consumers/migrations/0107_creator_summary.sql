-- Per-creator earnings summary (docs/benchmarks.md "Earnings at 10 M ledger rows"; liveledger/storage/summary.py):
-- GET /v1/creators/{id}/earnings reads these few rows for the closed months instead of every order.
--
-- creator_summary: per (creator, month of the order, dim, key, currency, hold days) the totals of
-- the creator's CLICK-attributed orders at their latest version: orders, net, commission, reversed.
-- dim is 'day' (key YYYY-MM-DD), 'campaign', 'stream' or 'link' (rows with key '' are not written).
-- A click attribution is final (docs/money-rules.md), so an order never leaves its rows; a re-send or
-- a refund only changes the values, and a month is rebuilt from creator_ledger (argMax by version)
-- as a whole, so the newest build of a row replaces the older one (ReplacingMergeTree(built_at)):
-- no deltas, nothing double counts. Coupon orders (the only ones that can move to another creator)
-- are never summarized: the reader aggregates them from creator_ledger.
CREATE TABLE IF NOT EXISTS {db}.creator_summary (
    creator_id String,
    month Date,
    dim LowCardinality(String),
    key String,
    currency LowCardinality(String),
    hold_days UInt32,
    orders UInt64,
    net_minor Int64,
    commission_minor Int64,
    reversed_minor Int64,
    built_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(built_at)
ORDER BY (creator_id, month, dim, key, currency, hold_days);

-- creator_summary_dirty: the newest time a click order of (creator, month) was written (every version
-- and re-send), kept by a materialized view of orders_ledger.
CREATE TABLE IF NOT EXISTS {db}.creator_summary_dirty (
    creator_id String,
    month Date,
    marked_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(marked_at)
ORDER BY (creator_id, month);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.creator_summary_dirty_mv TO {db}.creator_summary_dirty AS
SELECT creator_id, toStartOfMonth(occurred_at) AS month, now64(3) AS marked_at
FROM {db}.orders_ledger WHERE creator_id != '' AND via = 'click';

-- creator_summary_builds: a month's summary holds every write marked up to `covers` (written after the
-- month's summary rows). The reader uses a month's rows only when covers >= its newest mark; other
-- months are read from creator_ledger until the sink's summarizer rebuilds them.
CREATE TABLE IF NOT EXISTS {db}.creator_summary_builds (
    creator_id String,
    month Date,
    built_at DateTime64(3, 'UTC'),
    covers DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(built_at)
ORDER BY (creator_id, month);

-- Mark what the sink wrote before this migration (the summarizer then builds it).
INSERT INTO {db}.creator_summary_dirty
SELECT creator_id, toStartOfMonth(occurred_at), now64(3) FROM {db}.orders_ledger
WHERE creator_id != '' AND via = 'click' GROUP BY creator_id, toStartOfMonth(occurred_at);
