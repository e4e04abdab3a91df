"""The churn page's parts: filters, band tiles, the warning list (a click on a row opens the customer's
Customer 360 profile in the same tab, its link column in a new one), and the model card with its
calibration chart."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import charts, fmt, labels
from dashboard.components.tables import Kind, rounded
from dashboard.components.tiles import detail, show
from dashboard.derived.churn.card import why_serving
from dashboard.i18n import NO_BREAK, UNIT_GAP, heading, t
from dashboard.ops.alerts import own_ranks as own_ranks  # the page and the e-mailed report: one rule

BANDS = ("high", "medium", "low")
SEGMENTS = ("high", "mid", "low", "none")
FILTERS = ("owner", "region", "segment", "band")
PROFILE_PAGE = "customer_360"  # its ?customer=<customer_key> opens one customer's profile
LIST_LIMIT = 2000  # rows shown and exported; the ranking is by expected revenue at risk
# why, who and how much first; a row over 4 rem high lets the grid wrap text (three lines fit). The reasons come
# first because the grid guesses whether a text needs wrapping from the average width of the letters it measured
# before, column by column: after Chinese names and companies it took an English line of reasons for one that fits
# and cut it at the cell's edge; measured first, English reasons wrap, and Chinese text after them too
LIST_FIRST: tuple[str, ...] = ("rank", "company_rank", "reasons", "name", "company", "owner", "region")
LIST_FIRST += ("expected_value_at_risk", "risk_band", "risk", "profile")
REASONS = ("reason_1", "reason_2", "reason_3")  # shown joined in one wrapping column
LIST_ROW_HEIGHT = 72
# the list's numbers as the grid shows them and the export writes them (rounded to what is shown)
RISK_PLACES = 1  # a churn probability's decimals: 12.3%, in the list, its export, the tiles and the card
AUC_PLACES = 3  # AUC and Brier score: three decimals (0.812)
KINDS: dict[str, Kind] = {
    "risk": "pct",
    "expected_value_at_risk": "money",
    "order_revenue": "money",
    "order_days": "count",
}
LIST_HEIGHT = 40 + 8 * LIST_ROW_HEIGHT


def profile_links(column: str) -> pl.Expr:
    """Each customer's Customer 360 link, ``customer_360?customer=<key>``."""
    return pl.concat_str(pl.lit(f"{PROFILE_PAGE}?customer="), pl.col(column))


DIMENSIONS = {"band": "risk_band", "segment": "segment", "region": "region"}


def _label(kind: str, value: str, lang: str) -> str:
    return labels.value(DIMENSIONS[kind], value, lang) if kind in DIMENSIONS else value


def filter_row(options: pl.DataFrame, lang: str) -> dict[str, str | None]:
    """Owner, region, segment and risk band pickers; returns the chosen values (None = all)."""
    choices: dict[str, list[str]] = {
        kind: options.filter(pl.col("kind") == kind)["value"].to_list() for kind in ("owner", "region")
    }
    choices["segment"] = [s for s in SEGMENTS if s in options.filter(pl.col("kind") == "segment")["value"].to_list()]
    choices["band"] = list(BANDS)
    chosen: dict[str, str | None] = {}
    for column, kind in zip(st.columns(len(FILTERS)), FILTERS, strict=True):
        values: list[str | None] = [None, *choices[kind]]

        def label(v: str | None, k: str = kind) -> str:
            return t("filter.all", lang) if v is None else _label(k, v, lang)

        chosen[kind] = column.selectbox(t(f"churn.filter.{kind}", lang), values, format_func=label, key=f"churn_{kind}")
    return chosen


def export_title(chosen: Mapping[str, str | None], lang: str) -> str:
    """The exported sheet's title, naming the filters in force (the list's own export header)."""
    parts = [t("churn.list.title", lang)]
    parts += [f"{t(f'churn.filter.{k}', lang)}: {_label(k, v, lang)}" for k, v in chosen.items() if v is not None]
    return " · ".join(parts)


def in_scope(bands: pl.DataFrame, band: str | None) -> int:
    """Customers the list ranks: the band tiles' sum, or the chosen band's tile (the same filters apply)."""
    return int(bands.filter(pl.col("risk_band") == band)["customers"].sum() if band else bands["customers"].sum())


def list_caption(total: int, listed: int, no_consent: int, band: str | None, lang: str) -> str:
    """How many customers the tiles count, how many the list shows, and where the rest are: listed apart
    for no marketing consent, or past the list's row limit (listed + apart + past = the tiles' count)."""
    scope = t("churn.list.scope.band", lang, band=_label("band", band, lang)) if band else t("churn.list.scope", lang)
    parts = [t("churn.list.caption", lang, listed=fmt.count(listed), total=fmt.count(total), scope=scope)]
    if no_consent:
        parts.append(t("churn.list.apart", lang, n=fmt.count(no_consent)))
    if (beyond := total - listed - no_consent) > 0:
        parts.append(t("churn.list.beyond", lang, n=fmt.count(beyond), limit=fmt.count(LIST_LIMIT)))
    return t("churn.list.join", lang).join(parts)


def band_tiles(bands: pl.DataFrame, lang: str) -> None:
    tiles = [
        detail(
            labels.value("risk_band", row["risk_band"], lang),
            fmt.count(row["customers"]),
            t("churn.at_risk_value", lang, value=fmt.money(row["expected_value_at_risk"])),
        )
        for row in bands.iter_rows(named=True)
    ]
    show(tiles, per_row=3)


def warning_list(frame: pl.DataFrame, lang: str) -> None:
    shown = frame.with_columns(
        profile_links("customer_key").alias("profile"),
        labels.expr("risk_band", "risk_band", lang),
        labels.expr("segment", "segment", lang),
        labels.expr("region", "region", lang),
        labels.expr("consent", "consent", lang),
        pl.concat_list([pl.col(r).str.replace_all(UNIT_GAP, f"${{1}}{NO_BREAK}${{2}}") for r in REASONS])
        .list.drop_nulls()
        .list.join(t("churn.reasons.separator", lang))
        .alias("reasons"),  # a number kept on the line of its unit when the cell wraps (i18n.units_kept)
    )
    first = [c for c in LIST_FIRST if c in shown.columns]
    shown = shown.select(*first, *[c for c in frame.columns if c not in (*first, "customer_key")])
    config: dict[str, Any] = {c: st.column_config.Column(heading(c, lang)) for c in shown.columns}
    if "company_rank" in shown.columns:  # two numbers: say which is which
        for column in ("rank", "company_rank"):
            config[column] = st.column_config.Column(heading(column, lang), help=t(f"churn.{column}.help", lang))
    config["name"] = st.column_config.TextColumn(heading("name", lang), width="small")
    config["company"] = st.column_config.TextColumn(heading("company", lang), width="medium")
    config["reasons"] = st.column_config.TextColumn(t("churn.reasons", lang), width="large")  # wraps in full
    config["profile"] = st.column_config.LinkColumn(
        t("churn.profile", lang), display_text=r"customer=(.*)$", help=t("churn.profile.help", lang)
    )
    shown = shown.with_columns(pl.col("risk") * 100)  # percentage points: the grid's pattern cannot scale
    config["risk"] = st.column_config.ProgressColumn(
        heading("risk", lang), min_value=0.0, max_value=100.0, format=fmt.percent_column(RISK_PLACES)
    )
    config["expected_value_at_risk"] = st.column_config.NumberColumn(
        heading("expected_value_at_risk", lang), format=fmt.column_format("money")
    )
    config["order_revenue"] = st.column_config.NumberColumn(
        t("metric.order_revenue", lang), format=fmt.column_format("money")
    )
    picked = st.dataframe(
        shown,
        hide_index=True,
        placeholder="—",
        width="stretch",
        column_config=config,
        height=LIST_HEIGHT,
        row_height=LIST_ROW_HEIGHT,
        column_order=[c for c in shown.columns if c not in REASONS],
        on_select="rerun",
        selection_mode="single-row",
        key="churn_list",
    )
    rows = picked.selection.rows if picked is not None else []
    if rows:  # a click on a row opens the profile in this tab; the link column opens a new one
        st.switch_page(f"pages/{PROFILE_PAGE}.py", query_params={"customer": frame["customer_key"][rows[0]]})


def export_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The warning list as its export writes it: numbers rounded to what the grid shows (risk 0.123 for
    12.3%), still numbers; the order revenue column under its term's name (订单收入 / Order revenue)."""
    return rounded(frame, KINDS)


def _local(when: datetime | None, tz: str, lang: str) -> str:
    return fmt.NONE if when is None else fmt.day_time(when.astimezone(ZoneInfo(tz)), lang)


def _pct(x: float | None) -> str:
    return fmt.number(x, "pct", RISK_PLACES)


def model_card(card: pl.DataFrame, bands: pl.DataFrame, lang: str, tz: str) -> None:
    """As-of date, horizon, backtest AUC and precision in the top 10 %, the comparison with the two
    baselines, the calibration chart, customers per band, and when it was trained."""
    chosen = card.filter(pl.col("chosen")).row(0, named=True) if card["chosen"].any() else card.row(0, named=True)
    method = chosen["method"]
    st.caption(
        t(
            "churn.card.summary",
            lang,
            method=t(f"churn.method.{method}", lang),
            through=fmt.data_through(chosen["as_of"], lang),
            horizon=chosen["horizon_days"],
            trained=_local(chosen["trained_at"], tz, lang),
        )
    )
    if chosen["status"] == "validated":
        cols = st.columns(4)
        cols[0].metric(t("churn.card.auc", lang), fmt.number(chosen["auc"], "number", AUC_PLACES))
        cols[1].metric(t("churn.card.precision", lang), _pct(chosen["precision_top10"]))
        cols[2].metric(t("churn.card.churn_rate", lang), _pct(chosen["backtest_churn_rate"]))
        cols[3].metric(t("churn.card.backtest_customers", lang), fmt.count(chosen["backtest_customers"]))
        if method != "model":
            st.warning(t("churn.card.baseline_used", lang, method=t(f"churn.method.{method}", lang)))
        else:
            st.success(t("churn.card.model_kept", lang))
        st.markdown(why_serving(card, lang))  # on what evidence: windows, AUCs, the training horizon
        st.caption(
            t(
                "churn.card.backtest",
                lang,
                train=fmt.day(chosen["train_cutoff"], lang),
                test=fmt.day(chosen["backtest_cutoff"], lang),
            )
        )
        comparison = card.select(
            pl.col("method").replace_strict({m: t(f"churn.method.{m}", lang) for m in card["method"]}),
            "auc",
            pl.col("precision_top10") * 100,  # percentage points, for the grid's pattern
            "brier",
            "chosen",
        )
        number = st.column_config.NumberColumn
        st.dataframe(
            comparison,
            hide_index=True,
            placeholder="—",
            width="stretch",
            column_config={
                **{c: heading(c, lang) for c in comparison.columns},
                "auc": number(heading("auc", lang), format=f"%.{AUC_PLACES}f"),
                "precision_top10": number(heading("precision_top10", lang), format=fmt.percent_column(RISK_PLACES)),
                "brier": number(heading("brier", lang), format=f"%.{AUC_PLACES}f"),
            },
        )
        calibration_chart(chosen, lang)
    else:
        st.warning(t("churn.card.unvalidated", lang, horizon=chosen["horizon_days"]))
    counts = " · ".join(
        labels.value("risk_band", r["risk_band"], lang) + " " + fmt.count(r["customers"])
        for r in bands.iter_rows(named=True)
    )
    st.caption(t("churn.card.bands", lang, counts=counts))


def calibration_chart(chosen: Mapping[str, Any], lang: str) -> None:
    predicted, observed = chosen["calibration_predicted"] or [], chosen["calibration_observed"] or []
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=t("churn.card.perfect", lang), line={"dash": "dot"})
    )
    fig.add_trace(
        go.Scatter(x=list(predicted), y=list(observed), mode="lines+markers", name=t("churn.card.observed", lang))
    )
    scale = fmt.axis("pct", RISK_PLACES)  # a probability, written as the list writes a risk
    fig.update_xaxes(title=t("churn.card.predicted_axis", lang), range=[0, 1], **scale)
    fig.update_yaxes(title=t("churn.card.observed_axis", lang), range=[0, 1], **scale)
    charts.show(charts.layout(fig, t("churn.card.calibration", lang), height=360), key="churn_calibration")
