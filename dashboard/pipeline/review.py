"""Quarantine review: a person decides about a rejected snapshot, "publish anyway" or "discard".

Both are off unless ``[quality] allow_quarantine_actions = true``; each needs a reason and is
recorded in the audit log (core/audit.py) with who, when, why and the outcome. Publishing swaps the
manifest exactly as a refresh does; discarding deletes the quarantined files and leaves the manifest
alone. The attempt in the run history keeps its validation result and is marked with the decision.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dashboard.core import audit
from dashboard.core.config import Settings
from dashboard.core.errors import CockpitError
from dashboard.core.store import Busy, Store, now_utc
from dashboard.pipeline.derive_child import build_in_child

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
    way_forward: list[str] = field(default_factory=list)  # the one-off publish and the cockpit.toml setting
    way_forward_zh: list[str] = field(default_factory=list)  # the same in Chinese


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
                way_forward=[str(line) for line in v.get("way_forward") or []],
                way_forward_zh=[str(line) for line in v.get("way_forward_zh") or []],
            )
        )
    return out


# -- the two decisions --------------------------------------------------------------------------------
Progress = Callable[[str], None]


def check_request(settings: Settings, source: str, snapshot_id: str, reason: str) -> None:
    """Refuse (``ReviewError``, ``ConfigError``) what no decision could carry out: the actions are off, the
    source is unknown, no reason is given, or the source has no such quarantined snapshot."""
    _checked(settings, source, snapshot_id, reason)


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


@dataclass(frozen=True)
class Who:
    """Who decides: the name recorded with the decision, and the role and client address of the audit event."""

    name: str
    role: str | None = None
    client: str | None = None


def _decided(store: Store, source: str, snapshot_id: str, action: str, reason: str, who: Who) -> dict[str, Any]:
    entry = audit.record_decision(
        store,
        action,
        who.name,
        who.role,
        who.client,
        source=source,
        snapshot_id=snapshot_id,
        reason=reason.strip(),
        status=PUBLISHED_ANYWAY if action == "publish_anyway" else DISCARDED,
        manifest_version=int(store.read_manifest().get("version", 0)),
    )
    attempt = next((a for a in store.attempts(source) if a.get("snapshot_id") == snapshot_id), None)
    if attempt is not None:  # the history keeps the validation result and shows the decision
        attempt.update(status=entry["status"], review={k: entry[k] for k in ("at", "who", "action", "reason")})
        store.record_attempt(source, attempt)
    return entry


@contextlib.contextmanager
def _publish_lock(store: Store, wait: float, say: Progress) -> Iterator[None]:
    """The refresh's publish lock; when a refresh holds it, wait up to ``wait`` seconds, saying so."""
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(store.lock())
        except Busy as busy:
            if wait <= 0:
                raise
            say(f"waiting for the publish lock: {busy.message}")
            held.enter_context(store.lock(wait))
        yield


def publish_anyway(
    settings: Settings,
    source: str,
    snapshot_id: str,
    reason: str,
    who: str | Who,
    *,
    progress: Progress | None = None,
    wait: float = 0,
) -> dict[str, Any]:
    """Serve a quarantined snapshot as the source's current one, as if it had passed the gate.
    ``progress`` hears each step (the derived build's too); ``wait``: seconds to wait for a running
    refresh's publish lock (then ``Busy``)."""
    say = progress or (lambda _m: None)
    who = who if isinstance(who, Who) else Who(who)
    store, folder = _checked(settings, source, snapshot_id, reason)
    with _publish_lock(store, wait, say):
        if not folder.is_dir():  # decided while this waited for the lock
            _checked(settings, source, snapshot_id, reason)
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
        say(f"{source}: moving {snapshot_id} out of quarantine")
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
        _swap(settings, store, manifest, say)
    return entry


def discard(settings: Settings, source: str, snapshot_id: str, reason: str, who: str | Who) -> dict[str, Any]:
    """Delete a quarantined snapshot's files; the manifest and what is served do not change."""
    who = who if isinstance(who, Who) else Who(who)
    store, folder = _checked(settings, source, snapshot_id, reason)
    with store.lock():
        shutil.rmtree(folder)
        entry = _decided(store, source, snapshot_id, "discard", reason, who)
        _swap(settings, store, store.read_manifest())
    return entry


def _swap(settings: Settings, store: Store, manifest: dict[str, Any], say: Progress | None = None) -> None:
    """The derived build (identity, quality, history) follows the decision and is published with it
    in one manifest swap, as after a refresh. The decision is recorded first: the history reads it.
    Like a refresh's, the build runs in a process of its own (``[engine] derive_in_child``): a page's
    publish job would otherwise keep the build's peak memory in the server."""
    if settings.engine.derive_in_child:
        built = build_in_child(settings, manifest, say or (lambda _m: None), lambda _step, _rows, _rss: None)
    else:
        from dashboard.pipeline.derive import build_derived  # the derived build's modules: only when it runs here

        built = build_derived(settings, store, manifest, say)
    store.write_manifest(built)
    store.prune(store.read_manifest(), settings.retention)
