"""The Customer 360 page's parts: search results, profile (golden attributes with a source badge
each, tags, owner), key figures, linked source records and the timeline. User text is shown as
plain text or table cells, never as HTML."""

from __future__ import annotations

from typing import Literal

import polars as pl
import streamlit as st

from dashboard.components import data, fmt, labels
from dashboard.components.fmt import NONE, count, money
from dashboard.components.tables import headers
from dashboard.i18n import Lang, t, units_kept
from dashboard.query.search import search_params
from dashboard.query.security import sees_only_own_customers

PAGE = "customer_360"
PARAM = "customer"  # ?customer=<customer_key>
ATTRIBUTES = ("name", "phone", "email", "id_number", "company", "industry", "city", "region", "owner")
# attributes whose values a company names per language ([labels.region], [labels.industry]), as the lists do
NAMED = ("region", "industry")
CATEGORIES = ("lead", "stage", "order", "contract", "payment", "interaction")
DAYS_SHOWN = 14  # timeline days shown at first; a button adds as many older ones
_RESULTS_KEY = "c360_results"
_FOUND_KEY = "_c360_found"  # the listed results' customer keys, for a click on a row


def selected_key() -> str | None:
    key = st.query_params.get(PARAM)
    return key.strip() if key and key.strip() else None


def not_found(key: str, lang: Lang) -> None:
    """No profile for ``key``: a sales rep is told it may be another owner's customer (in the same words whether
    the key exists or not: nothing says which customers exist), anyone else that there is no such customer."""
    said = "c360.not_found.own" if sees_only_own_customers(data.user().role) else "c360.not_found"
    st.warning(t(said, lang, customer=key), icon=":material/person_off:")


def _event_kinds(lang: Lang) -> pl.Expr:
    """A timeline event's kind by its name: a stage change names a funnel stage, the rest an event kind."""
    return (
        pl.when(pl.col("category") == "stage")
        .then(labels.expr("stage", "kind", lang))
        .otherwise(labels.expr("kind", "kind", lang))
        .alias("kind")
    )


def search(lang: Lang) -> None:
    text = st.text_input(
        t("c360.search", lang),
        placeholder=t("c360.search.placeholder", lang),  # short: a phone's field shows it whole
        help=t("c360.search.help", lang),
        key="c360_q",
    )
    if not text.strip():
        return
    found = data.query("customer_search", search_params(text))
    if found.is_empty():
        st.info(t("c360.search.none", lang), icon=":material/search_off:")
        return
    shown = found.with_columns((pl.lit(f"{PAGE}?{PARAM}=") + pl.col("customer_key")).alias("open")).select(
        "open", "name", "phone", "email", "company", "city", "owner", "lifecycle_stage"
    )
    shown = labels.frame(shown, lang)  # the lifecycle stage by its name (活跃客户), not its code (active)
    st.session_state[_FOUND_KEY] = found["customer_key"].to_list()
    st.dataframe(
        shown,
        hide_index=True,
        placeholder="—",
        width="stretch",
        column_config={
            "open": st.column_config.LinkColumn(
                t("c360.col.customer", lang), display_text=rf"{PARAM}=(.*)$", help=t("c360.col.customer.help", lang)
            ),
            **{c: t(f"c360.col.{c}", lang) for c in shown.columns if c != "open"},
        },
        on_select=_open_picked,
        selection_mode="single-row",
        key=_RESULTS_KEY,
    )


def _open_picked() -> None:
    """A click on a result opens that profile in this tab (the key column's link opens a new one)."""
    rows = st.session_state[_RESULTS_KEY].selection.rows
    found = st.session_state.get(_FOUND_KEY) or []
    if rows and rows[0] < len(found):
        st.query_params[PARAM] = found[rows[0]]
        st.session_state["c360_q"] = ""  # the search closes; the profile shows


_RISK_COLORS: dict[str, Literal["red", "orange", "green"]] = {"high": "red", "medium": "orange", "low": "green"}
# (metric, the count its help names): the revenue vocabulary's four terms, in the order money moves
_REVENUE_TERMS = (
    ("won_amount", "won_deals"),
    ("contract_value", "contracts"),
    ("payments_received", None),
    ("order_revenue", "orders"),
)


def header(profile: dict, lang: Lang, churn: pl.DataFrame | None = None) -> None:
    st.subheader(profile["name"] or profile["customer_key"])
    st.caption(t("c360.key", lang, customer=profile["customer_key"], records=profile["records"]))
    tags = st.container(horizontal=True)
    with tags:
        st.badge(labels.value("lifecycle", profile["lifecycle_stage"], lang), icon=":material/flag:", color="blue")
        if profile["rfm_segment"]:
            segment = labels.value("rfm", profile["rfm_segment"], lang)
            st.badge(t("c360.rfm", lang, segment=segment), icon=":material/insights:", color="violet")
        if profile["value_tier"]:
            st.badge(labels.value("value_tier", profile["value_tier"], lang), icon=":material/paid:", color="green")
        if churn is not None and not churn.is_empty():  # the churn scoring covers this customer
            risk = churn.row(0, named=True)
            st.badge(
                labels.value("risk_band", risk["risk_band"], lang),
                icon=":material/trending_down:",
                color=_RISK_COLORS.get(risk["risk_band"], "orange"),
                help=fmt.pct(risk["risk"], 0),
            )
        st.badge(t("c360.owner", lang, owner=profile["owner"] or NONE), icon=":material/badge:", color="gray")


def key_figures(profile: dict, lang: Lang) -> None:
    """The revenue vocabulary, one term each (won-deal amount, contract value, payments received, order
    revenue: the profile query computes each as exactly that), then receivables, last contact, channels."""
    money_row = st.columns(4)
    for col, (metric, n) in zip(money_row, _REVENUE_TERMS, strict=True):
        help_text = t(f"c360.fig.{metric}.help", lang, n=count(profile[n]) if n else "")
        col.metric(t(f"metric.{metric}", lang), money(profile[metric]), help=help_text)
    cols = st.columns(4)
    cols[0].metric(
        t("c360.fig.receivables", lang), money(profile["open_receivables"]), help=t("c360.fig.receivables.help", lang)
    )
    cols[1].metric(t("c360.fig.orders", lang), count(profile["orders"]))
    cols[2].metric(  # dated as the timeline; it counts orders and new leads, the churn reasons interactions only
        t("c360.fig.last_contact", lang),
        fmt.day(profile["last_contact_at"], lang),
        help=t("c360.fig.last_contact.help", lang),
    )
    channels = profile["channels"] or []
    names = ", ".join(labels.value("channel", c, lang) for c in channels)
    cols[3].metric(t("c360.fig.channels", lang), count(len(channels)), help=names or None)


def churn_risk(churn: pl.DataFrame, lang: Lang) -> None:
    """The customer's churn risk band, chance, revenue at risk and place on the warning list, with the
    reasons behind the score (the same words the churn list gives); says so when the scoring leaves them out."""
    st.markdown(f"**{t('c360.risk.title', lang)}**")
    if churn.is_empty():
        st.caption(t("c360.risk.none", lang))
        return
    risk = churn.row(0, named=True)
    own = risk["rank"] != risk["company_rank"]  # a sales rep's own list: their place and the company's
    summary = t(
        "c360.risk.summary.own" if own else "c360.risk.summary",
        lang,
        band=labels.value("risk_band", risk["risk_band"], lang),
        risk=fmt.pct(risk["risk"], 0),
        value=money(risk["expected_value_at_risk"]),
        rank=count(risk["rank"]),
        company_rank=count(risk["company_rank"]),
        through=fmt.data_through(risk["as_of"], lang),
    )
    box = st.container(border=True)
    box.markdown(f":{_RISK_COLORS.get(risk['risk_band'], 'orange')}[{fmt.md_escape(summary)}]")
    reasons = [units_kept(r) for r in (risk["reason_1"], risk["reason_2"], risk["reason_3"]) if r]
    if reasons:  # generated from the customer's figures; escaped all the same
        box.markdown("\n".join(f"- {fmt.md_escape(r)}" for r in reasons))
    else:
        box.caption(t("c360.risk.no_reasons", lang))


def attributes(values: pl.DataFrame, lang: Lang) -> None:
    """One line per golden attribute: its value and a badge naming the source (and snapshot) it came from."""
    st.markdown(f"**{t('c360.attributes', lang)}**")
    for attr in ATTRIBUTES:
        rows = values.filter(pl.col("attribute") == attr)
        chosen = rows.filter(pl.col("chosen"))
        if chosen.is_empty():
            continue
        best = chosen.row(0, named=True)
        label, value, source = st.columns([2, 4, 4], vertical_alignment="center")
        label.text(t(f"c360.col.{attr}", lang))
        value.text(labels.value(attr, best["value"], lang) if attr in NAMED else best["value"])
        with source:
            st.badge(
                labels.value("source", best["source_system"], lang),
                icon=":material/database:",
                help=t("c360.provenance", lang, snapshot=best["snapshot_id"], record=best["source_record_id"]),
            )
            if best["conflict"]:
                st.badge(t("c360.conflict", lang, n=rows.height), icon=":material/warning:", color="orange")
    conflicts = values.filter(pl.col("conflict"))
    if not conflicts.is_empty():
        n = conflicts["attribute"].n_unique()
        with st.expander(t("c360.conflicts.one", lang) if n == 1 else t("c360.conflicts", lang, n=n)):
            shown = conflicts.select(
                "attribute", "value", "chosen", "source_system", "snapshot_id", "sources", "records"
            )
            st.dataframe(
                shown.with_columns(
                    pl.col("attribute").replace_strict({a: t(f"c360.col.{a}", lang) for a in ATTRIBUTES}, default=None),
                    labels.expr("source", "source_system", lang),
                    pl.col("sources").list.eval(
                        pl.element().replace_strict(labels.labels().table("source", lang), default=pl.element())
                    ),
                ),
                hide_index=True,
                placeholder="—",
                width="stretch",
                column_config=headers(shown.columns, lang),
            )


def linked_records(links: pl.DataFrame, lang: Lang) -> None:
    st.markdown(f"**{t('c360.records', lang, n=links.height)}**")
    st.dataframe(
        labels.frame(links, lang).select(
            "source_system", "source_record_id", "record_kind", "match_rule", "confidence"
        ),
        hide_index=True,
        placeholder="—",
        width="stretch",
        column_config={
            "confidence": st.column_config.ProgressColumn(
                t("c360.col.confidence", lang), min_value=0.0, max_value=1.0, format="%.2f"
            ),
            **{c: t(f"c360.col.{c}", lang) for c in ("source_system", "source_record_id", "record_kind", "match_rule")},
        },
    )


def timeline(events: pl.DataFrame, lang: Lang, customer: str = "") -> None:
    """The customer's events by day, newest first: each day a box, each event its time, what happened, the
    detail, the amount and the source system it came from (by its name). The latest days show at first;
    a button shows older ones."""
    st.markdown(f"**{t('c360.timeline', lang)}**")
    present = [c for c in CATEGORIES if c in set(events["category"].to_list())]
    chosen = st.multiselect(
        t("c360.timeline.filter", lang),
        present,
        default=present,
        format_func=lambda c: labels.value("category", c, lang),
        key="c360_categories",
    )
    kinds = sorted(set(events.filter(pl.col("category").is_in(chosen))["kind"].drop_nulls().to_list()))
    stages = set(events.filter(pl.col("category") == "stage")["kind"].to_list())
    picked = st.multiselect(
        t("c360.timeline.kind", lang),
        kinds,
        default=kinds,
        format_func=lambda k: labels.value("stage" if k in stages else "kind", k, lang),
        key="c360_kinds",
    )
    shown = events.filter(pl.col("category").is_in(chosen) & (pl.col("kind").is_in(picked) | pl.col("kind").is_null()))
    by_day = event_lines(shown, lang).group_by("day", maintain_order=True).agg("line")  # newest day first
    st.caption(t("c360.timeline.count", lang, shown=shown.height, total=events.height, days=by_day.height))
    more_key = f"c360_days_{customer}"  # how many days this customer's timeline shows
    limit = st.session_state.get(more_key, DAYS_SHOWN)
    for day, lines in by_day.head(limit).iter_rows():
        with st.container(border=True):
            heading = "c360.timeline.day" if len(lines) > 1 else "c360.timeline.day.one"
            st.markdown(f"**{t(heading, lang, day=fmt.day(day, lang), n=len(lines))}**")
            st.markdown("\n".join(f"- {line}" for line in lines))
    if by_day.height > limit:
        st.caption(t("c360.timeline.days_shown", lang, shown=limit, days=by_day.height))
        if st.button(t("c360.timeline.more", lang), icon=":material/history:", key="c360_more_days"):
            st.session_state[more_key] = limit + DAYS_SHOWN
            st.rerun()


def event_lines(events: pl.DataFrame, lang: Lang) -> pl.DataFrame:
    """Each event as a day and one Markdown line: time (when the source recorded one) · what · kind — detail
    · channel · amount, and a badge naming its source system; every name from the value dictionary, data text
    escaped."""
    named = events.with_columns(
        labels.expr("category", "category", lang),
        _event_kinds(lang),
        pl.when(pl.col("category") == "interaction")
        .then(labels.expr("outcome", "detail", lang))
        .otherwise(pl.col("detail")),
        pl.when(pl.col("channel").is_not_null()).then(labels.expr("channel", "channel", lang)),
        labels.expr("source", "source_system", lang),
    )
    lines = []
    for e in named.iter_rows(named=True):
        when = e["occurred_at"]  # a source that records only the day (orders, stages) has no time to show
        head = [f"**{when:%H:%M}**"] if (when.hour, when.minute, when.second) != (0, 0, 0) else []
        head.append(f"**{fmt.md_escape(e['category'])}**" if not head else fmt.md_escape(e["category"]))
        if e["kind"] and e["kind"] not in (fmt.NONE, e["category"]):
            head.append(fmt.md_escape(e["kind"]))
        line = " · ".join(head)
        tail = [fmt.md_escape(str(v)) for v in (e["detail"], e["channel"]) if v and v != fmt.NONE]
        if e["amount"] is not None:
            tail.append(money(e["amount"]))
        if tail:
            line += " — " + " · ".join(tail)
        lines.append(f"{line} :gray-badge[{fmt.md_escape(e['source_system'])}]")
    return pl.DataFrame(
        {"day": named["occurred_at"].dt.date(), "line": pl.Series(lines, dtype=pl.String)},
        schema={"day": pl.Date, "line": pl.String},
    )
