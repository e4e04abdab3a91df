"""The Streamlit app driven end to end with AppTest on the small company's real snapshots."""

from __future__ import annotations

import ast
import datetime as dt
import re
import string
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.components import fmt
from dashboard.core.config import CONFIG_ENV, Settings
from dashboard.i18n import CATALOG, LANGS, t
from dashboard.i18n.values import ValueLabels
from dashboard.pipeline.refresh import refresh

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
APP = DASHBOARD / "app.py"
PAGES = sorted(p.stem for p in (DASHBOARD / "pages").glob("*.py"))
# pages that still say "not built yet" (each checks it says so, in both languages)
PLANNED = [p for p in PAGES if "not_built(" in (DASHBOARD / "pages" / f"{p}.py").read_text(encoding="utf-8")]


pytestmark = pytest.mark.usefixtures("fresh_caches")


def open_app(settings: Settings, monkeypatch: pytest.MonkeyPatch, lang: str | None = None) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(settings.base_dir / "cockpit.toml"))
    at = AppTest.from_file(APP, default_timeout=30).run()
    if lang is not None and at.sidebar.radio[0].value != lang:
        at.sidebar.radio[0].set_value(lang).run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def kpis(at: AppTest) -> dict[str, str]:
    """The four channel_summary tiles (the cockpit has more; tests/test_channels_page.py checks those)."""
    return {k: v for k, v in metrics(at).items() if k in ("Leads", "Conversion", "Won-deal amount", "ROI")}


def texts(at: AppTest) -> str:
    return "\n".join(str(getattr(e, "value", "")) for kind in ("markdown", "info", "caption") for e in at.get(kind))


# -- every page, both languages ---------------------------------------------------------------
def test_all_pages_are_in_the_navigation() -> None:
    product = ["cockpit", "channels", "customer_360", "churn", "data_quality", "catalog", "explore", "admin"]
    product += ["import_source"]
    assert sorted(product) == PAGES


@pytest.mark.parametrize("lang", LANGS)
def test_every_page_renders_in_both_languages(company: Settings, monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    at = open_app(company, monkeypatch, lang)
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        assert [x.value for x in at.title] == [t(f"page.{page}", lang)]
        assert not at.error, (page, [e.value for e in at.error])
        assert at.sidebar.radio[0].value == lang  # the choice survives the page change
        if page in PLANNED:
            assert [i.value for i in at.info] == [f"{t('page.not_built', lang)} {t(f'page.{page}.plan', lang)}"]


def test_language_defaults_to_the_config_and_switches(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(company, monkeypatch)
    assert company.language == "en"
    assert at.session_state["lang"] == "en"
    assert list(kpis(at)) == ["Leads", "Conversion", "Won-deal amount", "ROI"]
    at.sidebar.radio[0].set_value("zh").run()
    assert [x.value for x in at.title] == ["驾驶舱"]
    assert metrics(at)["线索数"] == "60"


# -- the cockpit's numbers ----------------------------------------------------------------------
def test_cockpit_shows_the_channel_totals(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(company, monkeypatch, "en")
    assert kpis(at) == {"Leads": "60", "Conversion": "13.3%", "Won-deal amount": "¥22,000", "ROI": "450%"}
    table = pl.from_pandas(at.dataframe[-1].value)  # after the sales leaderboard
    rows = {r["channel"]: r for r in table.iter_rows(named=True)}
    # channels by their names (a code without one, like this company's "website", as it is)
    assert set(rows) == {"Paid search", "Trade show", "website", "Unknown"}
    # ROI in percent points, drawn at its precision ("%,.0f%%": 600%), as the tile's 450%
    assert (rows["Paid search"]["leads"], rows["Paid search"]["won_deals"], rows["Paid search"]["roi"]) == (30, 6, 600)
    assert rows["Trade show"]["won_amount"] == 1000
    assert rows["website"]["spend"] is None or rows["website"]["spend"] != rows["website"]["spend"]  # empty, not 0
    assert len(at.get("plotly_chart")) == 2  # the sales leaderboard and the channels


def test_cockpit_date_range_narrows_the_period(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(company, monkeypatch, "en")
    at.date_input[0].set_value((dt.date(2026, 3, 1), dt.date(2026, 3, 10))).run()
    assert not at.exception
    # 10 leads from each source; spend in the period: SEM 2,000 + trade show 1,000.
    assert kpis(at) == {"Leads": "30", "Conversion": "26.7%", "Won-deal amount": "¥22,000", "ROI": "633%"}


def test_a_period_without_won_deals_says_so_once_without_an_empty_table(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below "No deals were won in this period." the leaderboard's table stood empty, Streamlit's English "empty"
    in it on the Chinese page, with its CSV and Excel buttons (the walk, session 19)."""
    at = open_app(company, monkeypatch, "en")
    at.date_input[0].set_value((dt.date(2030, 1, 1), dt.date(2030, 2, 1))).run()
    assert not at.exception
    assert t("tiles.no_won", "en") in [i.value for i in at.info]
    assert len(at.dataframe) == 0 and len(at.get("download_button")) == 0


def test_cockpit_freshness_line_per_source(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(company, monkeypatch, "en")
    lines = [line for line in texts(at).splitlines() if " · " in line]
    assert len(lines) == len(company.sources)
    names = ValueLabels(company.label_texts())  # in English a source's English name, else its code
    for source, line in zip(company.sources, lines, strict=True):
        assert names.label("source", source.name, "en") in line
        assert "published 20" in line and "[fresh]" in line
    # in Chinese the time is written as the grids write theirs (2026年12月6日 17:00), not 2026-12-06 17:00
    zh = [line for line in texts(open_app(company, monkeypatch, "zh")).splitlines() if " · " in line]
    assert len(zh) == len(company.sources) and all(re.search(r"发布于 20\d\d年\d+月\d+日 \d\d:\d\d", s) for s in zh), zh


def test_a_refresh_shows_without_restart(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(company, monkeypatch, "en")
    assert metrics(at)["Leads"] == "60"
    with open(company.base_dir / "imports" / "web" / "forms.jsonl", "a", encoding="utf-8") as f:
        f.write('{"id": "WEB-99", "submitted_at": "2026-03-05T10:00:00+08:00", "utm_source": "官网"}\n')
    assert refresh(company, ["web_forms"]).exit_code == 0
    at.run()
    assert metrics(at)["Leads"] == "61"


# -- the warning banner ---------------------------------------------------------------------------
def test_no_banner_when_all_is_well(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(company, monkeypatch, "en")
    assert not at.error


def test_banner_names_a_quarantined_source_on_every_page(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    leads = company.base_dir / "imports" / "crm" / "leads.csv"
    leads.write_text("Lead ID,Source,Mobile\nCRM-1,SEM,13900130001\n", encoding="utf-8")
    result = refresh(company, ["crm"])
    assert result.exit_code == 3
    reason = result.sources[0].reasons[0]

    at = open_app(company, monkeypatch, "en")
    for page in ["cockpit", "churn", "data_quality"]:
        at.switch_page(f"pages/{page}.py").run()
        assert len(at.error) == 1, page
        banner = at.error[0].value
        assert "**CRM** (crm) — last refresh was quarantined" in banner
        assert fmt.md_escape(reason) in banner and "Created" in banner
        assert "展会登记" not in banner  # only the troubled source is named
    # The last good snapshot keeps serving, and the freshness line says what happened.
    at.switch_page("pages/cockpit.py").run()
    assert metrics(at)["Leads"] == "60"
    assert "**CRM** · published 20" in texts(at) and "[last refresh quarantined]" in texts(at)


def test_banner_names_a_stale_source(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    monkeypatch.setattr("dashboard.ops.status.now_utc", lambda: later)
    at = open_app(company, monkeypatch, "zh")
    assert len(at.error) == 1
    banner = at.error[0].value
    assert "**展会登记** (trade\\_show) — 已过期: 自 " in banner
    assert "CRM" not in banner  # no schedule, so never stale


def test_never_refreshed_says_how_to_load_data(fresh_company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(fresh_company, monkeypatch, "en")
    info = " ".join(i.value for i in at.info)
    assert "No data has been loaded yet." in info
    assert "`cockpit refresh`" in info and "`make demo`" in info
    assert not at.metric
    assert [e.value for e in at.error] == [t("banner.nothing_loaded", "en", count=5)]
    for page in PLANNED:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page


def test_a_config_error_is_a_message_not_a_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "missing.toml"))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert len(at.error) == 1 and "config file not found" in at.error[0].value


# -- pure helpers -------------------------------------------------------------------------------
def test_number_formats() -> None:
    assert fmt.money(22000) == "¥22,000"
    assert fmt.money(1234567.4) == "¥1,234,567"
    assert fmt.money(-500) == "-¥500"
    assert fmt.pct(8 / 60) == "13.3%"
    assert fmt.count(1234567) == "1,234,567"
    assert fmt.local_time("2026-03-01T01:00:00+00:00", "Asia/Shanghai", "en") == "2026-03-01 09:00"
    # in Chinese as every other time on the pages (the grids' DATETIME_COLUMN), not 2026-03-01 09:00 beside them
    assert fmt.local_time("2026-03-01T01:00:00+00:00", "Asia/Shanghai", "zh") == "2026年3月1日 09:00"


# -- strings ------------------------------------------------------------------------------------
def test_every_key_exists_in_both_languages() -> None:
    zh, en = CATALOG["zh"], CATALOG["en"]
    assert sorted(set(en) - set(zh)) == [], "missing in zh.py"
    assert sorted(set(zh) - set(en)) == [], "missing in en.py"
    fields = string.Formatter()
    for key in en:
        assert {f for _, f, _, _ in fields.parse(en[key]) if f} == {f for _, f, _, _ in fields.parse(zh[key]) if f}, key


def test_every_key_the_code_uses_exists() -> None:
    used: set[str] = set()
    for path in DASHBOARD.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "t"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                used.add(node.args[0].value)
    used |= {f"page.{p}" for p in PAGES} | {f"page.{p}.plan" for p in PLANNED}
    used |= {f"banner.{p}" for p in ("quarantined", "stale", "never_published")}
    used |= {f"fresh.{p}" for p in ("fresh", "quarantined", "stale", "never_published")}
    assert used, "no t('...') calls found"
    for lang in LANGS:
        assert sorted(used - set(CATALOG[lang])) == [], lang


def test_no_ui_code_passes_a_keyword_streamlit_deprecated() -> None:
    """Streamlit logs a warning at every render of a call with use_container_width (the walk's server log, from
    Customer 360's search results, golden record and linked records) and drops it after 2025-12-31: width="stretch"."""
    deprecated = ("use_container_width",)
    found = [
        f"{path.relative_to(DASHBOARD)}:{node.lineno}"
        for path in sorted(DASHBOARD.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.keyword) and node.arg in deprecated
    ]
    assert found == []


def test_a_missing_key_is_an_error_that_names_it() -> None:
    with pytest.raises(KeyError, match=re.escape("'no.such.key'")):
        t("no.such.key", "en")
