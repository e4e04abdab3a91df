"""The churn page, the cockpit tile and ``cockpit churn`` on real refreshed snapshots: a shop whose
only source is a plain orders file (customer, date, amount), and the small multi-source company."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from dashboard.access import auth
from dashboard.cli import app
from dashboard.components import labels
from dashboard.components.churn_view import LIST_LIMIT
from dashboard.core.config import CONFIG_ENV, Settings, load_settings
from dashboard.core.store import Store
from dashboard.derived.tables import attach_views
from dashboard.i18n import t, units_kept
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.test_churn import synthetic_shop
from tests.test_pages import APP, metrics, open_app, texts

pytestmark = pytest.mark.usefixtures("fresh_caches")

CLI = "from dashboard.cli import main; main()"
PASSWORD = "correct horse battery"
SHOP = """
data_dir = "data"
language = "en"

[[sources]]
name = "shop"
kind = "csv"
  [[sources.tables]]
  entity = "orders"
  path = "orders.csv"
  columns = { customer_ref = "customer", ordered_at = "date", amount = "amount" }
"""


@pytest.fixture(scope="module")
def _shop_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shop")
    orders, _ = synthetic_shop()
    orders.with_columns(pl.col("date").dt.strftime("%Y-%m-%d")).write_csv(root / "orders.csv")
    (root / "cockpit.toml").write_text(SHOP, encoding="utf-8")
    assert refresh(load_settings(root / "cockpit.toml")).exit_code == 0
    return root


@pytest.fixture
def shop(_shop_template: Path) -> Settings:
    return load_settings(_shop_template / "cockpit.toml")


@pytest.fixture(scope="module")
def shop_served(_shop_template: Path) -> Iterator[Warehouse]:
    """One Warehouse over the shop for the module's questions (each new one builds its views again)."""
    warehouse = Warehouse(load_settings(_shop_template / "cockpit.toml"))
    yield warehouse
    warehouse.close()


def _golden_keys(settings: Settings) -> dict[str, str]:
    """The customer_key identity resolution gave each of the shop's linked customers, by the shop's ref."""
    store = Store(settings.data_path)
    con = duckdb.connect()
    try:
        attach_views(con, store, store.read_manifest(), in_memory=frozenset())
        rows = con.sql(
            "SELECT source_record_id, customer_key FROM identity_links WHERE source_system = 'shop'"
        ).fetchall()
    finally:
        con.close()
    return {str(ref): str(key) for ref, key in rows}


def _golden_key(settings: Settings, ref: str, keys: dict[str, str] | None = None) -> str:
    """The customer_key identity resolution gave the shop's customer ``ref`` (``shop:<ref>`` when unlinked);
    ``keys``: _golden_keys' answer, read once for many customers."""
    return (keys if keys is not None else _golden_keys(settings)).get(ref, f"shop:{ref}")


def _churn_page(settings: Settings, monkeypatch: pytest.MonkeyPatch, lang: str) -> object:
    at = open_app(settings, monkeypatch, lang)
    at.switch_page("pages/churn.py").run()
    assert not at.exception, at.exception
    return at


def test_the_page_lists_customers_by_revenue_at_risk_each_linking_to_its_profile(
    shop: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _churn_page(shop, monkeypatch, "en")
    assert [x.value for x in at.title] == ["Churn"]  # type: ignore[attr-defined]
    shown = pl.from_pandas(at.dataframe[0].value)  # type: ignore[attr-defined]
    assert shown.height == 902 and shown["rank"].to_list()[:3] == [1, 2, 3]
    assert shown["profile"].str.starts_with("customer_360?customer=").all() and shown["profile"].n_unique() == 902
    assert f"customer_360?customer={_golden_key(shop, 'STEADY')}" in shown["profile"].to_list()
    assert shown["expected_value_at_risk"].is_sorted(descending=True)
    card = metrics(at)  # type: ignore[arg-type]
    assert {"High risk", "Medium risk", "Low risk", "Backtest AUC", "Precision, top 10 %"} <= set(card)
    bands = sum(int(card[b].replace(",", "")) for b in ("High risk", "Medium risk", "Low risk"))
    assert bands == 902
    assert 0.5 < float(card["Backtest AUC"]) < 1


def test_the_list_names_each_customer_and_gives_the_reasons_in_full(
    company_read: Settings, company_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Who (name, company, owner, region), how much is at risk and why, before the scores (issue 20, point 3)."""
    at = _churn_page(company_read, monkeypatch, "en")
    grid = at.dataframe[0]  # type: ignore[attr-defined]
    first = pl.from_pandas(grid.value).row(0, named=True)
    top = company_served.run_query("churn_list", {"lang": "en", "limit": 1}, user=SYSTEM).row(0, named=True)
    assert top["name"]  # from the golden record, as the company (when known)
    for column in ("name", "company", "owner", "region", "expected_value_at_risk"):
        assert first[column] == top[column], column
    reasons = [r for r in (top["reason_1"], top["reason_2"], top["reason_3"]) if r]
    assert reasons and first["reasons"] == "; ".join(units_kept(r) for r in reasons)
    # a number and its unit do not wrap apart in the cell (the walk found 累计 22 / 天有下单): a no-break space
    assert re.search(r"\d\u00a0[a-z]", first["reasons"]) and not re.search(r"\d [a-z]", first["reasons"])
    order = list(grid.proto.column_order)
    assert order[:8] == ["rank", "reasons", "name", "company", "owner", "region", "expected_value_at_risk", "risk_band"]
    assert "reason_1" not in order


def _tiles(at: object) -> dict[str, int]:
    card = metrics(at)  # type: ignore[arg-type]
    return {b: int(card[b].replace(",", "")) for b in ("High risk", "Medium risk", "Low risk")}


def _numbers(caption: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", caption)]


def test_the_caption_counts_what_the_band_tiles_count(shop: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The list holds at most LIST_LIMIT rows: its caption still counts the customers the tiles add up to,
    and says how many are listed and how many are past the limit (issue 20 point 3: a caption said 2,000
    while the bands added up to 2,506)."""
    from dashboard.components import churn_view

    monkeypatch.setattr(churn_view, "LIST_LIMIT", 500)
    at = _churn_page(shop, monkeypatch, "en")
    tiles = _tiles(at)
    assert sum(tiles.values()) == 902
    listed = pl.from_pandas(at.dataframe[0].value).height  # type: ignore[attr-defined]
    caption = next(c.value for c in at.caption if "listed" in c.value)  # type: ignore[attr-defined]
    assert caption.startswith("500 of the 902 customers in the bands above listed") and listed == 500
    assert "402 more are past the list's 500 rows" in caption  # 500 + 402 = 902, what the tiles add up to

    at.selectbox(key="churn_band").set_value("medium").run()  # type: ignore[attr-defined]
    caption = next(c.value for c in at.caption if "listed" in c.value)  # type: ignore[attr-defined]
    medium, listed = tiles["Medium risk"], pl.from_pandas(at.dataframe[0].value).height  # type: ignore[attr-defined]
    assert _numbers(caption)[:2] == [min(medium, 500), medium] and listed == min(medium, 500)
    assert "in the band Medium risk" in caption

    chinese = _churn_page(shop, monkeypatch, "zh")
    caption = next(c.value for c in chinese.caption if "列出" in c.value)  # type: ignore[attr-defined]
    assert (
        caption.startswith("上方各风险等级共 902 位客户，列出 500 位") and "另有 402 位超出名单的 500 行上限" in caption
    )


def test_filters_narrow_the_list(shop: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _churn_page(shop, monkeypatch, "en")
    high = int(metrics(at)["High risk"].replace(",", ""))  # type: ignore[arg-type]
    at.selectbox(key="churn_band").set_value("high").run()  # type: ignore[attr-defined]
    shown = pl.from_pandas(at.dataframe[0].value)  # type: ignore[attr-defined]
    assert shown.height == high and set(shown["risk_band"]) == {"High risk"}


def test_the_page_in_chinese_names_the_reasons_in_chinese(shop: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _churn_page(shop, monkeypatch, "zh")
    shown = pl.from_pandas(at.dataframe[0].value)  # type: ignore[attr-defined]
    assert any("天" in r for r in shown["reason_1"].drop_nulls().to_list())


def test_the_cockpit_tile_counts_the_high_band_once_validated(shop: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _churn_page(shop, monkeypatch, "en")
    high = metrics(at)["High risk"]  # type: ignore[arg-type]
    at.switch_page("pages/cockpit.py").run()  # type: ignore[attr-defined]
    assert metrics(at)["Customers at risk"] == high  # type: ignore[arg-type]


def test_unvalidated_scores_say_so_and_keep_the_tile_hidden(
    company_read: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _churn_page(company_read, monkeypatch, "en")  # 24 days of orders: no backtest possible
    assert any("Not enough history" in w.value for w in at.warning)  # type: ignore[attr-defined]
    assert "Backtest AUC" not in metrics(at)  # type: ignore[arg-type]
    at.switch_page("pages/cockpit.py").run()  # type: ignore[attr-defined]
    assert "Customers at risk" not in metrics(at)  # type: ignore[arg-type]


def test_cli_prints_the_scores_and_the_backtest(shop: Settings) -> None:
    runner = CliRunner()
    config = str(shop.base_dir / "cockpit.toml")
    out = runner.invoke(app, ["-c", config, "churn", "--format", "csv"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "customer_key,risk,expected_value_at_risk,reason_1,reason_2,reason_3,consent"
    assert len(lines) == 1 + 902
    back = runner.invoke(app, ["-c", config, "churn", "backtest", "--format", "json"])
    assert back.exit_code == 0 and [r in back.stdout for r in ('"model"', '"recency"', '"bgnbd"')] == [True] * 3
    earlier = runner.invoke(app, ["-c", config, "churn", "--as-of", "2025-12-01", "--horizon-days", "60", "-f", "json"])
    assert earlier.exit_code == 0, earlier.output
    same_day = runner.invoke(app, ["-c", config, "churn", "--as-of", "2025-12-01", "-f", "json"])
    at_60, at_90 = json.loads(earlier.stdout), json.loads(same_day.stdout)
    assert len(at_60) == len(at_90) > 0  # the same customers, scored for another horizon
    assert {r["customer_key"]: r["risk"] for r in at_60} != {r["customer_key"]: r["risk"] for r in at_90}
    bad = subprocess.run(  # the installed entry point, which turns the error into its exit code
        [sys.executable, "-c", CLI, "-c", config, "churn", "--as-of", "2025-02-30"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--as-of must be a date" in bad.stderr and "Traceback" not in bad.stderr


def test_the_backtest_says_which_method_serves_and_on_what_evidence(shop: Settings, shop_served: Warehouse) -> None:
    from dashboard.derived.churn.card import why_serving

    card = shop_served.run_query("churn_model_card", user=SYSTEM)
    model = card.row(by_predicate=pl.col("method") == "model", named=True)
    chosen = card.row(by_predicate=pl.col("chosen"), named=True)
    assert chosen["serve_reason"] == "best_auc"
    windows, auc = f"{model['backtest_windows']:,}", f"{chosen['auc']:.3f}"
    english = why_serving(card, "en")
    assert english.startswith(f"{t('churn.method.' + chosen['method'], 'en')} serves: the best AUC on the backtest")
    assert auc in english and f"trained on {windows} customer windows" in english
    chinese = why_serving(card, "zh")
    name = t("churn.method." + chosen["method"], "zh")
    apart = " " if name[0].isascii() else ""  # 由 BG/NBD 基线评分, 由流失模型评分 (tests/test_i18n_spacing.py)
    assert chinese.startswith(f"由{apart}{name}评分：回测 AUC 最高")
    assert auc in chinese and f"训练用了 {windows} 个客户窗口" in chinese
    # the chosen method is named once (not again among the others), and every other method with its AUC
    assert chinese.count(name) == 1
    others = card.filter(~pl.col("chosen") & pl.col("auc").is_not_null()).iter_rows(named=True)
    for row in others:
        assert f"{t('churn.method.' + row['method'], 'zh')} {row['auc']:.3f}" in chinese
    out = CliRunner().invoke(app, ["-c", str(shop.base_dir / "cockpit.toml"), "churn", "backtest"])
    assert out.exit_code == 0, out.output
    assert why_serving(card, shop.language) in out.stdout
    assert "backtest_windows" in out.stdout


def test_the_page_says_on_what_evidence_the_method_serves(
    shop: Settings, shop_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard.derived.churn.card import why_serving

    card = shop_served.run_query("churn_model_card", user=SYSTEM)
    for lang in ("en", "zh"):
        at = _churn_page(shop, monkeypatch, lang)
        assert why_serving(card, lang) in [str(m.value) for m in at.markdown]  # type: ignore[attr-defined]


def test_the_list_counts_days_with_an_order_and_names_the_column_so(shop: Settings, shop_served: Warehouse) -> None:
    """The model's order feature counts days with an order; the list calls it that (下单天数), so it is not
    read as Customer 360's order count (two orders on one day: one day, two orders)."""
    orders = pl.read_csv(shop.base_dir / "orders.csv")
    days = orders.group_by("customer").agg(pl.col("date").n_unique().alias("days"), pl.len().alias("orders"))
    assert (days["days"] < days["orders"]).any()  # some customers ordered twice on a day
    listed = shop_served.run_query("churn_list", {"lang": "zh"}, user=SYSTEM)
    assert "order_days" in listed.columns and "orders" not in listed.columns
    linked = _golden_keys(shop)
    keys = {_golden_key(shop, ref, linked): ref for ref in ("STEADY", "ONCE", *days.sort("orders")["customer"].tail(3))}
    by_ref = dict(zip(days["customer"], days["days"], strict=True))
    got = dict(zip(listed["customer_key"], listed["order_days"], strict=True))
    assert {ref: got[key] for key, ref in keys.items()} == {ref: by_ref[ref] for ref in keys.values()}
    assert (t("col.order_days", "zh"), t("col.order_days", "en")) == ("下单天数", "Days with an order")


def test_days_without_an_order_are_counted_to_the_data_s_last_day_alike_everywhere(
    shop: Settings, shop_served: Warehouse
) -> None:
    """Orders dated to the day, scored the day after the data: a customer who ordered on the data's last day has 0
    days without one, not 1, in the list, on Customer 360 and in the reasons' words (issue 22, trust)."""
    orders = pl.read_csv(shop.base_dir / "orders.csv", try_parse_dates=True)
    last_day = orders["date"].max()
    counted = orders.group_by("customer").agg((pl.lit(last_day) - pl.col("date").max()).dt.total_days().alias("days"))
    linked = _golden_keys(shop)
    expected = {_golden_key(shop, ref, linked): days for ref, days in counted.iter_rows()}
    warehouse = shop_served
    listed = warehouse.run_query("churn_list", {"lang": "en"}, user=SYSTEM)
    assert listed.height == len(expected)
    assert dict(zip(listed["customer_key"], listed["days_inactive"], strict=True)) == expected
    assert 0 in expected.values()
    said = {}
    for row in listed.iter_rows(named=True):
        for reason in (row["reason_1"], row["reason_2"], row["reason_3"]):
            m = re.match(r"(?:no order in|only one order,) (\d+) days?", reason or "")
            if m:
                said[row["customer_key"]] = int(m[1])
            elif reason and reason.startswith(("last order on the data's last day", "only one order, on the data's")):
                said[row["customer_key"]] = 0
    assert said and said == {key: expected[key] for key in said}
    for ref in ("ONCE", orders.filter(pl.col("date") == last_day)["customer"][0]):
        key = _golden_key(shop, ref, linked)
        profile = warehouse.run_query("customer_churn", {"customer_key": key, "lang": "en"}, user=SYSTEM)
        assert profile["days_inactive"].to_list() == [expected[key]], ref


def _signed_in(settings: Settings, monkeypatch: pytest.MonkeyPatch, user: str, page: str, **params: str) -> AppTest:
    monkeypatch.delenv("COCKPIT_NO_AUTH", raising=False)
    monkeypatch.setenv(CONFIG_ENV, str(settings.base_dir / "cockpit.toml"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input[0].input(user)
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    if at.sidebar.radio[0].value != "en":
        at.sidebar.radio[0].set_value("en").run()
    for name, value in params.items():
        at.query_params[name] = value
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _read(at: AppTest) -> str:
    """The page's text as read (the Markdown escapes taken out)."""
    return texts(at).replace("\\", "")


def test_a_sales_rep_ranks_their_own_customers_from_1_with_the_company_rank_beside_it(
    small_demo: Settings, demo_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rep's list read 37, 152, 890, ...: the company's ranks of their customers (the walk, session 18). A rep
    works their own list top down: it is numbered 1, 2, 3, ... among their customers, the company's rank beside
    it, and Customer 360 gives the same two numbers; a manager, who sees the whole list, reads one rank."""
    everyone = demo_served.run_query("churn_list", {"lang": "en"}, user=SYSTEM)
    per_owner = everyone.filter(pl.col("owner").is_not_null()).group_by("owner").agg(pl.len(), pl.col("rank").min())
    owner = per_owner.filter((pl.col("len") >= 3) & (pl.col("rank") > 1)).sort("owner")["owner"][0]
    theirs = everyone.filter(pl.col("owner") == owner).with_row_index("own", 1)
    expected = theirs.filter(pl.col("consent") != "no")  # the outreach list; who said no is listed apart
    monkeypatch.setattr(auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    auth.add_user(small_demo, "rep", "sales", PASSWORD, owner)
    auth.add_user(small_demo, "boss", "manager", PASSWORD, None)

    at = _signed_in(small_demo, monkeypatch, "rep", "churn")
    grid = at.dataframe[0]
    shown = pl.from_pandas(grid.value)
    assert shown["rank"].to_list() == expected["own"].to_list()
    assert shown["company_rank"].to_list() == expected["rank"].to_list()
    assert theirs["own"].to_list() == list(range(1, theirs.height + 1)) and theirs["rank"][-1] > theirs.height
    assert list(grid.proto.column_order)[:3] == ["rank", "company_rank", "reasons"]

    third = expected.row(min(2, expected.height - 1), named=True)
    c360 = _signed_in(small_demo, monkeypatch, "rep", "customer_360", customer=third["customer_key"])
    assert f"no. {third['own']} on your warning list (no. {third['rank']} company-wide;" in _read(c360)

    boss = pl.from_pandas(_signed_in(small_demo, monkeypatch, "boss", "churn").dataframe[0].value)
    assert "company_rank" not in boss.columns
    listed = everyone.head(LIST_LIMIT).filter(pl.col("consent") != "no")  # the list's row limit, then the split
    assert boss["rank"].to_list() == listed["rank"].to_list()
    manager_c360 = _signed_in(small_demo, monkeypatch, "boss", "customer_360", customer=third["customer_key"])
    assert f"no. {third['rank']} on the warning list (scored" in _read(manager_c360)


def test_a_sales_rep_opening_another_owners_customer_is_told_it_may_be_theirs(
    small_demo: Settings, demo_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rep following a manager's link to another owner's customer read "no customer with the key … it may have
    been merged" (the walk, session 25). The rep reads that it may be another owner's, in the same words for a key
    nobody has (nothing says which customers exist); a manager reads that there is no such customer."""
    everyone = demo_served.run_query("churn_list", {"lang": "en"}, user=SYSTEM)
    owners = everyone.filter(pl.col("owner").is_not_null())["owner"].unique().sort()
    theirs = everyone.filter(pl.col("owner") == owners[1])["customer_key"][0]
    monkeypatch.setattr(auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    auth.add_user(small_demo, "rep0", "sales", PASSWORD, owners[0])  # names no other test of this demo takes
    auth.add_user(small_demo, "boss0", "manager", PASSWORD, None)

    def warned(user: str, key: str) -> list[str]:
        return [w.value for w in _signed_in(small_demo, monkeypatch, user, "customer_360", customer=key).warning]

    for key in (theirs, "C000000000000"):
        assert warned("rep0", key) == [t("c360.not_found.own", "en", customer=key)]
    assert warned("boss0", "C000000000000") == [t("c360.not_found", "en", customer="C000000000000")]
    assert warned("boss0", theirs) == []  # the manager opens it


def test_filters_that_leave_nobody_say_so_without_an_empty_grid(
    small_demo: Settings, demo_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An owner, a segment and a band with nobody in them showed the caption's 0 over an empty grid (Streamlit's
    English "empty" on the Chinese page) and CSV/Excel buttons (the walk, session 19)."""
    everyone = demo_served.run_query("churn_list", {}, user=SYSTEM)
    seen = set(everyone.select("owner", "segment", "risk_band").drop_nulls().iter_rows())
    owner = everyone["owner"].drop_nulls().sort()[0]
    segment, band = next(
        (s, b) for s in ("high", "mid", "low", "none") for b in ("high", "medium", "low") if (owner, s, b) not in seen
    )
    at = _churn_page(small_demo, monkeypatch, "zh")
    for key, value in (("churn_owner", owner), ("churn_segment", segment), ("churn_band", band)):
        at.selectbox(key=key).set_value(value).run()  # type: ignore[attr-defined]
    assert not at.exception, at.exception  # type: ignore[attr-defined]
    caption = at.caption[0].value  # type: ignore[attr-defined]
    assert caption.startswith(
        t("churn.list.caption", "zh", scope=labels.value("risk_band", band, "zh"), total="0", listed="0")
    )
    assert len(at.dataframe) == 1 and len(at.get("download_button")) == 0  # type: ignore[attr-defined]  # the model card's table only


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_model_card_and_the_profile_name_the_data_s_last_day_not_the_day_after(
    shop: Settings, monkeypatch: pytest.MonkeyPatch, lang: str
) -> None:
    """Scores are made as of the day after the data's last one ("data before that day"): the demo's churn page
    read 评分日 tomorrow on today's screen. The card and the profile name the last day the score read."""
    from dashboard.components import fmt

    last_day = pl.read_csv(shop.base_dir / "orders.csv", try_parse_dates=True)["date"].max()
    through = {"en": "data through {}", "zh": "数据截至 {}"}[lang].format(fmt.day(last_day, lang))
    after = fmt.day(last_day + timedelta(days=1), lang)
    at = _churn_page(shop, monkeypatch, lang)
    card = next(c.value for c in at.caption if through in c.value)  # type: ignore[attr-defined]
    assert after not in card

    profile = open_app(shop, monkeypatch, lang)
    profile.query_params["customer"] = _golden_key(shop, "ONCE")
    profile.switch_page("pages/customer_360.py").run()
    assert not profile.exception, profile.exception
    [summary] = [m.value.replace("\\", "") for m in profile.markdown if m.value.startswith(":") and "·" in m.value]
    assert through in summary and after not in summary
