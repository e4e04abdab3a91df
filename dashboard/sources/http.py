"""``http`` sources: JSON APIs read page by page (page number, cursor or next link).

Authentication is a header with a token from the environment or the secrets file, or an OAuth2
client-credentials token fetched from ``token_url`` and fetched again when it expires or is refused.
429 waits as long as Retry-After says; 5xx answers, time-outs and dropped connections are retried
with a doubling back-off. A page that is not the expected shape rejects the snapshot with the URL
and the field named. Every value arrives as text (nested values as JSON text); standardization types them.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

import polars as pl

from dashboard.core.config import SourceConfig, TableConfig
from dashboard.core.errors import SourceError
from dashboard.sources import access
from dashboard.sources.incremental import ExtractContext

MAX_RETRY_AFTER = 300.0  # seconds: an API asking for a longer pause fails this refresh instead
USER_AGENT = "crm-cockpit"


def dig(body: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path ("" = the body itself)."""
    node = body
    for part in [p for p in path.split(".") if p]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v) if isinstance(v, float) else str(v)
    return json.dumps(v, ensure_ascii=False)


@dataclass
class Client:
    source: SourceConfig
    secrets: list[str] = field(default_factory=list)
    token: str | None = None
    expires: float = float("inf")
    refreshable: bool = False
    base_dir: Any = None

    @classmethod
    def for_source(cls, source: SourceConfig, ctx: ExtractContext) -> Client:
        c = cls(source, base_dir=ctx.base_dir)
        if source.token:
            c.token = access.resolve(source.token, ctx.base_dir, f"{source.name}: token")
            c.secrets.append(c.token)
        if source.token_url:
            c.refreshable = True
            c._fetch_token()
        return c

    def _fetch_token(self) -> None:
        src = self.source
        assert src.token_url and src.client_id and src.client_secret  # config validation
        cid = access.resolve(src.client_id, self.base_dir, f"{src.name}: client_id")
        secret = access.resolve(src.client_secret, self.base_dir, f"{src.name}: client_secret")
        self.secrets += [cid, secret]
        form = urlencode({"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}).encode()
        status, body = self._send(src.token_url, data=form, auth=False)
        if status in (400, 401, 403):
            raise access.unavailable(f"{src.name} ({src.token_url})", f"token request refused (HTTP {status})",
                                     self.secrets, kind="auth")
        found, token = dig(body, "access_token")
        if not found or not isinstance(token, str) or not token:
            raise SourceError(f"{src.token_url}: field 'access_token': missing in the token response")
        self.token = token
        self.secrets.append(token)
        lifetime = body.get("expires_in") if isinstance(body, dict) else None
        self.expires = time.monotonic() + float(lifetime) - 30 if isinstance(lifetime, int | float) else float("inf")

    def get(self, url: str) -> Any:
        if self.refreshable and time.monotonic() >= self.expires:
            self._fetch_token()
        status, body = self._send(url)
        if status == 401 and self.refreshable:  # the token was revoked or expired early: one new one
            self._fetch_token()
            status, body = self._send(url)
        if status in (401, 403):
            raise access.unavailable(f"{self.source.name} ({_plain(url)})", f"HTTP {status} from the API",
                                     self.secrets, kind="auth")
        if status >= 400:
            raise SourceError(f"{_plain(url)}: HTTP {status}: {access.redact(_snippet(body), self.secrets)}")
        return body

    def _send(self, url: str, data: bytes | None = None, auth: bool = True) -> tuple[int, Any]:
        """(status, parsed JSON) after retrying 429, 5xx, time-outs and dropped connections."""
        src = self.source
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **src.headers}
        if auth and self.token:
            headers[src.auth_header] = f"{src.auth_scheme} {self.token}".strip()
        where = f"{src.name} ({_plain(url)})"
        delay, last = src.backoff_seconds, ""
        kind = "connection"
        for attempt in range(src.max_retries + 1):
            wait = delay * (2**attempt)
            try:
                req = urllib.request.Request(url, data=data, headers=headers)
                with urllib.request.urlopen(req, timeout=src.timeout_seconds) as resp:
                    return resp.status, _json(url, resp.read())
            except urllib.error.HTTPError as e:
                payload = e.read()
                if e.code == 429:
                    wait = _retry_after(e.headers.get("Retry-After"), wait)
                    if wait > MAX_RETRY_AFTER:
                        raise access.unavailable(where, f"rate limited: the API asks to wait {wait:.0f} s",
                                                 self.secrets, kind="rate_limited") from None
                    last, kind = "HTTP 429 (rate limited)", "rate_limited"
                elif e.code >= 500:
                    last, kind = f"HTTP {e.code}", "connection"
                else:
                    return e.code, _json(url, payload, strict=False)
            except TimeoutError as e:
                last, kind = f"no answer within {src.timeout_seconds:g} s ({e})", "timeout"
            except urllib.error.URLError as e:
                reason = e.reason
                is_timeout = isinstance(reason, TimeoutError)
                last, kind = str(reason), ("timeout" if is_timeout else "connection")
            except (ConnectionError, OSError) as e:
                last, kind = str(e), "connection"
            if attempt < src.max_retries:
                time.sleep(wait)
        raise access.unavailable(where, f"gave up after {src.max_retries + 1} attempts; last: {last}", self.secrets,
                                 kind=kind)


def _plain(url: str) -> str:
    """The URL without its query string (which may carry an API key someone put there)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def _snippet(body: Any) -> str:
    return (body if isinstance(body, str) else json.dumps(body, ensure_ascii=False))[:200]


def _json(url: str, raw: bytes, strict: bool = True) -> Any:
    try:
        return json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        if not strict:
            return raw[:200].decode("utf-8", errors="replace")
        head = raw[:60].decode("utf-8", errors="replace")
        raise SourceError(f"{_plain(url)}: the response is not JSON (it starts with {head!r})") from None


def _retry_after(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return default


def _with_params(url: str, params: dict[str, Any]) -> str:
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _records(url: str, body: Any, table: TableConfig, page: int) -> list[dict[str, Any]]:
    name = table.records or "(the response)"
    found, rows = dig(body, table.records)
    if not found:
        raise SourceError(f"{_plain(url)}: field '{name}' is missing from page {page}")
    if not isinstance(rows, list):
        what = type(rows).__name__
        raise SourceError(f"{_plain(url)}: field '{name}' on page {page} is {what}, not a list of records")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise SourceError(
                f"{_plain(url)}: field '{name}' on page {page}: record {i + 1} is {type(r).__name__}, not an object"
            )
    return rows


def _next(url: str, body: Any, table: TableConfig, page: int) -> Any:
    assert table.next
    found, value = dig(body, table.next)
    if not found or value in (None, ""):
        return None
    wanted = (str,) if table.pagination == "next_link" else (str, int)
    if not isinstance(value, wanted) or isinstance(value, bool):
        raise SourceError(
            f"{_plain(url)}: field '{table.next}' on page {page} is {type(value).__name__}, not a "
            f"{'link' if table.pagination == 'next_link' else 'cursor'}"
        )
    return value


def read(source: SourceConfig, table: TableConfig, ctx: ExtractContext) -> tuple[pl.DataFrame, str]:
    """Every page of one endpoint as a frame of text columns; returns it and the endpoint for messages."""
    assert table.url is not None  # config validation
    client = Client.for_source(source, ctx)
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = dict(table.params)
    url, page = table.url, 0
    while True:
        if page == source.max_pages:
            raise SourceError(
                f"{_plain(table.url)}: more than max_pages = {source.max_pages} pages; the snapshot would be "
                "incomplete (raise max_pages if the API really has that many)"
            )
        if table.pagination == "page":
            params[table.page_param] = table.first_page + page
        page += 1
        request = url if table.pagination == "next_link" and page > 1 else _with_params(url, params)
        body = client.get(request)
        got = _records(request, body, table, page)
        rows += got
        if table.pagination == "none":
            break
        if table.pagination == "page":
            if not got:
                break
            continue
        nxt = _next(request, body, table, page)
        if nxt is None:
            break
        if table.pagination == "cursor":
            params[table.cursor_param] = nxt
        else:
            url = urljoin(request, str(nxt))
    columns: dict[str, list[str | None]] = {}
    for i, r in enumerate(rows):
        for k, v in r.items():
            columns.setdefault(k, [None] * i).append(_text(v))
        for col in columns.values():
            if len(col) < i + 1:
                col.append(None)
    frame = pl.DataFrame({k: pl.Series(k, v, dtype=pl.String) for k, v in columns.items()}, height=len(rows))
    return frame, _plain(table.url)
