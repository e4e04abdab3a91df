-- name: receivables_overdue
-- description: Contracts past their due date with an unpaid amount, as of a date.
-- params: as_of:date?
-- columns: contracts, customers, overdue_amount
-- as_of defaults to today; unpaid = amount − paid_amount (a missing paid_amount counts as nothing paid).
SELECT
    count(*) AS contracts,
    count(DISTINCT source_system || ':' || customer_ref) AS customers,
    coalesce(sum(amount - coalesce(paid_amount, 0)), 0) AS overdue_amount
FROM contracts
WHERE due_date < CAST(coalesce($as_of, current_date) AS TIMESTAMP)
  AND amount - coalesce(paid_amount, 0) > 0
