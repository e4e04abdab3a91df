"""Each record's golden customer, carried in the facts the serving connection reads most: ``lead_facts`` and
``orders`` gain ``customer_key`` (identity resolution's link of the record) when a connection is built, so
Explore counts distinct customers and reads golden attributes without joining identity links on three text
columns per query (issue 22, point 3), and orders are held in memory like lead facts. ``contracts`` gain it
too, so Customer 360's timeline reads one customer's contracts by it instead of joining every contract to the
customer's records.

A relation's companion table of personal-key tokens (``<relation>__psn``, derived/personal.py) gets the
same column, joined on its raw keys, so the masked roles' rows carry it too.
"""

from __future__ import annotations

import duckdb

from dashboard.derived.personal import PSN_SUFFIX

# relation → (the identity links' record kind, the relation's column naming the record). The join keeps the
# facts' own row order (date order, per source file) in practice, so date filters still skip row groups; an
# ORDER BY would cost ~2 s of CPU per build at large for an order that only helps speed, never an answer.
KEYED: dict[str, tuple[str, str]] = {
    "lead_facts": ("lead", "lead_id"),
    "orders": ("customer", "customer_ref"),
    "contracts": ("customer", "customer_ref"),  # Customer 360's timeline reads one customer's by this key
}


def attach_customer_keys(con: duckdb.DuckDBPyConnection, base: str, in_memory: frozenset[str]) -> None:
    """Add ``customer_key`` to each KEYED relation of ``base`` and its companion table; a relation named in
    ``in_memory`` (or already a table) becomes a table, the others stay views over their files."""
    for relation, (kind, column) in KEYED.items():
        for name in (relation, f"{relation}{PSN_SUFFIX}"):
            found = relation_kind(con, base, name)
            if found is None:
                continue
            table = found == "TABLE" or relation in in_memory
            # our own schema, relation and column names; the record kind is a constant of ours
            con.execute(f"ALTER {found} {base}.{name} RENAME TO {name}__unkeyed")
            con.execute(
                f"CREATE {'TABLE' if table else 'VIEW'} {base}.{name} AS SELECT t.*, l.customer_key "
                f"FROM {base}.{name}__unkeyed AS t LEFT JOIN {base}.identity_links AS l "
                f"ON l.record_kind = '{kind}' AND l.source_system = t.source_system AND l.source_record_id = t.{column}"
            )
            if table:
                con.execute(f"DROP {found} {base}.{name}__unkeyed")


def relation_kind(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> str | None:
    """'TABLE', 'VIEW' or None: what ``schema.name`` is."""
    row = con.execute(
        "SELECT 'TABLE' FROM duckdb_tables() WHERE schema_name = $s AND table_name = $n "
        "UNION ALL SELECT 'VIEW' FROM duckdb_views() WHERE schema_name = $s AND view_name = $n AND NOT internal",
        {"s": schema, "n": name},
    ).fetchone()
    return None if row is None else str(row[0])
