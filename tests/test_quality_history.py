"""Validation history, health scores and cross-source consistency, as the data-quality page reads them."""

from __future__ import annotations

import polars as pl
import pytest

from dashboard.core.config import Settings
from dashboard.core.store import Store
from dashboard.pipeline.data_docs import site_dir, site_status
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse


def _break_crm_phones(settings: Settings) -> str:
    """Every CRM lead phone unreadable: the blocking phone expectation fails on all 20 rows."""
    rows = "".join(f"CRM-{i},2026-03-01,SEM,call me {i}\n" for i in range(20))
    (settings.base_dir / "imports" / "crm" / "leads.csv").write_text("Lead ID,Created,Source,Mobile\n" + rows)
    [crm] = refresh(settings, ["crm"]).sources
    assert crm.status == "quarantined"
    return crm.snapshot_id


def test_a_quarantined_snapshot_is_in_the_history_with_its_failed_expectation(company: Settings) -> None:
    sid = _break_crm_phones(company)
    wh = Warehouse(company)
    history = wh.run_query("validation_history", {"source": "crm"}, user=SYSTEM)
    assert history["status"].to_list() == ["quarantined", "published"]  # newest first
    latest = history.row(0, named=True)
    assert latest["snapshot_id"] == sid and latest["failed_blocking"] == 1
    assert "expect_column_values_to_match_regex on column 'phone': 20 rows failed (100.0%)" in latest["reason"]
    assert "call me" not in latest["reason"]  # sample values stay out of the one-line reason
    failed = wh.run_query("expectation_results", {"source": "crm", "snapshot_id": sid, "failed_only": 1}, user=SYSTEM)
    blocking = failed.filter(pl.col("blocking")).row(0, named=True)
    assert (blocking["suite"], blocking["expectation"], blocking["column_name"]) == (
        "leads",
        "expect_column_values_to_match_regex",
        "phone",
    )
    assert (blocking["unexpected_count"], blocking["unexpected_percent"]) == (20, 100.0)
    assert blocking["samples"] and all(s.startswith("c***") for s in blocking["samples"])  # masked


def test_an_unreadable_source_is_in_the_history_with_its_reason(company: Settings) -> None:
    (company.base_dir / "imports" / "crm" / "leads.csv").write_bytes(b"")
    refresh(company, ["crm"])
    failed = Warehouse(company).run_query("expectation_results", {"source": "crm", "failed_only": 1}, user=SYSTEM)
    error = failed.row(0, named=True)
    assert error["expectation"] == "read_error" and "leads.csv" in error["observed"]


def test_health_scores_follow_the_stated_formula(company: Settings) -> None:
    wh = Warehouse(company)
    health = {r["source_system"]: r for r in wh.run_query("data_health", user=SYSTEM).iter_rows(named=True)}
    assert set(health) == {"(all)", "crm", "erp", "marketing", "trade_show", "web_forms"}
    for r in health.values():
        expected = 100 * (0.4 * r["completeness"] + 0.3 * r["validity"] + 0.3 * r["conformance"])
        assert r["health_score"] == pytest.approx(expected, abs=0.05)
        assert 0 <= r["health_score"] <= 100
    # completeness is the mean fill rate of the fields the source provides (ERP: the ID number is 1 of 12)
    heat = wh.run_query("quality_heatmap", {"source": "erp"}, user=SYSTEM).filter(pl.col("provided"))
    assert health["erp"]["completeness"] == pytest.approx(heat["fill_rate"].mean())
    assert health["erp"]["conformance"] == 1.0
    sources = [r for s, r in health.items() if s != "(all)"]
    assert health["(all)"]["health_score"] == pytest.approx(sum(r["health_score"] for r in sources) / 5, abs=0.05)


def test_a_quarantine_lowers_its_sources_health_at_once(company: Settings) -> None:
    before = (
        Warehouse(company)
        .run_query("data_health", user=SYSTEM)
        .filter(pl.col("source_system") == "crm")["health_score"][0]
    )
    _break_crm_phones(company)
    after = (
        Warehouse(company)
        .run_query("data_health", user=SYSTEM)
        .filter(pl.col("source_system") == "crm")
        .row(0, named=True)
    )
    assert after["last_status"] == "quarantined"
    assert after["conformance"] < 1 and after["health_score"] < before


def test_conflicting_phones_across_sources_are_counted_with_masked_examples(company: Settings) -> None:
    # WEB-3 and CRM-3 share a phone (one golden customer); give the web form another email.
    forms = company.base_dir / "imports" / "web" / "forms.jsonl"
    text = forms.read_text(encoding="utf-8").replace("u3@example.com", "other3@example.com")
    forms.write_text(text, encoding="utf-8")
    refresh(company, ["web_forms"])
    wh = Warehouse(company)
    summary = {r["field"]: r for r in wh.run_query("identity_consistency", user=SYSTEM).iter_rows(named=True)}
    assert summary["email"]["conflicting"] == 1 and summary["phone"]["conflicting"] == 0
    [conflict] = wh.run_query("identity_conflicts", {"field": "email", "conflicts_only": 1}, user=SYSTEM).iter_rows(
        named=True
    )
    assert conflict["n_sources"] == 2 and conflict["n_values"] == 2
    assert conflict["examples"] == ["crm: u***@example.com", "web_forms: o***@example.com"]


def test_data_docs_are_built_for_the_latest_run_of_each_suite(company: Settings) -> None:
    store = Store(company.data_path)
    status = site_status(store)
    assert status is not None and status["error"] is None
    assert "crm.leads" in status["suites"] and "erp.customers" in status["suites"]
    assert (site_dir(store) / "index.html").is_file()
    _break_crm_phones(company)
    pages = list((site_dir(store) / "validations" / "crm" / "leads").rglob("*.html"))
    assert len(pages) == 1  # only the latest run per suite: the site stays small
    assert "call me" not in pages[0].read_text(encoding="utf-8")  # samples are masked in the docs too


def test_consistency_names_each_customer_by_its_key_whatever_the_links_order() -> None:
    import duckdb

    from dashboard.derived.quality.tables import identity_consistency

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE customers AS SELECT * FROM (VALUES "
        "('crm', 'A1', 'Li Lei', '13800138000', true, 'a@x.com', true), "
        "('erp', 'E1', 'li lei', '13800138001', true, 'a@x.com', true), "
        "('crm', 'A2', 'Han Mei', '13900139000', true, NULL, false), "
        "('erp', 'E2', 'Han Mei', '13900139000', true, NULL, false)) "
        "AS t(source_system, source_record_id, name, phone, phone_valid, email, email_valid)"
    )
    con.execute(
        "CREATE TABLE leads AS SELECT * FROM (VALUES ('web', 'W1', 'Wang', '13700137000', true, NULL, false)) "
        "AS t(source_system, lead_id, name, phone, phone_valid, email, email_valid)"
    )
    links = pl.DataFrame(
        {
            "source_system": ["crm", "erp", "crm", "erp", "web"],
            "source_record_id": ["A1", "E1", "A2", "E2", "W1"],
            "record_kind": ["customer"] * 4 + ["lead"],
            "customer_key": ["Cb", "Cb", "Ca", "Ca", "Cc"],
        }
    )
    by_key = identity_consistency(con, links.sort("customer_key"))
    assert by_key.select("customer_key", "field", "conflict").rows() == [
        ("Cb", "phone", True),  # conflicts first, then by field and key
        ("Cb", "email", False),
        ("Ca", "name", False),
        ("Cb", "name", False),  # names compared without spaces and case
        ("Ca", "phone", False),
    ]
    assert identity_consistency(con, links).equals(by_key)  # links not in key order: the same rows
