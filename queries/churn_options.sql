-- name: churn_options
-- description: The churn page's filter choices: every owner, region and segment among the scored customers.
-- params:
-- columns: kind, value
SELECT DISTINCT 'owner' AS kind, owner AS value FROM churn_scores WHERE owner IS NOT NULL
UNION ALL SELECT DISTINCT 'region', region FROM churn_scores WHERE region IS NOT NULL
UNION ALL SELECT DISTINCT 'segment', segment FROM churn_scores WHERE segment IS NOT NULL
ORDER BY kind, value
