"""Standardize with engine spark from big files: a file cut into spans (CSV: byte ranges of whole lines; Parquet:
its row groups) is read by several tasks and stages the DuckDB engine's rows, row for row; a bad row is named
with its row in the FILE; a quoted value across lines reads the file whole; duplicates are found from a row
hash, two rows that only share a hash both kept; and record keys are ordered past the prefix the kept rows share,
as the parts tell it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.core.config import Settings, parse_settings
from dashboard.core.store import Store
from dashboard.pipeline.progress import Tracker
from dashboard.pipeline.refresh import SourceResult, refresh_source
from dashboard.sources import csv, parquet
from tests.sparkcluster import spark_home, stop_keeping_jvm

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]
LOCAL = {"kind": "spark", "master": "local[2]"}
COLUMNS = {"lead_id": "id", "created_at": "at", "channel": "ch", "phone": "tel", "name": "who"}


@pytest.fixture(scope="module", autouse=True)
def _stopped() -> Iterator[None]:
    yield
    stop_keeping_jvm()  # the sources' session; a small JVM kept for the next module


def _source(kind: str, path: str) -> dict[str, Any]:
    return {"name": "forms", "kind": kind, "tables": [{"entity": "leads", "path": path, "columns": COLUMNS}]}


def _both(root: Path, source: dict[str, Any]) -> tuple[Settings, Settings]:
    """The same input under ``root`` refreshed into two data folders: engine duckdb's and local Spark's."""
    spark_home()  # skips (fails in CI) without pyspark or Java
    duck = parse_settings({"data_dir": str(root / "duck"), "sources": [source]}, root)
    spark = parse_settings({"data_dir": str(root / "spark"), "engine": LOCAL, "sources": [source]}, root)
    return duck, spark


def _refresh(settings: Settings) -> tuple[SourceResult, Path]:
    store = Store(settings.data_path)
    with Tracker(store, ["forms"]) as tracker:
        result, _pending = refresh_source(settings, store, settings.source("forms"), tracker)
    return result, (store.snapshots if result.published else store.quarantine) / "forms" / result.snapshot_id


def _issues(folder: Path) -> dict[str, dict[str, Any]]:
    found = json.loads((folder / "validation.json").read_text(encoding="utf-8"))["issues"]
    return {i["problem"]: i for i in found}


def _same(duck: Settings, spark: Settings) -> tuple[SourceResult, Path]:
    """Both engines' snapshots: the same counts, row problems (with their samples) and staged files."""
    (d_res, d_dir), (s_res, s_dir) = _refresh(duck), _refresh(spark)
    assert s_res.published and (s_res.rows, s_res.rejected_rows) == (d_res.rows, d_res.rejected_rows)
    assert _issues(s_dir) == _issues(d_dir)
    assert sorted(p.name for p in s_dir.glob("*.parquet")) == sorted(p.name for p in d_dir.glob("*.parquet"))
    for path in sorted(d_dir.glob("leads*.parquet")):
        d_rows, s_rows = (pl.read_parquet(d / path.name).drop("snapshot_id") for d in (d_dir, s_dir))
        assert s_rows.height > 0 and s_rows.equals(d_rows), f"{path.name} differs"
    return s_res, s_dir


def _line(i: int, at: str | None = None, tel: str | None = None, who: str = "") -> str:
    return f"L{i},{at or f'2024-03-{1 + i % 28:02d} 10:{i % 60:02d}'},sem,{tel or f'138{i:08d}'},{who or f'n{i}'}"


@pytest.fixture
def tasks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Spans of about 4 kB (a test file of a few thousand rows is many tasks), finished by Spark's jobs; the
    Parts the tasks returned."""
    from dashboard.derived.spark import standardize as on_spark
    from dashboard.pipeline import spark_sources

    monkeypatch.setattr(spark_sources, "SPAN_BYTES", 4096)
    monkeypatch.setattr(spark_sources, "ONE_TASK_ROWS", 0)  # finished by Spark's jobs, as a big entity is
    out: list[Any] = []
    real = on_spark.map_parts

    def spy(settings: Settings, name: str, *args: Any) -> Any:
        got = real(settings, name, *args)
        out.extend(r for r in got if isinstance(r, spark_sources.Part))
        return got

    monkeypatch.setattr(on_spark, "map_parts", spy)
    return out


def test_a_csv_file_in_spans_stages_the_same_rows_and_names_a_bad_row_by_its_row_in_the_file(
    tmp_path: Path, tasks: list[Any]
) -> None:
    lines = [_line(i) for i in range(3000)]
    lines[2344] = _line(2344, tel="call me")  # data row 2345 of the file, in a later span
    lines[2700] = _line(2700, at="the day after")  # row 2701: no date, set aside
    lines[2999] = lines[100]  # an exact duplicate of row 101, in the last span
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("\n".join(["id,at,ch,tel,who", *lines]) + "\n", encoding="utf-8")
    result, folder = _same(*_both(tmp_path, _source("csv", "in/*.csv")))
    assert len(tasks) >= 10 and {p.file for p in tasks} == {"a.csv"}  # one file, many tasks
    assert sum(p.rows for p in tasks) == 3000 and not any(p.misread for p in tasks)
    assert result.rows == {"leads": 2998} and result.rejected_rows == 1
    issues = _issues(folder)
    assert issues["not a valid mobile number"]["samples"] == [{"file": "a.csv", "row": 2345, "value": "call me"}]
    assert issues["unparseable date"]["samples"] == [{"file": "a.csv", "row": 2701, "value": "the day after"}]
    assert issues["exact duplicate of an earlier row"]["samples"] == [{"file": "a.csv", "row": 3000, "value": None}]
    aside = pl.read_parquet(folder / "leads.rejected.parquet")
    assert aside.select("__file", "__row", "lead_id").rows() == [("a.csv", 2701, "L2700")]


def test_a_quoted_value_across_lines_reads_the_file_whole_with_its_rows_numbered_in_the_file(
    tmp_path: Path, tasks: list[Any]
) -> None:
    lines = [_line(i) for i in range(3000)]
    lines[1500] = _line(1500, who='"two\nlines"')  # row 1501 spans two lines
    lines[2500] = _line(2500, tel="call me")  # row 2501 of the file, line 2503 of the text
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("\n".join(["id,at,ch,tel,who", *lines]) + "\n", encoding="utf-8")
    result, folder = _same(*_both(tmp_path, _source("csv", "in/*.csv")))
    assert any(p.misread for p in tasks)  # the span holding the quoted line break read fewer rows than lines
    assert [p.rows for p in tasks if not p.misread][-1] == 3000  # then the file as one task
    assert result.rows == {"leads": 3000}
    sample = _issues(folder)["not a valid mobile number"]["samples"]
    assert sample == [{"file": "a.csv", "row": 2501, "value": "call me"}]


def test_a_parquet_file_is_read_by_its_row_groups(tmp_path: Path, tasks: list[Any]) -> None:
    text = [_line(i).split(",") for i in range(6000)]
    frame = pl.DataFrame(text, schema=["id", "at", "ch", "tel", "who"], orient="row")
    frame = frame.with_columns(
        pl.when(pl.col("id") == "L4321").then(pl.lit("call me")).otherwise(pl.col("tel")).alias("tel")
    )
    (tmp_path / "in").mkdir()
    frame.write_parquet(tmp_path / "in" / "a.parquet", row_group_size=500)
    result, folder = _same(*_both(tmp_path, _source("parquet", "in/*.parquet")))
    spans = parquet.spans(tmp_path / "in" / "a.parquet", 4096) or []
    assert len(spans) > 1 and [p.rows for p in tasks] == [s.rows for s in spans]  # a task per span
    assert result.rows == {"leads": 6000}
    sample = _issues(folder)["not a valid mobile number"]["samples"]
    assert sample == [{"file": "a.parquet", "row": 4322, "value": "call me"}]


def test_two_rows_that_only_share_a_hash_are_both_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row hashed alike: the rows are compared in full, so only the true duplicate goes."""
    from pyspark.sql import functions as F

    from dashboard.derived.spark import standardize as on_spark
    from dashboard.pipeline import spark_sources

    monkeypatch.setattr(spark_sources, "ONE_TASK_ROWS", 0)
    monkeypatch.setattr(on_spark, "_row_hash", lambda columns: F.lit(7))
    lines = [_line(i) for i in range(50)] + [_line(3), _line(3)]  # rows 51 and 52 repeat row 4
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("\n".join(["id,at,ch,tel,who", *lines]) + "\n", encoding="utf-8")
    result, folder = _same(*_both(tmp_path, _source("csv", "in/*.csv")))
    assert result.rows == {"leads": 50}  # 50 distinct rows, all sharing one hash, all kept
    dup = _issues(folder)["exact duplicate of an earlier row"]
    assert dup["count"] == 2 and [s["row"] for s in dup["samples"]] == [51, 52]


def _spans_read(path: Path, spans: list[Any]) -> pl.DataFrame:
    class Table:
        encoding = None
        delimiter = None

    return pl.concat([csv.read(path, Table(), s) for s in spans])  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_csv_spans_are_cut_between_records_and_read_as_the_whole_file(tmp_path: Path, encoding: str) -> None:
    """Quoted delimiters, doubled quotes and line breaks inside quotes: every cut falls between records."""
    rows = [f'{i},"名字, {i}","say ""hi""{chr(10) if i % 97 == 0 else ""} {i}"' for i in range(4000)]
    path = tmp_path / "a.csv"
    path.write_bytes(("id,name,note\r\n" + "\r\n".join(rows) + "\r\n").encode(encoding))

    class Table:
        encoding = None
        delimiter = None

    whole = csv.read(path, Table())  # type: ignore[arg-type]
    spans = csv.spans(path, 8192)
    assert spans is not None and len(spans) > 5
    assert _spans_read(path, spans).equals(whole) and whole.height == 4000
    assert [s.first_row for s in spans] == [1, *(s.first_row + s.rows for s in spans[:-1])]
    assert csv.spans(path, 1 << 20) is None  # too small to cut


def test_record_keys_are_ordered_past_the_prefix_the_kept_rows_share_as_the_parts_tell_it(
    tmp_path: Path, tasks: list[Any]
) -> None:
    """Interactions stage in record order (customer_ref, lead_id): keys compared past the prefix all kept
    values share, which Spark's jobs take from each part's least and greatest kept key. A set-aside row's key
    outside that range ("A") does not widen it: were it counted, the first 15 bytes would be the shared
    "CUSTOMER-REF-0x" of every row and the rows would stay in file order."""
    columns = {"interaction_id": "id", "customer_ref": "cust", "channel": "ch", "kind": "how", "occurred_at": "at"}
    source = {
        "name": "forms",
        "kind": "csv",
        "tables": [{"entity": "interactions", "path": "in/*.csv", "columns": columns}],
    }
    lines = [f"I{i},CUSTOMER-REF-{i * 7919 % 3000:05d},sem,call,2024-03-{1 + i % 28:02d} 10:00" for i in range(3000)]
    lines[1234] = "I1234,A,sem,call,not a date"  # set aside: no date
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("\n".join(["id,cust,ch,how,at", *lines]) + "\n", encoding="utf-8")
    duck, spark = _both(tmp_path, source)
    (d_res, d_dir), (s_res, s_dir) = _refresh(duck), _refresh(spark)
    assert s_res.published and s_res.rows == d_res.rows == {"interactions": 2999} and s_res.rejected_rows == 1
    told = [p.bounds["customer_ref"] for p in tasks if p.bounds]
    assert len(told) >= 10  # one a span
    assert (min(t[0] for t in told), max(t[1] for t in told)) == ("CUSTOMER-REF-00000", "CUSTOMER-REF-02999")
    d_rows, s_rows = (pl.read_parquet(d / "interactions.parquet").drop("snapshot_id") for d in (d_dir, s_dir))
    assert s_rows.equals(d_rows) and s_rows.get_column("customer_ref").is_sorted()
