-- The money ledger, produced by the streams ledger agent to the ledger topic and sunk here.
-- orders_ledger: the latest version of every order (attribution + commission); read with FINAL or
-- argMax(..., version). commission_versions: every version (history of attribution/commission changes).
-- via: 'click' | 'coupon' | '' (unattributed). reversed_minor = commission removed by refunds.
-- Absent ids are ''.
CREATE TABLE IF NOT EXISTS {db}.orders_ledger (
    brand_id String,
    order_id String,
    version UInt32,
    occurred_at DateTime64(3, 'UTC'),
    currency LowCardinality(String),
    gross_minor Int64,
    refunded_minor Int64,
    net_minor Int64,
    via LowCardinality(String),
    creator_id String,
    campaign_id String,
    stream_id String,
    click_id String,
    coupon_code String,
    rate_bps UInt32,
    flat_minor Int64,
    hold_days UInt32,
    commission_minor Int64,
    reversed_minor Int64,
    skus Array(String),
    source LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
ORDER BY (brand_id, order_id)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.commission_versions (
    brand_id String,
    order_id String,
    version UInt32,
    occurred_at DateTime64(3, 'UTC'),
    currency LowCardinality(String),
    gross_minor Int64,
    refunded_minor Int64,
    net_minor Int64,
    via LowCardinality(String),
    creator_id String,
    campaign_id String,
    stream_id String,
    click_id String,
    coupon_code String,
    rate_bps UInt32,
    flat_minor Int64,
    hold_days UInt32,
    commission_minor Int64,
    reversed_minor Int64,
    skus Array(String),
    source LowCardinality(String),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (brand_id, order_id, version)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS {db}.refunds (
    brand_id String,
    refund_id String,
    order_id String,
    amount_minor Int64,
    currency LowCardinality(String),
    occurred_at DateTime64(3, 'UTC'),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (brand_id, refund_id)
SETTINGS non_replicated_deduplication_window = 1000;
