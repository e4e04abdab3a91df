"""`cockpit source add` as a new user runs it on common public export shapes (a marketing funnel, CRM
opportunities with an accounts table, order lines), with English and with Chinese headers: the mapping it
chooses, and the rows each publishes after `--yes` and a refresh. Bad input leaves cockpit.toml untouched."""

from __future__ import annotations

import io
import json
import random
import tomllib
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from dashboard import cli
from tests import dbserver
from tests.dbserver import Server
from tests.test_source_database import EXTRACT_ONLY, cockpit_here

# the refreshes here check the rows each new source publishes: no Data Docs site, no Splink pass (EXTRACT_ONLY)
CONFIG = f"""data_dir = "data"
language = "en"
{EXTRACT_ONLY}
[stage_aliases]
won = ["赢单"]
lost = ["输单"]
"""


def run(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str, str]:
    """The cockpit command in this process (as `cockpit --config ROOT/cockpit.toml ARGS` runs it)."""
    done = cockpit_here(capsys, "--config", str(root / "cockpit.toml"), *args)
    return done.returncode, done.stdout, done.stderr


def company(tmp_path: Path) -> Path:
    root = tmp_path / "co"
    (root / "imports").mkdir(parents=True)
    (root / "cockpit.toml").write_text(CONFIG, encoding="utf-8")
    return root


def mapping(root: Path, name: str) -> list[dict[str, object]]:
    config = tomllib.loads((root / "cockpit.toml").read_text(encoding="utf-8"))
    source = next(s for s in config["sources"] if s["name"] == name)
    return [{"entity": t["entity"], **t.get("constants", {}), **t["columns"]} for t in source["tables"]]


def published(capsys: pytest.CaptureFixture[str], root: Path, name: str) -> dict[str, int]:
    code, out, err = run(capsys, root, "refresh", name, "--quiet")
    assert code == 0, out + err
    code, out, _ = run(capsys, root, "status", "--json")
    return next(s for s in json.loads(out) if s["name"] == name)["rows"]


# -- a marketing funnel (Olist: marketing-qualified leads + closed deals) ---------------------------------
ORIGINS = ["organic_search", "paid_search", "social", "direct_traffic", "email", "referral", "unknown", ""]


def olist(root: Path, zh: bool) -> list[str]:
    rng = random.Random(7)
    mql = ["线索编号,首次接触日期,落地页编号,来源"] if zh else ["mql_id,first_contact_date,landing_page_id,origin"]
    deals = (
        ["线索编号,卖家编号,销售代表编号,成交日期,业务类型,线索类型,申报月收入"]
        if zh
        else ["mql_id,seller_id,sdr_id,won_date,business_segment,lead_type,declared_monthly_revenue"]
    )
    for i in range(600):
        mql_id = f"{rng.getrandbits(128):032x}"
        first = date(2018, 1, 1) + timedelta(days=rng.randrange(330))
        mql.append(f"{mql_id},{first},{rng.getrandbits(64):016x},{rng.choice(ORIGINS)}")
        if i % 6 == 0:  # 100 of the 600 leads are won
            won = datetime.combine(first, datetime.min.time()) + timedelta(days=rng.randrange(5, 90), hours=11)
            deals.append(f"{mql_id},{rng.getrandbits(64):016x},{rng.getrandbits(64):016x},{won},pet,online_medium,0")
    encoding = "gbk" if zh else "utf-8"  # a Chinese Excel saves GBK
    files = [root / "imports" / f"{n}.csv" for n in ("marketing_qualified_leads", "closed_deals")]
    for f, lines in zip(files, (mql, deals), strict=True):
        f.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return [str(f) for f in files]


@pytest.mark.parametrize("zh", [False, True], ids=["en", "zh-gbk"])
def test_marketing_funnel_export(capsys: pytest.CaptureFixture[str], tmp_path: Path, zh: bool) -> None:
    root = company(tmp_path)
    code, out, err = run(capsys, root, "source", "add", *olist(root, zh), "--name", "olist", "--yes")
    assert code == 0, out + err
    key, created, origin, won = ("线索编号", "首次接触日期", "来源", "成交日期") if zh else (
        "mql_id", "first_contact_date", "origin", "won_date"
    )  # fmt: skip
    assert mapping(root, "olist") == [
        {"entity": "leads", "lead_id": key, "created_at": created, "channel": origin},
        {"entity": "lead_events", "stage": "won", "lead_id": key, "occurred_at": won},
    ]
    assert "✔ the sample passes" in out and "✔ added source 'olist'" in out
    assert published(capsys, root, "olist") == {"leads": 600, "lead_events": 100}
    code, out, _ = run(capsys, root, "query", "channel_summary", "--format", "json")
    rows = json.loads(out)
    assert sum(r["leads"] for r in rows) == 600 and sum(r["won"] for r in rows) == 100


# -- CRM opportunities + accounts (Maven "CRM sales opportunities") ---------------------------------------
STAGES = {"Won": 160, "Lost": 120, "Engaging": 90, "Prospecting": 30}
STAGES_ZH = {"Won": "赢单", "Lost": "输单", "Engaging": "Engaging", "Prospecting": "Prospecting"}


def maven(root: Path, zh: bool) -> list[str]:
    rng = random.Random(11)
    accounts = [f"Acme {i:02d}" if not zh else f"客户{i:02d}有限公司" for i in range(85)]
    acc = pl.DataFrame(
        {
            "account": accounts,
            "sector": [rng.choice(["retail", "medical", "software", "finance"]) for _ in accounts],
            "year_established": [str(rng.randrange(1980, 2017)) for _ in accounts],
            "revenue": [f"{rng.uniform(10, 9000):.2f}" for _ in accounts],
            "employees": [str(rng.randrange(10, 20000)) for _ in accounts],
            "office_location": [rng.choice(["United States", "Kenya", "Norway"]) for _ in accounts],
        }
    )
    rows = []
    for stage, n in STAGES.items():
        for _ in range(n):
            engage = date(2017, 1, 1) + timedelta(days=rng.randrange(300))
            close = engage + timedelta(days=rng.randrange(1, 120))
            rows.append(
                {
                    "opportunity_id": f"{rng.getrandbits(32):08X}",
                    "sales_agent": rng.choice(["Moses Frase", "Darcel Schlecht", "Anna Snelling"]),
                    "product": rng.choice(["GTX Plus Basic", "MG Special", "GTXPro"]),
                    "account": "" if stage == "Prospecting" else rng.choice(accounts),
                    "deal_stage": STAGES_ZH[stage] if zh else stage,
                    "engage_date": "" if stage == "Prospecting" else str(engage),
                    "close_date": str(close) if stage in ("Won", "Lost") else "",
                    "close_value": str(rng.randrange(50, 5000)) if stage == "Won" else ("0" if stage == "Lost" else ""),
                }
            )
    opps = pl.DataFrame(rows)
    if zh:  # a Chinese CRM's Excel export
        acc.columns = ["客户", "行业", "成立年份", "营收", "员工数", "办公地点"]
        opps.columns = ["商机编号", "销售人员", "产品", "客户", "销售阶段", "接洽日期", "关闭日期", "成交金额"]
        files = [root / "imports" / "销售商机.xlsx", root / "imports" / "客户.xlsx"]
        opps.write_excel(files[0])
        acc.write_excel(files[1])
    else:
        files = [root / "imports" / "sales_pipeline.csv", root / "imports" / "accounts.csv"]
        opps.write_csv(files[0])
        acc.write_csv(files[1])
    return [str(f) for f in files]


@pytest.mark.parametrize("zh", [False, True], ids=["en-csv", "zh-excel"])
def test_crm_opportunities_with_accounts(capsys: pytest.CaptureFixture[str], tmp_path: Path, zh: bool) -> None:
    root = company(tmp_path)
    code, out, err = run(capsys, root, "source", "add", *maven(root, zh), "--yes")
    assert code == 0, out + err
    name = "xiao_shou_shang_ji" if zh else "sales_pipeline"  # from the first file's name
    cols = ["商机编号", "销售人员", "客户", "销售阶段", "接洽日期", "关闭日期", "成交金额", "行业", "办公地点"]
    opp, agent, account, stage, engage, close, value, sector, office = cols if zh else [
        "opportunity_id", "sales_agent", "account", "deal_stage", "engage_date", "close_date", "close_value",
        "sector", "office_location",
    ]  # fmt: skip
    tables = mapping(root, name)
    assert tables[0] == {
        "entity": "leads", "channel": "unknown", "lead_id": opp, "created_at": engage, "customer_ref": account,
        "owner": agent,
    }  # fmt: skip
    assert tables[1] == {"entity": "lead_events", "lead_id": opp, "stage": stage, "occurred_at": close, "amount": value}
    assert tables[2]["entity"] == "customers" and tables[2]["source_record_id"] == account
    assert tables[2]["industry"] == sector and tables[2]["region"] == office
    # open deals have no close date and prospects no engage date: a normal state, accepted with its numbers
    config = tomllib.loads((root / "cockpit.toml").read_text(encoding="utf-8"))
    quality = config["sources"][0]["quality"]
    assert quality["max_null_share"] == {"leads.created_at": 0.08, "lead_events.occurred_at": 0.31}
    assert quality["max_invalid_share"] == {"lead_events.stage": 0.31}
    assert "as the gate stands, it would quarantine this source" in out and "30 of 400" in out
    # the prospects (no engage date) and the open deals' events (no close date) are set aside, not lost
    assert published(capsys, root, name) == {"leads": 370, "lead_events": 280, "customers": 85}


# -- order lines (an online shop's export: one row per line of an order) --------------------------------------
PRODUCTS = ("净水器 W5", "RO滤芯(3支装)", "智能摄像头 C2", "上门安装服务")


def order_lines(root: Path, zh: bool) -> str:
    rng = random.Random(3)
    lines = []
    for order in range(120):
        when = datetime(2024, 1, 1, 9) + timedelta(hours=rng.randrange(24 * 300))
        customer = f"C{rng.randrange(40):04d}"
        for line in range(1, 1 + (order % 4) + 1):
            qty, price = rng.randrange(1, 5), rng.choice([19.9, 299.0, 1599.0])
            lines.append(
                {
                    "order_id": f"SO{order:06d}",
                    "line_no": line,
                    "customer_id": customer,
                    "order_date": when.strftime("%Y-%m-%d %H:%M:%S"),
                    "product": PRODUCTS[(order + line) % len(PRODUCTS)],  # each line of an order its own product
                    "quantity": qty,
                    "unit_price": price,
                    "line_total": round(qty * price, 2),
                    "status": rng.choice(["paid", "shipped", "refunded"]),
                }
            )
    frame = pl.DataFrame(lines)
    if zh:  # JSON Lines from a mini-program shop's export
        frame.columns = ["订单编号", "行号", "会员号", "下单时间", "商品名称", "数量", "单价", "实付金额", "订单状态"]
        path = root / "imports" / "订单明细.jsonl"
        frame.write_ndjson(path)
    else:
        path = root / "imports" / "order_lines.csv"
        frame.write_csv(path)
    return str(path)


@pytest.mark.parametrize("zh", [False, True], ids=["en-csv", "zh-jsonl"])
def test_order_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path, zh: bool) -> None:
    root = company(tmp_path)
    path = order_lines(root, zh)
    code, out, err = run(capsys, root, "source", "add", path, "--name", "shop", "--yes")
    assert code == 0, out + err
    cols = ["订单编号", "会员号", "下单时间", "实付金额", "商品名称", "数量", "订单状态"]
    oid, cust, when, total, product, qty, status = cols if zh else [
        "order_id", "customer_id", "order_date", "line_total", "product", "quantity", "status"
    ]  # fmt: skip
    assert mapping(root, "shop") == [
        {
            "entity": "orders", "order_id": oid, "customer_ref": cust, "ordered_at": when, "amount": total,
            "product": product, "quantity": qty, "status": status,
        }
    ]  # fmt: skip
    assert published(capsys, root, "shop") == {"orders": 300}


# -- bad input: a clear error naming the file or column, a non-zero exit, cockpit.toml untouched ----------------
def test_bad_input_leaves_the_config_untouched(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = company(tmp_path)
    imports = root / "imports"
    (imports / "notes.docx").write_bytes(b"PK\x03\x04 not a table")
    (imports / "broken.csv").write_bytes(b"\x00\x01\x02binary\x00" * 50)
    (imports / "misc.csv").write_text("foo,bar,baz\n1,2,3\n4,5,6\n", encoding="utf-8")
    (imports / "empty.parquet").write_bytes(b"PAR1 this is not parquet")
    before = (root / "cockpit.toml").read_bytes()
    cases = [
        ("notes.docx", 1, "notes.docx: unknown file type '.docx'"),
        ("missing.csv", 1, "missing.csv: no such file"),
        ("broken.csv", 1, "broken.csv: not a CSV file (binary content)"),
        ("empty.parquet", 1, "empty.parquet: cannot be read as parquet"),
        ("misc.csv", 1, "misc.csv: cannot tell which entity it holds from its headers ('foo', 'bar', 'baz')"),
    ]
    for file, exit_code, message in cases:
        code, out, err = run(capsys, root, "source", "add", str(imports / file), "--yes")
        assert code == exit_code and message in err, (file, out, err)
        assert "Traceback" not in err and "✔ added" not in out
        assert (root / "cockpit.toml").read_bytes() == before
    code, _, err = run(capsys, root, "source", "add", str(imports / "misc.csv"), "--entity", "orders", "--yes")
    assert code == 1 and "as orders: its required columns (customer_ref, ordered_at, amount)" in err
    assert (root / "cockpit.toml").read_bytes() == before


def test_a_taken_name_is_refused_and_the_file_keeps_its_text(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = company(tmp_path)
    (root / "cockpit.toml").write_text(CONFIG + "# my own comment, kept as written\n", encoding="utf-8")
    path = order_lines(root, zh=False)
    code, out, err = run(capsys, root, "source", "add", path, "--name", "shop", "--yes")
    assert code == 0, out + err
    after_first = (root / "cockpit.toml").read_bytes()
    assert after_first.startswith((CONFIG + "# my own comment, kept as written\n").encode())
    code, out, err = run(capsys, root, "source", "add", path, "--name", "shop", "--yes")
    assert code == 2 and "a source named 'shop' already exists" in err
    assert (root / "cockpit.toml").read_bytes() == after_first
    code, _, err = run(capsys, root, "source", "add", path, "--name", "Shop Two", "--yes")
    assert code == 2 and "'Shop Two' must be lower-case letters, digits and _ only" in err
    assert (root / "cockpit.toml").read_bytes() == after_first


def test_without_yes_nothing_is_written_unless_confirmed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = company(tmp_path)
    path = order_lines(root, zh=False)
    before = (root / "cockpit.toml").read_bytes()
    # the answer typed at the prompt (in this process: a process of its own cost ~6 CPU-s of imports each time)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    code, out, err = run(capsys, root, "source", "add", path)
    assert code == 0 and "nothing written" in out, err
    assert 'amount = "line_total"' in out  # the block it would have appended, shown
    assert (root / "cockpit.toml").read_bytes() == before
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, out, err = run(capsys, root, "source", "add", path)
    assert code == 0 and "✔ added source 'order_lines'" in out, err
    assert mapping(root, "order_lines")[0]["amount"] == "line_total"


def test_phones_emails_and_ids_are_mapped_by_content_and_masked_in_the_preview(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = company(tmp_path)
    rows = ["客户号,联系方式,邮件地址,证件,登记日期"]
    for i in range(50):
        rows.append(f"K{i:03d},138{i:08d},user{i}@example.com,11010519491231002X,2024-03-{1 + i % 28:02d}")
    path = root / "imports" / "members.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    code, out, err = run(capsys, root, "source", "add", str(path), "--yes")
    assert code == 0, out + err
    assert mapping(root, "members") == [
        {"entity": "customers", "source_record_id": "客户号", "phone": "联系方式", "email": "邮件地址",
         "id_number": "证件", "created_at": "登记日期"},
    ]  # fmt: skip
    assert "13800000000" not in out and "138****0000" in out  # personal samples are masked
    assert published(capsys, root, "members") == {"customers": 50}


# -- the Import page: the same steps in the browser (driven with Streamlit's AppTest) ------------------------------
@pytest.mark.usefixtures("fresh_caches")
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_import_page_previews_and_saves_a_source(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lang: str
) -> None:
    from streamlit.testing.v1 import AppTest

    from dashboard.core.config import CONFIG_ENV
    from dashboard.i18n import t
    from dashboard.i18n.values import VALUES

    root = company(tmp_path)
    olist(root, zh=lang == "zh")
    monkeypatch.setenv(CONFIG_ENV, str(root / "cockpit.toml"))
    app = Path(cli.__file__).with_name("app.py")
    at = AppTest.from_file(app, default_timeout=60).run()
    if at.sidebar.radio[0].value != lang:
        at.sidebar.radio[0].set_value(lang).run()
    at.switch_page("pages/import_source.py").run()
    assert not at.exception, at.exception
    assert [x.value for x in at.title] == [t("page.import_source", lang)]
    assert [i.value for i in at.info] == [t("import.pick", lang)]
    source_radio = next(r for r in at.radio if r.label == t("import.from", lang))
    source_radio.set_value("path").run()
    at.text_input[0].input("imports/marketing_qualified_leads.csv").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.subheader] == [
        t("import.table", lang, entity=VALUES["entity"]["leads"][lang], file="marketing_qualified_leads.csv")
    ]
    editor = at.dataframe[0].value  # the mapping editor: canonical column, input column, how found, examples
    fields = {
        "zh": ["线索编号 *", "线索创建时间 *"],
        "en": ["Lead id (lead_id) *", "When the lead was captured (created_at) *"],
    }
    assert list(editor.iloc[:2, 0]) == fields[lang]  # canonical fields by the data dictionary's words
    assert list(editor.iloc[:3, 1]) == (
        ["线索编号", "首次接触日期", "来源"] if lang == "zh" else ["mql_id", "first_contact_date", "origin"]
    )
    assert set(editor.iloc[:3, 2]) == {t("import.how.header", lang)}
    name = next(x for x in at.text_input if x.label == t("import.name", lang))
    assert name.value == "marketing_qualified_leads"
    name.input("funnel").run()
    next(b for b in at.button if b.label == t("import.preview", lang)).click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [s.value for s in at.success] == [t("import.passes", lang)]
    block = at.code[0].value
    assert 'name = "funnel"' in block and ('channel = "来源"' if lang == "zh" else 'channel = "origin"') in block
    before = (root / "cockpit.toml").read_text(encoding="utf-8")
    next(b for b in at.button if b.label == t("import.save", lang)).click().run()
    assert not at.exception, at.exception  # (the banner now says the new source has not published yet)
    assert [s.value for s in at.success] == [t("import.saved", lang, name="funnel")]
    after = (root / "cockpit.toml").read_text(encoding="utf-8")
    assert after.startswith(before) and after[len(before) :].strip() == block.strip()
    assert published(capsys, root, "funnel") == {"leads": 600}


# -- a database table (PostgreSQL and MariaDB started for the test, as tests/test_source_database.py does) -----
@pytest.mark.xdist_group("databases")  # db_server: tests/conftest.py, started once for all the database tests
def test_a_database_table(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_server: Server
) -> None:
    from tests.test_source_database import Db

    Db(db_server).reset()  # crm_customers: id, full_name, mobile, email, city, created, updated_at, deleted
    monkeypatch.setenv("CRM_DB_URL", db_server.url())
    root = company(tmp_path)
    code, out, err = run(capsys, root, "source", "add", "env:CRM_DB_URL", "--table", "crm_customers", "--yes")
    assert code == 0, out + err
    text = (root / "cockpit.toml").read_text(encoding="utf-8")
    config = tomllib.loads(text)["sources"][0]
    assert (config["name"], config["kind"], config["connection"]) == ("crm_customers", db_server.kind, "env:CRM_DB_URL")
    assert mapping(root, "crm_customers") == [
        {"entity": "customers", "source_record_id": "id", "name": "full_name", "phone": "mobile", "email": "email",
         "city": "city", "created_at": "created", "updated_at": "updated_at"},
    ]  # fmt: skip
    assert dbserver.PASSWORD not in text + out + err  # the reference is written, never the URL
    assert published(capsys, root, "crm_customers") == {"customers": 200}
    code, _, err = run(capsys, root, "source", "add", "env:CRM_DB_URL", "--table", "no_such_table", "--yes")
    assert code == 1 and "no_such_table" in err and dbserver.PASSWORD not in err
    assert (root / "cockpit.toml").read_text(encoding="utf-8") == text


# -- the other entities, a typed Parquet extract, and aliases of one's own ------------------------------------
def test_spend_calls_and_a_parquet_extract_are_placed(tmp_path: Path) -> None:
    from dashboard.sources.onboard import propose, sample_file

    spend = tmp_path / "baidu_spend.csv"
    spend.write_text("日期,渠道,推广计划,消耗\n2024-03-01,百度推广,品牌词,1200.50\n2024-03-02,百度推广,产品词,980\n")
    calls = tmp_path / "call_log.csv"
    calls.write_text(
        "通话编号,客户编号,通话时间,跟进方式,跟进结果\n"  # a call center's log
        "C1,K1,2024-03-01 10:00,来电,已预约\nC2,K2,2024-03-01 11:30,去电,无人接听\n"
    )
    extract = tmp_path / "vbak.parquet"
    pl.DataFrame(
        {"order_no": ["A1", "A2"], "cust_id": ["K1", "K2"], "ordered": [datetime(2024, 3, 1), datetime(2024, 3, 2)],
         "NETWR": [12.5, 30.0]}
    ).write_parquet(extract)  # fmt: skip
    placed = {p.name: propose(sample_file(p)).tables for p in (spend, calls, extract)}
    assert [(t.entity, t.columns, t.constants) for t in placed["baidu_spend.csv"]] == [
        ("marketing_spend", {"channel": "渠道", "spend_date": "日期", "cost": "消耗", "campaign": "推广计划"}, {})
    ]
    assert [(t.entity, t.columns, t.constants) for t in placed["call_log.csv"]] == [
        ("interactions", {"interaction_id": "通话编号", "customer_ref": "客户编号", "kind": "跟进方式",
         "occurred_at": "通话时间", "outcome": "跟进结果"}, {"channel": "unknown"}),
    ]  # fmt: skip
    orders = placed["vbak.parquet"][0]
    assert (orders.entity, orders.columns["ordered_at"], orders.how["ordered_at"]) == (
        "orders",
        "ordered",
        "content: datetime",
    )
    assert orders.columns["order_id"] == "order_no"
    assert (orders.columns["amount"], orders.how["amount"]) == ("NETWR", "content: number")  # SAP's net value


def test_aliases_of_ones_own_dictionary_come_first(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = company(tmp_path)
    (root / "dictionary.toml").write_text('[aliases]\nlead_id = ["reg_no"]\nchannel = ["媒介"]\n', encoding="utf-8")
    config = CONFIG.replace("[quality]\n", '[quality]\ndictionary = "dictionary.toml"\n')
    (root / "cockpit.toml").write_text(config, encoding="utf-8")
    path = root / "imports" / "show.csv"
    path.write_text("reg_no,登记时间,媒介,手机\nR1,2024-05-01 09:00,展会,13800138000\n", encoding="utf-8")
    code, out, err = run(capsys, root, "source", "add", str(path), "--yes")
    assert code == 0, out + err
    assert mapping(root, "show") == [
        {"entity": "leads", "lead_id": "reg_no", "created_at": "登记时间", "channel": "媒介", "phone": "手机"}
    ]
    before = (root / "cockpit.toml").read_bytes()
    code, _, err = run(capsys, root, "source", "add", str(path), str(path), "--entity", "leads", "--name", "x")
    assert code == 2 and "--entity names the entity of one input" in err
    assert (root / "cockpit.toml").read_bytes() == before
