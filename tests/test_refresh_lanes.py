"""Sources read two at a time (engine duckdb): what is published is what reading them one after another
publishes, a failing source still fails alone, sources that would not fit in memory together are read one
after another, and the progress shows each source running beside the other with its own time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.core.config import Settings
from dashboard.core.store import Store
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

    monkeypatch.setattr(refreshing, "source_lanes", lambda _settings, _n: 2)
    monkeypatch.setattr(refreshing, "refresh_source", together)


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
        one.setattr(refreshing, "source_lanes", lambda _settings, _n: 1)
        assert refresh(company, full=True).exit_code == 0
    alone = _published(company)
    order = list(Store(company.data_path).read_manifest()["sources"])

    _two_at_once(monkeypatch)
    result = refresh(company, full=True)

    assert result.exit_code == 0
    assert [r.source for r in result.sources] == company.source_names  # the config's order, as read one by one
    assert list(Store(company.data_path).read_manifest()["sources"]) == order
    together = _published(company)
    assert together.keys() == alone.keys()
    # when each was made, or a history of every kept snapshot (one more each refresh): not compared
    history = {"customer_redirects", "validation_runs", "validation_results", "field_quality", "identity_model"}
    history |= {"churn_model"}
    # ordered by a column with ties (lead_facts and attribution by created_at: a trade-show and a web lead at the
    # same minute), which DuckDB's threads order either way, one refresh after another too: the same rows
    ties = {"lead_facts", "attribution", "filter_values"}
    for name, frame in alone.items():
        if name in ties:
            assert together[name].sort(pl.all()).equals(frame.sort(pl.all())), name
        elif name not in history:
            assert together[name].equals(frame), name


def test_a_failing_source_fails_alone_while_another_is_read(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    (company.base_dir / "imports" / "crm" / "leads.csv").write_bytes(b"")
    _two_at_once(monkeypatch)
    result = refresh(company, full=True)
    assert [r.source for r in result.sources if not r.published] == ["crm"]  # the others published
    assert len(result.sources) == 5
    [crm] = [r for r in result.sources if r.source == "crm"]
    assert any("leads.csv" in reason and "empty" in reason for reason in crm.reasons), crm.reasons
    assert result.exit_code == 3


def test_sources_that_would_not_fit_together_are_read_one_after_another(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = company.model_copy(update={"build_memory": "100GB"})
    chosen = [settings.source(n) for n in settings.source_names]
    monkeypatch.setattr(refreshing.os, "cpu_count", lambda: 2)
    assert refreshing.source_lanes(company, chosen) == 2  # the small company's files, as they are
    monkeypatch.setattr(refreshing, "held_estimate", lambda _settings, _src: 30e9)  # 150 GB together
    assert refreshing.source_lanes(settings, chosen) == 1
    monkeypatch.setattr(refreshing, "held_estimate", lambda _settings, _src: 1e9)
    assert refreshing.source_lanes(settings, chosen) == 2
    spark = settings.model_copy(update={"engine": settings.engine.model_copy(update={"kind": "spark"})})
    assert refreshing.source_lanes(spark, chosen) == 1  # the sources share the session's executors
    assert refreshing.source_lanes(settings, chosen[:1]) == 1


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
