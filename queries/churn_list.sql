-- name: churn_list
-- description: The churn warning list: customers ranked by expected revenue at risk (risk × their revenue per horizon at their own pace), with their name and company (golden record) and the top three reasons in the chosen language.
-- params: owner:str?, region:str?, segment:str?, band:str?, lang:str?, limit:int?
-- columns: rank, company_rank, customer_key, name, company, owner, region, segment, risk, risk_band, expected_value_at_risk, days_inactive, order_days, order_revenue, reason_1, reason_2, reason_3, consent
-- lang: en or zh (default zh); band: high, medium or low; segment: high, mid, low or none (value tiers of the last year's spend).
-- consent: the golden customer's marketing consent, yes, no or unknown; the page and the reports leave 'no' out of the outreach list.
-- rank: the place among the customers the user sees (a sales rep's own customers: 1, 2, 3, ...; the filters narrow the
-- list, not the numbering); company_rank: the place on the whole company's list (the same for a user who sees all).
WITH seen AS (  -- only the ranks sorted: at 1.3M customers a sort of whole rows took 0.3 s, of ranks 0.08
    SELECT rank AS company_rank, row_number() OVER (ORDER BY rank) AS own_rank FROM churn_scores
)
SELECT
    seen.own_rank AS rank,
    s.rank AS company_rank,
    s.customer_key,
    g.name,
    g.company,
    s.owner,
    s.region,
    s.segment,
    s.risk,
    s.risk_band,
    s.expected_value_at_risk,
    s.days_inactive,
    s.orders AS order_days,  -- days with an order before the as-of date (the model's feature), not orders
    s.revenue AS order_revenue,  -- the customer's orders before the as-of date (订单收入), not won-deal amount
    CASE WHEN $lang = 'en' THEN reasons_en[1] ELSE reasons_zh[1] END AS reason_1,
    CASE WHEN $lang = 'en' THEN reasons_en[2] ELSE reasons_zh[2] END AS reason_2,
    CASE WHEN $lang = 'en' THEN reasons_en[3] ELSE reasons_zh[3] END AS reason_3,
    CASE WHEN g.marketing_consent THEN 'yes' WHEN NOT g.marketing_consent THEN 'no' ELSE 'unknown' END AS consent
FROM churn_scores AS s
JOIN seen ON seen.company_rank = s.rank
LEFT JOIN customer_golden AS g USING (customer_key)
WHERE ($owner IS NULL OR s.owner = $owner)
  AND ($region IS NULL OR s.region = $region)
  AND ($segment IS NULL OR s.segment = $segment)
  AND ($band IS NULL OR s.risk_band = $band)
ORDER BY s.rank
LIMIT coalesce($limit, 1000000000)
