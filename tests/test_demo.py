"""The demo generator: deterministic, every source in the format its system exports, mapped by
cockpit.toml, dirty in the promised ways, and with a ground truth that covers every record."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import Settings, SourceConfig, TableConfig, load_settings
from dashboard.core.entities import ENTITIES
from dashboard.core.errors import ConfigError
from dashboard.demo import CHANNEL_LABELS, SIZES, STAGE_LABELS, DemoResult, generate

REPO = Path(__file__).resolve().parents[1]
AS_OF = date(2025, 3, 15)
SOURCES = (
    "crm",
    "erp",
    "web_forms",
    "wechat",
    "call_center",
    "pos",
    "purchased_leads",
    "trade_show",
    "marketing",
)
LEAD_CHANNELS = {c for c in CHANNEL_LABELS if c not in ("wecom", "direct_sales")}
MOBILE = re.compile(r"^1[3-9]\d{9}$")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    return generate(tmp_path_factory.mktemp("demo"), "small", seed=7, as_of=AS_OF)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings(REPO / "cockpit.toml")


# ------------------------------------------------------------------------------------------ helpers


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _files(result: DemoResult, table: TableConfig) -> list[Path]:
    assert table.path.startswith("data/raw/demo/"), table.path
    data_dir = result.raw_dir.parent.parent
    return sorted(data_dir.glob(table.path.removeprefix("data/")))


def _read(path: Path, source: SourceConfig, table: TableConfig) -> pl.DataFrame:
    """Every value as text, the way a plain reader of that format sees it."""
    if source.kind == "csv":
        raw = path.read_bytes()
        for enc in ("utf-8-sig", "gbk"):
            try:
                text = raw.decode(enc)
                break
            except UnicodeDecodeError:
                continue
        return pl.read_csv(io.BytesIO(text.encode()), separator=table.delimiter or ",", infer_schema=False)
    if source.kind == "parquet":
        return pl.read_parquet(path).cast(pl.String)
    if source.kind == "json":
        df = pl.read_json(path) if path.read_bytes()[:1] == b"[" else pl.read_ndjson(path)
        return df.cast(pl.String)
    if source.kind == "excel":
        return pl.read_excel(path, sheet_name=table.sheet, infer_schema_length=0)
    raise AssertionError(source.kind)


def _table(result: DemoResult, settings: Settings, source: str, entity: str) -> tuple[pl.DataFrame, TableConfig]:
    """All files of one configured table, renamed to canonical columns (constants added)."""
    src = settings.source(source)
    table = next(t for t in src.tables if t.entity == entity)
    frames = [_read(p, src, table) for p in _files(result, table)]
    df = pl.concat(frames)
    out = df.select([pl.col(raw).alias(canon) for canon, raw in table.columns.items()])
    return out.with_columns([pl.lit(str(v)).alias(k) for k, v in table.constants.items()]), table


def _tables(result: DemoResult, settings: Settings, entity: str) -> dict[str, pl.DataFrame]:
    return {
        s.name: _table(result, settings, s.name, entity)[0]
        for s in settings.sources
        if any(t.entity == entity for t in s.tables)
    }


def _key(label: str) -> str:
    return re.sub(r"\s+", " ", label.lower()).strip()


def _phone_digits(e: pl.Expr) -> pl.Expr:
    return e.str.replace_all(r"[\s\-]", "").str.replace(r"^(\+86|0086)", "")


# ------------------------------------------------------------------------------------------ tests


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", "small", seed=42, as_of=AS_OF)
    b = generate(tmp_path / "b", "small", seed=42, as_of=AS_OF)
    c = generate(tmp_path / "c", "small", seed=43, as_of=AS_OF)
    da, db, dc = _digests(tmp_path / "a"), _digests(tmp_path / "b"), _digests(tmp_path / "c")
    assert da == db
    assert a.counts == b.counts
    assert len(da) >= 9 + 1
    changed = [name for name in da if dc.get(name) != da[name]]
    assert "raw/demo/crm/crm_leads.csv" in changed
    assert "raw/demo/purchased_leads/purchased_leads.xlsx" in changed
    assert "demo_truth/identity.csv" in changed
    assert c.counts != a.counts


def test_each_call_replaces_the_demo_folder(tmp_path: Path) -> None:
    stale = tmp_path / "raw" / "demo" / "crm" / "old_export.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("x\n1\n", encoding="utf-8")
    mine = tmp_path / "raw" / "my_drop" / "keep.csv"  # other raw folders are not the generator's
    mine.parent.mkdir(parents=True)
    mine.write_text("x\n1\n", encoding="utf-8")
    result = generate(tmp_path, "small", seed=1, as_of=AS_OF)
    assert not stale.exists()
    assert mine.exists()
    assert result.raw_dir == tmp_path / "raw" / "demo"
    assert result.truth_path == tmp_path / "demo_truth" / "identity.csv"
    assert all(p.is_file() and p.is_relative_to(result.raw_dir) for p in result.files)


def test_unknown_size_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="huge"):
        generate(tmp_path, "huge")
    assert not (tmp_path / "raw").exists()
    assert set(SIZES) == {"small", "medium", "large"}
    assert SIZES["small"] < SIZES["medium"] < SIZES["large"]


def test_every_source_folder_holds_its_systems_export_format(demo: DemoResult) -> None:
    raw = demo.raw_dir
    assert sorted(p.name for p in raw.iterdir()) == sorted(SOURCES)
    for source in SOURCES:
        assert any((raw / source).iterdir()), source

    # CRM: plain UTF-8 CSV, Chinese headers
    crm = (raw / "crm" / "crm_leads.csv").read_bytes()
    assert not crm.startswith(b"\xef\xbb\xbf")
    assert crm.decode("utf-8").startswith("线索编号,创建时间,线索来源")

    # ERP: Parquet with SAP field names, dates as yyyymmdd text
    kna1 = pl.read_parquet(raw / "erp" / "kna1_customers.parquet")
    assert {"KUNNR", "NAME1", "TELF1", "ERDAT"} <= set(kna1.columns)
    assert kna1["ERDAT"].str.contains(r"^\d{8}$").all()
    contracts = pl.read_parquet(raw / "erp" / "contracts.parquet")
    overdue = contracts.filter((pl.col("NETDT") < AS_OF.strftime("%Y%m%d")) & (pl.col("ZPAID_AMT") < pl.col("NETWR")))
    assert 0 < overdue.height < contracts.height * 0.3
    assert overdue["AUGDT"].null_count() > 0  # some of them not paid at all

    # web forms: JSON Lines with a form field and ISO timestamps with the zone
    lines = (raw / "web_forms" / "form_submissions.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["form"] for r in records} == {"官网", "H5", "小程序"}
    assert all(r["id"].startswith("WEB-") for r in records)
    assert datetime.fromisoformat(records[0]["submitted_at"]).utcoffset() == timedelta(hours=8)

    # WeChat: JSON arrays (fans with a phone, events of several kinds)
    fans = json.loads((raw / "wechat" / "fans.json").read_text(encoding="utf-8"))
    assert isinstance(fans, list) and any(f["mobile"] for f in fans) and any(not f["mobile"] for f in fans)
    events = json.loads((raw / "wechat" / "events_0001.json").read_text(encoding="utf-8"))
    assert isinstance(events, list)
    assert {"subscribe", "text", "wecom_chat"} <= {e["event"] for e in events}

    # call center: ';'-separated monthly files with complaints and service calls
    calls = sorted((raw / "call_center").glob("calls_*.csv"))
    assert len(calls) >= 20
    header = calls[0].read_text(encoding="utf-8").splitlines()[0]
    assert header.count(";") >= 8 and "," not in header
    types = pl.concat([pl.read_csv(p, separator=";", infer_schema=False) for p in calls])["call_type"]
    assert {"Complaint", "Service Request"} <= set(types)

    # POS: UTF-8 with BOM
    for name in ("members.csv", "sales.csv"):
        assert (raw / "pos" / name).read_bytes().startswith(b"\xef\xbb\xbf")

    # purchased list: a real xlsx, the import date partly as bare Excel serial numbers
    xlsx = raw / "purchased_leads" / "purchased_leads.xlsx"
    assert zipfile.is_zipfile(xlsx)
    listed = pl.read_excel(xlsx, infer_schema_length=0)
    assert listed.height > 0 and listed["线索编号"].str.starts_with("PL-").all()
    dates = listed["入库日期"]
    assert dates.str.contains(r"^4\d{4}$").any()  # 45356
    assert dates.str.contains("年").any()  # 2024年3月5日

    # trade show: GBK (not UTF-8), Excel-style CRLF, dates like 2024/3/5 14:02
    shows = sorted((raw / "trade_show").glob("*.csv"))
    assert shows
    for path in shows:
        data = path.read_bytes()
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
        text = data.decode("gbk")
        assert b"\r\n" in data
        first = pl.read_csv(io.StringIO(text), infer_schema=False)
        assert first["登记时间"].str.contains(r"^\d{4}/\d{1,2}/\d{1,2} \d{2}:\d{2}$").all()

    # marketing spend: Chinese dates
    spend = pl.read_csv(raw / "marketing" / "spend_daily.csv", infer_schema=False)
    assert spend["日期"].str.contains(r"^\d{4}年\d{1,2}月\d{1,2}日$").all()


def test_cockpit_toml_maps_every_file_onto_the_required_columns(demo: DemoResult, settings: Settings) -> None:
    assert settings.source_names == list(SOURCES)
    assert str(settings.data_dir) == "data" and settings.language == "zh"
    entities_seen = set()
    for source in settings.sources:
        assert source.title and source.owner and source.schedule
        for table in source.tables:
            files = _files(demo, table)
            assert files, f"{source.name}: nothing matches {table.path}"
            entity = ENTITIES[table.entity]
            provided = set(table.columns) | set(table.constants)
            assert set(entity.required) <= provided, (source.name, table.entity)
            frames = []
            for path in files:
                df = _read(path, source, table)
                missing = set(table.columns.values()) - set(df.columns)
                assert not missing, f"{path.name}: no column {missing}"
                frames.append(df.select(table.columns.values()))
            df = pl.concat(frames)
            for canon in entity.required:  # a snapshot (all files) keeps empty required values under 1 %
                if canon in table.columns:
                    col = df[table.columns[canon]]
                    empty = col.is_null() | (col.str.strip_chars() == "")
                    assert empty.mean() < 0.01, (source.name, table.entity, canon)  # type: ignore[operator]
            entities_seen.add(table.entity)
    assert entities_seen == set(ENTITIES)


def test_counts_match_the_files_and_the_small_size(demo: DemoResult, settings: Settings) -> None:
    assert {k.split(".")[0] for k in demo.counts} == set(SOURCES)
    for source in settings.sources:
        for table in source.tables:
            df, _ = _table(demo, settings, source.name, table.entity)
            assert demo.counts[f"{source.name}.{table.entity}"] == df.height
    n = SIZES["small"]
    leads = sum(v for k, v in demo.counts.items() if k.endswith(".leads"))
    interactions = sum(v for k, v in demo.counts.items() if k.endswith(".interactions"))
    customers = sum(v for k, v in demo.counts.items() if k.endswith(".customers"))
    assert 1.1 * n <= leads <= 1.3 * n
    assert 8 * n <= interactions <= 12 * n
    assert 1.5 * n <= customers <= 3 * n
    truth = pl.read_csv(demo.truth_path, infer_schema=False)
    customer_persons = truth.filter(pl.col("source_system").is_in(["erp", "pos", "crm"]))["person_id"].n_unique()
    assert 0.6 * n <= customer_persons <= 1.5 * n


def test_truth_covers_every_customer_and_lead_record(demo: DemoResult, settings: Settings) -> None:
    truth = pl.read_csv(demo.truth_path, infer_schema=False)
    assert truth.columns == ["source_system", "source_record_id", "person_id"]
    assert truth.select("source_system", "source_record_id").is_unique().all()
    expected: set[tuple[str, str]] = set()
    for source, df in _tables(demo, settings, "customers").items():
        expected |= {(source, r) for r in df["source_record_id"]}
    for source, df in _tables(demo, settings, "leads").items():
        expected |= {(source, r) for r in df["lead_id"]}
    have = set(zip(truth["source_system"], truth["source_record_id"], strict=True))
    assert expected <= have
    # the only other records: the phone numbers the call center knows its callers by
    extra = have - expected
    calls, _ = _table(demo, settings, "call_center", "interactions")
    assert extra == {("call_center", r) for r in calls["customer_ref"].drop_nulls()}

    per_person = truth.group_by("person_id").agg(pl.col("source_system").n_unique().alias("k"))
    assert (per_person["k"] >= 2).sum() > 0.2 * per_person.height
    assert (per_person["k"] >= 4).sum() > 0


def test_the_same_person_carries_different_phone_formats_and_name_typos(demo: DemoResult, settings: Settings) -> None:
    truth = pl.read_csv(demo.truth_path, infer_schema=False)
    frames = []
    for entity, key in (("customers", "source_record_id"), ("leads", "lead_id")):
        for source, df in _tables(demo, settings, entity).items():
            if "phone" in df.columns:
                frames.append(
                    df.select(
                        pl.lit(source).alias("source_system"),
                        pl.col(key).alias("source_record_id"),
                        pl.col("phone"),
                        pl.col("name") if "name" in df.columns else pl.lit(None, pl.String).alias("name"),
                    )
                )
    people = pl.concat(frames).unique().join(truth, on=["source_system", "source_record_id"])
    phones = people["phone"].drop_nulls()
    for pattern in (
        r"^\+86 1\d{2}-\d{4}-\d{4}$",  # +86 138-0013-8000
        r"^1[3-9]\d{9}$",  # 13800138000
        r"^1\d{2} \d{4} \d{4}$",  # 138 0013 8000
        r"^0086 1\d{10}$",  # 0086 13800138000
    ):
        assert phones.str.contains(pattern).any(), pattern
    digits = people.with_columns(_phone_digits(pl.col("phone")).alias("d")).drop_nulls("phone")
    same = digits.group_by("person_id").agg(
        pl.col("d").n_unique().alias("numbers"), pl.col("phone").n_unique().alias("spellings")
    )
    assert same.filter((pl.col("numbers") == 1) & (pl.col("spellings") >= 2)).height > 50
    names = people.drop_nulls("name").group_by("person_id").agg(pl.col("name").str.strip_chars().n_unique())
    assert (names["name"] >= 2).sum() > 10  # typos: a changed or similar character


def test_dirt_stays_within_the_quality_gates_limits(demo: DemoResult, settings: Settings) -> None:
    for entity in ("customers", "leads"):
        for source, df in _tables(demo, settings, entity).items():
            if "phone" in df.columns and df["phone"].drop_nulls().len():
                phones = df["phone"].drop_nulls()
                digits = pl.select(_phone_digits(pl.lit(phones))).to_series()
                invalid = (~digits.str.contains(MOBILE.pattern)).mean()
                assert invalid is not None and 0 < invalid <= 0.03, (source, entity, invalid)  # type: ignore[operator]
            if "email" in df.columns and df["email"].drop_nulls().len():
                emails = df["email"].drop_nulls()
                bad = (
                    ~emails.str.contains(r"^[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}$")
                ).mean()
                assert bad is not None and bad <= 0.03, (source, entity, bad)  # type: ignore[operator]
                assert emails.str.contains(r"[A-Z]").any()  # case differs between systems
    chinese = {"crm": "leads", "erp": "customers", "trade_show": "leads", "pos": "customers"}
    for source, entity in chinese.items():
        missing = _table(demo, settings, source, entity)[0]["email"].is_null().mean()
        assert missing is not None and 0.4 <= missing <= 0.9, (source, missing)  # type: ignore[operator]
    # a few exact duplicated rows, and a few leads with no channel at all
    raw = _read(demo.raw_dir / "pos" / "sales.csv", settings.source("pos"), settings.source("pos").tables[1])
    dup_share = 1 - raw.unique().height / raw.height
    assert 0.002 <= dup_share <= 0.01
    leads = _tables(demo, settings, "leads")
    no_channel = sum(df["channel"].is_null().sum() for df in leads.values())
    assert 0 < no_channel < 0.01 * sum(df.height for df in leads.values())


def test_aliases_cover_every_channel_and_stage_label(demo: DemoResult, settings: Settings) -> None:
    channels = settings.channel_lookup()
    for canonical, labels in CHANNEL_LABELS.items():
        for label in labels:
            assert channels.get(_key(label)) == canonical, label
    lead_channels: set[str] = set()
    for df in _tables(demo, settings, "leads").values():
        for label in df["channel"].drop_nulls().unique():
            assert _key(label) in channels, label
            lead_channels.add(channels[_key(label)])
    spend, _ = _table(demo, settings, "marketing", "marketing_spend")
    spend_channels = {channels[_key(label)] for label in spend["channel"].unique()}
    assert lead_channels == spend_channels == LEAD_CHANNELS
    assert spend["channel"].n_unique() > len(LEAD_CHANNELS)  # written several ways
    for df in _tables(demo, settings, "interactions").values():
        assert all(_key(c) in channels for c in df["channel"].unique())

    stages = settings.stage_lookup()
    for canonical, (english, chinese) in STAGE_LABELS.items():
        for label in (*english, *chinese):
            assert stages[_key(label)] == canonical, label
    events, _ = _table(demo, settings, "crm", "lead_events")
    used = set(events["stage"].unique())
    assert {"赢单", "Closed Won", "商机", "线索"} <= used
    assert all(_key(s) in stages for s in used)


def test_the_crm_holds_a_realistic_funnel_for_every_lead(demo: DemoResult, settings: Settings) -> None:
    events, _ = _table(demo, settings, "crm", "lead_events")
    stages = settings.stage_lookup()
    events = events.with_columns(pl.col("stage").map_elements(lambda s: stages[_key(s)], return_dtype=pl.String))
    leads = _tables(demo, settings, "leads")
    prefixes = {"crm": "CRM-", "web_forms": "WEB-", "trade_show": "TS-", "purchased_leads": "PL-"}
    all_ids: set[str] = set()
    for source, df in leads.items():
        ids = set(df["lead_id"])
        assert all(i.startswith(prefixes[source]) for i in ids)
        assert not ids & all_ids  # globally unique
        all_ids |= ids
    assert all_ids == set(events["lead_id"])
    reached = events.group_by("stage").agg(pl.col("lead_id").n_unique()).to_dict(as_series=False)
    share = {s: n / len(all_ids) for s, n in zip(reached["stage"], reached["lead_id"], strict=True)}
    assert share["lead"] == 1.0
    assert 0.3 <= share["mql"] <= 0.5
    assert 0.4 <= share["sql"] / share["mql"] <= 0.6
    assert 0.03 <= share["won"] <= 0.06
    assert share["lost"] > share["won"]
    won = events.filter(pl.col("stage") == "won")
    assert won["amount"].is_not_null().all()
    assert events.filter(pl.col("stage") != "won")["amount"].is_null().all()
    times = events.with_columns(pl.col("occurred_at").str.to_datetime("%Y-%m-%d %H:%M:%S"))
    order = ["lead", "mql", "sql", "opportunity"]
    first = times.filter(pl.col("stage").is_in(order)).pivot("stage", index="lead_id", values="occurred_at")
    for a, b in itertools.pairwise(order):
        both = first.drop_nulls([a, b])
        assert (both[b] > both[a]).all(), (a, b)


def test_the_data_covers_two_years_up_to_as_of(demo: DemoResult, settings: Settings) -> None:
    leads, _ = _table(demo, settings, "crm", "leads")
    created = leads["created_at"].str.to_datetime("%Y-%m-%d %H:%M:%S")
    cutoff = datetime(AS_OF.year, AS_OF.month, AS_OF.day, 12)
    assert created.max() is not None and created.max() <= cutoff  # type: ignore[operator]
    assert (created.dt.date() == AS_OF).sum() >= 1  # leads of today
    web, _ = _table(demo, settings, "web_forms", "leads")
    assert web["created_at"].str.starts_with(AS_OF.isoformat()).any()
    spend, _ = _table(demo, settings, "marketing", "marketing_spend")
    days = pl.Series([date(*map(int, re.findall(r"\d+", s))) for s in spend["spend_date"]])  # 2024年3月5日
    first_day, last_day = days.min(), days.max()
    assert isinstance(first_day, date) and isinstance(last_day, date)
    assert (AS_OF - first_day).days >= 700
    assert (AS_OF - last_day).days <= 2


def test_a_cohort_goes_quiet_before_leaving(demo: DemoResult, settings: Settings) -> None:
    orders, _ = _table(demo, settings, "pos", "orders")
    cutoff = datetime(AS_OF.year, AS_OF.month, AS_OF.day)
    start = cutoff - timedelta(days=730)
    t = orders.with_columns(pl.col("ordered_at").str.to_datetime("%Y-%m-%d %H:%M:%S").alias("t")).with_columns(
        ((pl.col("t") - start).dt.total_days() // 91).alias("quarter")
    )
    last = t.group_by("customer_ref").agg(pl.col("t").max().alias("last"))
    quiet = last.filter(pl.col("last") < cutoff - timedelta(days=120))["customer_ref"]
    assert 0.1 * last.height < quiet.len() < 0.5 * last.height

    def trend(df: pl.DataFrame) -> float:
        early = df.filter(pl.col("quarter") <= 1).height
        late = df.filter(pl.col("quarter").is_between(5, 6)).height
        return late / early

    # orders of customers who stopped thin out over the quarters before; the others' grow
    assert trend(t.filter(pl.col("customer_ref").is_in(quiet.implode()))) < 0.8
    assert trend(t.filter(~pl.col("customer_ref").is_in(quiet.implode()))) > 1.0
