"""Saved Explore views, per user: ``<data_dir>/runs/explore_views/<user>.json`` maps a view's name to
its URL token (query/explore/models.py ``encode``), so a saved view and a shared link are the same thing."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from dashboard.core.config import Settings
from dashboard.core.store import atomic_write_text
from dashboard.query.explore.models import ExploreError, Spec, decode, encode

MAX_NAME = 80
MAX_VIEWS = 200


def views_path(settings: Settings, username: str) -> Path:
    """One file per user; the name is kept readable, and a hash keeps two similar names apart."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", username)[:40]
    digest = hashlib.sha256(username.encode("utf-8")).hexdigest()[:8]
    return settings.data_path / "runs" / "explore_views" / f"{safe}-{digest}.json"


def load_views(settings: Settings, username: str) -> dict[str, str]:
    """The user's saved views, name → token (none saved: empty)."""
    path = views_path(settings, username)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExploreError(f"{path}: the saved views cannot be read ({e})") from None
    views = data.get("views") if isinstance(data, dict) else None
    if not isinstance(views, dict):
        raise ExploreError(f'{path}: expected {{"views": {{name: view}}}}')
    return {str(k): str(v) for k, v in views.items()}


def open_view(settings: Settings, username: str, name: str) -> Spec:
    views = load_views(settings, username)
    if name not in views:
        raise ExploreError(f"no saved view named '{name[:MAX_NAME]}'")
    return decode(views[name])


def save_view(settings: Settings, username: str, name: str, spec: Spec) -> None:
    """Save (or replace) a view under a name; the last good file stays if anything is wrong."""
    name = name.strip()
    if not name:
        raise ExploreError("give the view a name")
    if len(name) > MAX_NAME:
        raise ExploreError(f"a view's name has at most {MAX_NAME} characters")
    views = load_views(settings, username)
    if name not in views and len(views) >= MAX_VIEWS:
        raise ExploreError(f"at most {MAX_VIEWS} saved views; delete one first")
    views[name] = encode(spec)
    _write(settings, username, views)


def delete_view(settings: Settings, username: str, name: str) -> None:
    views = load_views(settings, username)
    if views.pop(name, None) is not None:
        _write(settings, username, views)


def _write(settings: Settings, username: str, views: dict[str, str]) -> None:
    path = views_path(settings, username)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"user": username, "views": views}, ensure_ascii=False, indent=2))
