-- name: churn_bands
-- description: Customers and expected revenue at risk per churn risk band (high, medium, low), with the as-of date of the scores; every band is listed, empty ones with 0.
-- params: owner:str?, region:str?, segment:str?
-- columns: risk_band, customers, expected_value_at_risk, as_of
WITH bands(risk_band, band_order) AS (VALUES ('high', 1), ('medium', 2), ('low', 3)),
scored AS (
    SELECT * FROM churn_scores
    WHERE ($owner IS NULL OR owner = $owner)
      AND ($region IS NULL OR region = $region)
      AND ($segment IS NULL OR segment = $segment)
)
SELECT
    b.risk_band,
    count(s.customer_key) AS customers,
    coalesce(sum(s.expected_value_at_risk), 0) AS expected_value_at_risk,
    (SELECT max(as_of) FROM churn_scores) AS as_of
FROM bands AS b
LEFT JOIN scored AS s ON s.risk_band = b.risk_band
GROUP BY b.risk_band, b.band_order
ORDER BY b.band_order
