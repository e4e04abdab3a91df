"""drop_folder sources: files people drop are taken once, then moved to processed/ or rejected/ with a
reason file beside them; nothing is read twice or lost, a crash between publish and move included."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import CRASH_ENV, Settings, load_settings
from dashboard.core.store import Store
from dashboard.pipeline.refresh import refresh

HEADER = "编号,时间,渠道,手机\n"


def rows(start: int, n: int, phone: str = "13800138000") -> str:
    return "".join(f"P{i},2026-03-{i % 28 + 1:02d} 10:00,展会,{phone}\n" for i in range(start, start + n))


@pytest.fixture
def partner(tmp_path: Path) -> Settings:
    (tmp_path / "drop").mkdir()
    (tmp_path / "cockpit.toml").write_text("""
data_dir = "data"
language = "en"

[[sources]]
name = "partner"
kind = "drop_folder"
  [[sources.tables]]
  entity = "leads"
  path = "drop"
  key = "编号"
  columns = { lead_id = "编号", created_at = "时间", channel = "渠道", phone = "手机" }
""", encoding="utf-8")
    return load_settings(tmp_path / "cockpit.toml")


def drop(settings: Settings, name: str, data: bytes | str) -> Path:
    path = settings.base_dir / "drop" / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def listing(settings: Settings, sub: str = "") -> list[str]:
    folder = settings.base_dir / "drop" / sub
    return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []


def published_leads(settings: Settings) -> pl.DataFrame:
    store = Store(settings.data_path)
    entry = store.read_manifest()["sources"]["partner"]
    return pl.read_parquet(store.abs(entry["entities"]["leads"]["file"]))


def test_new_files_are_taken_once_and_moved(partner: Settings) -> None:
    drop(partner, "day1.csv", HEADER + rows(1, 5))
    drop(partner, "day1_gbk.csv", (HEADER + rows(6, 3)).encode("gb18030"))
    pl.DataFrame({"编号": ["P9"], "时间": ["2026-03-09 10:00"], "渠道": ["展会"], "手机": ["13900139000"]}).write_excel(
        partner.base_dir / "drop" / "day1.xlsx"
    )
    drop(partner, "day1.json", '[{"编号": "P10", "时间": "2026-03-10 10:00", "渠道": "展会", "手机": "13700137000"}]')
    assert refresh(partner).exit_code == 0
    assert published_leads(partner).height == 10
    assert listing(partner) == []
    assert listing(partner, "processed") == ["day1.csv", "day1.json", "day1.xlsx", "day1_gbk.csv"]

    # the next day: one new file; one lead updated (the key), the earlier ones are kept
    drop(partner, "day2.csv", HEADER + rows(11, 2) + "P1,2026-03-20 10:00,官网,13800138000\n")
    assert refresh(partner).exit_code == 0
    leads = published_leads(partner)
    assert leads.height == 12
    assert leads.filter(pl.col("lead_id") == "P1")["channel"].item() == "官网"

    # the same content dropped again (under another name) is not read twice
    drop(partner, "day2 (copy).csv", HEADER + rows(11, 2) + "P1,2026-03-20 10:00,官网,13800138000\n")
    assert refresh(partner).exit_code == 0
    assert published_leads(partner).height == 12
    assert listing(partner, "rejected") == ["day2 (copy).csv", "day2 (copy).csv.reason.txt"]
    reason = (partner.base_dir / "drop" / "rejected" / "day2 (copy).csv.reason.txt").read_text()
    assert reason.startswith("already processed: the same content as day2.csv")


def test_unreadable_files_are_rejected_with_a_reason_the_rest_publish(partner: Settings) -> None:
    drop(partner, "good.csv", HEADER + rows(1, 4))
    drop(partner, "scan.pdf", b"%PDF-1.4 ...")
    drop(partner, "broken.csv", b"\x00\x01\x02 not text")
    drop(partner, "no_channel_column.csv", "编号,时间,手机\nP7,2026-03-01,13800138000\n")
    drop(partner, "empty.csv", "")
    drop(partner, "upload.csv.part", HEADER)  # still being uploaded: left alone
    result = refresh(partner)
    assert result.exit_code == 0, result.sources[0].reasons
    assert published_leads(partner)["lead_id"].sort().to_list() == ["P1", "P2", "P3", "P4"]
    assert listing(partner) == ["upload.csv.part"]
    assert listing(partner, "processed") == ["good.csv"]
    rejected = partner.base_dir / "drop" / "rejected"
    reasons = {p.name.removesuffix(".reason.txt"): p.read_text().strip() for p in rejected.glob("*.reason.txt")}
    assert set(reasons) == {"scan.pdf", "broken.csv", "no_channel_column.csv", "empty.csv"}
    assert set(listing(partner, "rejected")) == {*reasons, *(f"{n}.reason.txt" for n in reasons)}
    assert reasons["scan.pdf"].startswith("scan.pdf: not a CSV, Excel or JSON file")
    assert reasons["broken.csv"] == "broken.csv: not a CSV file (binary content)"
    assert "required column '渠道' (mapped to leads.channel) is missing" in reasons["no_channel_column.csv"]
    assert reasons["empty.csv"] == "empty.csv: the file is empty"


def test_a_quarantined_drop_goes_to_rejected_and_the_last_snapshot_stays(partner: Settings) -> None:
    drop(partner, "good.csv", HEADER + rows(1, 4))
    assert refresh(partner).exit_code == 0
    drop(partner, "bad_phones.csv", HEADER + rows(20, 10, phone="12345"))
    result = refresh(partner)
    assert result.exit_code == 3
    assert published_leads(partner).height == 4
    assert listing(partner, "rejected") == ["bad_phones.csv", "bad_phones.csv.reason.txt"]
    reason = (partner.base_dir / "drop" / "rejected" / "bad_phones.csv.reason.txt").read_text()
    assert reason.startswith("the snapshot with this file was quarantined:") and "phone" in reason

    # a fixed file is taken on the next refresh, on top of the published snapshot
    drop(partner, "fixed.csv", HEADER + rows(20, 10))
    assert refresh(partner).exit_code == 0
    assert published_leads(partner).height == 14


def test_a_crash_after_publish_moves_the_file_without_reading_it_again(partner: Settings) -> None:
    drop(partner, "day1.csv", HEADER + rows(1, 5))
    env = {**os.environ, CRASH_ENV: "published"}  # killed right after the manifest swap, before the move
    cfg = str(partner.base_dir / "cockpit.toml")
    out = subprocess.run([sys.executable, "-m", "dashboard.cli", "--config", cfg, "refresh"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == -9
    assert published_leads(partner).height == 5
    assert listing(partner) == ["day1.csv"]  # published, but not moved yet

    drop(partner, "day2.csv", HEADER + rows(6, 2))
    assert refresh(partner).exit_code == 0
    assert published_leads(partner).height == 7  # day1 counted once
    assert listing(partner) == [] and listing(partner, "processed") == ["day1.csv", "day2.csv"]
    assert listing(partner, "rejected") == []


def test_missing_folder_and_empty_folder_are_clear_errors(partner: Settings) -> None:
    res = refresh(partner).sources[0]
    assert res.reasons == ["partner: no files in the drop folder drop yet"]
    (partner.base_dir / "drop").rmdir()
    res = refresh(partner).sources[0]
    assert res.reasons == ["partner: the drop folder drop does not exist"]
