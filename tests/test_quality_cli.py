"""`cockpit quality`: the heatmap's figures as a table, CSV or JSON; clear errors, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

from dashboard.core.config import Settings
from tests.test_review import cockpit


def test_quality_formats(company: Settings) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    out = cockpit("--config", cfg, "quality", "--source", "erp", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = {(r["entity"], r["column_name"]): r for r in json.loads(out.stdout)}
    assert {r["source_system"] for r in rows.values()} == {"erp"}
    ids = rows[("customers", "id_number")]
    assert ids["fill_rate"] == 1 / 12 and ids["fill_flag"] is True and ids["valid_rate"] == 1.0
    assert ("customers", "city") not in rows  # not provided by the ERP mapping: not judged, not listed
    csv = cockpit("--config", cfg, "quality", "-f", "csv").stdout.splitlines()
    header = "source_system,entity,column_name,rows,applies_when,applies_rows,fill_rate,valid_rate,uniqueness,"
    header += "fill_flag,valid_flag,unique_flag"
    assert csv[0] == header
    assert {line.split(",")[0] for line in csv[1:]} == set(company.source_names)
    table = cockpit("--config", cfg, "quality")
    assert table.returncode == 0 and "id_number" in table.stdout and "0.0833" in table.stdout


def test_quality_mistakes_and_an_empty_install(company: Settings, fresh_company: Settings, tmp_path: Path) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    unknown = cockpit("--config", cfg, "quality", "--source", "nosuch")
    assert unknown.returncode == 2 and "no source named 'nosuch'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad_format = cockpit("--config", cfg, "quality", "--format", "xml")
    assert bad_format.returncode == 2
    empty = cockpit("--config", str(fresh_company.base_dir / "cockpit.toml"), "quality")
    assert empty.returncode == 0 and "no quality metrics yet" in empty.stderr
