"""Customer 360 on the small company: a customer the ERP and the trade show both know, opened by deep
link; its golden record names where each value came from; search finds it however it is typed."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.core.config import CONFIG_ENV, Settings, load_settings
from dashboard.pipeline.refresh import refresh
from dashboard.query.search import search_params
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse, bind_params, load_query
from tests.fixture_data import open_app_page

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
pytestmark = pytest.mark.usefixtures("fresh_caches")


def _key(settings: Settings, source: str, record: str) -> str:
    links = Warehouse(settings).run_query("identity_links", {"source_system": source}, user=SYSTEM)
    return links.filter(pl.col("source_record_id") == record)["customer_key"].item()


def test_one_customer_from_two_sources_has_one_key_and_provenance(company: Settings) -> None:
    # ERP customer E0 (张0, 13800138000) and trade-show lead TS-0 (+86 138-0013-8000) are one person
    key = _key(company, "erp", "E0")
    assert _key(company, "trade_show", "TS-0") == key
    w = Warehouse(company)
    attrs = w.run_query("customer_attributes", {"customer_key": key}, user=SYSTEM)
    phone = attrs.filter((pl.col("attribute") == "phone") & pl.col("chosen")).row(0, named=True)
    assert phone["value"] == "13800138000" and not phone["conflict"]
    assert sorted(phone["sources"]) == ["erp", "trade_show"]
    # the most recent record wins: the trade-show lead (2026-03-01 09:00) is newer than the ERP record
    assert phone["source_system"] == "trade_show" and phone["snapshot_id"].startswith("20")
    profile = w.run_query("customer_profile", {"customer_key": key}, user=SYSTEM).row(0, named=True)
    assert (profile["orders"], profile["lifetime_revenue"], profile["records"]) == (2, 2400.0, 2)
    assert profile["sources"] == ["erp", "trade_show"] and profile["lifecycle_stage"] in ("active", "lapsed")


@pytest.mark.parametrize("typed", ["+86 138-0013-8000", "0086 13800138000", "138 0013 8000", "张0"])
def test_search_finds_the_customer_however_it_is_typed(company: Settings, typed: str) -> None:
    found = Warehouse(company).run_query("customer_search", search_params(typed), user=SYSTEM)
    assert found["customer_key"][0] == _key(company, "erp", "E0")


# name, pinyin, phone, email, company, lifetime revenue
PEOPLE = [
    ("王小明", "wangxiaoming", "13800000001", "xm@a.cn", "明远科技有限公司", 100.0),
    ("王小敏", "wangxiaomin", "13800000002", None, None, 300.0),  # one character off 王小明
    ("李大伟", "lidawei", "13800000003", None, "大伟商贸", 900.0),  # same length, nothing alike
    ("Zhang Wei", "zhangwei", "13800000004", None, None, 50.0),
]


def _search(typed: str) -> list[str]:
    """The names customer_search lists, best first, over PEOPLE as the golden customers."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE customer_index (customer_key VARCHAR, name VARCHAR, name_pinyin VARCHAR, phone VARCHAR, "
        "email VARCHAR, company VARCHAR, city VARCHAR, owner VARCHAR, lifecycle_stage VARCHAR, "
        "lifetime_revenue DOUBLE)"
    )
    con.executemany(
        "INSERT INTO customer_index VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?)",
        [[f"C{i}", *person] for i, person in enumerate(PEOPLE)],
    )
    con.execute(
        "CREATE TABLE customer_lookup AS SELECT 'phone' AS attribute, '13900000009' AS value, 'C2' AS customer_key"
    )
    query = load_query("customer_search")
    return [row[1] for row in con.sql(query.sql, params=bind_params(query, search_params(typed))).fetchall()]


@pytest.mark.parametrize(
    ("typed", "names"),
    [
        ("王小明", ["王小明", "王小敏"]),  # the exact name first, the name one character off after it
        ("王小名", ["王小明", "王小敏"]),  # a typo: the homophone first, one character off next; never 李大伟
        ("wang xiaoming", ["王小明", "王小敏"]),  # pinyin, spaces ignored; a near spelling after it
        ("zhang wei", ["Zhang Wei"]),
        ("明远科技", ["王小明"]),  # part of the company
        ("0001", ["王小明"]),  # the end of a phone
        ("139-0000-0009", ["李大伟"]),  # a phone of a linked record, not the surviving one
        ("XM@A.CN", ["王小明"]),
        ("C3", ["Zhang Wei"]),  # the customer key
        ("赵钱孙", []),
    ],
)
def test_search_scores_exact_then_typos_and_leaves_the_unrelated_out(typed: str, names: list[str]) -> None:
    assert _search(typed) == names


def test_a_masked_role_searches_and_sees_masked_phones(company: Settings) -> None:
    w = Warehouse(company)
    key = _key(company, "erp", "E0")
    found = w.run_query("customer_search", search_params("张0"), Principal("m", "manager"))
    assert found.filter(pl.col("customer_key") == key)["phone"].item() == "138****8000"
    # the copy masked at build is read as the phone, never under its own name
    assert "phone_masked" not in w.sql("SELECT * FROM customer_index LIMIT 1", user=Principal("m", "manager")).columns
    assert w.run_query("customer_search", search_params("张0"), user=SYSTEM)["phone"][0] == "13800138000"


def test_deep_link_opens_the_profile_and_timeline(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _key(company, "erp", "E0")
    at = open_app_page(company, monkeypatch, "customer_360", {"customer": key})
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


def _survive_by_priority(company: Settings, erp: int, crm: int) -> Settings:
    """The company with ERP customer E1 merged by hand with CRM lead CRM-1 (another phone), golden
    values chosen by source priority first, and these priorities; refreshed."""
    (company.base_dir / "overrides.csv").write_text(
        "action,source_system,source_record_id,other_source_system,other_source_record_id\nmerge,erp,E1,crm,CRM-1\n",
        encoding="utf-8",
    )
    cfg = company.base_dir / "cockpit.toml"
    text = cfg.read_text(encoding="utf-8")
    for source, priority in (("erp", erp), ("crm", crm)):
        text = text.replace(f'name = "{source}"\n', f'name = "{source}"\npriority = {priority}\n', 1)
    text += '\n[identity]\noverrides = "overrides.csv"\nsurvivorship = ["priority", "recent", "complete"]\n'
    cfg.write_text(text, encoding="utf-8")
    settings = load_settings(cfg)
    assert refresh(settings).exit_code == 0
    return settings


@pytest.mark.parametrize(
    ("erp", "crm", "winner", "phone"), [(1, 50, "erp", "13800138001"), (50, 1, "crm", "13900130001")]
)
def test_the_source_with_priority_gives_the_golden_phone(
    company: Settings, erp: int, crm: int, winner: str, phone: str
) -> None:
    settings = _survive_by_priority(company, erp, crm)
    key = _key(settings, "erp", "E1")
    assert _key(settings, "crm", "CRM-1") == key
    phones = Warehouse(settings).run_query(
        "customer_attributes", {"customer_key": key, "attribute": "phone"}, user=SYSTEM
    )
    assert sorted(phones["value"].to_list()) == ["13800138001", "13900130001"]  # the conflict stays visible
    chosen = phones.filter(pl.col("chosen")).row(0, named=True)
    assert (chosen["value"], chosen["source_system"], chosen["conflict"]) == (phone, winner, True)
    profile = Warehouse(settings).run_query("customer_profile", {"customer_key": key}, user=SYSTEM).row(0, named=True)
    assert profile["phone"] == phone and "phone" in profile["conflicts"]


def test_the_profile_shows_the_churn_risk_of_a_scored_customer(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored = Warehouse(company).run_query("customer_churn", user=SYSTEM).row(0, named=True)  # the riskiest customer
    monkeypatch.setenv(CONFIG_ENV, str(company.base_dir / "cockpit.toml"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["customer"] = scored["customer_key"]
    at.run()
    if at.sidebar.radio[0].value != "en":
        at.sidebar.radio[0].set_value("en").run()
    at.switch_page("pages/customer_360.py").run()
    assert not at.exception, at.exception
    label = {"high": "High risk", "medium": "Medium risk", "low": "Low risk"}[scored["risk_band"]]
    assert any(label in m.value for m in at.markdown), [m.value for m in at.markdown]


def test_a_merged_away_key_still_opens_its_customer(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    before = {r: _key(company, s, r) for s, r in (("erp", "E1"), ("crm", "CRM-1"))}
    assert before["E1"] != before["CRM-1"]
    settings = _survive_by_priority(company, 1, 50)  # E1 and CRM-1 merged by the override file
    merged = _key(settings, "erp", "E1")
    gone = next(k for k in before.values() if k != merged)
    w = Warehouse(settings)
    assert w.run_query("customer_profile", {"customer_key": gone}, user=SYSTEM).is_empty()
    assert w.run_query("customer_redirect", {"customer_key": gone}, user=SYSTEM)["customer_key"].to_list() == [merged]
    assert w.run_query(
        "customer_redirect", {"customer_key": merged}, user=SYSTEM
    ).is_empty()  # a live key is not redirected
    assert w.run_query("customer_redirect", user=SYSTEM)["old_key"].to_list() == [gone]  # the whole list: just this one

    at = open_app_page(settings, monkeypatch, "customer_360", {"customer": gone})
    assert [i.value for i in at.info] == [f"Customer {gone} was merged into {merged}: showing {merged}."]
    assert not [w.value for w in at.warning if "No customer" in w.value]
    assert at.query_params["customer"] == merged
    records = next(pl.from_pandas(d.value) for d in at.dataframe if "source_record_id" in d.value.columns)
    assert {"CRM-1", "E1"} <= set(records["source_record_id"].to_list())  # both halves of the merge
