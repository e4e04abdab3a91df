"""The churn model card in words: which method serves and on what evidence, in zh or en. Light on
purpose (no model libraries), so the churn page can say it without loading scikit-learn."""

from __future__ import annotations

import polars as pl

from dashboard.i18n import sentences, t


def why_serving(card: pl.DataFrame, lang: str) -> str:
    """Which method serves and on what evidence, in words (the model card's serve_reason translated,
    with its numbers): what the churn page and `cockpit churn backtest` say."""
    rows = {r["method"]: r for r in card.iter_rows(named=True)}
    chosen = next((r for r in rows.values() if r["chosen"]), None)
    if chosen is None or not chosen.get("serve_reason"):
        return ""
    recency = rows.get("recency") or {}
    model = rows.get("model") or {}

    def auc(row: dict[str, object]) -> str:
        value = row.get("auc")
        return f"{value:.3f}" if isinstance(value, float) else "—"

    def name(method: str) -> str:  # mid-sentence in English: "recency baseline", but "BG/NBD baseline"
        said = t(f"churn.method.{method}", lang)
        return said[0].lower() + said[1:] if lang == "en" and said[1:2].islower() else said

    # the others beside the chosen one, each by name with its AUC (the chosen one's is {auc}, said once)
    others = ("，" if lang == "zh" else ", ").join(
        f"{name(m)} {auc(r)}" for m, r in rows.items() if m != chosen["method"] and isinstance(r.get("auc"), float)
    )
    text = t(
        f"churn.why.{chosen['serve_reason']}",
        lang,
        method=t(f"churn.method.{chosen['method']}", lang),
        auc=auc(chosen),
        model=auc(model),
        recency=auc(recency),
        others=others,
        windows=f"{model.get('backtest_windows') or 0:,}",
        needed=f"{model.get('backtest_windows_needed') or 0:,}",
    )
    said = [text]
    if chosen["serve_reason"] in ("best_auc", "recency_floor") and model.get("backtest_windows"):
        windows, needed = model["backtest_windows"], model.get("backtest_windows_needed") or 0
        said.append(t("churn.why.windows", lang, windows=f"{windows:,}", needed=f"{needed:,}"))
    trained, horizon = model.get("train_horizon_days"), chosen.get("horizon_days")
    if chosen["method"] == "model" and trained and horizon and trained != horizon:
        said.append(t("churn.why.shorter", lang, train=trained, horizon=horizon))
    return sentences(said, lang)
