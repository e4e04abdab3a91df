"""Real processes: two refreshes contending for one source's lock, and SIGTERM during a scheduled
refresh (the last good snapshot stays current, checked with `cockpit status`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.core.config import PAUSE_ENV, Settings

CLI = "from dashboard.cli import main; main()"
pytestmark = pytest.mark.slow


def _cmd(settings: Settings, *args: str) -> list[str]:
    return [sys.executable, "-c", CLI, "--config", str(settings.base_dir / "cockpit.toml"), *args]


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_cmd(settings, *args), capture_output=True, text=True, timeout=300)


def _start_paused(settings: Settings, pause: str, *args: str) -> subprocess.Popen[str]:
    """Start a cockpit command that pauses at a point of its refresh; return once it is there."""
    proc = subprocess.Popen(
        _cmd(settings, *args),
        env={**os.environ, PAUSE_ENV: pause},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # progress lines, then "paused at ..."
        seen.append(line)
        if line.startswith("paused at"):
            return proc
    proc.wait(timeout=60)
    raise AssertionError(f"never paused: {''.join(seen)}")


def _status(settings: Settings) -> dict[str, dict[str, object]]:
    done = _run(settings, "status", "--json")
    assert done.returncode == 0, done.stderr
    return {s["name"]: s for s in json.loads(done.stdout)}


def _change_web_forms(settings: Settings) -> None:
    forms = settings.base_dir / "imports" / "web" / "forms.jsonl"
    records = [{**json.loads(line), "utm_source": "SEM"} for line in forms.read_text(encoding="utf-8").splitlines()]
    forms.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_two_processes_contend_for_one_source(company: Settings) -> None:
    first = _start_paused(company, "staged:8", "refresh", "--full", "web_forms")  # read though unchanged
    try:
        refused = _run(company, "refresh", "web_forms")
        assert refused.returncode == 4, refused.stderr
        assert f"source 'web_forms' is being refreshed by cockpit refresh (pid {first.pid}" in refused.stderr
        assert "--wait SECONDS" in refused.stderr and "Traceback" not in refused.stderr

        other = _run(company, "refresh", "marketing")  # another source is not held up
        assert other.returncode == 0, other.stderr

        waited = _run(company, "refresh", "web_forms", "--wait", "120")  # waits for the first, then runs
        assert waited.returncode == 0, waited.stderr
    finally:
        first.wait(timeout=120)
    assert first.returncode == 0
    status = _status(company)
    assert status["web_forms"]["problem"] is None and status["marketing"]["problem"] is None


def _schedule_web_forms(settings: Settings, stop_timeout: int) -> None:
    """web_forms the one scheduled source, due at start-up. The company's trade_show runs at 02:00 in Shanghai too:
    in a run that refreshed the company before 18:00 UTC and started the scheduler after, trade_show was due as well
    and published beside web_forms (CI of adce4ef, 17:39-18:18 UTC)."""
    cfg = settings.base_dir / "cockpit.toml"
    text = cfg.read_text(encoding="utf-8")
    daily, web_forms = 'schedule = "0 2 * * *"\n', 'name = "web_forms"\nkind = "json"\n'
    assert text.count("schedule = ") == text.count(daily) == 1  # trade_show's, the company's one schedule
    text = text.replace(daily, "").replace(web_forms, web_forms + daily)
    cfg.write_text(text + f"\n[scheduler]\nstop_timeout_seconds = {stop_timeout}\n", encoding="utf-8")
    shutil.rmtree(settings.data_path / "runs" / "attempts" / "web_forms")  # never ran: due at start-up


def _log(proc: subprocess.Popen[str]) -> list[dict[str, object]]:
    out, _ = proc.communicate(timeout=120)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_sigterm_abandons_the_refresh_and_the_last_good_snapshot_stays_current(company: Settings) -> None:
    before = _status(company)["web_forms"]["snapshot_id"]
    _schedule_web_forms(company, stop_timeout=0)
    _change_web_forms(company)
    proc = _start_paused(company, "staged:60", "schedule")
    proc.send_signal(signal.SIGTERM)
    log = _log(proc)
    assert proc.returncode == 0
    [run] = [e for e in log if e["event"] == "refresh"]
    assert run["status"] == "abandoned" and log[-1]["event"] == "stopped"
    status = _status(company)
    assert status["web_forms"]["snapshot_id"] == before  # the last good snapshot is current
    manifest = json.loads((company.data_path / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["sources"].values():
        for info in entry["entities"].values():
            assert (company.data_path / str(info["file"])).is_file()
    assert _run(company, "refresh", "web_forms").returncode == 0  # nothing left locked or half-done
    assert not (company.data_path / "staging").exists()


def test_sigterm_lets_the_running_refresh_finish_within_the_timeout(company: Settings) -> None:
    before = _status(company)["web_forms"]["snapshot_id"]
    _schedule_web_forms(company, stop_timeout=120)
    _change_web_forms(company)
    proc = _start_paused(company, "staged:3", "schedule")
    proc.send_signal(signal.SIGTERM)
    log = _log(proc)
    assert proc.returncode == 0
    events = [e["event"] for e in log]
    assert events.index("stopping") < events.index("refresh") < events.index("stopped")
    [run] = [e for e in log if e["event"] == "refresh"]
    assert run["status"] == "ok" and run["published"] == ["web_forms"]
    status = _status(company)["web_forms"]
    assert status["snapshot_id"] != before and status["problem"] is None
    history = Path(company.data_path / "runs" / "scheduler.jsonl").read_text(encoding="utf-8")
    assert '"status": "ok"' in history
