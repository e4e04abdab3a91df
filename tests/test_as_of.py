"""The refresh's "today" (COCKPIT_AS_OF): golden records' lifecycle and churn's last day read come from the
clock's date in [timezone] unless the variable names a day. A company replays a day with it; the tests hold
the day their run started (tests/conftest.py), so a build made after midnight in Shanghai (16:00 UTC) gives
the numbers of the builds made before it."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dashboard.core import config
from dashboard.core.config import AS_OF_ENV, Settings, load_settings, today
from dashboard.core.errors import ConfigError
from dashboard.core.store import Store
from dashboard.derived.golden import GOLDEN_TABLES, start_of_today
from dashboard.pipeline.derive import build_derived

# the tables whose numbers depend on the day (golden's lifecycle, churn's scores), and a run's own columns
DAY_TABLES = [*GOLDEN_TABLES, "churn_scores"]
RUN_COLUMNS = {"built_at", "trained_at", "snapshot_id"}


def _clock_at(monkeypatch: pytest.MonkeyPatch, instant: datetime) -> None:
    """The product's clock (core/config.py today) stopped at ``instant`` (an aware time)."""

    class Stopped(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Stopped:  # type: ignore[override]
            return cls.fromtimestamp(instant.timestamp(), tz)

    monkeypatch.setattr(config, "datetime", Stopped)


def test_the_day_is_the_clocks_in_the_timezone_unless_cockpit_as_of_names_one(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()  # Asia/Shanghai: its midnight is 16:00 UTC
    monkeypatch.delenv(AS_OF_ENV)
    _clock_at(monkeypatch, datetime(2026, 3, 15, 15, 59, tzinfo=UTC))
    assert today(settings.timezone) == date(2026, 3, 15)
    assert start_of_today(settings) == datetime(2026, 3, 15)
    _clock_at(monkeypatch, datetime(2026, 3, 15, 16, 1, tzinfo=UTC))  # two minutes later, a new day in Shanghai
    assert today(settings.timezone) == date(2026, 3, 16)
    assert today("UTC") == date(2026, 3, 15)
    assert start_of_today(settings) == datetime(2026, 3, 16)

    monkeypatch.setenv(AS_OF_ENV, "2026-03-15")  # held: the clock no longer moves it
    assert today(settings.timezone) == date(2026, 3, 15)
    assert start_of_today(settings) == datetime(2026, 3, 15)
    monkeypatch.setenv(AS_OF_ENV, "15/03/2026")
    with pytest.raises(ConfigError, match="COCKPIT_AS_OF: '15/03/2026' is not a day like"):
        today(settings.timezone)


def _tables(store: Store, derived: dict[str, object]) -> dict[str, pl.DataFrame]:
    tables = derived["tables"]
    assert isinstance(tables, dict)
    out = {}
    for table in DAY_TABLES:
        frame = pl.read_parquet(store.abs(tables[table]))
        out[table] = frame.drop([c for c in frame.columns if c in RUN_COLUMNS])
    return out


def test_a_build_after_midnight_with_the_day_held_publishes_the_same_golden_records_and_churn(
    small_demo: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's small demo was built early in the run; a full derived build of the same snapshots five minutes
    after the next midnight in Shanghai (every step made again, none reused) holds the same rows."""
    held = date.fromisoformat(config.env(AS_OF_ENV) or "")  # tests/conftest.py set it before the demo was built
    shutil.copytree(small_demo.base_dir, tmp_path / "demo", symlinks=True)
    settings = load_settings(tmp_path / "demo" / "cockpit.toml")
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    assert manifest["derived"]["tables"]["customer_golden"]

    midnight = datetime.combine(held + timedelta(days=1), datetime.min.time(), ZoneInfo(settings.timezone))
    _clock_at(monkeypatch, midnight + timedelta(minutes=5))
    monkeypatch.delenv(AS_OF_ENV)
    assert today(settings.timezone) == held + timedelta(days=1)  # without the held day, a new day has begun
    monkeypatch.setenv(AS_OF_ENV, held.isoformat())
    assert start_of_today(settings) == datetime.combine(held, datetime.min.time())

    remade = build_derived(settings, store, manifest, full=True)["derived"]
    assert remade["reused"] == []  # every step made again, after midnight
    before, after = _tables(store, manifest["derived"]), _tables(store, remade)
    lifecycles = before["customer_golden"]["lifecycle_stage"].value_counts()
    assert {"active", "lapsed"} <= set(lifecycles["lifecycle_stage"].to_list()), lifecycles  # what the day decides
    for table in DAY_TABLES:
        assert before[table].height > 0, table
        assert_frame_equal(before[table], after[table], check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
