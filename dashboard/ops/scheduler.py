"""``cockpit schedule``: one process that refreshes each source on its cron ``schedule`` (the sources
due together in one refresh, so one derived build), retries a source that could not be read with
back-off (a quarantine is not retried: the data is wrong, not the connection), runs a missed run once
at start-up, evaluates the alert rules after every refresh and sends the scheduled reports.

Each run is one JSON line on stdout and in ``data_dir/runs/scheduler.jsonl``; the refresh attempts
themselves are in the run history the data-quality page shows. SIGTERM stops it: the running refresh
gets ``stop_timeout_seconds`` to finish, then is abandoned; the manifest swap is atomic, so the last
good snapshots stay current either way. The clock is injectable, so tests never sleep.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from croniter import croniter

from dashboard.core.config import Settings
from dashboard.core.errors import CockpitError
from dashboard.core.store import Busy, Store, now_utc
from dashboard.pipeline.refresh import RefreshResult, refresh

LOG_FILE = "scheduler.jsonl"
HOLDER = "cockpit schedule"
MAX_SLEEP = 3600.0  # wake at least hourly: a changed wall clock (DST, NTP) is noticed


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        """Wait ``seconds`` or until ``stop`` is set."""


class SystemClock:
    def now(self) -> datetime:
        return now_utc()

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(seconds)


class Abandoned(BaseException):
    """Raised into a running refresh when the stop timeout has passed (BaseException: nothing swallows it)."""


@dataclass
class Retry:
    due: datetime
    attempt: int  # the attempt this retry will be (2 = first retry)


@dataclass
class Scheduler:
    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    refresh_fn: Callable[..., RefreshResult] = refresh
    out: Callable[[str], None] = print
    next_fire: dict[str, datetime] = field(default_factory=dict)  # "source:<name>" / "report:<name>"
    retries: dict[str, Retry] = field(default_factory=dict)  # per source
    stop: threading.Event = field(default_factory=threading.Event)
    running: bool = False  # a refresh is in progress (SIGTERM then waits for it, up to the timeout)

    # -- timing ------------------------------------------------------------------------------------
    def _cron(self, schedule: str, after: datetime) -> datetime:
        local = after.astimezone(ZoneInfo(self.settings.timezone))
        nxt: datetime = croniter(schedule, local).get_next(datetime)
        return nxt

    def _prev_fire(self, schedule: str, now: datetime) -> datetime:
        local = now.astimezone(ZoneInfo(self.settings.timezone))
        prev: datetime = croniter(schedule, local).get_prev(datetime)
        return prev

    def jobs(self) -> dict[str, str]:
        """key → cron schedule of everything this scheduler runs."""
        out = {f"source:{s.name}": s.schedule for s in self.settings.sources if s.schedule}
        out.update({f"report:{r.name}": r.schedule for r in self.settings.reports if r.schedule})
        return out

    def start(self) -> None:
        """The next fire of every job; a job whose last fire was missed (nothing ran since) is due now."""
        now = self.clock.now()
        for key, schedule in self.jobs().items():
            self.next_fire[key] = self._cron(schedule, now)
            last = self._last_run(key)
            missed = self._prev_fire(schedule, now)
            if (
                self.settings.scheduler.catch_up
                and (last is None or last < missed)
                and not (
                    key.startswith("report:") and last is None  # a report never sent before is not "missed"
                )
            ):
                self.next_fire[key] = now
                self.log({"event": "catch-up", "job": key, "missed": missed.isoformat(), "last_run": _iso(last)})

    def _last_run(self, key: str) -> datetime | None:
        kind, _, name = key.partition(":")
        store = Store(self.settings.data_path)
        if kind == "source":
            attempts = store.attempts(name, limit=1)
            started = attempts[0].get("started_at") if attempts else None
            return datetime.fromisoformat(started) if started else None
        last = None
        for entry in _read_jsonl(store.runs / "reports.jsonl"):
            if entry.get("report") == name and not entry.get("dry_run"):
                last = datetime.fromisoformat(entry["at"])
        return last

    def next_due(self) -> datetime | None:
        times = [*self.next_fire.values(), *(r.due for r in self.retries.values())]
        return min(times) if times else None

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, until: datetime | None = None) -> None:
        """Run until stopped (SIGTERM) or, for tests, until the clock passes ``until``."""
        self.start()
        if self.next_due() is None:
            self.log({"event": "idle", "message": "no source or report has a schedule: nothing to do"})
            return
        self.log({"event": "started", "jobs": sorted(self.jobs()), "next": _iso(self.next_due())})
        while not self.stop.is_set():
            self.tick()
            nxt = self.next_due()
            now = self.clock.now()
            if until is not None and (nxt is None or nxt > until):
                return
            wait = (nxt - now).total_seconds() if nxt else MAX_SLEEP
            if wait > 0:
                self.clock.sleep(min(wait, MAX_SLEEP), self.stop)
        self.log({"event": "stopped"})

    def tick(self) -> None:
        """Everything due now: the due sources in one refresh, then alerts, then due reports."""
        now = self.clock.now()
        due_sources: dict[str, str] = {}
        for key, when in sorted(self.next_fire.items()):
            if when <= now and key.startswith("source:"):
                due_sources[key.partition(":")[2]] = "schedule"
                self.next_fire[key] = self._cron(self.jobs()[key], now)
        for name, retry in sorted(self.retries.items()):
            if retry.due <= now:
                due_sources.setdefault(name, f"retry {retry.attempt}")
        if due_sources and not self.stop.is_set():
            self.refresh_group(due_sources)
        for key, when in sorted(self.next_fire.items()):
            if when <= now and key.startswith("report:") and not self.stop.is_set():
                self.next_fire[key] = self._cron(self.jobs()[key], self.clock.now())
                self.send_report(key.partition(":")[2])

    def refresh_group(self, due: dict[str, str]) -> None:
        names = sorted(due)
        attempts = {n: self.retries.pop(n).attempt if n in self.retries else 1 for n in names}
        started = time.monotonic()
        entry: dict[str, Any] = {"event": "refresh", "sources": names, "trigger": due, "attempt": attempts}
        sched = self.settings.scheduler
        self.running = True
        try:
            result = self.refresh_fn(
                self.settings, names, wait=sched.lock_wait_seconds, publish_wait=sched.lock_wait_seconds, holder=HOLDER
            )
        except Abandoned:
            entry.update(status="abandoned", message="stopped; the last published snapshots stay current")
            return self.log(entry, started)
        except Busy as e:
            entry.update(status="busy", message=e.message)
            self._retry(names, attempts, entry)
            return self.log(entry, started)
        except Exception as e:  # a scheduler that dies at night is worse than one that logs and goes on
            entry.update(status="error", message=f"{type(e).__name__}: {getattr(e, 'message', e)}")
            return self.log(entry, started)
        finally:
            self.running = False
        failed = [r.source for r in result.sources if r.failed_step == "extract"]
        entry.update(
            status="ok" if result.exit_code == 0 else "failed",
            published=[r.source for r in result.sources if r.published],
            quarantined=[r.source for r in result.sources if not r.published and r.failed_step != "extract"],
            unreadable=failed,
            reasons={r.source: r.reasons for r in result.sources if r.reasons},
            derived_build=result.derived_build,
        )
        self._retry(failed, attempts, entry)
        self.log(entry, started)
        self.after_refresh()
        self.apply_retention()

    def _retry(self, names: list[str], attempts: dict[str, int], entry: dict[str, Any]) -> None:
        sched = self.settings.scheduler
        retry_at = {}
        for n in names:
            attempt = attempts.get(n, 1)
            if attempt > sched.retries:
                continue  # given up: the next scheduled run tries again
            delay = min(sched.retry_backoff_seconds * 2 ** (attempt - 1), sched.retry_backoff_max_seconds)
            self.retries[n] = Retry(self.clock.now() + timedelta(seconds=delay), attempt + 1)
            retry_at[n] = self.retries[n].due.isoformat()
        if retry_at:
            entry["retry_at"] = retry_at
        given_up = [n for n in names if n not in retry_at]
        if given_up:
            entry["given_up"] = given_up

    def after_refresh(self) -> None:
        if not self.settings.alerts:
            return
        from dashboard.ops.alerts import run_alerts

        started = time.monotonic()
        try:
            run = run_alerts(self.settings, self.clock.now())
        except Exception as e:
            return self.log({"event": "alerts", "status": "error", "message": f"{type(e).__name__}: {e}"}, started)
        self.log(
            {
                "event": "alerts",
                "status": "ok" if all(d.ok for d in run.deliveries) and not run.errors else "failed",
                "sent": [f.text for f in run.findings],
                "cool_down": len(run.suppressed),
                "unavailable": run.unavailable,
                "errors": run.errors,
                "deliveries": [d.describe() for d in run.deliveries],
            },
            started,
        )

    def apply_retention(self) -> None:
        """[privacy] apply_retention_on_schedule: after each scheduled refresh, rows past their retention go
        (from every snapshot kept and the derived build), so a source that sends them again loses them again."""
        cfg = self.settings.privacy
        if not (cfg.apply_retention_on_schedule and cfg.retention):
            return
        from dashboard.ops.privacy import apply_retention
        from dashboard.pipeline.review import Who

        started = time.monotonic()
        local = self.clock.now().astimezone(ZoneInfo(self.settings.timezone)).replace(tzinfo=None)
        try:
            done = apply_retention(
                self.settings, Who(HOLDER, "system"), wait=self.settings.scheduler.lock_wait_seconds, now=local
            )
        except Exception as e:  # as for the alerts: logged, and the scheduler goes on
            return self.log({"event": "retention", "status": "error", "message": f"{type(e).__name__}: {e}"}, started)
        self.log({"event": "retention", "status": "ok", "rows": done.rows, "removed": done.by_entity}, started)

    def send_report(self, name: str) -> None:
        from dashboard.ops.reports import send_report

        started = time.monotonic()
        entry: dict[str, Any] = {"event": "report", "report": name}
        try:
            sent = send_report(self.settings, name, self.clock.now())
        except Exception as e:
            entry.update(status="error", message=f"{type(e).__name__}: {getattr(e, 'message', e)}")
            return self.log(entry, started)
        d = sent.delivery
        entry.update(status="ok" if d and d.ok else "failed", delivery=d.describe() if d else None, notes=sent.notes)
        self.log(entry, started)

    # -- logging -----------------------------------------------------------------------------------
    def log(self, entry: dict[str, Any], started: float | None = None) -> None:
        line = {"at": self.clock.now().isoformat(timespec="seconds"), **entry}
        if started is not None:
            line["seconds"] = round(time.monotonic() - started, 2)
        text = json.dumps(line, ensure_ascii=False, default=str)
        self.out(text)
        runs = Store(self.settings.data_path).runs
        runs.mkdir(parents=True, exist_ok=True)
        with open(runs / LOG_FILE, "a", encoding="utf-8") as fh:
            fh.write(text + "\n")

    # -- signals -----------------------------------------------------------------------------------
    def install_signals(self) -> None:
        """SIGTERM / SIGINT: stop after the running refresh (at most stop_timeout_seconds); a second one
        abandons it at once."""
        timeout = self.settings.scheduler.stop_timeout_seconds

        def on_alarm(_sig: int, _frame: FrameType | None) -> None:
            if self.running:
                raise Abandoned()

        def on_term(sig: int, _frame: FrameType | None) -> None:
            first = not self.stop.is_set()
            self.stop.set()
            if not self.running:
                return
            if first and timeout > 0:
                self.out(json.dumps({"event": "stopping", "signal": sig, "finishing_within_seconds": timeout}))
                signal.setitimer(signal.ITIMER_REAL, timeout)
                return
            raise Abandoned()

        signal.signal(signal.SIGALRM, on_alarm)
        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


def _read_jsonl(path: Any) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def serve_forever(settings: Settings) -> int:
    """The ``cockpit schedule`` entry point: 0 after a clean stop."""
    scheduler = Scheduler(settings, out=lambda s: print(s, flush=True))
    scheduler.install_signals()
    try:
        scheduler.run()
    except CockpitError as e:
        print(f"error: {e.message}", file=sys.stderr, flush=True)
        return e.exit_code
    return 0
