"""postgres and mysql sources against real servers started for the tests (tests/dbserver.py).

Full and incremental extraction with updates and deletes between refreshes, a connection killed in
the middle of an extract, unreachable servers, wrong passwords and slow queries: the current
snapshot stays, the other sources still publish, and the password never shows up anywhere.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.ops.status import source_status
from dashboard.pipeline.refresh import refresh
from tests import dbserver
from tests.dbserver import PASSWORD, Server

CUSTOMERS = 200
T0 = datetime(2026, 3, 1, 9, 0, 0)


# the servers are shared with tests/test_extract_deltas.py and tests/test_source_add.py (tests/conftest.py)
pytestmark = pytest.mark.xdist_group("databases")


@pytest.fixture
def server(db_server: Server) -> Server:
    return db_server


class Db:
    """Statements against the test server in its own dialect, as the source system's users would run them."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.pg = server.kind == "postgres"

    def connect(self) -> Any:
        if self.pg:
            import psycopg

            return psycopg.connect(self.server.url(), autocommit=True)
        import pymysql

        return pymysql.connect(
            host="127.0.0.1",
            port=self.server.port,
            user=dbserver.USER,
            password=PASSWORD,
            database=dbserver.DATABASE,
            autocommit=True,
            read_timeout=120,
        )

    def run(self, *statements: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        con = self.connect()
        try:
            cur = con.cursor()
            for sql in statements:
                cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
        finally:
            con.close()

    def reset(self) -> None:
        ts = "timestamptz" if self.pg else "DATETIME(6)"
        flag = "boolean NOT NULL DEFAULT false" if self.pg else "BOOLEAN NOT NULL DEFAULT 0"
        self.run(
            "DROP VIEW IF EXISTS customers_v",
            "DROP TABLE IF EXISTS crm_customers",
            "DROP TABLE IF EXISTS orders",
            f"CREATE TABLE crm_customers (id integer PRIMARY KEY, full_name varchar(50), mobile varchar(20), "
            f"email varchar(80), city varchar(20), created {ts}, updated_at {ts} NOT NULL, deleted {flag})",
            f"CREATE TABLE orders (order_no varchar(20) PRIMARY KEY, cust_id integer, amount numeric(12,2), "
            f"ordered {ts}, note varchar(20))",
        )
        rows = [
            (
                i,
                f"客户{i}",
                f"1380013{i:04d}",
                f"c{i}@example.com",
                "上海" if i % 2 else "北京",
                T0 + timedelta(hours=i),
                T0 + timedelta(hours=i),
            )
            for i in range(1, CUSTOMERS + 1)
        ]
        self.many(
            "INSERT INTO crm_customers (id, full_name, mobile, email, city, created, updated_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            rows,
        )
        orders = [
            (f"SO{i:05d}", i % 50 + 1, f"{i * 10}.50", T0 + timedelta(days=i % 30), "50% off") for i in range(1, 101)
        ]
        self.many("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)", orders)
        self.run("CREATE VIEW customers_v AS SELECT * FROM crm_customers")

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        con = self.connect()
        try:
            cur = con.cursor()
            cur.executemany(sql, rows)
        finally:
            con.close()


@pytest.fixture
def db(server: Server) -> Db:
    d = Db(server)
    d.reset()
    return d


# For a test that checks the extract, the published snapshot and the attempts, not the derived build: no GX Data
# Docs site and identity's exact rules alone (the Splink pass trains again at each first or full pull). Per refresh
# of this company that is ~0.4 CPU-s of site and ~1.3 CPU-s of training out of ~1.2-3.2 (measured, session 27).
# test_full_then_incremental_with_updates_and_deletes and the tests that look for the password in every file keep
# both, so the whole derived build and the site are still made after a database extract.
EXTRACT_ONLY = """
[quality]
data_docs = false

[identity]
probabilistic = false
"""


def write_config(
    root: Path, kind: str, customers_table: str = "crm_customers", timeout: float = 20, settings: str = ""
) -> Path:
    """An ERP database source beside a small CSV source (which must keep publishing whatever the ERP does);
    ``settings``: more of cockpit.toml (e.g. EXTRACT_ONLY)."""
    cast = "cust_id::text" if kind == "postgres" else "CAST(cust_id AS CHAR)"
    (root / "forms").mkdir(parents=True, exist_ok=True)
    (root / "forms" / "leads.csv").write_text(
        "id,time,src\nF1,2026-03-01 10:00,官网\nF2,2026-03-02 11:00,官网\n", encoding="utf-8"
    )
    cfg = root / "cockpit.toml"
    cfg.write_text(
        f"""
data_dir = "data"
language = "en"
{settings}
[[sources]]
name = "erp"
kind = "{kind}"
connection = "env:ERP_DB_URL"
timeout_seconds = {timeout}
  [[sources.tables]]
  entity = "customers"
  table = "{customers_table}"
  key = "id"
  watermark = "updated_at"
  delete_column = "deleted"
    [sources.tables.columns]
    source_record_id = "id"
    name = "full_name"
    phone = "mobile"
    email = "email"
    city = "city"
    created_at = "created"
    updated_at = "updated_at"
  [[sources.tables]]
  entity = "orders"
  query = "SELECT order_no, {cast} AS cust, amount, ordered FROM orders WHERE note LIKE '50%'"
  columns = {{ order_id = "order_no", customer_ref = "cust", amount = "amount", ordered_at = "ordered" }}

[[sources]]
name = "forms"
kind = "csv"
  [[sources.tables]]
  entity = "leads"
  path = "forms/*.csv"
  columns = {{ lead_id = "id", created_at = "time", channel = "src" }}
""",
        encoding="utf-8",
    )
    return cfg


@pytest.fixture
def erp(db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ERP_DB_URL", db.server.url())
    return load_settings(write_config(tmp_path, db.server.kind))


def published(settings: Settings, entity: str, source: str = "erp") -> pl.DataFrame:
    store = Store(settings.data_path)
    entry = store.read_manifest()["sources"][source]
    return pl.read_parquet(store.abs(entry["entities"][entity]["file"]))


def extract_state(settings: Settings, index: int = 0) -> dict[str, Any]:
    store = Store(settings.data_path)
    sid = store.read_manifest()["sources"]["erp"]["snapshot_id"]
    state: dict[str, Any] = json.loads((store.snapshots / "erp" / sid / "extract" / f"{index}.json").read_text())
    return state


def no_password_anywhere(settings: Settings, *texts: str) -> None:
    """Not in any file the cockpit wrote (attempts, validation results, manifest, history) nor in any output."""
    for text in texts:
        assert PASSWORD not in text
    for f in settings.data_path.rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f"the password is in {f}"


def test_full_then_incremental_with_updates_and_deletes(db: Db, erp: Settings) -> None:
    log: list[str] = []
    first = refresh(erp, progress=log.append)
    assert first.exit_code == 0, [r.reasons for r in first.sources]
    customers = published(erp, "customers")
    assert customers.height == CUSTOMERS
    c7 = customers.filter(pl.col("source_record_id") == "7").row(0, named=True)
    assert (c7["name"], c7["phone"], c7["city"]) == ("客户7", "13800130007", "上海")
    orders = published(erp, "orders")
    assert orders.height == 100 and orders["amount"].sum() == pytest.approx(sum(i * 10 + 0.5 for i in range(1, 101)))
    assert extract_state(erp)["mode"] == "full"

    # in the ERP: 2 customers renamed, 1 marked deleted, 3 new; orders: 1 deleted, 1 changed
    later = T0 + timedelta(days=30)
    db.run("UPDATE crm_customers SET full_name = 'Renamed', updated_at = %s WHERE id IN (3, 4)", params=(later,))
    db.run("UPDATE crm_customers SET deleted = true, updated_at = %s WHERE id = 5", params=(later,))
    db.many(
        "INSERT INTO crm_customers (id, full_name, mobile, email, city, created, updated_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [(1000 + i, f"新客户{i}", None, None, "深圳", later, later) for i in range(3)],
    )
    db.run("DELETE FROM orders WHERE order_no = 'SO00001'", "UPDATE orders SET amount = 1 WHERE order_no = 'SO00002'")

    second = refresh(erp, progress=log.append)
    assert second.exit_code == 0, [r.reasons for r in second.sources]
    customers = published(erp, "customers")
    assert customers.height == CUSTOMERS + 3 - 1
    names = dict(zip(customers["source_record_id"], customers["name"], strict=True))
    assert names["3"] == names["4"] == "Renamed" and "5" not in names and names["1002"] == "新客户2"
    state = extract_state(erp)
    # only what changed was pulled: the 6 changed rows, and customer 200 that sat at the old watermark
    # (rows at the watermark are pulled again, so a change committed in the same instant is not missed)
    assert state["mode"] == "incremental" and state["pulled_rows"] == 6 + 1
    assert state["rows"] == CUSTOMERS + 2 and state["deleted_rows"] == 1
    orders = published(erp, "orders")
    assert orders.height == 99 and "SO00001" not in orders["order_id"].to_list()
    assert orders.filter(pl.col("order_id") == "SO00002")["amount"].item() == 1.0

    # nothing changed: the third refresh pulls only the 6 rows at the watermark and publishes the same whole
    third = refresh(erp)
    assert third.exit_code == 0
    assert published(erp, "customers").height == CUSTOMERS + 2
    assert extract_state(erp)["pulled_rows"] == 6
    no_password_anywhere(erp, *log)


def test_credentials_from_the_secrets_file(db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_config(tmp_path, db.server.kind, settings=EXTRACT_ONLY)
    cfg.write_text(cfg.read_text().replace("env:ERP_DB_URL", "secret:connections.erp.url"))
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(f'[connections.erp]\nurl = "{db.server.url()}"\n')
    monkeypatch.delenv("ERP_DB_URL", raising=False)
    settings = load_settings(cfg)
    assert refresh(settings, ["erp"]).exit_code == 0
    assert published(settings, "customers").height == CUSTOMERS


def cockpit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], capture_output=True, text=True, timeout=300)


def cockpit_here(capture: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``cockpit ARGS`` run in this process: its exit code and what ``capture`` caught since it was last read
    (capfd: all written to file descriptors 1 and 2, a driver's or a library's own output included), as
    ``cockpit`` gives them. A process of its own costs an interpreter and the refresh's imports again (~3 CPU-s a
    refresh, ~0.7 a status), which is not what the tests using this are about."""
    from dashboard import cli

    argv, sys.argv = sys.argv, ["cockpit", *args]
    try:
        cli.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    out = capture.readouterr()
    return subprocess.CompletedProcess(["cockpit", *args], code, out.out, out.err)


def test_wrong_password_and_unreachable_server_reported_other_sources_refresh(
    db: Db,
    erp: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert refresh(erp).exit_code == 0
    before = Store(erp.data_path).read_manifest()["sources"]["erp"]["snapshot_id"]
    cfg = str(erp.base_dir / "cockpit.toml")

    bad_password = db.server.url(password="not-the-" + PASSWORD)
    monkeypatch.setenv("ERP_DB_URL", bad_password)
    out = cockpit_here(capfd, "--config", cfg, "refresh")
    assert out.returncode == 3
    assert "✔ forms: published" in out.stdout and "✘ erp: quarantined" in out.stdout
    assert "authentication failed" in out.stdout
    status = json.loads(cockpit_here(capfd, "--config", cfg, "status", "--json").stdout)
    erp_status = next(s for s in status if s["name"] == "erp")
    assert erp_status["snapshot_id"] == before  # the last good snapshot keeps serving
    assert erp_status["last_attempt"]["error"] == "auth"
    text = cockpit_here(capfd, "--config", cfg, "status").stdout
    assert "authentication failed" in text and f"127.0.0.1:{db.server.port}" in text
    assert "erp (erp, " in text and ": quarantined (auth error) at " in text
    # caplog: what a library logs, which a process of its own would print on stderr
    no_password_anywhere(erp, out.stdout, out.stderr, text, json.dumps(status), caplog.text)
    assert "not-the-" not in out.stdout + text

    monkeypatch.setenv("ERP_DB_URL", db.server.url().replace(str(db.server.port), str(dbserver.free_port())))
    out = cockpit_here(capfd, "--config", cfg, "refresh")
    assert out.returncode == 3 and "✔ forms: published" in out.stdout
    assert "connection failed" in out.stdout
    status = json.loads(cockpit_here(capfd, "--config", cfg, "status", "--json").stdout)
    assert next(s for s in status if s["name"] == "erp")["last_attempt"]["error"] == "connection"
    no_password_anywhere(erp, out.stdout, out.stderr, caplog.text)


def test_an_unknown_table_is_a_source_error_naming_it(db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_DB_URL", db.server.url())
    settings = load_settings(
        write_config(tmp_path, db.server.kind, customers_table="crm.no_such_table", settings=EXTRACT_ONLY)
    )
    res = refresh(settings, ["erp"]).sources[0]
    assert not res.published and "the query failed" in res.reasons[0] and "no_such_table" in res.reasons[0]
    assert source_status(settings)[0].last_attempt["error"] == "source"  # type: ignore[index]


def test_slow_query_times_out(db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERP_DB_URL", db.server.url())
    slow = "pg_sleep(5) IS NOT NULL" if db.pg else "SLEEP(5) = 0"
    db.run("DROP VIEW customers_v", f"CREATE VIEW customers_v AS SELECT c.* FROM crm_customers c WHERE {slow}")
    cfg = write_config(tmp_path, db.server.kind, customers_table="customers_v", timeout=1, settings=EXTRACT_ONLY)
    settings = load_settings(cfg)
    start = time.monotonic()
    result = refresh(settings)
    assert time.monotonic() - start < 60  # not the 200 × 5 s the query would take
    erp = next(r for r in result.sources if r.source == "erp")
    assert not erp.published and "timed out" in erp.reasons[0], erp.reasons
    assert next(r for r in result.sources if r.source == "forms").published
    assert source_status(settings)[0].last_attempt["error"] == "timeout"  # type: ignore[index]


def _kill_when_sleeping(db: Db, done: threading.Event) -> Callable[[], None]:
    """Kill the cockpit's connection from the server side once its extract is in the middle of the table."""

    def run() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not done.is_set():
            if db.pg:
                rows = db.run(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'crm-cockpit' AND wait_event = 'PgSleep'"
                )
                if rows:
                    db.run("SELECT pg_terminate_backend(%s)", params=(rows[0][0],))
                    return
            else:
                rows = db.run("SELECT id FROM information_schema.processlist WHERE state = 'User sleep'")
                if rows:
                    db.run(f"KILL {int(rows[0][0])}")
                    return
            time.sleep(0.1)

    return run


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_connection_killed_mid_extract_leaves_the_current_snapshot_untouched(
    db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERP_DB_URL", db.server.url())
    settings = load_settings(write_config(tmp_path, db.server.kind, customers_table="customers_v"))
    assert refresh(settings).exit_code == 0
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    current = store.snapshots / "erp" / manifest["sources"]["erp"]["snapshot_id"]
    before = _tree_digest(current)

    # every customer changes; the view now stalls on customer 150, mid-table, where the server kills us
    db.run("UPDATE crm_customers SET full_name = 'changed', updated_at = %s", params=(T0 + timedelta(days=60),))
    stall = (
        "pg_sleep(CASE WHEN c.id = 150 THEN 60 ELSE 0 END) IS NOT NULL" if db.pg else "SLEEP(IF(c.id = 150, 60, 0)) = 0"
    )
    db.run("DROP VIEW customers_v", f"CREATE VIEW customers_v AS SELECT c.* FROM crm_customers c WHERE {stall}")
    done = threading.Event()
    killer = threading.Thread(target=_kill_when_sleeping(db, done))
    killer.start()
    try:
        result = refresh(settings)
    finally:
        done.set()
        killer.join()
    erp = next(r for r in result.sources if r.source == "erp")
    assert not erp.published and "connection failed" in erp.reasons[0], erp.reasons
    assert next(r for r in result.sources if r.source == "forms").published
    after = store.read_manifest()
    assert after["sources"]["erp"]["snapshot_id"] == manifest["sources"]["erp"]["snapshot_id"]
    assert _tree_digest(current) == before  # not a byte of the current snapshot changed
    assert "changed" not in published(settings, "customers")["name"].to_list()
    failed = store.quarantine / "erp" / erp.snapshot_id
    assert not list(failed.rglob("*.parquet"))  # the partial extract was not kept
    assert not (store.staging / "erp").exists() or not any((store.staging / "erp").iterdir())

    # the server is back to normal: the next refresh pulls the changes from the published watermark
    db.run("DROP VIEW customers_v", "CREATE VIEW customers_v AS SELECT * FROM crm_customers")
    assert refresh(settings, ["erp"]).exit_code == 0
    assert set(published(settings, "customers")["name"]) == {"changed"}
    no_password_anywhere(settings)


def test_a_literal_connection_url_in_cockpit_toml_is_refused_without_echoing_it(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "postgres")
    url = f"postgresql://cockpit:{PASSWORD}@db.internal:5432/erp"
    cfg.write_text(cfg.read_text().replace('"env:ERP_DB_URL"', f'"{url}"'))
    out = cockpit("--config", str(cfg), "refresh")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "sources[0] (erp).connection: credentials are never written in cockpit.toml" in out.stdout + out.stderr
    assert PASSWORD not in out.stdout + out.stderr and "db.internal" not in out.stdout + out.stderr
