"""Security tests that try to break in: every query as a sales user and as an analyst, injection in every
text parameter, each role's pages (and refusals), lockout, ended and expired sessions, the audit log.

The company (tests/fixture_data.py): the CRM's 30 leads are owned by rep0, rep1 and rep2 (10 each); the
trade show, web forms and ERP records have no owner. Phones, e-mails and one ID number are real-shaped.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from dashboard.access import auth, sessions
from dashboard.core import audit
from dashboard.core.config import CONFIG_ENV, Settings
from dashboard.core.errors import QueryError
from dashboard.i18n import t
from dashboard.query.security import ROLE_PAGES, ROLES, SYSTEM, Principal
from dashboard.query.warehouse import Warehouse, list_queries, load_query

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PASSWORD = "correct horse battery"
SALES = Principal("sales", "sales", "rep1")
ANALYST = Principal("analyst", "analyst")
OWN_LEADS = {f"CRM-{i}" for i in range(1, 30, 3)}  # rep1 owns CRM-1, CRM-4, ... CRM-28

# Shapes of unmasked personal data: an 11-digit mobile, an e-mail with more than its first letter, an ID.
UNMASKED = {
    "phone": re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"),
    "email": re.compile(r"[A-Za-z0-9._%+-]{2,}@[A-Za-z0-9.-]+"),
    "id_number": re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"),
}
INJECTIONS = [
    "' OR 1=1 --",
    "rep1' OR owner <> 'rep1",
    "%",
    "_",
    "x" * 100_000,
    "rep1\u202e",  # right-to-left override
    "ｒｅｐ０",  # full-width letters
    "rep0\x00",
    "'; DROP TABLE leads; --",
    "\\'",
]


@pytest.fixture(autouse=True)
def _fast_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 at its cheapest: the tests check who gets in, not how slow a guess is."""
    monkeypatch.setattr(auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def accounts(company: Settings) -> Settings:
    for role in ROLES:
        auth.add_user(company, role, role, PASSWORD, "rep1" if role == "sales" else None)
    return company


def _required(name: str, wh: Warehouse) -> dict[str, object]:
    """Values for a query's required parameters: another owner's record, where one is asked for."""
    other_key = wh.sql(
        "SELECT customer_key FROM identity_links AS l JOIN leads AS x "
        "ON x.source_system = l.source_system AND x.lead_id = l.source_record_id WHERE x.owner = 'rep0' LIMIT 1",
        user=SYSTEM,
    ).item()
    values = {"customer_key": other_key, "start": "2026-01-01", "end": "2026-12-31"}
    params = {}
    for p in load_query(name).params:
        if not p.optional:
            params[p.name] = values.get(p.name, "x")
    return params


def _text_cells(frame: pl.DataFrame) -> list[str]:
    cells: list[str] = []
    for column, dtype in frame.schema.items():
        if dtype == pl.String:
            cells += [v for v in frame[column].to_list() if v]
        elif isinstance(dtype, pl.List):
            cells += [str(v) for row in frame[column].to_list() if row for v in row]
    return cells


def _assert_only_own_rows(name: str, frame: pl.DataFrame) -> None:
    if "owner" in frame.columns:
        assert set(frame["owner"].drop_nulls().to_list()) <= {"rep1"}, name
        assert frame["owner"].null_count() == 0 or name in {"sales_leaderboard"}, name
    if "lead_id" in frame.columns:
        crm = {v for v in frame["lead_id"].drop_nulls().to_list() if str(v).startswith("CRM-")}
        assert crm <= OWN_LEADS, (name, sorted(crm - OWN_LEADS))


# -- the data layer, every named query -------------------------------------------------------------
@pytest.mark.parametrize("name", list_queries())
def test_a_sales_user_never_gets_another_owners_rows(company_served: Warehouse, name: str) -> None:
    wh = company_served
    params = _required(name, wh)
    try:
        mine = wh.run_query(name, params, user=SALES)
    except QueryError as e:
        assert "not available to the role 'sales'" in e.message  # data-quality internals are refused whole
        return
    _assert_only_own_rows(name, mine)
    if "owner" in {p.name for p in load_query(name).params}:  # a colleague's name finds what no name finds
        colleague = wh.run_query(name, {**params, "owner": "rep0"}, user=SALES)
        assert colleague.equals(wh.run_query(name, {**params, "owner": "no such person"}, user=SALES)), name


def test_a_sales_user_sees_their_customers_leads_and_exactly_their_own_funnel(company_served: Warehouse) -> None:
    wh = company_served
    leads = wh.sql("SELECT lead_id, owner, phone FROM leads", user=SALES)
    # their own, and the web forms nobody owns of the same people (README: records linked to their customers)
    linked = {"WEB-1", "WEB-4", "WEB-7"}  # WEB-i shares CRM-i's phone
    assert set(leads["lead_id"]) == OWN_LEADS | linked and set(leads["owner"].drop_nulls()) == {"rep1"}
    assert set(wh.sql("SELECT lead_id FROM lead_facts", user=SALES)["lead_id"]) == OWN_LEADS  # the pipeline
    assert leads.filter(pl.col("lead_id") == "CRM-1")["phone"].item() == "13900130001"  # own: unmasked
    events = wh.sql("SELECT count(*) AS n FROM lead_events", user=SALES).item()
    assert events == 10 + 3 + 2  # a lead event each, opportunities CRM-1/4/7, wins CRM-1/4
    board = wh.run_query("sales_leaderboard", user=SALES)
    assert board.rows() == [("rep1", 2, 2000.0 + 5000.0)]  # CRM-1 won 2,000 and CRM-4 won 5,000


@pytest.mark.parametrize("name", list_queries())
def test_an_analyst_never_gets_an_unmasked_phone_email_or_id(company_served: Warehouse, name: str) -> None:
    wh = company_served
    frame = wh.run_query(name, _required(name, wh), user=ANALYST)
    for cell in _text_cells(frame):
        for kind, pattern in UNMASKED.items():
            assert not pattern.search(cell), (name, kind, cell)


def test_masking_shapes_for_manager_and_none_for_admin(company_served: Warehouse) -> None:
    wh = company_served
    sql = "SELECT phone, email, id_number FROM customers WHERE id_number IS NOT NULL"
    manager = wh.sql(sql, user=Principal("m", "manager")).row(0)
    assert manager == ("138****8000", None, "1101**********002X")
    assert wh.sql(sql, user=Principal("a", "admin")).row(0) == ("13800138000", None, "11010519491231002X")
    email = wh.sql("SELECT email FROM leads WHERE lead_id = 'CRM-3'", user=Principal("m", "manager")).item()
    assert email == "u***@example.com"


@pytest.mark.parametrize("value", INJECTIONS, ids=lambda v: repr(v[:12]))
def test_injection_in_every_text_parameter_returns_nothing_extra(company_served: Warehouse, value: str) -> None:
    wh = company_served
    for name in list_queries():
        query = load_query(name)
        base = _required(name, wh)
        for p in query.params:
            if p.type != "str":
                continue
            try:
                frame = wh.run_query(name, {**base, p.name: value}, user=SALES)
            except QueryError as e:
                assert "Traceback" not in e.message and "not available" in e.message, (name, p.name, e.message)
                continue
            _assert_only_own_rows(name, frame)
    # the owner variable itself is bound: a sales user whose owner name is an injection sees nothing
    evil = Principal("evil", "sales", "x' OR '1'='1")
    assert wh.sql("SELECT count(*) FROM leads", user=evil).item() == 0
    assert wh.sql("SELECT count(*) FROM leads", user=SYSTEM).item() == 60  # and the tables are intact


def test_the_cli_runs_queries_as_the_user_and_audits_it(accounts: Settings) -> None:
    cfg = str(accounts.base_dir / "cockpit.toml")
    run = [sys.executable, "-m", "dashboard.cli", "--config", cfg, "query", "channel_leads", "-f", "json"]
    as_sales = subprocess.run([*run, "--user", "sales"], capture_output=True, text=True, timeout=120)
    assert as_sales.returncode == 0, as_sales.stderr
    assert {r["lead_id"] for r in json.loads(as_sales.stdout)} == OWN_LEADS
    as_analyst = subprocess.run([*run, "--user", "analyst"], capture_output=True, text=True, timeout=120)
    rows = json.loads(as_analyst.stdout)
    assert len(rows) == 60 and not any(UNMASKED["phone"].search(r["phone"] or "") for r in rows)
    nobody = subprocess.run([*run, "--user", "mallory"], capture_output=True, text=True, timeout=120)
    assert nobody.returncode == 2 and "no user named 'mallory'" in nobody.stderr and "Traceback" not in nobody.stderr
    events = audit.read(accounts, action="query")
    assert sorted(events["user"]) == ["analyst", "mallory", "sales"] and set(events["rows"]) == {10, 60, None}
    assert set(events["client"]) == {"cli"}  # the refused one too, with its reason
    assert "no user named 'mallory'" in events.filter(pl.col("user") == "mallory")["detail"][0]


def test_the_read_path_refuses_without_a_principal_and_system_is_explicit(company_served: Warehouse) -> None:
    """Safe by default (issue 18, point 2): no user means refused, on every way into the warehouse; only
    the SYSTEM principal reads the base relations, and no account can become it."""
    wh = company_served
    for call in (lambda: wh.sql("SELECT count(*) FROM leads"), lambda: wh.run_query("channel_summary")):
        with pytest.raises(QueryError, match="no user given"):
            call()
    with pytest.raises(QueryError, match="no user given"):
        wh.sql("SELECT count(*) FROM leads", user=None)
    assert wh.sql("SELECT count(*) FROM leads", user=SYSTEM).item() == 60
    # an account called "system" is a person with the admin role: the admin views, not the base schema
    person = Principal("system", "admin")
    assert person != SYSTEM and not person.system
    assert wh.sql("SELECT current_setting('search_path') AS p", user=person).item() == "r_admin"
    with pytest.raises(ValueError, match="system principal reads as admin"):
        Principal("system", "manager", system=True)


def test_an_unrestricted_cli_query_is_audited_with_who_ran_it(company: Settings) -> None:
    import getpass

    cfg = str(company.base_dir / "cockpit.toml")
    run = [sys.executable, "-m", "dashboard.cli", "--config", cfg, "query", "channel_leads", "-f", "json"]
    out = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 60
    events = audit.read(company, action="query")
    assert events.select("user", "role", "client", "target").rows() == [
        (getpass.getuser(), "system", "cli", "channel_leads")
    ]


# -- accounts and sessions ---------------------------------------------------------------------------
def test_users_file_holds_hashes_only_and_cli_manages_it(company: Settings) -> None:
    cfg = str(company.base_dir / "cockpit.toml")

    def cockpit(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "dashboard.cli", "--config", cfg, *args]
        return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120)

    added = cockpit("users", "add", "li", "-r", "sales", "--owner", "rep2", "--password-stdin", stdin="s3cret-pass\n")
    assert added.returncode == 0, added.stderr
    short = cockpit("users", "add", "wu", "--role", "analyst", "--password-stdin", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    no_owner = cockpit("users", "add", "zh", "--role", "sales", "--password-stdin", stdin="long-enough\n")
    assert no_owner.returncode == 2 and "--owner" in no_owner.stderr
    stored = company.users_path.read_text(encoding="utf-8")
    assert "s3cret-pass" not in stored and "$argon2id$" in stored
    assert oct(company.users_path.stat().st_mode & 0o777) == "0o600"
    listed = cockpit("users", "list")
    assert "li\tsales\trep2" in listed.stdout and "argon2" not in listed.stdout
    assert auth.sign_in(company, "li", "s3cret-pass", None).principal == Principal("li", "sales", "rep2")
    assert cockpit("users", "passwd", "li", "--password-stdin", stdin="another-pass\n").returncode == 0
    with pytest.raises(auth.AuthError):
        auth.sign_in(company, "li", "s3cret-pass", None)
    assert cockpit("users", "remove", "li").returncode == 0
    assert auth.load_accounts(company) == {}
    assert sorted(audit.read(company)["action"]) == ["user_add", "user_passwd", "user_remove"]


def test_serve_refuses_without_accounts_unless_no_auth_is_given(company: Settings) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    out = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--config", cfg, "serve"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "--no-auth" in out.stderr and "cockpit users add" in out.stderr


def test_lockout_per_account_and_per_client_with_back_off(accounts: Settings) -> None:
    policy = accounts.security  # 5 failures, then 60 s, doubling
    for i in range(policy.lockout_after):
        with pytest.raises(auth.AuthError, match="wrong user name or password"):
            auth.sign_in(accounts, "manager", "guess", "10.0.0.9", now=1000.0 + i)
    with pytest.raises(auth.AuthError, match="too many failed sign-ins") as locked:
        auth.sign_in(accounts, "manager", PASSWORD, "10.0.0.1", now=1010.0)  # the right password, locked account
    assert locked.value.retry_after == pytest.approx(54.0)
    with pytest.raises(auth.AuthError, match="too many"):  # the guessing client is locked for other accounts too
        auth.sign_in(accounts, "analyst", PASSWORD, "10.0.0.9", now=1010.0)
    assert auth.sign_in(accounts, "analyst", PASSWORD, "10.0.0.1", now=1010.0).role == "analyst"
    with pytest.raises(auth.AuthError, match="wrong"):  # after the wait, one more failure locks twice as long
        auth.sign_in(accounts, "manager", "guess", "10.0.0.2", now=1100.0)
    with pytest.raises(auth.AuthError) as longer:
        auth.sign_in(accounts, "manager", PASSWORD, "10.0.0.2", now=1101.0)
    assert longer.value.retry_after == pytest.approx(119.0)
    assert auth.sign_in(accounts, "manager", PASSWORD, "10.0.0.2", now=1300.0).role == "manager"


# -- the app, per role ----------------------------------------------------------------------------------
def _app(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.delenv("COCKPIT_NO_AUTH", raising=False)
    monkeypatch.setenv(CONFIG_ENV, str(settings.base_dir / "cockpit.toml"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    if at.sidebar.radio[0].value != "en":
        at.sidebar.radio[0].set_value("en").run()
    return at


def _sign_in(at: AppTest, user: str, password: str = PASSWORD) -> AppTest:
    at.text_input[0].input(user)
    at.text_input[1].input(password)
    return at.button[0].click().run()


@pytest.mark.usefixtures("fresh_caches")
@pytest.mark.parametrize("role", ROLES)
def test_each_role_opens_its_pages_and_is_refused_the_others(
    accounts: Settings, monkeypatch: pytest.MonkeyPatch, role: str
) -> None:
    at = _app(accounts, monkeypatch)
    assert [x.value for x in at.title] == [t("auth.title", "en")]  # nothing but the sign-in form
    assert not at.metric and not at.dataframe
    _sign_in(at, role)
    assert not at.exception, at.exception
    assert t("auth.signed_in", "en", user=role, role=t(f"role.{role}", "en")) in [c.value for c in at.sidebar.caption]
    refused = []
    for page in ROLE_PAGES["admin"]:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, at.exception)
        errors = [e.value for e in at.error]
        refusal = t("auth.refused", "en", page=t(f"page.{page}", "en"), role=t(f"role.{role}", "en"))
        if page in ROLE_PAGES[role]:
            assert refusal not in errors and [x.value for x in at.title][:1] == [t(f"page.{page}", "en")], page
        else:
            assert errors == [refusal] and not at.title, page
            refused.append(page)
    assert sorted(refused) == sorted(set(ROLE_PAGES["admin"]) - set(ROLE_PAGES[role]))
    events = audit.read(accounts)
    assert sorted(events.filter(pl.col("action") == "page_refused")["target"]) == sorted(refused)
    viewed = set(events.filter(pl.col("action") == "page_view")["target"])
    assert viewed == set(ROLE_PAGES[role]), viewed
    assert events.filter(pl.col("action") == "sign_in")["user"].to_list() == [role]


@pytest.mark.usefixtures("fresh_caches")
def test_sales_and_manager_see_different_rows_on_the_same_page(
    accounts: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def leads_tile(user: str) -> str:
        at = _sign_in(_app(accounts, monkeypatch), user)
        assert not at.exception, at.exception
        return next(m.value for m in at.metric if m.label == "Leads")

    assert leads_tile("sales") == "10"
    assert leads_tile("manager") == "60"


@pytest.mark.usefixtures("fresh_caches")
def test_wrong_passwords_lock_the_form_and_are_audited(accounts: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app(accounts, monkeypatch)
    for _ in range(accounts.security.lockout_after):
        _sign_in(at, "admin", "not the password")
        assert [e.value for e in at.error] == [t("auth.wrong", "en")]
    _sign_in(at, "admin")  # right password, locked account
    assert at.error[0].value.startswith("Too many failed sign-ins") and [x.value for x in at.title] == ["Sign in"]
    failed = audit.read(accounts, action="sign_in_failed")
    assert failed.height == accounts.security.lockout_after + 1 and set(failed["user"]) == {"admin"}


@pytest.mark.usefixtures("fresh_caches")
def test_an_ended_or_expired_session_goes_back_to_sign_in(accounts: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _sign_in(_app(accounts, monkeypatch), "manager")
    assert at.metric  # signed in: the cockpit shows
    at.session_state["_session_id"] = at.session_state["_session_id"][:-4] + "AAAA"  # a session id never issued
    at.run()
    assert [x.value for x in at.title] == ["Sign in"] and not at.metric
    assert at.warning[0].value == t("auth.session.ended", "en")
    at = _sign_in(_app(accounts, monkeypatch), "manager")  # a new browser session
    assert at.metric
    later = __import__("time").time() + accounts.security.session_idle_minutes * 60 + 5
    monkeypatch.setattr(sessions.time, "time", lambda: later)
    at.run()
    assert [x.value for x in at.title] == ["Sign in"] and at.warning[0].value == t("auth.session.idle", "en")
    assert audit.read(accounts, action="session_rejected").height == 2


def test_exports_are_audited_with_rows(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from dashboard.components import export_buttons

    monkeypatch.setattr(export_buttons, "user", lambda: Principal("m", "manager"))
    monkeypatch.setattr(export_buttons, "settings", lambda: company)
    monkeypatch.setattr(export_buttons, "client_address", lambda: "10.1.2.3")
    build = export_buttons.audited(lambda: b"a,b\n", "leads_20261122.csv", 42)
    assert audit.read(company).is_empty()  # drawing the button records nothing
    assert build() == b"a,b\n"
    [event] = audit.read(company).to_dicts()
    assert (event["action"], event["user"], event["role"], event["target"], event["rows"], event["client"]) == (
        "export",
        "m",
        "manager",
        "leads_20261122.csv",
        42,
        "10.1.2.3",
    )


def test_single_sign_on_identities_map_to_roles(company: Settings) -> None:
    from dashboard.core.config import SecurityConfig, SsoConfig

    sso = SsoConfig(admin=["IT@corp.example"], manager=["group:managers"], sales=["group:sales"])
    settings = company.model_copy(update={"security": SecurityConfig(sso=sso)})
    assert auth.sso_principal(settings, {"email": "it@corp.example"}) == Principal("it@corp.example", "admin")
    both = {"email": "wang@corp.example", "groups": ["sales", "managers"], "name": "rep1"}
    assert auth.sso_principal(settings, both) == Principal("wang@corp.example", "manager")  # the stronger role
    assert auth.sso_principal(settings, {"email": "li@corp.example", "groups": "sales", "name": "rep2"}) == Principal(
        "li@corp.example", "sales", "rep2"
    )
    assert auth.sso_principal(settings, {"email": "x@corp.example", "groups": ["sales"]}) is None  # no owner name
    assert auth.sso_principal(settings, {"email": "stranger@elsewhere.example"}) is None


def test_demo_accounts_one_per_role_and_sales_owns_the_busiest_owner(company: Settings) -> None:
    made = auth.demo_accounts(company)
    assert [(u, r) for u, r, _, _ in made] == [(r, r) for r in ROLES]
    owners = {owner for _, role, _, owner in made if role == "sales"}
    assert owners == {"rep0"}  # 10 leads each: the first name wins the tie
    assert auth.sign_in(company, "sales", "sales-demo", None).principal == Principal("sales", "sales", "rep0")
    assert auth.demo_accounts(company) == []  # made once; existing accounts are left alone


@pytest.mark.usefixtures("fresh_caches")
def test_no_auth_says_so_on_every_page(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(company.base_dir / "cockpit.toml"))  # COCKPIT_NO_AUTH=1: the conftest
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.sidebar.radio[0].set_value("en").run()
    for page in ROLE_PAGES["admin"]:
        at.switch_page(f"pages/{page}.py").run()
        assert t("auth.disabled", "en") in [w.value for w in at.warning], page
