"""The semantic layer (dashboard/metrics.toml, dashboard/query/metrics.py): each metric against hand-written
SQL on the small company, what each role may see, and the same number on every page, report and export."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import pytest
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dashboard.access import auth
from dashboard.cli import app
from dashboard.components.kpi import show_value
from dashboard.core.config import CONFIG_ENV, ReportConfig, Settings
from dashboard.i18n import CATALOG, LANGS, heading, t
from dashboard.ops.reports import build
from dashboard.query.explore.models import Spec, build_query, shape
from dashboard.query.metrics import MetricError, Request, ask, label, layer, parse, value
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse
from tests.test_pages import APP

MANAGER, ANALYST, SALES = Principal("m", "manager"), Principal("a", "analyst"), Principal("s", "sales", "rep1")
PASSWORD = "correct horse battery staple"

# One line per metric: the hand-written SQL its value must equal (over the same role views).
# Adding a metric to dashboard/metrics.toml = one line here.
CASES = {
    "leads": "SELECT count(*) FROM lead_facts",
    "won_deals": "SELECT count(won_at) FROM lead_facts",
    "conversion_rate": "SELECT count(won_at) / count(*) FROM lead_facts",
    "won_amount": "SELECT coalesce(sum(won_amount), 0) FROM lead_facts",
    "won_deals_by_win_date": "SELECT count(*) FROM lead_facts WHERE won_at IS NOT NULL",
    "won_amount_by_win_date": "SELECT coalesce(sum(won_amount), 0) FROM lead_facts WHERE won_at IS NOT NULL",
    "avg_deal_size": "SELECT avg(won_amount) FILTER (WHERE won_at IS NOT NULL) FROM lead_facts",
    "contract_value": "SELECT coalesce(sum(amount), 0) FROM contracts",
    "payments_received": "SELECT coalesce(sum(paid_amount), 0) FROM contracts",
    "order_revenue": "SELECT coalesce(sum(amount), 0) FROM orders WHERE coalesce(status, '') NOT IN ('cancelled')",
    "spend": "SELECT sum(cost) FROM marketing_spend",
    "roi": """SELECT (sum(r) - sum(c)) / sum(c) FROM (SELECT channel, sum(cost) AS c FROM marketing_spend GROUP BY 1)
              JOIN (SELECT CAST(channel AS VARCHAR) AS channel, sum(won_amount) AS r FROM lead_facts GROUP BY 1)
              USING (channel) WHERE c > 0""",
    "cost_per_lead": """SELECT sum(c) / sum(n) FROM (SELECT channel, sum(cost) AS c FROM marketing_spend GROUP BY 1)
              JOIN (SELECT CAST(channel AS VARCHAR) AS channel, count(*) AS n FROM lead_facts GROUP BY 1)
              USING (channel) WHERE c > 0""",
    "cac": """SELECT sum(c) / sum(n) FROM (SELECT channel, sum(cost) AS c FROM marketing_spend GROUP BY 1)
              JOIN (SELECT CAST(channel AS VARCHAR) AS channel, count(won_at) AS n FROM lead_facts GROUP BY 1)
              USING (channel) WHERE c > 0""",
}


def test_every_metric_has_a_case_and_its_words_in_both_languages() -> None:
    assert sorted(CASES) == sorted(layer().metrics)
    for name in layer().metrics:
        for lang in LANGS:
            assert CATALOG[lang][f"metric.{name}"] and CATALOG[lang][f"metric.{name}.help"], (name, lang)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_metric_equals_its_hand_written_sql(company_served: Warehouse, name: str) -> None:
    wh = company_served
    got = value(ask(wh, Request.of([name]), MANAGER), name)
    want = wh.sql(CASES[name], user=MANAGER).item()
    assert got == pytest.approx(want), name


def test_the_revenue_terms_are_four_different_numbers_with_four_names(company_served: Warehouse) -> None:
    terms = ("won_amount", "contract_value", "payments_received", "order_revenue")
    assert [t(f"metric.{n}", "zh") for n in terms] == ["赢单金额", "合同金额", "回款", "订单收入"]
    assert [t(f"metric.{n}", "en") for n in terms] == [
        "Won-deal amount",
        "Contract value",
        "Payments received",
        "Order revenue",
    ]
    answer = ask(company_served, Request.of(terms), MANAGER)
    assert (value(answer, "won_amount"), value(answer, "order_revenue")) == (22_000, 28_800)


def test_a_sales_rep_sees_the_companys_roi_labelled_so_never_company_spend_over_own_leads(
    company_served: Warehouse,
) -> None:
    wh = company_served
    names = ["leads", "won_amount", "roi", "cost_per_lead", "spend"]
    mine, company_wide = ask(wh, Request.of(names), SALES), ask(wh, Request.of(names), MANAGER)
    assert value(mine, "leads") == 10 and value(company_wide, "leads") == 60  # own leads vs everyone's
    assert mine.scopes["roi"] == mine.scopes["cost_per_lead"] == "company" and mine.scopes["leads"] == "rows"
    assert value(mine, "roi") == value(company_wide, "roi") == pytest.approx(4.5)
    assert value(mine, "cost_per_lead") == value(company_wide, "cost_per_lead")  # 4,000 over 49 leads, not over 10
    assert label("roi", mine.scopes["roi"], "zh") == "全公司投资回报率"
    assert label("roi", mine.scopes["roi"], "en") == "Company ROI"
    by_channel = ask(wh, Request.of(names, ["channel"]), SALES)  # per channel: not shown to sales at all
    assert set(by_channel.hidden) == {"roi", "cost_per_lead", "spend"}
    assert "roi" not in by_channel.frame.columns and by_channel.frame["leads"].sum() == 10


SPEND_BASED = ("spend", "roi", "cost_per_lead", "cac")


@pytest.mark.parametrize("dim", ["owner", "region"])
def test_a_filter_spend_cannot_take_gives_the_companys_spend_figures_never_one_reps_revenue_over_all_spend(
    company_served: Warehouse, dim: str
) -> None:
    """Spend has no owner or region: the manager's channels page filtered to one rep (or region) shows the
    company's spend, ROI, cost per lead and CAC, labelled so, beside the rep's own leads and amount; never
    the rep's won amount against every rep's spend (the medium demo's 刘亮 read -95 %)."""
    wh = company_served
    names = ["leads", "won_amount", *SPEND_BASED]
    whole = ask(wh, Request.of(names), MANAGER)
    pick = f"SELECT {dim} FROM lead_facts WHERE {dim} IS NOT NULL ORDER BY owner = 'rep1' DESC, 1 LIMIT 1"
    chosen = wh.sql(pick, user=MANAGER).item()
    for by in ((), ("channel",)):
        got = ask(wh, Request.of(names, by, {dim: chosen}, with_total=bool(by)), MANAGER)
        assert {n: got.scopes[n] for n in names} == {"leads": "rows", "won_amount": "rows"} | dict.fromkeys(
            SPEND_BASED, "company"
        )
        assert value(got, "leads") < value(whole, "leads") and got.unsplit == (dim,)
        for name in SPEND_BASED:  # the company's figure, the same as unfiltered
            assert value(got, name) == pytest.approx(value(whole, name)), (by, name)
    assert value(got, "roi") == pytest.approx(4.5)
    assert [label("roi", got.scopes["roi"], lang) for lang in ("zh", "en")] == ["全公司投资回报率", "Company ROI"]
    # a sales rep's company ROI does not take a region either; a figure of their own that a filter cannot
    # narrow (contracts have no channel) is not shown rather than shown unfiltered
    mine = ask(wh, Request.of(["roi"], filters={"region": chosen}), SALES)
    assert value(mine, "roi") == pytest.approx(4.5)
    theirs = ask(wh, Request.of(["contract_value", "leads"], filters={"channel": "paid_search"}), SALES)
    assert theirs.hidden == ("contract_value",) and "contract_value" not in theirs.frame.columns


@pytest.mark.parametrize("user", [MANAGER, SALES], ids=["manager", "sales"])
def test_the_leaderboard_counts_wins_by_win_date_under_a_name_of_its_own(
    company_served: Warehouse, user: Principal
) -> None:
    """The leaderboard's columns are the layer's by-win-date metrics, split by owner: the same numbers, and
    never headed 赢单金额 / Won-deal amount, which names the figure by the lead's creation date."""
    wh = company_served
    board = wh.run_query("sales_leaderboard", {"start": "2026-03-10", "end": "2026-04-30"}, user=user)
    names = ["won_deals_by_win_date", "won_amount_by_win_date"]
    assert board.columns == ["owner", *names]
    split = ask(wh, Request.of(names, ["owner"], start=date(2026, 3, 10), end=date(2026, 4, 30)), user).frame
    assert sorted(board.rows()) == sorted(split.with_columns(pl.col("owner").fill_null("(unassigned)")).rows())
    assert board["won_amount_by_win_date"].sum() > 0
    for lang in LANGS:
        heads = [heading(c, lang) for c in names]
        assert heads == [t(f"metric.{n}", lang) for n in names]
        assert not {t("metric.won_amount", lang), t("metric.won_deals", lang)} & set(heads)


def test_roi_without_spend_is_a_dash(company_served: Warehouse) -> None:
    """Website has leads and no spend: no ROI (not -100 %, not 0), shown as "—"."""
    answer = ask(company_served, Request.of(["leads", "roi"], filters={"channel": "website"}), MANAGER)
    assert value(answer, "leads") == 10 and value(answer, "roi") is None
    assert show_value("roi", value(answer, "roi"), "zh") == "—"


class Served(Warehouse):
    """The company's warehouse, serving the manifest version the test sets."""

    served = 1

    @property
    def version(self) -> int:
        return self.served


def test_the_companys_figure_is_read_once_per_manifest_for_every_rep(
    company_read: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each sales rep's page shows the company's ROI; it is read over every row once for the manifest being
    served, and again when a new one is (never a figure of the data before a refresh)."""
    wh, other = Served(company_read), Principal("s2", "sales", "rep2")  # its own: it counts the reads
    readers: list[Principal | None] = []  # who each query ran as
    run = wh.sql

    def counted(*args: Any, **kwargs: Any) -> pl.DataFrame:
        readers.append(kwargs.get("user"))
        return run(*args, **kwargs)

    monkeypatch.setattr(wh, "sql", counted)
    shown = [value(ask(wh, Request.of(["roi", "leads"]), rep), "roi") for rep in (SALES, other, SALES)]
    assert shown == [pytest.approx(4.5)] * 3 and readers.count(SYSTEM) == 1
    assert value(ask(wh, Request.of(["leads"]), SALES), "leads") == 10 and readers[-1] == SALES  # own rows: asked
    ask(wh, Request.of(["roi"], filters={"channel": "paid_search"}), SALES)  # another question: read apart
    assert readers.count(SYSTEM) == 2
    wh.served = 2  # a refresh published a new manifest
    assert value(ask(wh, Request.of(["roi"]), SALES), "roi") == pytest.approx(4.5) and readers.count(SYSTEM) == 3


def test_a_split_adds_up_to_its_total_row(company_served: Warehouse) -> None:
    answer = ask(company_served, Request.of(["leads", "won_amount", "roi"], ["channel"], with_total=True), MANAGER)
    rows = answer.frame.filter(~pl.col("is_total"))
    assert rows["won_amount"].sum() == value(answer, "won_amount") == 22_000
    assert dict(zip(rows["channel"], rows["roi"], strict=True))["paid_search"] == pytest.approx(6.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[metrics.x]\nlabel = { zh = "x" }\nexpr = "1"\nunit = "count"\nadditive = true\n',
         "[metrics.x] label needs zh and en"),
        ('[metrics.x]\nlabel = { zh = "x", en = "x" }\nhelp = { zh = "x", en = "x" }\nexpr = "{y}"\nunit = "count"\n'
         "additive = true\n", "reads 'y', which is not a measure metric"),
        ('[metrics.x]\nlabel = { zh = "x", en = "x" }\nhelp = { zh = "x", en = "x" }\nexpr = "1"\nunit = "yen"\n',
         "[metrics.x] unit: one of count, money, pct"),
        ('[metrics.x]\nlabel = { zh = "x", en = "x" }\nhelp = { zh = "x", en = "x" }\nexpr = "1"\nunit = "count"\n'
         'additive = true\nroles.boss = "rows"\n', "roles.boss: no role 'boss'"),
    ],
)  # fmt: skip
def test_a_bad_definition_names_the_metric_and_the_key(text: str, message: str) -> None:
    with pytest.raises(MetricError, match=re.escape(message)):
        parse(text)


def test_an_unknown_metric_or_dimension_is_a_clear_error(company_served: Warehouse) -> None:
    wh = company_served
    with pytest.raises(MetricError, match="no metric named 'revenue'"):
        ask(wh, Request.of(["revenue"]), MANAGER)
    with pytest.raises(MetricError, match="spend cannot be split by region"):
        ask(wh, Request.of(["spend"], ["region"]), MANAGER)


# -- the same number everywhere --------------------------------------------------------------------
def _cockpit(company: Settings, monkeypatch: pytest.MonkeyPatch, role: str) -> AppTest:
    monkeypatch.setattr(auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    auth.add_user(company, role, role, PASSWORD, "rep1" if role == "sales" else None)
    monkeypatch.delenv("COCKPIT_NO_AUTH", raising=False)
    monkeypatch.setenv(CONFIG_ENV, str(company.base_dir / "cockpit.toml"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    if at.sidebar.radio[0].value != "en":
        at.sidebar.radio[0].set_value("en").run()
    at.text_input[0].input(role)
    at.text_input[1].input(PASSWORD)
    at = at.button[0].click().run()
    assert not at.exception, at.exception
    return at


@pytest.mark.usefixtures("fresh_caches")
@pytest.mark.parametrize(
    ("role", "owner", "amount"), [("manager", None, 22_000), ("analyst", None, 22_000), ("sales", "rep1", 7_000)]
)
def test_won_amount_is_the_same_on_every_surface_for_each_role(
    company: Settings, monkeypatch: pytest.MonkeyPatch, role: str, owner: str | None, amount: float
) -> None:
    user = Principal(role, role, owner)
    # the cockpit's tile and its channel table's total
    at = _cockpit(company, monkeypatch, role)
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["Won-deal amount"] == f"¥{amount:,.0f}"
    channel_table = pl.from_pandas(at.dataframe[-1].value)
    assert channel_table["won_amount"].sum() == amount
    if role == "sales":  # the company's ROI, said to be the company's; no ROI column per channel
        assert tiles["Company ROI"] == "450%" and "ROI" not in tiles
        assert "roi" not in channel_table.columns
    else:
        assert tiles["ROI"] == "450%"
    # Explore's won amount, as this user
    spec = Spec("leads", (), ("revenue",))
    query = build_query(spec)
    assert shape(spec, query, Warehouse(company).sql(query.sql, query.params, user=user)).totals["revenue"] == amount
    # the monthly report for March (every lead of the company was created in March 2026)
    report = ReportConfig(name="r", to=["x@example.com"], period="month", role=role, owner=owner, language="en")
    digest = build(company, report, now=datetime(2026, 4, 2, 9, tzinfo=UTC), charts=False)
    assert {k.label: k.value for k in digest.kpis}["Won-deal amount"] == f"¥{amount:,.0f}"
    assert digest.channels["won_amount"].sum() == amount
    # cockpit query --metric, as this user
    args = ["-c", str(company.base_dir / "cockpit.toml"), "query", "--metric", "won_amount", "--by", "channel"]
    result = CliRunner().invoke(app, [*args, "--user", role, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert sum(r["won_amount"] for r in json.loads(result.stdout)) == amount


def test_cockpit_query_metric_says_what_it_cannot_show_a_sales_rep(company: Settings) -> None:
    auth.add_user(company, "rep", "sales", PASSWORD, "rep1")
    args = ["-c", str(company.base_dir / "cockpit.toml"), "query", "--user", "rep", "--format", "json"]
    result = CliRunner().invoke(app, [*args, "--metric", "roi", "--metric", "leads", "--param", "start=2026-03-01"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"roi": 4.5, "leads": 10}]
    assert "roi: the company's figure" in result.stderr
    bad = CliRunner().invoke(app, [*args, "--metric", "roi", "--param", "start=March"])
    assert bad.exit_code != 0 and "start must be a date" in str(bad.exception)  # main() prints it, no traceback


def test_an_alert_watches_a_metric_by_name(company: Settings) -> None:
    from dashboard.ops.alerts import evaluate
    from tests.test_alerts import FRIDAY, rule
    from tests.test_notify_servers import with_config

    extra = 'query = "metrics"\ncolumn = "leads"\nby = ["channel"]\nchange_pct = 10\nperiod = "week"'
    toml = '[notifications]\n[[notifications.channels]]\nname = "x"\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\n'
    run = evaluate(with_config(company, toml + rule("leads", "metric_change", '"x"', extra)), FRIDAY)
    # week 2–8 March against 9–15 March: trade_show 6 → 7, website 7 → 2, unknown 1 → 0; paid_search 7 → 7
    assert {f.subject for f in run.findings} == {"channel=trade_show", "channel=website", "channel=unknown"}
    assert run.errors == []
    bad = 'query = "metrics"\ncolumn = "revenue"\nchange_pct = 10'
    run = evaluate(with_config(company, rule("bad", "metric_change", '"x"', bad)), FRIDAY)  # beside the first
    assert any("no metric named 'revenue'" in e for e in map(str, run.errors))


def test_the_company_figure_reads_as_one_english_phrase() -> None:
    """Filtered to one rep, the channels page headed "Company Marketing spend" (the label's capital kept inside
    the phrase): a word starts small inside it, an acronym stays as it is."""
    assert label("spend", "company", "en") == "Company marketing spend"
    assert label("cost_per_lead", "company", "en") == "Company cost per lead"
    assert label("roi", "company", "en") == "Company ROI"
    assert label("spend", "company", "zh") == "全公司市场费用"
    assert label("spend", "rows", "en") == "Marketing spend"
