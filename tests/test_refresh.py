"""The gate: broken batches go to quarantine with a clear reason and change nothing that is served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import Settings
from dashboard.core.store import Store
from dashboard.ops.status import source_status
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse


def _served(settings: Settings) -> tuple[str, pl.DataFrame]:
    manifest = Store(settings.data_path).read_manifest()
    return manifest["sources"]["crm"]["snapshot_id"], Warehouse(settings).run_query("channel_summary", user=SYSTEM)


def _imports(settings: Settings) -> Path:
    return settings.base_dir / "imports"


def test_first_refresh_publishes_every_source(company: Settings) -> None:
    manifest = Store(company.data_path).read_manifest()
    assert sorted(manifest["sources"]) == ["crm", "erp", "marketing", "trade_show", "web_forms"]
    rows = {s: e["entities"] for s, e in manifest["sources"].items()}
    assert rows["trade_show"]["leads"]["rows"] == 20  # 21 lines, one exact duplicate removed
    assert rows["crm"]["lead_events"]["rows"] == 49
    assert manifest["derived"]["tables"]["identity_links"]
    for entry in manifest["sources"].values():
        for info in entry["entities"].values():
            assert (company.data_path / info["file"]).is_file()


BROKEN = {
    "missing required column": (
        "crm/leads.csv",
        b"Lead ID,Source,Mobile\nCRM-1,SEM,13900130001\n",
        ["leads.csv", "'Created'", "created_at", "missing"],
    ),
    "invalid phones beyond the threshold": (
        "crm/leads.csv",
        (
            "Lead ID,Created,Source,Mobile\n" + "".join(f"CRM-{i},2026-03-01,SEM,call me {i}\n" for i in range(20))
        ).encode(),
        ["expect_column_values_to_match_regex", "'phone'", "20 rows failed", "call me"],
    ),
    "empty file": ("crm/leads.csv", b"", ["leads.csv", "empty"]),
    "not a CSV at all": (
        "crm/leads.csv",
        b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00binary",
        ["leads.csv", "not a CSV"],
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_batch_is_quarantined_and_nothing_served_changes(company: Settings, case: str) -> None:
    rel, content, expected = BROKEN[case]
    before_id, before_rows = _served(company)
    (_imports(company) / rel).write_bytes(content)

    result = refresh(company, ["crm"])

    assert result.exit_code == 3
    [crm] = result.sources
    assert crm.status == "quarantined"
    reasons = " ".join(crm.reasons)
    for fragment in expected:
        assert fragment in reasons
    after_id, after_rows = _served(company)
    assert after_id == before_id
    assert after_rows.equals(before_rows)
    quarantined = company.data_path / "quarantine" / "crm" / crm.snapshot_id
    saved = json.loads((quarantined / "validation.json").read_text(encoding="utf-8"))
    assert saved["status"] == "quarantined" and saved["reasons"] == crm.reasons
    [status] = [s for s in source_status(company) if s.name == "crm"]
    assert status.problem == "quarantined"
    assert status.snapshot_id == before_id


def test_one_bad_source_does_not_stop_the_others(company: Settings) -> None:
    (_imports(company) / "crm" / "leads.csv").write_bytes(b"")
    result = refresh(company)
    by_name = {r.source: r.status for r in result.sources}
    assert by_name == {
        "trade_show": "published",
        "crm": "quarantined",
        "erp": "published",
        "web_forms": "published",
        "marketing": "published",
    }
    assert result.exit_code == 3


def test_rows_without_a_date_are_set_aside_not_lost(company: Settings) -> None:
    rows = ["Lead ID,Created,Source,Mobile", "CRM-0,not a date,SEM,13900130000"]
    rows += [f"CRM-{i},2026-03-01,SEM,139001{i:05d}" for i in range(1, 101)]
    (_imports(company) / "crm" / "leads.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    [crm] = refresh(company, ["crm"]).sources  # 1% unparseable: under the suite's 2% limit
    assert crm.published and crm.rows["leads"] == 100 and crm.rejected_rows == 1
    snap = company.data_path / "snapshots" / "crm" / crm.snapshot_id
    rejected = pl.read_parquet(snap / "leads.rejected.parquet")
    assert rejected.get_column("lead_id").to_list() == ["CRM-0"]
    attempt = Store(company.data_path).attempts("crm", limit=1)[0]
    issue = next(i for i in attempt["issues"] if i["column"] == "created_at")
    assert issue["count"] == 1 and issue["samples"][0] == {"file": "leads.csv", "row": 1, "value": "not a date"}


def test_every_attempt_is_in_the_history(company: Settings) -> None:
    (_imports(company) / "crm" / "leads.csv").write_bytes(b"")
    refresh(company, ["crm"])
    attempts = Store(company.data_path).attempts("crm")
    assert [a["status"] for a in attempts] == ["quarantined", "published"]
    assert all(a["expectations"] or a["reasons"] for a in attempts)


def test_retention_keeps_the_last_n_snapshots(company: Settings) -> None:
    for _ in range(4):
        refresh(company, ["web_forms"], full=True)  # the same files: only a full refresh publishes them again
    kept = sorted(p.name for p in (company.data_path / "snapshots" / "web_forms").iterdir())
    manifest = Store(company.data_path).read_manifest()
    assert len(kept) == company.retention == 3
    assert manifest["sources"]["web_forms"]["snapshot_id"] == kept[-1]
    assert manifest["sources"]["web_forms"]["previous"][:2] == kept[:2][::-1]


def test_leftover_staging_is_cleaned(company: Settings) -> None:
    junk = company.data_path / "staging" / "crm" / "dead"
    junk.mkdir(parents=True)
    refresh(company, ["marketing"])
    assert not junk.exists()


def test_a_second_refresh_while_one_runs_is_refused(company: Settings) -> None:
    from dashboard.core.errors import CockpitError

    with Store(company.data_path).lock(), pytest.raises(CockpitError, match="another refresh is running"):
        refresh(company, ["marketing"])


def test_source_without_customers_turns_refs_into_customers(company: Settings) -> None:
    links = Warehouse(company).run_query("identity_links", {"source_system": "crm"}, user=SYSTEM)
    # the CRM has leads only; its leads are records of their own
    assert set(links.get_column("record_kind")) == {"lead"}
    assert links.height == 30
    erp = Warehouse(company).run_query("identity_links", {"source_system": "erp"}, user=SYSTEM)
    assert erp.height == 12  # 12 customers; order refs point at them


def test_quarantine_keeps_the_rejected_data_for_review(company: Settings) -> None:
    (_imports(company) / "crm" / "leads.csv").write_text(
        "Lead ID,Created,Source,Mobile\n" + "".join(f"CRM-{i},2026-03-01,SEM,bad{i}\n" for i in range(9)),
        encoding="utf-8",
    )
    [crm] = refresh(company, ["crm"]).sources
    folder = company.data_path / "quarantine" / "crm" / crm.snapshot_id
    assert pl.read_parquet(folder / "leads.parquet").height == 9
    shutil.rmtree(folder)  # what an operator's "discard" will do


def test_orders_only_source_gets_customers_from_its_refs(tmp_path: Path) -> None:
    from dashboard.core.config import load_settings

    (tmp_path / "orders.csv").write_text(
        "单号,会员,日期,金额\nA1,M1,2026-03-01,10\nA2,M1,2026-03-02,20\nA3,M2,2026-03-02,5\n", encoding="utf-8"
    )
    (tmp_path / "cockpit.toml").write_text(
        '[[sources]]\nname = "shop"\nkind = "csv"\n[[sources.tables]]\nentity = "orders"\npath = "orders.csv"\n'
        'columns = { order_id = "单号", customer_ref = "会员", ordered_at = "日期", amount = "金额" }\n',
        encoding="utf-8",
    )
    settings = load_settings(tmp_path / "cockpit.toml")
    assert refresh(settings).exit_code == 0
    links = Warehouse(settings).run_query("identity_links", user=SYSTEM)
    assert sorted(links.get_column("source_record_id")) == ["M1", "M2"]
    assert set(links.get_column("record_kind")) == {"customer"}
    assert links.get_column("customer_key").n_unique() == 2
