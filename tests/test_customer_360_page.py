"""Customer 360 as a person reads it in Chinese (walked in Chromium, session 17): the search results' lifecycle
stage by its name, not its code."""

from __future__ import annotations

import pytest

from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.i18n.values import VALUES
from tests.fixture_data import open_app_page

pytestmark = pytest.mark.usefixtures("fresh_caches")


def test_the_search_results_name_each_customers_lifecycle_stage(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_app_page(company, monkeypatch, "customer_360")
    at.sidebar.radio[0].set_value("zh").run()
    at.text_input(key="c360_q").input("张").run()
    assert not at.exception, at.exception
    found = next(d.value for d in at.dataframe if "lifecycle_stage" in d.value.columns)
    names = {text["zh"] for text in VALUES["lifecycle"].values()}
    assert len(found) and set(found["lifecycle_stage"]) <= names | {"—"}, set(found["lifecycle_stage"])


@pytest.mark.parametrize(("attributes", "label"), [(1, "on 1 attribute:"), (2, "on 2 attributes:")])
def test_the_disagreeing_attributes_are_counted_in_good_english(
    small_demo: Settings, monkeypatch: pytest.MonkeyPatch, attributes: int, label: str
) -> None:
    from dashboard.query.security import SYSTEM
    from dashboard.query.warehouse import Warehouse

    sql = f"SELECT min(customer_key) FROM customer_golden WHERE len(conflicts) = {attributes}"
    key = Warehouse(small_demo).sql(sql, user=SYSTEM).item()
    at = open_app_page(small_demo, monkeypatch, "customer_360", {"customer": key})
    expanders = [e.label for e in at.expander if e.label.startswith("Sources disagree")]
    assert len(expanders) == 1 and label in expanders[0] and "(s)" not in expanders[0], expanders


def test_the_last_contact_is_dated_as_the_timeline_dates_it(
    small_demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key figure read 2026-03-27 above a timeline of 2026年3月27日 (the walk, session 19)."""
    from dashboard.components import fmt
    from dashboard.query.security import SYSTEM
    from dashboard.query.warehouse import Warehouse

    key = Warehouse(small_demo).run_query("churn_list", {"limit": 1}, user=SYSTEM)["customer_key"][0]
    profile = Warehouse(small_demo).run_query("customer_profile", {"customer_key": key}, user=SYSTEM).row(0, named=True)
    when = profile["last_contact_at"]
    at = open_app_page(small_demo, monkeypatch, "customer_360", {"customer": key})
    assert {m.label: m.value for m in at.metric}["Last contact"] == fmt.day(when, "en")
    at.sidebar.radio[0].set_value("zh").run()
    assert {m.label: m.value for m in at.metric}[
        t("c360.fig.last_contact", "zh")
    ] == f"{when.year}年{when.month}月{when.day}日"
