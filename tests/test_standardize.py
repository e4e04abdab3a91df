"""Messy input becomes canonical rows: encodings, delimiters, dates, phones, aliases, row problems."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from dashboard.core import parse
from dashboard.core.config import SourceConfig, parse_settings
from dashboard.core.errors import SourceError
from dashboard.pipeline.standardize import REJECT_COL, standardize
from dashboard.sources import read_table


def _settings(tmp_path: Path, table: dict, kind: str = "csv", **extra: object) -> tuple:
    raw = {
        "channel_aliases": {"paid_search": ["百度推广", "baidu_sem", "SEM"]},
        "stage_aliases": {"won": ["赢单", "Closed Won"], "opportunity": ["商机"]},
        "sources": [{"name": "src", "kind": kind, "tables": [table]}],
        **extra,
    }
    settings = parse_settings(raw, tmp_path)
    return settings, settings.sources[0]


def _run(tmp_path: Path, table: dict, kind: str = "csv") -> pl.DataFrame:
    settings, src = _settings(tmp_path, table, kind)
    raw, missing = read_table(src, src.tables[0], tmp_path)
    return standardize(raw, src.tables[0], src, settings, "snap1", missing).frame


def test_phone_variants_become_one_number() -> None:
    phones = pl.Series(
        "phone",
        ["+86 138-0013-8000", "13800138000", "138 0013 8000", "0086 13800138000", "86-13800138000", "013800138000"],
    )
    value, valid = parse.normalize_phone(phones)
    assert value.unique().to_list() == ["13800138000"]
    assert valid.all()


def test_a_phone_typed_full_width_becomes_the_ascii_number() -> None:
    typed = ["１３８００１３８０００", "＋８６ １３８－００１３－８０００", "13８00138000", "（０１０）６５５２"]
    value, valid = parse.normalize_phone(pl.Series("phone", typed))
    assert value.to_list() == ["13800138000"] * 3 + ["（０１０）６５５２"]  # not a mobile: kept as typed
    assert valid.to_list() == [True, True, True, False]


def test_non_mobile_phones_are_kept_and_flagged() -> None:
    value, valid = parse.normalize_phone(pl.Series("phone", ["010-6552 9988", "12345", None]))
    assert value.to_list() == ["010-6552 9988", "12345", None]
    assert valid.to_list() == [False, False, None]


@pytest.mark.parametrize(
    "text",
    ["2024/3/5 14:02", "2024-03-05 14:02", "2024年3月5日 14:02", "2024-03-05T14:02:00+08:00", "2024-03-05T06:02:00Z"],
)
def test_datetime_formats(text: str) -> None:
    assert parse.parse_datetime(pl.Series([text])).to_list() == [datetime(2024, 3, 5, 14, 2)]


@pytest.mark.parametrize("text", ["2024-03-05", "20240305", "2024年3月5日", "45356", "2024.03.05"])
def test_date_formats_and_excel_serials(text: str) -> None:
    assert parse.parse_datetime(pl.Series([text])).to_list() == [datetime(2024, 3, 5)]


def test_seconds_with_and_without_fractions_in_one_column() -> None:
    texts = ["2024-03-05 14:02:07", "2024-03-05 14:02:07.25", "2024-03-05T14:02:07.5", "2024-03-05T14:02:07"] * 3
    parsed = parse.parse_datetime(pl.Series(texts))
    assert parsed.dt.microsecond().to_list() == [0, 250_000, 500_000, 0] * 3
    assert parsed.dt.second().unique().to_list() == [7]


def test_amounts_read_as_written_or_with_their_currency_signs() -> None:
    plain = parse.parse_number(pl.Series(["269.00", " 1e3 ", "-2.5", None]))
    assert plain.to_list() == [269.0, 1000.0, -2.5, None]
    signed = parse.parse_number(pl.Series(["269.00", "¥1,234.50", "1 234", "88元", "RMB 5", "abc", None]))
    assert signed.to_list() == [269.0, 1234.5, 1234.0, 88.0, 5.0, None, None]


def test_id_number_check_digit_and_email() -> None:
    _, valid = parse.normalize_id_number(pl.Series(["11010519491231002x", "110105194912310021"]))
    assert valid.to_list() == [True, False]
    email, ok = parse.normalize_email(pl.Series([" Zhang.San＠Example.COM ", "no-at-sign"]))
    assert email.to_list() == ["zhang.san@example.com", "no-at-sign"]
    assert ok.to_list() == [True, False]


def test_gbk_csv_with_aliases_and_row_problems(tmp_path: Path) -> None:
    text = (
        "登记号,登记时间,来源,手机\n"
        "A1,2024/3/5 14:02,百度推广,+86 138-0013-8000\nA2,bad,展会,13900139000\nA3,20240306,,x\n"
    )
    (tmp_path / "ts.csv").write_bytes(text.encode("gbk"))
    table = {
        "entity": "leads",
        "path": "ts.csv",
        "columns": {"lead_id": "登记号", "created_at": "登记时间", "channel": "来源", "phone": "手机"},
        "constants": {"region": "华东"},
    }
    settings, src = _settings(tmp_path, table)
    raw, missing = read_table(src, src.tables[0], tmp_path)
    std = standardize(raw, src.tables[0], src, settings, "snap1", missing)
    df = std.frame
    assert df.get_column("channel").to_list() == ["paid_search", "展会", "unknown"]  # no alias: kept as given
    assert df.get_column("phone").to_list() == ["13800138000", "13900139000", "x"]
    assert df.get_column("region").to_list() == ["华东"] * 3
    assert df.get_column("source_system").unique().to_list() == ["src"]
    # the unparseable date sets the row aside (kept until publish), with the file and row named
    assert df.get_column(REJECT_COL).to_list() == [None, "created_at missing or invalid", None]
    problems = {(i.column, i.problem): i for i in std.issues}
    bad_date = problems[("created_at", "unparseable date")]
    assert bad_date.count == 1 and bad_date.samples[0] == {"file": "ts.csv", "row": 2, "value": "bad"}
    assert problems[("channel", "empty")].action == "set to 'unknown'"
    assert problems[("phone", "not a valid mobile number")].count == 1


def test_semicolon_csv_with_bom_and_unknown_stage(tmp_path: Path) -> None:
    text = (
        "lead_id;stage;occurred_at;amount\n"
        'L1;赢单;2024-03-05;"¥1,200"\nL2;Closed Won;2024-03-05;300\nL3;Nurture;2024-03-05;\n'
    )
    (tmp_path / "ev.csv").write_bytes(text.encode("utf-8-sig"))
    settings, src = _settings(tmp_path, {"entity": "lead_events", "path": "ev.csv"})
    raw, missing = read_table(src, src.tables[0], tmp_path)
    std = standardize(raw, src.tables[0], src, settings, "s", missing)
    assert std.frame.get_column("stage").to_list() == ["won", "won", "nurture"]
    assert std.frame.get_column("amount").to_list() == [1200.0, 300.0, None]
    unknown = next(i for i in std.issues if i.problem == "unknown funnel stage")
    assert unknown.count == 1 and unknown.samples[0]["value"] == "Nurture"  # as the file wrote it


def test_excel_serial_dates_and_generated_keys(tmp_path: Path) -> None:
    pl.DataFrame({"客户": ["E1", "E1"], "日期": ["45356", "45357.5"], "金额": ["100", "200"]}).write_excel(
        tmp_path / "orders.xlsx"
    )
    df = _run(
        tmp_path,
        {
            "entity": "orders",
            "path": "orders.xlsx",
            "columns": {"customer_ref": "客户", "ordered_at": "日期", "amount": "金额"},
        },
        kind="excel",
    )
    assert df.get_column("ordered_at").to_list() == [datetime(2024, 3, 5), datetime(2024, 3, 6, 12)]
    assert df.get_column("order_id").to_list() == ["orders.xlsx:1", "orders.xlsx:2"]


def test_json_array_and_lines(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('[{"id": "W1", "t": "2024-03-05", "ch": "官网"}]', encoding="utf-8")
    (tmp_path / "b.json").write_text('{"id": "W2", "t": "2024-03-06", "ch": "SEM"}\n', encoding="utf-8")
    df = _run(
        tmp_path,
        {"entity": "leads", "path": "*.json", "columns": {"lead_id": "id", "created_at": "t", "channel": "ch"}},
        kind="json",
    )
    assert df.get_column("lead_id").to_list() == ["W1", "W2"]
    assert df.get_column("channel").to_list() == ["官网", "paid_search"]


def test_exact_duplicates_are_removed_and_counted(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("lead_id,created_at,channel\nA,2024-03-05,x\nA,2024-03-05,x\nB,2024-03-05,x\n")
    settings, src = _settings(tmp_path, {"entity": "leads", "path": "l.csv"})
    raw, missing = read_table(src, src.tables[0], tmp_path)
    std = standardize(raw, src.tables[0], src, settings, "s", missing)
    assert std.frame.get_column("lead_id").to_list() == ["A", "B"]
    dup = next(i for i in std.issues if i.action == "duplicate removed")
    assert dup.count == 1 and dup.samples[0]["row"] == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a CSV file"),
        (b"lead_id,channel\nA,x\n", "required column"),
        (b"lead_id,created_at,channel\n", "no data rows"),
    ],
)
def test_unreadable_inputs_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "bad.csv").write_bytes(content)
    table = {"entity": "leads", "path": "bad.csv", "columns": {"created_at": "created_at"}}
    _, src = _settings(tmp_path, table)
    with pytest.raises(SourceError) as e:
        read_table(src, src.tables[0], tmp_path)
    assert "bad.csv" in e.value.message and message in e.value.message


def test_no_file_matching_the_glob(tmp_path: Path) -> None:
    _, src = _settings(tmp_path, {"entity": "leads", "path": "nothing_*.csv"})
    with pytest.raises(SourceError, match="no file matches nothing_"):
        read_table(src, src.tables[0], tmp_path)


def test_source_config_is_frozen() -> None:
    assert SourceConfig.model_config.get("frozen") is True


def test_json_with_mixed_types_and_nested_values(tmp_path: Path) -> None:
    (tmp_path / "w.json").write_text(
        '[{"id": 1, "t": "2024-03-05T06:02:00Z", "ch": "SEM", "meta": {"page": "/a"}, "tags": [1, 2]},'
        ' {"id": "W-2", "t": "2024-03-05", "ch": "官网", "meta": null, "tags": []}]',
        encoding="utf-8",
    )
    from dashboard.sources.json import read

    raw = read(tmp_path / "w.json", None)  # type: ignore[arg-type]
    assert raw.get_column("id").to_list() == ["1", "W-2"]  # mixed types come back as text, unquoted
    assert raw.get_column("meta").to_list() == ['{"page":"/a"}', None]
    assert raw.get_column("tags").to_list() == ["[1,2]", "[]"]
    df = _run(
        tmp_path,
        {"entity": "leads", "path": "w.json", "columns": {"lead_id": "id", "created_at": "t", "channel": "ch"}},
        kind="json",
    )
    assert df.get_column("created_at").to_list() == [datetime(2024, 3, 5, 14, 2), datetime(2024, 3, 5)]
