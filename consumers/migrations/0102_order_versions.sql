-- The newest ledger version of every order, narrow and finely indexed, so the earnings reader can
-- check whether a creator's coupon-attributed orders were re-attributed since (coupon -> later
-- click, docs/money-rules.md) with point lookups instead of a FINAL read of orders_ledger.
CREATE TABLE IF NOT EXISTS {db}.order_versions (
    brand_id String,
    order_id String,
    version UInt32,
    creator_id String
) ENGINE = ReplacingMergeTree(version)
ORDER BY (brand_id, order_id)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.order_versions_mv TO {db}.order_versions AS
SELECT brand_id, order_id, version, creator_id FROM {db}.orders_ledger;

INSERT INTO {db}.order_versions
SELECT brand_id, order_id, version, creator_id FROM {db}.orders_ledger;
