"""Churn's DuckDB in the derived build (issue 22, point 2): held, as golden records' is, to what [build_memory]
leaves of what the process holds, less CHURN_HEADROOM for churn's own frames beside it; the connection's limit
again after the step."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from dashboard.core import duck
from dashboard.core.config import Settings, load_settings
from dashboard.derived.churn import build as churn
from dashboard.pipeline.refresh import refresh


def _limit(con: duckdb.DuckDBPyConnection) -> float:
    number, unit = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0].split()
    return float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]


def test_churn_in_the_derived_build_gets_what_the_build_memory_leaves_beside_its_frames(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = company.base_dir / "cockpit.toml"
    text = cfg.read_text(encoding="utf-8")
    assert "build_memory" not in text and "[engine]" not in text
    # the build in this process (so that it is seen), its memory 5 GB: less than held + headroom + the 4 GB limit
    cfg.write_text('build_memory = "5GB"\n' + text + "\n[engine]\nderive_in_child = false\n", encoding="utf-8")
    settings = load_settings(cfg)
    assert settings.build_memory == "5GB" and settings.memory_limit == "4GB"
    seen: list[tuple[float, int]] = []
    made = churn.build

    def build(con: duckdb.DuckDBPyConnection, *args: object) -> churn.ChurnRun:
        seen.append((_limit(con), duck.process_rss()))
        return made(con, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(churn, "build", build)
    assert refresh(settings, full=True).exit_code == 0
    (limit, held), *_ = seen
    # DuckDB got 5 GB less what the process held and CHURN_HEADROOM (at least 1 GiB), not its 4 GB
    expected = duck.step_share(5_000_000_000, held, 4_000_000_000, duck.CHURN_HEADROOM)
    assert abs(limit - expected) < 0.2 * 2**30
    assert limit < 4_000_000_000 - 0.5 * 2**30
    assert duck.CHURN_HEADROOM > duck.STEP_HEADROOM  # churn's frames grow beside its DuckDB, golden's do not


def test_a_step_with_more_headroom_leaves_its_duckdb_less(tmp_path: Path) -> None:
    gib = 2**30
    with duck.bounded_connection("4GB", tmp_path / "spill") as con:
        held = duck.process_rss()
        budget = f"{(held + 4 * gib) // 2**20}MiB"  # 4 GiB more than the process holds
        with duck.step_memory(con, budget, "4GB", duck.CHURN_HEADROOM):
            assert abs(_limit(con) - (4 * gib - duck.CHURN_HEADROOM)) < 0.25 * gib
        assert abs(_limit(con) - 4e9) < 0.1 * gib  # the connection's own limit again after the step
