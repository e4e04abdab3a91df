"""Signed-in sessions kept on the server: one record per sign-in (idle and absolute expiry) in a SQLite
file under ``runs/``, the signed cookie that names it in a browser, the one-time ticket that hands a new
session to the browser's cookie, each user's language, and the client address of a request.

The store holds only a hash of each session id, so a copy of the file opens no session. Ending a session
deletes its record: every tab that shares the cookie is signed out on its next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dashboard.core.config import SESSION_SECRET_ENV, Settings, env
from dashboard.core.errors import CockpitError
from dashboard.query.security import Principal

COOKIE = "cockpit_session"
COOKIE_ROUTE = "api/session"  # served by dashboard/server.py; the ticket is posted to it
CLIENT_HEADER = "x-cockpit-client"  # set by dashboard/server.py on every request; a client's own is dropped
# prefixed to that header's value by this process, so an app served without server.py's middleware
# (`streamlit run dashboard/app.py`) does not take a client's own header for its address
STAMP = secrets.token_hex(8)
TICKET_SECONDS = 60  # a new session's ticket must reach the cookie route this soon, once
SEEN_EVERY = 30  # seconds: the last-use time is written at most this often, not on every page run
SSO = "sso"  # the fingerprint of a single sign-on session (no local account to compare)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS sessions (id_hash TEXT PRIMARY KEY, username TEXT NOT NULL, role TEXT NOT NULL,"
    " owner TEXT, fingerprint TEXT NOT NULL, client TEXT, created REAL NOT NULL, seen REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (username)",
    "CREATE TABLE IF NOT EXISTS tickets (ticket_hash TEXT PRIMARY KEY, sid TEXT NOT NULL, until REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS preferences (username TEXT PRIMARY KEY, lang TEXT NOT NULL)",
)


class SessionError(CockpitError):
    """A session that is not (or no longer) valid; ``reason``: invalid, idle, expired, ended or changed."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    owner: str | None
    fingerprint: str  # the account's when the session began (auth.Account.fingerprint), or SSO
    client: str | None
    created: float
    seen: float

    @property
    def principal(self) -> Principal:
        return Principal(self.username, self.role, self.owner)


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def store_path(settings: Settings) -> Path:
    return settings.data_path / "runs" / "sessions.sqlite3"


@contextlib.contextmanager
def _db(settings: Settings) -> Iterator[sqlite3.Connection]:
    """One connection per call (each page run is its own thread); one transaction, committed on success."""
    path = store_path(settings)
    fresh = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10)
    try:
        if fresh:
            os.chmod(path, 0o600)
            conn.execute("PRAGMA journal_mode=WAL")
        with conn:
            for statement in _SCHEMA:
                conn.execute(statement)
            yield conn
    finally:
        conn.close()


# -- records ----------------------------------------------------------------------------------------
def open_session(
    settings: Settings, principal: Principal, fingerprint: str, client: str | None, now: float | None = None
) -> str:
    """A new session for ``principal``; returns its id (kept by the browser session, never stored)."""
    now = time.time() if now is None else now
    sid = secrets.token_urlsafe(32)
    policy = settings.security
    with _db(settings) as conn:
        conn.execute(
            "DELETE FROM sessions WHERE seen < ? OR created < ?",
            (now - policy.session_idle_minutes * 60, now - policy.session_max_hours * 3600),
        )
        conn.execute("DELETE FROM tickets WHERE until < ?", (now,))
        conn.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (_hash(sid), principal.username, principal.role, principal.owner, fingerprint, client, now, now),
        )
    return sid


def check(settings: Settings, sid: str, now: float | None = None) -> Session:
    """The session ``sid`` names, its last use renewed; SessionError when ended, idle too long or too old."""
    now = time.time() if now is None else now
    policy = settings.security
    with _db(settings) as conn:
        row = conn.execute(
            "SELECT username, role, owner, fingerprint, client, created, seen FROM sessions WHERE id_hash = ?",
            (_hash(sid),),
        ).fetchone()
        if row is None:
            raise SessionError("the session has ended: please sign in again", "ended")  # nothing to commit
        session = Session(*row)
        idle = now - session.seen > policy.session_idle_minutes * 60
        too_old = now - session.created > policy.session_max_hours * 3600
        if idle or too_old:
            conn.execute("DELETE FROM sessions WHERE id_hash = ?", (_hash(sid),))
        elif now - session.seen >= SEEN_EVERY:
            conn.execute("UPDATE sessions SET seen = ? WHERE id_hash = ?", (now, _hash(sid)))
    if too_old:  # raised after the commit: the record is gone
        raise SessionError("the session reached its longest allowed time: please sign in again", "expired")
    if idle:
        raise SessionError("the session expired after inactivity: please sign in again", "idle")
    return session


def end(settings: Settings, sid: str) -> None:
    """Sign-out: the session ends in every tab that shares it."""
    with _db(settings) as conn:
        conn.execute("DELETE FROM sessions WHERE id_hash = ?", (_hash(sid),))


def end_all(settings: Settings, username: str) -> int:
    """Every session of ``username`` ends (a password change, an account removed); returns how many."""
    with _db(settings) as conn:
        return conn.execute("DELETE FROM sessions WHERE username = ?", (username,)).rowcount


# -- the browser's cookie ---------------------------------------------------------------------------
def _secret(settings: Settings) -> bytes:
    """The key that signs cookies: COCKPIT_SESSION_SECRET, else one made once under runs/ (first writer wins)."""
    given = env(SESSION_SECRET_ENV)
    if given:
        return given.encode()
    path = settings.data_path / "runs" / ".session_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # atomic: a reader never sees a half-written key
        tmp.unlink()
    return path.read_text().strip().encode()


def _mac(settings: Settings, sid: str) -> str:
    return hmac.new(_secret(settings), sid.encode(), hashlib.sha256).hexdigest()


def cookie_value(settings: Settings, sid: str) -> str:
    return f"{sid}.{_mac(settings, sid)}"


def session_id(settings: Settings, cookie: str) -> str:
    """The session id a cookie names; SessionError when its signature does not match (tampered, forged)."""
    sid, _, mac = cookie.rpartition(".")
    if not sid or not hmac.compare_digest(mac, _mac(settings, sid)):
        raise SessionError("the session is not valid: please sign in again", "invalid")
    return sid


def ticket(settings: Settings, sid: str, now: float | None = None) -> str:
    """A one-time ticket the browser trades for the session's cookie (dashboard/server.py)."""
    now = time.time() if now is None else now
    value = secrets.token_urlsafe(32)
    with _db(settings) as conn:
        conn.execute("INSERT INTO tickets VALUES (?, ?, ?)", (_hash(value), sid, now + TICKET_SECONDS))
    return value


def redeem(settings: Settings, value: str, now: float | None = None) -> str | None:
    """The cookie for the session a ticket was made for, once; None when used, late, unknown or ended."""
    now = time.time() if now is None else now
    with _db(settings) as conn:
        row = conn.execute("DELETE FROM tickets WHERE ticket_hash = ? RETURNING sid, until", (_hash(value),)).fetchone()
    if row is None or row[1] < now:
        return None
    try:
        check(settings, row[0], now)
    except SessionError:
        return None
    return cookie_value(settings, row[0])


# -- per-user preferences ---------------------------------------------------------------------------
def language(settings: Settings, username: str) -> str | None:
    with _db(settings) as conn:
        row = conn.execute("SELECT lang FROM preferences WHERE username = ?", (username,)).fetchone()
    return row[0] if row else None


def remember_language(settings: Settings, username: str, lang: str) -> None:
    with _db(settings) as conn:
        conn.execute(
            "INSERT INTO preferences VALUES (?, ?) ON CONFLICT (username) DO UPDATE SET lang = excluded.lang",
            (username, lang),
        )


# -- where a request comes from ---------------------------------------------------------------------
def stamped(address: str) -> str:
    return f"{STAMP} {address}"


def unstamped(value: str | None) -> str | None:
    """The address in a CLIENT_HEADER value this process stamped; None for anything else."""
    stamp, _, address = (value or "").partition(" ")
    return address if address and hmac.compare_digest(stamp, STAMP) else None


def client_address(headers: Iterable[tuple[bytes, bytes]], peer: str | None, trusted_header: str | None) -> str | None:
    """The client's address: the last hop the trusted reverse proxy's header names (its own addition; any
    earlier entry could come from the client), else the socket's peer."""
    if trusted_header:
        wanted = trusted_header.lower().encode()
        values = [v.decode("latin-1") for k, v in headers if k.lower() == wanted]
        if values:
            last = values[-1].split(",")[-1].strip()
            if last:
                return last[:64]
    return peer
