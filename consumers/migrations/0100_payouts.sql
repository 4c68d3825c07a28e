-- Payout batches and their items (owned by the read API, api/stores.py; docs/api.md "Payouts").
-- One batch per period_end. Concurrent runs may each write a plan; the winner is the header with
-- the smallest (created_at, plan_id), and only the winner's items count. Items are written before
-- their header, so a visible header always has its items.
CREATE TABLE IF NOT EXISTS {db}.payout_batches (
    payout_id String,
    plan_id String,
    period_end Date,
    created_at DateTime64(3, 'UTC'),
    lines_json String,
    carried_json String
) ENGINE = ReplacingMergeTree
ORDER BY (payout_id, plan_id);

CREATE TABLE IF NOT EXISTS {db}.payout_items (
    payout_id String,
    plan_id String,
    period_end Date,
    brand_id String,
    order_id String,
    creator_id String,
    currency LowCardinality(String),
    amount_minor Int64,
    paid_at DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (creator_id, payout_id, plan_id, brand_id, order_id);
