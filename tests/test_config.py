"""cockpit.toml is validated at load, and every error names the key that is wrong."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from dashboard.core.config import load_settings, parse_settings
from dashboard.core.errors import ConfigError

GOOD_SOURCE = {
    "name": "trade_show",
    "kind": "csv",
    "tables": [{"entity": "leads", "path": "x.csv", "columns": {"lead_id": "no"}}],
}


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as e:
        parse_settings(raw, Path("."))
    return e.value.message


def test_unknown_entity_is_named_with_its_source() -> None:
    src = {**GOOD_SOURCE, "tables": [{"entity": "lead", "path": "x.csv"}]}
    msg = _error({"sources": [src]})
    assert "sources[0] (trade_show).tables[0].entity" in msg
    assert "unknown entity 'lead'" in msg


def test_unknown_key_is_named() -> None:
    assert "sources[0] (trade_show).colour: unknown key" in _error({"sources": [{**GOOD_SOURCE, "colour": "red"}]})
    assert "datadir: unknown key" in _error({"datadir": "x"})


def test_mapping_to_a_column_the_entity_lacks_is_named() -> None:
    src = {**GOOD_SOURCE, "tables": [{"entity": "leads", "path": "x", "columns": {"lead_no": "a"}}]}
    assert "'lead_no' is not a column of leads" in _error({"sources": [src]})


def test_bad_values_are_named() -> None:
    assert "language" in _error({"language": "fr"})
    assert "unknown kind 'oracle'" in _error({"sources": [{**GOOD_SOURCE, "kind": "oracle"}]})
    assert "not a valid cron" in _error({"sources": [{**GOOD_SOURCE, "schedule": "every day"}]})
    assert "'Trade Show' must be lower-case" in _error({"sources": [{**GOOD_SOURCE, "name": "Trade Show"}]})
    assert "used twice" in _error({"sources": [GOOD_SOURCE, GOOD_SOURCE]})
    assert "'closed' is not a funnel stage" in _error({"stage_aliases": {"closed": ["x"]}})


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "cockpit.toml"
    bad.write_text("data_dir = ", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_paths_are_relative_to_the_config_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "cockpit.toml"
    cfg.write_text('data_dir = "store"\n', encoding="utf-8")
    assert load_settings(cfg).data_path == tmp_path / "store"


def test_repository_config_is_valid() -> None:
    settings = load_settings(Path(__file__).resolve().parents[1] / "cockpit.toml")
    assert len(settings.sources) >= 8


def test_memory_limit_is_a_size_and_holds_the_build_connections(tmp_path: Path) -> None:
    from dashboard.core.duck import work_connection

    assert "memory_limit" in _error({"memory_limit": "4 gigs"})
    settings = parse_settings({"data_dir": str(tmp_path / "data"), "memory_limit": "256MB"}, tmp_path)
    with work_connection(settings) as con:
        assert con.sql("SELECT current_setting('memory_limit')").fetchall() == [("244.1 MiB",)]
        spill = con.sql("SELECT current_setting('temp_directory')").fetchall()[0][0]
        assert Path(spill).parent == tmp_path / "data" / ".spill"
        # a sort bigger than the limit finishes by spilling instead of failing or taking the machine
        con.execute("CREATE TABLE t AS SELECT md5(CAST(range AS VARCHAR)) AS h FROM range(6000000) ORDER BY h")
        assert con.sql("SELECT count(*) FROM t").fetchall() == [(6_000_000,)]
    assert not Path(spill).exists()  # its spill folder goes with it


def test_a_shared_limit_gives_duckdb_what_the_process_does_not_hold(tmp_path: Path) -> None:
    from dashboard.core.duck import MIN_DUCKDB_MEMORY, bounded_connection, process_rss, size_bytes

    assert (size_bytes("4GB"), size_bytes("2 GiB"), size_bytes("512mb")) == (4_000_000_000, 2**31, 512_000_000)
    held = process_rss()
    assert held > 0

    def limit(memory_limit: str) -> float:
        with bounded_connection(memory_limit, tmp_path / "spill", shared=True) as con:
            text = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
        number, unit = text.split()
        return float(number) * {"MiB": 2**20, "GiB": 2**30}[unit]

    # ten GiB for the process, this much of it already held: DuckDB gets the rest (DuckDB shows 0.1 GiB)
    assert abs(limit("10GiB") - (10 * 2**30 - held)) < 0.15 * 2**30
    # a process already over the limit still leaves DuckDB the floor (never more than the limit), not nothing
    half = held // 2**20 // 2
    assert limit(f"{half}MiB") == min(MIN_DUCKDB_MEMORY, half * 2**20)


def test_a_heavy_step_gets_what_the_build_memory_leaves(tmp_path: Path) -> None:
    from dashboard.core.duck import MIN_STEP_MEMORY, STEP_HEADROOM, bounded_connection, process_rss, step_memory

    def setting(con: duckdb.DuckDBPyConnection) -> float:
        number, unit = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0].split()
        return float(number) * {"MiB": 2**20, "GiB": 2**30}[unit]

    gib = 2**30
    with bounded_connection("4GB", tmp_path / "spill") as con:
        held = process_rss()
        # the process may hold 3 GiB more than it does: the step's DuckDB gets those less the headroom, not 4 GB
        with step_memory(con, f"{(held + 3 * gib) // 2**20}MiB", "4GB") as given:
            assert abs(setting(con) - (3 * gib - STEP_HEADROOM)) < 0.25 * gib
            assert given.endswith("MiB")
        assert abs(setting(con) - 4e9) < 0.1 * gib  # the connection's own limit again after the step
        # a budget the process already fills still leaves the step 1 GiB; a roomy one never more than the limit
        with step_memory(con, f"{held // 2**20}MiB", "4GB"):
            assert setting(con) == MIN_STEP_MEMORY
        with step_memory(con, "64GB", "3GiB"):
            assert setting(con) == 3 * gib


def test_golden_at_large_stays_within_the_build_memory_with_its_step_share() -> None:
    from dashboard.core.duck import MIN_STEP_MEMORY, step_share

    gib = 2**30
    # session 11's build at large: the process held 2.93 GB when golden started, and golden went 1.1 GiB past
    # what the process held plus its DuckDB's limit: with the share it gets of 6 GB it stays within 6 GB
    held, past = 2_930_000_000, int(1.1 * gib)
    share = step_share(6_000_000_000, held, 4_000_000_000)
    assert held + share + past <= 6_000_000_000
    assert share > 1.5 * gib  # and golden still gets more than the floor
    # the floor when the process already fills the budget; never more than the connection's own limit
    assert step_share(6_000_000_000, 6_000_000_000, 4_000_000_000) == MIN_STEP_MEMORY
    assert step_share(64 * gib, held, 3 * gib) == 3 * gib


def test_glibc_gives_back_its_free_memory_before_a_step_measures_what_the_process_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from dashboard.core import duck

    if sys.platform.startswith("linux"):  # ~300 MB of small blocks freed between kept ones: glibc keeps them
        blocks = [bytes(1000) + bytes([i % 256]) for i in range(300_000)]
        kept = blocks[::100]
        del blocks
        before = duck.process_rss()
        assert duck.trim_heap()
        assert before - duck.process_rss() > 200 * 2**20
        del kept

    # the step's share is of what the process holds after the trim, not before it
    gib, trimmed = 2**30, []
    monkeypatch.setattr(duck, "trim_heap", lambda: trimmed.append(True) or True)
    monkeypatch.setattr(duck, "process_rss", lambda: 2 * gib if trimmed else 3 * gib)
    with duck.bounded_connection("4GB", tmp_path / "spill") as con, duck.step_memory(con, "6GiB", "4GB") as given:
        assert given == f"{duck.step_share(6 * gib, 2 * gib, 4_000_000_000) // 2**20}MiB"
        number, unit = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0].split()
        assert abs(float(number) * {"MiB": 2**20, "GiB": 2**30}[unit] - (4 * gib - duck.STEP_HEADROOM)) < 0.1 * gib
