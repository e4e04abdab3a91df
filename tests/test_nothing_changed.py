"""A refresh keeps what did not change (issue 22): with no source changed it writes no table again, and with
one source changed the quality tables and the personal-data step keep what other sources gave them.

What a kept table holds is checked against the same table made from scratch, here for the validation history
(its rows are kept per source); tests/test_incremental.py compares every named query of an incremental refresh,
masked as a manager sees them (the personal-data token tables), with a full refresh from empty.
"""

from __future__ import annotations

import os

import polars as pl
from polars.testing import assert_frame_equal

from dashboard.core.config import Settings
from dashboard.core.dictionary import MASK_MACROS, for_settings
from dashboard.core.duck import work_connection
from dashboard.core.store import Store
from dashboard.derived import personal
from dashboard.derived.quality.tables import history_sources, validation_history
from dashboard.derived.tables import DERIVED_TABLES, READ_FROM
from dashboard.pipeline.data_docs import site_status
from dashboard.pipeline.refresh import refresh


def _tables(settings: Settings) -> dict[str, str]:
    tables: dict[str, str] = Store(settings.data_path).read_manifest()["derived"]["tables"]
    return tables


def _linked(settings: Settings, before: dict[str, str]) -> set[str]:
    """The current build's tables that are the very files of the build whose tables were ``before``."""
    store = Store(settings.data_path)
    now = _tables(settings)
    return {t for t, rel in now.items() if t in before and os.path.samefile(store.abs(rel), store.abs(before[t]))}


def test_a_refresh_with_nothing_changed_writes_no_table_and_keeps_the_data_docs(company: Settings) -> None:
    assert refresh(company).exit_code == 0  # the copied folder's files are new files: made once more here
    before, docs = _tables(company), site_status(Store(company.data_path))
    assert docs is not None

    result = refresh(company)

    assert result.exit_code == 0 and all(s.unchanged for s in result.sources)
    assert _linked(company, before) == set(before) and set(_tables(company)) == set(before)
    assert site_status(Store(company.data_path)) == docs  # the same latest attempts: the site kept as built

    spend = company.base_dir / "imports" / "marketing" / "spend.csv"
    spend.write_text(spend.read_text(encoding="utf-8") + "SEM,2026-03-21,400\n", encoding="utf-8")
    assert refresh(company).exit_code == 0
    rebuilt = site_status(Store(company.data_path))
    assert rebuilt is not None and rebuilt["built_at"] > docs["built_at"] and rebuilt["suites"] == docs["suites"]


def test_one_source_changed_keeps_the_others_quality_rows_and_token_tables(company: Settings) -> None:
    assert refresh(company).exit_code == 0
    before = _tables(company)
    spend = company.base_dir / "imports" / "marketing" / "spend.csv"
    spend.write_text(spend.read_text(encoding="utf-8") + "SEM,2026-03-21,400\n", encoding="utf-8")

    result = refresh(company)

    assert [s.source for s in result.sources if not s.unchanged] == ["marketing"]
    assert {"identity_consistency", "identity"} <= set(result.reused)
    assert "validation_history" not in result.reused and "field_quality" not in result.reused
    linked = _linked(company, before)
    assert {"identity_consistency", "identity_links", "customer_golden"} <= linked
    assert {"validation_runs", "field_quality"}.isdisjoint(linked)  # marketing has a new attempt and profile

    store = Store(company.data_path)  # the kept rows and the new ones: what the history holds, read anew
    runs, results = validation_history(store, history_sources(company, store), for_settings(company))
    tables = _tables(company)
    # the personal-data profile: the unchanged files' rows kept, what profiling every file finds (small files,
    # sampled whole)
    manifest = store.read_manifest()
    entity_files = {
        (entity, source): store.abs(info["file"])
        for source, entry in manifest["sources"].items()
        for entity, info in entry["entities"].items()
    }
    derived = {t: store.abs(rel) for t, rel in tables.items() if t in DERIVED_TABLES and t not in READ_FROM}
    with work_connection(company) as con:
        con.execute(MASK_MACROS)
        fresh = personal.profile(con, entity_files, derived)
    kept = pl.read_parquet(store.abs(tables["personal_columns"]))
    assert kept.height > 0 and kept["source_system"].n_unique() > 1
    assert_frame_equal(kept, fresh)
    assert_frame_equal(pl.read_parquet(store.abs(tables["validation_runs"])), runs)
    assert_frame_equal(pl.read_parquet(store.abs(tables["validation_results"])), results)
    marketing = runs.filter(pl.col("source_system") == "marketing")
    assert marketing.height == 2 and marketing["rows"][0] == marketing["rows"][1] + 1  # the new day's row


def test_a_refresh_after_full_keeps_every_snapshot_full_made(company: Settings) -> None:
    assert refresh(company, full=True).exit_code == 0
    made = {s: e["snapshot_id"] for s, e in Store(company.data_path).read_manifest()["sources"].items()}
    result = refresh(company)
    assert all(s.unchanged for s in result.sources) and {s.source: s.snapshot_id for s in result.sources} == made
