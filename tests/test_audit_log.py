"""One audit log: quarantine decisions are recorded in it and read from it, and the decisions an older
version appended to ``runs/audit.jsonl`` are imported once — also when the import is interrupted."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dashboard.core import audit
from dashboard.core.config import Settings
from dashboard.core.dictionary import for_settings
from dashboard.core.store import Store
from dashboard.derived.quality.tables import validation_history
from tests.test_review import allow_actions, quarantine_crm


def legacy_line(action: str, source: str, sid: str, who: str, at: str, reason: str) -> str:
    status = "published_anyway" if action == "publish_anyway" else "discarded"
    entry = {"at": at, "who": who, "action": action, "status": status, "source": source, "snapshot_id": sid}
    return json.dumps({**entry, "reason": reason, "manifest_version": 3}, ensure_ascii=False) + "\n"


def write_legacy(root: Path, *lines: str) -> Path:
    path = root / "runs" / "audit.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path


LINES = (
    legacy_line("discard", "crm", "20260301T000000000Z-aaaa", "bob", "2026-03-01T08:00:00+00:00", "a test export"),
    legacy_line("publish_anyway", "erp", "20260302T000000000Z-bbbb", "alice", "2026-03-02T09:30:00.5+00:00", "好的"),
)


def test_old_decisions_are_imported_once_and_the_old_file_is_kept_renamed(tmp_path: Path) -> None:
    legacy = write_legacy(tmp_path, *LINES)
    store = Store(tmp_path)
    first = audit.decisions(store)
    assert [(d["who"], d["action"], d["status"], d["source"], d["reason"]) for d in first] == [
        ("bob", "discard", "discarded", "crm", "a test export"),
        ("alice", "publish_anyway", "published_anyway", "erp", "好的"),
    ]
    assert first[1]["at"] == "2026-03-02T09:30:00.500000+00:00" and first[1]["manifest_version"] == 3
    assert not legacy.exists() and legacy.with_name("audit.jsonl.migrated").read_text(encoding="utf-8") == "".join(
        LINES
    )
    assert audit.decisions(store) == first  # read again: nothing imported twice
    events = audit.read(store)
    assert events.select("action", "user", "target").rows() == [
        ("quarantine_publish", "alice", "erp/20260302T000000000Z-bbbb"),
        ("quarantine_discard", "bob", "crm/20260301T000000000Z-aaaa"),
    ]
    assert "audit.jsonl, line 1" in events["detail"][1]


def test_an_import_interrupted_before_or_after_its_file_loses_and_doubles_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    legacy = write_legacy(tmp_path, *LINES)
    store = Store(tmp_path)

    class Crash(Exception):
        pass

    def crash(*_args: object) -> None:
        raise Crash

    with monkeypatch.context() as m:  # killed before the imported file is in place
        m.setattr("dashboard.core.audit.os.replace", crash)
        with pytest.raises(Crash):
            audit.decisions(store)
    assert legacy.exists() and not list((tmp_path / "runs" / "audit").glob("*/*.parquet"))
    with monkeypatch.context() as m:  # killed after it, before the old file is renamed
        m.setattr("dashboard.core.audit.os.rename", crash)
        with pytest.raises(Crash):
            audit.decisions(store)
    assert legacy.exists() and len(list((tmp_path / "runs" / "audit").glob("*/*.parquet"))) == 1
    assert [d["who"] for d in audit.decisions(store)] == ["bob", "alice"]  # the next read finishes the import
    assert not legacy.exists() and audit.read(store).height == 2


def test_a_writer_imports_the_old_file_too_and_a_second_old_file_is_imported_beside_the_first(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    write_legacy(tmp_path, LINES[0])
    audit.record(store, "sign_in", "carol", "analyst", "10.0.0.1")
    assert sorted(audit.read(store)["action"]) == ["quarantine_discard", "sign_in"]
    write_legacy(tmp_path, LINES[1])  # e.g. restored from a backup
    assert [d["who"] for d in audit.decisions(store)] == ["bob", "alice"]
    renamed = sorted(p.name for p in (tmp_path / "runs").glob("audit.jsonl*"))
    assert len(renamed) == 2 and "audit.jsonl.migrated" in renamed  # the first archive is not overwritten


def test_an_old_decision_the_page_also_recorded_is_linked_to_that_event(tmp_path: Path) -> None:
    """Before, the page and the CLI recorded each decision in both logs: the imported one names the other."""
    at = dt.datetime(2026, 3, 1, 8, 0, 1, tzinfo=dt.UTC)
    folder = tmp_path / "runs" / "audit" / "2026-03-01"
    folder.mkdir(parents=True)
    row = {"event_id": "e1", "at": at, "action": "quarantine_discard", "user": "bob", "role": "admin"}
    row |= {"client": None, "target": "crm/20260301T000000000Z-aaaa", "rows": None, "detail": None}
    pq.write_table(pa.Table.from_pylist([row], schema=audit._SCHEMA), folder / "080001000000-e1.parquet")
    write_legacy(tmp_path, LINES[0])
    store = Store(tmp_path)
    [decision] = audit.decisions(store)  # the older event holds no decision: only the imported one is read
    assert decision["who"] == "bob"
    events = audit.read(store)
    assert events["event_id"].to_list()[0] == "e1"  # a second later than the imported entry
    assert json.loads(events["detail"][1])["same_as"] == "e1"


def test_damaged_and_foreign_lines_are_skipped_and_kept_in_the_renamed_file(tmp_path: Path) -> None:
    text = LINES[0] + "not json\n" + '{"action": "something else"}\n' + LINES[1]
    write_legacy(tmp_path, text)
    assert [d["action"] for d in audit.decisions(Store(tmp_path))] == ["discard", "publish_anyway"]
    assert (tmp_path / "runs" / "audit.jsonl.migrated").read_text(encoding="utf-8") == text


def test_the_validation_history_reads_imported_decisions(company: Settings) -> None:
    settings = allow_actions(company)
    sid = quarantine_crm(settings)
    line = legacy_line("discard", "crm", sid, "bob", "2026-03-01T08:00:00+00:00", "not real data")
    write_legacy(settings.data_path, line)
    runs, _results = validation_history(Store(settings.data_path), ["crm"], for_settings(settings))
    first = runs.row(0, named=True)
    assert (first["snapshot_id"], first["status"], first["reviewed_by"], first["review_reason"]) == (
        sid,
        "discarded",
        "bob",
        "not real data",
    )


def test_cockpit_audit_shows_quarantine_decisions(company: Settings) -> None:
    settings = allow_actions(company)
    sid = quarantine_crm(settings)
    write_legacy(settings.data_path, LINES[1])
    cfg = str(settings.base_dir / "cockpit.toml")
    cockpit = [sys.executable, "-m", "dashboard.cli", "--config", cfg]
    done = subprocess.run([*cockpit, "quarantine", "discard", "crm", sid, "-r", "a test"], capture_output=True)
    assert done.returncode == 0, done.stderr
    shown = subprocess.run([*cockpit, "audit", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    events = [(e["action"], e["target"], json.loads(e["detail"])["reason"]) for e in json.loads(shown.stdout)]
    assert events == [
        ("quarantine_discard", f"crm/{sid}", "a test"),
        ("quarantine_publish", "erp/20260302T000000000Z-bbbb", "好的"),
    ]
