-- name: identity_consistency
-- description: Per field (phone, email, name): golden customers that two or more sources give it for, and how many conflict.
-- params:
-- columns: field, compared, conflicting, conflict_rate
SELECT field, count(*) AS compared, count(*) FILTER (WHERE conflict) AS conflicting,
       count(*) FILTER (WHERE conflict) / count(*) AS conflict_rate
FROM identity_consistency
GROUP BY field
ORDER BY CASE field WHEN 'phone' THEN 1 WHEN 'email' THEN 2 ELSE 3 END
