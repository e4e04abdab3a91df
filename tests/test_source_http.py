"""http sources against a local API server that paginates three ways, wants a token (and revokes it),
rate-limits with 429 + Retry-After, fails intermittently with 503, stalls past the time-out, and
serves malformed pages."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import polars as pl
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.ops.status import source_status
from dashboard.pipeline.refresh import refresh

TOKEN = "static-Token-123456"
CLIENT_SECRET = "client-Secret-987654"
LEADS = [
    {"id": f"W{i}", "created": f"2026-03-{i:02d}T10:00:00+08:00", "channel": "官网", "mobile": "+86 138-0013-8000",
     "form": {"fields": ["name", "phone"]}}
    for i in range(1, 8)
]


class Api:
    """What the server does; tests switch behaviours on and read the request log."""

    def __init__(self) -> None:
        self.log: list[tuple[float, str, str | None]] = []  # (time, path?query, Authorization)
        self.fail_every = 0  # every n-th request answers 503
        self.rate_limit_once: set[str] = set()  # paths answering 429 (Retry-After: 1) the first time
        self.stall_once: set[str] = set()  # paths that stall past the client's time-out the first time
        self.malformed: dict[str, Any] = {}  # path?query → the body served instead
        self.tokens_issued = 0
        self.token_uses = 0
        self.revoke_after = 0  # the OAuth token stops working after this many uses (0: never)
        self.lock = threading.Lock()

    def valid_token(self) -> str:
        return f"oauth-{self.tokens_issued}"


def _page(rows: list[dict[str, Any]], page: int, size: int = 3) -> list[dict[str, Any]]:
    return rows[(page - 1) * size : page * size]


def handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest's output clean
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            if form.get("client_secret") != [CLIENT_SECRET]:
                return self._send(401, {"error": "invalid_client"})
            with api.lock:
                api.tokens_issued += 1
                api.token_uses = 0
            return self._send(200, {"access_token": api.valid_token(), "expires_in": 3600})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            auth = self.headers.get("Authorization")
            later_page = q.get("page", "1") != "1" or "cursor" in q or "after" in q
            with api.lock:  # what this request gets, decided in order: 503, 429, a stall
                api.log.append((time.monotonic(), self.path, auth))
                fail = bool(api.fail_every) and len(api.log) % api.fail_every == 0
                limited = not fail and later_page and url.path in api.rate_limit_once
                api.rate_limit_once.discard(url.path) if limited else None
                stall = not fail and not limited and later_page and url.path in api.stall_once
                api.stall_once.discard(url.path) if stall else None
            if url.path.startswith("/oauth/"):
                with api.lock:
                    api.token_uses += 1
                    revoked = api.revoke_after and api.token_uses > api.revoke_after
                if auth != f"Bearer {api.valid_token()}" or revoked:
                    return self._send(401, {"error": "token expired"})
            elif auth != f"Bearer {TOKEN}":
                return self._send(401, {"error": "unauthorized"})
            if fail:
                return self._send(503, {"error": "busy"})
            if limited:
                return self._send(429, {"error": "slow down"}, {"Retry-After": "1"})
            if stall:
                time.sleep(1.5)
            if self.path in api.malformed:
                return self._send(200, api.malformed[self.path])
            path = url.path.removeprefix("/oauth")
            if path == "/paged":
                page = int(q.get("page", "1"))
                return self._send(200, {"data": _page(LEADS, page), "page": page})
            if path == "/cursor":
                i = int(q.get("cursor", "0"))
                nxt = i + 3 if i + 3 < len(LEADS) else None
                return self._send(200, {"result": {"items": LEADS[i : i + 3]}, "meta": {"next_cursor": nxt}})
            if path == "/linked":
                after = int(q.get("after", "0"))
                nxt = f"/linked?after={after + 3}" if after + 3 < len(LEADS) else None
                return self._send(200, {"results": LEADS[after : after + 3], "links": {"next": nxt}})
            if path == "/endless":
                i = int(q.get("cursor", "0"))
                items = [{**LEADS[0], "id": f"E{i}"}]
                return self._send(200, {"result": {"items": items}, "meta": {"next_cursor": i + 1}})
            if path == "/html":
                return self._send(200, b"<html>maintenance</html>")
            return self._send(404, {"error": "no such endpoint"})

    return H


@pytest.fixture
def api() -> Iterator[tuple[Api, str]]:
    state = Api()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


MAPPING = 'columns = { lead_id = "id", created_at = "created", channel = "channel", phone = "mobile" }'
CURSOR = 'pagination = "cursor"\n  records = "result.items"\n  next = "meta.next_cursor"'
PAGINATION = {
    "paged": 'pagination = "page"\n  records = "data"',
    "linked": 'pagination = "next_link"\n  records = "results"\n  next = "links.next"',
}


def config(root: Path, url: str, path: str = "paged", auth: str = 'token = "env:FORMS_TOKEN"',
           extra: str = "") -> Settings:
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "cockpit.toml"
    cfg.write_text(f"""
data_dir = "data"
language = "en"

[[sources]]
name = "forms"
kind = "http"
{auth}
timeout_seconds = 1
backoff_seconds = 0.05
max_retries = 4
{extra}
  [[sources.tables]]
  entity = "leads"
  url = "{url}/{path}"
  {PAGINATION.get(path, CURSOR)}
  {MAPPING}
""", encoding="utf-8")
    return load_settings(cfg)


def assert_nowhere(settings: Settings, secret: str) -> None:
    """Not in any file the cockpit wrote: attempts, validation results, manifest, history."""
    for f in settings.data_path.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f"the secret is in {f}"


def leads(settings: Settings) -> pl.DataFrame:
    store = Store(settings.data_path)
    entry = store.read_manifest()["sources"]["forms"]
    return pl.read_parquet(store.abs(entry["entities"]["leads"]["file"]))


@pytest.mark.parametrize("pagination", ["paged", "cursor", "linked"])
def test_every_page_is_read(api: tuple[Api, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            pagination: str) -> None:
    state, url = api
    monkeypatch.setenv("FORMS_TOKEN", TOKEN)
    settings = config(tmp_path, url, pagination)
    result = refresh(settings)
    assert result.exit_code == 0, result.sources[0].reasons
    got = leads(settings)
    assert sorted(got["lead_id"]) == [f"W{i}" for i in range(1, 8)]
    assert got["phone"].to_list() == ["13800138000"] * 7
    assert got["channel"].unique().to_list() == ["官网"]
    assert len(state.log) == (4 if pagination == "paged" else 3)  # the page pagination ends on an empty page


def test_rate_limits_failures_and_time_outs_are_retried(api: tuple[Api, str], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    state, url = api
    monkeypatch.setenv("FORMS_TOKEN", TOKEN)
    state.rate_limit_once.add("/cursor")
    state.stall_once.add("/cursor")
    state.fail_every = 3
    settings = config(tmp_path, url, "cursor")
    result = refresh(settings)
    assert result.exit_code == 0, result.sources[0].reasons
    assert leads(settings).height == 7
    # the 429 said "Retry-After: 1": the next request came no sooner
    i = next(i for i, (_t, p, _a) in enumerate(state.log) if "cursor=3" in p)
    assert state.log[i + 1][0] - state.log[i][0] >= 1.0
    assert len(state.log) > 3  # the 503s and the stalled request were asked again


def test_a_malformed_page_rejects_the_snapshot_naming_url_and_field(
    api: tuple[Api, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = api
    monkeypatch.setenv("FORMS_TOKEN", TOKEN)
    settings = config(tmp_path, url, "paged")
    assert refresh(settings).exit_code == 0
    before = Store(settings.data_path).read_manifest()["sources"]["forms"]["snapshot_id"]

    state.malformed["/paged?page=2"] = {"data": {"rows": "not a list"}}
    res = refresh(settings).sources[0]
    assert not res.published
    assert res.reasons == [f"{url}/paged: field 'data' on page 2 is dict, not a list of records"]
    state.malformed["/paged?page=2"] = {"items": []}
    assert refresh(settings).sources[0].reasons == [f"{url}/paged: field 'data' is missing from page 2"]
    state.malformed["/paged?page=2"] = {"data": [{"id": "W9"}, "oops"]}
    assert refresh(settings).sources[0].reasons == [
        f"{url}/paged: field 'data' on page 2: record 2 is str, not an object"
    ]
    assert Store(settings.data_path).read_manifest()["sources"]["forms"]["snapshot_id"] == before
    assert leads(settings).height == 7  # the last good snapshot still serves

    html = config(tmp_path / "html", url, "html")
    assert refresh(html).sources[0].reasons == [f"{url}/html: the response is not JSON (it starts with "
                                                 "'<html>maintenance</html>')"]


def test_cursor_field_of_the_wrong_type_and_too_many_pages(api: tuple[Api, str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    state, url = api
    monkeypatch.setenv("FORMS_TOKEN", TOKEN)
    state.malformed["/cursor"] = {"result": {"items": LEADS[:3]}, "meta": {"next_cursor": {"x": 1}}}
    res = refresh(config(tmp_path / "a", url, "cursor")).sources[0]
    assert res.reasons == [f"{url}/cursor: field 'meta.next_cursor' on page 1 is dict, not a cursor"]

    res = refresh(config(tmp_path / "b", url, "endless", extra="max_pages = 5")).sources[0]
    assert not res.published and "more than max_pages = 5 pages" in res.reasons[0]
    assert len(state.log) == 1 + 5


def test_wrong_token_is_an_auth_error_and_the_token_is_never_shown(
    api: tuple[Api, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _state, url = api
    monkeypatch.setenv("FORMS_TOKEN", "wrong-" + TOKEN)
    settings = config(tmp_path, url, "paged")
    res = refresh(settings).sources[0]
    assert not res.published and res.reasons[0].startswith(f"forms ({url}/paged): authentication failed: HTTP 401")
    st = source_status(settings)[0]
    assert st.last_attempt is not None and st.last_attempt["error"] == "auth"
    assert_nowhere(settings, TOKEN)

    monkeypatch.delenv("FORMS_TOKEN")
    res = refresh(settings).sources[0]
    assert res.reasons == ["forms: token: the environment variable FORMS_TOKEN is not set"]


def test_oauth_token_is_fetched_and_refreshed_when_revoked(api: tuple[Api, str], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    state, url = api
    monkeypatch.setenv("FORMS_CLIENT_ID", "cockpit")
    monkeypatch.setenv("FORMS_CLIENT_SECRET", CLIENT_SECRET)
    state.revoke_after = 2  # the API drops each token after two pages
    auth = (f'token_url = "{url}/token"\nclient_id = "env:FORMS_CLIENT_ID"\n'
            'client_secret = "env:FORMS_CLIENT_SECRET"')
    settings = config(tmp_path, f"{url}/oauth", "paged", auth=auth)
    result = refresh(settings)
    assert result.exit_code == 0, result.sources[0].reasons
    assert leads(settings).height == 7 and state.tokens_issued == 2

    monkeypatch.setenv("FORMS_CLIENT_SECRET", "wrong-" + CLIENT_SECRET)
    res = refresh(settings).sources[0]
    assert not res.published and "authentication failed: token request refused (HTTP 401)" in res.reasons[0]
    assert_nowhere(settings, CLIENT_SECRET)


def test_unreachable_api_is_a_connection_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    monkeypatch.setenv("FORMS_TOKEN", TOKEN)
    settings = config(tmp_path, f"http://127.0.0.1:{port}", "paged")
    res = refresh(settings).sources[0]
    assert "connection failed: gave up after 5 attempts" in res.reasons[0]
    assert source_status(settings)[0].last_attempt["error"] == "connection"  # type: ignore[index]
