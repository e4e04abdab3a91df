"""Database extracts kept as a base file plus delta files (dashboard/sources/extract.py).

Read as one relation they hold exactly what a full pull holds (updates, deletions, keys repeated within
a pull); compaction writes that relation as one base; a delta that cannot be read is an error naming the
file and the current snapshot keeps serving. Against real PostgreSQL and MariaDB servers as in
tests/test_source_database.py, and kill -9 in the middle of adding a delta or compacting leaves the old state.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dashboard.core.config import CRASH_ENV, Settings, TableConfig, load_settings
from dashboard.core.errors import SourceError
from dashboard.core.store import Store
from dashboard.pipeline.refresh import refresh
from dashboard.sources import extract
from tests import test_source_database as dbt
from tests.test_source_database import CUSTOMERS, EXTRACT_ONLY, T0, Db, _tree_digest, published, write_config

server, db = dbt.server, dbt.db  # the real servers of the database tests
pytestmark = pytest.mark.xdist_group("databases")  # beside them: the servers start once (tests/conftest.py)

TABLE = TableConfig.model_validate(
    {"entity": "customers", "table": "c", "key": "id", "watermark": "ts", "delete_column": "deleted"}
)
Row = dict[str, Any]


# -- files alone ---------------------------------------------------------------------------------------------
def upserted(base: list[Row], deltas: list[list[Row]]) -> list[Row]:
    """What a full pull would hold: each pull's latest row per key (highest watermark, then last) replaces the
    key's row, a deletion removes it."""
    table = {r["id"]: r for r in base}
    for delta in deltas:
        latest: dict[int, tuple[tuple[bool, int, int], Row]] = {}
        for pos, r in enumerate(delta):
            rank = (r["ts"] is not None, r["ts"] or 0, pos)
            if r["id"] not in latest or rank > latest[r["id"]][0]:
                latest[r["id"]] = (rank, r)
        for key, (_rank, r) in latest.items():
            if r["deleted"]:
                table.pop(key, None)
            else:
                table[key] = r
    return sorted(table.values(), key=lambda r: r["id"])


def frame(rows: list[Row]) -> pl.DataFrame:
    schema = {"id": pl.Int64, "name": pl.String, "ts": pl.Int64, "deleted": pl.Boolean}
    return pl.DataFrame(rows, schema=schema, orient="row")


def chain(folder: Path, seed: int = 7, pulls: int = 3) -> tuple[extract.Extract, list[Row], list[list[Row]]]:
    """A 1,000-row base and ``pulls`` deltas of updates, new keys, keys repeated within a pull (some with
    no watermark) and deletions, written as a snapshot's extract folder."""
    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    base = [{"id": i, "name": f"c{i}", "ts": i, "deleted": False} for i in range(1, 1001)]
    deltas = []
    for p in range(1, pulls + 1):
        rows = [
            {
                "id": rnd.randint(1, 1100),  # about 1 in 11 a new key; repeats within the pull are common
                "name": f"c{p}-{n}",
                "ts": None if rnd.random() < 0.05 else 2000 * p + rnd.randint(0, 50),
                "deleted": rnd.random() < 0.15,
            }
            for n in range(120)
        ]
        deltas.append(rows)
    frame(base).write_parquet(folder / "0.parquet")
    for p, rows in enumerate(deltas, 1):
        frame(rows).write_parquet(folder / extract.delta_name(0, p))
    files = tuple(folder / extract.delta_name(0, p) for p in range(1, pulls + 1))
    ext = extract.Extract(TABLE, folder / "0.parquet", files, len(base), tuple(len(d) for d in deltas), "erp.c")
    return ext, base, deltas


def test_base_and_deltas_read_as_the_table_a_full_pull_gives(tmp_path: Path) -> None:
    ext, base, deltas = chain(tmp_path / "s1" / "extract")
    expected = frame(upserted(base, deltas))
    got = ext.read().sort("id")
    assert got.height == expected.height and got["id"].n_unique() == got.height  # one row per key
    assert_frame_equal(got, expected)
    repeated = [r["id"] for r in deltas[0]]
    assert len(repeated) > len(set(repeated))  # the pulls did repeat keys
    assert got.filter(pl.col("deleted")).height == 0
    assert got.filter(pl.col("name").str.starts_with("c3-")).height > 0  # the last pull's versions are there


def test_compaction_writes_the_merged_view_and_leaves_the_old_files(tmp_path: Path) -> None:
    ext, base, deltas = chain(tmp_path / "s1" / "extract")
    before = {p.name: p.read_bytes() for p in ext.files}
    out = tmp_path / "s2" / "extract"
    out.mkdir(parents=True)
    compacted = extract.compact(ext, out / "0.parquet")
    assert compacted.deltas == () and sorted(p.name for p in out.iterdir()) == ["0.parquet"]
    assert_frame_equal(compacted.read().sort("id"), ext.read().sort("id"))
    assert_frame_equal(compacted.read().sort("id"), frame(upserted(base, deltas)))
    assert compacted.base_rows == frame(upserted(base, deltas)).height
    assert {p.name: p.read_bytes() for p in ext.files} == before  # the published snapshot's files untouched


def test_a_small_delta_is_added_without_rewriting_the_base(tmp_path: Path) -> None:
    ext, base, deltas = chain(tmp_path / "s1" / "extract", pulls=1)
    out = tmp_path / "s2" / "extract"
    out.mkdir(parents=True)
    known, other = ext.read().sort("id")["id"][:2]
    rows = [
        {"id": known, "name": "renamed", "ts": 9000, "deleted": False},
        {"id": other, "name": "x", "ts": 9000, "deleted": True},
    ]
    frame(rows).write_parquet(out / extract.delta_name(0, 2))
    assert extract.counts(ext, ext.read().height, out / extract.delta_name(0, 2))[1:] == (2, 1)
    grown = extract.extend(ext, out / extract.delta_name(0, 2), len(rows), out, 0)
    assert [p.name for p in grown.files] == ["0.parquet", extract.delta_name(0, 1), extract.delta_name(0, 2)]
    assert grown.base.stat().st_ino == ext.base.stat().st_ino  # shared with the last snapshot, not copied
    written = [p for p in out.iterdir() if p.stat().st_nlink == 1]
    assert [p.name for p in written] == [extract.delta_name(0, 2)]
    assert_frame_equal(grown.read().sort("id"), frame(upserted(base, [*deltas, rows])))


def test_deltas_past_their_share_of_the_base_are_compacted(tmp_path: Path) -> None:
    ext, base, deltas = chain(tmp_path / "s1" / "extract", pulls=1)
    out = tmp_path / "s2" / "extract"
    out.mkdir(parents=True)
    big = [{"id": i, "name": "bulk", "ts": 9000, "deleted": False} for i in range(1, 301)]  # 30 % of the base
    frame(big).write_parquet(out / extract.delta_name(0, 2))
    grown = extract.extend(ext, out / extract.delta_name(0, 2), len(big), out, 0)
    assert grown.deltas == () and sorted(p.name for p in out.iterdir()) == ["0.parquet"]
    assert grown.base.stat().st_nlink == 1  # a new base of its own
    assert_frame_equal(grown.read().sort("id"), frame(upserted(base, [*deltas, big])))


def test_a_delta_that_cannot_be_read_is_an_error_naming_the_file(tmp_path: Path) -> None:
    ext, _base, _deltas = chain(tmp_path / "s1" / "extract")
    ext.deltas[1].write_bytes(b"PAR1 this is not a parquet file PAR1")
    with pytest.raises(SourceError) as err:
        ext.read()
    assert "s1/extract/0.delta-2.parquet cannot be read" in err.value.message
    assert "cockpit refresh --full" in err.value.message
    with pytest.raises(SourceError, match=r"0\.delta-2\.parquet"):
        extract.compact(ext, tmp_path / "s2.parquet")
    assert not list(tmp_path.glob("s2.parquet*"))  # no half-written base left behind

    ext.deltas[0].unlink()
    state = {"base": "0.parquet", "deltas": [{"file": p.name, "rows": 1} for p in ext.deltas]}
    with pytest.raises(SourceError, match=r"erp\.c: the extract file s1/extract/0\.delta-1\.parquet is missing"):
        extract.kept(ext.base.parent, 0, state, TABLE, "erp.c")


# -- through a refresh, against PostgreSQL and MariaDB -------------------------------------------------------
def customers(settings: Settings) -> pl.DataFrame:
    return published(settings, "customers").drop("snapshot_id").sort("source_record_id")


def state(settings: Settings) -> dict[str, Any]:
    store = Store(settings.data_path)
    sid = store.read_manifest()["sources"]["erp"]["snapshot_id"]
    result: dict[str, Any] = json.loads((store.snapshots / "erp" / sid / "extract" / "0.json").read_text())
    return result


def current_extract(settings: Settings) -> Path:
    store = Store(settings.data_path)
    return store.snapshots / "erp" / store.read_manifest()["sources"]["erp"]["snapshot_id"] / "extract"


@pytest.fixture
def erp(db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The ERP source of the database tests; these check its extract and published snapshot, so their refreshes
    make no Data Docs site and no Splink pass (EXTRACT_ONLY; test_source_database makes both)."""
    monkeypatch.setenv("ERP_DB_URL", db.server.url())
    return load_settings(write_config(tmp_path, db.server.kind, settings=EXTRACT_ONLY))


@pytest.fixture
def full_pull(db: Db, tmp_path: Path) -> Any:
    """The customers a refresh that pulls the whole table publishes (its own data folder)."""
    settings = load_settings(write_config(tmp_path / "oracle", db.server.kind, settings=EXTRACT_ONLY))

    def pull() -> pl.DataFrame:
        result = refresh(settings, ["erp"], full=True)
        assert result.exit_code == 0, [r.reasons for r in result.sources]
        assert state(settings)["mode"] == "full"
        return customers(settings)

    return pull


def change(db: Db, step: int, ids: Iterable[int], deleted: Iterable[int] = (), new: int = 0) -> None:
    when = T0 + timedelta(days=30 + step)
    for i in ids:  # one statement per row: a watermark a few rows share, as real edits give
        db.run(
            "UPDATE crm_customers SET full_name = %s, city = %s, updated_at = %s WHERE id = %s",
            params=(f"客户{i}-v{step}", "杭州", when, i),
        )
    for i in deleted:
        db.run("UPDATE crm_customers SET deleted = true, updated_at = %s WHERE id = %s", params=(when, i))
    if new:
        db.many(
            "INSERT INTO crm_customers (id, full_name, mobile, email, city, created, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(5000 + 100 * step + n, f"新{step}-{n}", None, None, "深圳", when, when) for n in range(new)],
        )


def test_incremental_pulls_publish_what_a_full_pull_does(db: Db, erp: Settings, full_pull: Any) -> None:
    assert refresh(erp).exit_code == 0
    assert customers(erp).height == CUSTOMERS
    # nothing changed in the ERP (the rows at the watermark, the orders pulled whole: the same): the snapshot
    # is kept, and identity sees the same records and is not made again
    again = refresh(erp)
    assert again.exit_code == 0 and "identity" in again.reused, again.reused
    assert [r.unchanged for r in again.sources if r.source == "erp"] == [True]

    change(db, 1, [3, 4], deleted=[5], new=2)
    assert refresh(erp).exit_code == 0
    assert_frame_equal(customers(erp), full_pull())
    s = state(erp)
    assert [d["file"] for d in s["deltas"]] == ["0.delta-1.parquet"]
    assert s["rows"] == CUSTOMERS - 1 + 2 and s["deleted_rows"] == 1 and not s["compacted"]

    change(db, 2, [4, 7, 8], deleted=[3], new=1)  # 4 changed again, 3 changed then deleted
    assert refresh(erp).exit_code == 0
    s = state(erp)
    assert [d["file"] for d in s["deltas"]] == ["0.delta-1.parquet", "0.delta-2.parquet"]
    folder = current_extract(erp)
    new_bytes = [p.name for p in folder.glob("0.*parquet") if p.stat().st_nlink == 1]  # 0: the customers
    assert new_bytes == ["0.delta-2.parquet"]  # the base and the earlier delta are the last snapshot's files

    got = customers(erp)
    assert_frame_equal(got, full_pull())
    names = dict(zip(got["source_record_id"], got["name"], strict=True))
    assert names["4"] == "客户4-v2" and "3" not in names and "5" not in names and names["5101"] == "新1-1"

    change(db, 3, range(10, 70))  # 60 of ~200 rows: past the deltas' share of the base, compacted
    assert refresh(erp).exit_code == 0
    assert_frame_equal(customers(erp), full_pull())
    s = state(erp)
    assert s["compacted"] and s["deltas"] == [] and s["rows"] == customers(erp).height
    assert [p.name for p in current_extract(erp).glob("0.*parquet")] == ["0.parquet"]


def test_a_bad_delta_file_quarantines_and_the_last_good_snapshot_serves(db: Db, erp: Settings, full_pull: Any) -> None:
    assert refresh(erp).exit_code == 0
    change(db, 1, [3], new=1)
    assert refresh(erp).exit_code == 0
    good = customers(erp)
    sid = Store(erp.data_path).read_manifest()["sources"]["erp"]["snapshot_id"]
    delta = current_extract(erp) / state(erp)["deltas"][-1]["file"]
    delta.write_bytes(b"not parquet")  # a damaged disk block, a stray edit

    change(db, 2, [4])
    result = refresh(erp)
    [res] = [r for r in result.sources if r.source == "erp"]
    assert not res.published and f"{sid}/extract/{delta.name} cannot be read" in res.reasons[0], res.reasons
    assert next(r for r in result.sources if r.source == "forms").published
    assert Store(erp.data_path).read_manifest()["sources"]["erp"]["snapshot_id"] == sid
    assert_frame_equal(customers(erp), good)

    fixed = refresh(erp, ["erp"], full=True)  # the way out the message names: the whole table again
    assert fixed.exit_code == 0 and state(erp)["mode"] == "full"
    assert_frame_equal(customers(erp), full_pull())


@pytest.mark.slow
@pytest.mark.parametrize(("point", "rows"), [("extract_delta", [3, 4]), ("extract_compacted", list(range(1, 80)))])
def test_kill_while_adding_a_delta_or_compacting_leaves_the_old_state(
    db: Db, erp: Settings, full_pull: Any, point: str, rows: list[int]
) -> None:
    assert refresh(erp).exit_code == 0
    change(db, 1, [9], new=1)
    assert refresh(erp).exit_code == 0  # a delta in the current snapshot
    store = Store(erp.data_path)
    sid = store.read_manifest()["sources"]["erp"]["snapshot_id"]
    before_files, before_rows = _tree_digest(store.snapshots / "erp" / sid), customers(erp)

    change(db, 2, rows)
    cfg = str(erp.base_dir / "cockpit.toml")
    proc = subprocess.run(
        [sys.executable, "-c", "from dashboard.cli import main; main()", "--config", cfg, "refresh", "erp"],
        env={**os.environ, CRASH_ENV: point},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert store.read_manifest()["sources"]["erp"]["snapshot_id"] == sid
    assert _tree_digest(store.snapshots / "erp" / sid) == before_files
    assert_frame_equal(customers(erp), before_rows)

    assert refresh(erp, ["erp"]).exit_code == 0  # the next refresh completes from the published watermark
    assert state(erp)["compacted"] == (point == "extract_compacted")
    assert_frame_equal(customers(erp), full_pull())
