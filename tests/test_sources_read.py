"""A table of several JSON files (read two at a time: DuckDB parses a JSON array on one thread) reads as one after
another would: its rows in the files' order with each file's name and row numbers, the repeated keys reported in
the files' order, and a broken file named in the error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.core.config import SourceConfig
from dashboard.core.errors import SourceError
from dashboard.sources import read_table
from dashboard.sources.columns import FILE_COL, ROW_COL, collect_duplicates

LEAD = {"created_at": "2026-03-01 10:00", "channel": "SEM"}


def _source(pattern: str) -> SourceConfig:
    table = {"entity": "leads", "path": pattern}
    return SourceConfig.model_validate({"name": "wechat", "kind": "json", "tables": [table]})


def _write(folder: Path, name: str, records: list[str]) -> None:
    (folder / name).write_text("[" + ",".join(records) + "]", encoding="utf-8")


def test_several_json_files_read_as_one_after_another(tmp_path: Path) -> None:
    for i in range(1, 6):
        rows = [json.dumps({"lead_id": f"L{i}-{n}", "phone": str(n)} | LEAD) for n in range(i)]
        if i in (2, 4):  # a repeated key, in the second and the fourth file
            rows[0] = f'{{"lead_id": "L{i}-0", "phone": "1", "phone": "2", {json.dumps(LEAD)[1:-1]}}}'
        _write(tmp_path, f"events_{i}.json", rows)
    src = _source("events_*.json")

    with collect_duplicates() as found:
        frame, missing = read_table(src, src.tables[0], tmp_path)

    assert missing == {}
    assert frame.get_column("lead_id").to_list() == [f"L{i}-{n}" for i in range(1, 6) for n in range(i)]
    assert frame.get_column(FILE_COL).to_list() == [f"events_{i}.json" for i in range(1, 6) for _ in range(i)]
    assert frame.get_column(ROW_COL).to_list() == [n + 1 for i in range(1, 6) for n in range(i)]
    assert [(d.file, d.header, d.record) for d in found] == [
        ("events_2.json", "phone", "record 1"),
        ("events_4.json", "phone", "record 1"),
    ]


def test_a_broken_file_among_several_is_named(tmp_path: Path) -> None:
    for i in range(1, 5):
        _write(tmp_path, f"events_{i}.json", [json.dumps({"lead_id": f"L{i}"} | LEAD)])
    (tmp_path / "events_3.json").write_text('[{"lead_id": "L3"', encoding="utf-8")
    src = _source("events_*.json")
    with pytest.raises(SourceError, match=r"events_3\.json"):
        read_table(src, src.tables[0], tmp_path)
