-- name: quality_heatmap
-- description: Fill rate, validity and uniqueness of every field of every source's current snapshot, with flags.
-- params: source:str?, fill_threshold:float?, validity_threshold:float?, uniqueness_threshold:float?
-- columns: source_system, entity, column_name, source_column, provided, is_key, personal, rows, filled, applies_when, applies_rows, applies_filled, fill_rate, checked, invalid, valid_rate, distinct_values, distinct_exact, uniqueness, fill_flag, valid_flag, unique_flag, empty_samples, invalid_samples, duplicate_samples
-- Metrics were computed when each snapshot was published (field_quality). A field is judged only when
-- the source provides it (mapped, a constant, required, or filled); its fill rate is over the rows it applies
-- to (applies_when, e.g. "stage = won": applies_filled of applies_rows; null: every row). Thresholds default to 0.8 / 0.9 / 1.0;
-- uniqueness is flagged on record keys only. Sample values are masked where the field is personal.
SELECT
    source_system, entity, column_name, source_column, provided, is_key, personal,
    rows, filled, applies_when, applies_rows, applies_filled, fill_rate, checked, invalid, valid_rate, distinct_values, distinct_exact, uniqueness,
    coalesce(provided AND fill_rate < coalesce($fill_threshold, 0.8), false) AS fill_flag,
    coalesce(provided AND valid_rate < coalesce($validity_threshold, 0.9), false) AS valid_flag,
    coalesce(is_key AND uniqueness < coalesce($uniqueness_threshold, 1.0), false) AS unique_flag,
    empty_samples, invalid_samples, duplicate_samples
FROM field_quality
WHERE state = 'current'
  AND ($source IS NULL OR source_system = $source)
ORDER BY source_system, entity, column_name
