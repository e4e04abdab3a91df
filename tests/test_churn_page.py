"""The churn page, the cockpit tile and ``cockpit churn`` on real refreshed snapshots: a shop whose
only source is a plain orders file (customer, date, amount), and the small multi-source company."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from dashboard.cli import app
from dashboard.config import Settings, load_settings
from dashboard.pipeline.refresh import refresh
from tests.test_churn import synthetic_shop
from tests.test_pages import metrics, open_app

pytestmark = pytest.mark.usefixtures("fresh_caches")

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
    assert shown["profile"][0].startswith("customer_360?customer=shop:")
    assert "customer_360?customer=shop:STEADY" in shown["profile"].to_list()
    assert shown["Revenue at risk"].is_sorted(descending=True)
    card = metrics(at)  # type: ignore[arg-type]
    assert {"High risk", "Medium risk", "Low risk", "Backtest AUC", "Precision, top 10 %"} <= set(card)
    bands = sum(int(card[b].replace(",", "")) for b in ("High risk", "Medium risk", "Low risk"))
    assert bands == 902
    assert 0.5 < float(card["Backtest AUC"]) < 1


def test_filters_narrow_the_list(shop: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _churn_page(shop, monkeypatch, "en")
    high = int(metrics(at)["High risk"].replace(",", ""))  # type: ignore[arg-type]
    at.selectbox(key="churn_band").set_value("high").run()  # type: ignore[attr-defined]
    shown = pl.from_pandas(at.dataframe[0].value)  # type: ignore[attr-defined]
    assert shown.height == high and set(shown["Risk band"]) == {"High risk"}


def test_the_page_in_chinese_names_the_reasons_in_chinese(shop: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _churn_page(shop, monkeypatch, "zh")
    shown = pl.from_pandas(at.dataframe[0].value)  # type: ignore[attr-defined]
    assert any("天" in r for r in shown["原因一"].drop_nulls().to_list())


def test_the_cockpit_tile_counts_the_high_band_once_validated(shop: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _churn_page(shop, monkeypatch, "en")
    high = metrics(at)["High risk"]  # type: ignore[arg-type]
    at.switch_page("pages/cockpit.py").run()  # type: ignore[attr-defined]
    assert metrics(at)["Customers at risk"] == high  # type: ignore[arg-type]


def test_unvalidated_scores_say_so_and_keep_the_tile_hidden(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _churn_page(company, monkeypatch, "en")  # 24 days of orders: no backtest possible
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
    assert lines[0] == "customer_key,risk,expected_value_at_risk,reason_1,reason_2,reason_3"
    assert len(lines) == 1 + 902
    back = runner.invoke(app, ["-c", config, "churn", "backtest", "--format", "json"])
    assert back.exit_code == 0 and [r in back.stdout for r in ('"model"', '"recency"', '"bgnbd"')] == [True] * 3
    earlier = runner.invoke(app, ["-c", config, "churn", "--as-of", "2025-12-01", "--horizon-days", "60", "-f", "json"])
    assert earlier.exit_code == 0, earlier.output
    assert "in the last 60 days" in earlier.stdout or "no order in the last 120 days" in earlier.stdout
    bad = runner.invoke(app, ["-c", config, "churn", "--as-of", "2025-02-30"])
    assert bad.exit_code == 2 and "--as-of must be a date" in bad.output
