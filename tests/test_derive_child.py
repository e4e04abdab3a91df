"""The derived build in a process of its own (issue 22, point 2): an error there fails the refresh as it
would in process, a kill of the refresh stops the build too, and the tables are the same either way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import PAUSE_ENV, ConfigError, Settings, load_settings
from dashboard.core.duck import size_bytes
from dashboard.core.store import Store
from dashboard.pipeline import fingerprint
from dashboard.pipeline import refresh as refresh_module
from dashboard.pipeline.derive_child import builds_here, child_settings
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse

BAD_OVERRIDE = "row 2, column action: 'fuse' is not merge, split or detach"


def _with_config(settings: Settings, extra: str) -> Settings:
    cfg = settings.base_dir / "cockpit.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + extra, encoding="utf-8")
    return load_settings(cfg)


def _in_child(settings: Settings) -> Settings:
    """The build in a process of its own however little the refresh's process holds (these refreshes are small)."""
    return _with_config(settings, '\n[engine]\nderive_in_process_below = "0GB"\n')


def _bad_overrides(company: Settings) -> Settings:
    (company.base_dir / "overrides.csv").write_text(
        "action,source_system,source_record_id,other_source_system,other_source_record_id\nfuse,erp,E1,crm,CRM-1\n",
        encoding="utf-8",
    )
    return _with_config(company, '\n[identity]\noverrides = "overrides.csv"\n')


def _change_spend(settings: Settings) -> None:
    spend = settings.base_dir / "imports" / "marketing" / "spend.csv"
    spend.write_text(spend.read_text(encoding="utf-8") + "SEM,2026-03-20,500\n", encoding="utf-8")


def test_an_error_in_the_derived_build_fails_the_refresh_with_its_type_and_message(company: Settings) -> None:
    settings = _in_child(_bad_overrides(company))
    before = Store(settings.data_path).read_manifest()
    with pytest.raises(ConfigError) as raised:
        refresh(settings)
    assert BAD_OVERRIDE in raised.value.message
    assert any("derived build's process" in note for note in raised.value.__notes__)  # it came from the child
    assert Store(settings.data_path).read_manifest() == before  # the last good state stays current


@pytest.mark.slow
def test_the_command_exits_as_before_when_the_derived_build_fails(company: Settings) -> None:
    settings = _bad_overrides(company)
    before = Store(settings.data_path).read_manifest()["version"]
    cfg = str(settings.base_dir / "cockpit.toml")
    proc = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--config", cfg, "refresh"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == ConfigError.exit_code, proc.stderr
    assert BAD_OVERRIDE in proc.stderr
    assert "Traceback" not in proc.stderr
    assert Store(settings.data_path).read_manifest()["version"] == before


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _running(pid: int) -> bool:
    """Alive and not a zombie (a reparented child's exit may wait for a reaper)."""
    try:
        state = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError):
        return False
    return "zombie" not in state


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads child processes from /proc (Linux)")
def test_a_killed_refresh_leaves_no_derived_build_running_and_the_next_completes(company: Settings) -> None:
    _change_spend(company)
    _in_child(company)
    before = Store(company.data_path).read_manifest()["version"]
    cfg = str(company.base_dir / "cockpit.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "--config", cfg, "refresh", "marketing"],
        env={**os.environ, PAUSE_ENV: "derived_staged:300"},  # the build written, not yet moved into place
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "paused at derived_staged" in line:
            break
    [child] = _children(proc.pid)
    assert _running(child)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    while _running(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _running(child), "the derived build outlived the refresh that started it"

    assert Store(company.data_path).read_manifest()["version"] == before
    assert refresh(company).exit_code == 0
    served = Warehouse(company).run_query("channel_summary", user=SYSTEM)
    assert float(served.filter(served["channel"] == "paid_search")["cost"].item()) == 3500.0
    assert not (company.data_path / "staging").exists()


def _copy(company: Settings, tmp_path: Path, name: str, extra: str) -> Settings:
    shutil.copytree(company.base_dir, tmp_path / name)
    return _with_config(load_settings(tmp_path / name / "cockpit.toml"), extra)


def _refuse_child(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the derived build was started in a process of its own")


@pytest.mark.slow
def test_the_derived_build_in_process_makes_the_same_tables(
    company: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The build in a process of its own against ``[engine] derive_in_child = false`` and against the default
    for a refresh whose process holds little (in the refresh's process, no child started), same inputs."""
    off = _copy(company, tmp_path, "off", "\n[engine]\nderive_in_child = false\n")
    small = _copy(company, tmp_path, "small", '\n[engine]\nderive_in_process_below = "1TB"\n')  # holds less
    child = _in_child(company)
    _change_spend(child)
    assert refresh(child).exit_code == 0
    monkeypatch.setattr(refresh_module, "build_in_child", _refuse_child)  # the others build here
    for settings in (off, small):
        _change_spend(settings)
        assert refresh(settings).exit_code == 0
    for other in (off, small):
        _same_tables(child, other)


def test_where_the_derived_build_runs(company: Settings) -> None:
    """In the refresh's process when it holds less than derive_in_process_below (engine duckdb) or when the
    child is off; in a process of its own otherwise, and always with engine spark (its own application)."""
    engine = company.engine
    assert engine.derive_in_child and engine.derive_in_process_below == "1GB"  # the defaults

    def where(**changed: object) -> bool:
        return builds_here(company.model_copy(update={"engine": engine.model_copy(update=changed)}))

    assert where(derive_in_process_below="1TB") and where(derive_in_child=False)
    assert not where(derive_in_process_below="0GB") and not where(derive_in_process_below="1MB")
    assert not where(kind="spark", derive_in_process_below="1TB")
    assert where(kind="spark", derive_in_child=False)
    # where it runs changes no table: switching it keeps every snapshot and step made (their fingerprints)
    made = fingerprint.settings_version(company)
    for memory in ({"build_memory": "5GB"}, {"memory_limit": "2GB"}):  # nor does its memory (DuckDB spills past it)
        assert fingerprint.settings_version(company.model_copy(update=memory)) == made, memory
    for changed in ({"derive_in_child": False}, {"derive_in_process_below": "0GB"}, {"kind": "spark"}):
        other = company.model_copy(update={"engine": engine.model_copy(update=changed)})
        assert (fingerprint.settings_version(other) == made) == ("kind" not in changed), changed


def _same_tables(company: Settings, in_process: Settings) -> None:
    for query in ("channel_summary", "churn_list"):
        made = [Warehouse(s).run_query(query, user=SYSTEM) for s in (company, in_process)]
        assert made[0].equals(made[1]), query
    keys = {
        "customer_golden": ["customer_key"],
        "lead_facts": ["source_system", "lead_id"],
        "identity_links": ["source_system", "source_record_id", "record_kind"],
    }
    for table, key in keys.items():
        frames = []
        for s in (company, in_process):
            build = Store(s.data_path).read_manifest()["derived"]
            frame = pl.read_parquet(s.data_path / build["tables"][table]).drop("snapshot_id", strict=False)
            frames.append(frame.sort(key))  # rows in the order they were made: not part of the table
        assert frames[0].equals(frames[1]), table


def test_a_build_in_its_own_process_gets_the_build_memory_less_what_the_refresh_holds(company: Settings) -> None:
    """[build_memory] is for the refresh as a whole: a child built with all of it beside a refresh's process
    holding 1.3 GB peaked at 6.30 GB at large (session 19). The child gets what the refresh's process leaves."""
    assert company.build_memory == "6GB"
    assert (
        size_bytes(child_settings(company, int(1.3 * 2**30)).build_memory)
        == (6 * 10**9 - int(1.3 * 2**30)) // 2**20 * 2**20
    )
    assert child_settings(company, 5 * 2**30).build_memory == "2048MiB"  # at least CHILD_MEMORY_FLOOR
    assert company.build_memory == "6GB"  # the refresh's own settings unchanged
