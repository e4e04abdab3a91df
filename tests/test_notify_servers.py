"""Real local servers the notification tests send to: an SMTP server (aiosmtpd) that requires STARTTLS
and a login, and an HTTP server playing the WeCom / DingTalk / Feishu robots and a generic endpoint.
No tests here: fixtures and helpers the scheduler, alert, notify and report tests share."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message as MailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dashboard.core.config import Settings, load_settings

SMTP_USER, SMTP_PASSWORD = "cockpit-bot", "s3cret-Passw0rd"


@dataclass
class Mailbox:
    messages: list[MailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls_sessions: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.tls_sessions.append(session.ssl is not None)
        raw = envelope.original_content or envelope.content
        self.messages.append(email.message_from_bytes(raw, policy=email.policy.default))
        return "250 OK"


@dataclass
class Smtp:
    host: str
    port: int
    ca_file: Path
    box: Mailbox


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Smtp]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = Mailbox()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            SMTP_USER,
            SMTP_PASSWORD,
        )
        if ok:
            box.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)  # not handled: the server answers 535

    port = _free_port()
    controller = Controller(
        box,
        hostname="localhost",
        port=port,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    try:
        yield Smtp("localhost", port, cert, box)
    finally:
        controller.stop()


@dataclass
class Hooks:
    base: str
    received: list[dict[str, Any]] = field(default_factory=list)  # path, query, body
    failures: dict[str, int] = field(default_factory=dict)  # path → how many more requests get HTTP 500

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [r["body"] for r in self.received if r["path"] == path]


REPLIES = {
    "/wecom": {"errcode": 0, "errmsg": "ok"},
    "/dingtalk": {"errcode": 0, "errmsg": "ok"},
    "/feishu": {"code": 0},
}


@pytest.fixture
def http_server() -> Iterator[Hooks]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    hooks = Hooks(f"http://127.0.0.1:{server.server_address[1]}")
    server.hooks = hooks  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hooks
    finally:
        server.shutdown()
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        hooks: Hooks = self.server.hooks  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        hooks.received.append({"path": parts.path, "query": parse_qs(parts.query), "body": body})
        if hooks.failures.get(parts.path, 0) > 0:
            hooks.failures[parts.path] -= 1
            self.send_response(500)
            self.end_headers()
            return
        reply = json.dumps(REPLIES.get(parts.path, {"ok": True})).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def closed_port_url() -> str:
    """An address where nothing listens: every request is refused."""
    return f"http://127.0.0.1:{_free_port()}/nobody"


def notifications_toml(smtp: Smtp | None, hooks: Hooks | None, extra: str = "") -> str:
    parts = ["[notifications]", "retries = 2", "retry_backoff_seconds = 0", "timeout_seconds = 5"]
    if smtp:
        parts += [
            "[notifications.smtp]",
            f'host = "{smtp.host}"',
            f"port = {smtp.port}",
            'tls = "starttls"',
            'sender = "cockpit@example.com"',
            f'ca_file = "{smtp.ca_file}"',
            "timeout_seconds = 10",
        ]
        parts += ["[[notifications.channels]]", 'name = "ops_mail"', 'kind = "email"', 'to = ["ops@example.com"]']
    if hooks:
        for kind, path in (("wecom", "wecom"), ("dingtalk", "dingtalk"), ("feishu", "feishu"), ("webhook", "hook")):
            parts += ["[[notifications.channels]]", f'name = "ops_{kind}"', f'kind = "{kind}"']
            parts.append(f'url = "{hooks.base}/{path}{"?access_token=tok123" if kind == "dingtalk" else ""}"')
    return "\n".join(parts) + "\n" + extra


def with_config(settings: Settings, toml: str) -> Settings:
    """The company's cockpit.toml with ``toml`` appended (tables after the sources)."""
    path = settings.base_dir / "cockpit.toml"
    path.write_text(path.read_text(encoding="utf-8") + "\n" + toml, encoding="utf-8")
    return load_settings(path)


@pytest.fixture
def smtp_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COCKPIT_SMTP_USERNAME", SMTP_USER)
    monkeypatch.setenv("COCKPIT_SMTP_PASSWORD", SMTP_PASSWORD)


def html_part(msg: MailMessage) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/html part")


def attachments(msg: MailMessage) -> dict[str, bytes]:
    out = {}
    for part in msg.walk():
        name = part.get_filename()
        if name:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            out[name] = payload
    return out
