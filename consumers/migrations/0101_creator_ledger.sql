-- The latest version of each order per creator, for the earnings endpoint (orders_ledger is sorted by
-- (brand_id, order_id), so one creator's orders would need a full scan). Filled by a materialized view
-- from every orders_ledger insert. An order re-attributed to another creator (only coupon -> click,
-- docs/money-rules.md) keeps a stale row under the former creator: the reader checks such coupon rows
-- against orders_ledger and keeps only orders whose latest version is the creator's.
CREATE TABLE IF NOT EXISTS {db}.creator_ledger (
    creator_id String,
    brand_id String,
    order_id String,
    version UInt32,
    occurred_at DateTime64(3, 'UTC'),
    currency LowCardinality(String),
    gross_minor Int64,
    refunded_minor Int64,
    net_minor Int64,
    via LowCardinality(String),
    campaign_id String,
    stream_id String,
    click_id String,
    rate_bps UInt32,
    flat_minor Int64,
    hold_days UInt32,
    commission_minor Int64,
    reversed_minor Int64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (creator_id, brand_id, order_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.creator_ledger_mv TO {db}.creator_ledger AS
SELECT creator_id, brand_id, order_id, version, occurred_at, currency, gross_minor, refunded_minor, net_minor, via,
       campaign_id, stream_id, click_id, rate_bps, flat_minor, hold_days, commission_minor, reversed_minor
FROM {db}.orders_ledger WHERE creator_id != '';

-- Backfill what the sink wrote before this migration (re-running only adds rows that collapse).
INSERT INTO {db}.creator_ledger
SELECT creator_id, brand_id, order_id, version, occurred_at, currency, gross_minor, refunded_minor, net_minor, via,
       campaign_id, stream_id, click_id, rate_bps, flat_minor, hold_days, commission_minor, reversed_minor
FROM {db}.orders_ledger WHERE creator_id != '';
