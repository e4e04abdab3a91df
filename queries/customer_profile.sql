-- name: customer_profile
-- description: One golden customer (without customer_key: the 100 with the highest lifetime revenue): surviving attributes, tags (lifecycle stage, RFM segment, value tier), owner and key figures.
-- params: customer_key:str?
-- columns: customer_key, name, phone, email, id_number, company, industry, region, city, owner, records, sources, confidence, conflicts, lifecycle_stage, rfm_segment, value_tier, lifetime_revenue, orders, first_order_at, last_order_at, last_contact_at, open_receivables, channels
SELECT customer_key, name, phone, email, id_number, company, industry, region, city, owner, records, sources,
       confidence, conflicts, lifecycle_stage, rfm_segment, value_tier, lifetime_revenue, orders, first_order_at,
       last_order_at, last_contact_at, open_receivables, channels
FROM customer_golden
WHERE $customer_key IS NULL OR customer_key = $customer_key
ORDER BY lifetime_revenue DESC, customer_key
LIMIT 100
