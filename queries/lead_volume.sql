-- name: lead_volume
-- description: New leads per channel per day / week / month, with the change against the previous period.
-- params: grain:str?, start:date?, end:date?, channel:str?, region:str?, owner:str?, campaign:str?
-- columns: period, channel, leads, previous_leads, change_rate
-- grain is day, week or month (default month). change_rate is empty when the previous period had none.
WITH g AS (
    SELECT CASE WHEN $grain IN ('day', 'week') THEN $grain ELSE 'month' END AS grain
),
days AS (  -- per day first: truncating a few thousand days is cheaper than truncating every lead
    SELECT CAST(created_at AS DATE) AS day, channel, count(*) AS leads
    FROM filtered_leads($start, $end, $channel, $region, $owner, $campaign)
    GROUP BY ALL
),
buckets AS (
    SELECT CAST(date_trunc((SELECT grain FROM g), day) AS DATE) AS period, channel, sum(leads)::BIGINT AS leads
    FROM days
    GROUP BY ALL
)
SELECT
    b.period,
    b.channel,
    b.leads,
    coalesce(p.leads, 0) AS previous_leads,
    CASE WHEN p.leads > 0 THEN (b.leads - p.leads) / p.leads END AS change_rate
FROM buckets AS b
LEFT JOIN buckets AS p
  ON p.channel = b.channel
 AND p.period = CAST(b.period - CASE (SELECT grain FROM g)
                                   WHEN 'day' THEN INTERVAL 1 DAY
                                   WHEN 'week' THEN INTERVAL 7 DAY
                                   ELSE INTERVAL 1 MONTH END AS DATE)
ORDER BY b.period, b.leads DESC, b.channel
