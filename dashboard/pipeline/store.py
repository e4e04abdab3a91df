"""The data directory: layout, the atomically replaced manifest, the refresh lock and run history.

Readers only ever see files the manifest names; the manifest is swapped with write-temp, fsync,
``os.replace``, so a crash leaves the old or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dashboard.errors import CockpitError

Manifest = dict[str, Any]
CRASH_ENV = "COCKPIT_CRASH_AT"  # test hook: SIGKILL this process at the named point


def crash_point(name: str) -> None:
    """Let tests kill -9 a refresh at a precise moment; a no-op unless the env var names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str = "") -> str:
    """Sortable, unique: ``20261122T003000123Z-3fa2``."""
    stamp = now_utc().strftime("%Y%m%dT%H%M%S%f")[:-3]
    return f"{prefix}{stamp}Z-{secrets.token_hex(2)}"


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    crash_point(f"replace:{path.name}")
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2, default=str))


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir
        self.staging = data_dir / "staging"
        self.snapshots = data_dir / "snapshots"
        self.quarantine = data_dir / "quarantine"
        self.derived = data_dir / "derived"
        self.runs = data_dir / "runs"
        self.manifest_path = data_dir / "manifest.json"

    # -- manifest ---------------------------------------------------------------------------
    def read_manifest(self) -> Manifest:
        try:
            m: Manifest = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": 0, "sources": {}, "derived": None}
        except json.JSONDecodeError as e:  # only a hand edit can do this: the swap is atomic
            raise CockpitError(f"{self.manifest_path} is not valid JSON: {e}") from None
        return m

    def write_manifest(self, manifest: Manifest) -> None:
        manifest = {**manifest, "version": int(manifest.get("version", 0)) + 1, "updated_at": now_utc().isoformat()}
        crash_point("before_manifest")
        atomic_write_text(self.manifest_path, json.dumps(manifest, ensure_ascii=False, indent=2))

    def abs(self, rel: str) -> Path:
        return self.root / rel

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # -- locking ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One refresh at a time; readers never take it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / ".refresh.lock"
        with open(path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                raise CockpitError(f"another refresh is running (pid {f.read().strip() or '?'})") from None
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def clean_staging(self) -> None:
        """Leftovers of a refresh that was killed: never named by the manifest, safe to remove."""
        if self.staging.exists():
            shutil.rmtree(self.staging)

    # -- history ----------------------------------------------------------------------------
    def record_attempt(self, source: str, attempt: dict[str, Any]) -> None:
        write_json(self.runs / "attempts" / source / f"{attempt['snapshot_id']}.json", attempt)

    def attempts(self, source: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first."""
        folder = self.runs / "attempts" / source
        files = sorted(folder.glob("*.json"), reverse=True) if folder.exists() else []
        out = []
        for f in files[:limit]:
            with contextlib.suppress(json.JSONDecodeError, OSError):
                out.append(json.loads(f.read_text(encoding="utf-8")))
        return out

    # -- retention --------------------------------------------------------------------------
    def prune(self, manifest: Manifest, keep: int) -> list[Path]:
        """Delete published snapshots beyond the last ``keep`` per source, and old quarantines."""
        removed: list[Path] = []
        for source_dir in self.snapshots.glob("*") if self.snapshots.exists() else []:
            entry = manifest["sources"].get(source_dir.name)
            kept = set([entry["snapshot_id"], *entry.get("previous", [])][:keep]) if entry else set()
            for snap in source_dir.iterdir():
                if snap.name not in kept:
                    shutil.rmtree(snap, ignore_errors=True)
                    removed.append(snap)
        for source_dir in self.quarantine.glob("*") if self.quarantine.exists() else []:
            for snap in sorted(source_dir.iterdir(), reverse=True)[keep:]:
                shutil.rmtree(snap, ignore_errors=True)
                removed.append(snap)
        derived = manifest.get("derived") or {}
        builds = sorted(self.derived.iterdir(), reverse=True) if self.derived.exists() else []
        for b in [b for b in builds if b.name != derived.get("build_id")][2:]:
            shutil.rmtree(b, ignore_errors=True)
            removed.append(b)
        return removed
