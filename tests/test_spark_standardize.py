"""Standardize and the gate with engine spark (master local[2]) against engine duckdb: the small demo's sources
give the same snapshot rows, row problems and gate verdicts; a broken file is quarantined with the same
reasons; a date column that reads two ways is read as the whole column says in every part Spark gets."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.core.config import EngineConfig, Settings, load_settings, parse_settings
from dashboard.core.store import Store
from dashboard.pipeline.progress import Tracker
from dashboard.pipeline.refresh import SourceResult, refresh_source
from dashboard.pipeline.standardize import standardize
from dashboard.sources.columns import FILE_COL, ROW_COL
from tests.fixture_data import write_company
from tests.sparkcluster import spark_home, stop_keeping_jvm

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]
REPO = Path(__file__).resolve().parents[1]
LOCAL = {"kind": "spark", "master": "local[2]"}


def _on(settings: Settings, engine: dict[str, Any]) -> Settings:
    return settings.model_copy(update={"engine": EngineConfig.model_validate(engine)})


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The small demo's inputs, generated once; each engine reads them and writes into a data folder of its own."""
    from dashboard.demo import generate

    spark_home()  # skips (fails in CI) without pyspark or Java
    root = tmp_path_factory.mktemp("spark_std")
    shutil.copy(REPO / "cockpit.toml", root / "cockpit.toml")
    settings = load_settings(root / "cockpit.toml")
    generate(settings.data_path, "small", 42)
    return settings


@pytest.fixture(scope="module", autouse=True)
def _stopped() -> Iterator[None]:
    yield
    stop_keeping_jvm()  # the sources' session; a small JVM kept for the next module


def _snapshot(settings: Settings, source: str) -> tuple[SourceResult, dict[str, Any], dict[str, pl.DataFrame]]:
    """One source through extract, standardize and the gate: its result, validation.json and staged tables."""
    store = Store(settings.data_path)
    with Tracker(store, [source]) as tracker:
        result, _pending = refresh_source(settings, store, settings.source(source), tracker)
    folder = (store.snapshots if result.published else store.quarantine) / source / result.snapshot_id
    tables = {p.name.removesuffix(".parquet"): pl.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
    return result, json.loads((folder / "validation.json").read_text(encoding="utf-8")), tables


def _rows(frame: pl.DataFrame) -> pl.DataFrame:
    """A staged table's rows in one order (ties of the date the files are sorted by may come either way),
    without the snapshot's id and the profile's time of making."""
    frame = frame.drop("snapshot_id", "computed_at", strict=False)
    return frame.sort(frame.columns, nulls_last=True)


def _verdicts(validation: dict[str, Any]) -> list[tuple[Any, ...]]:
    keys = ("suite", "expectation", "column", "blocking", "success", "element_count", "unexpected_count")
    return sorted(tuple(str(o[k]) for k in keys) for o in validation["expectations"])


def _problems(validation: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (i["entity"], i["column"], i["problem"], i["action"], i["count"], json.dumps(i["samples"], sort_keys=True))
        for i in validation["issues"]
    )


def _same(duck: Settings, spark: Settings, source: str) -> tuple[SourceResult, dict[str, pl.DataFrame]]:
    d_res, d_val, d_tables = _snapshot(duck, source)
    s_res, s_val, s_tables = _snapshot(spark, source)
    assert (s_res.status, s_res.rows, s_res.rejected_rows) == (d_res.status, d_res.rows, d_res.rejected_rows)
    assert sorted(s_res.reasons) == sorted(d_res.reasons)
    assert _verdicts(s_val) == _verdicts(d_val)
    assert _problems(s_val) == _problems(d_val)
    assert sorted(s_tables) == sorted(d_tables)
    for name, table in d_tables.items():
        assert _rows(s_tables[name]).equals(_rows(table)), f"{source}: {name} differs"
    return s_res, s_tables


@pytest.fixture
def spark_jobs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the Spark jobs standardize, the gate and the quality profile run: the spark side really
    ran on Spark."""
    from dashboard.derived.spark import gate, quality
    from dashboard.derived.spark import standardize as on_spark

    names: list[str] = []
    for module, function in ((gate, "validate"), (on_spark, "map_parts"), (quality, "aggregates")):
        real = getattr(module, function)

        def spy(settings: Settings, name: str, *args: Any, _real: Any = real) -> Any:
            names.append(name)
            return _real(settings, name, *args)

        monkeypatch.setattr(module, function, spy)
    return names


def test_the_small_demo_is_standardized_and_gated_the_same_on_spark(
    demo: Settings, tmp_path: Path, spark_jobs: list[str]
) -> None:
    duck = demo.model_copy(update={"data_dir": tmp_path / "duck"})
    spark = _on(demo.model_copy(update={"data_dir": tmp_path / "spark"}), LOCAL)
    checked = 0
    for source in demo.source_names:
        result, tables = _same(duck, spark, source)
        assert result.published, (source, result.reasons)
        checked += sum(t.height for t in tables.values())
        assert "quality" in tables  # its profile, compared row for row by _same
        for entity in tables.keys() - {"quality"}:
            jobs = {f"standardize {source}.{entity}", f"the gate of {source}.{entity}"}
            assert jobs | {f"the quality profile of {source}.{entity}"} <= set(spark_jobs)
    assert checked > 10_000  # the whole small demo, not a few rows


@pytest.fixture
def company(tmp_path: Path) -> tuple[Settings, Settings]:
    """The messy fixture company (GBK CSV, Excel serial dates, zoned JSON times, a duplicate row), twice."""
    duck = load_settings(write_company(tmp_path / "duck"))
    return duck, _on(load_settings(write_company(tmp_path / "spark")), LOCAL)


def test_the_messy_company_reads_the_same_on_spark(company: tuple[Settings, Settings], spark_jobs: list[str]) -> None:
    duck, spark = company
    for source in duck.source_names:
        _, tables = _same(duck, spark, source)  # the quality profile's rows too
        profiled = {f"the quality profile of {source}.{entity}" for entity in tables.keys() - {"quality"}}
        assert "quality" in tables and profiled <= set(spark_jobs)


def test_a_broken_file_is_quarantined_with_the_same_reasons(company: tuple[Settings, Settings]) -> None:
    bad = "Lead ID,Created,Source,Mobile\n" + "".join(f"CRM-{i},2026-03-01,SEM,call me {i}\n" for i in range(20))
    for settings in company:
        (settings.base_dir / "imports" / "crm" / "leads.csv").write_text(bad, encoding="utf-8")
    result, tables = _same(*company, "crm")
    assert result.status == "quarantined"
    [reason] = [r for r in result.reasons if "expect_column_values_to_match_regex" in r]
    assert "'phone'" in reason and "20 rows failed" in reason and "call me" in reason
    assert tables["leads"].height == 20  # kept in quarantine for a person to see


def test_a_date_that_reads_two_ways_is_read_as_the_whole_column_says(tmp_path: Path) -> None:
    """The first rows are month-first (12/25/2023); the rest read either way (03/04/2024). On one machine the
    column's sample ranks month-first first; Spark's second part alone would rank day-first first."""
    spark_home()
    settings = parse_settings({"data_dir": str(tmp_path / "data"), "engine": LOCAL, "sources": [_SOURCE]}, tmp_path)
    dates = ["12/25/2023"] * 50 + ["03/04/2024"] * 50
    raw = pl.DataFrame(
        {"id": [f"L{i}" for i in range(100)], "at": dates, "ch": ["sem"] * 100, FILE_COL: ["a.csv"] * 100}
    ).with_columns(pl.int_range(1, 101).alias(ROW_COL))
    source = settings.source("forms")
    on_duckdb = standardize(raw, source.tables[0], source, _on(settings, {"kind": "duckdb"}), "s1")
    on_spark = standardize(raw, source.tables[0], source, settings, "s1")
    assert on_duckdb.frame.get_column("created_at").dt.month().to_list()[-1] == 3  # 4 March, month first
    assert on_spark.frame.equals(on_duckdb.frame)


_SOURCE = {
    "name": "forms",
    "kind": "csv",
    "tables": [{"entity": "leads", "path": "a.csv", "columns": {"lead_id": "id", "created_at": "at", "channel": "ch"}}],
}


def test_a_phone_typed_full_width_is_the_same_ascii_number_on_both_engines(tmp_path: Path) -> None:
    spark_home()
    columns = {"lead_id": "id", "created_at": "at", "channel": "ch", "phone": "tel"}
    source_ = {**_SOURCE, "tables": [{"entity": "leads", "path": "a.csv", "columns": columns}]}
    settings = parse_settings({"data_dir": str(tmp_path / "data"), "engine": LOCAL, "sources": [source_]}, tmp_path)
    typed = ["１３８００１３８０００", "＋８６ １３９－００１３－９０００", "13８00138001", "call me"]
    raw = pl.DataFrame(
        {
            "id": ["L1", "L2", "L3", "L4"],
            "at": ["2024-03-04"] * 4,
            "ch": ["sem"] * 4,
            "tel": typed,
            FILE_COL: ["a.csv"] * 4,
        }
    ).with_columns(pl.int_range(1, 5).alias(ROW_COL))
    source = settings.source("forms")
    on_duckdb = standardize(raw, source.tables[0], source, _on(settings, {"kind": "duckdb"}), "s1")
    on_spark = standardize(raw, source.tables[0], source, settings, "s1")
    assert on_duckdb.frame.get_column("phone").to_list() == ["13800138000", "13900139000", "13800138001", "call me"]
    assert on_duckdb.frame.get_column("phone_valid").to_list() == [True, True, True, False]
    assert on_spark.frame.equals(on_duckdb.frame)
