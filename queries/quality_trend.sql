-- name: quality_trend
-- description: The same field metrics across a source's retained published snapshots, oldest first.
-- params: source:str?, entity:str?, column:str?
-- columns: source_system, snapshot_id, snapshot_at, state, entity, column_name, provided, rows, fill_rate, valid_rate, uniqueness
SELECT source_system, snapshot_id, snapshot_at, state, entity, column_name, provided, rows, fill_rate, valid_rate, uniqueness
FROM field_quality
WHERE state IN ('current', 'previous')
  AND ($source IS NULL OR source_system = $source)
  AND ($entity IS NULL OR entity = $entity)
  AND ($column IS NULL OR column_name = $column)
ORDER BY source_system, snapshot_at, entity, column_name
