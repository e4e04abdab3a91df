"""The cockpit command as a user runs it: exit codes, messages, output formats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dashboard.core.config import Settings


def cockpit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_query_formats(company: Settings) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    out = cockpit("--config", cfg, "query", "channel_summary", "--format", "csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "channel,leads,won,conversion_rate,revenue,cost,roi,cost_per_lead"
    assert lines[1].startswith("paid_search,30,6,0.2,21000.0,3000.0,6.0,100.0")
    rows = json.loads(
        cockpit("--config", cfg, "query", "channel_summary", "-p", "start=2026-03-01", "-f", "json").stdout
    )
    assert sum(r["leads"] for r in rows) == 60
    table = cockpit("query", "channel_summary", cwd=company.base_dir)  # ./cockpit.toml is found
    assert table.returncode == 0 and "paid_search" in table.stdout


def test_status_json_and_text(company: Settings) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    data = json.loads(cockpit("--config", cfg, "status", "--json").stdout)
    crm = next(s for s in data if s["name"] == "crm")
    assert crm["rows"] == {"leads": 30, "lead_events": 49}
    assert crm["last_attempt"]["status"] == "published" and crm["problem"] is None
    text = cockpit("--config", cfg, "status").stdout
    assert "trade_show (展会登记, csv)" in text


def test_refresh_exit_codes_and_reasons(company: Settings) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    ok = cockpit("--config", cfg, "refresh", "marketing")
    assert ok.returncode == 0 and "✔ marketing: published" in ok.stdout
    (company.base_dir / "imports" / "crm" / "leads.csv").write_bytes(b"")
    bad = cockpit("--config", cfg, "refresh", "crm", "marketing")
    assert bad.returncode == 3
    assert "✘ crm: quarantined" in bad.stdout and "leads.csv: the file is empty" in bad.stdout
    status = cockpit("--config", cfg, "status").stdout
    assert "crm (CRM, csv) ✘ QUARANTINED" in status and "leads.csv: the file is empty" in status


def test_user_mistakes_exit_2_without_a_traceback(company: Settings, tmp_path: Path) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    cases = [
        (["--config", str(tmp_path / "missing.toml"), "status"], "config file not found"),
        (["--config", cfg, "refresh", "nosuch"], "no source named 'nosuch'"),
        (["--config", cfg, "query", "nosuch"], "no query named 'nosuch'"),
        (["--config", cfg, "query", "channel_summary", "-p", "start=yesterday"], "must be a date"),
        (["--config", cfg, "query", "channel_summary", "-p", "start"], "expects k=v"),
    ]
    for args, message in cases:
        out = cockpit(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert message in out.stderr and "Traceback" not in out.stderr
    bad_cfg = tmp_path / "cockpit.toml"
    bad_cfg.write_text('[[sources]]\nname = "x"\nkind = "csv"\n[[sources.tables]]\nentity = "deals"\npath = "a"\n')
    out = cockpit("--config", str(bad_cfg), "status")
    assert out.returncode == 2 and "sources[0] (x).tables[0].entity: unknown entity 'deals'" in out.stderr


def test_serve_does_not_reload_the_code_under_signed_in_sessions(monkeypatch, tmp_path: Path) -> None:
    """`cockpit serve` starts Streamlit with its file watcher off: a module reloaded under a running server (a file
    of the code edited, a `git pull`) made each signed-in session's principal another class's, and every page then
    failed with AccessDenied until the person signed in again (the walk of session 22)."""
    import dashboard.cli as cli
    from dashboard.core.config import load_settings

    started: list[list[str]] = []
    monkeypatch.setattr(cli.os, "execve", lambda _exe, args, _env: started.append(list(args)))
    (tmp_path / "cockpit.toml").write_text('data_dir = "data"\n', encoding="utf-8")
    cli._serve(load_settings(tmp_path / "cockpit.toml"), 8599)
    args = started[0]
    assert args[args.index("--server.fileWatcherType") + 1] == "none"
    assert args[args.index("--server.runOnSave") + 1] == "false"
