"""An incremental refresh publishes what a full refresh of the same inputs publishes (issue 22, point 1).

The small demo company is refreshed in full once; then one source gets about 1 % new and changed rows and
only that source is refreshed (unchanged derived steps keep their tables). A second data folder holding
the same raw files is built from empty, and every named query, as a manager sees it, must give the same
rows in both. Customer keys are stable names handed on from build to build, so a key is compared by the
records it names (the same records in both folders), not by its spelling.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dashboard.core.config import Settings, load_settings
from dashboard.core.keys import PSEUDONYM_KEY, own_key
from dashboard.core.store import Store
from dashboard.demo import generate
from dashboard.ops.status import source_status
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import Principal
from dashboard.query.warehouse import Warehouse, list_queries
from tests.test_cli import cockpit

REPO = Path(__file__).resolve().parents[1]
MANAGER = Principal("m", "manager")
# Queries about the refresh history itself: the incremental folder ran two refreshes, the empty one one.
HISTORY = {"validation_history", "expectation_results", "quality_trend"}
# Columns that name a run (its time or id), not a published number.
KEY_COLUMNS = {"customer_key", "old_key"}
RUN_COLUMNS = {
    "snapshot_id",
    "last_attempt_at",
    "validated_at",
    "published_at",
    "built_at",
    "trained_at",
    "snapshot_at",
    "merged_at",
}


def _orders(raw: Path) -> list[str]:
    """ERP: 1 % new orders of existing customers and 1 % changed amounts (customers untouched)."""
    path = raw / "erp" / "vbak_orders.parquet"
    orders = pl.read_parquet(path)
    n = max(orders.height // 100, 1)
    changed = orders.with_columns(
        pl.when(pl.int_range(pl.len()) < n).then(pl.col("NETWR") * 2).otherwise(pl.col("NETWR")).alias("NETWR")
    )
    new = orders.tail(n).with_columns(("9" + pl.col("VBELN").str.slice(1)).alias("VBELN"))
    pl.concat([changed, new]).write_parquet(path)
    return ["erp"]


def _forms(raw: Path) -> list[str]:
    """Web forms: 1 % new submissions (new leads: identity resolves them against the existing customers)."""
    path = raw / "web_forms" / "form_submissions.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    n = max(len(lines) // 100, 1)
    extra = [{**json.loads(line), "id": f"WEB-9{i:07d}"} for i, line in enumerate(lines[-n:])]
    path.write_text("\n".join([*lines, *(json.dumps(r, ensure_ascii=False) for r in extra)]) + "\n", encoding="utf-8")
    return ["web_forms"]


def _calls(raw: Path) -> list[str]:
    """Call center: a new month file repeating 1 % of the calls (known callers, some about leads): the
    records identity resolves stay the same, the journeys attribution follows do not."""
    files = sorted((raw / "call_center").glob("calls_*.csv"))
    rows = [line for f in files for line in f.read_text(encoding="utf-8").splitlines()[1:]]
    header = files[0].read_text(encoding="utf-8").splitlines()[0]
    again = [f"CL9{line[3:]}" for line in rows[::100]]
    (raw / "call_center" / "calls_209901.csv").write_text("\n".join([header, *again]) + "\n", encoding="utf-8")
    return ["call_center"]


def _spend(raw: Path) -> list[str]:
    """Marketing: one day's spend changed (only the channel tables depend on it)."""
    path = raw / "marketing" / "spend_daily.csv"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # the last day's row taken back
    return ["marketing"]


def _customers(raw: Path) -> list[str]:
    """CRM accounts: 1 % new (known contacts again under new account numbers) and 1 % with another mobile
    number (the last digit changed): identity resolves them against the existing clusters."""
    path = raw / "crm" / "crm_accounts.csv"
    accounts = pl.read_csv(path, infer_schema=False)
    n = max(accounts.height // 100, 1)
    phone = pl.col("手机")
    changed = accounts.with_columns(
        pl.when(pl.int_range(pl.len()) < n).then(phone.str.replace(r"\d$", "7")).otherwise(phone).alias("手机")
    )
    new = accounts.tail(n).with_columns(("KH9" + pl.col("客户编号").str.slice(3)).alias("客户编号"))
    pl.concat([changed, new]).write_csv(path)
    return ["crm"]


def _pinned(src: Settings, dest: Settings) -> Settings:
    """``dest`` scoring identity with ``src``'s Splink parameters ([identity] model). An incremental build
    scores with the parameters trained earlier; a build from empty would train its own on the changed
    records, and retrained parameters move match probabilities a little (README, identity resolution): the
    same links need the same parameters, so they are an input here like the raw files."""
    model = dest.base_dir / "identity_model.json"
    out = cockpit("--config", str(src.base_dir / "cockpit.toml"), "identity", "export-model", str(model))
    assert out.returncode == 0, out.stderr
    cfg = dest.base_dir / "cockpit.toml"
    text = cfg.read_text(encoding="utf-8")
    line = 'model = "identity_model.json"\n'
    text = (
        text.replace("[identity]\n", "[identity]\n" + line) if "[identity]\n" in text else f"{text}\n[identity]\n{line}"
    )
    cfg.write_text(text, encoding="utf-8")
    return load_settings(cfg)


def _identity_resolution(settings: Settings) -> str:
    store = Store(settings.data_path)
    rel = store.read_manifest()["derived"]["tables"]["identity_model"]
    return str(pl.read_parquet(store.abs(rel))["resolution"][0])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small demo, refreshed in full once."""
    root = tmp_path_factory.mktemp("built")
    shutil.copy(REPO / "cockpit.toml", root / "cockpit.toml")
    generate(root / "data", "small", 42)
    assert refresh(load_settings(root / "cockpit.toml")).exit_code == 0
    return root


def _copy(src: Path, dest: Path, with_state: bool) -> Settings:
    shutil.copy(src / "cockpit.toml", dest / "cockpit.toml")
    if with_state:
        shutil.copytree(src / "data", dest / "data", symlinks=True)
        return load_settings(dest / "cockpit.toml")
    # the raw files, and the installation's own key: pseudonyms are keyed, the same key gives the same names
    shutil.copytree(src / "data" / "raw", dest / "data" / "raw")
    (dest / "data" / "runs").mkdir()
    own_key(src / "data", PSEUDONYM_KEY)
    shutil.copy(src / "data" / "runs" / PSEUDONYM_KEY, dest / "data" / "runs" / PSEUDONYM_KEY)
    return load_settings(dest / "cockpit.toml")


def _key_names(settings: Settings) -> pl.DataFrame:
    """Each customer key → the records it names (sorted), which is what a key means."""
    store = Store(settings.data_path)
    links = pl.read_parquet(store.abs(store.read_manifest()["derived"]["tables"]["identity_links"]))
    return links.group_by("customer_key").agg(
        pl.concat_str("source_system", "source_record_id", separator=":").sort().str.join("|").alias("members")
    )


def _served(settings: Settings, name: str, keys: pl.DataFrame) -> pl.DataFrame:
    frame = Warehouse(settings).run_query(name, user=MANAGER)
    frame = frame.drop([c for c in frame.columns if c in RUN_COLUMNS])
    for col in [c for c in frame.columns if c in KEY_COLUMNS]:
        renamed = keys.rename({"customer_key": col, "members": f"{col}__members"})
        frame = frame.join(renamed, on=col, how="left", maintain_order="left").drop(col)
    return frame.sort(frame.columns, nulls_last=True) if frame.columns else frame


CHANGES: dict[str, Callable[[Path], list[str]]] = {
    "orders": _orders,
    "forms": _forms,
    "calls": _calls,
    "spend": _spend,
    "customers": _customers,
}
# What each change must not make again: the derived steps whose inputs it leaves alone.
KEPT = {
    "orders": {"identity", "analytics"},
    "forms": set(),
    "calls": {"identity"},
    "spend": {"identity", "golden", "churn"},
    "customers": set(),
}


@pytest.mark.slow
@pytest.mark.parametrize("change", list(CHANGES))
def test_an_incremental_refresh_serves_what_a_full_refresh_does(built: Path, tmp_path: Path, change: str) -> None:
    (tmp_path / "incr").mkdir()
    (tmp_path / "full").mkdir()
    incr = _copy(built, tmp_path / "incr", with_state=True)
    changed = CHANGES[change](incr.data_path / "raw" / "demo")
    result = refresh(incr, changed)
    assert result.exit_code == 0
    assert not any(s.unchanged for s in result.sources)
    assert KEPT[change] <= set(result.reused), result.reused

    again = refresh(incr)  # nothing changed since: every source and every derived step kept
    assert all(s.unchanged for s in again.sources)
    assert set(again.reused) == {"identity", "analytics", "golden", "churn"}

    if "identity" not in result.reused:  # new and changed records resolved against the existing clusters
        assert _identity_resolution(incr) == "incremental"
    full = _copy(tmp_path / "incr", tmp_path / "full", with_state=False)  # the same raw files, no state
    full = _pinned(incr, full)  # ... and the same identity parameters
    assert refresh(full).exit_code == 0

    keys_incr, keys_full = _key_names(incr), _key_names(full)
    assert sorted(keys_incr["members"].to_list()) == sorted(keys_full["members"].to_list())
    for name in list_queries():
        if name in HISTORY:
            continue
        ours, theirs = _served(incr, name, keys_incr), _served(full, name, keys_full)
        # floats to 1e-9: DuckDB's parallel sums add in no fixed order, so two full refreshes differ there too
        try:
            assert_frame_equal(ours, theirs, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
        except AssertionError as e:
            pytest.fail(f"{name}: the incremental refresh serves other rows than a full refresh: {e}")


# -- what a refresh skips, on the small fixture company -------------------------------------------------------
def _snapshots(settings: Settings) -> dict[str, str]:
    return {s: e["snapshot_id"] for s, e in Store(settings.data_path).read_manifest()["sources"].items()}


def test_a_source_whose_files_did_not_change_keeps_its_snapshot(company: Settings) -> None:
    before = _snapshots(company)
    checked_before = Store(company.data_path).read_manifest()["sources"]["crm"]["published_at"]
    spend = company.base_dir / "imports" / "marketing" / "spend.csv"
    spend.write_text(spend.read_text(encoding="utf-8") + "SEM,2026-03-20,500\n", encoding="utf-8")

    result = refresh(company)

    assert result.exit_code == 0
    assert [s.source for s in result.sources if not s.unchanged] == ["marketing"]
    after = _snapshots(company)
    assert {s for s in after if after[s] != before[s]} == {"marketing"}
    assert {"identity", "golden", "churn"} <= set(result.reused)  # none of them reads the spend
    [crm] = [s for s in result.sources if s.source == "crm"]
    assert crm.published and crm.snapshot_id == before["crm"] and crm.rows["leads"] > 0
    [shown] = [s for s in source_status(company) if s.name == "crm"]  # checked now: as fresh as a republish
    assert shown.snapshot_id == before["crm"] and shown.published_at is not None
    assert shown.published_at > checked_before and not shown.stale
    sem = Warehouse(company).run_query("channel_summary", user=MANAGER).filter(pl.col("channel") == "paid_search")
    assert sem["cost"].item() == 3500.0  # the new spend is served


def test_full_reads_and_makes_everything_again(company: Settings) -> None:
    before = _snapshots(company)
    result = refresh(company, full=True)
    assert result.exit_code == 0 and result.reused == []
    assert not any(s.unchanged for s in result.sources)
    after = _snapshots(company)
    assert all(after[s] != before[s] for s in before)


def test_a_changed_setting_reads_the_sources_again(company: Settings) -> None:
    cfg = company.base_dir / "cockpit.toml"
    text = cfg.read_text(encoding="utf-8")
    cfg.write_text(text.replace('"baidu_sem", "SEM"]', '"baidu_sem", "SEM", "bing"]'), encoding="utf-8")
    result = refresh(load_settings(cfg), ["marketing"])
    assert not result.sources[0].unchanged


def test_the_command_says_what_it_kept(company: Settings) -> None:
    out = cockpit("--config", str(company.base_dir / "cockpit.toml"), "refresh", "crm")
    assert out.returncode == 0, out.stderr
    assert f"crm: published {_snapshots(company)['crm']}, unchanged since then" in out.stdout
    assert "derived tables kept (their inputs did not change): identity, analytics, golden, churn" in out.stdout
    out = cockpit("--config", str(company.base_dir / "cockpit.toml"), "refresh", "crm", "--full")
    assert out.returncode == 0, out.stderr
    assert "crm: published" in out.stdout and "unchanged" not in out.stdout and "kept" not in out.stdout
