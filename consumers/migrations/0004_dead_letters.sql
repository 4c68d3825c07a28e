-- Dead letters (the dlq topic) for reconciliation and inspection. idx = index of the event inside an
-- events batch, -1 for a whole record. One row per (source topic, partition, offset, idx): read with FINAL.
CREATE TABLE IF NOT EXISTS {db}.dead_letters (
    source_topic String,
    source_partition UInt16,
    source_offset UInt64,
    idx Int32,
    reason LowCardinality(String),
    detail String,
    key String,
    payload String,
    dead_lettered_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (source_topic, source_partition, source_offset, idx)
SETTINGS non_replicated_deduplication_window = 1000;
