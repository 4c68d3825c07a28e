-- The tracking link an order is attributed through: the coupon's link, or the link of a redirect
-- click ('' for a player click or an unattributed order). For earnings and conversion per link.
ALTER TABLE {db}.orders_ledger ADD COLUMN IF NOT EXISTS link_code String DEFAULT '';
ALTER TABLE {db}.commission_versions ADD COLUMN IF NOT EXISTS link_code String DEFAULT '';
