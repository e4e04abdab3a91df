"""Who is asking, and what they may see: roles, the pages each role opens, and the per-role rules the
data layer applies (row filters for sales, masking of phones, emails and ID numbers for manager and
analyst). Pages never decide what a user sees; the warehouse builds each role's views from these rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ROLES = ("admin", "manager", "analyst", "sales")

# The pages (files under dashboard/pages/) each role's navigation shows; any other page is refused.
ROLE_PAGES: dict[str, tuple[str, ...]] = {
    "admin": (
        "cockpit",
        "channels",
        "customer_360",
        "churn",
        "data_quality",
        "catalog",
        "explore",
        "admin",
        "import_source",
    ),
    "manager": ("cockpit", "channels", "customer_360", "churn", "data_quality", "catalog", "explore"),
    "analyst": ("cockpit", "channels", "data_quality", "catalog", "explore"),
    "sales": ("cockpit", "customer_360", "churn"),
}

# Roles that see personal data unmasked (sales see only their own customers, unmasked).
UNMASKED_ROLES = frozenset({"admin", "sales"})


@dataclass(frozen=True)
class Principal:
    """A signed-in user as the data layer sees them. ``owner`` is the value of the ``owner`` column
    that marks a sales user's own customers and leads (their name in the CRM)."""

    username: str
    role: str
    owner: str | None = None
    # The system itself (the derived build, admin commands): reads the base relations, not a role's
    # views. Only SYSTEM below has it; no sign-in makes one (auth builds Principal(user, role, owner)).
    system: bool = False

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role '{self.role}' (roles: {', '.join(ROLES)})")
        if self.system and self.role != "admin":
            raise ValueError("the system principal reads as admin")
        if self.role == "sales" and not self.owner:
            raise ValueError(f"sales user '{self.username}' needs an owner name (the CRM's owner value)")


# The internal caller (refresh, derived build, admin commands such as `cockpit query` without --user): sees
# everything. The read path has no default principal: a caller names SYSTEM or a person, or is refused;
# a person invoking a command that reads as SYSTEM is audited (dashboard/cli.py).
SYSTEM = Principal("system", "admin", system=True)


def pages_for(role: str) -> tuple[str, ...]:
    return ROLE_PAGES.get(role, ())


def sees_only_own_customers(role: str) -> bool:
    """Whether the role's views hold only the customers it owns (sales): a customer it cannot open may exist."""
    return role == "sales"


# -- the data layer's rules -----------------------------------------------------------------------
# (the masking functions themselves, mask_phone and friends, are core.dictionary's MASK_MACROS)
PERSONAL_COLUMNS = {"phone": "mask_phone", "email": "mask_email", "id_number": "mask_id"}
FREE_TEXT_COLUMNS = frozenset({"note"})  # people type phone numbers into notes
# Roles whose views keep only some of the company's rows (sales: _sales_filter); the others read every row.
ROW_FILTERED_ROLES = frozenset({"sales"})
# Tables a sales user never reads (data-quality internals: samples across every owner's records).
SALES_DENIED = frozenset({"field_quality", "validation_runs", "validation_results", "identity_consistency"})
# Tables with nothing personal and no owner, that sales read whole (channel spend behind the ROI tile).
SALES_SHARED = frozenset({"marketing_spend", "churn_model"})  # churn_model: the model card, nothing personal

OWNER_VAR = "getvariable('cockpit_owner')"
# A sales user's own records and golden customers (views in the base schema, read through the variable).
SALES_HELPERS = f"""
CREATE OR REPLACE VIEW {{base}}.sales_own_records AS
SELECT source_system, source_record_id, 'customer' AS record_kind FROM {{base}}.customers WHERE owner = {OWNER_VAR}
UNION ALL SELECT source_system, lead_id, 'lead' FROM {{base}}.leads WHERE owner = {OWNER_VAR};
CREATE OR REPLACE VIEW {{base}}.sales_keys AS
SELECT DISTINCT l.customer_key FROM {{base}}.identity_links AS l
SEMI JOIN {{base}}.sales_own_records AS o
  ON o.source_system = l.source_system AND o.source_record_id = l.source_record_id AND o.record_kind = l.record_kind;
CREATE OR REPLACE VIEW {{base}}.sales_key_records AS
SELECT source_system, source_record_id FROM {{base}}.identity_links
WHERE record_kind = 'customer' AND customer_key IN (SELECT customer_key FROM {{base}}.sales_keys);
CREATE OR REPLACE VIEW {{base}}.sales_leads AS
SELECT source_system, lead_id FROM {{base}}.leads WHERE owner = {OWNER_VAR};
CREATE OR REPLACE VIEW {{base}}.sales_key_leads AS
SELECT CAST(source_system AS VARCHAR) AS source_system, lead_id FROM {{base}}.lead_facts
WHERE owner = {OWNER_VAR} OR customer_key IN (SELECT customer_key FROM {{base}}.sales_keys);
"""
# sales_key_leads: their own leads and their customers' (lead_facts holds every lead with its identity link's key,
# in memory: cheaper than scanning identity_links in each query on leads, their events or interactions)
SALES_HELPER_VIEWS = ("sales_own_records", "sales_keys", "sales_key_records", "sales_leads", "sales_key_leads")
# The source records a rep reads when linked to one of their customers, whoever owns the lead (README: "records
# linked to those customers"), so Customer 360 reads a rep's customer as the manager does. The pipeline's facts
# (lead_facts, attribution: the cockpit's leads, won deals, leaderboard) keep the leads the rep owns.
LINKED_RECORDS = frozenset({"leads", "lead_events", "interactions"})


def role_schema(role: str) -> str:
    return f"r_{role}"


@dataclass(frozen=True)
class Personal:
    """A column the refresh's profile found personal (derived/personal.py): its kind, and for an entity the
    sources whose snapshots hold such values (empty: every row, e.g. a derived table)."""

    kind: str
    sources: tuple[str, ...] = ()


def _projection(role: str, columns: dict[str, str], personal: Mapping[str, Personal]) -> str:
    # A table may carry a column masked at build (``phone_masked``): masked roles read it as ``phone``, so
    # a search over every row does not mask every row on each query; it is never shown under its own name.
    premasked = [c for c in PERSONAL_COLUMNS if c in columns and f"{c}_masked" in columns]
    exclude = f" EXCLUDE ({', '.join(f'{c}_masked' for c in premasked)})" if premasked else ""
    if role == "admin":
        return "*" + exclude
    if role in UNMASKED_ROLES:  # sales: their own customers' contact details in clear, keys never
        replaced = _by_content(columns, personal, set(), keys_only=True)
        return f"*{exclude} REPLACE ({', '.join(replaced)})" if replaced else "*" + exclude
    replaced = [
        f"{c}_masked AS {c}" if c in premasked else f"{fn}({c}) AS {c}"
        for c, fn in PERSONAL_COLUMNS.items()
        if c in columns
    ]
    replaced += [f"scrub_pii({c}) AS {c}" for c in FREE_TEXT_COLUMNS if c in columns]
    by_attribute = "attribute" in columns and "value" in columns
    if by_attribute:
        cases = " ".join(f"WHEN '{c}' THEN {fn}(value)" for c, fn in PERSONAL_COLUMNS.items())
        replaced.append(f"CASE attribute {cases} ELSE scrub_pii(value) END AS value")
    done = {*PERSONAL_COLUMNS, *FREE_TEXT_COLUMNS, *(("value",) if by_attribute else ())}
    replaced += _by_content(columns, personal, done, keys_only=False)
    return f"*{exclude} REPLACE ({', '.join(replaced)})" if replaced else "*" + exclude


def _by_content(
    columns: dict[str, str], personal: Mapping[str, Personal], done: set[str], keys_only: bool
) -> list[str]:
    """Columns personal by content (derived/personal.py's profile at refresh), whatever their name: a key
    becomes its keyed pseudonym (joins and counts hold), other text is scrubbed (``keys_only``: left)."""
    # imported here, as in role_view_sql: DuckDB and polars come with them, which a command that only checks
    # a user's role or password (`cockpit users`, a sign-in) does not need
    from dashboard.core.duck import quote_literal
    from dashboard.derived.personal import KEY_COLUMNS

    replaced = []
    for c, found in sorted(personal.items()):
        if c not in columns or c in done or columns[c] not in ("VARCHAR", "VARCHAR[]"):
            continue
        key = c in KEY_COLUMNS or found.kind == "key"
        if keys_only and not key:
            continue
        fn = "main.pseudonym" if key else "scrub_pii"
        value = f"list_transform({c}, lambda x: {fn}(x))" if columns[c] == "VARCHAR[]" else f"{fn}({c})"
        if found.sources and "source_system" in columns:  # only the rows of the sources where it was found
            listed = ", ".join(quote_literal(name) for name in found.sources)
            value = f"CASE WHEN source_system IN ({listed}) THEN {value} ELSE {c} END"
        replaced.append(f"{value} AS {c}")
    return replaced


def _sales_filter(name: str, columns: dict[str, str], base: str) -> str | None:
    """The WHERE clause that keeps a sales user's own rows of ``name``; None: the table is refused."""
    if name in SALES_DENIED:
        return None
    if name in SALES_SHARED:
        return "true"
    if name == "filter_values":  # the filter bar lists only the user's own name among owners
        return f"kind <> 'owner' OR value = {OWNER_VAR}"
    linked = name in LINKED_RECORDS
    # a lead's stage events are its lead id's, whichever system recorded them (as lead_facts reads them)
    same_system = "" if name == "lead_events" else "k.source_system = t.source_system AND "
    own_lead = (
        f"EXISTS (SELECT 1 FROM {base}.{'sales_key_leads' if linked else 'sales_leads'} AS k "
        f"WHERE {same_system}k.lead_id = t.lead_id)"
    )
    if "owner" in columns:
        return f"owner = {OWNER_VAR} OR {own_lead}" if linked else f"owner = {OWNER_VAR}"
    if "customer_key" in columns:
        return f"customer_key IN (SELECT customer_key FROM {base}.sales_keys)"
    own_customer = (
        f"EXISTS (SELECT 1 FROM {base}.sales_key_records AS k "
        f"WHERE k.source_system = t.source_system AND k.source_record_id = t.customer_ref)"
    )
    if "customer_ref" in columns and "source_system" in columns:
        return f"{own_customer} OR {own_lead}" if "lead_id" in columns else own_customer
    if "lead_id" in columns and "source_system" in columns:
        return own_lead
    return None


def role_view_sql(
    role: str,
    name: str,
    columns: dict[str, str],
    base: str = "base",
    personal: Mapping[str, Personal] | None = None,
    precomputed: Mapping[str, tuple[str, ...]] | None = None,
    whole: bool = False,
) -> str | None:
    """The view ``r_<role>.<name>`` over ``<base>.<name>``, or None when the role may not read it;
    ``personal`` = the relation's columns found personal by content; ``precomputed`` = its personal keys
    whose tokens the build wrote beside them (``<base>.<name>__psn``, derived/personal.py), with their
    sources: those rows are read from there, the rest from the relation, and no key is hashed per query;
    ``whole``: the companion table holds every row of the relation, the only one read."""
    from dashboard.core.duck import quote_literal
    from dashboard.derived.personal import PSN_SUFFIX

    where = _sales_filter(name, columns, base) if role == "sales" else "true"
    if where is None:
        return None
    personal = personal or {}
    source = f"{base}.{name} AS t"
    if precomputed and role != "admin" and "source_system" in columns:
        personal = {  # the keys whose tokens are read, not computed
            c: p for c, p in personal.items() if not (c in precomputed and set(p.sources) <= set(precomputed[c]))
        }
        listed = ", ".join(quote_literal(s) for s in sorted({s for ss in precomputed.values() for s in ss}))
        tokens = list(precomputed)
        own = "" if where == "true" else f" AND ({where})"
        rest = f"SELECT * FROM {base}.{name} AS t WHERE (t.source_system NOT IN ({listed}) OR t.source_system IS NULL)"
        keyed = (
            f"SELECT * EXCLUDE ({', '.join(f'{c}{PSN_SUFFIX}' for c in tokens)}) "
            f"REPLACE ({', '.join(f'{c}{PSN_SUFFIX} AS {c}' for c in tokens)}) "
            f"FROM {base}.{name}{PSN_SUFFIX} AS t WHERE true{own}"
        )
        # the row filter is inside
        source, where = (f"({keyed}) AS t" if whole else f"({rest}{own} UNION ALL BY NAME {keyed}) AS t"), "true"
    select = f"SELECT {_projection(role, columns, personal)} FROM {source}"
    if where != "true":
        select += f" WHERE {where}"
    return f"CREATE OR REPLACE VIEW {role_schema(role)}.{name} AS {select}"
