-- creator_summary (0107) keyed without hold_days: one row per (creator, month, dim, key, currency) with
-- the longest hold among its orders (max_hold); the month is all approved once month end + max_hold
-- has passed (api/earnings.py). The summary is derived data: the table is re-created empty and the
-- builds are cleared, so the sink's summarizer rebuilds every marked month (until then the earnings
-- read takes those months from creator_ledger).
DROP TABLE IF EXISTS {db}.creator_summary;
CREATE TABLE IF NOT EXISTS {db}.creator_summary (
    creator_id String,
    month Date,
    dim LowCardinality(String),
    key String,
    currency LowCardinality(String),
    orders UInt64,
    net_minor Int64,
    commission_minor Int64,
    reversed_minor Int64,
    max_hold UInt32,
    built_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(built_at)
ORDER BY (creator_id, month, dim, key, currency);
TRUNCATE TABLE IF EXISTS {db}.creator_summary_builds;
