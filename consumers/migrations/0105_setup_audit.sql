-- The setup audit log (written by the API, api/audit.py; docs/setup.md "Audit log"): one row per
-- setup record a change writes, inserted BEFORE the change goes to the setup topic, so no change
-- exists without its row (a row may record an attempt whose setup write then failed). `before_json`
-- and `after_json` are the entity without secrets ('null' when it did not / no longer exists);
-- `actor` is "admin" or the key's public id, never the key. Never expires. Rows are unique by
-- (at, change_id, seq): a retried insert of the same change is folded by FINAL.
CREATE TABLE IF NOT EXISTS {db}.setup_audit (
    at DateTime64(3, 'UTC'),
    change_id String,
    seq UInt16,
    actor String,
    action LowCardinality(String),
    entity LowCardinality(String),
    entity_id String,
    before_json String,
    after_json String
) ENGINE = ReplacingMergeTree
ORDER BY (at, change_id, seq);
