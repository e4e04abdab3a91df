"""The scheduler's timing, with an injectable clock (nothing sleeps): sources due together refresh
together, a missed run runs once at start-up, an unreadable source is retried with back-off and a
quarantined one is not."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dashboard.core.config import Settings
from dashboard.core.store import Store
from dashboard.ops.scheduler import Scheduler
from dashboard.pipeline.refresh import RefreshResult, SourceResult

TZ = ZoneInfo("Asia/Shanghai")


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.t = start
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        self.slept.append(seconds)
        self.t += timedelta(seconds=seconds)


class Refreshes:
    """Records each refresh call (when, which sources, how); answers with the outcome ``plan`` gives."""

    def __init__(self, clock: FakeClock, plan: dict[str, list[str]] | None = None) -> None:
        self.clock, self.plan = clock, plan or {}
        self.calls: list[tuple[datetime, list[str]]] = []
        self.kwargs: list[dict[str, Any]] = []

    def __call__(self, settings: Settings, names: list[str], **kwargs: Any) -> RefreshResult:
        self.calls.append((self.clock.now(), list(names)))
        self.kwargs.append(kwargs)
        results = []
        for n in names:
            outcome = self.plan.get(n, []).pop(0) if self.plan.get(n) else "published"
            r = SourceResult(n, f"snap-{len(self.calls)}", "published" if outcome == "published" else "quarantined")
            r.failed_step = "extract" if outcome == "unreadable" else None
            r.reasons = [] if outcome == "published" else [f"{n}: {outcome}"]
            results.append(r)
        return RefreshResult(results, derived_build=f"b{len(self.calls)}")


def scheduled(settings: Settings, schedules: dict[str, str], **scheduler: Any) -> Settings:
    sources = [s.model_copy(update={"schedule": schedules.get(s.name)}) for s in settings.sources]
    return settings.model_copy(
        update={"sources": sources, "scheduler": settings.scheduler.model_copy(update=scheduler)}
    )


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=TZ)


def test_sources_due_together_refresh_together_on_their_cron(fresh_company: Settings) -> None:
    settings = scheduled(
        fresh_company,
        {"crm": "0 2 * * *", "web_forms": "0 2 * * *", "marketing": "30 3 * * *", "trade_show": "0 2 * * 1"},
        catch_up=False,
    )
    clock = FakeClock(local(2026, 3, 2, 0, 30))  # a Monday
    refreshes = Refreshes(clock)
    lines: list[str] = []
    Scheduler(settings, clock, refreshes, out=lines.append).run(until=local(2026, 3, 3, 4, 0))

    assert refreshes.calls == [
        (local(2026, 3, 2, 2, 0), ["crm", "trade_show", "web_forms"]),  # one refresh: one derived build
        (local(2026, 3, 2, 3, 30), ["marketing"]),
        (local(2026, 3, 3, 2, 0), ["crm", "web_forms"]),  # trade_show runs on Mondays only
        (local(2026, 3, 3, 3, 30), ["marketing"]),
    ]
    assert sum(clock.slept) == (local(2026, 3, 3, 3, 30) - local(2026, 3, 2, 0, 30)).total_seconds()
    assert all(k["holder"] == "cockpit schedule" for k in refreshes.kwargs)
    runs = [json.loads(line) for line in lines if '"event": "refresh"' in line]
    assert [r["status"] for r in runs] == ["ok"] * 4 and runs[0]["derived_build"] == "b1"
    history = (settings.data_path / "runs" / "scheduler.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(h) for h in history if '"event": "refresh"' in h] == runs  # logged and kept


def test_a_missed_run_runs_once_at_start_up_not_once_per_missed_day(fresh_company: Settings) -> None:
    settings = scheduled(fresh_company, {"crm": "0 2 * * *", "web_forms": "0 2 * * *", "marketing": "0 2 * * *"})
    start = local(2026, 3, 5, 10, 0)
    store = Store(settings.data_path)
    # crm last ran three days ago (three 02:00 runs missed); web_forms ran this morning after 02:00
    store.record_attempt("crm", {"snapshot_id": "s1", "started_at": (start - timedelta(days=3)).isoformat()})
    store.record_attempt("web_forms", {"snapshot_id": "s2", "started_at": local(2026, 3, 5, 2, 5).isoformat()})
    clock = FakeClock(start)
    refreshes = Refreshes(clock)
    lines: list[str] = []
    Scheduler(settings, clock, refreshes, out=lines.append).run(until=local(2026, 3, 6, 3, 0))

    assert refreshes.calls == [
        (start, ["crm", "marketing"]),  # marketing never ran: also missed
        (local(2026, 3, 6, 2, 0), ["crm", "marketing", "web_forms"]),
    ]
    caught_up = [json.loads(line)["job"] for line in lines if '"event": "catch-up"' in line]
    assert caught_up == ["source:crm", "source:marketing"]


def test_unreadable_source_is_retried_with_back_off_a_quarantine_is_not(fresh_company: Settings) -> None:
    settings = scheduled(
        fresh_company,
        {"crm": "0 2 * * *", "web_forms": "0 2 * * *"},
        catch_up=False,
        retries=3,
        retry_backoff_seconds=60,
    )
    clock = FakeClock(local(2026, 3, 2, 1, 0))
    refreshes = Refreshes(clock, {"crm": ["unreadable", "unreadable", "published"], "web_forms": ["quarantined"]})
    lines: list[str] = []
    Scheduler(settings, clock, refreshes, out=lines.append).run(until=local(2026, 3, 2, 12, 0))

    two = local(2026, 3, 2, 2, 0)
    assert refreshes.calls == [
        (two, ["crm", "web_forms"]),
        (two + timedelta(seconds=60), ["crm"]),  # first retry after the back-off
        (two + timedelta(seconds=60 + 120), ["crm"]),  # the back-off doubles
    ]
    runs = [json.loads(line) for line in lines if '"event": "refresh"' in line]
    assert runs[0]["quarantined"] == ["web_forms"] and runs[0]["unreadable"] == ["crm"]
    assert "web_forms" not in runs[0]["retry_at"]
    assert [r["attempt"]["crm"] for r in runs] == [1, 2, 3] and runs[-1]["status"] == "ok"


def test_retries_stop_after_the_configured_number(fresh_company: Settings) -> None:
    settings = scheduled(fresh_company, {"crm": "0 2 * * *"}, catch_up=False, retries=1, retry_backoff_seconds=30)
    clock = FakeClock(local(2026, 3, 2, 1, 0))
    refreshes = Refreshes(clock, {"crm": ["unreadable"] * 5})
    lines: list[str] = []
    Scheduler(settings, clock, refreshes, out=lines.append).run(until=local(2026, 3, 2, 12, 0))
    assert [t for t, _ in refreshes.calls] == [local(2026, 3, 2, 2, 0), local(2026, 3, 2, 2, 0, 30)]
    last = [json.loads(line) for line in lines if '"event": "refresh"' in line][-1]
    assert last["given_up"] == ["crm"] and last["status"] == "failed"


def test_an_error_in_a_run_is_logged_and_the_scheduler_goes_on(fresh_company: Settings) -> None:
    settings = scheduled(fresh_company, {"crm": "0 * * * *"}, catch_up=False)
    clock = FakeClock(local(2026, 3, 2, 0, 30))
    calls: list[datetime] = []

    def broken(settings: Settings, names: list[str], **kwargs: Any) -> RefreshResult:
        calls.append(clock.now())
        raise OSError("disk full")

    lines: list[str] = []
    Scheduler(settings, clock, broken, out=lines.append).run(until=local(2026, 3, 2, 3, 0))
    assert calls == [local(2026, 3, 2, h, 0) for h in (1, 2, 3)]
    errors = [json.loads(line) for line in lines if '"status": "error"' in line]
    assert len(errors) == 3 and errors[0]["message"] == "OSError: disk full"


def test_nothing_scheduled_says_so_and_returns(fresh_company: Settings) -> None:
    settings = scheduled(fresh_company, {})
    lines: list[str] = []
    Scheduler(settings, FakeClock(local(2026, 3, 2)), Refreshes(FakeClock(local(2026, 3, 2))), out=lines.append).run()
    assert "nothing to do" in lines[-1]
