"""What `cockpit serve` runs: Streamlit's web app around app.py, plus ``/healthz`` (200 while page runs
keep finishing, 503 when one is stuck; dashboard/ops/watchdog.py) and systemd's watchdog feed; the
session cookie route (``/api/session``) and the client address every request carries to the app."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from streamlit.runtime.pages_manager import PagesManager

from dashboard.access import sessions
from dashboard.core.config import Settings, find_config, load_settings
from dashboard.core.errors import CockpitError
from dashboard.ops import watchdog

_loaded: dict[tuple[str, float], Settings] = {}


async def healthz(request: Request) -> JSONResponse:
    health = watchdog.PROGRESS.health()
    return JSONResponse(health.as_dict(), status_code=200 if health.healthy else 503)


def _settings() -> Settings | None:
    """The config in use, read again when the file changes; None when it cannot be read (the app says why)."""
    try:
        path = find_config().resolve()
        key = (str(path), path.stat().st_mtime)
        if key not in _loaded:
            _loaded.clear()
            _loaded[key] = load_settings(path)
        return _loaded[key]
    except (CockpitError, OSError):
        return None


class ClientAddress:
    """Puts the client's address (the trusted proxy header's last hop, else the socket's peer) in the
    ``x-cockpit-client`` header of every request and WebSocket; one a client sends itself is dropped."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            settings = _settings()
            trusted = settings.security.trusted_proxy_header if settings else None
            headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != sessions.CLIENT_HEADER.encode()]
            peer = scope["client"][0] if scope.get("client") else None
            client = sessions.client_address(headers, peer, trusted)
            if client:
                headers.append((sessions.CLIENT_HEADER.encode(), sessions.stamped(client).encode("latin-1", "replace")))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def _same_origin(request: Request) -> bool:
    """A cross-site page cannot post a ticket of its own here (sign-in CSRF)."""
    origin = request.headers.get("origin")
    return origin is None or origin.split("://", 1)[-1] == request.headers.get("host")


async def session_cookie(request: Request) -> Response:
    """POST: trade a new session's one-time ticket for its HttpOnly cookie. DELETE: drop the cookie
    (signing out ends the session itself; this only clears the browser)."""
    settings = _settings()
    if settings is None or not _same_origin(request):
        return Response(status_code=403)
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    if request.method == "DELETE":
        response = Response(status_code=204)
        response.delete_cookie(sessions.COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
        return response
    ticket = (await request.body()).decode("ascii", "replace").strip()[:128]
    cookie = await run_in_threadpool(sessions.redeem, settings, ticket)
    if cookie is None:
        return Response(status_code=403)
    response = Response(status_code=204)
    max_age = settings.security.session_max_hours * 3600
    response.set_cookie(sessions.COOKIE, cookie, max_age, path="/", secure=secure, httponly=True, samesite="lax")
    return response


watchdog.feed_systemd()
# app.py names the pages (st.navigation). Until a session first does, Streamlit would treat pages/ as its
# folder of pages: every run drawing the file names as an English sidebar menu (under the sign-in form too).
PagesManager.uses_pages_directory = False
app = st.App(
    Path(__file__).with_name("app.py"),
    routes=[Route("/healthz", healthz), Route(f"/{sessions.COOKIE_ROUTE}", session_cookie, methods=["POST", "DELETE"])],
    middleware=[Middleware(ClientAddress)],
)
