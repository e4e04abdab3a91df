"""Churn warnings: features per customer and cutoff, the model and its baselines, reasons in words, the build
that scores everyone.
"""

from __future__ import annotations

# The tables build.py writes, and their columns (also when no build exists yet); here, not in build.py,
# so the serving side learns the schema without importing the model's libraries.
TABLES: dict[str, dict[str, str]] = {
    # churn warnings (build.py): one row per customer with activity before the as-of date
    "churn_scores": {
        "rank": "BIGINT",
        "customer_key": "VARCHAR",
        "owner": "VARCHAR",
        "region": "VARCHAR",
        "segment": "VARCHAR",
        "risk": "DOUBLE",
        "risk_band": "VARCHAR",
        "expected_value_at_risk": "DOUBLE",
        "value_at_stake": "DOUBLE",
        "last_activity_at": "TIMESTAMP",
        "days_inactive": "BIGINT",
        "orders": "BIGINT",
        "revenue": "DOUBLE",
        "reason_codes": "VARCHAR[]",
        "reasons_zh": "VARCHAR[]",
        "reasons_en": "VARCHAR[]",
        "as_of": "DATE",
        "method": "VARCHAR",
    },
    # the churn model card: one row per method compared on the backtest (chosen = the one serving)
    "churn_model": {
        "method": "VARCHAR",
        "auc": "DOUBLE",
        "precision_top10": "DOUBLE",
        "brier": "DOUBLE",
        "chosen": "BOOLEAN",
        "status": "VARCHAR",
        "as_of": "DATE",
        "horizon_days": "BIGINT",
        "notes": "VARCHAR",
        "train_cutoff": "DATE",
        "backtest_cutoff": "DATE",
        "backtest_customers": "BIGINT",
        "backtest_churn_rate": "DOUBLE",
        "customers_scored": "BIGINT",
        "trained_at": "TIMESTAMPTZ",
        "calibration_predicted": "DOUBLE[]",  # the backtest's customers in ten equal bins of predicted risk
        "calibration_observed": "DOUBLE[]",
        "calibration_customers": "BIGINT[]",
        # why the chosen method serves, the same on every row: a code the UI translates (build.SERVE_REASONS)
        "serve_reason": "VARCHAR",
        "backtest_windows": "BIGINT",  # customer windows this method's backtest fit was trained on
        "backtest_windows_needed": "BIGINT",  # below this the model's backtest is thin and it may not serve
        "train_horizon_days": "BIGINT",  # the horizon this method was trained on (the model's may be shorter)
    },
}
