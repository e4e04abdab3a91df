-- name: expectation_results
-- description: Each expectation's result in each refresh attempt: suite, column, failing rows and percentage, masked samples.
-- params: source:str?, snapshot_id:str?, failed_only:int?
-- columns: source_system, snapshot_id, finished_at, status, suite, expectation, column_name, success, blocking, element_count, unexpected_count, unexpected_percent, observed, samples
-- failed_only = 1 keeps the failed ones. A source that could not be read has one row with
-- expectation 'read_error' and the reason in observed.
SELECT source_system, snapshot_id, finished_at, status, suite, expectation, column_name, success, blocking,
       element_count, unexpected_count, unexpected_percent, observed, samples
FROM validation_results
WHERE ($source IS NULL OR source_system = $source)
  AND ($snapshot_id IS NULL OR snapshot_id = $snapshot_id)
  AND (coalesce($failed_only, 0) = 0 OR NOT success)
ORDER BY finished_at DESC, source_system, success, blocking DESC, unexpected_count DESC NULLS LAST, suite, expectation
