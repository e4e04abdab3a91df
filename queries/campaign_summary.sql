-- name: campaign_summary
-- description: Leads, won deals, revenue, spend and ROI per campaign (drill-down of a channel).
-- params: start:date?, end:date?, channel:str?, region:str?, owner:str?, campaign:str?
-- columns: channel, campaign, leads, won, revenue, cost, roi
WITH l AS (
    SELECT channel, campaign, count(*) AS leads, count(won_at) AS won, coalesce(sum(won_amount), 0) AS revenue
    FROM filtered_leads($start, $end, $channel, $region, $owner, $campaign)
    GROUP BY channel, campaign
),
s AS (
    SELECT channel, campaign, sum(cost) AS cost
    FROM filtered_spend($start, $end, $channel, $campaign)
    GROUP BY ALL
)
SELECT
    coalesce(l.channel, s.channel) AS channel,
    coalesce(l.campaign, s.campaign) AS campaign,
    coalesce(l.leads, 0) AS leads,
    coalesce(l.won, 0) AS won,
    coalesce(l.revenue, 0) AS revenue,
    s.cost,
    CASE WHEN s.cost > 0 THEN (coalesce(l.revenue, 0) - s.cost) / s.cost END AS roi
FROM l
FULL OUTER JOIN s ON s.channel = l.channel AND s.campaign = l.campaign
ORDER BY channel, leads DESC, campaign
