-- creator_ledger (0101) gains link_code, for earnings by link: the column, and its materialized
-- view re-created to fill it (rows written before keep '', as their orders_ledger rows do).
ALTER TABLE {db}.creator_ledger ADD COLUMN IF NOT EXISTS link_code String DEFAULT '';
DROP VIEW IF EXISTS {db}.creator_ledger_mv;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.creator_ledger_mv TO {db}.creator_ledger AS
SELECT creator_id, brand_id, order_id, version, occurred_at, currency, gross_minor, refunded_minor, net_minor, via,
       campaign_id, stream_id, click_id, rate_bps, flat_minor, hold_days, commission_minor, reversed_minor, link_code
FROM {db}.orders_ledger WHERE creator_id != '';
