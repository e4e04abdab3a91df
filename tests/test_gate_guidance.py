"""A gate that guides (issue 21, point 2): a quarantine names both ways forward with the numbers, the
common thresholds are set per source in cockpit.toml, far-future dates are caught, and a repeated
header keeps both columns and is reported with both positions."""

from __future__ import annotations

import json
import re
import shlex
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from dashboard.cli import app
from dashboard.core.config import SourceQualityConfig, load_settings
from dashboard.core.errors import ConfigError
from dashboard.core.store import Store
from dashboard.ops.status import source_status
from dashboard.pipeline.refresh import refresh
from dashboard.pipeline.review import list_quarantined
from dashboard.pipeline.validate import apply_thresholds, load_suite_dict, validate
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from dashboard.sources import columns
from dashboard.sources import excel as excel_reader
from dashboard.sources import json as json_reader

CONFIG = """
data_dir = "data"
language = "en"

[quality]
data_docs = false
allow_quarantine_actions = true

[[sources]]
name = "crm_opps"
kind = "csv"
title = "CRM opportunities"
  [[sources.tables]]
  entity = "leads"
  path = "imports/opportunities.csv"
  columns = { lead_id = "mql_id", created_at = "engage_date", channel = "origin", owner = "sales_agent_id" }
"""


def _opportunities(root: Path, rows: int = 8800, without_date: int = 500, date: str = "2025-06-{day:02d}") -> Path:
    """A CRM opportunities export: ``without_date`` prospects have no engage date yet (a normal state)."""
    lines = ["mql_id,engage_date,origin,sales_agent_id,business_segment"]
    for i in range(rows):
        engaged = "" if i < without_date else date.format(day=1 + i % 28)
        lines.append(f"mql-{i:05d},{engaged},{('paid_search', 'organic', 'social')[i % 3]},agent-{i % 7},pet")
    path = root / "imports" / "opportunities.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _config(root: Path, extra: str = "") -> Path:
    cfg = root / "cockpit.toml"
    cfg.write_text(CONFIG + extra, encoding="utf-8")
    return cfg


def _run(*args: str) -> tuple[int, str]:
    out = CliRunner().invoke(app, list(args))
    return out.exit_code, out.output


def _setting(way_forward: list[str]) -> str:
    """The cockpit.toml lines the message suggests, as a user would copy them."""
    start = next(i for i, line in enumerate(way_forward) if line.strip() == "[sources.quality]")
    lines = []
    for line in way_forward[start:]:
        if not line.startswith("     "):
            break
        lines.append("  " + line.strip())
    return "\n".join(lines) + "\n"


def test_opportunities_export_is_quarantined_with_both_ways_forward(tmp_path: Path) -> None:
    _opportunities(tmp_path)
    cfg = _config(tmp_path)

    code, out = _run("-c", str(cfg), "refresh", "-q")

    assert code == 3
    settings = load_settings(cfg)
    [q] = list_quarantined(settings)
    assert "created_at': 500 rows failed (5.7%), at most 2% allowed" in out
    cockpit = f"cockpit --config {cfg.resolve()}"  # the printed commands name the config: they work from anywhere
    publish = f'{cockpit} quarantine publish crm_opps {q.snapshot_id} --reason "..."'
    assert publish in out
    assert "max_null_share = { created_at = 0.06 }" in out
    assert "500 of 8800 rows" in out and f"{cockpit} refresh crm_opps" in out
    # the same ways forward in Chinese, for the data-quality page of a Chinese session: same commands, same numbers
    zh = "\n".join(q.way_forward_zh)
    assert zh.startswith("两种处理方式：") and publish in zh and f"{cockpit} refresh crm_opps" in zh
    assert "max_null_share = { created_at = 0.06 }" in zh and "8800 行中的 500 行" in zh and "5.7% 为空" in zh
    assert not re.search(r"\b(rows|allowed|publish this|refresh again)\b", zh), zh
    # kept with the quarantine's validation result, so status, quarantine list and the page show it
    saved = json.loads((settings.data_path / "quarantine" / "crm_opps" / q.snapshot_id / "validation.json").read_text())
    assert saved["way_forward"] == q.way_forward and any(publish in line for line in q.way_forward)
    [status] = source_status(settings)
    assert status.last_attempt and status.last_attempt["way_forward"] == q.way_forward
    for command in (["status"], ["quarantine", "list"]):
        code, text = _run("-c", str(cfg), *command)
        assert publish in text and "max_null_share = { created_at = 0.06 }" in text, text

    # the one-off way, exactly as printed (its --config included), from another folder
    args = shlex.split(next(line for line in q.way_forward if "quarantine publish" in line))
    assert args[:3] == ["cockpit", "--config", str(cfg.resolve())]
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path.parent)
        code, text = _run(*args[1:-1], "engage dates come later for open prospects")
    assert code == 0, text
    assert Store(settings.data_path).read_manifest()["sources"]["crm_opps"]["snapshot_id"] == q.snapshot_id


def test_the_suggested_setting_publishes_the_next_refresh(tmp_path: Path) -> None:
    _opportunities(tmp_path)
    cfg = _config(tmp_path)
    [first] = refresh(load_settings(cfg)).sources
    assert first.status == "quarantined"

    cfg.write_text(cfg.read_text(encoding="utf-8") + _setting(first.way_forward), encoding="utf-8")
    settings = load_settings(cfg)
    assert settings.sources[0].quality.max_null_share == {"created_at": 0.06}
    [again] = refresh(settings).sources

    assert again.published, again.reasons
    assert again.rows == {"leads": 8300} and again.rejected_rows == 500  # set aside, not lost
    assert not again.way_forward


def test_every_blocking_check_gets_a_setting_that_lets_it_pass(tmp_path: Path) -> None:
    """Phones failing the format check and too few rows: one suggestion block, and it works."""
    lines = ["mql_id,engage_date,origin,phone"] + [
        f"mql-{i},2025-06-01,organic,{'13800138000' if i % 4 else 'call back'}" for i in range(40)
    ]
    (tmp_path / "imports").mkdir()
    (tmp_path / "imports" / "opportunities.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = _config(tmp_path, "  [sources.quality]\n  min_rows = 100\n")
    cfg.write_text(cfg.read_text().replace('sales_agent_id" }', 'sales_agent_id", phone = "phone" }'))
    [res] = refresh(load_settings(cfg)).sources
    assert res.status == "quarantined"
    text = "\n".join(res.way_forward)
    assert "max_invalid_share = { phone = 0.26 }" in text and "min_rows = 40" in text

    setting = _setting(res.way_forward)
    cfg.write_text(cfg.read_text().replace("  [sources.quality]\n  min_rows = 100\n", setting), encoding="utf-8")
    [again] = refresh(load_settings(cfg)).sources
    assert again.published, again.reasons


def test_a_batch_of_9999_dates_is_quarantined_and_the_last_good_snapshot_stays(tmp_path: Path) -> None:
    _opportunities(tmp_path, rows=1000, without_date=0)
    cfg = _config(tmp_path)
    settings = load_settings(cfg)
    [good] = refresh(settings).sources
    assert good.published

    _opportunities(tmp_path, rows=1000, without_date=0, date="9999-12-31")
    [bad] = refresh(settings).sources

    assert bad.status == "quarantined"
    [reason] = bad.reasons
    assert "1000 rows failed (100.0%)" in reason and "more than 365 days ahead" in reason and "9999-12-31" in reason
    assert "max_out_of_range_share = 1.0" in "\n".join(bad.way_forward)
    assert Store(settings.data_path).read_manifest()["sources"]["crm_opps"]["snapshot_id"] == good.snapshot_id
    volume = Warehouse(settings).run_query("lead_volume", {"grain": "month"}, user=SYSTEM)
    assert volume.height and not any(str(p).startswith("9999") for p in volume.get_column("period"))


def test_a_few_far_future_dates_are_a_warning_below_the_share(tmp_path: Path) -> None:
    path = _opportunities(tmp_path, rows=1000, without_date=0)
    text = path.read_text().replace(",2025-06-01,", ",9999-12-31,", 5)  # 5 of 1000: 0.5 % < 1 %
    path.write_text(text)
    [res] = refresh(load_settings(_config(tmp_path))).sources

    assert res.published
    [warning] = [w for w in res.warnings if "created_at" in w]
    assert "5 rows failed (0.5%)" in warning and "9999-12-31" in warning and "more than 365 days ahead" in warning


def test_the_date_range_and_its_share_are_set_per_source(tmp_path: Path) -> None:
    _opportunities(tmp_path, rows=100, without_date=0)
    cfg = _config(tmp_path, "  [sources.quality]\n  not_before = 2025-06-10\n  max_out_of_range_share = 0.2\n")
    [res] = refresh(load_settings(cfg)).sources
    assert res.status == "quarantined"  # days 1-9 of each 28: about a third, above 20 %
    assert "dates before 2025-06-10" in res.reasons[0]
    assert "max_out_of_range_share = 0.37" in "\n".join(res.way_forward)


def test_two_phone_columns_are_both_kept_and_reported(tmp_path: Path) -> None:
    (tmp_path / "imports").mkdir()
    rows = ["mql_id,engage_date,phone,origin,phone"]
    rows += [f"mql-{i},2025-06-01,1380013{i:04d},organic,1390013{i:04d}" for i in range(20)]
    (tmp_path / "imports" / "opportunities.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text().replace('sales_agent_id" }', 'sales_agent_id", phone = "phone" }'))
    settings = load_settings(cfg)
    [res] = refresh(settings).sources

    assert res.published, res.reasons
    expected = "opportunities.csv: header 'phone' appears twice (columns 3 and 5); kept as 'phone' and 'phone_2'"
    assert any(w.startswith(expected) for w in res.warnings), res.warnings
    attempt = Store(settings.data_path).attempts("crm_opps", limit=1)[0]
    [issue] = [i for i in attempt["issues"] if i["column"] == "phone" and "repeated" in i["problem"]]
    assert issue["problem"] == "header 'phone' repeated in opportunities.csv (columns 3, 5)"
    assert issue["count"] == 20
    assert [s["value"] for s in issue["samples"]] == ["column 3: read as 'phone'", "column 5: read as 'phone_2'"]
    snap = pl.read_parquet(settings.data_path / "snapshots" / "crm_opps" / res.snapshot_id / "leads.parquet")
    assert snap.get_column("phone").str.starts_with("1380013").all()

    # the second column is there to be mapped
    cfg.write_text(cfg.read_text().replace('phone = "phone" }', 'phone = "phone_2" }'))
    [second] = refresh(load_settings(cfg)).sources
    snap = pl.read_parquet(settings.data_path / "snapshots" / "crm_opps" / second.snapshot_id / "leads.parquet")
    assert snap.get_column("phone").str.starts_with("1390013").all()


def test_repeated_headers_in_excel_and_json_lines_are_kept(tmp_path: Path) -> None:
    import xlsxwriter

    from dashboard.core.config import TableConfig

    table = TableConfig(entity="leads", path="x")
    book = tmp_path / "leads.xlsx"
    wb = xlsxwriter.Workbook(book)
    ws = wb.add_worksheet()
    for col, value in enumerate(["lead_id", "phone", "phone_2", " phone ", "phone"]):
        ws.write(0, col, value)
    for col, value in enumerate(["L1", "138", "x", "139", "140"]):
        ws.write(1, col, value)
    wb.close()
    lines = tmp_path / "leads.jsonl"
    lines.write_text('{"lead_id": "L1", "phone": "1", "phone": "2", "n": {"a": 1}}\n{"lead_id": "L2"}\n')

    with columns.collect_duplicates() as found:
        sheet = excel_reader.read(book, table)
        records = json_reader.read(lines, table)

    assert sheet.columns == ["lead_id", "phone", "phone_2", "phone_3", "phone_4"]
    assert sheet.row(0) == ("L1", "138", "x", "139", "140")
    assert records.columns == ["lead_id", "phone", "phone_2", "n"]
    assert records.get_column("phone_2").to_list() == ["2", None]
    assert records.get_column("n").to_list() == ['{"a": 1}', None]
    assert [d.describe() for d in found] == [
        "leads.xlsx: header 'phone' appears three times (columns 2, 4 and 5); kept as 'phone', 'phone_3' and "
        "'phone_4', the first is the one a mapping by that name reads",
        "leads.jsonl line 1: key 'phone' appears twice (keys 2 and 3); kept as 'phone' and 'phone_2', the first "
        "is the one a mapping by that name reads",
    ]


def test_broken_json_with_repeated_keys_is_a_clear_error(tmp_path: Path) -> None:
    from dashboard.core.config import SourceConfig
    from dashboard.core.errors import SourceError
    from dashboard.sources import read_table

    src = SourceConfig.model_validate(
        {"name": "forms", "kind": "json", "tables": [{"entity": "leads", "path": "*.jsonl"}]}
    )
    for text in ('{"a": 1, "a": 2}\n{"a": \n', '{"a": \n{"a": 1, "a": 2}\n'):
        (tmp_path / "bad.jsonl").write_text(text)
        with pytest.raises(SourceError, match=r"bad\.jsonl: "):
            read_table(src, src.tables[0], tmp_path)


@pytest.mark.parametrize(
    ("quality", "message"),
    [
        ("max_null_share = { created = 0.06 }", "sources[0] (crm_opps): quality.max_null_share.created: 'created'"),
        ("max_null_share = { created_at = 6 }", "sources[0] (crm_opps).quality.max_null_share.created_at: Input"),
        ("max_null_share = { orders.amount = 0.1 }", "quality.max_null_share.orders.amount: the source has no orders"),
        ("max_invalid_share = { phone = -0.1 }", "sources[0] (crm_opps).quality.max_invalid_share.phone: Input"),
        ("min_rows = -5", "sources[0] (crm_opps).quality.min_rows: must be 0 or more (got -5)"),
        ("min_rows = { orders = 5 }", "quality.min_rows.orders: the source has no orders table"),
        ('not_before = "someday"', "sources[0] (crm_opps).quality.not_before: Input should be a valid date"),
        ("not_before = 2026-01-01\nnot_after = 2025-01-01", "quality: not_before (2026-01-01) must be earlier"),
        ("future_days = -1", "sources[0] (crm_opps).quality.future_days: Input should be greater than or equal"),
        ("max_out_of_range_share = 1.5", "sources[0] (crm_opps).quality.max_out_of_range_share: Input"),
        ("max_nul_share = { created_at = 0.1 }", "sources[0] (crm_opps).quality.max_nul_share: unknown key"),
    ],
)
def test_bad_threshold_config_names_the_key(tmp_path: Path, quality: str, message: str) -> None:
    cfg = _config(tmp_path, f"  [sources.quality]\n  {quality}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert message in err.value.message


def test_column_keys_for_one_entity_win_over_plain_ones() -> None:
    q = SourceQualityConfig.model_validate(
        {"max_null_share": {"created_at": 0.5, "leads": {"created_at": 0.1}}, "min_rows": {"leads": 7}}
    )
    assert q.max_null_share == {"created_at": 0.5, "leads.created_at": 0.1}
    suite = apply_thresholds(load_suite_dict("leads", "crm"), "leads", q)
    [not_null] = [e for e in suite["expectations"] if e["kwargs"].get("column") == "created_at"]
    assert not_null["kwargs"]["mostly"] == 0.9
    [rows] = [e for e in suite["expectations"] if e["type"] == "expect_table_row_count_to_be_between"]
    assert rows["kwargs"]["min_value"] == 7
    # the suite file itself is not changed
    base = load_suite_dict("leads", "crm")["expectations"]
    assert next(e for e in base if e["kwargs"].get("column") == "created_at")["kwargs"]["mostly"] == 0.98


def test_due_dates_may_lie_ahead() -> None:
    df = pl.DataFrame(
        {
            "contract_id": ["C1", "C2"],
            "customer_ref": ["A", "B"],
            "signed_at": [datetime(2025, 1, 1), datetime(2025, 2, 1)],
            "due_date": [datetime(2031, 1, 1), datetime(2032, 1, 1)],
        }
    )
    outcomes = validate(df, "contracts", "erp", now=datetime(2025, 3, 1))
    dates = {o.column: o for o in outcomes if o.note}
    assert set(dates) == {"signed_at"} and dates["signed_at"].success
