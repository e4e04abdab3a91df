"""The one module that reaches the data layer, cached: a Warehouse per config file
(``st.cache_resource``) and query results keyed by the manifest version (``st.cache_data``), so a
refresh shows on the next rerun without a restart and nothing stale is served.

Every query runs as the session's signed-in user (set by components/signin.py after checking the
session token); with no user set, a query is refused. The cache key holds the user's role and owner,
so one user's rows are never served to another.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import streamlit as st

from dashboard.core.config import Settings, find_config, load_settings
from dashboard.core.errors import AccessDenied, CockpitError
from dashboard.i18n import LANGS, Lang
from dashboard.ops.status import SourceStatus, source_status
from dashboard.query.metrics import Answer, Request, ask
from dashboard.query.security import Principal
from dashboard.query.warehouse import Warehouse


def _config_key() -> tuple[str, float]:
    """The config file in use and its modification time (an edited config is read again)."""
    path = find_config().resolve()
    return str(path), path.stat().st_mtime


@st.cache_resource(show_spinner=False)
def _settings(path: str, mtime: float) -> Settings:
    return load_settings(Path(path))


@st.cache_resource(show_spinner=False, on_release=lambda wh: wh.close())
def _warehouse(path: str, mtime: float) -> Warehouse:
    return Warehouse(_settings(path, mtime))


@st.cache_data(show_spinner=False, max_entries=512)
def _query(
    path: str, mtime: float, version: int, user: Principal, name: str, params: tuple[tuple[str, Any], ...]
) -> pl.DataFrame:
    # ``version`` is only part of the cache key: a new manifest means a new entry.
    return _warehouse(path, mtime).run_query(name, dict(params), user=user)


_USER_KEY = "_principal"


def set_user(principal: Principal | None) -> None:
    st.session_state[_USER_KEY] = principal


def user() -> Principal:
    """The session's signed-in user; refuses when there is none (nothing is read anonymously)."""
    principal = st.session_state.get(_USER_KEY)
    if not isinstance(principal, Principal):
        raise CockpitError("sign in first")
    return principal


def settings() -> Settings:
    return _settings(*_config_key())


def default_language() -> Lang:
    """The configured UI language; Chinese when the config cannot be read (the page says why)."""
    try:
        lang = settings().language
    except CockpitError:
        return "zh"
    return lang if lang in LANGS else "zh"


def warehouse() -> Warehouse:
    return _warehouse(*_config_key())


def query(name: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """A named query from ``queries/`` against the current manifest."""
    key = _config_key()
    version = _warehouse(*key).version
    return _query(*key, version, user(), name, tuple(sorted((params or {}).items())))


@st.cache_data(show_spinner=False, max_entries=256)
def _metrics(path: str, mtime: float, version: int, user: Principal, request: Request) -> Answer:
    return ask(_warehouse(path, mtime), request, user)


def metrics(request: Request) -> Answer:
    """The semantic layer's answer (dashboard/query/metrics.py) as the signed-in user may see it."""
    key = _config_key()
    return _metrics(*key, _warehouse(*key).version, user(), request)


@st.cache_resource(show_spinner=False, max_entries=2, on_release=lambda wh: wh.close())
def _as_of(path: str, mtime: float, version: int, source: str, snapshot_id: str) -> Warehouse:
    from dashboard.query.explore.asof import AsOfWarehouse

    return AsOfWarehouse(_settings(path, mtime), source, snapshot_id)


@st.cache_data(show_spinner=False, max_entries=256)
def _explore(
    path: str,
    mtime: float,
    version: int,
    user: Principal,
    sql: str,
    params: dict[str, Any],
    as_of: tuple[str, str] | None,
) -> pl.DataFrame:
    wh = _warehouse(path, mtime) if as_of is None else _as_of(path, mtime, version, *as_of)
    return wh.sql(sql, params, user=user)


def explore(sql: str, params: dict[str, Any], as_of: tuple[str, str] | None = None) -> pl.DataFrame:
    """Explore's generated SQL (dashboard/query/explore/models.py: unqualified relations, bound values) as the
    signed-in user; ``as_of`` = (source, snapshot id) runs it with that source at an earlier snapshot."""
    key = _config_key()
    return _explore(*key, _warehouse(*key).version, user(), sql, params, as_of)


def query_if_allowed(name: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame | None:
    """Like query(), or None when the user's role may not read what the query reads (a tile hides)."""
    try:
        return query(name, params)
    except AccessDenied:
        return None


def has_data() -> bool:
    """Whether any source has ever been published (a never-refreshed install has none)."""
    wh = warehouse()
    return wh.version > 0 and bool(wh.manifest.get("sources"))


def source_statuses() -> list[SourceStatus]:
    """Per-source freshness and last attempt; not cached, so a quarantine shows at once."""
    return source_status(settings())
