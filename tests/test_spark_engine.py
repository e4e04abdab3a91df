"""[engine]: its keys checked at load with errors naming them, and a Spark master nobody answers at
failing the refresh as a failed source does (exit 3), the last good snapshots and build still served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dashboard.core.config import Settings, parse_settings
from dashboard.core.errors import ConfigError
from dashboard.derived.spark.session import is_loopback, standalone_hosts
from tests.dbserver import free_port
from tests.test_cli import cockpit


def test_the_engine_is_duckdb_unless_configured() -> None:
    assert parse_settings({}, Path(".")).engine.kind == "duckdb"
    engine = parse_settings(
        {"engine": {"kind": "spark", "master": "yarn", "conf": {"spark.executor.memory": "8g"}}}, Path(".")
    ).engine
    assert (engine.kind, engine.master, engine.conf) == ("spark", "yarn", {"spark.executor.memory": "8g"})


@pytest.mark.parametrize(
    ("engine", "message"),
    [
        ({"kind": "hadoop"}, "engine.kind: Input should be 'duckdb' or 'spark'"),
        ({"master": "spark:/host:7077"}, "engine.master: 'spark:/host:7077' is not a Spark master"),
        ({"master": "local[two]"}, "engine.master: 'local[two]' is not a Spark master"),
        ({"conf": {"executor.memory": "8g"}}, "engine.conf: 'executor.memory' is not a Spark setting"),
        ({"shared_path": "data/shared"}, "engine.shared_path: 'data/shared' is neither an absolute path nor a URI"),
        ({"connect_timeout_seconds": 0}, "engine.connect_timeout_seconds: Input should be greater than 0"),
        ({"masters": "yarn"}, "engine.masters: unknown key"),
    ],
)
def test_a_wrong_engine_key_is_named(engine: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_settings({"engine": engine}, Path("."))
    assert f"cockpit.toml: {message}" in e.value.message


@pytest.mark.parametrize(
    ("master", "hosts", "loopback"),
    [
        ("spark://127.0.0.1:7077", [("127.0.0.1", 7077)], True),
        ("spark://a.example:7077,b.example:7078", [("a.example", 7077), ("b.example", 7078)], False),
        ("local[2]", [], True),
        ("yarn", [], False),
    ],
)
def test_standalone_masters_are_read_from_the_url(master: str, hosts: list[tuple[str, int]], loopback: bool) -> None:
    assert standalone_hosts(master) == hosts
    assert is_loopback(master) is loopback


def test_an_unreachable_master_fails_the_refresh_and_keeps_the_last_good_state(company: Settings) -> None:
    data = company.data_path
    manifest_before = (data / "manifest.json").read_bytes()
    builds_before = sorted(p.name for p in (data / "derived").iterdir())
    status_before = cockpit("--config", str(company.base_dir / "cockpit.toml"), "status", "--json").stdout
    master = f"spark://127.0.0.1:{free_port()}"  # nobody listens there
    with (company.base_dir / "cockpit.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[engine]\nkind = "spark"\nmaster = "{master}"\n')
    out = cockpit("--config", str(company.base_dir / "cockpit.toml"), "refresh")
    assert out.returncode == 3, out.stderr  # as for a source that could not be read
    assert f"the Spark master {master} ([engine] master) cannot be reached" in out.stderr
    assert "Traceback" not in out.stderr
    assert (data / "manifest.json").read_bytes() == manifest_before  # nothing published, nothing half-published
    assert sorted(p.name for p in (data / "derived").iterdir()) == builds_before
    current = {s["name"]: s["snapshot_id"] for s in json.loads(status_before)}
    assert all(current.values())
    after = cockpit("--config", str(company.base_dir / "cockpit.toml"), "status", "--json")
    assert {s["name"]: s["snapshot_id"] for s in json.loads(after.stdout)} == current


def test_an_unreachable_master_fails_before_a_changed_source_is_marked_running(company: Settings) -> None:
    """A source whose files changed is standardized on Spark: the master is checked before its attempt is
    recorded, so `cockpit status` afterwards shows the last good attempt, not an interrupted one."""
    cfg = str(company.base_dir / "cockpit.toml")
    data = company.data_path
    manifest_before = (data / "manifest.json").read_bytes()
    export = company.base_dir / "imports" / "trade_show" / "ts_2026.csv"
    export.write_bytes(export.read_bytes() + b"\n")  # the same rows, new bytes: the source is read again
    master = f"spark://127.0.0.1:{free_port()}"
    with (company.base_dir / "cockpit.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[engine]\nkind = "spark"\nmaster = "{master}"\n')
    out = cockpit("--config", cfg, "refresh", "trade_show")
    assert out.returncode == 3, out.stderr
    assert f"the Spark master {master} ([engine] master) cannot be reached" in out.stderr
    assert (data / "manifest.json").read_bytes() == manifest_before
    status = {s["name"]: s for s in json.loads(cockpit("--config", cfg, "status", "--json").stdout)}
    assert status["trade_show"]["last_attempt"]["status"] == "published"  # the last good one, not "interrupted"
