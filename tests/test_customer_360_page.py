"""Customer 360 as a person reads it in Chinese (walked in Chromium, session 17): the search results' lifecycle
stage by its name, not its code."""

from __future__ import annotations

import pytest

from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.i18n.values import VALUES
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.fixture_data import open_app_page

pytestmark = pytest.mark.usefixtures("fresh_caches")


def test_the_search_results_name_each_customers_lifecycle_stage(
    company_read: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app_page(company_read, monkeypatch, "customer_360")
    at.sidebar.radio[0].set_value("zh").run()
    at.text_input(key="c360_q").input("张").run()
    assert not at.exception, at.exception
    found = next(d.value for d in at.dataframe if "lifecycle_stage" in d.value.columns)
    names = {text["zh"] for text in VALUES["lifecycle"].values()}
    assert len(found) and set(found["lifecycle_stage"]) <= names | {"—"}, set(found["lifecycle_stage"])


@pytest.mark.parametrize(("attributes", "label"), [(1, "on 1 attribute:"), (2, "on 2 attributes:")])
def test_the_disagreeing_attributes_are_counted_in_good_english(
    small_demo: Settings, demo_served: Warehouse, monkeypatch: pytest.MonkeyPatch, attributes: int, label: str
) -> None:
    sql = f"SELECT min(customer_key) FROM customer_golden WHERE len(conflicts) = {attributes}"
    key = demo_served.sql(sql, user=SYSTEM).item()
    at = open_app_page(small_demo, monkeypatch, "customer_360", {"customer": key})
    expanders = [e.label for e in at.expander if e.label.startswith("Sources disagree")]
    assert len(expanders) == 1 and label in expanders[0] and "(s)" not in expanders[0], expanders


def test_the_last_contact_is_dated_as_the_timeline_dates_it(
    small_demo: Settings, demo_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key figure read 2026-03-27 above a timeline of 2026年3月27日 (the walk, session 19)."""
    from dashboard.components import fmt

    key = demo_served.run_query("churn_list", {"limit": 1}, user=SYSTEM)["customer_key"][0]
    profile = demo_served.run_query("customer_profile", {"customer_key": key}, user=SYSTEM).row(0, named=True)
    when = profile["last_contact_at"]
    at = open_app_page(small_demo, monkeypatch, "customer_360", {"customer": key})
    assert {m.label: m.value for m in at.metric}[t("c360.fig.last_contact", "en")] == fmt.day(when, "en")
    at.sidebar.radio[0].set_value("zh").run()
    assert {m.label: m.value for m in at.metric}[
        t("c360.fig.last_contact", "zh")
    ] == f"{when.year}年{when.month}月{when.day}日"


def test_the_last_touch_names_what_it_counts_beside_reasons_that_count_interactions_only(
    small_demo: Settings, demo_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Session 24's walk: one profile read 最近接触 2026-05-28 above the reason "no interaction for 355 days": the
    tile takes new leads and orders too, the reason interactions only. The tile now says what it counts, and its
    help says what the reasons count, in zh and en."""
    import polars as pl

    wh = demo_served
    listed = wh.run_query("churn_list", {"lang": "en"}, user=SYSTEM)
    said = pl.concat_str("reason_1", "reason_2", "reason_3", separator=" | ", ignore_nulls=True)
    quiet = listed.filter(said.str.contains("interaction"))["customer_key"].to_list()
    key = next(  # a customer whose reasons speak of interactions, and whose tile reads another day than the last one
        k
        for k in quiet
        if wh.sql(LAST_INTERACTION, {"k": k}, user=SYSTEM).item()
        != wh.run_query("customer_profile", {"customer_key": k}, user=SYSTEM)["last_contact_at"].item()
    )
    at = open_app_page(small_demo, monkeypatch, "customer_360", {"customer": key})
    for lang, words in (("en", ("interaction", "order", "lead")), ("zh", ("互动", "下单", "线索"))):
        at.sidebar.radio[0].set_value(lang).run()
        tile = next(m for m in at.metric if m.label == t("c360.fig.last_contact", lang))
        assert all(w in tile.label for w in words), tile.label
        assert tile.label not in ("Last contact", "最近接触")  # what the walk read, beside the reasons
        reasons = ("churn reasons", "interaction records only") if lang == "en" else ("流失原因", "只计互动记录")
        assert all(w in tile.proto.help for w in reasons), tile.proto.help


LAST_INTERACTION = """
SELECT max(i.occurred_at) FROM interactions AS i
JOIN identity_links AS l ON l.record_kind = 'customer' AND l.source_system = i.source_system
    AND l.source_record_id = i.customer_ref
WHERE l.customer_key = $k
"""
