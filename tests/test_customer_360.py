"""Customer 360 on the small company: a customer the ERP and the trade show both know, opened by deep
link; its golden record names where each value came from; search finds it however it is typed."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.config import CONFIG_ENV, Settings
from dashboard.customer360 import search_params
from dashboard.warehouse import Warehouse

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
pytestmark = pytest.mark.usefixtures("fresh_caches")


def _key(settings: Settings, source: str, record: str) -> str:
    links = Warehouse(settings).run_query("identity_links", {"source_system": source})
    return links.filter(pl.col("source_record_id") == record)["customer_key"].item()


def test_one_customer_from_two_sources_has_one_key_and_provenance(company: Settings) -> None:
    # ERP customer E0 (张0, 13800138000) and trade-show lead TS-0 (+86 138-0013-8000) are one person
    key = _key(company, "erp", "E0")
    assert _key(company, "trade_show", "TS-0") == key
    w = Warehouse(company)
    attrs = w.run_query("customer_attributes", {"customer_key": key})
    phone = attrs.filter((pl.col("attribute") == "phone") & pl.col("chosen")).row(0, named=True)
    assert phone["value"] == "13800138000" and not phone["conflict"]
    assert sorted(phone["sources"]) == ["erp", "trade_show"]
    # the most recent record wins: the trade-show lead (2026-03-01 09:00) is newer than the ERP record
    assert phone["source_system"] == "trade_show" and phone["snapshot_id"].startswith("20")
    profile = w.run_query("customer_profile", {"customer_key": key}).row(0, named=True)
    assert (profile["orders"], profile["lifetime_revenue"], profile["records"]) == (2, 2400.0, 2)
    assert profile["sources"] == ["erp", "trade_show"] and profile["lifecycle_stage"] in ("active", "lapsed")


@pytest.mark.parametrize("typed", ["+86 138-0013-8000", "0086 13800138000", "138 0013 8000", "张0"])
def test_search_finds_the_customer_however_it_is_typed(company: Settings, typed: str) -> None:
    found = Warehouse(company).run_query("customer_search", search_params(typed))
    assert found["customer_key"][0] == _key(company, "erp", "E0")


def test_deep_link_opens_the_profile_and_timeline(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _key(company, "erp", "E0")
    monkeypatch.setenv(CONFIG_ENV, str(company.base_dir / "cockpit.toml"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["customer"] = key
    at.run()
    if at.sidebar.radio[0].value != "en":
        at.sidebar.radio[0].set_value("en").run()
    at.switch_page("pages/customer_360.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert [s.value for s in at.subheader] == ["张0"]
    figures = {m.label: m.value for m in at.metric}
    assert figures["Orders"] == "2" and figures["Lifetime revenue"] == "¥2,400"
    tables = [pl.from_pandas(d.value) for d in at.dataframe]
    records = next(t for t in tables if "source_record_id" in t.columns)
    assert sorted(records["source_record_id"].to_list()) == ["E0", "TS-0"]
    timeline = next(t for t in tables if "category" in t.columns)
    assert {"Order", "Lead"} <= set(timeline["category"].to_list())
    # filter the timeline to orders only
    at.multiselect(key="c360_categories").set_value(["order"]).run()
    timeline = next(pl.from_pandas(d.value) for d in at.dataframe if "category" in d.value.columns)
    assert set(timeline["category"].to_list()) == {"Order"} and timeline.height == 2
