-- name: attribution
-- description: Won revenue attributed to channels under five models, for leads won in [start, end].
-- params: start:date?, end:date?
-- columns: channel, first_touch, last_touch, linear, u_shaped, time_decay
-- Touches: the lead's own channel plus every interaction of its customer as identity resolution sees
-- it (any source: linked to one of the customer's records or leads) before the won date.
-- Each model's column sums to the total won revenue of the period.
SELECT
    channel,
    sum(first_touch) AS first_touch,
    sum(last_touch) AS last_touch,
    sum(linear) AS linear,
    sum(u_shaped) AS u_shaped,
    sum(time_decay) AS time_decay
FROM attribution
WHERE ($start IS NULL OR won_at >= CAST($start AS TIMESTAMP))
  AND ($end IS NULL OR won_at < CAST($end AS TIMESTAMP) + INTERVAL 1 DAY)
GROUP BY channel
ORDER BY linear DESC, channel
