"""PIPL requests on the refreshed fixture company: erasure everywhere under the data folder (crash-safe,
idempotent, kept out of later refreshes), a person's copy, retention of expired rows."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

from dashboard.core import audit
from dashboard.core.config import CRASH_ENV, PrivacyConfig, Settings
from dashboard.core.store import Store
from dashboard.ops import privacy
from dashboard.pipeline.refresh import refresh
from dashboard.pipeline.review import Who

# the ERP's customer E0 (张0, ID 11010519491231002X) is the trade show's lead TS-0: one person, two sources
PHONE, ID_NUMBER, EMAIL = "13800138000", "11010519491231002X", "u3@example.com"


def cockpit(settings: Settings, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--config", str(settings.base_dir / "cockpit.toml"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def rows_naming(settings: Settings, *values: str) -> dict[str, int]:
    """Every Parquet file under the data folder (audit log included; not the demo's raw inputs, which stand
    for the source systems) → its rows whose text holds a value."""
    found = {}
    raw = settings.data_path / "raw"
    with duckdb.connect() as con:
        for path in sorted(p for p in settings.data_path.rglob("*.parquet") if not p.is_relative_to(raw)):
            cond = " OR ".join("contains(t::VARCHAR, ?)" for _ in values)
            n = con.execute(f"SELECT count(*) FROM read_parquet(?) t WHERE {cond}", [str(path), *values]).fetchone()
            if n and n[0]:
                found[str(path.relative_to(settings.data_path))] = n[0]
    return found


def digests(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_forget_by_phone_removes_the_person_from_every_file_and_a_rerun_removes_nothing(company: Settings) -> None:
    assert rows_naming(company, PHONE, ID_NUMBER)  # the person is there to begin with
    inputs = digests(company.base_dir / "imports")
    golden = pl.read_parquet(_derived(company, "customer_golden"))
    key = golden.filter(pl.col("phone") == PHONE).get_column("customer_key")[0]
    looked_up = audit.record(company, "query", "rep0", "sales", target=f"customer_360/{key}", search="138-0013-8000")

    out = cockpit(company, "privacy", "forget", "--phone", "138-0013-8000", "--reason", f"request by {PHONE}")
    assert out.returncode == 0, out.stderr
    assert rows_naming(company, PHONE, ID_NUMBER) == {}
    assert "snapshots/erp/" in out.stdout and "customers.parquet: 1 rows removed" in out.stdout
    assert "derived/" in out.stdout and "customer_lookup.parquet" in out.stdout  # the search index
    assert digests(company.base_dir / "imports") == inputs  # the source systems' files are not rewritten
    event = audit.read(company, action="privacy_forget").row(0, named=True)
    assert event["target"].startswith("person:") and PHONE not in (event["detail"] or "")
    assert event["rows"] >= 4  # E0, its 2 orders, TS-0, and their derived rows
    kept = audit.read(company, action="query").filter(pl.col("event_id") == looked_up["event_id"]).row(0, named=True)
    assert kept["target"] == f"customer_360/{event['target']}" and event["target"] in kept["detail"]  # a pseudonym
    assert key not in kept["detail"] and "0013" not in kept["detail"]

    again = cockpit(company, "privacy", "forget", "--phone", "+86 13800138000", "--reason", "second request")
    assert again.returncode == 0, again.stderr
    assert "0 files rewritten, 0 rows removed" in again.stdout


def test_forget_by_email_and_by_customer_key(company: Settings) -> None:
    out = cockpit(company, "privacy", "forget", "--email", "U3@Example.com", "--reason", "PIPL request")
    assert out.returncode == 0, out.stderr
    assert rows_naming(company, EMAIL, "13900130003") == {}
    golden = pl.read_parquet(_derived(company, "customer_golden"))
    key = golden.filter(pl.col("phone") == "13900130005").get_column("customer_key")[0]
    out = cockpit(company, "privacy", "forget", "--customer", key, "--reason", "PIPL request")
    assert out.returncode == 0, out.stderr
    assert rows_naming(company, key, "13900130005") == {}


def _derived(settings: Settings, table: str) -> Path:
    return settings.data_path / Store(settings.data_path).read_manifest()["derived"]["tables"][table]


def test_bad_input_unknown_person_and_malformed_identifiers(company: Settings) -> None:
    before = digests(company.data_path / "snapshots")
    unknown = cockpit(company, "privacy", "forget", "--phone", "13912345678", "--reason", "not a customer")
    assert unknown.returncode == 0, unknown.stderr
    assert "0 rows" in unknown.stdout
    assert digests(company.data_path / "snapshots") == before
    for args in (("--phone", "12345"), ("--email", "not-an-address"), ("--id-number", "1234")):
        bad = cockpit(company, "privacy", "forget", *args, "--reason", "typo")
        assert bad.returncode == 2
        assert f"'{args[1]}' is not" in bad.stderr and "Traceback" not in bad.stderr
    both = cockpit(company, "privacy", "forget", "--phone", PHONE, "--email", EMAIL, "--reason", "x")
    assert both.returncode == 2 and "exactly one of" in both.stderr
    assert digests(company.data_path / "snapshots") == before


def test_forget_while_a_refresh_runs_exits_4_or_waits_with_wait(company: Settings) -> None:
    store = Store(company.data_path)
    with store.source_locks(["trade_show"], holder="cockpit refresh"):
        busy = cockpit(company, "privacy", "forget", "--phone", PHONE, "--reason", "x")
    assert busy.returncode == 4, busy.stderr
    assert "trade_show" in busy.stderr and rows_naming(company, PHONE)

    held = threading.Event()

    def hold_then_release() -> None:
        with store.lock():
            held.set()
            time.sleep(2)

    t = threading.Thread(target=hold_then_release)
    t.start()
    held.wait()
    waited = cockpit(company, "privacy", "forget", "--phone", PHONE, "--reason", "x", "--wait", "60")
    t.join()
    assert waited.returncode == 0, waited.stderr
    assert rows_naming(company, PHONE, ID_NUMBER) == {}


@pytest.mark.slow
def test_a_forget_killed_midway_leaves_every_file_whole_and_a_rerun_completes(company: Settings) -> None:
    killed = cockpit(company, "privacy", "forget", "--phone", PHONE, "--reason", "x", env={CRASH_ENV: "privacy_file:6"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = rows_naming(company, PHONE, ID_NUMBER)
    assert left  # killed before the derived build was rewritten
    for path in company.data_path.rglob("*.parquet"):
        pq.read_table(path)  # every file is the old one or the new one, never half written
    # the rerun finds what the killed run already removed from the snapshots (its pending plan)
    out = cockpit(company, "privacy", "forget", "--phone", PHONE, "--reason", "x")
    assert out.returncode == 0, out.stderr
    assert rows_naming(company, PHONE, ID_NUMBER) == {}
    assert not list((company.data_path / privacy.PENDING).glob("*"))
    assert not list(company.data_path.rglob("*.privacy-tmp"))


@pytest.mark.parametrize("writer", ["polars", "pyarrow", "duckdb"])
def test_in_a_file_of_many_row_groups_only_the_persons_row_groups_are_written_again(
    company: Settings, writer: str
) -> None:
    path = _current(company, "erp", "customers")  # E0 (the person) .. E11, then 4,400 others: several row groups
    frame = pl.read_parquet(path)
    others = pl.concat([frame.filter(pl.col("source_record_id") != "E0")] * 400).with_columns(
        source_record_id=pl.format("F{}", pl.int_range(pl.len())),
        phone=pl.format("139{}", pl.int_range(pl.len()).cast(pl.String).str.zfill(8)),
        id_number=pl.lit(None, pl.String),
    )
    frame = pl.concat([frame, others])
    if writer == "polars":
        frame.write_parquet(path, row_group_size=1024, compression="zstd")
    elif writer == "pyarrow":
        pq.write_table(frame.to_arrow(), path, row_group_size=1024, compression="zstd", write_page_index=True)
    else:
        with duckdb.connect() as con:  # DuckDB writes bloom filters too
            con.register("frame", frame.to_arrow())
            con.execute(f"COPY frame TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE 1024)")
    before = path.read_bytes()
    groups = pq.ParquetFile(path).metadata.num_row_groups
    assert groups > 1 and PHONE.encode() in before and ID_NUMBER.encode() in before  # pages and statistics

    privacy.forget(company, privacy.parse_identifier("phone", PHONE), "PIPL request", Who("tester"))
    after = path.read_bytes()
    assert PHONE.encode() not in after and ID_NUMBER.encode() not in after  # no byte of the old row group left
    everyone_else = frame.filter(pl.col("source_record_id") != "E0")
    assert pl.read_parquet(path).equals(everyone_else)  # in their order
    with duckdb.connect() as con:
        assert con.execute("SELECT count(*) FROM read_parquet(?)", [str(path)]).fetchall() == [(frame.height - 1,)]
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == groups
    for i in range(1, groups):  # the row groups without the person: the same bytes, where they were
        chunk = meta.row_group(i).column(0)
        start, end = chunk.data_page_offset, chunk.data_page_offset + chunk.total_compressed_size
        assert after[start:end] == before[start:end]

    # a second person in the same row group: the file stays whole
    privacy.forget(company, privacy.parse_identifier("phone", "13800138004"), "PIPL request", Who("tester"))
    assert pl.read_parquet(path).equals(everyone_else.filter(pl.col("source_record_id") != "E4"))
    assert b"13800138004" not in path.read_bytes()


def test_a_column_holding_one_value_everywhere_is_still_searched_when_that_value_names_the_person(
    company: Settings,
) -> None:
    path = _current(company, "erp", "customers").with_name("quality.parquet")
    quality = pl.read_parquet(path).with_columns(remark=pl.lit(f"caller {PHONE}"), other=pl.lit("caller 13900000000"))
    quality.write_parquet(path)  # statistics: one value in every row of both columns
    privacy.forget(company, privacy.parse_identifier("phone", PHONE), "PIPL request", Who("tester"))
    after = pl.read_parquet(path)
    assert after.height == quality.height
    assert set(after.get_column("remark")) == {"caller [erased]"}
    assert set(after.get_column("other")) == {"caller 13900000000"}


def test_the_next_refresh_keeps_the_person_out_and_counts_them(company: Settings) -> None:
    privacy.forget(company, privacy.parse_identifier("phone", PHONE), "PIPL request", Who("tester"))
    result = refresh(company)  # the trade show and the ERP still send 张0
    assert result.exit_code == 0
    assert rows_naming(company, PHONE, ID_NUMBER) == {}
    dropped = {
        (r.source, i["entity"]): i["count"]
        for r in result.sources
        for i in Store(company.data_path).attempts(r.source, 1)[0]["issues"]
        if "erased on request" in i["problem"]
    }
    assert dropped == {("trade_show", "leads"): 1, ("erp", "customers"): 1, ("erp", "orders"): 2}
    assert {r.source: r.rows for r in result.sources}["erp"] == {"customers": 11, "orders": 22}


def test_export_writes_the_persons_copy(company: Settings, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    run = cockpit(company, "privacy", "export", "--phone", "138 0013 8000", "--out", str(out))
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["files"] == {
        "customers.csv": 1,
        "leads.csv": 1,
        "orders.csv": 2,
        "golden_record.csv": 1,
        "churn.csv": 1,
        "links.csv": 2,
    }
    for name, rows in summary["files"].items():
        frame = pl.read_csv(out / name, infer_schema=False)
        assert frame.height == rows, name
    assert pl.read_csv(out / "customers.csv", infer_schema=False)["source_record_id"].to_list() == ["E0"]
    assert sorted(summary["sources"]) == ["erp", "trade_show"]
    readme = (out / "README.txt").read_text(encoding="utf-8")
    assert "个人信息" in readme and "personal data" in readme
    assert audit.read(company, action="privacy_export").height == 1

    nobody = cockpit(company, "privacy", "export", "--phone", "13912345678", "--out", str(tmp_path / "none"))
    assert nobody.returncode == 0 and "0 rows" in nobody.stdout


def _with_retention(settings: Settings, **retention: str) -> Settings:
    return settings.model_copy(update={"privacy": PrivacyConfig(retention=retention)})


def test_retention_lists_then_removes_expired_rows_everywhere(company: Settings) -> None:
    # leads were created 2026-03-01 .. 2026-03-30; orders placed 2026-03-31 .. 2026-04-23
    settings = _with_retention(company, leads="30d", orders="30d")
    nothing = privacy.retention_preview(settings, now=dt.datetime(2026, 3, 15))
    assert nothing["expired"].sum() == 0
    now = dt.datetime(2026, 5, 10)  # cut-off 2026-04-10: every lead (last event 2026-03-30), orders before 04-10
    preview = privacy.retention_preview(settings, now=now)
    expired = {(r["source"], r["entity"]): r["expired"] for r in preview.iter_rows(named=True)}
    orders = pl.read_parquet(_current(company, "erp", "orders"))
    old_orders = orders.filter(pl.col("ordered_at") < dt.datetime(2026, 4, 10)).height
    assert expired[("trade_show", "leads")] == 20 and expired[("crm", "leads")] == 30
    assert expired[("web_forms", "leads")] == 10 and expired[("erp", "orders")] == old_orders == 10
    assert (
        expired[("crm", "lead_events")]
        == pl.read_parquet(_current(company, "crm", "lead_events"))
        .filter(pl.col("lead_id").str.starts_with("CRM-"))
        .height
    )  # a lead's funnel events go with it

    result = privacy.apply_retention(settings, Who("tester"), now=now)
    assert result.by_entity["leads"] == 60 and result.by_entity["orders"] == 10
    assert pl.read_parquet(_current(company, "crm", "leads")).height == 0
    assert pl.read_parquet(_current(company, "erp", "orders")).height == 14
    assert pl.read_parquet(_derived(company, "lead_facts")).height == 0
    assert pl.read_parquet(_derived(company, "customer_golden")).height == 12  # the ERP's customers stay
    assert privacy.retention_preview(settings, now=now)["expired"].sum() == 0
    assert audit.read(company, action="privacy_retention").row(0, named=True)["rows"] == result.rows


def _current(settings: Settings, source: str, entity: str) -> Path:
    entry = Store(settings.data_path).read_manifest()["sources"][source]
    return settings.data_path / entry["entities"][entity]["file"]


class _Clock:
    def __init__(self, start: dt.datetime) -> None:
        self.t = start

    def now(self) -> dt.datetime:
        return self.t

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        self.t += dt.timedelta(seconds=seconds)


def test_the_scheduler_applies_retention_after_a_refresh_when_switched_on(company: Settings) -> None:
    from dashboard.ops.scheduler import Scheduler
    from dashboard.pipeline.refresh import RefreshResult, SourceResult

    sources = [
        s.model_copy(update={"schedule": "0 2 * * *" if s.name == "trade_show" else None}) for s in company.sources
    ]
    on = PrivacyConfig(retention={"leads": "30d"}, apply_retention_on_schedule=True)
    settings = company.model_copy(update={"sources": sources, "privacy": on})

    def published(_settings: Settings, names: list[str], **_kw: object) -> RefreshResult:
        return RefreshResult([SourceResult(n, "s", "published") for n in names])

    tz = dt.timezone(dt.timedelta(hours=8))
    lines: list[str] = []
    clock = _Clock(dt.datetime(2026, 5, 10, 1, 0, tzinfo=tz))
    Scheduler(settings, clock, published, out=lines.append).run(until=dt.datetime(2026, 5, 10, 3, 0, tzinfo=tz))
    logged = [json.loads(line) for line in lines if '"retention"' in line]
    assert [(e["status"], e["removed"]) for e in logged] == [("ok", {"leads": 60, "lead_events": 46})]
    assert pl.read_parquet(_current(company, "trade_show", "leads")).height == 0

    off = company.model_copy(update={"sources": sources, "privacy": PrivacyConfig(retention={"orders": "1d"})})
    lines.clear()
    Scheduler(off, _Clock(dt.datetime(2026, 5, 10, 1, 0, tzinfo=tz)), published, out=lines.append).run(
        until=dt.datetime(2026, 5, 10, 3, 0, tzinfo=tz)
    )
    assert not [line for line in lines if '"retention"' in line]
    assert pl.read_parquet(_current(company, "erp", "orders")).height == 24


@pytest.mark.usefixtures("fresh_caches")
def test_the_admin_pages_privacy_tab_previews_retention_and_erases_a_person(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dashboard.i18n import t
    from tests.fixture_data import open_app_page

    cfg = company.base_dir / "cockpit.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + '\n[privacy.retention]\nleads = "30d"\n', encoding="utf-8")
    at = open_app_page(company, monkeypatch, "admin")
    assert t("admin.privacy", "en") in [tab.label for tab in at.tabs]
    at.toggle(key="privacy_preview").set_value(True).run()
    assert not at.exception, at.exception
    captions = [c.value for c in at.caption]
    assert any("rows are past their retention" in c for c in captions), captions

    at.selectbox(key="privacy_kind").set_value("phone")
    at.text_input(key="privacy_value").input("+86 138-0013-8000")
    at.text_input(key="privacy_reason").input("PIPL request")
    next(b for b in at.button if b.label == t("privacy.forget_button", "en")).click().run()
    assert not at.exception, at.exception
    assert [s.value for s in at.success if "Erased person:" in s.value]
    assert rows_naming(company, PHONE, ID_NUMBER) == {}
    assert audit.read(company, action="privacy_forget").row(0, named=True)["user"] == "anonymous"

    at.selectbox(key="privacy_kind").set_value("phone")
    at.text_input(key="privacy_value").input("12345")
    at.text_input(key="privacy_reason").input("typo")
    next(b for b in at.button if b.label == t("privacy.forget_button", "en")).click().run()
    assert [e.value for e in at.error if "'12345' is not a mobile number" in e.value]


def test_on_the_demo_a_person_the_call_center_keys_by_phone_is_erased_and_their_copy_is_complete(
    small_demo: Settings, tmp_path: Path
) -> None:
    from dashboard.core.config import load_settings

    shutil.copytree(small_demo.base_dir, tmp_path / "demo")
    settings = load_settings(tmp_path / "demo" / "cockpit.toml")
    golden = pl.read_parquet(_derived(settings, "customer_golden"))
    person = (
        golden.filter(pl.col("sources").list.contains("call_center") & pl.col("phone").str.contains(r"^1\d{10}$"))
        .sort(pl.col("sources").list.len(), "customer_key", descending=[True, False])
        .row(0, named=True)
    )
    phone = person["phone"]
    calls = pl.read_parquet(_current(settings, "call_center", "interactions"))
    their_calls = calls.filter(pl.col("customer_ref") == phone).height
    assert their_calls and rows_naming(settings, phone)

    copy = privacy.export_person(settings, privacy.parse_identifier("phone", phone), tmp_path / "copy", Who("t"))
    assert copy.files["interactions.csv"] >= their_calls
    assert copy.files["golden_record.csv"] == 1

    proof = privacy.forget(settings, privacy.parse_identifier("phone", phone), "PIPL request", Who("t"))
    assert proof.rows >= their_calls
    assert rows_naming(settings, phone) == {}
    assert pl.read_parquet(_current(settings, "call_center", "interactions")).height == calls.height - their_calls
    assert refresh(settings).exit_code == 0  # the demo's raw inputs still hold the person: kept out
    assert rows_naming(settings, phone) == {}
