"""Marketing consent (营销同意): a source maps a consent field; its yes/no spellings become booleans, other
spellings row-level issues; a golden customer's consent is withdrawn by any record saying no; people without
consent are counted on the catalog, flagged and left out of the churn outreach list and the reports' lists."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from typer.testing import CliRunner

from dashboard.cli import app
from dashboard.components import consent_view
from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.ops import reports
from dashboard.ops.catalog import consent_counts
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse

# ERP customers E0..E11 (the fixture company) given a consent value in the company's own spellings:
# no = E0, E1, E8, E9; yes = E2, E3, E5; unknown = E4 (a spelling that is neither) and E6, E7, E10, E11 (empty).
CONSENT = ["否", "不同意", "是", "同意", "也许", "Y", None, None, "拒绝", "N", None, None]
RECORDS = [False, False, True, True, None, True, None, None, False, False, None, None]
# The trade show's leads TS-0..TS-11 are the same people (same phones); three of them carry a consent of their own.
LEAD_CONSENT = {"TS-0": "同意", "TS-2": "不同意", "TS-6": "是"}
# Golden: a no on any record wins (E0: 否 + 同意, E2: 是 + 不同意), then a yes on any (E6: empty + 是).
GOLDEN = [False, False, False, True, None, True, True, None, False, False, None, None]
SAID_NO = ("E0", "E1", "E2", "E8", "E9")
FRIDAY = datetime(2026, 3, 20, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # last week: 9–15 March
REPORT = """
[notifications.smtp]
host = "127.0.0.1"
port = 2525
sender = "cockpit@example.com"

[[reports]]
name = "weekly_managers"
to = ["boss@example.com"]
period = "week"
role = "manager"
leads = 50
top_churn = 20
"""


@pytest.fixture
def consenting(company: Settings) -> Settings:
    """The company with a 营销同意 column in the ERP's customers, refreshed."""
    root = company.base_dir
    path = root / "imports" / "erp" / "customers.xlsx"
    pl.read_excel(path).with_columns(pl.Series("营销同意", CONSENT, dtype=pl.String)).write_excel(path)
    shows = root / "imports" / "trade_show" / "ts_2026.csv"
    lines = shows.read_bytes().decode("gbk").splitlines()
    rows = [lines[0] + ",营销同意"] + [f"{r},{LEAD_CONSENT.get(r.split(',')[0], '')}" for r in lines[1:]]
    shows.write_bytes(("\n".join(rows) + "\n").encode("gbk"))
    cfg = root / "cockpit.toml"
    text = cfg.read_text(encoding="utf-8")
    text = text.replace('created_at = "建档日期" }', 'created_at = "建档日期", marketing_consent = "营销同意" }')
    text = text.replace('name = "姓名" }', 'name = "姓名", marketing_consent = "营销同意" }')
    text += REPORT
    cfg.write_text(text, encoding="utf-8")
    settings = load_settings(cfg)
    result = refresh(settings, ["erp", "trade_show"])
    assert result.exit_code == 0, [r.reasons for r in result.sources]
    return settings


def _golden(settings: Settings) -> dict[str, bool | None]:
    rows = Warehouse(settings).sql(
        "SELECT l.source_record_id, g.marketing_consent FROM identity_links AS l "
        "JOIN customer_golden AS g USING (customer_key) WHERE l.source_system = 'erp' AND l.record_kind = 'customer'",
        user=SYSTEM,
    )
    return dict(zip(rows["source_record_id"], rows["marketing_consent"], strict=True))


def test_spellings_become_yes_no_and_unknown_ones_are_row_issues(consenting: Settings) -> None:
    customers = Warehouse(consenting).sql(
        "SELECT source_record_id, marketing_consent FROM customers WHERE source_system = 'erp'", user=SYSTEM
    )
    got = dict(zip(customers["source_record_id"], customers["marketing_consent"], strict=True))
    assert [got[f"E{i}"] for i in range(12)] == RECORDS
    attempt = Store(consenting.data_path).attempts("erp", 1)[0]
    issues = [i for i in attempt["issues"] if i["column"] == "marketing_consent"]
    assert len(issues) == 1 and issues[0]["count"] == 1
    assert issues[0]["problem"].startswith("not a yes/no value")
    assert [s["value"] for s in issues[0]["samples"]] == ["也许"]


def test_golden_consent_any_no_wins_then_any_yes_else_unknown(consenting: Settings) -> None:
    golden = _golden(consenting)  # E0..E11 share a phone with the trade show's TS-0..TS-11 leads (no field there)
    assert [golden[f"E{i}"] for i in range(12)] == GOLDEN


def test_catalog_counts_consent_per_source_and_overall(consenting: Settings) -> None:
    counts = {r["source_system"]: r for r in consent_counts(consenting).iter_rows(named=True)}
    erp = counts["erp"]
    assert (erp["customers"], erp["consent_yes"], erp["consent_no"], erp["consent_unknown"]) == (12, 3, 4, 5)
    overall = counts["(all)"]  # each person once; everyone else known to the company is unknown
    assert (overall["consent_yes"], overall["consent_no"]) == (3, 5)
    assert overall["consent_unknown"] == overall["customers"] - 8
    assert set(counts) == {"erp", "(all)"}  # the only source of customer records


def test_churn_outreach_list_leaves_out_exactly_who_said_no(consenting: Settings) -> None:
    keys, golden = _keys(consenting), _golden(consenting)
    ranked = Warehouse(consenting).run_query("churn_list", {"lang": "en"}, user=SYSTEM)
    flagged = set(ranked.filter(pl.col("consent") == "no")["customer_key"])
    assert flagged == {keys[r] for r in SAID_NO} and len(flagged) == 5
    unknown = {keys[r] for r, v in golden.items() if v is None}
    assert unknown <= set(ranked.filter(pl.col("consent") == "unknown")["customer_key"])  # unknown: kept in

    outreach, left_out = consent_view.split(ranked)
    assert set(left_out["customer_key"]) == flagged
    assert not flagged & set(outreach["customer_key"]) and outreach.height == ranked.height - 5


def test_cockpit_churn_marks_no_consent(consenting: Settings) -> None:
    out = CliRunner().invoke(app, ["--config", str(consenting.base_dir / "cockpit.toml"), "churn", "-f", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    marked = {r["customer_key"] for r in rows if r["consent"] == "No consent"}
    assert marked == {_keys(consenting)[r] for r in SAID_NO}
    assert {r["consent"] for r in rows} <= {"No consent", "Consented", "Consent unknown"}


def test_report_lists_omit_who_said_no_and_say_how_many(consenting: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCKPIT_BROWSER", "none")
    digest = reports.build(consenting, reports.find_report(consenting, "weekly_managers"), FRIDAY, charts=False)
    # the week's leads (9–15 March) include TS-8 and TS-9: the same people as E8 and E9, who said no
    assert digest.left_out["leads"] == 2
    assert "consent" not in digest.leads.columns and digest.leads.height
    assert not {"TS-8", "TS-9"} & set(digest.leads["lead_id"])
    assert {"TS-10", "TS-11"} <= set(digest.leads["lead_id"])  # unknown consent: kept
    assert digest.churn is not None and digest.left_out["churn"] == 5
    assert not {_keys(consenting)[r] for r in SAID_NO} & set(digest.churn["customer_key"])
    html = reports.render_html(digest)
    assert "2 left out: no marketing consent." in html and "5 left out: no marketing consent." in html


def _keys(settings: Settings) -> dict[str, str]:
    rows = Warehouse(settings).sql(
        "SELECT source_record_id, customer_key FROM identity_links WHERE source_system = 'erp' "
        "AND record_kind = 'customer'",
        user=SYSTEM,
    )
    return dict(zip(rows["source_record_id"], rows["customer_key"], strict=True))


def test_the_catalog_page_shows_the_consent_counts(consenting: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    from tests.test_quality_pages import open_page

    st.cache_data.clear()
    st.cache_resource.clear()
    at = open_page(consenting, monkeypatch, "en", "pages/catalog.py")
    assert not at.error and "Marketing consent" in [h.value for h in at.subheader]
    counts = next(f for f in (d.value for d in at.dataframe) if "consent_no" in f.columns).set_index("source_system")
    assert counts.loc["All sources (people)", "consent_no"] == 5 and counts.loc["ERP", "consent_yes"] == 3
    st.cache_data.clear()
    st.cache_resource.clear()


def test_the_churn_page_shows_no_consent_apart(consenting: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st

    from tests.test_pages import open_app

    st.cache_data.clear()
    st.cache_resource.clear()
    at = open_app(consenting, monkeypatch, "en")
    at.switch_page("pages/churn.py").run()
    assert not at.exception, at.exception
    keys = {_keys(consenting)[r] for r in SAID_NO}
    frames = [d.value for d in at.dataframe]
    outreach = next(f for f in frames if "profile" in f.columns)
    assert not any(k in link for link in outreach["profile"] for k in keys)  # not in the outreach list
    assert "Consent unknown" in set(outreach["consent"])  # unknown: kept, marked
    assert [e.label for e in at.expander if "No marketing consent" in e.label] == [
        "No marketing consent: 5 customers left out of the outreach list"
    ]
    left_out = next(f for f in frames if "profile" not in f.columns and "consent" in f.columns)
    assert left_out.shape[0] == 5 and set(left_out["consent"]) == {"No consent"}
    st.cache_data.clear()
    st.cache_resource.clear()
