-- Retention (contract "Operating it"; docs/api.md "Retention and erasure"): raw events expire
-- LIVELEDGER_EVENTS_RETENTION_DAYS (default 400) days after they were received, and so do dead
-- letters (the raw input that failed validation). The money ledger (orders_ledger,
-- commission_versions, refunds, creator_ledger, order_versions, payout_batches, payout_items) and the
-- setup audit log never expire. `{events_retention_days}` is substituted by consumers/migrate.py from
-- the setting; every later `liveledger migrate` re-applies the TTL when the setting has changed.
ALTER TABLE {db}.events MODIFY TTL toDateTime(received_at) + INTERVAL {events_retention_days} DAY;
ALTER TABLE {db}.dead_letters MODIFY TTL toDateTime(dead_lettered_at) + INTERVAL {events_retention_days} DAY;
