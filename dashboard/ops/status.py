"""Per-source state: current snapshot, rows, freshness against the schedule, last attempt.

Shared by ``cockpit status``, the dashboard's warning banner and the cockpit's freshness line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from dashboard.core.config import Settings, SourceConfig
from dashboard.core.store import Store, now_utc
from dashboard.pipeline.progress import alive


@dataclass
class SourceStatus:
    name: str
    title: str
    kind: str
    owner: str | None
    schedule: str | None
    snapshot_id: str | None = None
    published_at: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    snapshots_kept: int = 0
    next_due: str | None = None
    stale: bool = False
    last_attempt: dict[str, Any] | None = None

    @property
    def quarantined(self) -> bool:
        return bool(self.last_attempt and self.last_attempt.get("status") == "quarantined")

    @property
    def never_published(self) -> bool:
        return self.snapshot_id is None

    @property
    def problem(self) -> str | None:
        """Why this source needs a person's attention, or None."""
        if self.quarantined:
            return "quarantined"
        if self.never_published:
            return "never_published"
        if self.stale:
            return "stale"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problem": self.problem}


def next_due(schedule: str, published_at: datetime, tz: str) -> datetime:
    """The first scheduled run after the last publish (the cron is read in the configured zone)."""
    local = published_at.astimezone(ZoneInfo(tz))
    due: datetime = croniter(schedule, local).get_next(datetime)
    return due


INTERRUPTED = "the refresh stopped before it finished (killed or crashed): nothing of it was published"


def _interrupted(attempt: dict[str, Any], entry: dict[str, Any] | None) -> bool:
    """A refresh killed midway: its attempt still says running and its process is gone, or it says
    published (written just before the manifest swap) but the manifest never named its snapshot."""
    if attempt.get("status") == "running":
        return not alive(attempt.get("pid"))
    if attempt.get("status") == "published":
        named = {entry["snapshot_id"], *entry.get("previous", [])} if entry else set()
        return attempt.get("snapshot_id") not in named
    return False


def source_status(settings: Settings, now: datetime | None = None) -> list[SourceStatus]:
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    now = now or now_utc()
    return [_one(settings, store, manifest, src, now) for src in settings.sources]


def _one(settings: Settings, store: Store, manifest: dict[str, Any], src: SourceConfig, now: datetime) -> SourceStatus:
    st = SourceStatus(src.name, src.display_title, src.kind, src.owner, src.schedule)
    entry = manifest["sources"].get(src.name)
    if entry:
        st.snapshot_id = entry["snapshot_id"]
        st.published_at = entry["published_at"]
        st.rows = {e: int(i["rows"]) for e, i in entry["entities"].items()}
        folder = store.snapshots / src.name
        named = {entry["snapshot_id"], *entry.get("previous", [])}  # a killed run's folder is not a kept snapshot
        st.snapshots_kept = sum(1 for d in folder.iterdir() if d.name in named) if folder.exists() else 0
        if src.schedule:
            due = next_due(src.schedule, datetime.fromisoformat(entry["published_at"]), settings.timezone)
            st.next_due = due.isoformat()
            st.stale = now > due + timedelta(minutes=settings.quality.stale_grace_minutes)
    attempts = store.attempts(src.name, limit=1, running=True)
    if attempts:
        a = attempts[0]
        keys = ("snapshot_id", "status", "finished_at", "reasons", "warnings", "rejected_rows", "error", "way_forward")
        st.last_attempt = {k: a.get(k) for k in keys}  # error: connection | timeout | auth | ... on a failed extract
        if _interrupted(a, entry):
            st.last_attempt.update(status="interrupted", reasons=[INTERRUPTED])
    return st
