"""Sources read two at a time (engine duckdb), in the refresh's process or in one of their own: what is
published is what reading them one after another publishes, a failing source still fails alone, sources that
would not fit in memory together are never read at once, and the progress shows each source running beside the
other with its own time."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.pipeline import fingerprint
from dashboard.pipeline import refresh as refreshing
from dashboard.pipeline.progress import DONE, RUNNING, Tracker
from dashboard.pipeline.refresh import refresh


def _two_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first two sources must be read at the same time: each waits for the other before it reads."""
    met = threading.Barrier(2, timeout=60)
    read = refreshing.refresh_source
    calls: list[str] = []

    def together(settings: Settings, store: Store, src: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(src.name)
        if len(calls) <= 2:
            met.wait()  # broken (an error) when the other is not being read meanwhile
        return read(settings, store, src, *args, **kwargs)

    _lanes(monkeypatch, 2)
    monkeypatch.setattr(refreshing, "refresh_source", together)


def _lanes(monkeypatch: pytest.MonkeyPatch, lanes: int) -> None:
    """``lanes`` at a time in this process, whatever the sources' sizes."""
    plan = refreshing.plan_sources

    def planned(settings: Settings, chosen: list[Any]) -> refreshing.SourcePlan:
        return dataclasses.replace(plan(settings, chosen), lanes=lanes, room=float("inf"), apart=False)

    monkeypatch.setattr(refreshing, "plan_sources", planned)


def _published(settings: Settings) -> dict[str, pl.DataFrame]:
    """Every published source file and derived table, by its name (without the snapshot ids: new each time)."""
    manifest = Store(settings.data_path).read_manifest()
    out = {
        f"{source}.{entity}": pl.read_parquet(settings.data_path / info["file"])
        for source, entry in manifest["sources"].items()
        for entity, info in entry["entities"].items()
    }
    for table, rel in manifest["derived"]["tables"].items():
        out[table] = pl.read_parquet(settings.data_path / rel)
    return {name: frame.drop("snapshot_id", strict=False) for name, frame in out.items()}


def test_sources_read_two_at_a_time_publish_what_one_at_a_time_publishes(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as one:
        _lanes(one, 1)
        assert refresh(company, full=True).exit_code == 0
    alone = _published(company)
    order = list(Store(company.data_path).read_manifest()["sources"])

    _two_at_once(monkeypatch)
    result = refresh(company, full=True)

    assert result.exit_code == 0
    assert [r.source for r in result.sources] == company.source_names  # the config's order, as read one by one
    assert list(Store(company.data_path).read_manifest()["sources"]) == order
    _same(_published(company), alone)


# when each was made, or a history of every kept snapshot (one more each refresh): not compared
HISTORY = {"customer_redirects", "validation_runs", "validation_results", "field_quality", "identity_model"}
HISTORY |= {"churn_model"}
# ordered by a column with ties (lead_facts and attribution by created_at: a trade-show and a web lead at the
# same minute), which DuckDB's threads order either way, one refresh after another too: the same rows
TIES = {"lead_facts", "attribution", "filter_values"}


def _same(got: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> None:
    assert got.keys() == expected.keys()
    for name, frame in expected.items():
        if name in TIES:
            assert got[name].sort(pl.all()).equals(frame.sort(pl.all())), name
        elif name not in HISTORY:
            assert got[name].equals(frame), name


def _apart(settings: Settings) -> Settings:
    """Sources (and the derived build) in processes of their own, however small they are."""
    cfg = settings.base_dir / "cockpit.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + '\n[engine]\nderive_in_process_below = "0GB"\n', encoding="utf-8")
    return load_settings(cfg)


def test_sources_read_in_a_process_of_their_own_publish_what_this_process_publishes(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as here:
        _lanes(here, 2)
        assert refresh(company, full=True).exit_code == 0
    alone = _published(company)
    settings = _apart(company)
    assert refreshing.plan_sources(settings, [settings.source(n) for n in settings.source_names]).apart
    lines: list[str] = []
    result = refresh(settings, full=True, progress=lines.append)
    assert result.exit_code == 0
    assert [r.source for r in result.sources] == company.source_names
    assert all(r.steps["extract"]["seconds"] >= 0 for r in result.sources)  # each source's own step times
    _same(_published(settings), alone)
    for name in company.source_names:  # each source's progress told here as it was read there
        assert any(line.endswith(f"] {name}: reading") for line in lines), lines
        assert any(f"] {name}: published (" in line for line in lines), lines
    attempts = Store(settings.data_path).runs / "attempts"
    assert all(p.is_file() for p in attempts.glob("*/*.json"))


def test_a_failing_source_fails_alone_in_the_sources_process(company: Settings) -> None:
    settings = _apart(company)
    (settings.base_dir / "imports" / "crm" / "leads.csv").write_bytes(b"")
    result = refresh(settings, full=True)
    assert [r.source for r in result.sources if not r.published] == ["crm"]
    [crm] = [r for r in result.sources if r.source == "crm"]
    assert any("leads.csv" in reason and "empty" in reason for reason in crm.reasons), crm.reasons
    assert result.exit_code == 3


def test_a_failing_source_fails_alone_while_another_is_read(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    (company.base_dir / "imports" / "crm" / "leads.csv").write_bytes(b"")
    _two_at_once(monkeypatch)
    result = refresh(company, full=True)
    assert [r.source for r in result.sources if not r.published] == ["crm"]  # the others published
    assert len(result.sources) == 5
    [crm] = [r for r in result.sources if r.source == "crm"]
    assert any("leads.csv" in reason and "empty" in reason for reason in crm.reasons), crm.reasons
    assert result.exit_code == 3


def test_sources_that_would_not_fit_together_are_never_read_at_once(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = [company.source(n) for n in company.source_names]
    monkeypatch.setattr(refreshing.os, "cpu_count", lambda: 2)
    plan = refreshing.plan_sources(company, chosen)
    assert plan.lanes == 2 and not plan.apart  # the small company's files, as they are: here, two at a time
    spark = company.model_copy(update={"engine": company.engine.model_copy(update={"kind": "spark"})})
    assert refreshing.plan_sources(spark, chosen).lanes == 1  # the sources share the session's executors
    assert refreshing.plan_sources(company, chosen[:1]).lanes == 1

    # crm and erp each hold 3 of the 4 GB the sources may hold together: read one after the other, the small
    # ones beside either
    held = dict.fromkeys(company.source_names, 0.5e9) | {"crm": 3e9, "erp": 3e9}
    monkeypatch.setattr(refreshing, "held_estimate", lambda _settings, src: (held[src.name], held[src.name]))
    monkeypatch.setattr(refreshing, "KEPT_BESIDE", 0)
    here = company.engine.model_copy(update={"derive_in_process_below": "1TB"})  # read in this process
    room = f"{(4e9 + refreshing.process_rss()) / 1e6:.0f}MB"
    settings = company.model_copy(update={"build_memory": room, "engine": here})
    assert refreshing.plan_sources(settings, chosen).room == pytest.approx(4e9, rel=0.01)
    reading: set[str] = set()
    seen: list[set[str]] = []
    read, lock = refreshing.refresh_source, threading.Lock()

    def watched(settings: Settings, store: Store, src: Any, *args: Any, **kwargs: Any) -> Any:
        with lock:
            reading.add(src.name)
            seen.append(set(reading))
        try:
            return read(settings, store, src, *args, **kwargs)
        finally:
            with lock:
                reading.discard(src.name)

    monkeypatch.setattr(refreshing, "refresh_source", watched)
    assert refresh(settings, full=True).exit_code == 0
    assert not any({"crm", "erp"} <= at_once for at_once in seen)
    plan = refreshing.plan_sources(settings, chosen)
    crm, erp, *small = sorted(chosen, key=lambda s: -held[s.name])
    assert [crm.name, erp.name] == ["crm", "erp"]
    assert refreshing._next([erp, *small], [crm], plan) == small[0]  # the largest that fits beside crm
    assert refreshing._next([erp, *small], [small[0]], plan) == erp


def test_the_progress_shows_two_sources_running_each_with_its_own_time(tmp_path: Path) -> None:
    now = [100.0]
    lines: list[str] = []
    with Tracker(Store(tmp_path), ["crm", "erp", "marketing"], lines.append, clock=lambda: now[0], lanes=2) as t:
        t.source_started("crm")
        now[0] += 1
        t.source_started("erp")
        running = {s.name: s.state for s in t.progress.steps if s.source}
        assert running == {"crm": RUNNING, "erp": RUNNING, "marketing": "waiting"}
        now[0] += 2
        t.source_ended("erp", "published", 36)
        now[0] += 3
        t.source_ended("crm", "published", 79)
        took = {s.name: (s.state, s.seconds) for s in t.progress.steps if s.source in ("crm", "erp")}
        assert took == {"crm": (DONE, 6.0), "erp": (DONE, 2.0)}
    assert "[2/3] erp: published (36 rows) in 2.0 s" in lines
    assert "[1/3] crm: published (79 rows) in 6.0 s" in lines


def test_a_full_refresh_records_the_inputs_the_next_refresh_keeps(company: Settings) -> None:
    """--full digests the files beside their read: what it records is their fingerprint, so nothing is read again."""
    assert refresh(company, full=True).exit_code == 0
    manifest = Store(company.data_path).read_manifest()
    for name in company.source_names:
        assert manifest["sources"][name]["inputs"] == fingerprint.source_inputs(company, company.source(name)), name
    again = refresh(company)
    assert [r.source for r in again.sources if not r.unchanged] == []


@pytest.mark.parametrize(("budget", "beside"), [(4e9, True), (3e9, False)])
def test_a_source_starts_beside_one_being_checked_when_what_that_one_still_holds_leaves_room(
    company: Settings, monkeypatch: pytest.MonkeyPatch, budget: float, beside: bool
) -> None:
    """crm holds 3 GB while read and 1 GB once its rows are read (checked and staged), erp 2.5 GB: they are never
    read at once, but erp starts while crm's rows are checked when 1 + 2.5 GB fit in the budget (4 GB), and only
    after crm when they do not (3 GB). The progress says so: erp's "reading" between crm's "validating" and its end."""
    monkeypatch.setattr(refreshing.os, "cpu_count", lambda: 2)
    estimates = dict.fromkeys(company.source_names, (0.5e9, 0.5e9)) | {"crm": (3e9, 1e9), "erp": (2.5e9, 2.5e9)}
    monkeypatch.setattr(refreshing, "held_estimate", lambda _settings, src: estimates[src.name])
    monkeypatch.setattr(refreshing, "KEPT_BESIDE", 0)
    here = company.engine.model_copy(update={"derive_in_process_below": "1TB"})  # read in this process
    room = f"{(budget + refreshing.process_rss()) / 1e6:.0f}MB"
    settings = company.model_copy(update={"build_memory": room, "engine": here})
    erp_started = threading.Event()
    read, check = refreshing.refresh_source, refreshing.validate

    def reading(settings: Settings, store: Store, src: Any, *args: Any, **kwargs: Any) -> Any:
        if src.name == "erp":
            erp_started.set()
        return read(settings, store, src, *args, **kwargs)

    def checking(frame: Any, entity: str, source: str, *args: Any, **kwargs: Any) -> Any:
        if source == "crm":  # crm's rows are read: erp starts now, or never while crm is checked
            erp_started.wait(timeout=60 if beside else 0.5)
        return check(frame, entity, source, *args, **kwargs)

    monkeypatch.setattr(refreshing, "refresh_source", reading)
    monkeypatch.setattr(refreshing, "validate", checking)
    lines: list[str] = []
    assert refresh(settings, full=True, progress=lines.append).exit_code == 0
    at = {line.strip(): i for i, line in enumerate(lines)}
    crm_checked = next(i for line, i in at.items() if line.startswith("crm: validating"))
    crm_ended = next(i for line, i in at.items() if "] crm: published" in line)
    erp_reading = next(i for line, i in at.items() if line.endswith("] erp: reading"))
    assert crm_checked < erp_reading  # never both read at once (3 + 2.5 GB)
    assert (erp_reading < crm_ended) is beside, lines
