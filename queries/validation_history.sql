-- name: validation_history
-- description: Every refresh attempt per source, newest first: outcome, rows, expectations run and failed, review decision.
-- params: source:str?, limit:int?
-- columns: source_system, snapshot_id, finished_at, status, rows, rejected_rows, expectations, failed, failed_blocking, reason, reviewed_by, reviewed_at, review_reason
-- status: published | quarantined | published_anyway | discarded (the last two after a person's review).
SELECT source_system, snapshot_id, finished_at, status, rows, rejected_rows, expectations, failed,
       failed_blocking, reason, reviewed_by, reviewed_at, review_reason
FROM validation_runs
WHERE ($source IS NULL OR source_system = $source)
ORDER BY finished_at DESC, source_system
LIMIT coalesce($limit, 1000)
