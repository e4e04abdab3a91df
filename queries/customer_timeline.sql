-- name: customer_timeline
-- description: Everything that happened with one customer (without customer_key: with any) across all sources, newest first: leads, stage changes, orders, contracts, payments and interactions (category interaction; kind is the source's own: call, visit, complaint...).
-- params: customer_key:str?, category:str?, limit:int?
-- columns: occurred_at, category, kind, detail, channel, amount, source_system, record_id
WITH recs AS (
    SELECT source_system, source_record_id, record_kind FROM identity_links WHERE $customer_key IS NULL OR customer_key = $customer_key
),
cust AS (SELECT source_system, source_record_id FROM recs WHERE record_kind = 'customer'),
lds AS (SELECT source_system, source_record_id AS lead_id FROM recs WHERE record_kind = 'lead'),
-- a customer's contracts, read once for their signing and their payment; they carry their customer's key (held in
-- memory by the warehouse): a join on the source keys built a hash table of every contract (~100 ms at large)
ks AS MATERIALIZED (
    SELECT k.* FROM contracts AS k WHERE k.customer_key IS NOT NULL AND ($customer_key IS NULL OR k.customer_key = $customer_key)
),
events AS (
    SELECT l.created_at AS occurred_at, 'lead' AS category, 'lead' AS kind, l.campaign AS detail, l.channel,
           CAST(NULL AS DOUBLE) AS amount, l.source_system, l.lead_id AS record_id
    FROM leads AS l SEMI JOIN lds ON lds.source_system = l.source_system AND lds.lead_id = l.lead_id
    UNION ALL
    -- the funnel of a lead is tracked by lead id, possibly in another system
    SELECT e.occurred_at, 'stage', e.stage, NULL, NULL, e.amount, e.source_system, e.lead_id
    FROM lead_events AS e SEMI JOIN lds ON lds.lead_id = e.lead_id
    UNION ALL
    -- orders carry their customer's key (held in memory by the warehouse): no join on the source keys
    SELECT o.ordered_at, 'order', coalesce(o.status, 'order'), o.product, NULL, o.amount, o.source_system, o.order_id
    FROM orders AS o WHERE o.customer_key IS NOT NULL AND ($customer_key IS NULL OR o.customer_key = $customer_key)
    UNION ALL
    SELECT k.signed_at, 'contract', 'signed', k.contract_id, NULL, k.amount, k.source_system, k.contract_id FROM ks AS k
    UNION ALL
    SELECT k.paid_at, 'payment', 'paid', k.contract_id, NULL, k.paid_amount, k.source_system, k.contract_id FROM ks AS k
    WHERE k.paid_at IS NOT NULL
    UNION ALL
    SELECT i.occurred_at, 'interaction', i.kind, i.outcome, i.channel, NULL, i.source_system, i.interaction_id
    FROM interactions AS i SEMI JOIN cust AS c ON c.source_system = i.source_system AND c.source_record_id = i.customer_ref
    UNION ALL
    SELECT i.occurred_at, 'interaction', i.kind, i.outcome, i.channel, NULL, i.source_system, i.interaction_id
    FROM interactions AS i SEMI JOIN lds ON lds.source_system = i.source_system AND lds.lead_id = i.lead_id
)
-- an interaction linked both through its customer and through its lead is listed once
SELECT DISTINCT occurred_at, category, kind, detail, channel, amount, source_system, record_id
FROM events
WHERE occurred_at IS NOT NULL AND ($category IS NULL OR category = $category)
ORDER BY occurred_at DESC, category, record_id
LIMIT coalesce($limit, 1000)
