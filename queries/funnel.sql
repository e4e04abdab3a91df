-- name: funnel
-- description: Leads reaching each funnel stage per channel and overall ('(all)'), step and overall conversion, median days spent in each stage.
-- params: start:date?, end:date?, channel:str?, region:str?, owner:str?, campaign:str?
-- columns: channel, stage, stage_order, leads_reached, step_conversion, overall_conversion, median_days_in_stage
-- A stage is reached when it or a later one was recorded. Days in a stage: from reaching it to
-- reaching the next, over the leads that moved on (empty for won).
WITH agg AS (
    SELECT
        coalesce(channel, '(all)') AS channel,
        [count(*), count(mql_at), count(sql_at), count(opportunity_at), count(won_at)] AS reached,
        [
            CAST(median(days_in_lead) AS DOUBLE),
            CAST(median(days_in_mql) AS DOUBLE),
            CAST(median(days_in_sql) AS DOUBLE),
            CAST(median(days_in_opportunity) AS DOUBLE),
            NULL
        ] AS days
    FROM filtered_leads($start, $end, $channel, $region, $owner, $campaign)
    GROUP BY GROUPING SETS ((channel), ())
)
SELECT
    a.channel,
    s.stage,
    s.k AS stage_order,
    a.reached[s.k + 1] AS leads_reached,
    CASE WHEN s.k = 0 THEN 1.0 ELSE a.reached[s.k + 1] / nullif(a.reached[s.k], 0) END AS step_conversion,
    a.reached[s.k + 1] / nullif(a.reached[1], 0) AS overall_conversion,
    a.days[s.k + 1] AS median_days_in_stage
FROM agg AS a
CROSS JOIN (VALUES (0, 'lead'), (1, 'mql'), (2, 'sql'), (3, 'opportunity'), (4, 'won')) AS s(k, stage)
ORDER BY a.channel = '(all)' DESC, a.reached[1] DESC, a.channel, s.k
