-- name: data_health
-- description: A 0–100 health score per source and one overall row (source_system = '(all)').
-- params:
-- columns: source_system, health_score, completeness, validity, conformance, last_status, last_attempt_at
-- health_score = 100 × (0.4 × completeness + 0.3 × validity + 0.3 × conformance), where
--   completeness = mean fill rate of the fields the source provides (current snapshot; each over the rows it
--                  applies to, field_quality.applies_when; an optional field, "never", has none and is left out),
--   validity     = mean valid share of its fields with a format check (phone, email, ID number, dates),
--   conformance  = share of expectations passed in its latest refresh attempt (0 when it could not be read).
-- A source without a published snapshot counts 0 for completeness and validity. '(all)' is the mean of the sources.
WITH fields AS (
    SELECT source_system,
           avg(fill_rate) FILTER (WHERE provided) AS completeness,
           coalesce(avg(valid_rate) FILTER (WHERE provided AND valid_rate IS NOT NULL), 1.0) AS validity
    FROM field_quality
    WHERE state = 'current'
    GROUP BY source_system
),
latest AS (
    SELECT source_system, status, finished_at,
           CASE WHEN expectations > 0 THEN (expectations - failed) / expectations ELSE 0.0 END AS conformance
    FROM validation_runs
    QUALIFY row_number() OVER (PARTITION BY source_system ORDER BY finished_at DESC, snapshot_id DESC) = 1
),
per_source AS (
    SELECT coalesce(f.source_system, l.source_system) AS source_system,
           coalesce(f.completeness, 0.0) AS completeness,
           CASE WHEN f.source_system IS NULL THEN 0.0 ELSE f.validity END AS validity,
           coalesce(l.conformance, 1.0) AS conformance,
           l.status AS last_status,
           l.finished_at AS last_attempt_at
    FROM fields AS f
    FULL OUTER JOIN latest AS l ON l.source_system = f.source_system
),
scored AS (
    SELECT *, round(100 * (0.4 * completeness + 0.3 * validity + 0.3 * conformance), 1) AS health_score
    FROM per_source
)
SELECT source_system, health_score, completeness, validity, conformance, last_status, last_attempt_at
FROM scored
UNION ALL
SELECT '(all)', round(avg(health_score), 1), avg(completeness), avg(validity), avg(conformance),
       NULL, max(last_attempt_at)
FROM scored
HAVING count(*) > 0
ORDER BY source_system = '(all)' DESC, health_score, source_system
