"""A person's copy (``cockpit privacy export``): everything the current snapshots and derived build hold
about them, as formula-safe CSV files, a JSON summary and a zh/en README."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.core import audit
from dashboard.core.config import Settings
from dashboard.core.store import Store
from dashboard.ops.privacy.person import Identifier, Person, find_person, pseudonym
from dashboard.pipeline.review import Who

README = """\
个人信息副本 / Copy of personal data

本文件夹包含本系统在导出时保存的关于您的全部信息（依据《个人信息保护法》第四十五条）：
每个来源系统的记录（customers、leads 等）、统一客户档案（golden_record）、互动、订单、流失风险评分及原因。
summary.json 列出每个文件及其行数。如需更正或删除，请联系数据负责人。

This folder holds everything this system held about you when it was exported (PIPL, article 45):
each source system's records (customers, leads, ...), the unified customer record (golden_record),
interactions, orders, the churn risk score and its reasons. summary.json lists each file and its rows.
To have them corrected or deleted, contact the data owner.
"""


@dataclass
class ExportResult:
    pseudonym: str
    files: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.files.values())


def _current_frames(root: Path, manifest: dict[str, Any], entity: str) -> pl.DataFrame:
    paths = [root / e["entities"][entity]["file"] for e in manifest["sources"].values() if entity in e["entities"]]
    frames = [pl.read_parquet(p) for p in paths if p.exists()]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def _of(frame: pl.DataFrame, column: str, ids: list[str]) -> pl.Expr:
    """Rows whose (source_system, column) names one of ``ids``."""
    if column not in frame.columns or "source_system" not in frame.columns:
        return pl.lit(False)
    return pl.concat_str("source_system", column, separator="\x1f").is_in(ids)


def person_tables(settings: Settings, person: Person) -> dict[str, pl.DataFrame]:
    """What the current snapshots and derived build hold about the person, one frame per kind of record."""
    root = settings.data_path
    manifest = Store(root).read_manifest()
    customers, leads = person.record_ids(("customer",)), person.record_ids(("lead",))
    out: dict[str, pl.DataFrame] = {}
    for entity in ("customers", "leads", "lead_events", "orders", "interactions", "contracts"):
        frame = _current_frames(root, manifest, entity)
        if frame.is_empty():
            continue
        conds = [_of(frame, "customer_ref", customers), _of(frame, "lead_id", leads)]
        if entity == "customers":
            conds = [_of(frame, "source_record_id", customers)]
        out[entity] = frame.filter(pl.any_horizontal(conds).fill_null(False))
    derived = (manifest.get("derived") or {}).get("tables") or {}
    for table, name in (("customer_golden", "golden_record"), ("churn_scores", "churn"), ("identity_links", "links")):
        if table in derived and (root / derived[table]).exists():
            frame = pl.read_parquet(root / derived[table])
            out[name] = frame.filter(pl.col("customer_key").is_in(sorted(person.keys)))
    return out


def export_person(
    settings: Settings,
    ident: Identifier,
    out_dir: Path,
    who: Who,
) -> ExportResult:
    """Write the person's copy: one formula-safe CSV per kind of record, summary.json and a zh/en README."""
    from dashboard.ops.export import to_csv

    person = find_person(settings, ident)
    tables = {k: v for k, v in person_tables(settings, person).items() if v.height}
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, frame in tables.items():
        (out_dir / f"{name}.csv").write_bytes(to_csv(frame))
        files[f"{name}.csv"] = frame.height
    token = pseudonym(settings, ident)
    total = sum(files.values())
    summary = {
        "person": token,
        "identifier": ident.kind,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": files,
        "rows": total,
        "sources": sorted({s for s, _k, _i in person.records}),
        "customer_keys": sorted(person.keys),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    (out_dir / "README.txt").write_text(README, encoding="utf-8")
    audit.record(settings, "privacy_export", who.name, who.role, who.client, token, total, files=len(files))
    return ExportResult(token, files)
