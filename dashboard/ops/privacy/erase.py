"""Erasure (``cockpit privacy forget``): the person out of every file under the data folder, out of every
later snapshot (the suppression list), and out of the audit log but for a pseudonym."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq

from dashboard.core import audit
from dashboard.core.config import Settings
from dashboard.core.store import atomic_write_text, crash_point
from dashboard.ops.privacy.files import (
    FileChange,
    Target,
    _clean_temp_files,
    _data_files,
    _recount_manifest,
    _replace_parquet,
    exclusive,
    rewrite_parquet,
    rewrite_text,
)
from dashboard.ops.privacy.person import PENDING, Identifier, Person, PrivacyInputError, find_person, pseudonym
from dashboard.pipeline import suppression
from dashboard.pipeline.review import Who

_WORKERS = min(2, os.cpu_count() or 1)


@dataclass
class Proof:
    pseudonym: str
    changes: list[FileChange]
    suppressed: int  # hashes added to the suppression list (0 on a rerun)
    audit_events: int  # audit events whose identifiers were replaced by the pseudonym

    @property
    def rows(self) -> int:
        return sum(c.rows_removed for c in self.changes)

    @property
    def values(self) -> int:
        return sum(c.values_erased for c in self.changes)

    def lines(self) -> list[str]:
        out = [f"{c.path}: {c.rows_removed} rows removed, {c.values_erased} values erased" for c in self.changes]
        if not self.changes:
            out.append("0 rows: nothing under the data folder names this person")
        out.append(
            f"{len(self.changes)} files rewritten, {self.rows} rows removed, {self.values} values erased; "
            f"{self.audit_events} audit events pseudonymized as {self.pseudonym}; "
            f"{self.suppressed} suppression entries added"
        )
        return out


def forget(
    settings: Settings,
    ident: Identifier,
    reason: str,
    who: Who,
    wait: float = 0,
) -> Proof:
    """Erase the person from every file under the data folder and keep them out of later snapshots."""
    if not reason.strip():
        raise PrivacyInputError("--reason is required (recorded in the audit log)")
    root = settings.data_path
    token = pseudonym(settings, ident)
    with exclusive(settings, wait, "cockpit privacy forget") as store:
        _clean_temp_files(root)
        store.clean_staging()
        plan_path = root / PENDING / f"{token.partition(':')[2]}.json"
        person = find_person(settings, ident)
        if plan_path.exists():  # an earlier run was killed: it found what this one may no longer see
            person.merge(Person.from_json(json.loads(plan_path.read_text(encoding="utf-8"))))
        _write_plan(plan_path, person)
        added = suppression.add(root, _suppression_entries(settings, person))
        target = Target(person)
        changes = []
        for change in _each_file(root, target):
            if change:
                changes.append(change)
                crash_point(f"privacy_file:{len(changes)}")  # tests: kill -9 after the Nth rewritten file
        events = _pseudonymize_audit(settings, person, token)
        _recount_manifest(store, {c.path for c in changes})
        plan_path.unlink(missing_ok=True)
    proof = Proof(token, changes, added, events)
    audit.record(
        settings,
        "privacy_forget",
        who.name,
        who.role,
        who.client,
        target=token,
        rows=proof.rows,
        identifier=ident.kind,
        reason=_scrub_text(reason, person, token),
        files=len(changes),
        values_erased=proof.values,
        suppression_added=added,
    )
    return proof


def _each_file(root: Path, target: Target) -> Iterator[FileChange | None]:
    """Each file searched and rewritten, two at a time (reading and searching release the GIL; one file's
    fsync overlaps the other's work), results in the files' order."""

    def one(path: Path) -> FileChange | None:
        if path.suffix == ".parquet":
            return rewrite_parquet(root, path, target)
        return rewrite_text(root, path, target)

    with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
        yield from pool.map(one, _data_files(root))


def _write_plan(path: Path, person: Person) -> None:
    atomic_write_text(path, json.dumps(person.to_json(), ensure_ascii=False))


def _suppression_entries(settings: Settings, person: Person) -> dict[str, str]:
    key = suppression.secret(settings.data_path)
    out = {suppression.digest(key, k, v): k for k, values in person.needles.items() for v in values}
    for source, kind, record_id in person.records:
        out[suppression.digest(key, "record", suppression.record_value(source, kind, record_id))] = "record"
    return out


def _scrub_text(text: str, person: Person, replacement: str) -> str:
    regex = person.pattern(with_keys=True)
    if regex is None:
        return text
    return re.sub(regex.removeprefix("(?i)"), lambda m: f"{m.group(1)}{replacement}{m.group(2)}", text, flags=re.I)


def _pseudonymize_audit(settings: Settings, person: Person, token: str) -> int:
    """Audit events keep what was done, with the person's identifiers and customer keys replaced by their
    pseudonym."""
    files = sorted(audit.audit_dir(settings).glob("*/*.parquet"))
    regex = person.pattern(with_keys=True)
    if not files or regex is None:
        return 0
    text_cols = ["user", "client", "target", "detail"]
    sql = f"""
        SELECT DISTINCT filename FROM read_parquet($files, union_by_name = true, filename = true)
        WHERE {" OR ".join(f'coalesce(regexp_matches("{c}", $regex), false)' for c in text_cols)}
    """
    with duckdb.connect() as con:
        hits = [r[0] for r in con.execute(sql, {"files": [str(f) for f in files], "regex": regex}).fetchall()]
    for path in hits:
        arrow = pq.read_table(path)
        frame = pl.from_arrow(arrow)
        assert isinstance(frame, pl.DataFrame)
        out = frame.with_columns(
            pl.col(c).str.replace_all(regex, f"${{1}}{token}${{2}}") for c in text_cols if c in frame.columns
        )
        _replace_parquet(Path(path), out.to_arrow().cast(arrow.schema))
    return len(hits)
