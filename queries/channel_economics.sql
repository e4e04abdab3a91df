-- name: channel_economics
-- description: Spend, leads, cost per lead, won deals, customer acquisition cost, revenue and ROI per channel.
-- params: start:date?, end:date?, channel:str?, region:str?, owner:str?, campaign:str?
-- columns: channel, spend, leads, cost_per_lead, won, cac, revenue, roi
-- Spend is filtered by date, channel and campaign (spend has no region or owner). A channel with
-- no spend shows its revenue and empty ratios, never a zero.
WITH l AS (
    SELECT channel, count(*) AS leads, count(won_at) AS won, coalesce(sum(won_amount), 0) AS revenue
    FROM filtered_leads($start, $end, $channel, $region, $owner, $campaign)
    GROUP BY channel
),
s AS (
    SELECT channel, sum(cost) AS spend
    FROM filtered_spend($start, $end, $channel, $campaign)
    GROUP BY channel
)
SELECT
    coalesce(l.channel, s.channel) AS channel,
    s.spend,
    coalesce(l.leads, 0) AS leads,
    CASE WHEN s.spend > 0 AND l.leads > 0 THEN s.spend / l.leads END AS cost_per_lead,
    coalesce(l.won, 0) AS won,
    CASE WHEN s.spend > 0 AND l.won > 0 THEN s.spend / l.won END AS cac,
    coalesce(l.revenue, 0) AS revenue,
    CASE WHEN s.spend > 0 THEN (coalesce(l.revenue, 0) - s.spend) / s.spend END AS roi
FROM l
FULL OUTER JOIN s ON s.channel = l.channel
ORDER BY revenue DESC, channel
