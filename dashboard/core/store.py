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
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dashboard.core.config import CRASH_ENV, PAUSE_ENV, env
from dashboard.core.errors import CockpitError

Manifest = dict[str, Any]


def crash_point(name: str) -> None:
    """Let tests kill -9 (or pause) a refresh at a precise moment; a no-op unless an env var names this point."""
    if env(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    point, _, seconds = (env(PAUSE_ENV) or "").partition(":")
    if point == name:
        print(f"paused at {name}", file=sys.stderr, flush=True)
        time.sleep(float(seconds or 5))


class Busy(CockpitError):
    """A lock another process holds: a source being refreshed, or the publish step."""

    exit_code = 4


_HELD: set[str] = set()  # the locks this process holds ("" is the publish lock, else a source name)


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
    def lock(self, wait: float = 0) -> Iterator[None]:
        """The publish lock: one manifest swap (and its derived build) at a time; readers never take it."""

        def busy(info: dict[str, Any]) -> str:
            return f"another refresh is running (pid {info.get('pid', '?')}); it is publishing its snapshots"

        with self._flock("", self.root / ".refresh.lock", wait, busy, {}):
            yield

    @contextlib.contextmanager
    def source_locks(self, names: list[str], wait: float = 0, holder: str = "cockpit refresh") -> Iterator[None]:
        """Per-source locks, across processes: no two refreshes of one source overlap. Taken in name order
        (no deadlock); a busy one is waited for up to ``wait`` seconds, then refused with who holds it."""
        with contextlib.ExitStack() as stack:
            for name in sorted(set(names)):

                def busy(info: dict[str, Any], name: str = name) -> str:
                    return (
                        f"source '{name}' is being refreshed by {info.get('holder') or 'another process'} "
                        f"(pid {info.get('pid', '?')}, since {info.get('since', '?')}); try again when it is done, "
                        "or give --wait SECONDS"
                    )

                stack.enter_context(self._flock(name, self._source_lock(name), wait, busy, {"holder": holder}))
            yield

    def _source_lock(self, name: str) -> Path:
        return self.root / "locks" / f"{name}.lock"

    @contextlib.contextmanager
    def _flock(
        self, key: str, path: Path, wait: float, busy: Callable[[dict[str, Any]], str], info: dict[str, Any]
    ) -> Iterator[None]:
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait
        with open(path, "a+") as f:
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        f.seek(0)
                        raise Busy(busy(_holder(f.read()))) from None
                    time.sleep(min(0.2, max(deadline - time.monotonic(), 0.01)))
            f.seek(0)
            f.truncate()
            f.write(json.dumps({"pid": os.getpid(), "since": now_utc().isoformat(timespec="seconds"), **info}))
            f.flush()
            _HELD.add(key)
            try:
                yield
            finally:
                _HELD.discard(key)
                fcntl.flock(f, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _unless_busy(self, key: str, path: Path) -> Iterator[bool]:
        """True (holding the lock for the body) when this process holds it or nobody does; False when busy."""
        if key in _HELD:
            yield True
            return
        try:
            with self._flock(key, path, 0, lambda _info: "", {"holder": "cleanup"}):
                yield True
        except Busy:
            yield False

    def clean_staging(self) -> None:
        """Leftovers of a refresh that was killed: never named by the manifest, safe to remove. A source
        another process is refreshing right now keeps its staging folder."""
        if not self.staging.exists():
            return
        for folder in sorted(self.staging.iterdir()):
            key = "" if folder.name == "derived" else folder.name
            with self._unless_busy(key, self.root / ".refresh.lock" if not key else self._source_lock(key)) as free:
                if free:
                    shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.staging.rmdir()  # only when empty

    # -- history ----------------------------------------------------------------------------
    def record_attempt(self, source: str, attempt: dict[str, Any]) -> None:
        write_json(self.runs / "attempts" / source / f"{attempt['snapshot_id']}.json", attempt)

    def attempts(self, source: str, limit: int | None = None, running: bool = False) -> list[dict[str, Any]]:
        """Newest first; the ended ones only, unless ``running`` (then also those still marked running: in
        progress, or killed midway — ops/status.py tells them apart)."""
        folder = self.runs / "attempts" / source
        files = sorted(folder.glob("*.json"), reverse=True) if folder.exists() else []
        out: list[dict[str, Any]] = []
        for f in files:
            if limit is not None and len(out) >= limit:
                break
            with contextlib.suppress(json.JSONDecodeError, OSError):
                attempt = json.loads(f.read_text(encoding="utf-8"))
                if running or attempt.get("status") != "running":
                    out.append(attempt)
        return out

    # -- retention --------------------------------------------------------------------------
    def prune(self, manifest: Manifest, keep: int) -> list[Path]:
        """Delete published snapshots beyond the last ``keep`` per source, and old quarantines."""
        removed: list[Path] = []
        for source_dir in self.snapshots.glob("*") if self.snapshots.exists() else []:
            entry = manifest["sources"].get(source_dir.name)
            kept = set([entry["snapshot_id"], *entry.get("previous", [])][:keep]) if entry else set()
            with self._unless_busy(source_dir.name, self._source_lock(source_dir.name)) as free:
                # a source another process is refreshing may have a snapshot moved in, not yet named
                for snap in source_dir.iterdir() if free else []:
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


def link_file(src: Path, dest: Path) -> None:
    """Published files are never written again: a hard link shares them (a copy where links cannot be made)."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _holder(text: str) -> dict[str, Any]:
    """What a lock file says about its holder (an older lock file holds just the pid)."""
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return {"pid": text.strip() or "?"}
    return info if isinstance(info, dict) else {"pid": info}
