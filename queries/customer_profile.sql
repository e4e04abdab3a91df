-- name: customer_profile
-- description: One golden customer (without customer_key: the 100 with the highest order revenue): surviving attributes, tags (lifecycle stage, RFM segment, value tier), owner and key figures in the revenue vocabulary.
-- params: customer_key:str?
-- columns: customer_key, name, phone, email, id_number, company, industry, region, city, owner, records, sources, confidence, conflicts, lifecycle_stage, rfm_segment, value_tier, won_amount, won_deals, contract_value, contracts, payments_received, order_revenue, orders, first_order_at, last_order_at, last_contact_at, open_receivables, channels
-- The revenue vocabulary, one term each (the semantic layer's metrics of the same names):
--   won_amount        赢单金额  the won events' amounts of the customer's leads (won_deals of them);
--   contract_value    合同金额  the amounts of the customer's contracts (contracts of them);
--   payments_received 回款      what was paid on those contracts;
--   order_revenue     订单收入  the customer's orders, cancelled and refunded ones left out (orders of them).
-- open_receivables = contract value not yet paid, per contract (an overpaid contract counts 0).
WITH g AS (
    SELECT * FROM customer_golden
    WHERE $customer_key IS NULL OR customer_key = $customer_key
    ORDER BY lifetime_revenue DESC, customer_key
    LIMIT 100
),
recs AS (
    SELECT customer_key, source_system, source_record_id, record_kind FROM identity_links SEMI JOIN g USING (customer_key)
),
-- each won lead's amount as lead_facts takes it (its won events' largest), read from the customer's leads and
-- their stage events: a sales rep sees every lead linked to their customer there, while lead_facts (the
-- cockpit's pipeline) holds only the leads they own
won_events AS (
    SELECT e.lead_id, max(e.amount) AS won_amount
    FROM lead_events AS e SEMI JOIN recs AS r ON r.record_kind = 'lead' AND r.source_record_id = e.lead_id
    WHERE e.stage = 'won'
    GROUP BY e.lead_id
    HAVING count(e.occurred_at) > 0
),
won AS (
    SELECT r.customer_key, round(sum(e.won_amount), 2) AS won_amount, count(*) AS won_deals
    FROM won_events AS e
    JOIN recs AS r ON r.record_kind = 'lead' AND r.source_record_id = e.lead_id
    SEMI JOIN leads AS l ON l.source_system = r.source_system AND l.lead_id = r.source_record_id
    GROUP BY ALL
),
signed AS (
    SELECT r.customer_key, round(sum(k.amount), 2) AS contract_value, count(*) AS contracts,
           round(sum(k.paid_amount), 2) AS payments_received
    FROM contracts AS k
    JOIN recs AS r ON r.record_kind = 'customer' AND r.source_system = k.source_system
        AND r.source_record_id = k.customer_ref
    GROUP BY ALL
)
SELECT g.customer_key, g.name, g.phone, g.email, g.id_number, g.company, g.industry, g.region, g.city, g.owner,
       g.records, g.sources, g.confidence, g.conflicts, g.lifecycle_stage, g.rfm_segment, g.value_tier,
       coalesce(won.won_amount, 0) AS won_amount, coalesce(won.won_deals, 0) AS won_deals,
       coalesce(signed.contract_value, 0) AS contract_value, coalesce(signed.contracts, 0) AS contracts,
       coalesce(signed.payments_received, 0) AS payments_received,
       g.lifetime_revenue AS order_revenue, g.orders, g.first_order_at, g.last_order_at, g.last_contact_at,
       g.open_receivables, g.channels
FROM g
LEFT JOIN won USING (customer_key)
LEFT JOIN signed USING (customer_key)
ORDER BY g.lifetime_revenue DESC, g.customer_key
