"""A refresh's progress as people see it: plain lines naming each source and derived step with its rows
and time (and, once a refresh has recorded its step times, an estimate), the progress file while it runs,
and the admin page's Refresh tab."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.core.config import CRASH_ENV, PAUSE_ENV, Settings
from dashboard.core.store import Store, now_utc, write_json
from dashboard.pipeline.progress import DONE, RUNNING, WAITING, RefreshProgress, Step, process_started, running
from tests.fixture_data import open_app_page

ROWS = {"trade_show": 20, "crm": 79, "erp": 36, "web_forms": 10, "marketing": 3}  # what each source publishes
ESTIMATE = re.compile(r" · (about (\d+\.\d s|\d+ min \d\d s|\d+ h \d\d min) left|almost done)$")


def cockpit(settings: Settings, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "dashboard.cli", "--config", str(settings.base_dir / "cockpit.toml"), *args]
    return subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run(settings: Settings, *args: str) -> tuple[str, list[str]]:
    """stdout and the stderr lines of a `cockpit` run that exits 0."""
    proc = cockpit(settings, *args)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return out, err.splitlines()


def progress_files(settings: Settings) -> list[Path]:
    return sorted((settings.data_path / "runs" / "progress").glob("*.json"))


def derived_rows(settings: Settings, table: str) -> int:
    build = Store(settings.data_path).read_manifest()["derived"]
    return pl.read_parquet(settings.data_path / build["tables"][table]).height


def test_plain_lines_name_every_step_with_its_rows_and_the_second_refresh_estimates(fresh_company: Settings) -> None:
    out, lines = run(fresh_company, "refresh")  # stderr is a pipe here: plain lines, as in cron or CI
    assert "✔ crm: published" in out
    for i, (source, rows) in enumerate(ROWS.items(), 1):
        assert f"[{i}/5] {source}: reading" in lines
        [ended] = [line for line in lines if line.startswith(f"[{i}/5] {source}: published")]
        assert re.fullmatch(rf"\[{i}/5\] {source}: published \({rows} rows\) in \d+\.\d s", ended), ended
    derived = {
        "identity resolution": derived_rows(fresh_company, "identity_links"),
        "channel analytics": derived_rows(fresh_company, "lead_facts"),
        "golden customer records": derived_rows(fresh_company, "customer_golden"),
        "churn scores": derived_rows(fresh_company, "churn_scores"),
    }
    for step, rows in derived.items():
        assert f"deriving: {step}" in lines
        assert any(re.fullmatch(rf"    {step}: {rows} rows in \d+\.\d s", line) for line in lines), (step, lines)
    assert any(re.fullmatch(r"    quality tables: done in \d+\.\d s", line) for line in lines), lines
    assert not [line for line in lines if ESTIMATE.search(line)]  # nothing to go by on the first refresh
    assert re.fullmatch(r"refresh done in (\d+\.\d s|\d+ min \d\d s)", lines[-1]), lines[-1]  # a loaded machine

    _, again = run(fresh_company, "refresh")
    ends = [line for line in again if re.match(r"\[\d/5\] \w+: published|    [a-z ]+: (\d+ rows|done) in", line)]
    assert len(ends) >= 5 + 5, again
    assert all(ESTIMATE.search(line) for line in ends), ends  # each step's line says what is left
    assert progress_files(fresh_company) == []


def test_the_progress_file_while_a_refresh_runs_and_a_killed_refresh_is_not_running(company: Settings) -> None:
    killed = cockpit(company, "refresh", "--full", "marketing", env={CRASH_ENV: "staged"})  # read: unchanged
    killed.communicate(timeout=300)
    assert killed.returncode < 0  # SIGKILL
    [stale] = progress_files(company)  # left behind by the killed refresh ...
    assert json.loads(stale.read_text(encoding="utf-8"))["pid"] == killed.pid
    assert running(company.data_path) == []  # ... whose process is gone: not a running refresh

    paused = cockpit(company, "refresh", "--quiet", "--full", "marketing", env={PAUSE_ENV: "staged:6"})
    assert paused.stderr is not None
    assert paused.stderr.readline().strip() == "paused at staged"  # --quiet: no progress lines before it
    [now] = running(company.data_path)
    assert not stale.exists()  # a new refresh clears a killed one's file
    assert now.pid == paused.pid
    [marketing] = [s for s in now.steps if s.source == "marketing"]
    assert (marketing.state, marketing.rows) == (RUNNING, ROWS["marketing"])
    assert {s.name for s in now.steps if s.state == WAITING} >= {"derive.identity", "derive.churn", "publish"}
    [current] = progress_files(company)
    assert current.name.startswith(f"{paused.pid}-")
    out, err = paused.communicate(timeout=300)
    assert paused.returncode == 0, err
    assert "✔ marketing: published" in out and "[1/1]" not in err
    assert progress_files(company) == [] and running(company.data_path) == []


def _a_running_refresh(settings: Settings, pid: int) -> None:
    steps = [
        Step("crm", "crm", "crm", DONE, 79, 2.5, "published"),
        Step("erp", "erp", "erp", RUNNING, 36, 1.0),
        Step("derive.identity", "identity resolution"),
        Step("publish", "publishing"),
    ]
    progress = RefreshProgress(
        pid,
        now_utc().isoformat(),
        steps,
        updated_at=time.time(),
        elapsed=3.5,
        remaining=40.0,
        process_started=process_started(pid),
    )
    write_json(settings.data_path / "runs" / "progress" / f"{pid}-abc123.json", progress.to_dict())


def _steps_table(at: AppTest, column: str) -> pl.DataFrame:
    [table] = [d.value for d in at.dataframe if column in d.value.columns]
    return pl.from_pandas(table)


def test_the_admin_pages_refresh_tab_shows_a_running_refreshs_steps(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _a_running_refresh(company, gone.pid)  # the file of a refresh whose process is gone (killed)
    at = open_app_page(company, monkeypatch, "admin")
    assert "Refresh" in [tab.label for tab in at.tabs]
    assert any(c.value.startswith("No refresh is running.") for c in at.caption)
    assert not [m for m in at.markdown if m.value.startswith("Refresh running since")]

    _a_running_refresh(company, os.getpid())  # this process: alive, as a running refresh's would be
    at.run()
    assert not at.exception, at.exception
    [line] = [m.value for m in at.markdown if m.value.startswith("Refresh running since")]
    assert f"(process {os.getpid()}): 1 of 4 steps done" in line
    assert any(
        re.fullmatch(r"About \d+\.\d s left, going by the last refresh's step times\.", c.value) for c in at.caption
    )
    table = _steps_table(at, "Step")
    assert table.get_column("Step").to_list() == ["CRM", "ERP", "Identity resolution", "Publishing"]
    assert table.get_column("State").to_list() == ["Published", "Running", "Waiting", "Waiting"]
    assert table.get_column("Rows").to_list() == [79, 36, None, None]

    at.sidebar.radio[0].set_value("zh").run()
    assert not at.exception, at.exception
    assert "刷新进度" in [tab.label for tab in at.tabs]
    assert any(m.value.startswith("刷新自 ") and "已完成 1/4 步" in m.value for m in at.markdown)
    zh = _steps_table(at, "步骤")
    assert zh.get_column("步骤").to_list() == ["CRM", "ERP", "身份识别", "发布"]
    assert zh.get_column("状态").to_list() == ["已发布", "进行中", "等待中", "等待中"]


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux `script` for a terminal")
def test_in_a_terminal_a_live_view_shows_the_steps_rows_and_estimate(company: Settings) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    command = shlex.join([sys.executable, "-m", "dashboard.cli", "--config", cfg, "refresh", "marketing"])
    typed = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=300)
    assert typed.returncode == 0, typed.stdout
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", typed.stdout)  # the terminal's cursor moves and colours
    assert "[1/1] marketing: reading" not in screen  # the view, not the plain lines
    assert re.search(r"✔ +marketing +3 rows +\d+\.\d s +published", screen), screen[-3000:]
    assert re.search(r"✔ +golden customer records +\d+ rows", screen), screen[-3000:]
    # the template's refresh recorded its step times, so this one has an estimate while it runs
    assert re.search(r"\d+/\d+ steps · \d+\.\d s elapsed · (about .+ left|almost done)", screen), screen[-3000:]
    assert re.search(r"\d+/\d+ steps · \d+\.\d s elapsed · done", screen), screen[-3000:]
    assert "✔ marketing: published" in screen


def test_a_file_whose_pid_now_belongs_to_another_process_is_not_a_running_refresh(company: Settings) -> None:
    _a_running_refresh(company, os.getpid())
    assert [p.pid for p in running(company.data_path)] == [os.getpid()]
    [path] = progress_files(company)
    reused = {**json.loads(path.read_text(encoding="utf-8")), "process_started": "1"}  # a process long gone
    write_json(path, reused)
    assert running(company.data_path) == []
    write_json(path, {"pid": os.getpid(), "steps": [{"what": "another version's file"}]})
    assert running(company.data_path) == []  # skipped, not an error on the admin page
