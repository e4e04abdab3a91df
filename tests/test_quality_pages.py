"""The data-quality page driven with AppTest on the small company, in both languages."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.core import audit as audit_log
from dashboard.core.audit import decisions
from dashboard.core.config import CONFIG_ENV, Settings
from dashboard.core.store import Store
from dashboard.i18n import LANGS, t
from dashboard.ops import jobs
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.test_review import allow_actions, quarantine_crm

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PAGE = "pages/data_quality.py"


pytestmark = pytest.mark.usefixtures("fresh_caches")


def open_page(settings: Settings, monkeypatch: pytest.MonkeyPatch, lang: str = "en", page: str = PAGE) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(settings.base_dir / "cockpit.toml"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    if at.sidebar.radio[0].value != lang:
        at.sidebar.radio[0].set_value(lang).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 120) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def finished_job(settings: Settings, source: str, snapshot_id: str, timeout: float = 120) -> jobs.Job:
    """The publish job of a snapshot, once it has an outcome (it runs in a process of its own)."""
    path = jobs.job_path(settings, source, snapshot_id)

    def done() -> bool:
        job = jobs.read_job(path)
        return job is not None and not job.active

    wait_for(f"the publish job of {source}/{snapshot_id} to end", done, timeout)
    job = jobs.read_job(path)
    assert job is not None
    return job


def markdown(at: AppTest) -> str:
    return "\n".join(str(m.value) for m in at.markdown)


@pytest.mark.parametrize("lang", LANGS)
def test_the_page_renders_every_section_in_both_languages(
    company: Settings, monkeypatch: pytest.MonkeyPatch, lang: str
) -> None:
    at = open_page(company, monkeypatch, lang)
    assert [x.value for x in at.title] == [t("page.data_quality", lang)]
    assert [tab.label for tab in at.tabs] == [
        t(f"dq.tab.{k}", lang) for k in ("heatmap", "trend", "history", "review", "freshness", "consistency", "docs")
    ]
    assert not at.error
    tiles = {m.label: m.value for m in at.metric}
    assert tiles[t("dq.health.overall", lang)].isdigit() and "ERP" in tiles  # each source by its name
    assert t("dq.health.formula", lang) in [c.value for c in at.caption]
    assert len(at.get("plotly_chart")) == 2  # heatmap and trend
    assert t("dq.review.none", lang) in [i.value for i in at.info]


def test_one_retained_snapshot_is_said_in_the_singular(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    captions = [c.value for c in open_page(company, monkeypatch).caption]  # it read "1 retained snapshots"
    assert "1 retained snapshot (retention keeps the last" in " ".join(captions), captions


def test_the_cell_details_start_on_the_worst_flagged_cell(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(company, monkeypatch)
    assert (at.selectbox(key="dq_cell_source").value, at.selectbox(key="dq_cell_field").value) == (
        "erp",
        "customers.id_number",
    )  # filled on 1 of 12 customers
    text = markdown(at)
    assert "Filled on 8.3% of customers where company is empty (1 / 12)" in text  # the ERP gives no company
    assert "Records without a value: `E1`" in text


def test_selecting_a_cell_shows_its_invalid_values_masked(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    forms = company.base_dir / "imports" / "web" / "forms.jsonl"
    extra = {"id": "WEB-10", "submitted_at": "2026-03-05T10:00:00+08:00", "utm_source": "官网"}
    extra["phone"] = "0571-8888 1234"  # a landline: not a valid mobile
    forms.write_text(forms.read_text(encoding="utf-8") + json.dumps(extra) + "\n", encoding="utf-8")
    assert refresh(company, ["web_forms"]).exit_code == 0  # 1 of 11 phones invalid: under the suite's 10%
    at = open_page(company, monkeypatch)
    at.radio(key="dq_metric").set_value("validity").run()
    at.selectbox(key="dq_cell_source").set_value("web_forms").run()
    at.selectbox(key="dq_cell_field").set_value("leads.phone").run()
    text = markdown(at)
    assert "Validity 90.9% (1 ✗)" in text
    assert "Sample invalid values: `057*******1234`" in text and "8888" not in text
    assert t("dq.cell.masked", "en") in [c.value for c in at.caption]


def test_history_and_review_of_a_quarantined_snapshot(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    sid = quarantine_crm(company)
    at = open_page(company, monkeypatch)
    assert len(at.error) == 1  # the banner only: the page itself warns, it does not add alarms
    assert any("Rejected by the quality gate: crm" in w.value for w in at.warning)
    frames = [df.value for df in at.dataframe]
    history = next(f for f in frames if "snapshot_id" in f.columns and "failed_blocking" in f.columns)
    assert history.iloc[0]["snapshot_id"] == sid and "Quarantined" in history.iloc[0]["status"]
    failed = next(f for f in frames if "expectation" in f.columns and "unexpected_count" in f.columns)
    assert "phone" in failed["column_name"].tolist()
    counts = next(f for f in frames if list(f.columns) == ["entity", "quarantined", "current", "change"])
    assert counts.set_index("entity")["change"].to_dict() == {"leads": -5, "lead_events": 0}
    assert t("dq.review.disabled", "en") in [c.value for c in at.caption]
    assert not at.button  # no actions unless the config allows them


def test_the_history_says_when_each_run_finished_in_the_companys_time(
    small_demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As Freshness, the Catalog and the trend do (the demo's refresh at 13:30 in Shanghai read 05:30 here)."""
    at = open_page(small_demo, monkeypatch)
    history = next(df.value for df in at.dataframe if {"snapshot_id", "failed_blocking"} <= set(df.value.columns))
    runs = Warehouse(small_demo).run_query("validation_history", {}, user=SYSTEM)
    local = runs["finished_at"].dt.convert_time_zone(small_demo.timezone).dt.replace_time_zone(None)
    assert str(history.iloc[0]["finished_at"])[:19] == str(local[0])[:19]


def test_publish_anyway_from_the_page_needs_a_reason_and_is_recorded(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = allow_actions(company)
    sid = quarantine_crm(settings)
    at = open_page(settings, monkeypatch)
    at.button(key="dq_publish").click().run()
    assert t("dq.review.need_reason", "en") in [w.value for w in at.warning]
    at.text_input(key=f"dq_reason_{sid}").input("checked: the phones are in another column").run()
    at.button(key="dq_publish").click().run()
    assert not at.exception, at.exception
    finished_job(settings, "crm", sid)  # published in the background
    at.run()
    assert Store(settings.data_path).read_manifest()["sources"]["crm"]["snapshot_id"] == sid
    [audit] = decisions(Store(settings.data_path))
    assert (audit["who"], audit["action"]) == ("anonymous", "publish_anyway")  # served with --no-auth
    events = audit_log.read(settings, action="quarantine_publish")
    assert events.select("user", "target").rows() == [("anonymous", f"crm/{sid}")]
    assert [s.value for s in at.success] == [t("dq.review.published", "en", source="crm", snapshot=sid)]
    assert not at.error  # the banner is gone: a person decided


def test_freshness_shows_stale_sources_in_red(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    monkeypatch.setattr("dashboard.ops.status.now_utc", lambda: later)
    at = open_page(company, monkeypatch, "zh")
    table = markdown(at)
    assert "**展会登记**" in table and ":red[已过期]" in table
    assert ":green[最新]" in table  # sources without a schedule are never stale


def test_consistency_and_data_docs(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(company, monkeypatch)
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Conflicting phones"] == "0" and tiles["Conflicting emails"] == "0"
    text = markdown(at)
    assert "Built " in text and "suites" in text
    assert "file://" in text and "data_docs/index.html" in text


def test_the_page_before_any_refresh(fresh_company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(fresh_company, monkeypatch)
    info = " ".join(i.value for i in at.info)
    assert "No data has been loaded yet." in info and t("dq.heatmap.empty", "en") in info
    assert t("dq.history.empty", "en") in info and t("dq.docs.none", "en") in info


def test_the_heatmap_marks_flagged_cells_and_hovers_numbers(company: Settings) -> None:
    from dashboard.components.quality_heatmap import heatmap_figure
    from dashboard.query.warehouse import Warehouse

    frame = Warehouse(company).run_query("quality_heatmap", user=SYSTEM)
    heat, *_, marks = heatmap_figure(frame, "fill", "en").data  # between: the optional fields in grey
    assert list(heat.y) == sorted(company.source_names, reverse=True)
    row, col = list(heat.y).index("erp"), list(heat.x).index("customers.id_number")
    assert heat.z[row][col] == pytest.approx(1 / 12)
    assert "Filled on 8.3% of customers where company is empty (1 / 12)" in heat.text[row][col]
    flagged = {tuple(c) for c, mark in zip(marks.customdata, marks.text, strict=True) if mark == "⚠"}
    assert ("erp", "customers.id_number") in flagged and ("trade_show", "leads.phone") not in flagged
    assert heat.z[list(heat.y).index("trade_show")][list(heat.x).index("customers.id_number")] is None  # no such field
