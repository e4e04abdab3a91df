"""The ``cockpit`` command: parses arguments, calls the pipeline or the warehouse, prints.

A user's mistake prints one clear message and exits non-zero (2 usage/config, 3 quarantined);
it never prints a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dashboard.core.config import CONFIG_ENV, Settings, load_settings, serve_environment
from dashboard.core.errors import CockpitError

if TYPE_CHECKING:
    import polars as pl

    from dashboard.ops.privacy import Identifier
    from dashboard.pipeline.review import Who
    from dashboard.query.security import Principal

app = typer.Typer(
    name="cockpit",
    help="CRM Cockpit: quality-gated snapshots of every customer-data source, and a dashboard over them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state: dict[str, str | None] = {"config": None}


class Size(StrEnum):
    small = "small"
    medium = "medium"
    large = "large"


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def _settings() -> Settings:
    return load_settings(_state["config"])


def _as_system(settings: Settings, target: str) -> Principal:
    """The system principal for an admin command a person runs (unrestricted, unmasked reads), with an
    audit entry naming the operating-system account that asked, so no unmasked read goes unrecorded."""
    import getpass

    from dashboard.core import audit
    from dashboard.query.security import SYSTEM

    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a container)
        who = f"uid {os.getuid()}"
    audit.record(settings, "query", who, "system", "cli", target=target)
    return SYSTEM


@app.callback()
def _root(
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help=f"Path to cockpit.toml (default: ./cockpit.toml or ${CONFIG_ENV})."),
    ] = None,
) -> None:
    _state["config"] = config


@contextlib.contextmanager
def _reporting(quiet: bool) -> Iterator[dict[str, Any]]:
    """How a refresh reports its steps: not at all (--quiet); in a terminal, a live view of the steps, rows
    and the estimate; otherwise (a pipe, a log, cron) plain lines on stderr, one as each step ends."""
    if quiet:
        yield {}
    elif sys.stderr.isatty():  # where the progress goes: stdout may be piped while a person watches
        from dashboard.pipeline.progress import live_display

        with live_display() as watch:
            yield {"watch": watch}
    else:
        yield {"progress": _err}


@app.command()
def refresh(
    sources: Annotated[list[str] | None, typer.Argument(help="Source names (default: all).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the outcome.")] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for a source another refresh holds (default: refuse).")
    ] = 0,
    full: Annotated[
        bool, typer.Option("--full", help="Read every source and make every derived table again, changed or not.")
    ] = False,
) -> None:
    """Extract → standardize → validate → publish (or quarantine). Exit 0 all published, 3 some quarantined,
    4 a source is being refreshed by another process. A source whose files did not change keeps its snapshot,
    a derived step whose inputs did not change keeps its tables (--full: everything again)."""
    from dashboard.pipeline.refresh import refresh as run_refresh

    settings = _settings()
    publish_wait = max(wait, settings.scheduler.lock_wait_seconds)  # the sources are read: wait for the swap
    with _reporting(quiet) as report:
        result = run_refresh(settings, sources, wait=wait, publish_wait=publish_wait, full=full, **report)
    for r in result.sources:
        rows = ", ".join(f"{e} {n}" for e, n in r.rows.items())
        if r.unchanged:
            typer.echo(f"✔ {r.source}: published {r.snapshot_id}, unchanged since then ({rows})")
        elif r.published:
            extra = f"; {r.rejected_rows} rows set aside" if r.rejected_rows else ""
            typer.echo(f"✔ {r.source}: published {r.snapshot_id} ({rows}{extra})")
        else:
            typer.echo(f"✘ {r.source}: quarantined {r.snapshot_id}; the previous snapshot stays current")
            for reason in r.reasons:
                typer.echo(f"    - {reason}")
            for line in r.way_forward:  # the one-off publish and the cockpit.toml setting, with the numbers
                typer.echo(f"    {line}")
        for w in r.warnings if not quiet else []:
            typer.echo(f"    ! warning: {w}")
    if result.reused and not quiet:
        typer.echo(f"  derived tables kept (their inputs did not change): {', '.join(result.reused)}")
    if settings.alerts:  # evaluated after every refresh, scheduled or not; never changes the exit code
        from dashboard.ops.alerts import run_alerts

        for line in run_alerts(settings).lines():
            _err(line)
    raise typer.Exit(result.exit_code)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Per source: current snapshot, rows, freshness, and the last attempt with its outcome."""
    from dashboard.ops.status import source_status

    statuses = source_status(_settings())
    if as_json:
        typer.echo(json.dumps([s.to_dict() for s in statuses], ensure_ascii=False, indent=2))
        return
    for s in statuses:
        flag = {"quarantined": "✘ QUARANTINED", "stale": "⚠ STALE", "never_published": "· never published"}.get(
            s.problem or "", "✔ ok"
        )
        typer.echo(f"{s.name} ({s.title}, {s.kind}) {flag}")
        if s.snapshot_id:
            rows = ", ".join(f"{e} {n}" for e, n in s.rows.items())
            typer.echo(f"    current  {s.snapshot_id}  published {s.published_at}  [{rows}]")
            if s.next_due:
                typer.echo(f"    schedule {s.schedule}  next due {s.next_due}")
        if s.last_attempt:
            a = s.last_attempt
            why = f" ({a['error']} error)" if a.get("error") not in (None, "source") else ""  # connection, auth ...
            typer.echo(f"    last attempt {a['snapshot_id']}: {a['status']}{why} at {a['finished_at']}")
            for reason in a.get("reasons") or []:
                typer.echo(f"      - {reason}")
            if a.get("status") == "quarantined":  # still waiting: both ways forward, with the numbers
                for line in a.get("way_forward") or []:
                    typer.echo(f"      {line}")


@app.command()
def query(
    name: Annotated[
        str | None, typer.Argument(help="A query in queries/ (e.g. channel_summary); none with --metric.")
    ] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="k=v, repeatable.")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Run as this account: its role's rows and masking.")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="A metric of the semantic layer (dashboard/metrics.toml), repeatable."),
    ] = None,
    by: Annotated[
        list[str] | None, typer.Option("--by", help="Split the metrics by this dimension, repeatable.")
    ] = None,
) -> None:
    """Run a named query, or ask the semantic layer for metrics (--metric won_amount --by channel, with
    --param start=/end= and dimension filters), against the current snapshots as --user sees it (without
    it, unrestricted and audited)."""

    from dashboard.access.auth import load_accounts
    from dashboard.core import audit
    from dashboard.core.errors import QueryError
    from dashboard.query.warehouse import Warehouse

    params: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise QueryError(f"--param expects k=v, got {item!r}")
        params[key.strip()] = value
    if (name is None) == (not metric):
        raise QueryError("name a query, or ask for metrics with --metric (not both)")
    target = name or "metric:" + ",".join(metric or [])
    settings = _settings()
    if user is None:
        principal = _as_system(settings, target)
    else:
        account = load_accounts(settings).get(user)
        if account is None:
            message = f"no user named '{user}' (see `cockpit users list`)"
            audit.record(settings, "query", user, None, "cli", target=name, refused=message)
            raise QueryError(message)
        principal = account.principal
    try:
        if name is not None:
            frame = Warehouse(settings).run_query(name, params, user=principal)
        else:
            frame = _ask_metrics(settings, metric or [], by or [], params, principal)
    except CockpitError as e:  # refused as this user (a table the role has no view of), or a bad parameter
        if not principal.system:
            audit.record(settings, "query", principal.username, principal.role, "cli", target=target, refused=e.message)
        raise
    if not principal.system:
        audit.record(settings, "query", principal.username, principal.role, "cli", target=target, rows=frame.height)
    _print_frame(frame, fmt)


def _ask_metrics(
    settings: Settings, names: list[str], by: list[str], params: dict[str, str], principal: Principal
) -> pl.DataFrame:
    """The semantic layer's answer; what the user sees at the company's scope, or not at all, is said on stderr."""
    import datetime as dt

    from dashboard.core.errors import QueryError
    from dashboard.query.metrics import Request, ask, layer, rounded, unfit
    from dashboard.query.warehouse import Warehouse

    span: dict[str, dt.date | None] = {"start": None, "end": None}
    for key in span:
        text = params.pop(key, "")
        try:
            span[key] = dt.date.fromisoformat(text) if text else None
        except ValueError:
            raise QueryError(f"--param {key} must be a date (YYYY-MM-DD), got {text!r}") from None
    request = Request.of(names, by, params, span["start"], span["end"])
    answer = ask(Warehouse(settings), request, principal)
    for metric, scope in answer.scopes.items():
        lost = unfit(metric, request)
        if scope == "company":
            _err(f"{metric}: the company's figure, {layer().metric(metric).label['en']}")
        elif scope == "none" and lost:
            _err(f"{metric}: not shown to the role '{principal.role}' filtered by {', '.join(lost)}, not recorded")
        elif scope == "none":
            _err(f"{metric}: not shown to the role '{principal.role}' split by {', '.join(by) or 'nothing'}")
    if answer.unsplit:
        _err(f"note: the company's figures are not filtered by {', '.join(answer.unsplit)} (not in their data)")
    return rounded(answer.frame)  # to each metric's precision, as the pages' and reports' exports


@app.command("sql")
def sql_command(
    text: Annotated[str, typer.Argument(help="One SELECT over the user's own views ('-': read it from stdin).")],
    user: Annotated[str, typer.Option("--user", "-u", help="Run as this account: its role's views, rows, masking.")],
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds (default and most: [query] sql_timeout_seconds).")
    ] = None,
) -> None:
    """Run one read-only SELECT as --user through the SQL tab's sandbox: the same checks, limits, masking
    and audit entry. Exit 0 ran, 2 refused or stopped (the reason on stderr)."""
    from dashboard.access.auth import load_accounts
    from dashboard.core import audit
    from dashboard.core.errors import QueryError
    from dashboard.i18n import t
    from dashboard.query import sandbox
    from dashboard.query.explore.sql import SqlRefused, run_audited
    from dashboard.query.warehouse import Warehouse

    settings = _settings()
    text = sys.stdin.read() if text == "-" else text
    account = load_accounts(settings).get(user)
    if account is None:
        message = f"no user named '{user}' (see `cockpit users list`)"
        audit.record(settings, "query", user, None, "cli", target="explore_sql", sql=text[:2000], refused=message)
        raise QueryError(message)
    sandbox.keep_spare(False)  # one statement: no worker waits for a next one
    try:
        result = run_audited(Warehouse(settings), text, account.principal, "cli", timeout=timeout)
    except SqlRefused as e:
        _err(f"error: {e.text(settings.language)}")
        raise typer.Exit(e.exit_code) from None
    _print_frame(result.frame, fmt)
    if result.truncated:
        _err(f"note: {t('explore.sql.truncated', settings.language, rows=f'{settings.query.sql_max_rows:,}')}")


def _print_frame(df: pl.DataFrame, fmt: Format) -> None:
    import polars as pl

    from dashboard.ops.export import csv_text

    if fmt is Format.csv:  # formula-safe, nested values as JSON text
        typer.echo(csv_text(df), nl=False)
    elif fmt is Format.json:
        typer.echo(json.dumps(df.to_dicts(), ensure_ascii=False, default=str, indent=2))
    else:
        with pl.Config(
            tbl_rows=-1,
            tbl_cols=-1,
            tbl_width_chars=200,
            tbl_hide_dataframe_shape=True,
            tbl_hide_column_data_types=True,
        ):
            typer.echo(str(df))


@app.command()
def quality(
    source: Annotated[str | None, typer.Option("--source", "-s", help="One source (default: all).")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """The quality heatmap's figures: fill rate, validity and uniqueness per source, entity and field, with flags."""
    import polars as pl

    from dashboard.query.warehouse import Warehouse

    settings = _settings()
    if source:
        settings.source(source)  # an unknown name is a ConfigError that lists the configured ones
    q = settings.quality
    thresholds = {
        "fill_threshold": q.fill_rate_threshold,
        "validity_threshold": q.validity_threshold,
        "uniqueness_threshold": q.uniqueness_threshold,
    }
    df = Warehouse(settings).run_query(
        "quality_heatmap", {"source": source, **thresholds}, user=_as_system(settings, "quality_heatmap")
    )
    df = df.filter(pl.col("provided")).select(
        "source_system", "entity", "column_name", "rows", "applies_when", "applies_rows", "fill_rate", "valid_rate",
        "uniqueness", "fill_flag", "valid_flag", "unique_flag",
    )  # fmt: skip
    if df.is_empty():
        _err("no quality metrics yet: they are computed when `cockpit refresh` publishes a snapshot")
    if fmt is Format.table:
        df = df.with_columns(pl.col(c).round(4) for c in ("fill_rate", "valid_rate", "uniqueness"))
    _print_frame(df, fmt)


@app.command()
def catalog(
    excel: Annotated[Path | None, typer.Option("--excel", help="Write the inventory to this .xlsx workbook.")] = None,
) -> None:
    """The data asset inventory (数据资产目录): systems, tables, fields and lineage; --excel writes the workbook."""
    from dashboard.ops.catalog import LEVELS, load_inventory, write_excel

    inventory = load_inventory(_settings())
    if excel is None:
        _print_frame(inventory.systems, Format.table)
        return
    write_excel(inventory, excel)
    counts = ", ".join(f"{inventory.level(level).height} {level}" for level in LEVELS)
    typer.echo(f"wrote {excel} ({counts})")


quarantine_app = typer.Typer(help="Review quarantined snapshots: list, publish anyway, discard.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")
_REASON = typer.Option("--reason", "-r", help="Why (required; recorded in the audit log with who and when).")


def _who() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"  # getpass found no login name in the environment nor in the password database


@quarantine_app.command("list")
def quarantine_list(source: Annotated[str | None, typer.Argument(help="One source (default: all).")] = None) -> None:
    """Quarantined snapshots still on disk, why they failed, and their rows against the current snapshot."""
    from dashboard.pipeline.review import list_quarantined

    settings = _settings()
    if source:
        settings.source(source)
    waiting = list_quarantined(settings, source)
    if not waiting:
        typer.echo("no quarantined snapshots")
    for q in waiting:
        typer.echo(f"{q.source} {q.snapshot_id}  quarantined {q.finished_at}  (current: {q.current_snapshot or '—'})")
        for entity in dict.fromkeys([*q.rows, *q.current_rows]):
            typer.echo(f"    {entity}: {q.rows.get(entity, '—')} rows (current {q.current_rows.get(entity, '—')})")
        for reason in q.reasons:
            typer.echo(f"    - {reason}")
        for line in q.way_forward:
            typer.echo(f"    {line}")


@quarantine_app.command("publish")
def quarantine_publish(source: str, snapshot: str, reason: Annotated[str, _REASON]) -> None:
    """Publish a quarantined snapshot anyway (needs [quality] allow_quarantine_actions = true)."""
    from dashboard.pipeline.review import Who, publish_anyway

    entry = publish_anyway(_settings(), source, snapshot, reason, Who(_who(), "operator", "cli"))
    typer.echo(f"✔ {source}: published {snapshot} anyway (recorded: {entry['who']} at {entry['at']})")


@quarantine_app.command("discard")
def quarantine_discard(source: str, snapshot: str, reason: Annotated[str, _REASON]) -> None:
    """Delete a quarantined snapshot; what is served does not change (needs allow_quarantine_actions = true)."""
    from dashboard.pipeline.review import Who, discard

    entry = discard(_settings(), source, snapshot, reason, Who(_who(), "operator", "cli"))
    typer.echo(f"✔ {source}: discarded {snapshot} (recorded: {entry['who']} at {entry['at']})")


@app.command()
def schedule() -> None:
    """Run each source's refresh on its cron schedule, alerts after every refresh, and the scheduled reports.
    One JSON line per run on stdout (and in data/runs/scheduler.jsonl); SIGTERM stops it cleanly."""
    from dashboard.ops.scheduler import serve_forever

    raise typer.Exit(serve_forever(_settings()))


identity_app = typer.Typer(help="Identity resolution: how well the customer links hold.", no_args_is_help=True)
app.add_typer(identity_app, name="identity")


@identity_app.command("evaluate")
def identity_evaluate() -> None:
    """Pairwise precision, recall and F1 of the current links and of exact rules alone, against
    <data_dir>/demo_truth/identity.csv."""
    from dashboard.derived.identity import evaluate_current

    typer.echo(
        f"{'method':<18} {'records':>9} {'true pairs':>11} {'linked pairs':>13} {'correct':>9} "
        f"{'precision':>9} {'recall':>7} {'f1':>7}"
    )
    for label, s in evaluate_current(_settings()):
        typer.echo(
            f"{label:<18} {s.records:>9} {s.true_pairs:>11} {s.predicted_pairs:>13} {s.correct_pairs:>9} "
            f"{s.precision:>9.4f} {s.recall:>7.4f} {s.f1:>7.4f}"
        )


@identity_app.command("export-model")
def identity_export_model(path: Annotated[Path, typer.Argument(help="The JSON file to write.")]) -> None:
    """Write the current build's Splink parameters to PATH. Set `[identity] model = "PATH"` to score every
    later build with them (never trained again): the links then depend on the records alone."""
    from dashboard.core.store import Store
    from dashboard.derived.identity import export_model

    total = export_model(Store(_settings().data_path), path)
    typer.echo(f"{path}: identity model written (term frequencies over {total:,} named records)")


notify_app = typer.Typer(help="Notification channels ([[notifications.channels]]).", no_args_is_help=True)
app.add_typer(notify_app, name="notify")


@notify_app.command("test")
def notify_test(channel: Annotated[str, typer.Argument(help="A name from [[notifications.channels]].")]) -> None:
    """Send a test message through CHANNEL. Exit 0 delivered, 1 not delivered (after the retries)."""
    from dashboard.ops.notify import Message, send
    from dashboard.ops.notify import channel as find_channel

    settings = _settings()
    ch = find_channel(settings, channel)  # an unknown name is a ConfigError listing the channels
    msg = Message(
        "CRM Cockpit: test message / 测试消息",
        f"This is a test of the notification channel '{ch.name}' ({ch.kind}). 通知渠道测试。",
        data={"test": True},
    )
    delivery = send(settings, channel, msg)
    typer.echo(delivery.describe())
    raise typer.Exit(0 if delivery.ok else 1)


report_app = typer.Typer(help="Scheduled reports ([[reports]]): send one now, or render it.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("send")
def report_send(
    name: Annotated[str, typer.Argument(help="A report name from [[reports]].")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Write .eml, .html and .csv files; send nothing.")] = False,
    out: Annotated[Path | None, typer.Option("--out", help="--dry-run's folder (default: data/runs/reports).")] = None,
) -> None:
    """Build the report for the last complete period and e-mail it (or, with --dry-run, write it to files)."""
    from dashboard.ops.reports import send_report

    sent = send_report(_settings(), name, dry_run=dry_run, out_dir=out)
    for note in sent.notes:
        _err(f"note: {note}")
    for f in sent.files:
        typer.echo(f"wrote {f}")
    if sent.delivery is not None:
        typer.echo(sent.delivery.describe())
        raise typer.Exit(0 if sent.delivery.ok else 1)


users_app = typer.Typer(
    help="Local accounts (the [security] users_file): add, remove, passwd, list.", no_args_is_help=True
)
app.add_typer(users_app, name="users")
_PASSWORD_STDIN = typer.Option("--password-stdin", help="Read the password from the first line of stdin (scripts).")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return password


def _audit_cli(action: str, target: str) -> None:
    from dashboard.core import audit

    audit.record(_settings(), action, _who(), "operator", "cli", target=target)


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[str, typer.Option("--role", "-r", help="admin | manager | analyst | sales.")],
    owner: Annotated[
        str | None, typer.Option("--owner", help="Sales users: their name as the CRM's owner column writes it.")
    ] = None,
    password_stdin: Annotated[bool, _PASSWORD_STDIN] = False,
) -> None:
    """Add an account (the password is asked twice, or read from stdin; only its argon2 hash is stored)."""
    from dashboard.access.auth import add_user

    settings = _settings()
    account = add_user(settings, name, role, _password(password_stdin), owner)
    _audit_cli("user_add", name)
    extra = f", owner {account.owner}" if account.owner else ""
    typer.echo(f"✔ added {account.username} ({account.role}{extra}) to {settings.users_path}")


@users_app.command("remove")
def users_remove(name: str) -> None:
    """Remove an account; its open sessions end at their next click."""
    from dashboard.access.auth import remove_user

    remove_user(_settings(), name)
    _audit_cli("user_remove", name)
    typer.echo(f"✔ removed {name}")


@users_app.command("passwd")
def users_passwd(name: str, password_stdin: Annotated[bool, _PASSWORD_STDIN] = False) -> None:
    """Set a new password; the account's open sessions end."""
    from dashboard.access.auth import set_password

    set_password(_settings(), name, _password(password_stdin))
    _audit_cli("user_passwd", name)
    typer.echo(f"✔ changed the password of {name}")


@users_app.command("list")
def users_list() -> None:
    """Accounts, roles and owner names (never a password or hash)."""
    from dashboard.access.auth import load_accounts

    accounts = load_accounts(_settings())
    if not accounts:
        typer.echo("no accounts (add one: cockpit users add NAME --role admin)")
    for a in accounts.values():
        typer.echo(f"{a.username}\t{a.role}\t{a.owner or ''}\t{a.created_at}")


@app.command("audit")
def audit_log(
    since: Annotated[str | None, typer.Option(help="From this date or time (ISO, local to UTC).")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="One user's events.")] = None,
    action: Annotated[str | None, typer.Option("--action", "-a", help="One action (e.g. sign_in_failed).")] = None,
    contains: Annotated[str | None, typer.Option(help="Text in the target, detail or client.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events, newest first.")] = 1000,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """The audit log: sign-ins, page views, refusals, exports, queries as a user, quarantine decisions (with
    their reason and outcome, older ones imported from runs/audit.jsonl), user changes."""
    import datetime as dt

    from dashboard.core import audit
    from dashboard.core.errors import QueryError

    start = None
    if since:
        try:
            start = dt.datetime.fromisoformat(since)
        except ValueError:
            raise QueryError(f"--since expects a date or time like 2026-11-01, got {since!r}") from None
        start = start if start.tzinfo else start.replace(tzinfo=dt.UTC)
    if action and action not in audit.ACTIONS:
        raise QueryError(f"unknown action '{action}' (actions: {', '.join(audit.ACTIONS)})")
    _print_frame(audit.read(_settings(), start, user, action, contains, limit), fmt)


@app.command()
def demo(
    size: Annotated[Size, typer.Option(help="small ~2k customers, medium ~50k, large ~1M.")] = Size.small,
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 42,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Generate and refresh only.")] = False,
    port: Annotated[int, typer.Option(help="Dashboard port.")] = 8501,
) -> None:
    """Generate the demo sources, refresh them all through the quality gate, then serve."""
    from dashboard.demo import generate
    from dashboard.pipeline.refresh import refresh as run_refresh

    settings = _settings()
    _err(f"generating demo data ({size.value}, seed {seed}) in {settings.data_path / 'raw'}")
    generate(settings.data_path, size.value, seed, progress=_err)
    with _reporting(quiet=False) as report:
        result = run_refresh(settings, **report)
    for r in result.sources:
        typer.echo(f"{'✔' if r.published else '✘'} {r.source}: {r.status} ({sum(r.rows.values())} rows)")
        for reason in r.reasons:
            typer.echo(f"    - {reason}")
    _demo_accounts(settings)
    if not no_serve:
        _serve(settings, port)


def _demo_accounts(settings: Settings) -> None:
    from dashboard.access.auth import demo_accounts

    made = demo_accounts(settings)
    if made:
        typer.echo(f"demo accounts (in {settings.users_path}; for the demo only — remove them before real use):")
        for username, role, password, owner in made:
            typer.echo(f"    {username} / {password}   {role}" + (f" (sees {owner}'s customers)" if owner else ""))


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="Dashboard port.")] = 8501,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without sign-in: everyone sees everything (says so on every page).")
    ] = False,
) -> None:
    """Serve the dashboard on http://127.0.0.1:PORT (refuses without accounts unless --no-auth)."""
    from dashboard.access.auth import load_accounts
    from dashboard.core.errors import ConfigError

    settings = _settings()

    if not no_auth and not load_accounts(settings) and not _sso_configured(settings):
        raise ConfigError(
            f"no accounts in {settings.users_path} and no single sign-on: add one with "
            "`cockpit users add NAME --role admin`, or serve with --no-auth to show all data to anyone"
        )
    _serve(settings, port, no_auth)


def _sso_configured(settings: Settings) -> bool:
    import tomllib

    secrets = settings.base_dir / ".streamlit" / "secrets.toml"
    try:
        return bool(tomllib.loads(secrets.read_text(encoding="utf-8")).get("auth"))
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _serve(settings: Settings, port: int, no_auth: bool = False) -> None:
    server_path = Path(__file__).with_name("server.py")  # app.py, plus /healthz and systemd's watchdog
    config_path = (settings.base_dir / "cockpit.toml") if _state["config"] is None else Path(_state["config"])
    args = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(server_path),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
        # no reloading of modules while serving: a reload (a file under the code edited, a `git pull` on a running
        # server) made every signed-in session's Principal another class's, so each page failed with AccessDenied
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
    ]
    if no_auth:
        _err("warning: sign-in is off (--no-auth): anyone who opens the address sees all data unmasked")
    typer.echo(f"serving on http://127.0.0.1:{port}  (Ctrl+C to stop; health: /healthz)")
    os.execve(sys.executable, args, serve_environment(config_path, no_auth))


churn_app = typer.Typer(help="Churn warnings: who is likely to stop buying, the revenue at risk, and why.")
app.add_typer(churn_app, name="churn")
_AS_OF = typer.Option("--as-of", help="Score with data before this date (default: the day after the latest activity).")
_HORIZON = typer.Option("--horizon-days", help="Churn = no order and no interaction this many days (default: config).")


@churn_app.callback(invoke_without_command=True)
def churn(
    ctx: typer.Context,
    as_of: Annotated[str | None, _AS_OF] = None,
    horizon_days: Annotated[int | None, _HORIZON] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Every customer's churn risk, expected revenue at risk and top three reasons, riskiest value first."""
    if ctx.invoked_subcommand is not None:
        return
    from dashboard.derived.churn import build as churn_mod
    from dashboard.query.warehouse import Warehouse

    settings = _settings()
    if as_of is None and horizon_days is None:  # what the last refresh scored
        scores = Warehouse(settings).sql("SELECT * FROM churn_scores", user=_as_system(settings, "churn_scores"))
        if scores.is_empty():
            _err("no churn scores yet: they are computed when `cockpit refresh` publishes (or give --as-of)")
    else:
        scores = churn_mod.score_current(settings, churn_mod.parse_as_of(as_of), horizon_days, _err).scores
    _print_frame(_flag_consent(settings, churn_mod.listing(scores, settings.language)), fmt)


def _flag_consent(settings: Settings, listing: pl.DataFrame) -> pl.DataFrame:
    """Who said no to marketing is marked "no consent" (未同意营销), unknown consent "consent unknown"."""
    import polars as pl

    from dashboard.derived.churn.build import with_consent
    from dashboard.i18n.values import BUILT_IN
    from dashboard.query.security import SYSTEM
    from dashboard.query.warehouse import Warehouse

    golden = Warehouse(settings).sql("SELECT customer_key, marketing_consent FROM customer_golden", user=SYSTEM)
    flagged = with_consent(listing, golden)
    names = {c: BUILT_IN.label("consent", c, settings.language) for c in ("yes", "no", "unknown")}
    return flagged.with_columns(pl.col("consent").replace_strict(names, return_dtype=pl.String))


@churn_app.command("backtest")
def churn_backtest(
    as_of: Annotated[str | None, _AS_OF] = None,
    horizon_days: Annotated[int | None, _HORIZON] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """The model against the recency and BG/NBD baselines on the backtest; the one that serves is chosen."""
    from dashboard.derived.churn import build as churn_mod
    from dashboard.derived.churn.card import why_serving
    from dashboard.query.security import SYSTEM
    from dashboard.query.warehouse import Warehouse

    settings = _settings()
    if as_of is None and horizon_days is None:
        card = Warehouse(settings).run_query("churn_model_card", user=SYSTEM)  # the model card: nothing personal
    else:
        card = churn_mod.score_current(settings, churn_mod.parse_as_of(as_of), horizon_days, _err).card
    _print_frame(card.select(churn_mod.BACKTEST_COLUMNS), fmt)
    why = why_serving(card, settings.language)
    if why and fmt is Format.table:
        typer.echo(why)


@churn_app.command("export-fit")
def churn_export_fit(path: Annotated[Path, typer.Argument(help="The fit file to write.")]) -> None:
    """Write the churn fit that scored the current build to PATH. Set `[churn] model = "PATH"` to score every
    later build with it (never fitted again, not even by --full): the scores then depend on the data alone."""
    from dashboard.core.store import Store
    from dashboard.derived.churn import build as churn_mod

    kept = churn_mod.export_fit(Store(_settings().data_path), path)
    typer.echo(f"{path}: churn fit written ({kept.method}, fitted {kept.trained_on}, horizon {kept.horizon_days} days)")


source_app = typer.Typer(help="Onboard a new source: profile it, propose its mapping, add it to cockpit.toml.")
app.add_typer(source_app, name="source")


@source_app.command("add")
def source_add(
    targets: Annotated[
        list[str],
        typer.Argument(help="Files (CSV, Excel, JSON Lines, Parquet) of one source, or env:VAR / secret:key."),
    ],
    table: Annotated[list[str] | None, typer.Option("--table", help="A database table (with env:/secret:).")] = None,
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="The source's name (default: from the file).")
    ] = None,
    entity: Annotated[str | None, typer.Option("--entity", help="The canonical entity (default: decided).")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="Excel: the sheet (default: the first).")] = None,
    rows: Annotated[int, typer.Option("--sample-rows", min=100, help="Rows profiled per input.")] = 20_000,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Append without asking.")] = False,
) -> None:
    """Profile files or database tables, propose each one's entity and column mapping with what the quality
    gate would say, and (when confirmed, or with --yes) append one [[sources]] block to cockpit.toml.
    Exit 0 added (or declined at the prompt), 1 an input cannot be read or placed, 2 a config problem."""
    from dashboard.core.config import find_config
    from dashboard.core.errors import ConfigError
    from dashboard.pipeline import onboard
    from dashboard.sources.onboard import propose, sample_file, sample_table, settings_aliases

    config_path = find_config(_state["config"])
    settings = load_settings(config_path)
    database = targets[0] if targets[0].startswith(("env:", "secret:")) else None
    if (database is not None) != bool(table) or (database and len(targets) > 1):
        raise ConfigError("a database source is one env:VAR or secret:key with --table NAME; files take no --table")
    if entity and max(len(targets), len(table or [])) > 1:
        raise ConfigError("--entity names the entity of one input: give one file or one --table with it")
    aliases = settings_aliases(settings)
    parts: list[onboard.Part] = []
    for t in table or []:
        sample = sample_table(targets[0], t, settings.base_dir, rows)
        parts.append((propose(sample, aliases, entity), onboard.Location(connection=targets[0], table=t)))
    for target in [] if database else targets:
        where = onboard.file_location(Path(target), settings.base_dir, sheet)
        parts.append((propose(sample_file(Path(target), rows, sheet), aliases, entity), where))
    ob = onboard.onboard(settings, parts, name)
    for line in onboard.describe(settings, ob):
        typer.echo(line)
    typer.echo(f"\nTo append to {config_path}:\n{ob.block}")
    try:
        if not yes and not typer.confirm(f"Append source '{ob.name}' to {config_path}?", default=False):
            typer.echo("nothing written")
            return
    except typer.Abort:  # no answer (stdin closed): as good as no
        typer.echo("\nnothing written (no answer; give --yes to append without asking)")
        return
    onboard.append_source(config_path, ob.block, ob.name)
    typer.echo(f"✔ added source '{ob.name}' to {config_path}; publish it with: cockpit refresh {ob.name}")


privacy_app = typer.Typer(
    help="Personal-data requests (PIPL): retention of expired rows, erasure of a person, a person's copy.",
    no_args_is_help=True,
)
app.add_typer(privacy_app, name="privacy")
_WAIT = typer.Option("--wait", help="Seconds to wait for a running refresh (default: refuse, exit 4).")
_PHONE = typer.Option("--phone", help="A mobile number, in any format (+86, spaces, dashes).")
_EMAIL = typer.Option("--email", help="An e-mail address.")
_ID_NUMBER = typer.Option("--id-number", help="An 18-character resident ID number.")
_CUSTOMER = typer.Option("--customer", help="A golden customer key (as Customer 360 shows it).")


def _operator() -> Who:
    from dashboard.pipeline.review import Who

    return Who(_who(), "operator", "cli")


def _person(phone: str | None, email: str | None, id_number: str | None, customer: str | None) -> Identifier:
    from dashboard.ops.privacy import PrivacyInputError, parse_identifier

    given = {"phone": phone, "email": email, "id_number": id_number, "customer": customer}
    chosen = [(k, v) for k, v in given.items() if v is not None]
    if len(chosen) != 1:
        raise PrivacyInputError("give exactly one of --phone, --email, --id-number, --customer")
    return parse_identifier(*chosen[0])


@privacy_app.command("retention")
def privacy_retention(
    apply: Annotated[bool, typer.Option("--apply", help="Remove the expired rows (default: only list them).")] = False,
    wait: Annotated[float, _WAIT] = 0,
) -> None:
    """Rows past [privacy.retention] (per entity, after their last activity), per source and entity: in the
    current snapshot, the older retained ones, quarantine and rejected rows. --apply removes them there and
    from the derived build. Exit 4 when a refresh is running (see --wait)."""
    from dashboard.ops import privacy

    settings = _settings()
    if not settings.privacy.retention:
        typer.echo("no [privacy.retention] in the config: nothing expires")
        return
    if apply:
        for line in privacy.apply_retention(settings, _operator(), wait=wait).lines():
            typer.echo(line)
        return
    preview = privacy.retention_preview(settings)
    _print_frame(preview, Format.table)
    typer.echo(f"{int(preview['expired'].sum()) if preview.height else 0} rows would go (run with --apply)")


@privacy_app.command("forget")
def privacy_forget(
    reason: Annotated[str, _REASON],
    phone: Annotated[str | None, _PHONE] = None,
    email: Annotated[str | None, _EMAIL] = None,
    id_number: Annotated[str | None, _ID_NUMBER] = None,
    customer: Annotated[str | None, _CUSTOMER] = None,
    wait: Annotated[float, _WAIT] = 0,
) -> None:
    """Erase one person from every file under the data folder (snapshots, quarantine, rejected rows, derived
    builds, the search index; audit events keep a pseudonym) and keep them out of later refreshes. Prints the
    proof: files and rows removed. Idempotent. Exit 0 done (also "0 rows" for an unknown person), 2 malformed
    identifier, 4 a refresh is running (see --wait)."""
    from dashboard.ops import privacy

    proof = privacy.forget(_settings(), _person(phone, email, id_number, customer), reason, _operator(), wait=wait)
    for line in proof.lines():
        typer.echo(line)


@privacy_app.command("export")
def privacy_export(
    out: Annotated[Path, typer.Option("--out", help="The folder to write the copy to (created).")],
    phone: Annotated[str | None, _PHONE] = None,
    email: Annotated[str | None, _EMAIL] = None,
    id_number: Annotated[str | None, _ID_NUMBER] = None,
    customer: Annotated[str | None, _CUSTOMER] = None,
) -> None:
    """Everything held about one person in the current snapshots and derived build, as CSV files plus
    summary.json and a zh/en README. Exit 0 (also "0 rows" for an unknown person), 2 malformed identifier."""
    from dashboard.ops import privacy

    result = privacy.export_person(_settings(), _person(phone, email, id_number, customer), out, _operator())
    for name, rows in result.files.items():
        typer.echo(f"{out / name}: {rows} rows")
    typer.echo(f"{result.rows} rows about {result.pseudonym} written to {out}")


def main() -> None:
    try:
        app()
    except CockpitError as e:
        _err(f"error: {e.message}")
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
