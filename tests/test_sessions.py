"""Server-side sessions (dashboard/access/sessions.py): idle and absolute expiry, sign-out and account
changes ending sessions, the signed cookie (a tampered one refused), the one-time ticket that sets it,
each user's language; lockout by account and by client address, and the client address a request
carries (the trusted proxy header's last hop, else the socket's peer)."""

# ruff: noqa: F811  (tests take the imported ``accounts`` fixture as an argument of the same name)
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from dashboard.access import auth, sessions
from dashboard.access.sessions import SessionError
from dashboard.core.config import CONFIG_ENV, Settings
from dashboard.query.security import Principal
from tests.test_security import PASSWORD, _fast_hashes, accounts  # noqa: F401 (fixtures: one account per role)

T0 = 1_000_000.0


def _open(settings: Settings, user: str, now: float = T0) -> str:
    account = auth.load_accounts(settings)[user]
    return sessions.open_session(settings, account.principal, account.fingerprint, "10.0.0.5", now=now)


def _reason(settings: Settings, sid: str, now: float) -> str:
    with pytest.raises(SessionError) as refused:
        auth.resume_session(settings, sid, now=now)
    return refused.value.reason


def test_a_session_lives_while_used_and_ends_when_idle_or_too_old(accounts: Settings) -> None:
    idle = accounts.security.session_idle_minutes * 60
    longest = accounts.security.session_max_hours * 3600
    sid = _open(accounts, "manager")
    assert auth.resume_session(accounts, sid, now=T0 + 60) == Principal("manager", "manager")
    assert auth.resume_session(accounts, sid, now=T0 + 60 + idle - 1).role == "manager"  # renewed by use
    assert _reason(accounts, sid, T0 + 120 + 2 * idle) == "idle"
    assert _reason(accounts, sid, T0 + 120 + 2 * idle) == "ended"  # and it is gone from the store

    busy = _open(accounts, "analyst")
    now = T0
    while now + idle / 2 < T0 + longest:  # used every half idle period, all day long
        now += idle / 2
        auth.resume_session(accounts, busy, now=now)
    assert _reason(accounts, busy, T0 + longest + 1) == "expired"


def test_sign_out_ends_the_session_for_every_tab_that_shares_it(accounts: Settings) -> None:
    sid = _open(accounts, "manager")
    other = _open(accounts, "manager")  # the same user in another browser
    sessions.end(accounts, sid)
    assert _reason(accounts, sid, T0 + 1) == "ended"
    assert auth.resume_session(accounts, other, now=T0 + 1).username == "manager"


@pytest.mark.parametrize("change", ["password", "removal"])
def test_a_password_change_or_removal_ends_all_of_the_accounts_sessions(accounts: Settings, change: str) -> None:
    mine = [_open(accounts, "sales"), _open(accounts, "sales")]
    theirs = _open(accounts, "analyst")
    if change == "password":
        auth.set_password(accounts, "sales", "a brand new password")
    else:
        auth.remove_user(accounts, "sales")
    assert [_reason(accounts, sid, T0 + 1) for sid in mine] == ["ended", "ended"]
    assert auth.resume_session(accounts, theirs, now=T0 + 1).username == "analyst"


def test_an_account_changed_behind_the_stores_back_ends_its_session(accounts: Settings) -> None:
    """A users file edited by hand (a role changed) is caught by the account's fingerprint."""
    sid = _open(accounts, "analyst")
    users = accounts.users_path.read_text(encoding="utf-8")
    accounts.users_path.write_text(users.replace('"role": "analyst"', '"role": "manager"'), encoding="utf-8")
    assert _reason(accounts, sid, T0 + 1) == "changed"


def test_the_cookie_is_signed_and_a_tampered_one_is_refused(accounts: Settings) -> None:
    sid = _open(accounts, "manager")
    cookie = sessions.cookie_value(accounts, sid)
    assert sessions.session_id(accounts, cookie) == sid
    assert sid.encode() not in sessions.store_path(accounts).read_bytes()  # the store keeps a hash only
    body, _, mac = cookie.rpartition(".")
    forged = [
        f"{body[:-1]}{'A' if body[-1] != 'A' else 'B'}.{mac}",  # another session id, the old signature
        f"{body}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}",  # the signature altered
        body,  # no signature
        "garbage",
        "",
    ]
    for value in forged:
        with pytest.raises(SessionError) as refused:
            sessions.session_id(accounts, value)
        assert refused.value.reason == "invalid", value


def test_a_ticket_sets_the_cookie_once_and_only_soon_after_sign_in(accounts: Settings) -> None:
    sid = _open(accounts, "manager")
    ticket = sessions.ticket(accounts, sid, now=T0)
    assert sessions.redeem(accounts, ticket, now=T0 + 5) == sessions.cookie_value(accounts, sid)
    assert sessions.redeem(accounts, ticket, now=T0 + 6) is None  # used
    late = sessions.ticket(accounts, sid, now=T0)
    assert sessions.redeem(accounts, late, now=T0 + sessions.TICKET_SECONDS + 1) is None
    ended = sessions.ticket(accounts, sid, now=T0)
    sessions.end(accounts, sid)
    assert sessions.redeem(accounts, ended, now=T0 + 1) is None
    assert sessions.redeem(accounts, "made-up", now=T0 + 1) is None


def test_the_language_is_remembered_per_user(accounts: Settings) -> None:
    assert sessions.language(accounts, "manager") is None
    sessions.remember_language(accounts, "manager", "en")
    sessions.remember_language(accounts, "analyst", "zh")
    sessions.remember_language(accounts, "manager", "en")
    assert (sessions.language(accounts, "manager"), sessions.language(accounts, "analyst")) == ("en", "zh")


def test_lockout_by_account_and_by_client_address(accounts: Settings) -> None:
    policy = accounts.security
    for i in range(policy.lockout_after):  # a guesser at 203.0.113.7 tries names that do not exist
        with pytest.raises(auth.AuthError, match="wrong"):
            auth.sign_in(accounts, f"nobody{i}", "guess", "203.0.113.7", now=T0 + i)
    with pytest.raises(auth.AuthError, match="too many") as locked:  # a real account, the right password
        auth.sign_in(accounts, "manager", PASSWORD, "203.0.113.7", now=T0 + 10)
    assert locked.value.retry_after == pytest.approx(policy.lockout_seconds - 10 + policy.lockout_after - 1)
    assert auth.sign_in(accounts, "manager", PASSWORD, "198.51.100.2", now=T0 + 10).role == "manager"
    for i in range(policy.lockout_after):  # the account, guessed from many addresses
        with pytest.raises(auth.AuthError):
            auth.sign_in(accounts, "analyst", "guess", f"192.0.2.{i}", now=T0 + 20 + i)
    with pytest.raises(auth.AuthError, match="too many"):
        auth.sign_in(accounts, "analyst", PASSWORD, "198.51.100.2", now=T0 + 30)
    auth.unlock(accounts, username="analyst", client="203.0.113.7")
    assert auth.sign_in(accounts, "analyst", PASSWORD, "203.0.113.7", now=T0 + 31).role == "analyst"


def test_the_client_address_is_the_trusted_proxys_last_hop_else_the_peer() -> None:
    header = [(b"X-Forwarded-For", b"6.6.6.6, 203.0.113.7"), (b"host", b"cockpit")]
    assert sessions.client_address(header, "10.0.0.1", "X-Forwarded-For") == "203.0.113.7"
    assert sessions.client_address(header, "10.0.0.1", None) == "10.0.0.1"  # no proxy: the header is the client's
    assert sessions.client_address([], "10.0.0.1", "X-Forwarded-For") == "10.0.0.1"
    assert sessions.client_address([(b"x-real-ip", b"198.51.100.9")], None, "X-Real-IP") == "198.51.100.9"
    # only this process's stamp makes the header an address (a client sends its own without server.py)
    assert sessions.unstamped(sessions.stamped("10.0.0.1")) == "10.0.0.1"
    assert sessions.unstamped("0123456789abcdef 10.6.6.6") is None and sessions.unstamped(None) is None


def _asgi(app: Any, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, list, list]:
    """One request through an ASGI app; returns the status, the response headers and the request headers
    the app saw."""
    seen: list = []
    sent: list = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("10.0.0.1", 50000),
        "server": ("cockpit", 80),
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        seen.extend(scope["headers"])
        await app(scope, receive, send)

    from dashboard.server import ClientAddress

    with ThreadPoolExecutor(1) as pool:  # a loop of its own (the browser tests' Playwright holds this thread's)
        pool.submit(asyncio.run, ClientAddress(spy)(scope, receive, send)).result()
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], start["headers"], seen


def test_the_server_stamps_the_client_address_and_sets_an_httponly_cookie(
    accounts: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    from dashboard.server import session_cookie

    monkeypatch.setenv(CONFIG_ENV, str(accounts.base_dir / "cockpit.toml"))
    app = Starlette(routes=[Route(f"/{sessions.COOKIE_ROUTE}", session_cookie, methods=["POST", "DELETE"])])
    route = f"/{sessions.COOKIE_ROUTE}"
    ticket = sessions.ticket(accounts, _open(accounts, "manager", now=__import__("time").time()))
    spoofed = {"host": "cockpit", "x-cockpit-client": "1.2.3.4"}
    status, _, seen = _asgi(app, "POST", route, {**spoofed, "origin": "https://evil.example"}, ticket.encode())
    assert status == 403  # another site cannot post a ticket
    [stamped] = [v.decode() for k, v in seen if k == b"x-cockpit-client"]  # the client's own claim dropped
    assert sessions.unstamped(stamped) == "10.0.0.1" and sessions.unstamped("1.2.3.4") is None
    status, headers, _ = _asgi(app, "POST", route, {**spoofed, "origin": "http://cockpit"}, ticket.encode())
    cookie = next(v.decode() for k, v in headers if k == b"set-cookie")
    assert status == 204 and cookie.startswith(f"{sessions.COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert _asgi(app, "POST", route, {"host": "cockpit"}, ticket.encode())[0] == 403  # once only
    status, headers, _ = _asgi(app, "DELETE", route, {"host": "cockpit"})
    assert status == 204 and any(k == b"set-cookie" and b"Max-Age=0" in v for k, v in headers)
