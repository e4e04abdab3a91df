"""Sign-in: local accounts (argon2 hashes in a users file), lockout after repeated failures by account
and by client address, the server-side sessions a sign-in starts (kept by dashboard/access/sessions.py,
ended with the account's password or the account), and the mapping of single sign-on identities to roles.

Nothing here stores or logs a password: the users file holds argon2id hashes only, and errors name
the account, never the password.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from dashboard.access import sessions
from dashboard.access.sessions import SessionError
from dashboard.core.config import Settings
from dashboard.core.errors import CockpitError, ConfigError
from dashboard.query.security import ROLES, SYSTEM, Principal

USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_PASSWORD = 8
MAX_LOCKOUT_SECONDS = 86_400
_HASHER = PasswordHasher()
# Verified when the account does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))
_lock = threading.Lock()


class AuthError(CockpitError):
    """A sign-in that did not succeed; ``retry_after`` seconds when an account or client is locked."""

    exit_code = 2

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# -- accounts ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    username: str
    role: str
    password_hash: str
    owner: str | None = None
    created_at: str = ""

    @property
    def principal(self) -> Principal:
        return Principal(self.username, self.role, self.owner)

    @property
    def fingerprint(self) -> str:
        """Changes when the password, role or owner changes: older sessions stop working."""
        raw = f"{self.password_hash}|{self.role}|{self.owner}".encode()
        return hashlib.sha256(raw).hexdigest()[:16]


def load_accounts(settings: Settings) -> dict[str, Account]:
    path = settings.users_path
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        users = raw["users"]
        accounts = {}
        for name, entry in users.items():
            account = Account(username=name, **entry)
            Principal(account.username, account.role, account.owner)  # validates role and owner
            accounts[name] = account
        return accounts
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: cannot read the users file ({e})") from None


def _save_accounts(settings: Settings, accounts: Mapping[str, Account]) -> None:
    path = settings.users_path
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"users": {n: {k: v for k, v in asdict(a).items() if k != "username"} for n, a in sorted(accounts.items())}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(body, f, ensure_ascii=False, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")


def add_user(settings: Settings, username: str, role: str, password: str, owner: str | None = None) -> Account:
    if not USERNAME.fullmatch(username):
        raise AuthError(f"'{username}' is not a valid user name (letters, digits, _ . @ -; at most 64)")
    if role not in ROLES:
        raise AuthError(f"unknown role '{role}' (roles: {', '.join(ROLES)})")
    if role == "sales" and not owner:
        raise AuthError("a sales user needs --owner: their name as the CRM's owner column writes it")
    _check_password(password)
    with _file_lock(settings.users_path):
        accounts = load_accounts(settings)
        if username in accounts:
            raise AuthError(f"user '{username}' already exists")
        account = Account(username, role, _HASHER.hash(password), owner, _now_iso())
        _save_accounts(settings, {**accounts, username: account})
    return account


def remove_user(settings: Settings, username: str) -> None:
    with _file_lock(settings.users_path):
        accounts = load_accounts(settings)
        if username not in accounts:
            raise AuthError(f"no user named '{username}'")
        del accounts[username]
        _save_accounts(settings, accounts)
    sessions.end_all(settings, username)


def set_password(settings: Settings, username: str, password: str) -> None:
    _check_password(password)
    with _file_lock(settings.users_path):
        accounts = load_accounts(settings)
        if username not in accounts:
            raise AuthError(f"no user named '{username}'")
        old = accounts[username]
        accounts[username] = Account(username, old.role, _HASHER.hash(password), old.owner, old.created_at)
        _save_accounts(settings, accounts)
    sessions.end_all(settings, username)


def demo_accounts(settings: Settings) -> list[tuple[str, str, str, str | None]]:
    """One account per role for the demo (user = role, password = "<role>-demo"); the sales account owns
    the customers of the owner with the most leads. Existing accounts are left alone. Returns what was made."""
    import duckdb

    from dashboard.query.warehouse import Warehouse

    wh = Warehouse(settings)
    try:
        top = wh.sql(
            "SELECT owner FROM leads WHERE owner IS NOT NULL GROUP BY owner ORDER BY count(*) DESC, owner LIMIT 1",
            user=SYSTEM,
        )
    except (CockpitError, duckdb.Error):
        top = None
    finally:
        wh.close()
    owner = str(top.item()) if top is not None and top.height else None
    existing = load_accounts(settings)
    made = []
    for role in ROLES:
        if role in existing or (role == "sales" and owner is None):
            continue
        add_user(settings, role, role, f"{role}-demo", owner if role == "sales" else None)
        made.append((role, role, f"{role}-demo", owner if role == "sales" else None))
    return made


# -- lockout ----------------------------------------------------------------------------------------
def _lockout_path(settings: Settings) -> Path:
    return settings.data_path / "runs" / "auth_lockout.json"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """One writer at a time, across threads (sessions) and processes (the CLI next to the server)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock, open(path.with_name(f".{path.name}.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_lockouts(path: Path) -> dict[str, dict[str, float]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_lockouts(path: Path, data: dict[str, dict[str, float]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def _lock_keys(username: str, client: str | None) -> list[str]:
    return [f"user:{username}"] + ([f"client:{client}"] if client else [])


def sign_in(settings: Settings, username: str, password: str, client: str | None, now: float | None = None) -> Account:
    """The account, when the password is right and neither the account nor the client is locked."""
    now = time.time() if now is None else now
    path = _lockout_path(settings)
    keys = _lock_keys(username, client)
    with _file_lock(path):
        state = _read_lockouts(path)
        locked_until = max((state.get(k, {}).get("locked_until", 0.0) for k in keys), default=0.0)
        if locked_until > now:
            wait = locked_until - now
            raise AuthError(f"too many failed sign-ins: try again in {int(wait) + 1} s", retry_after=wait)
        account = load_accounts(settings).get(username)
        ok = _verify(account.password_hash if account else _DUMMY_HASH, password) and account is not None
        if ok:
            for k in keys:
                state.pop(k, None)
        else:
            policy = settings.security
            for k in keys:
                entry = state.setdefault(k, {"failures": 0, "locked_until": 0.0})
                entry["failures"] += 1
                over = entry["failures"] - policy.lockout_after
                if over >= 0:
                    entry["locked_until"] = now + min(policy.lockout_seconds * 2**over, MAX_LOCKOUT_SECONDS)
        _write_lockouts(path, state)
    if not ok or account is None:
        raise AuthError("wrong user name or password")
    return account


def unlock(settings: Settings, username: str | None = None, client: str | None = None) -> None:
    """Forget the failures of an account and/or a client address (an administrator's release)."""
    path = _lockout_path(settings)
    with _file_lock(path):
        state = _read_lockouts(path)
        for key in ([f"user:{username}"] if username else []) + ([f"client:{client}"] if client else []):
            state.pop(key, None)
        _write_lockouts(path, state)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# -- sessions ---------------------------------------------------------------------------------------
def start_session(settings: Settings, account: Account | None, principal: Principal, client: str | None) -> str:
    """A server-side session for ``principal`` (dashboard/access/sessions.py); ``account`` None for single
    sign-on users (no local account). Returns the session id."""
    return sessions.open_session(settings, principal, account.fingerprint if account else sessions.SSO, client)


def resume_session(settings: Settings, sid: str, now: float | None = None) -> Principal:
    """The user of session ``sid``; SessionError when it ended or expired, or its account changed since."""
    session = sessions.check(settings, sid, now)
    if session.fingerprint != sessions.SSO:
        account = load_accounts(settings).get(session.username)
        if account is None or account.fingerprint != session.fingerprint:
            sessions.end(settings, sid)
            raise SessionError("the account changed or was removed: please sign in again", "changed")
    return session.principal


# -- single sign-on ---------------------------------------------------------------------------------
def sso_principal(settings: Settings, claims: Mapping[str, Any]) -> Principal | None:
    """The role an identity provider's user gets (first match in admin, manager, analyst, sales order),
    or None when the config names neither their e-mail nor any of their groups."""
    sso = settings.security.sso
    email = str(claims.get("email") or "").strip().lower()
    groups = claims.get(sso.groups_claim) or []
    if isinstance(groups, str):
        groups = [groups]
    identities = {email} | {f"group:{g}" for g in groups}
    for role in ROLES:
        allowed = {entry.strip().lower() if "@" in entry else entry.strip() for entry in getattr(sso, role)}
        if identities & allowed:
            owner = (str(claims.get(sso.owner_claim) or "") or None) if role == "sales" else None
            if role == "sales" and not owner:
                return None
            return Principal(email or str(claims.get("sub") or "sso-user"), role, owner)
    return None


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
