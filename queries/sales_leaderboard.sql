-- name: sales_leaderboard
-- description: Won deals and their won-deal amount per sales owner, for deals won in [start, end] (by win date).
-- params: start:date?, end:date?
-- columns: owner, won_deals_by_win_date, won_amount_by_win_date
-- A won deal is a lead with a 'won' event, credited to the lead's owner and counted on the day it was won
-- (the semantic layer's won_deals_by_win_date and won_amount_by_win_date, split by owner; their labels head
-- the columns). The cockpit's won_amount counts the same deals by the lead's creation date instead.
SELECT
    coalesce(owner, '(unassigned)') AS owner,
    count(*) AS won_deals_by_win_date,
    coalesce(sum(won_amount), 0) AS won_amount_by_win_date
FROM lead_facts
WHERE won_at IS NOT NULL
  AND ($start IS NULL OR won_at >= CAST($start AS TIMESTAMP))
  AND ($end IS NULL OR won_at < CAST($end AS TIMESTAMP) + INTERVAL 1 DAY)
GROUP BY 1
ORDER BY won_amount_by_win_date DESC, won_deals_by_win_date DESC, owner
