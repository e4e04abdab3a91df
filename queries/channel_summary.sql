-- name: channel_summary
-- description: Leads, won deals, revenue and spend per channel for leads created in [start, end].
-- params: start:date?, end:date?
-- columns: channel, leads, won, conversion_rate, revenue, cost, roi, cost_per_lead
-- A lead is won when it has a 'won' event; revenue is the won event's amount (lead_facts holds
-- both per lead). cost is marketing spend with spend_date in the same period; channels with no
-- spend have empty cost, roi and cost_per_lead (not zero).
WITH per_channel AS (
    SELECT channel, count(*) AS leads, count(won_at) AS won, coalesce(sum(won_amount), 0) AS revenue
    FROM lead_facts
    WHERE ($start IS NULL OR created_at >= CAST($start AS TIMESTAMP))
      AND ($end IS NULL OR created_at < CAST($end AS TIMESTAMP) + INTERVAL 1 DAY)
    GROUP BY channel
),
spend AS (
    SELECT channel, sum(cost) AS cost
    FROM filtered_spend($start, $end, NULL, NULL)
    GROUP BY channel
)
SELECT
    coalesce(p.channel, s.channel) AS channel,
    coalesce(p.leads, 0) AS leads,
    coalesce(p.won, 0) AS won,
    CASE WHEN coalesce(p.leads, 0) > 0 THEN p.won / p.leads END AS conversion_rate,
    coalesce(p.revenue, 0) AS revenue,
    s.cost,
    CASE WHEN s.cost > 0 THEN (coalesce(p.revenue, 0) - s.cost) / s.cost END AS roi,
    CASE WHEN s.cost > 0 AND coalesce(p.leads, 0) > 0 THEN s.cost / p.leads END AS cost_per_lead
FROM per_channel AS p
FULL OUTER JOIN spend AS s ON s.channel = p.channel
ORDER BY leads DESC, channel
