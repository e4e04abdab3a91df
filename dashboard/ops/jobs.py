"""Background jobs a page queues instead of running them in the web process: "publish anyway" of a
quarantined snapshot, whose derived build (identity, golden records, churn) takes minutes at scale.

A job is one JSON status file, ``<data_dir>/runs/jobs/publish-<source>-<snapshot>.json``, written whole
by a rename: queued (who asked, why, from where) → running (its pid and latest step) → published or
failed (the error). ``queue_publish`` checks the request, writes the file and starts the job as a
process of its own, ``python -m dashboard.ops.jobs FILE``, in a session of its own, so neither the page
nor a restart of the web server stops it; the job takes the refresh's publish lock (waiting for a
running refresh), so refreshes and publishes still follow one another. One job per snapshot at a time;
a job whose process died without an outcome reads as failed, so it never blocks the next one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dashboard.core.config import Settings, load_settings
from dashboard.core.errors import CockpitError
from dashboard.core.store import now_utc, write_json
from dashboard.pipeline.review import Who, check_request, publish_anyway

QUEUED, RUNNING, PUBLISHED, FAILED = "queued", "running", "published", "failed"
ACTIVE = (QUEUED, RUNNING)
LOCK_WAIT = 3600.0  # seconds a job waits for a running refresh's publish lock before it fails
START_TIMEOUT = 120.0  # a queued job whose process has not reported by then never started
_STEPS_KEPT = 50
_MODULE = "dashboard.ops.jobs"


class JobBusy(CockpitError):
    """A publish of this snapshot is already queued or running."""

    exit_code = 4

    def __init__(self, job: Job) -> None:
        super().__init__(
            f"publishing snapshot '{job.snapshot_id}' of source '{job.source}' is already {job.state} "
            f"(asked by {job.user} at {job.queued_at}); wait for its outcome"
        )
        self.job = job


@dataclass
class Job:
    source: str
    snapshot_id: str
    reason: str
    user: str
    role: str | None
    client: str | None
    config: str  # the config file the job loads
    queued_at: str
    state: str = QUEUED
    pid: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    step: str | None = None  # the latest progress line
    steps: list[dict[str, str]] = field(default_factory=list)  # the last ones, each with its time
    error: str | None = None
    path: Path = field(default=Path(), compare=False)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @property
    def log(self) -> Path:
        """The job process's own output (a traceback, if it ever has one)."""
        return self.path.with_suffix(".log")


def jobs_dir(settings: Settings) -> Path:
    return settings.data_path / "runs" / "jobs"


def job_path(settings: Settings, source: str, snapshot_id: str) -> Path:
    return jobs_dir(settings) / f"publish-{source}-{snapshot_id}.json"


# -- reading ---------------------------------------------------------------------------------------------
def read_job(path: Path) -> Job | None:
    """The job's status; an active job whose process is gone reads as failed (it never reported)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as err:  # written by a rename: only a hand edit does this
        raise CockpitError(f"job status {path} cannot be read: {err}") from None
    job = Job(**{k: v for k, v in data.items() if k in Job.__dataclass_fields__ and k != "path"}, path=path)
    if job.active and not _alive(job):
        job.state = FAILED
        job.error = (
            f"the job process (pid {job.pid}) ended without reporting an outcome; its output is in {job.log}"
            if job.pid
            else f"the job process did not start within {START_TIMEOUT:.0f} seconds; its output is in {job.log}"
        )
    return job


def list_jobs(settings: Settings) -> list[Job]:
    """Every job still on disk, the latest queued first."""
    folder = jobs_dir(settings)
    paths = sorted(folder.glob("publish-*.json")) if folder.is_dir() else []
    found = [job for job in (read_job(p) for p in paths) if job is not None]
    return sorted(found, key=lambda j: j.queued_at, reverse=True)


def active_job(settings: Settings, source: str, snapshot_id: str) -> Job | None:
    job = read_job(job_path(settings, source, snapshot_id))
    return job if job is not None and job.active else None


def _alive(job: Job) -> bool:
    if job.pid is None:  # queued, its process not started yet (or it failed to start)
        return (now_utc() - dt.datetime.fromisoformat(job.queued_at)).total_seconds() < START_TIMEOUT
    try:
        os.kill(job.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a process of another user: not ours, the pid was reused
        return False
    cmdline = Path(f"/proc/{job.pid}/cmdline")
    if Path("/proc/self").exists():  # Linux: a zombie (empty command line) or a reused pid is not the job
        with contextlib.suppress(OSError):
            return _MODULE.encode() in cmdline.read_bytes()
        return False
    return True


# -- queueing (the web process) ---------------------------------------------------------------------------
def queue_publish(settings: Settings, config: Path, source: str, snapshot_id: str, reason: str, who: Who) -> Job:
    """Check the request as publishing would, record it as queued and start its process; returns at once.
    ``JobBusy`` when this snapshot's publish is already queued or running."""
    check_request(settings, source, snapshot_id, reason)  # ReviewError / ConfigError, before anything is written
    path = job_path(settings, source, snapshot_id)
    with _locked(path):
        running = read_job(path)
        if running is not None and running.active:
            raise JobBusy(running)
        job = Job(
            source=source,
            snapshot_id=snapshot_id,
            reason=reason.strip(),
            user=who.name,
            role=who.role,
            client=who.client,
            config=str(config.resolve()),
            queued_at=now_utc().isoformat(),
            path=path,
        )
        _write(job)
    _start(job)
    return job


def _start(job: Job) -> None:
    try:
        with open(job.log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", _MODULE, str(job.path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not stopped with the web server
            )
    except OSError as err:
        _update(job.path, state=FAILED, finished_at=now_utc().isoformat(), error=f"could not start the job: {err}")
        raise CockpitError(f"could not start the publish job for '{job.source}/{job.snapshot_id}': {err}") from None
    threading.Thread(target=process.wait, name=f"reap {job.name}", daemon=True).start()  # no zombie left
    with _locked(job.path):
        current = read_job(job.path)
        if current is not None and current.state == QUEUED and current.pid is None:
            current.pid = process.pid
            _write(current)


# -- running (the job process) ----------------------------------------------------------------------------
def run(path: Path) -> int:
    """Publish the queued snapshot, writing each step and the outcome to the job file; the exit code."""
    job = read_job(path)
    if job is None:
        raise CockpitError(f"no job status at {path}")
    if job.state != QUEUED:
        raise CockpitError(f"job {path} is {job.state}, not queued: it runs once")
    _update(path, state=RUNNING, pid=os.getpid(), started_at=now_utc().isoformat())

    def say(step: str) -> None:
        _update(path, step=step)

    try:
        say("starting")
        settings = load_settings(job.config)
        publish_anyway(
            settings,
            job.source,
            job.snapshot_id,
            job.reason,
            Who(job.user, job.role, job.client),
            progress=say,
            wait=LOCK_WAIT,
        )
    except CockpitError as err:
        _update(path, state=FAILED, finished_at=now_utc().isoformat(), error=err.message)
        return err.exit_code
    except Exception as err:  # a defect or the disk: shown on the page, the traceback in the job's log
        _update(path, state=FAILED, finished_at=now_utc().isoformat(), error=f"{type(err).__name__}: {err}")
        raise
    _update(path, state=PUBLISHED, finished_at=now_utc().isoformat(), step="published")
    return 0


# -- the status file ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One reader-modifier-writer of the job files at a time (the page, the job process)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / ".jobs.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write(job: Job) -> None:
    data: dict[str, Any] = asdict(job)
    del data["path"]
    write_json(job.path, data)


def _update(path: Path, **changes: Any) -> None:
    with _locked(path):
        data = json.loads(path.read_text(encoding="utf-8"))
        data.update(changes)
        if changes.get("step"):
            data["steps"] = [*data.get("steps", []), {"at": now_utc().isoformat(), "step": changes["step"]}][
                -_STEPS_KEPT:
            ]
        write_json(path, data)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(f"usage: python -m {_MODULE} JOB_FILE", file=sys.stderr)
        return 2
    try:
        return run(Path(argv[0]))
    except CockpitError as err:
        print(err.message, file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
