"""The big screen (?kiosk=1): says how old each source is and turns amber past the schedule, keeps
going when one refresh of its tiles fails, and shows a new snapshot once it is published."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.components import data
from dashboard.components.kiosk import age
from dashboard.core.config import Settings
from dashboard.core.errors import QueryError
from dashboard.core.store import Store
from dashboard.i18n.values import ValueLabels
from tests.test_channels_page import metrics, open_page

pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture(autouse=True)
def _one_tick(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """AppTest has no timer: the fragment's body runs once per script run, as a tick would."""
    ticks: list[float] = []

    def fragment(body: Callable[[], None], run_every: float) -> Callable[[], None]:
        ticks.append(run_every)
        return body

    monkeypatch.setattr("dashboard.components.kiosk.st.fragment", fragment)
    monkeypatch.setattr("dashboard.components.tiles.today", lambda tz: dt.date(2026, 3, 15))
    return ticks


def as_of_line(at: AppTest, lang: str = "en") -> str:
    """The line as it reads (each source's name and time are kept whole with no-break characters)."""
    prefix = "Data as of" if lang == "en" else "数据截至"
    line = next(str(m.value) for m in at.markdown if str(m.value).startswith(prefix))
    return line.replace("\u2060", "").replace("\u00a0", " ")


def test_a_sources_time_on_the_wall_does_not_break_across_lines(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk found 2026年12 / 月6日 19:50 broken over two lines of the wall's as-of line (Chinese breaks
    between any two characters): a source's name and time are kept whole, the line breaks between sources."""
    at = open_page(company, monkeypatch, "cockpit", lang="zh", kiosk="1")
    line = next(str(m.value) for m in at.markdown if str(m.value).startswith("数据截至"))
    entries = line.split(" · ")[1:]
    assert entries and all(" " not in e and re.search(r"年\u2060\d", e) for e in entries), entries
    # in English each source by its English name, as the cockpit's freshness lines (its configured title is Chinese)
    at.sidebar.radio[0].set_value("en").run()
    names = ValueLabels(company.label_texts())
    line = as_of_line(at, "en")
    assert all(f"**{names.label('source', s.name, 'en')}** 20" in line for s in company.sources), line
    assert "**展会登记**" not in line


def latest_publish(settings: Settings) -> datetime:
    sources = Store(settings.data_path).read_manifest()["sources"].values()
    return max(datetime.fromisoformat(info["published_at"]) for info in sources)


def test_age_reads_in_whole_units() -> None:
    now = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
    ago = {m: (now - timedelta(minutes=m)).isoformat() for m in (0, 5, 180, 4 * 24 * 60)}
    assert [age(ago[m], now, "zh") for m in ago] == ["刚刚", "5 分钟前", "3 小时前", "4 天前"]
    assert [age(ago[m], now, "en") for m in ago] == ["just now", "5 min ago", "3 h ago", "4 days ago"]


def test_the_wall_says_how_old_the_data_is_and_turns_amber_past_the_schedule(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = latest_publish(company)
    monkeypatch.setattr("dashboard.components.kiosk.now_utc", lambda: published + timedelta(hours=3))
    at = open_page(company, monkeypatch, "cockpit", lang="zh", kiosk="1")
    line = as_of_line(at, "zh")
    assert "3 小时前" in line and "（3 小时前）" in line  # full-width brackets in Chinese: the walk found (28 分钟前)
    assert ":orange[" not in line  # within the schedule: nothing to worry about

    two_days = published + timedelta(days=2)  # the daily 02:00 run has been missed
    monkeypatch.setattr("dashboard.components.kiosk.now_utc", lambda: two_days)
    monkeypatch.setattr("dashboard.ops.status.now_utc", lambda: two_days)
    at.run()
    line = as_of_line(at, "zh")
    assert ":orange[**展会登记**" in line  # the scheduled source, in amber
    assert "2 天前" in line


def test_a_failed_tick_shows_a_note_and_the_next_tick_draws_the_wall(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(company, monkeypatch, "cockpit", kiosk="1")
    assert metrics(at)["Leads"] == "60"
    real = data.query
    failing = {"left": 1}

    def flaky(name: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        if failing["left"]:
            failing["left"] -= 1
            raise QueryError("connection is busy with another call")
        return real(name, params)

    monkeypatch.setattr(data, "query", flaky)
    at.run()
    assert not at.exception
    assert any("Refresh failed" in str(w.value) and "busy" in str(w.value) for w in at.warning)
    at.run()  # the next tick
    assert not at.exception
    assert not [w for w in at.warning if "Refresh failed" in str(w.value)]
    assert metrics(at)["Leads"] == "60"


def test_the_wall_shows_a_new_snapshot_once_published(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.pipeline.refresh import refresh

    at = open_page(company, monkeypatch, "cockpit", kiosk="1")
    assert metrics(at)["Leads"] == "60"
    export = company.base_dir / "imports" / "trade_show" / "ts_2026.csv"
    with export.open("ab") as f:  # one more registration at the trade show
        f.write("TS-99,2026/3/1 10:00,展会,13800138099,张九九\n".encode("gbk"))
    assert refresh(company, ["trade_show"]).exit_code == 0
    at.run()  # the next tick
    assert not at.exception
    assert metrics(at)["Leads"] == "61"
