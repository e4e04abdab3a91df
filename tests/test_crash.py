"""kill -9 of a refresh at any point leaves a consistent manifest: the old state or the new, never a mix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dashboard.core.config import CRASH_ENV, Settings
from dashboard.core.store import Store
from dashboard.ops.status import source_status
from dashboard.pipeline.derive_child import DerivedBuildStopped
from dashboard.pipeline.refresh import refresh
from dashboard.pipeline.source_child import SourcesStopped
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse

REFRESH = "from dashboard.cli import main; main()"

POINTS = [
    "staged",  # snapshot written to staging
    "moved",  # snapshot moved to snapshots/, manifest not yet swapped
    "before_manifest",
    "replace:manifest.json",  # temp manifest written and fsynced, not yet renamed
    "published",  # manifest swapped, history not yet written
    "derived_staged",
]
# Inside the derived build. A refresh whose process holds little (these small ones) builds in it, and the kill
# there is the refresh's; in a process of its own (pipeline/derive_child.py: ``derive_in_process_below = "0GB"``)
# the kill is that process's, and the refresh reports it and exits with an error (the kill of the refresh itself
# during the build: tests/test_derive_child.py).
CHILD_POINTS = {"derived_staged", "derived_reused"}
IN_CHILD = '\n[engine]\nderive_in_process_below = "0GB"\n'
# Inside the sources' reading: with the same setting the sources are read in a process of their own too
# (pipeline/source_child.py), whose kill the refresh reports, exiting with an error.
SOURCE_POINTS = {"staged", "moved"}


def _assert_killed_at(proc: subprocess.CompletedProcess[str], point: str, in_child: bool = False) -> None:
    if in_child and point in CHILD_POINTS:
        assert proc.returncode == DerivedBuildStopped.exit_code, proc.stderr
        assert "the derived build's process was killed (SIGKILL)" in proc.stderr, proc.stderr
    elif in_child and point in SOURCE_POINTS:
        assert proc.returncode == SourcesStopped.exit_code, proc.stderr
        assert "the sources' process was killed (SIGKILL)" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == -signal.SIGKILL, proc.stderr


def _manifest_paths(settings: Settings) -> list[Path]:
    m = Store(settings.data_path).read_manifest()
    paths = [settings.data_path / i["file"] for e in m["sources"].values() for i in e["entities"].values()]
    paths += [settings.data_path / p for p in ((m.get("derived") or {}).get("tables") or {}).values()]
    return paths


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_kill_at_any_point_leaves_a_consistent_manifest(company: Settings, point: str) -> None:
    cfg = company.base_dir / "cockpit.toml"
    before = Store(company.data_path).read_manifest()
    served_before = Warehouse(company).run_query("channel_summary", user=SYSTEM)
    # change the web forms so the new snapshot differs from the old one
    forms = company.base_dir / "imports" / "web" / "forms.jsonl"
    records = [{**json.loads(line), "utm_source": "SEM"} for line in forms.read_text(encoding="utf-8").splitlines()]
    forms.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    env = {**os.environ, CRASH_ENV: point}
    proc = subprocess.run(
        [sys.executable, "-c", REFRESH, "--config", str(cfg), "refresh", "web_forms"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    _assert_killed_at(proc, point)

    manifest_text = (company.data_path / "manifest.json").read_text(encoding="utf-8")
    after = json.loads(manifest_text)  # never a half-written file
    assert after["version"] >= before["version"]
    for path in _manifest_paths(company):
        assert path.is_file(), f"manifest names a missing file: {path}"
    served = Warehouse(company).run_query("channel_summary", user=SYSTEM)
    changed = after["sources"]["web_forms"]["snapshot_id"] != before["sources"]["web_forms"]["snapshot_id"]
    if not changed:
        assert served.equals(served_before)
    else:
        assert "website" not in served.get_column("channel").to_list()

    # `cockpit status` tells the kill apart from a publish, and a killed run's folder is not a kept snapshot
    [status] = [s for s in source_status(company) if s.name == "web_forms"]
    assert status.last_attempt is not None
    assert status.last_attempt["status"] == ("published" if changed else "interrupted"), status.last_attempt
    assert status.snapshots_kept == (2 if changed else 1)  # the fixture published web_forms once before
    shown = subprocess.run(
        [sys.executable, "-c", REFRESH, "--config", str(cfg), "status"], capture_output=True, text=True, timeout=120
    )
    assert ("interrupted" in shown.stdout) != changed, shown.stdout

    # the next refresh recovers: leftovers cleaned, everything published
    result = refresh(company)
    assert result.exit_code == 0
    assert not (company.data_path / "staging").exists()
    assert "website" not in Warehouse(company).run_query("channel_summary", user=SYSTEM).get_column("channel").to_list()
    [status] = [s for s in source_status(company) if s.name == "web_forms"]
    assert status.last_attempt is not None and status.last_attempt["status"] == "published"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "in_child"),
    [*((p, False) for p in [*POINTS, "derived_reused"]), *((p, True) for p in sorted(CHILD_POINTS | SOURCE_POINTS))],
)
def test_kill_during_an_incremental_refresh_leaves_old_or_new_and_the_next_completes(
    company: Settings, point: str, in_child: bool
) -> None:
    """An incremental refresh (one source read, the derived steps that do not read it shared with the current
    build) killed at any point: the old numbers or the new, never a mix, and the next refresh serves the new.
    The build in the refresh's process (it read one small source) or, ``in_child``, in a process of its own, and
    the sources in one of theirs."""
    cfg = company.base_dir / "cockpit.toml"
    if in_child:
        cfg.write_text(cfg.read_text(encoding="utf-8") + IN_CHILD, encoding="utf-8")
    spend = company.base_dir / "imports" / "marketing" / "spend.csv"
    spend.write_text(spend.read_text(encoding="utf-8") + "SEM,2026-03-20,500\n", encoding="utf-8")

    def sem_cost() -> float:
        served = Warehouse(company).run_query("channel_summary", user=SYSTEM)
        return float(served.filter(served["channel"] == "paid_search")["cost"].item())

    before = {n: e["snapshot_id"] for n, e in Store(company.data_path).read_manifest()["sources"].items()}
    proc = subprocess.run(
        [sys.executable, "-c", REFRESH, "--config", str(cfg), "refresh", "marketing"],
        env={**os.environ, CRASH_ENV: point},
        capture_output=True,
        text=True,
        timeout=300,
    )
    _assert_killed_at(proc, point, in_child)
    for path in _manifest_paths(company):
        assert path.is_file(), f"manifest names a missing file: {path}"
    after = {n: e["snapshot_id"] for n, e in Store(company.data_path).read_manifest()["sources"].items()}
    swapped = after["marketing"] != before["marketing"]
    assert sem_cost() == (3500.0 if swapped else 3000.0)
    assert {n for n in after if after[n] != before[n]} == ({"marketing"} if swapped else set())

    result = refresh(company)  # the next one completes: only what is still new is made again
    assert result.exit_code == 0
    assert [s.source for s in result.sources if not s.unchanged] == ([] if swapped else ["marketing"])
    assert {"identity", "golden", "churn"} <= set(result.reused)
    assert sem_cost() == 3500.0
    assert not (company.data_path / "staging").exists()
