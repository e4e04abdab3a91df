-- name: churn_model_card
-- description: The churn model card: each method compared on the backtest (AUC, precision in the riskiest 10 %, Brier score, calibration bins), which one serves the scores and why (serve_reason, with the training windows the backtest had and needed), the as-of date, horizon and when it was trained.
-- params:
-- columns: method, chosen, status, auc, precision_top10, brier, as_of, horizon_days, train_cutoff, backtest_cutoff, backtest_customers, backtest_churn_rate, customers_scored, trained_at, notes, calibration_predicted, calibration_observed, calibration_customers, serve_reason, backtest_windows, backtest_windows_needed, train_horizon_days
SELECT
    method, chosen, status, auc, precision_top10, brier, as_of, horizon_days, train_cutoff, backtest_cutoff,
    backtest_customers, backtest_churn_rate, customers_scored, trained_at, notes,
    calibration_predicted, calibration_observed, calibration_customers,
    serve_reason, backtest_windows, backtest_windows_needed, train_horizon_days
FROM churn_model
ORDER BY CASE method WHEN 'model' THEN 1 WHEN 'recency' THEN 2 ELSE 3 END
