"""Masking by classification, not by name (issue 18, point 1): a column whose values are phones, e-mails or
ID numbers is personal whatever it is called, so a source that keys its customers by phone number serves
that key as a keyed pseudonym to the masked roles (analyst, manager), and joins still work.

Scanned: every relation and every named query as analyst and as manager, on the small demo (its call
center keys customers by phone) and on the test company with three more sources, keyed by phone, by
e-mail and by ID number. Sales users see their own customers unmasked by design (security.UNMASKED_ROLES:
they call them), so they are not scanned here; tests/test_security.py holds them to their own rows.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.core.keys import PSEUDONYM_KEY
from dashboard.core.store import Store
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse, list_queries, load_query, relations

ROOT = Path(__file__).resolve().parents[1]
MASKED = (Principal("analyst", "analyst"), Principal("manager", "manager"))
# What a sales user sees in clear of their own customers: the contact fields and text that may hold them.
CONTACT = frozenset({"phone", "email", "id_number", "value", "values", "note", "examples"})
# Unmasked personal values inside any text: a mainland mobile (with or without +86, with separators), an
# e-mail address with more than its first letter, an 18-character ID number; bounded by non-word
# characters, so an order number such as S125202412040000001 or a float's digits are not taken for one.
UNMASKED = {
    "phone": re.compile(r"(?<![\w.])(?:\+?86[\s-]?)?1[3-9]\d(?:[\s-]?\d){8}(?![\w.])"),
    "email": re.compile(r"[A-Za-z0-9._%+-]{2,}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"),
    "id_number": re.compile(r"(?<![\w.])\d{17}[\dXx](?![\w.])"),
}
SOURCES = """
[[sources]]
name = "hotline"
kind = "csv"
title = "Hotline"
  [[sources.tables]]
  entity = "customers"
  path = "imports/hotline/callers.csv"
  columns = { source_record_id = "caller", name = "name", created_at = "first_call" }
  [[sources.tables]]
  entity = "interactions"
  path = "imports/hotline/calls.csv"
  columns = { customer_ref = "caller", channel = "line", kind = "kind", occurred_at = "at" }

[[sources]]
name = "members"
kind = "csv"
title = "Members"
  [[sources.tables]]
  entity = "customers"
  path = "imports/members/members.csv"
  columns = { source_record_id = "login", name = "name", created_at = "joined" }
  [[sources.tables]]
  entity = "orders"
  path = "imports/members/orders.csv"
  columns = { order_id = "order", customer_ref = "login", ordered_at = "at", amount = "amount" }

[[sources]]
name = "registry"
kind = "csv"
title = "Registry"
  [[sources.tables]]
  entity = "customers"
  path = "imports/registry/people.csv"
  columns = { source_record_id = "证件号", name = "姓名", created_at = "登记日期" }
"""
CALLERS = [f"+86 139-{i:04d}-{i * 7 % 10000:04d}" for i in range(1, 13)]
LOGINS = [f"member{i}@example.com" for i in range(1, 9)]
IDS = [f"11010519{80 + i}0101{i:03d}{'X' if i % 2 else '7'}" for i in range(1, 6)]


def _write(path: Path, header: str, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The test company plus sources keyed by phone (with interactions), by e-mail (with orders) and by
    ID number, refreshed."""
    from tests.fixture_data import write_company

    root = tmp_path_factory.mktemp("keyed")
    cfg = write_company(root)
    cfg.write_text(cfg.read_text(encoding="utf-8") + SOURCES, encoding="utf-8")
    imports = root / "imports"
    _write(
        imports / "hotline/callers.csv",
        "caller,name,first_call",
        [f"{c},来电{i},2026-02-0{i % 9 + 1}" for i, c in enumerate(CALLERS)],
    )
    calls = [f"{c},hotline,call,2026-03-0{j + 1} 10:00" for c in CALLERS for j in range(3)]
    _write(imports / "hotline/calls.csv", "caller,line,kind,at", calls)
    _write(
        imports / "members/members.csv",
        "login,name,joined",
        [f"{m},会员{i},2026-01-1{i}" for i, m in enumerate(LOGINS)],
    )
    orders = [f"O-{i}-{j},{m},2026-03-1{j},{100 * (i + j + 1)}" for i, m in enumerate(LOGINS) for j in range(2)]
    _write(imports / "members/orders.csv", "order,login,at,amount", orders)
    _write(
        imports / "registry/people.csv",
        "证件号,姓名,登记日期",
        [f"{n},登记{i},2026-01-0{i + 1}" for i, n in enumerate(IDS)],
    )
    settings = load_settings(cfg)
    result = refresh(settings)
    assert result.exit_code == 0, [(r.source, r.reasons) for r in result.sources]
    return settings


@pytest.fixture(scope="module")
def keyed_served(keyed: Settings) -> Iterator[Warehouse]:
    """One Warehouse over ``keyed`` for the module's questions (each new one builds its views again)."""
    warehouse = Warehouse(keyed)
    yield warehouse
    warehouse.close()


def _cells(frame: pl.DataFrame) -> list[str]:
    cells: list[str] = []
    for column, dtype in frame.schema.items():
        if dtype == pl.String:
            cells += [v for v in frame[column].to_list() if v]
        elif isinstance(dtype, pl.List | pl.Struct):
            cells += [str(v) for v in frame[column].to_list() if v is not None]
    return cells


def _leaks(frame: pl.DataFrame) -> list[tuple[str, str]]:
    return [(kind, cell) for cell in _cells(frame) for kind, p in UNMASKED.items() if p.search(cell)]


def _params(wh: Warehouse, name: str) -> dict[str, object]:
    key = wh.sql("SELECT customer_key FROM customer_golden ORDER BY customer_key LIMIT 1", user=SYSTEM).item()
    values = {"customer_key": key, "start": "2020-01-01", "end": "2030-12-31"}
    return {p.name: values.get(p.name, "x") for p in load_query(name).params if not p.optional}


def _scan(
    wh: Warehouse, users: tuple[Principal, ...] = MASKED, shown: frozenset[str] = frozenset()
) -> dict[str, list[tuple[str, str]]]:
    """Every relation and every named query, as each user: the unmasked values found (``shown``: columns
    left out of the scan, a sales user's contact details of their own customers)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for user in users:
        readable = [
            n
            for n in relations()
            if wh.sql(
                "SELECT count(*) FROM duckdb_views() WHERE schema_name = $s AND view_name = $n",
                {"s": f"r_{user.role}", "n": n},
                user=SYSTEM,
            ).item()
        ]
        for name in sorted(readable):
            frame = wh.sql(f"SELECT * FROM {name}", user=user)
            found[f"{user.role}: relation {name}"] = _leaks(frame.drop([c for c in frame.columns if c in shown]))
        for name in list_queries():
            try:
                frame = wh.run_query(name, _params(wh, name), user=user)
            except Exception as e:  # a query the role may not run says so; it shows nothing
                assert "not available" in str(e), (user.role, name, e)
                continue
            found[f"{user.role}: query {name}"] = _leaks(frame.drop([c for c in frame.columns if c in shown]))
    assert len(found) > 20 * len(users)
    return {k: v[:3] for k, v in found.items() if v}


def test_the_demo_call_centers_phone_keys_reach_no_masked_role(demo_served: Warehouse) -> None:
    """The issue's case: the demo's call center keys its calls by the caller's mobile number."""
    wh = demo_served
    classified = wh.sql(
        "SELECT kind, share FROM personal_columns WHERE relation = 'interactions' AND column_name = 'customer_ref'"
        " AND source_system = 'call_center'",
        user=SYSTEM,
    )
    assert classified["kind"].to_list() == ["phone"] and classified["share"].item() > 0.5
    assert _scan(wh) == {}


def test_a_sales_user_sees_contact_details_of_their_own_customers_but_never_a_personal_key(
    demo_served: Warehouse,
) -> None:
    """Sales call their customers, so phone, e-mail and ID number of their own customers show in clear
    (security.UNMASKED_ROLES); keys that are phone numbers are pseudonyms for them too."""
    wh = demo_served
    owner = wh.sql(
        "SELECT owner FROM leads WHERE owner IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC LIMIT 1", user=SYSTEM
    )
    sales = Principal("sales", "sales", owner.item())
    calls = wh.sql("SELECT customer_ref FROM interactions WHERE source_system = 'call_center'", user=sales)
    refs = calls["customer_ref"].to_list()
    assert sum(ref.startswith("PSN-") for ref in refs) > len(refs) / 2  # the mobiles (the rest: other numbers)
    assert not any(UNMASKED["phone"].search(ref) for ref in refs)
    assert _scan(wh, (sales,), CONTACT) == {}


def test_sources_keyed_by_phone_email_and_id_number_are_personal_by_content(keyed_served: Warehouse) -> None:
    wh = keyed_served
    kinds = wh.sql(
        "SELECT source_system, kind FROM personal_columns WHERE relation = 'customers' "
        "AND column_name = 'source_record_id' ORDER BY 1",
        user=SYSTEM,
    ).rows()
    assert kinds == [("hotline", "phone"), ("members", "email"), ("registry", "id_number")]
    # the raw keys are there for the system, and for no masked role anywhere
    raw = wh.sql("SELECT count(*) FROM interactions WHERE source_system = 'hotline'", user=SYSTEM).item()
    assert raw == 36
    assert _scan(wh) == {}


def test_pseudonyms_keep_joins_and_counts_and_are_stable(keyed: Settings, keyed_served: Warehouse) -> None:
    """Same value, same token, in every relation: the hotline's calls still join to its customers and to
    their golden records; counts are the admin's; the token is not the value and survives a new query."""
    wh = keyed_served
    join = (
        "SELECT count(*) AS calls, count(DISTINCT l.customer_key) AS people, min(i.customer_ref) AS token "
        "FROM interactions AS i JOIN identity_links AS l ON l.source_system = i.source_system "
        "AND l.source_record_id = i.customer_ref AND l.record_kind = 'customer' WHERE i.source_system = 'hotline'"
    )
    admin = wh.sql(join, user=Principal("admin", "admin")).row(0)
    assert admin[:2] == (36, 12) and admin[2] in {c.replace(" ", "").replace("-", "") for c in CALLERS} | set(CALLERS)
    for user in MASKED:
        calls, people, token = wh.sql(join, user=user).row(0)
        assert (calls, people) == (36, 12), user.role
        assert token.startswith("PSN-") and len(token) == 20
    tokens = {
        u.role: set(
            wh.sql("SELECT source_record_id FROM customers WHERE source_system = 'hotline'", user=u)["source_record_id"]
        )
        for u in MASKED
    }
    assert tokens["analyst"] == tokens["manager"] and len(tokens["analyst"]) == 12
    orders = wh.sql(
        "SELECT count(*) FROM orders AS o JOIN customers AS c ON c.source_system = o.source_system AND c.source_record_id = o.customer_ref WHERE o.source_system = 'members'",  # noqa: E501
        user=MASKED[0],
    ).item()
    assert orders == 16
    again = Warehouse(keyed)  # another process's warehouse: the same key, from runs/
    assert (
        set(
            again.sql("SELECT source_record_id FROM customers WHERE source_system = 'hotline'", user=MASKED[0])[
                "source_record_id"
            ]
        )
        == tokens["analyst"]
    )
    key = keyed.data_path / "runs" / PSEUDONYM_KEY
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) == 64


def test_the_sql_tab_cannot_mint_a_token_for_a_guess(keyed: Settings, keyed_served: Warehouse) -> None:
    from dashboard.query.explore.sql import SqlRefused, run_readonly

    wh = keyed_served
    with pytest.raises(SqlRefused):
        run_readonly(wh, "SELECT main.pseudonym('+86 139-0001-0007') AS t", MASKED[0])
    with pytest.raises(SqlRefused):
        run_readonly(wh, "SELECT pseudonym('13900010007') AS t", MASKED[0])
    # nor read the key that the serving connection's macro holds
    key = (keyed.data_path / "runs" / PSEUDONYM_KEY).read_text().strip()
    for sql in (
        "SELECT macro_definition FROM duckdb_functions()",
        "SELECT * FROM information_schema.routines",
        "SELECT * FROM sqlite_master",
        "SELECT * FROM pg_catalog.pg_proc",
        "SELECT current_setting('search_path') AS s",
        "SELECT getvariable('cockpit_pseudonym_key') AS k",
    ):
        try:
            out = run_readonly(wh, sql, MASKED[0])
        except SqlRefused:
            continue
        assert key not in str(out.frame.rows()), sql


def test_the_build_writes_the_tokens_the_views_serve(keyed_served: Warehouse) -> None:
    """The pseudonyms are computed once at refresh (issue 18, Speed): the companion tables hold, beside each
    personal key, the token the serving connection's pseudonym() gives (used where the build has none, e.g.
    an as-of comparison), so a token is the same either way; the masked roles' views compute none."""
    wh = keyed_served
    same = wh.sql(
        "SELECT count(*) FILTER (WHERE customer_ref__psn = main.pseudonym(customer_ref)), count(*), "
        "count(DISTINCT customer_ref__psn) FROM interactions__psn WHERE source_system = 'hotline'",
        user=SYSTEM,
    ).row(0)
    assert same == (36, 36, 12)
    computing = wh.sql(
        "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE schema_name IN ('r_analyst', 'r_manager') "
        "AND view_name IN ('customers', 'interactions', 'orders', 'identity_links') AND sql LIKE '%pseudonym(%'",
        user=SYSTEM,
    )
    assert computing.height == 0, computing


def test_the_tokens_are_written_one_customer_after_another(keyed: Settings) -> None:
    """Customer 360 reads the companion tables one customer at a time: a caller's calls are written side by
    side, by their token, and identity links by golden key, so a lookup reads the row group holding them, not
    every row group (the snapshot's date order spreads a caller over all of them; issue 18, Speed)."""
    tables = Store(keyed.data_path).read_manifest()["derived"]["tables"]
    calls = pl.read_parquet(keyed.data_path / tables["interactions__psn"])
    tokens = calls.get_column("customer_ref__psn")
    stretches = int((tokens != tokens.shift(1)).fill_null(True).sum())  # runs of one caller's calls
    assert (calls.height, tokens.n_unique(), stretches) == (36, 12, 12)
    links = pl.read_parquet(keyed.data_path / tables["identity_links__psn"]).get_column("customer_key")
    assert links.len() >= 25 and links.is_sorted()


def test_a_masked_role_reads_identity_links_as_one_relation_with_every_link(keyed_served: Warehouse) -> None:
    """The identity links' companion table holds every link (derived/personal.py WHOLE): a manager or analyst
    reads it alone, as the admin reads the links, with each link once and the personal keys as tokens."""
    wh = keyed_served
    count = (
        "SELECT count(*), count(DISTINCT customer_key), count(*) FILTER (WHERE source_record_id LIKE 'PSN-%'), "
        "count(*) FILTER (WHERE source_system IN ('hotline', 'members', 'registry')) FROM identity_links"
    )
    links, keys, tokens, personal = wh.sql(count, user=Principal("admin", "admin")).row(0)
    assert tokens == 0 and personal >= 25 and links > personal
    for user in MASKED:
        assert wh.sql(count, user=user).row(0) == (links, keys, personal, personal), user.role
    views = wh.sql(
        "SELECT view_name FROM duckdb_views() WHERE schema_name IN ('r_analyst', 'r_manager') "
        "AND view_name = 'identity_links' AND sql NOT LIKE '%UNION%'",
        user=SYSTEM,
    )
    assert views.height == 2
