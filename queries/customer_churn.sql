-- name: customer_churn
-- description: A customer's churn risk from the last churn scoring (without customer_key: the 100 riskiest); empty when the scoring does not cover the customer.
-- params: customer_key:str?
-- columns: customer_key, risk, risk_band, expected_value_at_risk
SELECT customer_key, risk, risk_band, expected_value_at_risk
FROM churn_scores
WHERE $customer_key IS NULL OR customer_key = $customer_key
ORDER BY risk DESC, customer_key
LIMIT 100
