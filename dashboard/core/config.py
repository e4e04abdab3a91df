"""The typed settings: the one place that reads cockpit.toml and the environment.

Every error names the key that is wrong, e.g. ``sources[2] (trade_show).tables[0].entity``.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dashboard.core.entities import ALWAYS, ENTITIES, STAGES, Condition, applies_when, parse_condition
from dashboard.core.errors import ConfigError

# -- the environment: every variable the cockpit reads (README, "Environment variables") ------------
CONFIG_ENV = "COCKPIT_CONFIG"  # the config file when --config is not given
NO_AUTH_ENV = "COCKPIT_NO_AUTH"  # "1": sign-in is off (set by `cockpit serve --no-auth` for its server)
SESSION_SECRET_ENV = "COCKPIT_SESSION_SECRET"  # the key that signs sessions (else one kept under runs/)
BROWSER_ENV = "COCKPIT_BROWSER"  # the Chrome/Chromium kaleido drives; "none" sends reports without charts
SMTP_USER_ENV = "COCKPIT_SMTP_USERNAME"
SMTP_PASSWORD_ENV = "COCKPIT_SMTP_PASSWORD"
CHANNEL_ENV = "COCKPIT_CHANNEL_{name}"  # + _URL / _SECRET: a notification channel's webhook and signing secret
NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"  # systemd's (Type=notify): where `cockpit serve` says it is ready and alive
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"  # systemd's WatchdogSec=, in microseconds: how often to say so
# "YYYY-MM-DD": the day a refresh's derived build takes as today (golden records' lifecycle, churn's last day
# read) instead of the clock's date in [timezone]: to replay a day, or to hold one day across a long run
AS_OF_ENV = "COCKPIT_AS_OF"
CRASH_ENV = "COCKPIT_CRASH_AT"  # test hook: SIGKILL this process at the named point
PAUSE_ENV = "COCKPIT_PAUSE_AT"  # test hook: "point:seconds" sleeps there (a signal can arrive mid-refresh)
CONFIG_NAME = "cockpit.toml"
SOURCE_KINDS = ("csv", "excel", "parquet", "json", "demo", "postgres", "mysql", "http", "drop_folder")
DATABASE_KINDS = ("postgres", "mysql")
# the coded dimensions a [labels.<dimension>] table may name (dashboard/i18n/values.py labels each)
LABEL_DIMENSIONS = (
    "channel", "stage", "lifecycle", "category", "kind", "outcome", "risk_band", "segment", "record_kind",
    "match_rule", "entity", "source_kind", "source", "region", "status", "classification", "consent", "rfm",
    "value_tier", "campaign", "industry", "source_owner",
)  # fmt: skip
# Keys that only some kinds take: a key given for another kind is a mistake worth naming.
_KIND_KEYS = {
    "database": (DATABASE_KINDS, {"table", "query", "watermark", "delete_column", "connection", "batch_rows"}),
    "http": (
        ("http",),
        {
            "url",
            "records",
            "pagination",
            "page_param",
            "cursor_param",
            "next",
            "params",
            "first_page",
            "token",
            "token_url",
            "client_id",
            "client_secret",
            "auth_header",
            "auth_scheme",
            "headers",
            "max_pages",
            "max_retries",
            "backoff_seconds",
        },
    ),
    "timeout": ((*DATABASE_KINDS, "http"), {"timeout_seconds"}),
}
_CREDENTIAL = re.compile(r"(env|secret):[A-Za-z_][A-Za-z0-9_.-]*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TableConfig(_Strict):
    """One input (a glob of files) mapped onto one canonical entity."""

    entity: str
    path: str = ""  # file kinds: a glob; drop_folder: the folder watched
    columns: dict[str, str] = Field(default_factory=dict)
    constants: dict[str, str | int | float] = Field(default_factory=dict)
    sheet: str | None = None  # excel: sheet name (default: the first)
    encoding: str | None = None  # csv: force an encoding instead of detecting it
    delimiter: str | None = None  # csv: force a delimiter instead of detecting it
    date_format: str | None = None  # strptime format tried before the built-in ones
    key: list[str] = Field(default_factory=list)  # columns identifying a row: upserts (incremental, drop_folder)
    table: str | None = None  # postgres/mysql: the table ([schema.]name) to extract ...
    query: str | None = None  # ... or a SELECT whose rows are the table
    watermark: str | None = None  # incremental: a column that grows on every change (updated_at, an id)
    delete_column: str | None = None  # a row whose value is true (or set, if not boolean) is a deletion
    url: str | None = None  # http: the endpoint
    records: str = ""  # http: dotted path to the list of records in a response ("" = the response itself)
    pagination: Literal["none", "page", "cursor", "next_link"] = "none"
    page_param: str = "page"  # http page pagination: the page-number parameter
    first_page: int = 1
    cursor_param: str = "cursor"  # http cursor pagination: the parameter the cursor is sent in
    next: str | None = None  # http cursor/next_link: dotted path to the next cursor or URL in a response
    params: dict[str, str | int | float] = Field(default_factory=dict)  # http: fixed query parameters

    @field_validator("key", mode="before")
    @classmethod
    def _key_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, v: str | None) -> str | None:
        if v is not None and re.match(r"[a-z]+://[^/@]*:[^/@]*@", v, re.IGNORECASE):
            raise ValueError('the URL carries a password: give it with token = "env:..." instead')
        return v

    @model_validator(mode="after")
    def _pagination(self) -> TableConfig:
        if self.pagination in ("cursor", "next_link") and not self.next:
            raise ValueError(f"pagination = '{self.pagination}' needs next = \"<dotted path in the response>\"")
        if self.watermark and not self.key:
            raise ValueError("watermark needs key (the columns identifying a row, for the upserts)")
        return self

    @field_validator("entity")
    @classmethod
    def _known_entity(cls, v: str) -> str:
        if v not in ENTITIES:
            raise ValueError(f"unknown entity '{v}' (expected one of: {', '.join(ENTITIES)})")
        return v

    @model_validator(mode="after")
    def _known_columns(self) -> TableConfig:
        known = ENTITIES[self.entity].column_names
        for where, names in (("columns", self.columns), ("constants", self.constants)):
            for name in names:
                if name not in known:
                    raise ValueError(
                        f"{where}: '{name}' is not a column of {self.entity} (columns: {', '.join(known)})"
                    )
        return self


Share = Annotated[float, Field(ge=0, le=1)]


class SourceQualityConfig(_Strict):
    """A source's own gate thresholds (``[sources.quality]``): the common checks without writing GX JSON.
    Column keys are a column name (every entity of the source that has it) or ``"entity.column"``."""

    min_rows: int | dict[str, int] | None = None  # fewer rows than this (per entity, or { entity = n }) blocks
    max_null_share: dict[str, Share] = Field(default_factory=dict)  # column → largest share of empty values
    max_invalid_share: dict[str, Share] = Field(default_factory=dict)  # column → of filled values failing its checks
    not_before: date | None = None  # dates before this day are out of range
    not_after: date | None = None  # dates after this day are out of range
    future_days: int = Field(365, ge=0)  # dates more than this many days after the refresh are out of range
    max_out_of_range_share: Share = 0.1  # out-of-range dates above this share of a column block; up to it: a warning

    @field_validator("max_null_share", "max_invalid_share", mode="before")
    @classmethod
    def _flatten(cls, v: Any) -> Any:
        """TOML reads { leads.created_at = 0.06 } as a table in a table: back to "leads.created_at"."""
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = {}
        for k, inner in v.items():
            if isinstance(inner, dict):
                out.update({f"{k}.{col}": share for col, share in inner.items()})
            else:
                out[k] = inner
        return out

    @field_validator("min_rows")
    @classmethod
    def _min_rows(cls, v: int | dict[str, int] | None) -> int | dict[str, int] | None:
        for n in [v] if isinstance(v, int) else (v or {}).values():
            if n < 0:
                raise ValueError(f"must be 0 or more (got {n})")
        return v

    @model_validator(mode="after")
    def _range(self) -> SourceQualityConfig:
        if self.not_before and self.not_after and self.not_before >= self.not_after:
            raise ValueError(f"not_before ({self.not_before}) must be earlier than not_after ({self.not_after})")
        return self

    def check_columns(self, entities: list[str]) -> None:
        """Every column and entity the thresholds name belongs to one of ``entities`` (the source's)."""
        has = f"(it has: {', '.join(entities)})"
        if isinstance(self.min_rows, dict):
            for e in self.min_rows:
                if e not in entities:
                    raise ValueError(f"quality.min_rows.{e}: the source has no {e} table {has}")
        for key in ("max_null_share", "max_invalid_share"):
            for name in getattr(self, key):
                entity, _, column = name.rpartition(".")
                scope = [entity] if entity else entities
                if entity and entity not in entities:
                    raise ValueError(f"quality.{key}.{name}: the source has no {entity} table {has}")
                if not any(column in ENTITIES[e].column_names for e in scope):
                    known = "; ".join(f"{e}: {', '.join(ENTITIES[e].column_names)}" for e in scope)
                    raise ValueError(f"quality.{key}.{name}: '{column}' is not a column of {known}")


class SourceConfig(_Strict):
    name: str
    kind: str
    title: str | None = None
    owner: str | None = None
    schedule: str | None = None  # cron expression
    priority: int = 100  # lower wins when sources disagree (identity survivorship)
    tables: list[TableConfig] = Field(default_factory=list)
    quality: SourceQualityConfig = Field(default_factory=lambda: SourceQualityConfig.model_validate({}))
    # postgres / mysql / http: credentials are references (env:VARIABLE, secret:key), never values
    connection: str | None = None  # postgres/mysql: where the connection URL is
    timeout_seconds: float = Field(60.0, gt=0)  # connect, each statement, each HTTP request
    batch_rows: int = Field(100_000, ge=100)  # postgres/mysql: rows per Arrow batch written
    token: str | None = None  # http: a bearer token
    token_url: str | None = None  # http: OAuth2 client-credentials token endpoint (token fetched, refreshed)
    client_id: str | None = None
    client_secret: str | None = None
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    headers: dict[str, str] = Field(default_factory=dict)  # http: extra request headers (nothing secret)
    max_pages: int = Field(1000, ge=1)  # http: more pages than this rejects the snapshot
    max_retries: int = Field(5, ge=0)  # http: on 429, 5xx and time-outs
    backoff_seconds: float = Field(1.0, ge=0)  # http: first retry delay, doubled each time

    @field_validator("connection", "token", "client_id", "client_secret")
    @classmethod
    def _reference(cls, v: str | None) -> str | None:
        if v is not None and not _CREDENTIAL.fullmatch(v):
            raise ValueError(
                "credentials are never written in cockpit.toml: give env:VARIABLE (an environment variable) "
                "or secret:key (a key of .streamlit/secrets.toml)"
            )
        return v

    @model_validator(mode="after")
    def _keys_for_kind(self) -> SourceConfig:
        given = set(self.model_fields_set)
        for i, t in enumerate(self.tables):
            given |= {f"tables[{i}].{k}" for k in t.model_fields_set}
        for kinds, keys in _KIND_KEYS.values():
            if self.kind not in kinds:
                for k in sorted(given):
                    if k.rsplit(".", 1)[-1] in keys:
                        raise ValueError(f"{k}: only {' / '.join(kinds)} sources take this key")
        for i, t in enumerate(self.tables):
            where = f"tables[{i}]"
            if self.kind in DATABASE_KINDS and (t.table is None) == (t.query is None):
                raise ValueError(f'{where}: give either table = "name" or query = "SELECT ..."')
            elif self.kind == "http" and not t.url:
                raise ValueError(f"{where}.url: required key is missing")
            elif self.kind not in (*DATABASE_KINDS, "http") and not t.path:
                raise ValueError(f"{where}.path: required key is missing")
            elif self.kind in (*DATABASE_KINDS, "http") and t.path:
                raise ValueError(f"{where}.path: a {self.kind} source reads no files (remove path)")
        if self.kind in DATABASE_KINDS and not self.connection:
            raise ValueError('connection: required key is missing (connection = "env:VARIABLE" or "secret:key")')
        if self.token_url and not (self.client_id and self.client_secret):
            raise ValueError("token_url needs client_id and client_secret (env:... or secret:...)")
        self.quality.check_columns(list(dict.fromkeys(t.entity for t in self.tables)))
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9_]+", v):
            raise ValueError(f"'{v}' must be lower-case letters, digits and _ only")
        return v

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        if v not in SOURCE_KINDS:
            raise ValueError(f"unknown kind '{v}' (expected one of: {', '.join(SOURCE_KINDS)})")
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            from croniter import croniter

            if not croniter.is_valid(v):
                raise ValueError(f"'{v}' is not a valid cron expression")
        return v

    @field_validator("tables")
    @classmethod
    def _tables(cls, v: list[TableConfig]) -> list[TableConfig]:
        if not v:
            raise ValueError("a source needs at least one [[sources.tables]]")
        return v

    @property
    def display_title(self) -> str:
        return self.title or self.name


class QualityConfig(_Strict):
    fill_rate_threshold: float = Field(0.8, ge=0, le=1)  # cells below are flagged
    validity_threshold: float = Field(0.9, ge=0, le=1)
    stale_grace_minutes: int = Field(60, ge=0)  # lateness tolerated past the next scheduled run
    uniqueness_threshold: float = Field(1.0, ge=0, le=1)  # a record key less unique than this is flagged
    allow_quarantine_actions: bool = False  # "publish anyway" / "discard" of a quarantined snapshot
    dictionary: str | None = None  # data dictionary TOML (default: the bundled dashboard/core/data_dictionary.toml)
    data_docs: bool = True  # build GX Data Docs of the latest validations after each refresh
    # "<source>.<entity>.<column>" = the rows the field applies to, for a company's own export ("channel in (a, b)",
    # "stage = won", "company is filled", "lead_id is empty"; "always" = every row; "never" = optional, not judged):
    # its fill rate is judged over them. Source "*": every source's (a named source's wins). Added to the canonical
    # schema's own (core/entities.py APPLIES_WHEN), or overriding one.
    applies_when: dict[str, str] = {}

    @field_validator("applies_when")
    @classmethod
    def _conditions(cls, v: dict[str, str]) -> dict[str, str]:
        for key, text in v.items():
            field = key.partition(".")[2]
            entity, _, column = field.partition(".")
            if entity not in ENTITIES or column not in ENTITIES[entity].column_names:
                raise ValueError(f"applies_when '{key}': write '<source>.<entity>.<column>' with a canonical entity")
            if text != ALWAYS:
                try:
                    parse_condition(entity, text)
                except ValueError as e:
                    raise ValueError(f"applies_when '{key}': {e}") from None
        return v

    def applies(self, source: str, entity: str) -> dict[str, Condition]:
        """column → the rows of ``source``'s ``entity`` it applies to, where that is not every row."""
        mine: dict[str, str] = {}
        for prefix in (f"*.{entity}.", f"{source}.{entity}."):
            mine |= {k.removeprefix(prefix): text for k, text in self.applies_when.items() if k.startswith(prefix)}
        return applies_when(entity, mine)


Survivorship = Literal["recent", "priority", "complete"]
SURVIVORSHIP: tuple[Survivorship, ...] = ("recent", "priority", "complete")


class IdentityConfig(_Strict):
    probabilistic: bool = True  # pass 2 (Splink): links records exact rules miss; false = exact rules only
    match_threshold: float = Field(0.95, gt=0, lt=1)  # a pair at or above this match probability links
    overrides: str | None = None  # CSV of manual merge / split / detach lines; they win over both passes
    # a build resolves only new, changed and affected records against the kept pairs and parameters, unless
    # more than this share of the records is new, changed or gone, or the parameters are retrain_days old:
    # then it re-resolves all records with parameters trained again (so does `cockpit refresh --full`)
    retrain_changed_share: float = Field(0.2, gt=0, le=1)
    retrain_days: int = Field(30, ge=1)
    model: str | None = None  # a Splink model file (`cockpit identity export-model`): used, never retrained
    # survivorship of golden attributes, in order: recent (newest record), priority (source priority), complete
    survivorship: list[Survivorship] = Field(default_factory=lambda: list(SURVIVORSHIP), min_length=1)


class AnalyticsConfig(_Strict):
    attribution_half_life_days: float = Field(7.0, gt=0)  # time-decay attribution: a touch this old counts half
    kiosk_refresh_seconds: int = Field(60, ge=5)  # big-screen mode: how often the numbers refresh
    # interaction channels that are not marketing touches (e.g. sales follow-up calls)
    attribution_exclude_channels: list[str] = Field(default_factory=list)


class SsoConfig(_Strict):
    """Single sign-on through st.login (OIDC, configured in .streamlit/secrets.toml [auth]): which
    identities get which role. Entries are e-mail addresses or "group:<name>" (the provider's groups claim)."""

    admin: list[str] = Field(default_factory=list)
    manager: list[str] = Field(default_factory=list)
    analyst: list[str] = Field(default_factory=list)
    sales: list[str] = Field(default_factory=list)
    groups_claim: str = "groups"  # the ID token claim that lists the user's groups
    owner_claim: str = "name"  # the claim whose value is a sales user's owner name in the CRM


class SecurityConfig(_Strict):
    users_file: str = "users.json"  # local accounts (argon2 hashes), relative to the config file's folder
    session_idle_minutes: int = Field(30, ge=1)  # a session unused this long signs out
    session_max_hours: int = Field(12, ge=1)  # a session this old signs out, however busy
    # the header a reverse proxy in front of the server sets to the client's address ("X-Forwarded-For");
    # unset when clients connect directly (then the socket's peer is the address)
    trusted_proxy_header: str | None = Field(None, pattern=r"^[A-Za-z0-9-]+$")
    lockout_after: int = Field(5, ge=1)  # wrong passwords in a row before an account or client is locked
    lockout_seconds: int = Field(60, ge=1)  # first lockout; doubles with each further failure, at most a day
    sso: SsoConfig = Field(default_factory=lambda: SsoConfig.model_validate({}))


# -- scheduler, notifications, alerts, reports (dashboard/ops/: scheduler, notify, alerts, reports) --
Period = Literal["day", "week", "month"]
_CREDENTIALS = ("username", "password", "secret", "token")


def _no_credentials(data: Any, where: str) -> Any:
    """Credentials never live in cockpit.toml (it is committed, copied, pasted into tickets)."""
    found = [k for k in _CREDENTIALS if isinstance(data, dict) and k in data]
    if found:
        raise ValueError(
            f"'{found[0]}' does not belong in cockpit.toml: give it in the environment or in "
            f".streamlit/secrets.toml ({where}); see README, Notifications"
        )
    return data


class SchedulerConfig(_Strict):
    retries: int = Field(3, ge=0)  # further attempts after a source could not be read (never after a quarantine)
    retry_backoff_seconds: float = Field(60, ge=0)  # wait before the first retry; doubles each time
    retry_backoff_max_seconds: float = Field(1800, ge=0)
    catch_up: bool = True  # a run missed while the scheduler was not running runs once at start-up
    lock_wait_seconds: float = Field(600, ge=0)  # a scheduled refresh waits this long for a source in use
    stop_timeout_seconds: float = Field(120, ge=0)  # on SIGTERM the running refresh gets this long, then is abandoned


class SmtpConfig(_Strict):
    host: str
    port: int = Field(587, ge=1, le=65535)
    tls: Literal["starttls", "ssl", "none"] = "starttls"  # "none" only for a relay on localhost
    sender: str
    ca_file: str | None = None  # a private CA to trust (PEM), relative to the config file's folder
    timeout_seconds: float = Field(30, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _credentials(cls, data: Any) -> Any:
        return _no_credentials(data, "COCKPIT_SMTP_USERNAME / COCKPIT_SMTP_PASSWORD, or [smtp]")


class ChannelConfig(_Strict):
    name: str
    kind: Literal["email", "wecom", "dingtalk", "feishu", "webhook"]
    to: list[str] = Field(default_factory=list)  # email: the recipients
    url: str | None = None  # webhooks; a robot URL carries its token: better in secrets (see README)

    @model_validator(mode="before")
    @classmethod
    def _credentials(cls, data: Any) -> Any:
        return _no_credentials(data, "[channels.<name>] url / secret, or COCKPIT_CHANNEL_<NAME>_URL / _SECRET")

    @model_validator(mode="after")
    def _complete(self) -> ChannelConfig:
        if self.kind == "email" and not self.to:
            raise ValueError(f"channel '{self.name}': an email channel needs 'to' (a list of addresses)")
        if self.url is not None and not self.url.startswith(("https://", "http://")):
            raise ValueError(f"channel '{self.name}': url must start with https:// or http://")
        return self


class NotificationsConfig(_Strict):
    smtp: SmtpConfig | None = None
    channels: list[ChannelConfig] = Field(default_factory=list)
    retries: int = Field(3, ge=0)  # further attempts after a failed send
    retry_backoff_seconds: float = Field(2, ge=0)  # doubles each time
    timeout_seconds: float = Field(10, gt=0)  # per webhook request
    secrets_file: str = ".streamlit/secrets.toml"  # relative to the config file's folder


class AlertConfig(_Strict):
    name: str
    kind: Literal["source", "data_health", "metric_change", "churn_risk"]
    channels: list[str]
    severity: Literal["info", "warning", "critical"] = "warning"
    cooldown_minutes: int = Field(360, ge=0)  # the same problem is not sent again for this long
    sources: list[str] = Field(default_factory=list)  # source: the sources watched (default: all)
    below: float | None = None  # data_health: a score (0-100) below this fires
    above: int | None = Field(None, ge=0)  # churn_risk: more at-risk customers than this fires
    query: str | None = None  # metric_change, churn_risk: the named query
    column: str | None = None  # metric_change: the number compared
    by: list[str] = Field(default_factory=list)  # metric_change: columns naming a row (e.g. channel)
    params: dict[str, str | int | float] = Field(default_factory=dict)  # extra query parameters
    change_pct: float | None = Field(None, gt=0)  # metric_change: a move larger than this (%) fires
    period: Period = "week"  # metric_change: the last complete period against the one before

    @model_validator(mode="after")
    def _complete(self) -> AlertConfig:
        need = {
            "data_health": ("below",),
            "metric_change": ("query", "column", "change_pct"),
            "churn_risk": ("above",),
        }.get(self.kind, ())
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.kind} alert needs {', '.join(missing)}")
        if self.query is not None and not re.fullmatch(r"[a-z0-9_]+", self.query):
            raise ValueError(f"query '{self.query}' is not a query name")
        return self


class ReportConfig(_Strict):
    name: str
    to: list[str]  # the recipient list (e-mail addresses)
    schedule: str | None = None  # cron: when `cockpit schedule` sends it
    period: Period = "day"  # a daily / weekly / monthly digest: that period against the one before
    role: Literal["admin", "manager", "analyst", "sales"] = "manager"  # masking and row filters follow it
    username: str | None = None  # recorded as the querying user (default: report:<name>)
    owner: str | None = None  # sales: the CRM owner name whose rows the recipients see
    language: Literal["zh", "en"] | None = None  # default: the config's language
    charts: int = Field(2, ge=0, le=2)  # chart images (leads per channel; won revenue per channel)
    leads: int = Field(20, ge=0)  # newest leads of the period listed (phones masked per role)
    top_churn: int = Field(10, ge=0)  # churn warnings listed, when the churn table exists
    churn_query: str = "churn_list"  # the named query of at-risk customers, riskiest revenue first

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        from croniter import croniter

        if v is not None and not croniter.is_valid(v):
            raise ValueError(f"'{v}' is not a valid cron expression")
        return v

    @model_validator(mode="after")
    def _complete(self) -> ReportConfig:
        if not self.to:
            raise ValueError(f"report '{self.name}' needs 'to' (a list of addresses)")
        if self.role == "sales" and not self.owner:
            raise ValueError(f"report '{self.name}': a sales report needs 'owner' (whose customers it shows)")
        return self


def _unique(kind: str, names: list[str]) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{kind} name '{n}' is used twice")
        seen.add(n)


class ChurnConfig(_Strict):
    horizon_days: int = Field(90, ge=7, le=730)  # churned = no order and no interaction this long after the as-of date
    high_risk: float = Field(0.6, gt=0, lt=1)  # risk (a probability) from which a customer is in the high band
    medium_risk: float = Field(0.3, gt=0, lt=1)  # ... and the medium band; below it, low
    # days a fitted churn model serves before a refresh fits it again (0: every refresh refits); the
    # refreshes between rescore every customer with it. `cockpit refresh --full` always refits.
    refit_every_days: int = Field(7, ge=0, le=365)
    # a churn fit file (`cockpit churn export-fit`) every build scores with, --full too: never fitted again
    model: str | None = None

    @model_validator(mode="after")
    def _bands(self) -> ChurnConfig:
        if self.medium_risk >= self.high_risk:
            raise ValueError(f"medium_risk ({self.medium_risk}) must be below high_risk ({self.high_risk})")
        return self


class EngineConfig(_Strict):
    """[engine]: where a refresh's heavy derived steps run: DuckDB in this process, or a Spark cluster."""

    kind: Literal["duckdb", "spark"] = "duckdb"
    # local[*], local[2], spark://host:7077 (or host1:7077,host2:7077), yarn, k8s://https://host:6443
    master: str = "local[*]"
    app_name: str = "cockpit"
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)  # extra spark.* settings
    # the data folder as every worker names it (file:///mnt/cockpit/data, hdfs://...); default: data_dir
    shared_path: str | None = None
    connect_timeout_seconds: float = Field(120, gt=0)  # for the first job to run (a cluster with no worker)
    job_timeout_seconds: float = Field(3600, gt=0)  # a step's Spark job running longer fails the refresh
    # the derived build in a process of its own, which starts without the memory the sources left in the
    # refresh's process (pipeline/derive_child.py); false: in the refresh's process (no interpreter to start)
    derive_in_child: bool = True
    # ... unless the refresh's process holds less than this when the build starts (engine duckdb): it read too
    # little to leave memory behind, and a new process would import the libraries again ("0GB": always a child).
    # With derive_in_child, sources estimated to hold more than this are read in a process of their own, which
    # gives their memory back as it exits (pipeline/refresh.plan_sources), and the build runs in the refresh's.
    derive_in_process_below: str = Field("1GB", pattern=r"^\s*\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$")

    @field_validator("master")
    @classmethod
    def _master(cls, v: str) -> str:
        if not re.fullmatch(r"local(\[(\*|\d+)(,\s*\d+)?\])?|spark://[^\s/]+|yarn|k8s://\S+", v.strip()):
            raise ValueError(
                f"'{v}' is not a Spark master (expected local[*], local[N], spark://host:7077, yarn or k8s://...)"
            )
        return v.strip()

    @field_validator("conf")
    @classmethod
    def _conf(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if not key.startswith("spark."):
                raise ValueError(f"'{key}' is not a Spark setting (they start with spark.)")
        return v

    @field_validator("shared_path")
    @classmethod
    def _shared(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith("/") or re.match(r"[a-z][a-z0-9+.-]*://", v)):
            raise ValueError(f"'{v}' is neither an absolute path nor a URI (file:///..., hdfs://...)")
        return v


class QueryConfig(_Strict):
    """The serving side: pages, named queries, exports, reports, the SQL tab and `cockpit sql`."""

    # DuckDB's memory in each serving connection and each sandboxed SQL statement; past it, DuckDB spills
    # to <data_dir>/.spill (a statement's process may hold 1 GiB more: Python, Arrow, its result)
    memory_limit: str = Field("2GB", pattern=r"^\s*\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$")
    sql_timeout_seconds: float = Field(10, gt=0, le=3600)  # the SQL tab's time limit; the most `cockpit sql` may ask
    sql_max_rows: int = Field(10_000, ge=1, le=1_000_000)  # rows a SQL result holds; past it, the first are shown


_DURATION = re.compile(r"^\s*(\d+)\s*([ymwd])\s*$")
_DURATION_DAYS = {"y": 365, "m": 30, "w": 7, "d": 1}


class PrivacyConfig(_Strict):
    """``[privacy]``: how long personal data is kept after its last activity (``cockpit privacy retention``)."""

    # entity → "3y" | "18m" | "12w" | "90d" (a year is 365 days, a month 30) after the row's last activity
    retention: dict[str, str] = Field(default_factory=dict)
    apply_retention_on_schedule: bool = False  # `cockpit schedule` removes expired rows after each refresh

    @field_validator("retention")
    @classmethod
    def _retention(cls, v: dict[str, str]) -> dict[str, str]:
        for entity, text in v.items():
            if entity not in ENTITIES:
                raise ValueError(f"retention.{entity}: unknown entity (expected one of: {', '.join(ENTITIES)})")
            if not _DURATION.match(text):
                raise ValueError(f'retention.{entity}: \'{text}\' is not a duration like "3y", "18m", "90d"')
        return v

    def retention_days(self) -> dict[str, int]:
        """entity → days kept after its last activity."""
        out = {}
        for entity, text in self.retention.items():
            m = _DURATION.match(text)
            assert m is not None  # checked at load
            out[entity] = int(m.group(1)) * _DURATION_DAYS[m.group(2)]
        return out


class LabelText(_Strict):
    """A value's label in each language (either may be left out: the code is shown instead)."""

    zh: str | None = None
    en: str | None = None


class Settings(_Strict):
    data_dir: Path = Path("data")
    language: Literal["zh", "en"] = "zh"
    retention: int = Field(5, ge=1)  # published snapshots kept per source
    timezone: str = "Asia/Shanghai"
    # DuckDB's working memory in each connection of a refresh's derived build (identity, golden records,
    # churn); past it, DuckDB spills to <data_dir>/.spill instead of taking the machine's memory
    memory_limit: str = Field("4GB", pattern=r"^\s*\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$")
    # the derived build's process as a whole: golden records' DuckDB gets what this leaves of what the process
    # already holds when golden starts (at most memory_limit, at least 1 GiB)
    build_memory: str = Field("6GB", pattern=r"^\s*\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$")
    channel_aliases: dict[str, list[str]] = Field(default_factory=dict)
    stage_aliases: dict[str, list[str]] = Field(default_factory=dict)
    # [labels.channel] my_code = "我的渠道" (the Chinese label) or { zh = "...", en = "..." }
    labels: dict[str, dict[str, str | LabelText]] = Field(default_factory=dict)
    quality: QualityConfig = Field(default_factory=lambda: QualityConfig.model_validate({}))
    analytics: AnalyticsConfig = Field(default_factory=lambda: AnalyticsConfig.model_validate({}))
    identity: IdentityConfig = Field(default_factory=lambda: IdentityConfig.model_validate({}))
    churn: ChurnConfig = Field(default_factory=lambda: ChurnConfig.model_validate({}))
    query: QueryConfig = Field(default_factory=lambda: QueryConfig.model_validate({}))
    security: SecurityConfig = Field(default_factory=lambda: SecurityConfig.model_validate({}))
    sources: list[SourceConfig] = Field(default_factory=list)
    scheduler: SchedulerConfig = Field(default_factory=lambda: SchedulerConfig.model_validate({}))
    notifications: NotificationsConfig = Field(default_factory=lambda: NotificationsConfig.model_validate({}))
    alerts: list[AlertConfig] = Field(default_factory=list)
    reports: list[ReportConfig] = Field(default_factory=list)
    privacy: PrivacyConfig = Field(default_factory=lambda: PrivacyConfig.model_validate({}))
    engine: EngineConfig = Field(default_factory=lambda: EngineConfig.model_validate({}))
    # where the config file was read from; paths in it are relative to its folder
    base_dir: Path = Field(default=Path("."), exclude=True)
    config_file: Path | None = Field(default=None, exclude=True)  # that file itself (load_settings sets it)

    @field_validator("stage_aliases")
    @classmethod
    def _stages(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for stage in v:
            if stage not in STAGES:
                raise ValueError(f"'{stage}' is not a funnel stage (expected one of: {', '.join(STAGES)})")
        return v

    @field_validator("labels")
    @classmethod
    def _label_dimensions(cls, v: dict[str, dict[str, str | LabelText]]) -> dict[str, dict[str, str | LabelText]]:
        for dimension in v:
            if dimension not in LABEL_DIMENSIONS:
                names = ", ".join(LABEL_DIMENSIONS)
                raise ValueError(f"'{dimension}' is not a labelled dimension (expected one of: {names})")
        return v

    def label_texts(self) -> dict[str, dict[str, dict[str, str]]]:
        """[labels]: dimension → code → {lang: label}; a plain string is the Chinese label. A source's
        ``title`` is its Chinese name unless [labels.source] names it."""
        out: dict[str, dict[str, dict[str, str]]] = {
            "source": {s.name: {"zh": s.title} for s in self.sources if s.title}
        }
        for dimension, codes in self.labels.items():
            for code, text in codes.items():
                pair = {"zh": text} if isinstance(text, str) else {"zh": text.zh or "", "en": text.en or ""}
                out.setdefault(dimension, {})[code] = {k: v for k, v in pair.items() if v}
        return out

    @model_validator(mode="after")
    def _unique_sources(self) -> Settings:
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"source name '{s.name}' is used twice")
            seen.add(s.name)
        return self

    @model_validator(mode="after")
    def _applies_sources(self) -> Settings:
        for key in self.quality.applies_when:
            if key.partition(".")[0] not in [*self.source_names, "*"]:
                raise ValueError(f"quality.applies_when '{key}': no source named '{key.partition('.')[0]}'")
        return self

    @model_validator(mode="after")
    def _alerts_and_reports(self) -> Settings:
        _unique("channel", [c.name for c in self.notifications.channels])
        channels = {c.name: c for c in self.notifications.channels}
        _unique("alert", [a.name for a in self.alerts])
        _unique("report", [r.name for r in self.reports])
        uses_mail = [c.name for c in channels.values() if c.kind == "email"] + [r.name for r in self.reports]
        if uses_mail and self.notifications.smtp is None:
            raise ValueError(f"'{uses_mail[0]}' sends e-mail but [notifications.smtp] is not configured")
        for a in self.alerts:
            unknown = [c for c in a.channels if c not in channels]
            unknown += [s for s in a.sources if s not in self.source_names]
            if unknown:
                raise ValueError(
                    f"alert '{a.name}': no channel or source named '{unknown[0]}' "
                    f"(channels: {', '.join(channels) or 'none'})"
                )
        return self

    @property
    def data_path(self) -> Path:
        return self.data_dir if self.data_dir.is_absolute() else self.base_dir / self.data_dir

    @property
    def spill_path(self) -> Path:
        """Where DuckDB spills past memory_limit (each connection in a folder of its own under it)."""
        return self.data_path / ".spill"

    @property
    def users_path(self) -> Path:
        path = Path(self.security.users_file)
        return path if path.is_absolute() else self.base_dir / path

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"no source named '{name}' (configured: {', '.join(self.source_names) or 'none'})")

    @property
    def source_names(self) -> list[str]:
        return [s.name for s in self.sources]

    def channel_lookup(self) -> dict[str, str]:
        """alias (trimmed, lower-case) → canonical channel."""
        out: dict[str, str] = {}
        for canonical, aliases in self.channel_aliases.items():
            for a in [canonical, *aliases]:
                out[a.strip().lower()] = canonical
        return out

    def stage_lookup(self) -> dict[str, str]:
        out = {s: s for s in STAGES}
        for canonical, aliases in self.stage_aliases.items():
            for a in aliases:
                out[a.strip().lower()] = canonical
        return out


def _loc(loc: tuple[int | str, ...], raw: dict[str, Any]) -> str:
    """('sources', 2, 'tables', 0, 'entity') → 'sources[2] (trade_show).tables[0].entity'."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            parts[-1] += f"[{item}]"
            node = node[item] if isinstance(node, list) and item < len(node) else None
            if isinstance(node, dict) and "name" in node and "kind" in node:
                parts[-1] += f" ({node['name']})"
        else:
            parts.append(str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return ".".join(parts)


def parse_settings(
    raw: dict[str, Any], base_dir: Path, origin: str = CONFIG_NAME, config_file: Path | None = None
) -> Settings:
    try:
        return Settings(**raw, base_dir=base_dir, config_file=config_file)
    except ValidationError as e:
        lines = []
        for err in e.errors():
            where = _loc(tuple(err["loc"]), raw)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "missing":
                msg = "required key is missing"
            lines.append(f"{origin}: {where}: {msg}")
        raise ConfigError("\n".join(lines)) from None


def env(name: str) -> str | None:
    """The environment variable ``name``, None when unset or empty. The one read of the environment in
    the package: the fixed names above, and those a config names (``env:VARIABLE`` references)."""
    return os.environ.get(name) or None


def today(timezone: str) -> date:
    """The refresh's "today": the day COCKPIT_AS_OF names when it is set, else the clock's date in ``timezone``."""
    text = env(AS_OF_ENV)
    if text is None:
        return datetime.now(ZoneInfo(timezone)).date()
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{AS_OF_ENV}: '{text}' is not a day like 2026-03-15") from None


def export_environment(values: dict[str, str]) -> None:
    """Set ``values`` in this process's environment, for the programs it starts (the Spark engine's
    launcher reads SPARK_HOME, SPARK_CONF_DIR, PYSPARK_PYTHON and SPARK_LOCAL_IP)."""
    os.environ.update(values)


def serve_environment(config_path: Path, no_auth: bool) -> dict[str, str]:
    """The environment `cockpit serve` hands its server: this one, with the config file named and
    sign-in off only when asked."""
    environment = {k: v for k, v in os.environ.items() if k != NO_AUTH_ENV}
    environment[CONFIG_ENV] = str(config_path.resolve())
    if no_auth:
        environment[NO_AUTH_ENV] = "1"
    return environment


def find_config(path: str | Path | None = None) -> Path:
    if path is None:
        path = env(CONFIG_ENV) or CONFIG_NAME
    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"config file not found: {p} (give --config PATH, set {CONFIG_ENV}, or run where {CONFIG_NAME} is)"
        )
    return p


def load_settings(path: str | Path | None = None) -> Settings:
    p = find_config(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return parse_settings(raw, base_dir=p.resolve().parent, origin=str(p), config_file=p.resolve())
