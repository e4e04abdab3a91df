"""Notification channels: e-mail over SMTP (TLS) and webhooks in the formats of WeCom (企业微信) group
robots, DingTalk robots (with their signing), Feishu bots and a generic JSON POST.

Every send is retried with back-off and then reported as a ``Delivery``; ``send`` never raises, so a
mail server or a robot being down never stops the scheduler. Credentials come from the environment
or ``.streamlit/secrets.toml``, never from cockpit.toml, and are never printed: errors name the
channel and the host only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import smtplib
import ssl
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from dashboard.core.config import CHANNEL_ENV, SMTP_PASSWORD_ENV, SMTP_USER_ENV, ChannelConfig, Settings, env
from dashboard.core.errors import ConfigError
from dashboard.ops.export import neutralize_payload

WECOM_LIMIT = 4000  # bytes: a WeCom markdown message holds at most 4096


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime: str = "text/csv"


@dataclass(frozen=True)
class Image:
    cid: str  # referenced from the HTML as src="cid:<cid>"
    png: bytes


@dataclass(frozen=True)
class Message:
    title: str
    text: str  # plain text: webhooks, and the e-mail's text part
    severity: str = "info"
    html: str | None = None  # e-mail only; built with html.escape by the caller
    attachments: tuple[Attachment, ...] = ()
    images: tuple[Image, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)  # extra fields for the generic JSON POST


@dataclass(frozen=True)
class Delivery:
    channel: str
    ok: bool
    attempts: int
    error: str | None = None

    def describe(self) -> str:
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        return f"{self.channel}: sent ({tries})" if self.ok else f"{self.channel}: FAILED after {tries}: {self.error}"


class SendError(Exception):
    """One failed try; its message is safe to print (no URL query, no credentials)."""


# -- secrets ---------------------------------------------------------------------------------------
def _secrets(settings: Settings) -> dict[str, Any]:
    path = Path(settings.notifications.secrets_file)
    path = path if path.is_absolute() else settings.base_dir / path
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def smtp_credentials(settings: Settings) -> tuple[str, str] | None:
    """(username, password) from the environment, else secrets.toml [smtp]; None: send without login."""
    user, password = env(SMTP_USER_ENV), env(SMTP_PASSWORD_ENV)
    if not user:
        smtp = _secrets(settings).get("smtp") or {}
        user, password = smtp.get("username"), smtp.get("password")
    return (str(user), str(password or "")) if user else None


def webhook_target(settings: Settings, channel: ChannelConfig) -> tuple[str, str | None]:
    """(url, signing secret): environment COCKPIT_CHANNEL_<NAME>_URL / _SECRET, else secrets.toml
    [channels.<name>], else the url in cockpit.toml."""
    var = CHANNEL_ENV.format(name=channel.name.upper())
    stored = (_secrets(settings).get("channels") or {}).get(channel.name) or {}
    url = env(f"{var}_URL") or stored.get("url") or channel.url
    secret = env(f"{var}_SECRET") or stored.get("secret")
    if not url:
        raise ConfigError(
            f"channel '{channel.name}' has no url: set {var}_URL, or url under [channels.{channel.name}] "
            f"in {settings.notifications.secrets_file}"
        )
    return str(url), (str(secret) if secret else None)


def host_of(url: str) -> str:
    """What an error may show of a webhook URL: its host (the path and query carry the token)."""
    return urllib.parse.urlsplit(url).netloc or "?"


# -- webhook formats -------------------------------------------------------------------------------
def _markdown(msg: Message) -> str:
    return f"**{msg.title}**\n\n{msg.text}"


def webhook_request(kind: str, url: str, secret: str | None, msg: Message, now: float) -> tuple[str, dict[str, Any]]:
    """The URL to POST to and the JSON body, in the robot's own format (signed when it has a secret)."""
    if kind == "wecom":
        content = _markdown(msg).encode("utf-8")[:WECOM_LIMIT].decode("utf-8", errors="ignore")
        return url, {"msgtype": "markdown", "markdown": {"content": content}}
    if kind == "dingtalk":
        body = {"msgtype": "markdown", "markdown": {"title": msg.title, "text": f"#### {msg.title}\n\n{msg.text}"}}
        if secret:  # 加签: HMAC-SHA256 of "timestamp\nsecret" keyed by the secret, in the query
            stamp = str(int(now * 1000))
            digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
            sign = urllib.parse.quote_plus(base64.b64encode(digest))
            url = f"{url}{'&' if '?' in url else '?'}timestamp={stamp}&sign={sign}"
        return url, body
    if kind == "feishu":
        body = {"msg_type": "text", "content": {"text": f"{msg.title}\n{msg.text}"}}
        if secret:  # 签名校验: HMAC-SHA256 keyed by "timestamp\nsecret" over nothing, in the body
            stamp = str(int(now))
            digest = hmac.new(f"{stamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
            body = {"timestamp": stamp, "sign": base64.b64encode(digest).decode(), **body}
        return url, body
    # the generic JSON POST feeds other systems (a sheet, a ticket): no text in it starts a formula
    return url, neutralize_payload({"title": msg.title, "text": msg.text, "severity": msg.severity, **msg.data})


def _check_reply(kind: str, status: int, raw: bytes) -> None:
    """Robots answer HTTP 200 with an error code in the body when they refuse a message."""
    if kind == "webhook":
        return
    try:
        reply = json.loads(raw or b"{}")
    except json.JSONDecodeError:
        raise SendError(f"HTTP {status}, not a JSON reply") from None
    code = reply.get("errcode", reply.get("code", reply.get("StatusCode", 0)))
    if code not in (0, "0", None):
        raise SendError(f"refused: {code} {reply.get('errmsg') or reply.get('msg') or ''}".strip())


def post_webhook(settings: Settings, channel: ChannelConfig, msg: Message, now: float) -> None:
    url, secret = webhook_target(settings, channel)
    target, body = webhook_request(channel.kind, url, secret, msg, now)
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    req = urllib.request.Request(target, data=data, headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(req, timeout=settings.notifications.timeout_seconds) as resp:
            _check_reply(channel.kind, resp.status, resp.read())
    except urllib.error.HTTPError as e:
        raise SendError(f"{host_of(url)}: HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise SendError(f"{host_of(url)}: {type(reason).__name__}: {reason}") from None
    except SendError as e:
        raise SendError(f"{host_of(url)}: {e}") from None


# -- e-mail ----------------------------------------------------------------------------------------
def email_message(settings: Settings, to: list[str], msg: Message) -> EmailMessage:
    smtp = settings.notifications.smtp
    assert smtp is not None  # config validation: e-mail needs [notifications.smtp]
    mail = EmailMessage()
    mail["Subject"] = msg.title
    mail["From"] = smtp.sender
    mail["To"] = ", ".join(to)
    mail["Date"] = formatdate(localtime=True)
    mail["Message-ID"] = make_msgid(domain=smtp.sender.rpartition("@")[2] or None)
    mail.set_content(msg.text)
    if msg.html is not None:
        mail.add_alternative(msg.html, subtype="html")
        html_part = mail.get_body(("html",))
        for image in msg.images:
            assert html_part is not None  # just added
            html_part.add_related(image.png, maintype="image", subtype="png", cid=f"<{image.cid}>")
    for a in msg.attachments:
        maintype, _, subtype = a.mime.partition("/")
        mail.add_attachment(a.content, maintype=maintype, subtype=subtype, filename=a.filename)
    return mail


def send_email(settings: Settings, to: list[str], msg: Message) -> None:
    smtp = settings.notifications.smtp
    if smtp is None:
        raise ConfigError("e-mail needs [notifications.smtp] in cockpit.toml")
    context = ssl.create_default_context(cafile=_path(settings, smtp.ca_file))
    mail = email_message(settings, to, msg)
    try:
        client: smtplib.SMTP
        if smtp.tls == "ssl":
            client = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_seconds, context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_seconds)
        with client:
            if smtp.tls == "starttls":
                client.starttls(context=context)
            creds = smtp_credentials(settings)
            if creds:
                client.login(*creds)
            client.send_message(mail)
    except smtplib.SMTPAuthenticationError as e:
        raise SendError(f"{smtp.host}:{smtp.port}: login refused ({e.smtp_code})") from None
    except (smtplib.SMTPException, OSError) as e:
        raise SendError(f"{smtp.host}:{smtp.port}: {type(e).__name__}: {e}") from None


def _path(settings: Settings, rel: str | None) -> str | None:
    if rel is None:
        return None
    p = Path(rel)
    return str(p if p.is_absolute() else settings.base_dir / p)


# -- sending with retries --------------------------------------------------------------------------
Sleep = Callable[[float], None]


def channel(settings: Settings, name: str) -> ChannelConfig:
    for c in settings.notifications.channels:
        if c.name == name:
            return c
    known = ", ".join(c.name for c in settings.notifications.channels) or "none"
    raise ConfigError(f"no notification channel named '{name}' (channels: {known})")


def send(settings: Settings, name: str, msg: Message, sleep: Sleep = time.sleep) -> Delivery:
    """Send ``msg`` through the channel ``name``, retrying with back-off; never raises."""

    def once() -> None:
        ch = channel(settings, name)
        if ch.kind == "email":
            send_email(settings, ch.to, msg)
        else:
            post_webhook(settings, ch, msg, time.time())

    return _with_retries(settings, name, once, sleep)


def send_to_addresses(
    settings: Settings, to: list[str], msg: Message, label: str, sleep: Sleep = time.sleep
) -> Delivery:
    """E-mail to a recipient list (a report's), retried like a channel; never raises."""
    return _with_retries(settings, label, lambda: send_email(settings, to, msg), sleep)


def _with_retries(settings: Settings, label: str, once: Callable[[], None], sleep: Sleep) -> Delivery:
    n = settings.notifications
    error: str | None = None
    for attempt in range(n.retries + 1):
        try:
            once()
            return Delivery(label, True, attempt + 1)
        except ConfigError as e:  # a missing URL or mail server does not fix itself: no retry
            return Delivery(label, False, attempt + 1, e.message)
        except SendError as e:
            error = str(e)
        if attempt < n.retries:
            sleep(n.retry_backoff_seconds * 2**attempt)
    return Delivery(label, False, n.retries + 1, error)
