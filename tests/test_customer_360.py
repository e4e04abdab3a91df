"""Customer 360 on the small company: a customer the ERP and the trade show both know, opened by deep
link; its golden record names where each value came from; search finds it however it is typed."""

from __future__ import annotations

import duckdb
import polars as pl
import pytest

from dashboard.components import fmt
from dashboard.core.config import Settings, load_settings
from dashboard.derived.golden import NOT_REVENUE
from dashboard.i18n import t, units_kept
from dashboard.i18n.values import ValueLabels
from dashboard.pipeline.refresh import refresh
from dashboard.query.search import search_params
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse, bind_params, load_query
from tests.fixture_data import open_app_page

pytestmark = pytest.mark.usefixtures("fresh_caches")


def _key(warehouse: Warehouse, source: str, record: str) -> str:
    links = warehouse.run_query("identity_links", {"source_system": source}, user=SYSTEM)
    return links.filter(pl.col("source_record_id") == record)["customer_key"].item()


def test_one_customer_from_two_sources_has_one_key_and_provenance(company_served: Warehouse) -> None:
    # ERP customer E0 (张0, 13800138000) and trade-show lead TS-0 (+86 138-0013-8000) are one person
    w = company_served
    key = _key(w, "erp", "E0")
    assert _key(w, "trade_show", "TS-0") == key
    attrs = w.run_query("customer_attributes", {"customer_key": key}, user=SYSTEM)
    phone = attrs.filter((pl.col("attribute") == "phone") & pl.col("chosen")).row(0, named=True)
    assert phone["value"] == "13800138000" and not phone["conflict"]
    assert sorted(phone["sources"]) == ["erp", "trade_show"]
    # the most recent record wins: the trade-show lead (2026-03-01 09:00) is newer than the ERP record
    assert phone["source_system"] == "trade_show" and phone["snapshot_id"].startswith("20")
    profile = w.run_query("customer_profile", {"customer_key": key}, user=SYSTEM).row(0, named=True)
    assert (profile["orders"], profile["order_revenue"], profile["records"]) == (2, 2400.0, 2)
    assert profile["sources"] == ["erp", "trade_show"] and profile["lifecycle_stage"] in ("active", "lapsed")


@pytest.mark.parametrize("typed", ["+86 138-0013-8000", "0086 13800138000", "138 0013 8000", "张0"])
def test_search_finds_the_customer_however_it_is_typed(company_served: Warehouse, typed: str) -> None:
    found = company_served.run_query("customer_search", search_params(typed), user=SYSTEM)
    assert found["customer_key"][0] == _key(company_served, "erp", "E0")


# name, pinyin, phone, email, company, lifetime revenue
PEOPLE = [
    ("王小明", "wangxiaoming", "13800000001", "xm@a.cn", "明远科技有限公司", 100.0),
    ("王小敏", "wangxiaomin", "13800000002", None, None, 300.0),  # one character off 王小明
    ("李大伟", "lidawei", "13800000003", None, "大伟商贸", 900.0),  # same length, nothing alike
    ("Zhang Wei", "zhangwei", "13800000004", None, None, 50.0),
]


def _search(typed: str) -> list[str]:
    """The names customer_search lists, best first, over PEOPLE as the golden customers."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE customer_index (customer_key VARCHAR, name VARCHAR, name_pinyin VARCHAR, phone VARCHAR, "
        "email VARCHAR, company VARCHAR, city VARCHAR, owner VARCHAR, lifecycle_stage VARCHAR, "
        "lifetime_revenue DOUBLE)"
    )
    con.executemany(
        "INSERT INTO customer_index VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?)",
        [[f"C{i}", *person] for i, person in enumerate(PEOPLE)],
    )
    con.execute(
        "CREATE TABLE customer_lookup AS SELECT 'phone' AS attribute, '13900000009' AS value, 'C2' AS customer_key"
    )
    query = load_query("customer_search")
    return [row[1] for row in con.sql(query.sql, params=bind_params(query, search_params(typed))).fetchall()]


@pytest.mark.parametrize(
    ("typed", "names"),
    [
        ("王小明", ["王小明", "王小敏"]),  # the exact name first, the name one character off after it
        ("王小名", ["王小明", "王小敏"]),  # a typo: the homophone first, one character off next; never 李大伟
        ("wang xiaoming", ["王小明", "王小敏"]),  # pinyin, spaces ignored; a near spelling after it
        ("zhang wei", ["Zhang Wei"]),
        ("明远科技", ["王小明"]),  # part of the company
        ("0001", ["王小明"]),  # the end of a phone
        ("139-0000-0009", ["李大伟"]),  # a phone of a linked record, not the surviving one
        ("XM@A.CN", ["王小明"]),
        ("C3", ["Zhang Wei"]),  # the customer key
        ("赵钱孙", []),
    ],
)
def test_search_scores_exact_then_typos_and_leaves_the_unrelated_out(typed: str, names: list[str]) -> None:
    assert _search(typed) == names


def test_a_masked_role_searches_and_sees_masked_phones(company_served: Warehouse) -> None:
    w = company_served
    key = _key(w, "erp", "E0")
    found = w.run_query("customer_search", search_params("张0"), Principal("m", "manager"))
    assert found.filter(pl.col("customer_key") == key)["phone"].item() == "138****8000"
    # the copy masked at build is read as the phone, never under its own name
    assert "phone_masked" not in w.sql("SELECT * FROM customer_index LIMIT 1", user=Principal("m", "manager")).columns
    assert w.run_query("customer_search", search_params("张0"), user=SYSTEM)["phone"][0] == "13800138000"


def test_deep_link_opens_the_profile_and_timeline(
    company_read: Settings, company_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _key(company_served, "erp", "E0")
    at = open_app_page(company_read, monkeypatch, "customer_360", {"customer": key})
    assert not at.error, [e.value for e in at.error]
    assert [s.value for s in at.subheader] == ["张0"]
    figures = {m.label: m.value for m in at.metric}
    assert figures["Orders"] == "2" and figures["Order revenue"] == "¥2,400"
    tables = [pl.from_pandas(d.value) for d in at.dataframe]
    records = next(t for t in tables if "source_record_id" in t.columns)
    assert sorted(records["source_record_id"].to_list()) == ["E0", "TS-0"]
    assert "4 of 4 events on 4 days, newest first" in [c.value for c in at.caption]
    days = [m.value for m in at.markdown if " · " in m.value and m.value.startswith("**2026-")]
    # newest day first: the two orders, the trade-show lead won in the CRM, the lead itself
    assert days == [
        "**2026-04-12 · 1 event**",
        "**2026-03-31 · 1 event**",
        "**2026-03-21 · 1 event**",
        "**2026-03-01 · 1 event**",
    ]
    # filter the timeline to orders only
    at.multiselect(key="c360_categories").set_value(["order"]).run()
    assert "2 of 4 events on 2 days, newest first" in [c.value for c in at.caption]


def _with_contracts(company: Settings) -> Settings:
    """The company with an ERP contracts sheet: E0 (张0, also trade-show lead TS-0, won ¥500 in the CRM)
    signed ¥100,000 on the day TS-0 was won, ¥60,000 of it paid, and ¥16,500 later, paid in full."""
    pl.DataFrame(
        {
            "合同号": ["K1", "K2", "K3"],
            "客户编号": ["E0", "E0", "E5"],
            "签约日期": ["2026-03-21 15:00", "2026-04-02 10:00", "2026-04-02 10:00"],
            "合同金额": [100_000.0, 16_500.0, 9_999.0],
            "已回款": [60_000.0, 16_500.0, None],
            "回款日期": ["2026-04-20 11:00", "2026-04-25 11:00", None],
        }
    ).write_excel(company.base_dir / "imports" / "erp" / "contracts.xlsx")
    cfg = company.base_dir / "cockpit.toml"
    text = cfg.read_text(encoding="utf-8")
    orders = 'columns = { order_id = "订单号", customer_ref = "客户编号", ordered_at = "下单日期", amount = "金额" }\n'
    contracts = (
        '  [[sources.tables]]\n  entity = "contracts"\n  path = "imports/erp/contracts.xlsx"\n'
        '  columns = { contract_id = "合同号", customer_ref = "客户编号", signed_at = "签约日期", amount = "合同金额", '
        'paid_amount = "已回款", paid_at = "回款日期" }\n'
    )
    assert orders in text
    cfg.write_text(text.replace(orders, orders + contracts, 1), encoding="utf-8")
    settings = load_settings(cfg)
    assert refresh(settings).exit_code == 0
    return settings


def test_the_profile_names_each_revenue_term_once_with_its_own_figure(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Won-deal amount, contract value, payments received and order revenue, each exactly that (issue 20
    point 3, issue 19 point 3): no 'lifetime revenue' of ¥0 beside contracts and payments."""
    settings = _with_contracts(company)
    w = Warehouse(settings)
    key = _key(w, "erp", "E0")
    profile = w.run_query("customer_profile", {"customer_key": key}, user=SYSTEM).row(0, named=True)
    assert (profile["won_amount"], profile["won_deals"]) == (500.0, 1)  # TS-0's won event, not the orders
    assert (profile["contract_value"], profile["contracts"], profile["payments_received"]) == (116_500.0, 2, 76_500.0)
    assert (profile["order_revenue"], profile["orders"], profile["open_receivables"]) == (2_400.0, 2, 40_000.0)
    for lang, terms in {
        "en": ("Won-deal amount", "Contract value", "Payments received", "Order revenue"),
        "zh": ("赢单金额", "合同金额", "回款", "订单收入"),
    }.items():
        at = open_app_page(settings, monkeypatch, "customer_360", {"customer": key})
        if lang == "zh":
            at.sidebar.radio[0].set_value("zh").run()
        figures = {m.label: m.value for m in at.metric}
        assert [figures[term] for term in terms] == ["¥500", "¥116,500", "¥76,500", "¥2,400"], figures
        assert not {"Lifetime revenue", "累计收入", "Revenue", "收入"} & set(figures)
    at.sidebar.radio[0].set_value("en").run()  # the remembered language back to English
    # the day the lead was won and the contract signed: one day, two events, each with its source
    day = [m.value for m in at.markdown if m.value.startswith("**2026-03-21")]
    assert day == ["**2026-03-21 · 2 events**"]
    lines = next(m.value for m in at.markdown if "Contract" in m.value and "K1" in m.value).splitlines()
    signed = next(line for line in lines if "K1" in line)
    won = next(line for line in lines if "Stage change" in line)
    assert "Signed" in signed and "¥100,000" in signed and signed.endswith(":gray-badge[ERP]")
    assert "Won" in won and "¥500" in won and won.endswith(":gray-badge[CRM]")


def _survive_by_priority(company: Settings, erp: int, crm: int) -> Settings:
    """The company with ERP customer E1 merged by hand with CRM lead CRM-1 (another phone), golden
    values chosen by source priority first, and these priorities; refreshed."""
    (company.base_dir / "overrides.csv").write_text(
        "action,source_system,source_record_id,other_source_system,other_source_record_id\nmerge,erp,E1,crm,CRM-1\n",
        encoding="utf-8",
    )
    cfg = company.base_dir / "cockpit.toml"
    text = cfg.read_text(encoding="utf-8")
    for source, priority in (("erp", erp), ("crm", crm)):
        text = text.replace(f'name = "{source}"\n', f'name = "{source}"\npriority = {priority}\n', 1)
    text += '\n[identity]\noverrides = "overrides.csv"\nsurvivorship = ["priority", "recent", "complete"]\n'
    cfg.write_text(text, encoding="utf-8")
    settings = load_settings(cfg)
    assert refresh(settings).exit_code == 0
    return settings


@pytest.mark.parametrize(
    ("erp", "crm", "winner", "phone"), [(1, 50, "erp", "13800138001"), (50, 1, "crm", "13900130001")]
)
def test_the_source_with_priority_gives_the_golden_phone(
    company: Settings, erp: int, crm: int, winner: str, phone: str
) -> None:
    settings = _survive_by_priority(company, erp, crm)
    w = Warehouse(settings)
    key = _key(w, "erp", "E1")
    assert _key(w, "crm", "CRM-1") == key
    phones = w.run_query("customer_attributes", {"customer_key": key, "attribute": "phone"}, user=SYSTEM)
    assert sorted(phones["value"].to_list()) == ["13800138001", "13900130001"]  # the conflict stays visible
    chosen = phones.filter(pl.col("chosen")).row(0, named=True)
    assert (chosen["value"], chosen["source_system"], chosen["conflict"]) == (phone, winner, True)
    profile = w.run_query("customer_profile", {"customer_key": key}, user=SYSTEM).row(0, named=True)
    assert profile["phone"] == phone and "phone" in profile["conflicts"]


def test_the_profile_shows_the_churn_risk_band_and_its_reasons(
    company_read: Settings, company_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored = company_served.run_query("customer_churn", {"lang": "en"}, user=SYSTEM).row(0, named=True)
    listed = company_served.run_query("churn_list", {"lang": "en"}, user=SYSTEM)
    on_list = listed.row(by_predicate=pl.col("customer_key") == scored["customer_key"], named=True)
    reasons = [r for r in (scored["reason_1"], scored["reason_2"], scored["reason_3"]) if r]
    assert reasons == [r for r in (on_list["reason_1"], on_list["reason_2"], on_list["reason_3"]) if r]
    at = open_app_page(company_read, monkeypatch, "customer_360", {"customer": scored["customer_key"]})
    label = {"high": "High risk", "medium": "Medium risk", "low": "Low risk"}[scored["risk_band"]]
    text = "\n".join(m.value for m in at.markdown)
    assert f"{label} · {scored['risk']:.0%} chance of churning" in text
    assert f"no. {on_list['rank']} on the warning list" in text
    for reason in reasons:  # the same words as the churn list's row, in full, a number kept with its unit
        assert f"- {fmt.md_escape(units_kept(reason))}" in text


def test_a_customer_the_scoring_leaves_out_says_so(
    company_read: Settings, company_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored = set(company_served.run_query("churn_list", user=SYSTEM)["customer_key"])
    links = company_served.run_query("identity_links", user=SYSTEM)
    unscored = sorted(set(links["customer_key"]) - scored)[0]
    at = open_app_page(company_read, monkeypatch, "customer_360", {"customer": unscored})
    assert t("c360.risk.none", "en") in [c.value for c in at.caption]


def test_a_merged_away_key_still_opens_its_customer(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    w = Warehouse(company)  # follows the manifest: the build before the merge, then the one after it
    before = {r: _key(w, s, r) for s, r in (("erp", "E1"), ("crm", "CRM-1"))}
    assert before["E1"] != before["CRM-1"]
    settings = _survive_by_priority(company, 1, 50)  # E1 and CRM-1 merged by the override file
    merged = _key(w, "erp", "E1")
    gone = next(k for k in before.values() if k != merged)
    assert w.run_query("customer_profile", {"customer_key": gone}, user=SYSTEM).is_empty()
    assert w.run_query("customer_redirect", {"customer_key": gone}, user=SYSTEM)["customer_key"].to_list() == [merged]
    assert w.run_query(
        "customer_redirect", {"customer_key": merged}, user=SYSTEM
    ).is_empty()  # a live key is not redirected
    assert w.run_query("customer_redirect", user=SYSTEM)["old_key"].to_list() == [gone]  # the whole list: just this one

    at = open_app_page(settings, monkeypatch, "customer_360", {"customer": gone})
    assert [i.value for i in at.info] == [f"Customer {gone} was merged into {merged}: showing {merged}."]
    assert not [w.value for w in at.warning if "No customer" in w.value]
    assert at.query_params["customer"] == merged
    records = next(pl.from_pandas(d.value) for d in at.dataframe if "source_record_id" in d.value.columns)
    assert {"CRM-1", "E1"} <= set(records["source_record_id"].to_list())  # both halves of the merge


def test_the_golden_region_is_named_as_the_lists_name_it(
    small_demo: Settings, demo_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's regions are written in Chinese and named in English in cockpit.toml ([labels.region]): the walk
    found 华南 on the English profile beside South China in the churn list."""
    key = demo_served.run_query("churn_list", {"limit": 1}, user=SYSTEM)["customer_key"].item()
    at = open_app_page(small_demo, monkeypatch, "customer_360", {"customer": key})
    at.sidebar.radio[0].set_value("en").run()
    texts = [x.value for x in at.text]
    region = texts[texts.index(t("c360.col.region", "en")) + 1]
    assert region.endswith(" China") and not any("\u4e00" <= ch <= "\u9fff" for ch in region), texts


def test_the_golden_industry_is_named_in_the_page_language(
    small_demo: Settings, demo_served: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's industries are written in Chinese and named in English in cockpit.toml ([labels.industry]): the
    walk found 制造业 on the English profile."""
    golden = demo_served.sql("SELECT customer_key, industry FROM customer_golden", user=SYSTEM)
    key, industry = golden.filter(pl.col("industry").is_not_null()).sort("customer_key").row(0)
    expected = {"zh": industry, "en": ValueLabels(small_demo.label_texts()).label("industry", industry, "en")}
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in expected["en"]), expected
    at = open_app_page(small_demo, monkeypatch, "customer_360", {"customer": key})
    for lang in ("en", "zh"):
        at.sidebar.radio[0].set_value(lang).run()
        texts = [x.value for x in at.text]
        assert texts[texts.index(t("c360.col.industry", lang)) + 1] == expected[lang], texts


# a customer's records and the orders on them that are no purchase (cancelled, returned: golden.NOT_REVENUE)
UNSOLD_SQL = """
SELECT l.customer_key, count(*) AS unsold
FROM orders AS o
JOIN identity_links AS l ON l.record_kind = 'customer' AND l.source_system = o.source_system
    AND l.source_record_id = o.customer_ref
WHERE regexp_matches(coalesce(o.status, ''), $not_revenue)
GROUP BY ALL
"""


def test_the_churn_list_s_order_revenue_is_the_profile_s(demo_served: Warehouse) -> None:
    """Session 24's walk: a customer with a cancelled order read 订单收入 ¥1,796,200 on the churn list (its reason:
    ¥179.6万 in total) and ¥1,781,776 on Customer 360, 2,235 of the medium demo's 64,744 scored customers so: churn
    counted cancelled and returned orders as purchases. The list's order revenue is the profile's for every scored
    customer, and its days with an order are at most the profile's orders."""
    wh = demo_served
    listed = wh.run_query("churn_list", {"lang": "zh"}, user=SYSTEM).select(
        "customer_key", "order_revenue", "order_days"
    )
    unsold = wh.sql(UNSOLD_SQL, {"not_revenue": NOT_REVENUE}, user=SYSTEM).join(listed, on="customer_key")
    assert unsold.height > 0  # the demo's ERP cancels orders and its shops take goods back
    for key in unsold.sort("customer_key")["customer_key"].head(5):
        profile = wh.run_query("customer_profile", {"customer_key": key}, user=SYSTEM).row(0, named=True)
        on_list = listed.filter(pl.col("customer_key") == key).row(0, named=True)
        assert fmt.money(on_list["order_revenue"]) == fmt.money(profile["order_revenue"]), key
        assert on_list["order_days"] <= profile["orders"], key
    golden = wh.sql("SELECT customer_key, lifetime_revenue FROM customer_golden", user=SYSTEM)
    both = listed.join(golden, on="customer_key", how="left")
    differ = both.filter((pl.col("order_revenue") - pl.col("lifetime_revenue").fill_null(0)).abs() >= 0.01)
    assert differ.is_empty(), differ.head()


# A rep's customers (as security.SALES_HELPERS reads them) and the leads linked to them that the rep does not own.
UNOWNED_WON_SQL = """
WITH own AS (
    SELECT source_system, source_record_id, 'customer' AS record_kind FROM customers WHERE owner = $owner
    UNION ALL SELECT source_system, lead_id, 'lead' FROM leads WHERE owner = $owner
),
keys AS (
    SELECT DISTINCT l.customer_key FROM identity_links AS l SEMI JOIN own AS o
    ON o.source_system = l.source_system AND o.source_record_id = l.source_record_id AND o.record_kind = l.record_kind
)
SELECT DISTINCT l.customer_key
FROM identity_links AS l
JOIN lead_facts AS f ON l.record_kind = 'lead' AND l.source_system = f.source_system AND l.source_record_id = f.lead_id
WHERE l.customer_key IN (SELECT customer_key FROM keys) AND f.owner IS DISTINCT FROM $owner AND f.won_at IS NOT NULL
ORDER BY 1
"""
FIGURES = ("won_amount", "won_deals", "contract_value", "payments_received", "order_revenue", "orders")


def test_a_reps_customer_reads_on_customer_360_what_the_manager_reads(demo_served: Warehouse) -> None:
    """Session 24's walk: a rep's customer who won on a lead nobody owns (a web form) read ¥0 won for the rep and
    ¥11,190 for the manager (15 of 刘亮's customers in the medium demo). README: a rep sees the records linked
    to their customers, so the profile's figures and its timeline's leads and stages are the manager's; the rep's
    own pipeline (the cockpit's leads and won-deal amount, lead_facts) stays the leads they own."""
    wh = demo_served
    owner = wh.sql(
        "SELECT owner FROM leads WHERE owner IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1", user=SYSTEM
    ).item()
    rep, manager = Principal("rep", "sales", owner), Principal("m", "manager")
    keys = wh.sql(UNOWNED_WON_SQL, {"owner": owner}, user=SYSTEM)["customer_key"].to_list()
    assert keys, owner  # the demo's web forms and hotline leave leads without an owner
    for key in keys[:5]:
        mine, theirs = (wh.run_query("customer_profile", {"customer_key": key}, user=u) for u in (rep, manager))
        assert mine.select(FIGURES).row(0) == theirs.select(FIGURES).row(0), key
        assert mine["won_amount"].item() > 0, key
        events = [
            wh.run_query("customer_timeline", {"customer_key": key}, user=u)
            .filter(pl.col("category").is_in(["lead", "stage"]))
            .select("occurred_at", "category", "kind", "amount")
            .sort(pl.all())
            .rows()
            for u in (rep, manager)
        ]
        assert events[0] == events[1], key
    own_leads = wh.sql("SELECT count(*) FROM leads WHERE owner = $o", {"o": owner}, user=SYSTEM).item()
    assert wh.sql("SELECT count(*) FROM lead_facts", user=rep).item() == own_leads  # the pipeline: their own
