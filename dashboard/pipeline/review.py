"""Quarantine review: a person decides about a rejected snapshot, "publish anyway" or "discard".

Both are off unless ``[quality] allow_quarantine_actions = true``; each needs a reason and is
appended to ``runs/audit.jsonl`` with who, when and why. Publishing swaps the manifest exactly as a
refresh does; discarding deletes the quarantined files and leaves the manifest alone. The attempt
in the run history keeps its validation result and is marked with the decision.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.core.config import Settings
from dashboard.core.errors import CockpitError
from dashboard.core.store import Store, now_utc

AUDIT_FILE = "audit.jsonl"
PUBLISHED_ANYWAY = "published_anyway"
DISCARDED = "discarded"


class ReviewError(CockpitError):
    """A review action that is not allowed or names no quarantined snapshot."""

    exit_code = 2


@dataclass
class Quarantined:
    source: str
    snapshot_id: str
    finished_at: str | None
    reasons: list[str]
    rows: dict[str, int]
    current_snapshot: str | None
    current_rows: dict[str, int] = field(default_factory=dict)
    has_data: bool = False  # false: it failed before any table was read (nothing to publish)


# -- the audit log -------------------------------------------------------------------------------
def audit_path(store: Store) -> Path:
    return store.runs / AUDIT_FILE


def read_audit(store: Store) -> list[dict[str, Any]]:
    """Every recorded decision, oldest first; a damaged line is skipped (the rest stay readable)."""
    path = audit_path(store)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _append_audit(store: Store, entry: dict[str, Any]) -> None:
    path = audit_path(store)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


# -- what is waiting for review ------------------------------------------------------------------------
def _read_validation(folder: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((folder / "validation.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return data


def list_quarantined(settings: Settings, source: str | None = None) -> list[Quarantined]:
    """Quarantined snapshots still on disk, newest first, with the current snapshot's row counts."""
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    out = []
    folders = (
        sorted(store.quarantine.glob("*/*"), key=lambda p: p.name, reverse=True) if store.quarantine.exists() else []
    )
    for folder in folders:
        name = folder.parent.name
        if source and name != source:
            continue
        v = _read_validation(folder)
        current = manifest["sources"].get(name) or {}
        out.append(
            Quarantined(
                source=name,
                snapshot_id=folder.name,
                finished_at=v.get("finished_at"),
                reasons=[str(r) for r in v.get("reasons") or []],
                rows={e: int(n) for e, n in (v.get("rows") or {}).items()},
                current_snapshot=current.get("snapshot_id"),
                current_rows={e: int(i["rows"]) for e, i in (current.get("entities") or {}).items()},
                has_data=any(folder.glob("*.parquet")) and bool(v.get("rows")),
            )
        )
    return out


# -- the two decisions --------------------------------------------------------------------------------
def _checked(settings: Settings, source: str, snapshot_id: str, reason: str) -> tuple[Store, Path]:
    if not settings.quality.allow_quarantine_actions:
        raise ReviewError(
            "quarantine actions are turned off: set allow_quarantine_actions = true under [quality] in cockpit.toml"
        )
    settings.source(source)  # a ConfigError naming the unknown source
    if not reason or not reason.strip():
        raise ReviewError(f"a reason is required to act on snapshot '{snapshot_id}' of source '{source}'")
    store = Store(settings.data_path)
    folder = store.quarantine / source / snapshot_id
    if "/" in snapshot_id or snapshot_id.startswith(".") or not folder.is_dir():
        waiting = ", ".join(q.snapshot_id for q in list_quarantined(settings, source)) or "none"
        raise ReviewError(f"source '{source}' has no quarantined snapshot '{snapshot_id}' (quarantined: {waiting})")
    return store, folder


def _decided(store: Store, source: str, snapshot_id: str, action: str, reason: str, who: str) -> dict[str, Any]:
    entry = {
        "at": now_utc().isoformat(),
        "who": who,
        "action": action,
        "status": PUBLISHED_ANYWAY if action == "publish_anyway" else DISCARDED,
        "source": source,
        "snapshot_id": snapshot_id,
        "reason": reason.strip(),
        "manifest_version": store.read_manifest().get("version", 0),
    }
    _append_audit(store, entry)
    attempt = next((a for a in store.attempts(source) if a.get("snapshot_id") == snapshot_id), None)
    if attempt is not None:  # the history keeps the validation result and shows the decision
        attempt.update(status=entry["status"], review={k: entry[k] for k in ("at", "who", "action", "reason")})
        store.record_attempt(source, attempt)
    return entry


def publish_anyway(settings: Settings, source: str, snapshot_id: str, reason: str, who: str) -> dict[str, Any]:
    """Serve a quarantined snapshot as the source's current one, as if it had passed the gate."""
    store, folder = _checked(settings, source, snapshot_id, reason)
    with store.lock():
        v = _read_validation(folder)
        rows = {e: int(n) for e, n in (v.get("rows") or {}).items()}
        if not rows or not all((folder / f"{e}.parquet").is_file() for e in rows):
            raise ReviewError(
                f"snapshot '{snapshot_id}' of source '{source}' has no data to publish: it failed before its "
                f"tables were read ({'; '.join(v.get('reasons') or ['no validation result'])})"
            )
        manifest = store.read_manifest()
        old = manifest["sources"].get(source)
        if old and old["snapshot_id"] > snapshot_id:
            raise ReviewError(
                f"snapshot '{snapshot_id}' of source '{source}' is older than the current one "
                f"('{old['snapshot_id']}'): publishing it would roll the source back"
            )
        dest = store.snapshots / source / snapshot_id
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(folder, dest)  # not served until the manifest names it
        manifest["sources"][source] = {
            "snapshot_id": snapshot_id,
            "published_at": now_utc().isoformat(),
            "entities": {e: {"file": store.rel(dest / f"{e}.parquet"), "rows": n} for e, n in rows.items()},
            "previous": ([old["snapshot_id"], *old.get("previous", [])] if old else [])[:20],
        }
        entry = _decided(store, source, snapshot_id, "publish_anyway", reason, who)
        _swap(settings, store, manifest)
    return entry


def discard(settings: Settings, source: str, snapshot_id: str, reason: str, who: str) -> dict[str, Any]:
    """Delete a quarantined snapshot's files; the manifest and what is served do not change."""
    store, folder = _checked(settings, source, snapshot_id, reason)
    with store.lock():
        shutil.rmtree(folder)
        entry = _decided(store, source, snapshot_id, "discard", reason, who)
        _swap(settings, store, store.read_manifest())
    return entry


def _swap(settings: Settings, store: Store, manifest: dict[str, Any]) -> None:
    """The derived build (identity, quality, history) follows the decision and is published with it
    in one manifest swap, as after a refresh. The decision is recorded first: the history reads it."""
    from dashboard.pipeline.derive import build_derived

    store.write_manifest(build_derived(settings, store, manifest))
    store.prune(store.read_manifest(), settings.retention)
