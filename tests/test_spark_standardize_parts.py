"""Standardize with engine spark from the files, on the executors (pipeline/spark_sources.py): the driver never
reads a source's rows, gets back counts and row problems only, and the snapshot is the DuckDB engine's, file for
file and row for row in the same order; a bad row is named with its file and row, a suppressed person stays
out, a row repeated across two files is removed once, and a file that cannot be read fails the extract."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.core import parse
from dashboard.core.config import EngineConfig, Settings, load_settings, parse_settings
from dashboard.core.store import Store
from dashboard.derived.spark.standardize import Finished
from dashboard.pipeline import suppression
from dashboard.pipeline.progress import Tracker
from dashboard.pipeline.refresh import SourceResult, refresh_source
from dashboard.pipeline.spark_sources import PARTS, Part
from tests.sparkcluster import spark_home, stop_keeping_jvm

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]
REPO = Path(__file__).resolve().parents[1]
LOCAL = {"kind": "spark", "master": "local[2]"}
ROWS = 5_000  # more than a date column's format sample (parse.FORMAT_SAMPLE)
SOURCE = {
    "name": "forms",
    "kind": "csv",
    "tables": [
        {
            "entity": "leads",
            "path": "in/*.csv",
            "columns": {"lead_id": "id", "created_at": "at", "channel": "ch", "phone": "tel"},
        }
    ],
}


def _on(settings: Settings, engine: dict[str, Any]) -> Settings:
    return settings.model_copy(update={"engine": EngineConfig.model_validate(engine)})


@pytest.fixture(scope="module", autouse=True)
def _stopped() -> Iterator[None]:
    yield
    stop_keeping_jvm()  # the sources' session; a small JVM kept for the next module


def _forms(root: Path, files: dict[str, list[str]]) -> Settings:
    """The forms source over ``files`` (name → data lines under the header), on local Spark."""
    spark_home()  # skips (fails in CI) without pyspark or Java
    (root / "in").mkdir(parents=True)
    for name, lines in files.items():
        (root / "in" / name).write_text("\n".join(["id,at,ch,tel", *lines]) + "\n", encoding="utf-8")
    return parse_settings({"data_dir": str(root / "data"), "engine": LOCAL, "sources": [SOURCE]}, root)


def _lead(i: int, at: str = "2024-03-04 10:00", tel: str | None = None) -> str:
    return f"L{i},{at},sem,{tel or f'1380013{i:04d}'}"


def _refresh(settings: Settings, source: str) -> tuple[SourceResult, Path]:
    store = Store(settings.data_path)
    with Tracker(store, [source]) as tracker:
        result, _pending = refresh_source(settings, store, settings.source(source), tracker)
    folder = (store.snapshots if result.published else store.quarantine) / source / result.snapshot_id
    return result, folder


def _issues(folder: Path) -> list[dict[str, Any]]:
    import json

    issues: list[dict[str, Any]] = json.loads((folder / "validation.json").read_text(encoding="utf-8"))["issues"]
    return issues


@pytest.fixture
def results(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the standardize jobs hand the driver; and the driver's own readers fail if anything calls them."""
    from dashboard.derived.spark import standardize as on_spark
    from dashboard.pipeline import refresh, spark_sources

    def never(*_: Any, **__: Any) -> Any:
        raise AssertionError("the driver read a source file")

    for module, name in ((spark_sources, "read_file"), (refresh, "read_table")):
        monkeypatch.setattr(module, name, never)
    out: list[Any] = []
    real = on_spark.map_parts

    def spy(settings: Settings, name: str, *args: Any) -> Any:
        got = real(settings, name, *args)
        out.extend(got)
        return got

    monkeypatch.setattr(on_spark, "map_parts", spy)
    return out


def test_the_driver_gets_counts_and_problems_never_the_rows(tmp_path: Path, results: list[Any]) -> None:
    a = [_lead(i) for i in range(ROWS)]
    b = [_lead(ROWS + i, at="2024-03-05 10:00") for i in range(ROWS)]
    settings = _forms(tmp_path, {"a.csv": a, "b.csv": b})
    result, folder = _refresh(settings, "forms")
    assert result.published and result.rows == {"leads": 2 * ROWS}
    # one task per file, each a Part; then one task finishing the small entity, its counts only
    assert [type(r) for r in results] == [Part, Part, Finished]
    assert (results[2].kept, results[2].rejected, results[2].duplicates) == (2 * ROWS, 0, {})
    for part in results[:2]:
        assert part.rows == ROWS and part.issues == []
        # of its rows only the first date values that rank the formats, as one machine ranks them
        assert [len(t) for t in part.texts.values()] == [parse.FORMAT_SAMPLE]
    assert sorted(p.name for p in folder.iterdir()) == ["leads.parquet", "quality.parquet", "validation.json"]
    staged = pl.read_parquet(folder / "leads.parquet")
    assert staged.height == 2 * ROWS and staged.get_column("created_at").dt.day().value_counts().height == 2


def test_a_file_whose_dates_read_two_ways_is_read_as_the_whole_table_says(tmp_path: Path, results: list[Any]) -> None:
    """a.csv is month-first (12/25/2023); b.csv alone (03/04/2024) would rank day-first first: it is
    standardized again with the table's order, as one machine reads the whole column."""
    a = [_lead(i, at="12/25/2023") for i in range(10)]
    b = [_lead(10 + i, at="03/04/2024") for i in range(10)]
    settings = _forms(tmp_path, {"a.csv": a, "b.csv": b})
    result, folder = _refresh(settings, "forms")
    assert result.rows == {"leads": 20}
    assert [p.file for p in results if isinstance(p, Part)].count("b.csv") == 2  # b.csv's part made again
    dates = pl.read_parquet(folder / "leads.parquet").filter(pl.col("lead_id") == "L10").get_column("created_at")
    assert (dates.dt.month().item(), dates.dt.day().item()) == (3, 4)


def test_a_bad_row_in_the_second_file_is_named_with_its_file_and_row(tmp_path: Path, results: list[Any]) -> None:
    b = [_lead(10), _lead(11), _lead(12, at="the day after"), _lead(13, tel="call me")]
    settings = _forms(tmp_path, {"a.csv": [_lead(i) for i in range(10)], "b.csv": b})
    result, folder = _refresh(settings, "forms")
    assert result.rows == {"leads": 13} and result.rejected_rows == 1  # no date: set aside
    problems = {i["problem"]: (i["count"], i["samples"]) for i in _issues(folder)}
    assert problems["unparseable date"] == (1, [{"file": "b.csv", "row": 3, "value": "the day after"}])
    assert problems["not a valid mobile number"] == (1, [{"file": "b.csv", "row": 4, "value": "call me"}])
    aside = pl.read_parquet(folder / "leads.rejected.parquet")
    assert aside.select("__file", "__row", "lead_id").rows() == [("b.csv", 3, "L12")]


def test_a_row_repeated_in_two_files_is_kept_once(tmp_path: Path, results: list[Any]) -> None:
    settings = _forms(tmp_path, {"a.csv": [_lead(1), _lead(2)], "b.csv": [_lead(3), _lead(2), _lead(2)]})
    result, folder = _refresh(settings, "forms")
    assert result.rows == {"leads": 3}
    [dup] = [i for i in _issues(folder) if i["problem"] == "exact duplicate of an earlier row"]
    assert dup["count"] == 2  # the first, in a.csv, stays
    assert [(s["file"], s["row"]) for s in dup["samples"]] == [("b.csv", 2), ("b.csv", 3)]
    staged = pl.read_parquet(folder / "leads.parquet")
    assert sorted(staged.get_column("lead_id")) == ["L1", "L2", "L3"]


def test_a_suppressed_person_stays_out_of_every_part(tmp_path: Path, results: list[Any]) -> None:
    settings = _forms(tmp_path, {"a.csv": [_lead(1), _lead(2)], "b.csv": [_lead(3), _lead(4, tel="13800130002")]})
    key = suppression.secret(settings.data_path)
    suppression.add(settings.data_path, {suppression.digest(key, "phone", "13800130002"): "phone"})
    result, folder = _refresh(settings, "forms")
    assert result.rows == {"leads": 2}
    staged = pl.read_parquet(folder / "leads.parquet")
    assert sorted(staged.get_column("lead_id")) == ["L1", "L3"]
    [erased] = [i for i in _issues(folder) if "erased on request" in i["problem"]]
    assert erased["count"] == 2 and erased["samples"] == []
    assert b"13800130002" not in (folder / "leads.parquet").read_bytes()


def test_a_file_the_executor_cannot_read_fails_the_extract_and_keeps_nothing(tmp_path: Path) -> None:
    settings = _forms(tmp_path, {"a.csv": [_lead(1)]})
    (tmp_path / "in" / "b.csv").write_text("id,when,ch,tel\nL2,2024-03-04,sem,13800130002\n", encoding="utf-8")
    result, folder = _refresh(settings, "forms")
    assert result.failed_step == "extract" and not result.published
    assert result.reasons == [
        "b.csv: required column 'at' (mapped to leads.created_at) is missing; the file has: id, when, ch, tel"
    ]
    assert not (folder / PARTS).exists()
    assert not (Store(settings.data_path).snapshots / "forms").exists()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from dashboard.demo import generate

    spark_home()
    root = tmp_path_factory.mktemp("spark_parts")
    shutil.copy(REPO / "cockpit.toml", root / "cockpit.toml")
    settings = load_settings(root / "cockpit.toml")
    generate(settings.data_path, "small", 42)
    return settings


@pytest.mark.parametrize("source", ["crm", "wechat"])
def test_the_demo_snapshot_is_the_duckdb_engines_file_for_file_in_the_same_order(
    demo: Settings, tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """crm: leads sorted by their date, interactions and lead events in record order; wechat: several files.
    Finished by Spark's jobs (duplicates from a row hash, Spark's sort, the files joined), as a big entity is:
    a small one's single task runs the DuckDB engine's own code (tests/test_spark_standardize.py)."""
    from dashboard.pipeline import spark_sources

    monkeypatch.setattr(spark_sources, "ONE_TASK_ROWS", 0)
    duck = demo.model_copy(update={"data_dir": tmp_path / "duck"})
    spark = _on(demo.model_copy(update={"data_dir": tmp_path / "spark"}), LOCAL)
    (d_res, d_dir), (s_res, s_dir) = _refresh(duck, source), _refresh(spark, source)
    assert s_res.published and (s_res.rows, s_res.rejected_rows) == (d_res.rows, d_res.rejected_rows)
    assert sorted(p.name for p in s_dir.iterdir()) == sorted(p.name for p in d_dir.iterdir())
    for path in sorted(d_dir.glob("*.parquet")):
        if path.name == "quality.parquet":
            continue
        d_rows, s_rows = (pl.read_parquet(d / path.name).drop("snapshot_id") for d in (d_dir, s_dir))
        assert s_rows.height > 0 and s_rows.equals(d_rows), f"{source}: {path.name} differs"
