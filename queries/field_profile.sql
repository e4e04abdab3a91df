-- name: field_profile
-- description: Each source's current snapshot per field: rows, filled rows, fill rate (over the rows the field applies to; none for an optional field), distinct count and example values (masked when personal).
-- params: source:str?
-- columns: source_system, snapshot_id, entity, column_name, rows, filled, applies_when, applies_rows, fill_rate, distinct_values, distinct_exact, examples
SELECT source_system, snapshot_id, entity, column_name, rows, filled, applies_when, applies_rows, fill_rate, distinct_values, distinct_exact, examples
FROM field_quality
WHERE state = 'current'
  AND ($source IS NULL OR source_system = $source)
ORDER BY source_system, entity, column_name
