-- name: sales_leaderboard
-- description: Won deals and won revenue per sales owner, for deals won in [start, end].
-- params: start:date?, end:date?
-- columns: owner, won_deals, won_revenue
-- A won deal is a lead with a 'won' event, credited to the lead's owner; revenue is its amount.
SELECT
    coalesce(owner, '(unassigned)') AS owner,
    count(*) AS won_deals,
    coalesce(sum(won_amount), 0) AS won_revenue
FROM lead_facts
WHERE won_at IS NOT NULL
  AND ($start IS NULL OR won_at >= CAST($start AS TIMESTAMP))
  AND ($end IS NULL OR won_at < CAST($end AS TIMESTAMP) + INTERVAL 1 DAY)
GROUP BY 1
ORDER BY won_revenue DESC, won_deals DESC, owner
