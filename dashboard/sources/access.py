"""Credentials for database and API sources, and the errors that say a source could not be reached.

A credential is never written in cockpit.toml: the config names where it lives, ``env:VARIABLE``
(an environment variable) or ``secret:key.path`` (a key of ``.streamlit/secrets.toml`` beside the
config). Every message built from a driver's or server's error goes through ``redact`` first, so
no password, token or connection URL reaches a log, a status or an error.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from dashboard.core.config import env
from dashboard.core.errors import SourceError

SECRETS_FILE = Path(".streamlit") / "secrets.toml"
ErrorKind = str  # connection | timeout | auth | source


class SourceUnavailable(SourceError):
    """The source could not be reached or refused us: nothing was read, the current snapshot stays."""

    def __init__(self, message: str, kind: ErrorKind) -> None:
        super().__init__(message)
        self.kind = kind


def resolve(ref: str, base_dir: Path, what: str) -> str:
    """The value ``env:NAME`` or ``secret:a.b`` points at; a clear error naming the reference otherwise."""
    scheme, _, name = ref.partition(":")
    if scheme == "env":
        value = env(name)
        if not value:
            raise SourceUnavailable(f"{what}: the environment variable {name} is not set", "auth")
        return value
    path = base_dir / SECRETS_FILE
    try:
        node: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceUnavailable(f"{what}: {SECRETS_FILE} not found beside the config (key {name})", "auth") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        # the decoder's message quotes no value, only the position
        raise SourceUnavailable(f"{what}: {SECRETS_FILE} is not valid TOML: {e}", "auth") from None
    for part in name.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, str) or not node:
        raise SourceUnavailable(f"{what}: {SECRETS_FILE} has no text value at {name}", "auth")
    return node


def secret_parts(value: str) -> list[str]:
    """The pieces of a credential that must never be shown: itself, and a URL's password in both spellings."""
    parts = [value]
    try:
        password = urlsplit(value).password
    except ValueError:
        password = None
    if password:
        parts += [password, unquote(password), quote(unquote(password), safe="")]
    return [p for p in parts if len(p) >= 3]


_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@\s]*@", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(password|passwd|pwd|token|secret)(\s*[=:]\s*)\S+", re.IGNORECASE)


def redact(text: str, secrets: list[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        text = text.replace(s, "***")
    text = _URL_PASSWORD.sub(r"\g<scheme>\g<user>:***@", text)
    return _KEYWORD_PASSWORD.sub(r"\1\2***", text)


def safe_url(url: str) -> str:
    """host:port/database of a connection URL, for messages: never the user's password."""
    try:
        parts = urlsplit(url)
        where = f"{parts.hostname or 'localhost'}{f':{parts.port}' if parts.port else ''}{parts.path}"
    except ValueError:
        return "(the configured URL)"
    return where


def classify(message: str) -> ErrorKind:
    """connection | timeout | auth from a driver's message (the drivers share no error codes)."""
    low = message.lower()
    # HTTP 401/403 as whole numbers: a port such as 40123 in the message is not a refusal
    if any(w in low for w in ("password", "authentication", "access denied", "permission denied")) or re.search(
        r"(?<![\d.:])\b40[13]\b(?![\d.])", low
    ):
        return "auth"
    if any(w in low for w in ("timeout", "timed out", "statement_timeout", "canceling statement", "max_statement")):
        return "timeout"
    return "connection"


LEAD = {"connection": "connection failed", "timeout": "timed out", "auth": "authentication failed"}


def unavailable(
    what: str, error: BaseException | str, secrets: list[str], kind: ErrorKind | None = None
) -> SourceUnavailable:
    """One error shape for every unreachable source: '<what>: <kind lead>: <redacted driver message>'."""
    text = " ".join(str(error).split())
    kind = kind or classify(text)
    return SourceUnavailable(f"{what}: {LEAD.get(kind, kind)}: {redact(text, secrets)}", kind)
