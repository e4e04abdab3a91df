"""Customer 360 as a person reads it in Chinese (walked in Chromium, session 17): the search results' lifecycle
stage by its name, not its code."""

from __future__ import annotations

import pytest

from dashboard.core.config import Settings
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
