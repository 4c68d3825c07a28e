-- Event facts: one row per accepted view / click / add_to_cart (written by `python -m consumers clickhouse`
-- from the events topic; invalid events are in dead_letters instead). Re-inserted rows collapse on the
-- sorting key: read with FINAL (or count DISTINCT event_id) for exact numbers regardless of merge timing.
-- Absent ids are '' (not NULL).
CREATE TABLE IF NOT EXISTS {db}.events (
    brand_id String,
    stream_id String,
    occurred_at DateTime64(3, 'UTC'),
    event_id String,
    type LowCardinality(String),
    viewer_id String,
    product_id String,
    action LowCardinality(String),
    campaign_id String,
    creator_id String,
    link_code String,
    batch_id String,
    received_at DateTime64(3, 'UTC'),
    source_partition UInt16,
    source_offset UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (brand_id, stream_id, occurred_at, event_id)
SETTINGS non_replicated_deduplication_window = 1000;
