"""Every view the SQL tab lists, each of its fields, and each named query has a name in both languages beside its
identifier."""

from __future__ import annotations

import re

import pytest

from dashboard.query.names import field_name, query_name, view_name
from dashboard.query.warehouse import list_queries, relations

HAN = re.compile(r"[\u4e00-\u9fff]")


def _in(name: str, lang: str) -> bool:
    return bool(HAN.search(name)) or name.isupper() if lang == "zh" else not HAN.search(name)


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_view_and_field_the_sql_tab_lists_is_named(lang: str) -> None:
    unnamed = []
    for relation, columns in relations().items():
        names = {relation: view_name(relation, lang)} | {c: field_name(c, lang, relation) for c in columns}
        # a name is not the identifier again, and reads in the language: Chinese characters in Chinese (AUC, as
        # CRM and SQL, is a word in Chinese too), none in English
        unnamed += [f"{relation}.{i}: {n!r}" for i, n in names.items() if n == i or not _in(n, lang)]
    assert not unnamed, unnamed


def test_names_are_the_pages_words() -> None:
    """A field is called what the pages' columns call it; a derived table and an entity's view by their names."""
    assert (view_name("leads", "zh"), view_name("lead_facts", "zh")) == ("线索", "线索漏斗事实")
    assert (field_name("lead_id", "zh"), field_name("channel", "en")) == ("线索编号", "Channel")
    assert field_name("mql_at", "en") == "Became an MQL"  # a field no page shows


def test_a_column_that_means_another_thing_in_its_table_is_named_for_it() -> None:
    """churn_scores.revenue is the customer's order revenue (the churn list's column), not the won amount the
    funnel's revenue column is: the catalog and the SQL tab call it what the churn page calls it."""
    assert (field_name("revenue", "zh", "churn_scores"), field_name("revenue", "en", "churn_scores")) == (
        "订单收入",
        "Order revenue",
    )
    assert field_name("revenue", "zh") == "赢单金额"  # the pages' revenue column, where no table says otherwise


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_named_query_is_named(lang: str) -> None:
    """What `cockpit query NAME` takes (customer_profile, quality_trend, …) has a name in the language, each its own."""
    names = {q: query_name(q, lang) for q in list_queries()}
    assert len(names) > 20
    assert [f"{q}: {n!r}" for q, n in names.items() if n == q or not _in(n, lang)] == []
    assert len(set(names.values())) == len(names), names  # two queries never read the same on the lineage


def test_a_query_a_page_titles_is_called_by_that_title() -> None:
    assert (query_name("funnel", "zh"), query_name("funnel", "en")) == ("转化漏斗", "Funnel")
    assert (query_name("quality_trend", "zh"), query_name("customer_profile", "en")) == (
        "字段质量趋势",
        "Customer profile",
    )


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_query_never_reads_as_a_table_or_view(lang: str) -> None:
    """The lineage draws each query beside the tables it reads: session 24's walk read filter_options as 筛选项取值,
    the name of filter_values drawn beside it. A query is called by its own words, or by the title of what shows it."""
    tables = {view_name(r, lang): r for r in relations()}
    same = {q: tables[query_name(q, lang)] for q in list_queries() if query_name(q, lang) in tables}
    assert same == {}
    assert query_name("filter_options", lang) != view_name("filter_values", lang)
