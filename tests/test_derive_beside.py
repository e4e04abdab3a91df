"""Steps of the derived build run beside churn's (issue 22, point 2): the quality tables and the personal-data
profile's samples and companions, while churn fits its models on one core. Each still tells its own start and
time, and what they write is what the build wrote one step after another."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
from polars.testing import assert_frame_equal

from dashboard.core.config import Settings
from dashboard.core.dictionary import MASK_MACROS
from dashboard.core.duck import work_connection
from dashboard.core.store import Store
from dashboard.derived import personal
from dashboard.derived.tables import DERIVED_TABLES, READ_FROM
from dashboard.pipeline.progress import RUNNING, Tracker
from dashboard.pipeline.refresh import refresh


def test_steps_beside_each_other_each_tell_their_own_time(tmp_path: Path) -> None:
    now = [100.0]
    lines: list[str] = []
    store = Store(tmp_path / "data")
    tracker = Tracker(store, [], say=lines.append, clock=lambda: now[0])
    tracker.say("deriving: churn scores")
    now[0] += 1
    tracker.say("deriving (in parallel): quality tables")
    now[0] += 2
    tracker.lap("quality")
    tracker.say("deriving (in parallel): personal-data profile")
    assert {s.name for s in tracker.progress.steps if s.state == RUNNING} == {
        "derive.churn",
        "derive.personal-data profile",
    }
    now[0] += 4
    tracker.lap("churn", 12)
    now[0] += 0.5
    tracker.lap("personal")
    assert [line for line in lines if line.startswith("    ")] == [
        "    quality tables: done in 2.0 s",
        "    churn scores: 12 rows in 7.0 s",
        "    personal-data profile: done in 4.5 s",
    ]


def test_a_build_says_what_runs_beside_churn_and_profiles_every_file(company: Settings) -> None:
    lines: list[str] = []
    assert refresh(company, full=True, progress=lines.append).exit_code == 0
    assert "deriving (in parallel): quality tables" in lines
    assert "deriving (in parallel): personal-data profile" in lines
    assert any(re.match(r"    personal-data profile: done in \d+\.\d s", line) for line in lines), lines
    store = Store(company.data_path)
    manifest = store.read_manifest()
    tables = manifest["derived"]["tables"]
    entity_files = {
        (entity, source): store.abs(info["file"])
        for source, entry in manifest["sources"].items()
        for entity, info in entry["entities"].items()
    }
    derived = {t: store.abs(rel) for t, rel in tables.items() if t in DERIVED_TABLES and t not in READ_FROM}
    assert {"churn_scores", "field_quality", "identity_consistency"} <= set(derived)
    with work_connection(company) as con:
        con.execute(MASK_MACROS)
        every_file = personal.profile(con, entity_files, derived)  # one after another, in one call
    built = pl.read_parquet(store.abs(tables["personal_columns"]))
    assert built.height > 0
    assert_frame_equal(built, every_file)  # the same rows, in the same order
