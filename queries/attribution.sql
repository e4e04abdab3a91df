-- name: attribution
-- description: Won revenue attributed to channels under five models, for leads won in [start, end].
-- params: start:date?, end:date?, region:str?, owner:str?
-- columns: channel, first_touch, last_touch, linear, u_shaped, time_decay
-- Touches: the lead's own channel plus every interaction of its customer as identity resolution sees
-- it (any source: linked to one of the customer's records or leads) before the won date.
-- Each model's column sums to the total won revenue of the period. With region or owner, only the won
-- leads of that region or owner (the lead's own, as the filter bar's other figures read it) are handed out;
-- their touches stay on every channel.
WITH picked AS (
    SELECT source_system, lead_id
    FROM lead_facts
    WHERE won_at IS NOT NULL
      AND ($region IS NULL OR region = $region)
      AND ($owner IS NULL OR owner = $owner)
)
SELECT
    a.channel,
    sum(a.first_touch) AS first_touch,
    sum(a.last_touch) AS last_touch,
    sum(a.linear) AS linear,
    sum(a.u_shaped) AS u_shaped,
    sum(a.time_decay) AS time_decay
FROM attribution AS a
WHERE ($start IS NULL OR a.won_at >= CAST($start AS TIMESTAMP))
  AND ($end IS NULL OR a.won_at < CAST($end AS TIMESTAMP) + INTERVAL 1 DAY)
  AND (($region IS NULL AND $owner IS NULL)
       OR EXISTS (SELECT 1 FROM picked AS p WHERE p.source_system = a.source_system AND p.lead_id = a.lead_id))
GROUP BY a.channel
ORDER BY linear DESC, a.channel
