-- name: new_leads
-- description: New leads today, this week and this month so far, against the same span of the previous period.
-- params: as_of:date?
-- columns: period, leads, previous_leads, change_rate
-- as_of defaults to today. "week" starts on Monday; the previous week/month covers the same number of days.
WITH d AS (SELECT CAST(coalesce($as_of, current_date) AS TIMESTAMP) AS day),
spans AS (
    SELECT 'today' AS period, 1 AS k, day AS a, day + INTERVAL 1 DAY AS b,
           day - INTERVAL 1 DAY AS pa, day AS pb FROM d
    UNION ALL
    SELECT 'week', 2, date_trunc('week', day), day + INTERVAL 1 DAY,
           date_trunc('week', day) - INTERVAL 7 DAY, day + INTERVAL 1 DAY - INTERVAL 7 DAY FROM d
    UNION ALL
    SELECT 'month', 3, date_trunc('month', day), day + INTERVAL 1 DAY,
           date_trunc('month', day) - INTERVAL 1 MONTH, day + INTERVAL 1 DAY - INTERVAL 1 MONTH FROM d
)
SELECT
    s.period,
    count(*) FILTER (WHERE f.created_at >= s.a AND f.created_at < s.b) AS leads,
    count(*) FILTER (WHERE f.created_at >= s.pa AND f.created_at < s.pb) AS previous_leads,
    CASE WHEN previous_leads > 0 THEN (leads - previous_leads) / previous_leads END AS change_rate
FROM spans AS s
LEFT JOIN lead_facts AS f ON f.created_at >= s.pa AND f.created_at < s.b
GROUP BY s.period, s.k
ORDER BY s.k
