"""Explore's generated SQL against hand-written SQL on the fixture company, bound filter values under
injection, views round-tripping through their URL token and the saved-views file, the as-of comparison,
and the read-only SQL tab's refusals.

The company (tests/fixture_data.py): 60 leads (CRM 30 owned by rep0/rep1/rep2, trade show 20 of which
one has no channel, web forms 10); CRM-0..5 won 1,000 × (i + 1), TS-0/1 won 500 each, TS-2 lost;
spend: paid search 3,000, trade show 1,000; ERP: 12 customers with 24 orders of ¥1,200.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import polars as pl
import pytest

from dashboard.core.config import Settings
from dashboard.i18n import CATALOG, LANGS
from dashboard.pipeline.refresh import refresh
from dashboard.query.explore import views as explore_views
from dashboard.query.explore.asof import AsOfWarehouse, earlier_snapshots
from dashboard.query.explore.models import (
    MODELS,
    Dim,
    ExploreError,
    Filter,
    Spec,
    build_query,
    compare,
    decode,
    encode,
    pivot,
    shape,
    suggest_chart,
    withheld,
)
from dashboard.query.explore.sql import SqlRefused, readable, run_readonly
from dashboard.query.metrics import Request, ask, value
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse
from tests.test_security import INJECTIONS, UNMASKED

SALES = Principal("sales", "sales", "rep1")
ANALYST = Principal("analyst", "analyst")


@pytest.fixture
def wh(company_served: Warehouse) -> Warehouse:
    """The module's one Warehouse over its copy of the company: these tests only ask (a test that refreshes
    the company takes its own copy and Warehouse)."""
    return company_served


def answer(wh: Warehouse, spec: Spec, user: Principal = SYSTEM) -> Any:
    query = build_query(spec)
    return shape(spec, query, wh.sql(query.sql, query.params, user=user))


def same(generated: pl.DataFrame, hand: pl.DataFrame) -> None:
    """Equal as sets of rows (the column names of the hand-written query are the view's)."""
    hand = hand.rename(dict(zip(hand.columns, generated.columns, strict=True)))
    assert sorted(generated.rows(), key=str) == sorted(hand.rows(), key=str)


# -- a dozen views, each against hand-written SQL ------------------------------------------------
CASES: list[tuple[str, Spec, str]] = [
    (
        "leads per channel",
        Spec("leads", (Dim("channel"),), ("count",)),
        "SELECT channel, count(*) FROM lead_facts GROUP BY channel",
    ),
    (
        "conversion and revenue per channel",
        Spec("leads", (Dim("channel"),), ("conversion_rate", "revenue", "won")),
        "SELECT channel, count(won_at) / count(*), coalesce(sum(won_amount), 0), count(won_at) FROM lead_facts "
        "GROUP BY channel",
    ),
    (
        "paid search per owner",
        Spec("leads", (Dim("owner"),), ("count",), (Filter("channel", "in", ("paid_search",)),)),
        "SELECT owner, count(*) FROM lead_facts WHERE channel = 'paid_search' GROUP BY owner",
    ),
    (
        "week × channel in the first ten days",
        Spec(
            "leads",
            (Dim("created_at", "week"), Dim("channel")),
            ("count",),
            (Filter("created_at", "between", (date(2026, 3, 1), date(2026, 3, 10))),),
        ),
        "SELECT CAST(date_trunc('week', created_at) AS DATE), channel, count(*) FROM lead_facts "
        "WHERE created_at >= DATE '2026-03-01' AND created_at < DATE '2026-03-11' GROUP BY ALL",
    ),
    (
        "distinct customers per source system",
        Spec("leads", (Dim("source_system"),), ("customers",)),
        "SELECT f.source_system, count(DISTINCT l.customer_key) FROM lead_facts AS f JOIN identity_links AS l "
        "ON l.record_kind = 'lead' AND l.source_system = f.source_system AND l.source_record_id = f.lead_id "
        "GROUP BY 1",
    ),
    (
        "orders per month",
        Spec("orders", (Dim("ordered_at", "month"),), ("count", "sum_amount")),
        "SELECT CAST(date_trunc('month', ordered_at) AS DATE), count(*), sum(amount) FROM orders GROUP BY 1",
    ),
    (
        "distinct customers of orders, and their golden city",
        Spec("orders", (Dim("city"),), ("customers", "count")),
        "SELECT g.city, count(DISTINCT l.customer_key), count(*) FROM orders AS o LEFT JOIN identity_links AS l "
        "ON l.record_kind = 'customer' AND l.source_system = o.source_system AND l.source_record_id = o.customer_ref "
        "LEFT JOIN customer_golden AS g ON g.customer_key = l.customer_key GROUP BY 1",
    ),
    (
        "orders of more than 1,000",
        Spec("orders", (Dim("source_system"),), ("count",), (Filter("amount", "between", (1000.5, None)),)),
        "SELECT source_system, count(*) FROM orders WHERE amount >= 1000.5 GROUP BY 1",
    ),
    (
        "customers per churn band",
        Spec("customers", (Dim("risk_band"),), ("count", "avg_risk")),
        "SELECT c.risk_band, count(*), avg(c.risk) FROM customer_golden AS g "
        "LEFT JOIN churn_scores AS c USING (customer_key) GROUP BY 1",
    ),
    (
        "spend per channel",
        Spec("spend", (Dim("channel"),), ("sum_cost", "count")),
        "SELECT channel, sum(cost), count(*) FROM marketing_spend GROUP BY 1",
    ),
    (
        "everyone but rep0 (no owner included), per channel",
        Spec("leads", (Dim("channel"),), ("count",), (Filter("owner", "not_in", ("rep0",)),)),
        "SELECT channel, count(*) FROM lead_facts WHERE owner IS DISTINCT FROM 'rep0' GROUP BY 1",
    ),
    (
        "leads with a region, per region",
        Spec("leads", (Dim("region"),), ("count",), (Filter("region", "not_null"),)),
        "SELECT region, count(*) FROM lead_facts WHERE region IS NOT NULL GROUP BY 1",
    ),
    (
        "channel containing 'SEARCH' (any case), per day",
        Spec("leads", (Dim("created_at", "day"),), ("count",), (Filter("channel", "contains", ("SEARCH",)),)),
        "SELECT CAST(created_at AS DATE), count(*) FROM lead_facts WHERE channel ILIKE '%search%' GROUP BY 1",
    ),
    (
        "interactions per kind (none in the fixture)",
        Spec("interactions", (Dim("kind"),), ("count",)),
        "SELECT kind, count(*) FROM interactions GROUP BY 1",
    ),
]


@pytest.mark.parametrize(("name", "spec", "hand"), CASES, ids=[c[0] for c in CASES])
def test_generated_sql_equals_hand_written(wh: Warehouse, name: str, spec: Spec, hand: str) -> None:
    result = answer(wh, spec)
    same(result.rows, wh.sql(hand, user=SYSTEM))
    whole = wh.sql(f"SELECT * FROM ({hand})", user=SYSTEM)  # the totals are computed, not added up
    if spec.measures == ("count",):
        assert result.totals["count"] == whole[:, -1].sum()


def test_the_numbers_a_person_counts_by_hand(wh: Warehouse) -> None:
    by_channel = dict(answer(wh, Spec("leads", (Dim("channel"),), ("count",))).rows.rows())
    assert by_channel == {"paid_search": 30, "trade_show": 19, "website": 10, "unknown": 1}
    stages = answer(wh, Spec("leads", (Dim("stage"),), ("count",)))
    assert dict(stages.rows.rows()) == {"won": 8, "lost": 1, "opportunity": 4, "lead": 47}
    owners = answer(wh, Spec("leads", (Dim("owner"),), ("count",), (Filter("owner", "not_in", ("rep0",)),)))
    assert owners.totals["count"] == 50  # rep1 + rep2 + the 30 leads without an owner
    totals = answer(wh, Spec("leads", (), ("count", "customers", "conversion_rate", "revenue"))).totals
    assert totals["count"] == 60 and totals["revenue"] == 22_000 and totals["conversion_rate"] == pytest.approx(8 / 60)


def test_roi_matches_the_channel_economics(wh: Warehouse) -> None:
    result = answer(wh, Spec("leads", (Dim("channel"),), ("roi", "revenue")))
    roi = {r["channel"]: r["roi"] for r in result.rows.iter_rows(named=True)}
    assert roi == {"paid_search": 6.0, "trade_show": 0.0, "website": None, "unknown": None}
    assert result.totals["roi"] == pytest.approx(4.5)  # the cockpit's 450%
    economics = wh.run_query("channel_economics", user=SYSTEM)
    assert {r["channel"]: r["roi"] for r in economics.iter_rows(named=True)}["paid_search"] == roi["paid_search"]
    with pytest.raises(ExploreError, match="not by 'owner'"):
        build_query(Spec("leads", (Dim("owner"),), ("roi",)))


def test_roi_leaves_out_the_revenue_of_channels_without_spend_as_the_cockpit_does(company: Settings) -> None:
    """Session 24's walk: Explore's total ROI set every channel's revenue against the spend, the cockpit's
    (and its own help, "over the channels with spend") only that of the channels with spend, so the one
    label showed two numbers. A website lead won for ¥800 (the website has no spend): the cockpit's ROI stays
    (21,000 + 1,000 − 4,000) ÷ 4,000 = 450 %, and so does Explore's, in total and for March."""
    stages = company.base_dir / "imports" / "crm" / "stages.csv"
    stages.write_text(stages.read_text(encoding="utf-8-sig") + "WEB-0,赢单,2026-03-20,800\n", encoding="utf-8-sig")
    assert refresh(company, ["crm"]).exit_code == 0
    wh = Warehouse(company)
    revenue = answer(wh, Spec("leads", (Dim("channel"),), ("revenue",))).rows
    assert dict(revenue.iter_rows())["website"] == 800  # won, on a channel without spend
    cockpit = value(ask(wh, Request.of(["roi"]), SYSTEM), "roi")
    assert cockpit == pytest.approx(4.5)
    assert answer(wh, Spec("leads", (), ("roi",))).totals["roi"] == pytest.approx(cockpit)
    by_channel = answer(wh, Spec("leads", (Dim("channel"),), ("roi", "revenue")))
    assert by_channel.totals["roi"] == pytest.approx(cockpit)
    assert dict(by_channel.rows.select("channel", "roi").iter_rows())["paid_search"] == 6.0
    march = answer(wh, Spec("leads", (Dim("created_at", "month"),), ("roi",)))
    layer_march = ask(wh, Request.of(["roi"], start=date(2026, 3, 1), end=date(2026, 3, 31)), SYSTEM)
    assert march.rows["roi"].to_list() == [pytest.approx(value(layer_march, "roi"))]


def test_a_sales_rep_is_not_shown_the_company_spend_over_their_own_leads() -> None:
    """ROI and spend are company figures for a sales rep (the semantic layer's scope): Explore neither offers
    them nor builds them for the role, so no rep sees company spend set against their own revenue."""
    assert {"roi", "sum_cost"} <= withheld("sales")
    assert not withheld("manager") and not withheld("analyst")
    with pytest.raises(ExploreError, match="company-level figure"):
        build_query(Spec("leads", (Dim("channel"),), ("roi", "revenue")), role="sales")
    with pytest.raises(ExploreError, match="company-level figure"):
        build_query(Spec("spend", (Dim("channel"),), ("sum_cost",)), role="sales")
    assert build_query(Spec("leads", (Dim("channel"),), ("count", "revenue")), role="sales").sql
    assert build_query(Spec("leads", (Dim("channel"),), ("roi",)), role="manager").sql


def test_pivot_spreads_a_dimension_with_computed_totals(wh: Warehouse) -> None:
    spec = Spec("leads", (Dim("channel"), Dim("stage")), ("count",), pivot="stage")
    wide = pivot(answer(wh, spec))
    rows = {r["channel"]: r for r in wide.iter_rows(named=True)}
    assert rows["paid_search"]["won"] == 6 and rows["paid_search"]["opportunity"] == 4
    assert rows["paid_search"]["__total__"] == 30
    assert rows["__total__"]["won"] == 8 and rows["__total__"]["__total__"] == 60
    rate = pivot(answer(wh, Spec("leads", (Dim("channel"), Dim("owner")), ("conversion_rate",), pivot="owner")))
    total = {r["channel"]: r["__total__"] for r in rate.iter_rows(named=True)}
    assert total["__total__"] == pytest.approx(8 / 60) and total["paid_search"] == pytest.approx(0.2)


def test_chart_is_suggested_from_the_shape(wh: Warehouse) -> None:
    def suggested(spec: Spec) -> str:
        return suggest_chart(spec, answer(wh, spec).rows)

    assert suggested(Spec("leads", (Dim("created_at", "week"),), ("count",))) == "line"
    assert suggested(Spec("leads", (Dim("channel"),), ("count",))) == "pie"  # 4 slices of a count
    assert suggested(Spec("leads", (Dim("channel"),), ("conversion_rate",))) == "bar"  # a rate is no pie
    assert suggested(Spec("leads", (Dim("channel"), Dim("owner")), ("count",))) == "stacked"
    assert suggested(Spec("leads", (Dim("created_at", "day"), Dim("channel")), ("count",))) == "line"


# -- injection: every filter type, values bound -----------------------------------------------
@pytest.mark.parametrize("value", INJECTIONS, ids=lambda v: repr(v[:12]))
def test_injection_in_every_filter_type(wh: Warehouse, value: str) -> None:
    def count(*filters: Filter, user: Principal = SYSTEM) -> int:
        return int(answer(wh, Spec("leads", (), ("count",), filters), user).totals["count"])

    assert count(Filter("channel", "in", (value,))) == 0
    assert count(Filter("channel", "not_in", (value,))) == 60
    assert count(Filter("owner", "contains", (value,))) == 0  # '%' and '_' are letters here, not wildcards
    assert count(Filter("owner", "in", (value,)), user=SALES) == 0
    assert count(Filter("owner", "not_in", (value,)), user=SALES) == 10  # only rep1's own, never more
    for column, op in (("won_amount", "between"), ("created_at", "between"), ("phone_valid", "in")):
        values = (value, value) if op == "between" else (value,)
        with pytest.raises(ExploreError, match=f"filter on '{column}'") as err:
            build_query(Spec("leads", (), ("count",), (Filter(column, op, values),)))
        assert "Traceback" not in err.value.message
    with pytest.raises(ExploreError, match="has no"):
        build_query(Spec("leads", (Dim(value),), ("count",)))
    with pytest.raises(ExploreError, match="has no"):
        build_query(Spec("leads", (), ("count",), (Filter(value, "in", ("x",)),)))
    with pytest.raises(ExploreError):
        build_query(Spec("leads", (), ("count",), (Filter("channel", value, ("x",)),)))
    with pytest.raises(ExploreError, match="no measure"):
        build_query(Spec("leads", (), (value,)))
    assert wh.sql("SELECT count(*) FROM leads", user=SYSTEM).item() == 60  # and the tables are intact


def test_views_run_as_the_user(wh: Warehouse) -> None:
    mine = answer(wh, Spec("leads", (Dim("owner"),), ("count",)), SALES)
    assert mine.rows.rows() == [("rep1", 10)] and mine.totals["count"] == 10
    colleague = answer(wh, Spec("leads", (), ("count",), (Filter("owner", "in", ("rep0",)),)), SALES)
    assert colleague.totals["count"] == 0
    with pytest.raises(ExploreError, match="no column 'phone'"):  # personal columns are not offered at all
        build_query(Spec("leads", (), ("count",), (Filter("phone", "contains", ("138",)),)))


# -- views in URLs and in the saved-views file -------------------------------------------------
def test_a_view_reproduces_exactly_from_its_url_token(wh: Warehouse) -> None:
    spec = Spec(
        "leads",
        (Dim("created_at", "month"), Dim("channel")),
        ("count", "conversion_rate"),
        (
            Filter("owner", "not_in", ("rep0", "' OR 1=1 --")),
            Filter("created_at", "between", (date(2026, 3, 1), None)),
            Filter("region", "is_null"),
            Filter("channel", "contains", ("赢单 %",)),
            Filter("won_amount", "between", (0, 1e9)),
        ),
        pivot="channel",
        chart="heatmap",
    )
    token = encode(spec)
    assert token.isascii() and "=" not in token and "/" not in token and "+" not in token
    again = decode(token)
    assert again == spec and again.to_dict() == spec.to_dict()
    assert build_query(again) == build_query(spec)
    assert answer(wh, again).rows.equals(answer(wh, spec).rows)
    for broken in ("", "abc", token[:-5], "eyJtIjoibm9wZSJ9"):  # cut off, or naming no model
        with pytest.raises(ExploreError):
            decode(broken)


def test_saved_views_are_per_user_under_the_data_dir(company: Settings) -> None:
    spec = Spec("orders", (Dim("ordered_at", "week"),), ("sum_amount",), (Filter("amount", "between", (1, None)),))
    explore_views.save_view(company, "li.wei@example.com", "周报 / weekly", spec)
    explore_views.save_view(company, "zhang", "mine", Spec())
    path = explore_views.views_path(company, "li.wei@example.com")
    assert path.parent == company.data_path / "runs" / "explore_views" and path.is_file()
    assert list(explore_views.load_views(company, "li.wei@example.com")) == ["周报 / weekly"]
    assert explore_views.open_view(company, "li.wei@example.com", "周报 / weekly") == decode(encode(spec))
    with pytest.raises(ExploreError, match="no saved view named 'mine'"):
        explore_views.open_view(company, "li.wei@example.com", "mine")
    with pytest.raises(ExploreError, match="give the view a name"):
        explore_views.save_view(company, "zhang", "  ", spec)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ExploreError, match="cannot be read"):
        explore_views.load_views(company, "li.wei@example.com")
    assert explore_views.load_views(company, "zhang") == {"mine": encode(Spec())}


def test_every_model_label_exists_in_both_languages() -> None:
    for lang in LANGS:
        words = CATALOG[lang]
        for model in MODELS.values():
            assert f"explore.model.{model.name}" in words
            for column in model.columns:
                assert f"explore.col.{column}" in words or f"col.{column}" in words, (lang, column)
            for measure in model.measures:
                assert f"explore.measure.{measure}" in words, (lang, measure)


# -- as of an earlier snapshot -----------------------------------------------------------------
def test_compare_a_view_with_an_earlier_snapshot(company: Settings) -> None:
    with open(company.base_dir / "imports" / "web" / "forms.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "WEB-99", "submitted_at": "2026-03-05T10:00:00+08:00", "utm_source": "官网"}\n')
    assert refresh(company, ["web_forms"]).exit_code == 0
    wh = Warehouse(company)
    earlier = earlier_snapshots(wh.store, wh.store.read_manifest())
    assert list(earlier) == ["web_forms"] and len(earlier["web_forms"]) == 1
    then = AsOfWarehouse(company, "web_forms", earlier["web_forms"][0])
    spec = Spec("leads", (Dim("channel"),), ("count",))
    table = compare(answer(wh, spec), answer(then, spec))
    rows = {r["channel"]: r for r in table.iter_rows(named=True)}
    assert (rows["website"]["count"], rows["website"]["count_as_of"], rows["website"]["count_change"]) == (11, 10, 1)
    assert rows["paid_search"]["count_change"] == 0
    assert (rows["__total__"]["count"], rows["__total__"]["count_as_of"]) == (61, 60)
    own = answer(then, Spec("leads", (), ("count",)), SALES)  # the row filter holds in the past too
    assert own.totals["count"] == 10
    with pytest.raises(ExploreError, match="no longer kept"):
        AsOfWarehouse(company, "web_forms", "20200101T000000000Z-dead").sql("SELECT 1", user=SYSTEM)


# -- the SQL tab ---------------------------------------------------------------------------------
REFUSED = {
    "COPY leads TO '/tmp/leads.csv'": "only a SELECT",
    "ATTACH '/tmp/x.duckdb' AS x": "only a SELECT",
    "SELECT * FROM read_csv('/etc/passwd')": "'read_csv' is not allowed",
    "SELECT * FROM read_text('/etc/passwd')": "'read_text' is not allowed",
    "SELECT * FROM '/etc/passwd'": "not a table the role",
    "SELECT * FROM glob('/*')": "'glob' is not allowed",
    "INSTALL httpfs": "only a SELECT",
    "LOAD httpfs": "only a SELECT",
    "SET enable_external_access = true": "only a SELECT",
    "SET search_path = 'base'": "only a SELECT",
    "RESET search_path": "only a SELECT",
    "PRAGMA show_tables": "only a SELECT",
    "CALL pragma_version()": "only a SELECT",
    "CREATE TABLE x AS SELECT 1": "only a SELECT",
    "CREATE VIEW leads2 AS SELECT * FROM base.leads": "only a SELECT",
    "INSERT INTO leads SELECT * FROM leads": "only a SELECT",
    "UPDATE leads SET owner = 'rep1'": "only a SELECT",
    "DELETE FROM leads": "only a SELECT",
    "DROP TABLE leads": "only a SELECT",
    "EXPORT DATABASE '/tmp/db'": "only a SELECT",
    "SET VARIABLE cockpit_owner = 'rep0'": "only a SELECT",
    "SELECT 1; DROP TABLE leads": "only a SELECT",
    "SELECT 1; SELECT 2": "one SELECT statement",
    "SELECT * FROM base.leads": "without a schema",
    "SELECT * FROM memory.base.leads": "without a schema",
    "SELECT * FROM r_admin.leads": "without a schema",
    "SELECT * FROM main.leads": "without a schema",
    "SELECT * FROM base.sales_keys": "without a schema",
    "SELECT * FROM sales_keys": "not a table the role",
    "WITH leads AS (SELECT * FROM base.leads) SELECT * FROM leads": "without a schema",
    "WITH duckdb_settings AS (SELECT * FROM duckdb_settings) SELECT * FROM duckdb_settings": "not a table the role",
    "SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x), duckdb_views": "not a table the role",
    "SELECT * FROM leads WHERE lead_id IN (SELECT lead_id FROM base.leads)": "without a schema",
    "SELECT (SELECT max(phone) FROM r_admin.leads)": "without a schema",
    "SELECT * FROM leads, LATERAL (SELECT * FROM base.leads) AS b": "without a schema",
    "SELECT * FROM leads UNION ALL SELECT * FROM base.leads": "without a schema",
    "SELECT getvariable('cockpit_owner')": "'getvariable' is not allowed",
    "SELECT current_setting('temp_directory')": "'current_setting' is not allowed",
    "SELECT pg_get_viewdef(1)": "'pg_get_viewdef' is not allowed",
    "SELECT main.mask_phone('13800138000')": "without a schema",
    "SELECT * FROM query('SELECT * FROM base.leads')": "'query' is not allowed",
    "SELECT * FROM query_table('base.leads')": "'query_table' is not allowed",
    "SELECT * FROM filtered_leads(NULL, NULL, NULL, NULL, NULL, NULL)": "'filtered_leads' is not allowed",
    "SELECT * FROM duckdb_settings()": "'duckdb_settings' is not allowed",
    "SELECT * FROM duckdb_views": "not a table the role",
    "SELECT * FROM information_schema.tables": "without a schema",
    "SELECT * FROM leads AT (VERSION => 1)": "AT (time travel)",
    "SUMMARIZE leads": "not allowed here",
    "DESCRIBE leads": "not allowed here",
    "EXPLAIN SELECT 1": "only a SELECT",
    "SELECT 1 /*": "cannot be read",
    "SELECT * FROM (SELECT 1) ) UNION (SELECT * FROM base.leads": "cannot be read",
    "": "type a SELECT",
}


@pytest.mark.parametrize("sql", list(REFUSED), ids=lambda s: s[:40])
def test_the_sql_tab_refuses(wh: Warehouse, sql: str) -> None:
    with pytest.raises(SqlRefused, match=re.escape(REFUSED[sql])):
        run_readonly(wh, sql, ANALYST)
    assert wh.sql("SELECT count(*) FROM leads", user=SYSTEM).item() == 60
    assert not (wh.settings.base_dir / "x.duckdb").exists()


def test_the_sql_tab_runs_selects_as_the_user(wh: Warehouse) -> None:
    assert run_readonly(wh, "SELECT count(*) AS n FROM leads;", ANALYST).frame["n"].item() == 60
    phones = run_readonly(wh, "SELECT phone, email FROM leads WHERE phone IS NOT NULL", ANALYST).frame
    assert phones.height == 60 and not any(UNMASKED["phone"].search(p) for p in phones["phone"])
    assert not any(UNMASKED["email"].search(e) for e in phones["email"].drop_nulls())
    # a sales user reaches only their own rows, however the query is written
    for sql in (
        "SELECT DISTINCT owner FROM leads",
        "SELECT DISTINCT owner FROM lead_facts WHERE owner = 'rep0' OR true",
        "WITH x AS (SELECT * FROM leads) SELECT DISTINCT owner FROM x",
        "SELECT DISTINCT owner FROM (SELECT owner FROM lead_facts UNION ALL SELECT owner FROM customer_golden)",
    ):
        owners = run_readonly(wh, sql, SALES).frame["owner"].drop_nulls().to_list()
        assert set(owners) <= {"rep1"}, sql
    recursive = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT sum(n) AS s FROM r"
    assert run_readonly(wh, recursive, ANALYST).frame["s"].item() == 15
    assert "field_quality" not in readable("sales") and "field_quality" in readable("analyst")
    with pytest.raises(SqlRefused, match="'field_quality' is not a table the role 'sales'"):
        run_readonly(wh, "SELECT * FROM field_quality", SALES)


def test_the_sql_tab_limits_rows_and_time(wh: Warehouse) -> None:
    limited = run_readonly(wh, "SELECT * FROM range(50)", ANALYST, max_rows=20)
    assert limited.frame.height == 20 and limited.truncated
    slow = "SELECT count(*) FROM range(100000000) a, range(100000) b"
    with pytest.raises(SqlRefused, match=r"longer than 0\.5 s and was stopped"):
        run_readonly(wh, slow, ANALYST, timeout=0.5)
    assert run_readonly(wh, "SELECT 1 AS one", ANALYST).frame["one"].item() == 1  # the connection still works
