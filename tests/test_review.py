"""Quarantine review: "publish anyway" and "discard" change the manifest (or not) as stated, need a
reason and the config flag, and are recorded with who, when and why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.core import audit
from dashboard.core.audit import decisions
from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.ops.status import source_status
from dashboard.pipeline.refresh import refresh
from dashboard.pipeline.review import (
    ReviewError,
    discard,
    list_quarantined,
    publish_anyway,
)
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse


def allow_actions(settings: Settings) -> Settings:
    cfg = settings.base_dir / "cockpit.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + "\n[quality]\nallow_quarantine_actions = true\n", encoding="utf-8")
    return load_settings(cfg)


def quarantine_crm(settings: Settings, phones: str = "call me") -> str:
    """25 CRM leads, all with an unreadable phone: quarantined by the blocking phone expectation."""
    rows = "".join(f"CRM-{i},2026-03-01,SEM,{phones} {i}\n" for i in range(25))
    (settings.base_dir / "imports" / "crm" / "leads.csv").write_text("Lead ID,Created,Source,Mobile\n" + rows)
    [crm] = refresh(settings, ["crm"]).sources
    assert crm.status == "quarantined"
    return crm.snapshot_id


def _current(settings: Settings, source: str = "crm") -> str:
    return str(Store(settings.data_path).read_manifest()["sources"][source]["snapshot_id"])


def test_the_waiting_snapshot_is_listed_with_its_rows_against_the_current(company: Settings) -> None:
    sid = quarantine_crm(company)
    [q] = list_quarantined(company)
    assert (q.source, q.snapshot_id, q.current_snapshot) == ("crm", sid, _current(company))
    assert q.rows == {"leads": 25, "lead_events": 49} and q.current_rows == {"leads": 30, "lead_events": 49}
    assert q.has_data and "phone" in q.reasons[0]


def test_publish_anyway_swaps_the_manifest_and_is_recorded(company: Settings) -> None:
    settings = allow_actions(company)
    sid = quarantine_crm(settings)
    before = Store(settings.data_path).read_manifest()
    entry = publish_anyway(settings, "crm", sid, "  phones are fixed upstream tomorrow ", "alice")
    after = Store(settings.data_path).read_manifest()
    assert after["sources"]["crm"]["snapshot_id"] == sid
    assert after["sources"]["crm"]["previous"][0] == before["sources"]["crm"]["snapshot_id"]
    assert after["version"] > before["version"]
    assert (settings.data_path / "snapshots" / "crm" / sid / "leads.parquet").is_file()
    assert not (settings.data_path / "quarantine" / "crm" / sid).exists()
    assert Warehouse(settings).sql("SELECT count(*) FROM leads WHERE source_system = 'crm'", user=SYSTEM).item() == 25
    [audit] = decisions(Store(settings.data_path))
    assert audit == entry
    assert (audit["who"], audit["action"], audit["reason"], audit["snapshot_id"]) == (
        "alice",
        "publish_anyway",
        "phones are fixed upstream tomorrow",
        sid,
    )
    assert audit["at"].startswith("20")
    history = Warehouse(settings).run_query("validation_history", {"source": "crm"}, user=SYSTEM).row(0, named=True)
    assert (history["status"], history["reviewed_by"]) == ("published_anyway", "alice")
    [crm] = [s for s in source_status(settings) if s.name == "crm"]
    assert crm.problem is None  # a person decided: the banner no longer asks for attention


def test_discard_leaves_the_manifest_and_is_recorded(company: Settings) -> None:
    settings = allow_actions(company)
    sid = quarantine_crm(settings)
    served = _current(settings)
    discard(settings, "crm", sid, "a test export, not real data", "bob")
    assert _current(settings) == served
    assert not (settings.data_path / "quarantine" / "crm" / sid).exists()
    assert list_quarantined(settings) == []
    [audit] = decisions(Store(settings.data_path))
    assert (audit["who"], audit["action"], audit["status"]) == ("bob", "discard", "discarded")
    history = Warehouse(settings).run_query("validation_history", {"source": "crm"}, user=SYSTEM)
    assert history["status"].to_list() == ["discarded", "published"]  # the attempt stays in the history


def test_actions_are_off_unless_the_config_allows_them(company: Settings) -> None:
    sid = quarantine_crm(company)
    with pytest.raises(ReviewError, match="allow_quarantine_actions = true"):
        publish_anyway(company, "crm", sid, "why not", "eve")
    assert _current(company) != sid and decisions(Store(company.data_path)) == []


@pytest.mark.parametrize(
    ("source", "snapshot", "reason", "message"),
    [
        ("crm", "SID", "  ", "a reason is required"),
        ("crm", "20990101T000000000Z-0000", "r", "has no quarantined snapshot '20990101T000000000Z-0000'"),
        ("crm", "../../manifest.json", "r", "has no quarantined snapshot"),
        ("nosuch", "SID", "r", "no source named 'nosuch'"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_message(
    company: Settings, source: str, snapshot: str, reason: str, message: str
) -> None:
    settings = allow_actions(company)
    sid = quarantine_crm(settings)
    with pytest.raises(Exception, match=message.replace("(", r"\(")) as err:
        discard(settings, source, sid if snapshot == "SID" else snapshot, reason, "eve")
    assert hasattr(err.value, "message")  # a CockpitError: shown as a message, never a traceback
    assert (settings.data_path / "quarantine" / "crm" / sid).is_dir()


def test_a_snapshot_that_was_never_read_cannot_be_published(company: Settings) -> None:
    settings = allow_actions(company)
    (settings.base_dir / "imports" / "crm" / "leads.csv").write_bytes(b"")
    [crm] = refresh(settings, ["crm"]).sources
    with pytest.raises(ReviewError, match=r"has no data to publish.*leads\.csv"):
        publish_anyway(settings, "crm", crm.snapshot_id, "try", "eve")


def test_an_older_snapshot_is_not_published_over_a_newer_one(company: Settings) -> None:
    settings = allow_actions(company)
    old = quarantine_crm(settings)
    leads = settings.base_dir / "imports" / "crm" / "leads.csv"
    leads.write_text("Lead ID,Created,Source,Mobile\nCRM-1,2026-03-01,SEM,13900130001\n")
    assert refresh(settings, ["crm"]).exit_code == 0
    with pytest.raises(ReviewError, match="older than the current one"):
        publish_anyway(settings, "crm", old, "roll back", "eve")


def cockpit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], capture_output=True, text=True, timeout=300)


def test_the_quarantine_commands(company: Settings) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    assert cockpit("--config", cfg, "quarantine", "list").stdout.strip() == "no quarantined snapshots"
    sid = quarantine_crm(company)
    listed = cockpit("--config", cfg, "quarantine", "list", "crm")
    assert listed.returncode == 0
    assert f"crm {sid}" in listed.stdout and "leads: 25 rows (current 30)" in listed.stdout
    off = cockpit("--config", cfg, "quarantine", "publish", "crm", sid, "--reason", "ok")
    assert off.returncode == 2 and "allow_quarantine_actions = true" in off.stderr and "Traceback" not in off.stderr
    allow_actions(company)
    no_reason = cockpit("--config", cfg, "quarantine", "discard", "crm", sid)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    done = cockpit("--config", cfg, "quarantine", "publish", "crm", sid, "-r", "checked by hand")
    assert done.returncode == 0, done.stderr
    assert f"✔ crm: published {sid} anyway (recorded: " in done.stdout
    assert _current(company) == sid
    events = audit.read(company, action="quarantine_publish")
    assert events.select("role", "client", "target").rows() == [("operator", "cli", f"crm/{sid}")]
    again = cockpit("--config", cfg, "quarantine", "discard", "crm", sid, "-r", "twice")
    assert again.returncode == 2 and "has no quarantined snapshot" in again.stderr


def test_audit_log_survives_a_damaged_line(tmp_path: Path) -> None:
    store = Store(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "audit.jsonl").write_text('{"action": "discard"}\nnot json\n{"action": "publish_anyway"}\n')
    assert [a["action"] for a in decisions(store)] == ["discard", "publish_anyway"]
