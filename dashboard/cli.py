"""The ``cockpit`` command: parses arguments, calls the pipeline or the warehouse, prints.

A user's mistake prints one clear message and exits non-zero (2 usage/config, 3 quarantined);
it never prints a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dashboard.config import CONFIG_ENV, Settings, load_settings
from dashboard.errors import CockpitError

if TYPE_CHECKING:
    import polars as pl

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


@app.callback()
def _root(
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help=f"Path to cockpit.toml (default: ./cockpit.toml or ${CONFIG_ENV})."),
    ] = None,
) -> None:
    _state["config"] = config


@app.command()
def refresh(
    sources: Annotated[list[str] | None, typer.Argument(help="Source names (default: all).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the outcome.")] = False,
    wait: Annotated[
        float, typer.Option("--wait", help="Seconds to wait for a source another refresh holds (default: refuse).")
    ] = 0,
) -> None:
    """Extract → standardize → validate → publish (or quarantine). Exit 0 all published, 3 some quarantined,
    4 a source is being refreshed by another process."""
    from dashboard.pipeline.refresh import refresh as run_refresh

    settings = _settings()
    publish_wait = max(wait, settings.scheduler.lock_wait_seconds)  # the sources are read: wait for the swap
    result = run_refresh(settings, sources, progress=None if quiet else _err, wait=wait, publish_wait=publish_wait)
    for r in result.sources:
        rows = ", ".join(f"{e} {n}" for e, n in r.rows.items())
        if r.published:
            extra = f"; {r.rejected_rows} rows set aside" if r.rejected_rows else ""
            typer.echo(f"✔ {r.source}: published {r.snapshot_id} ({rows}{extra})")
        else:
            typer.echo(f"✘ {r.source}: quarantined {r.snapshot_id}; the previous snapshot stays current")
            for reason in r.reasons:
                typer.echo(f"    - {reason}")
        for w in r.warnings if not quiet else []:
            typer.echo(f"    ! warning: {w}")
    if settings.alerts:  # evaluated after every refresh, scheduled or not; never changes the exit code
        from dashboard.alerts import run_alerts

        for line in run_alerts(settings).lines():
            _err(line)
    raise typer.Exit(result.exit_code)


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """Per source: current snapshot, rows, freshness, and the last attempt with its outcome."""
    from dashboard.status import source_status

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
            typer.echo(f"    last attempt {a['snapshot_id']}: {a['status']} at {a['finished_at']}")
            for reason in a.get("reasons") or []:
                typer.echo(f"      - {reason}")


@app.command()
def query(
    name: Annotated[str, typer.Argument(help="A query in queries/ (e.g. channel_summary).")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="k=v, repeatable.")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Run a named query against the current snapshots."""

    from dashboard.errors import QueryError
    from dashboard.warehouse import Warehouse

    params: dict[str, str] = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise QueryError(f"--param expects k=v, got {item!r}")
        params[key.strip()] = value
    _print_frame(Warehouse(_settings()).run_query(name, params), fmt)


def _print_frame(df: pl.DataFrame, fmt: Format) -> None:
    import polars as pl

    if fmt is Format.csv:
        typer.echo(df.write_csv(), nl=False)
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

    from dashboard.warehouse import Warehouse

    settings = _settings()
    if source:
        settings.source(source)  # an unknown name is a ConfigError that lists the configured ones
    q = settings.quality
    thresholds = {
        "fill_threshold": q.fill_rate_threshold,
        "validity_threshold": q.validity_threshold,
        "uniqueness_threshold": q.uniqueness_threshold,
    }
    df = Warehouse(settings).run_query("quality_heatmap", {"source": source, **thresholds})
    df = df.filter(pl.col("provided")).select(
        "source_system", "entity", "column_name", "rows", "fill_rate", "valid_rate", "uniqueness",
        "fill_flag", "valid_flag", "unique_flag",
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
    from dashboard.catalog import LEVELS, load_inventory, write_excel

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
        return os.environ.get("USER") or "unknown"


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


@quarantine_app.command("publish")
def quarantine_publish(source: str, snapshot: str, reason: Annotated[str, _REASON]) -> None:
    """Publish a quarantined snapshot anyway (needs [quality] allow_quarantine_actions = true)."""
    from dashboard.pipeline.review import publish_anyway

    entry = publish_anyway(_settings(), source, snapshot, reason, _who())
    typer.echo(f"✔ {source}: published {snapshot} anyway (recorded: {entry['who']} at {entry['at']})")


@quarantine_app.command("discard")
def quarantine_discard(source: str, snapshot: str, reason: Annotated[str, _REASON]) -> None:
    """Delete a quarantined snapshot; what is served does not change (needs allow_quarantine_actions = true)."""
    from dashboard.pipeline.review import discard

    entry = discard(_settings(), source, snapshot, reason, _who())
    typer.echo(f"✔ {source}: discarded {snapshot} (recorded: {entry['who']} at {entry['at']})")


@app.command()
def schedule() -> None:
    """Run each source's refresh on its cron schedule, alerts after every refresh, and the scheduled reports.
    One JSON line per run on stdout (and in data/runs/scheduler.jsonl); SIGTERM stops it cleanly."""
    from dashboard.scheduler import serve_forever

    raise typer.Exit(serve_forever(_settings()))


notify_app = typer.Typer(help="Notification channels ([[notifications.channels]]).", no_args_is_help=True)
app.add_typer(notify_app, name="notify")


@notify_app.command("test")
def notify_test(channel: Annotated[str, typer.Argument(help="A name from [[notifications.channels]].")]) -> None:
    """Send a test message through CHANNEL. Exit 0 delivered, 1 not delivered (after the retries)."""
    from dashboard.notify import Message, send
    from dashboard.notify import channel as find_channel

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
    from dashboard.reports import send_report

    sent = send_report(_settings(), name, dry_run=dry_run, out_dir=out)
    for note in sent.notes:
        _err(f"note: {note}")
    for f in sent.files:
        typer.echo(f"wrote {f}")
    if sent.delivery is not None:
        typer.echo(sent.delivery.describe())
        raise typer.Exit(0 if sent.delivery.ok else 1)


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
    result = run_refresh(settings, progress=_err)
    for r in result.sources:
        typer.echo(f"{'✔' if r.published else '✘'} {r.source}: {r.status} ({sum(r.rows.values())} rows)")
        for reason in r.reasons:
            typer.echo(f"    - {reason}")
    if not no_serve:
        _serve(settings, port)


@app.command()
def serve(port: Annotated[int, typer.Option(help="Dashboard port.")] = 8501) -> None:
    """Serve the dashboard on http://127.0.0.1:PORT."""
    _serve(_settings(), port)


def _serve(settings: Settings, port: int) -> None:
    app_path = Path(__file__).with_name("app.py")
    config_path = (settings.base_dir / "cockpit.toml") if _state["config"] is None else Path(_state["config"])
    os.environ[CONFIG_ENV] = str(config_path.resolve())
    args = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app_path),
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
    ]
    typer.echo(f"serving on http://127.0.0.1:{port}  (Ctrl+C to stop)")
    os.execv(sys.executable, args)


def main() -> None:
    try:
        app()
    except CockpitError as e:
        _err(f"error: {e.message}")
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
