-- name: customer_churn
-- description: A customer's churn risk from the last churn scoring, with the reasons behind it (without customer_key: the 100 riskiest); empty when the scoring does not cover the customer.
-- params: customer_key:str?, lang:str?
-- columns: customer_key, rank, company_rank, risk, risk_band, expected_value_at_risk, days_inactive, reason_1, reason_2, reason_3, as_of
-- lang: en or zh (default zh), the language of the reasons; rank is the customer's place on the churn list as the user
-- sees it (churn_list's rank: among a sales rep's own customers), company_rank on the whole company's.
-- The customers are picked first and ranked after: each one's rank counts the rows up to it, once per row returned
-- (counted for every customer before the limit, the 100 riskiest of 50,000 took 17 s).
WITH picked AS (
    SELECT *
    FROM churn_scores
    WHERE $customer_key IS NULL OR customer_key = $customer_key
    ORDER BY risk DESC, customer_key
    LIMIT 100
)
SELECT customer_key,
       (SELECT count(*) FROM churn_scores AS seen WHERE seen.rank <= s.rank) AS rank,
       rank AS company_rank,
       risk, risk_band, expected_value_at_risk, days_inactive,
       CASE WHEN $lang = 'en' THEN reasons_en[1] ELSE reasons_zh[1] END AS reason_1,
       CASE WHEN $lang = 'en' THEN reasons_en[2] ELSE reasons_zh[2] END AS reason_2,
       CASE WHEN $lang = 'en' THEN reasons_en[3] ELSE reasons_zh[3] END AS reason_3,
       as_of
FROM picked AS s
ORDER BY risk DESC, customer_key
