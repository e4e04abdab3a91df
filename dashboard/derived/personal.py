"""Which columns hold personal data, recognised by what their values are, not by what a column is called.

At every derived build, each source's snapshot file of each entity and each derived table is sampled
(SAMPLE_ROWS rows per file, chosen by their content: see _sample) and each text column's values are classified by
``main.pii_kind`` (core/dictionary.py: mainland mobiles with or without +86 and separators, e-mail
addresses, 18-character ID numbers). A column where any sampled value is personal is listed in
``personal_columns`` with its kind and share, per source for the entities: a call center that keys its
customers by phone number makes ``customers.source_record_id`` personal, whatever the column is called.
The serving layer (query/security.py) masks every listed column for masked roles: personal keys become
keyed pseudonyms, other text is scrubbed.

Derived columns that carry source keys (identity links, lead facts...) are listed by lineage instead, for
each source whose key column is personal: they hold the same values, and a sample of a large table can
miss a small source; the serving layer then pseudonymises only that source's rows.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from dashboard.core.duck import quote_literal, quote_path
from dashboard.core.keys import PSEUDONYM_KEY, own_key

TABLES: dict[str, dict[str, str]] = {
    "personal_columns": {
        "relation": "VARCHAR",
        "column_name": "VARCHAR",
        "source_system": "VARCHAR",  # for an entity, the source whose snapshot it is; NULL for derived tables
        "kind": "VARCHAR",  # phone | email | id_number | key (a derived column carrying personal source keys)
        "share": "DOUBLE",  # of the sampled non-empty values
        "sampled": "BIGINT",
    }
}
SAMPLE_ROWS = 20_000
# The canonical schema's record keys: a personal one is pseudonymised (joins still work), not masked.
KEY_COLUMNS = frozenset({"source_record_id", "customer_ref", "lead_id", "order_id", "interaction_id", "contract_id"})
# Derived columns that carry the source keys (our own tables: known by construction).
CARRIES_KEYS: dict[str, tuple[str, ...]] = {
    "identity_links": ("source_record_id",),
    "customer_attributes": ("source_record_id",),
    "lead_facts": ("lead_id", "customer_ref"),
    "attribution": ("lead_id",),
}


@dataclass(frozen=True)
class Union:
    """A derived table stored as several files read by one statement (golden's customer_attributes as its base and
    part, derived.golden.Parts): profiled and copied into its companion as the rows that statement reads."""

    sql: str
    files: tuple[Path, ...]

    def exists(self) -> bool:
        return all(f.exists() for f in self.files)


Stored = Path | Union  # a derived table's file, or its files and the statement that reads them


def _from(stored: Stored) -> str:
    """What a statement reads ``stored``'s rows from (our own paths, quoted)."""
    return f"read_parquet({quote_path(stored)})" if isinstance(stored, Path) else f"({stored.sql})"


def _schema(stored: Stored) -> list[tuple[str, str]]:
    """(column, type) of ``stored``'s (first) file."""
    return [(f.name, str(f.type)) for f in pq.read_schema(stored if isinstance(stored, Path) else stored.files[0])]


TEXT_TYPES = ("VARCHAR", "VARCHAR[]")  # text, and lists of text (samples, examples, sources)


def _text_columns(con: duckdb.DuckDBPyConnection, file: Stored) -> dict[str, str]:
    described = con.execute(f"DESCRIBE SELECT * FROM {_from(file)}").fetchall()
    return {name: kind for name, kind, *_ in described if kind in TEXT_TYPES}


# Columns that name what a build made, a snapshot or a customer: two builds of the same rows may spell them
# differently (snapshot ids are times, customer keys are handed on from build to build), so they take no part
# in choosing the sample. They are still classified like every other column.
BUILD_NAMES = frozenset({"snapshot_id", "customer_key", "old_key"})
SAMPLE = "personal_sample"  # the temporary table a file's sample is put in, on the build's connection
K1, K2 = "personal_sample_k1", "personal_sample_k2"  # its sort keys' columns (a file's text columns beside them)
SAMPLE_MARGIN = 1.25  # the rows sorted for a sample: 25 % more than it takes, on average (_first)


def _keys(content: list[str], names: list[str]) -> tuple[str, str]:
    """The sample's first two sort keys (SQL over the quoted columns): the hash of the rows' content, then the hash
    of their build names, which only orders rows of the same content (rows that differ in their build names alone:
    customer_golden's or churn_scores' customers with the same attributes, identity_consistency's pairs)."""
    return f"hash({', '.join(content)})", f"hash({', '.join(names)})" if names else "0::UBIGINT"


def _sample(con: duckdb.DuckDBPyConnection, file: Stored, columns: list[str]) -> None:
    """Puts in the table SAMPLE the first SAMPLE_ROWS rows of ``file`` in the order of (hash of the content, hash
    of the build names, content, build names): which rows are sampled depends only on the rows' content, not on
    the file's row groups or the scan's order, so the same rows give the same profile however a build wrote them
    (a reservoir sample did not: at medium an incremental build's customer_attributes read 0.0961 e-mails, a full
    build's 0.09615).

    DuckDB sorts by the two hashes only (``ORDER BY ... LIMIT``): encoding every text column into the sort key as
    well cost about as much again. One more row than the sample says whether rows tie on both hashes at the limit
    (identical rows, or a collision): then the rows with those hashes are read again and ordered by their text,
    so the sample is the whole order's in every case. Only rows whose content hash is below what SAMPLE_MARGIN
    times the sample's share of the file leaves (hashes are uniform) are sorted at all, so the rows' text is not
    carried through the sort for every row; when fewer pass (a file of many equal rows), the file is sorted whole."""
    quoted = [f'"{c}"' for c in columns]  # names from the file's own schema, quoted
    content = [q for c, q in zip(columns, quoted, strict=True) if c not in BUILD_NAMES] or quoted
    names = [q for q in quoted if q not in content]
    first, second = _keys(content, names)
    read = _from(file)
    if isinstance(file, Path):
        count = pq.ParquetFile(file).metadata.num_rows
    else:
        [(count,)] = con.execute(f"SELECT count(*) FROM {read}").fetchall()
    if count <= SAMPLE_ROWS:  # the whole file
        con.execute(f"CREATE OR REPLACE TEMP TABLE {SAMPLE} AS SELECT {', '.join(quoted)} FROM {read}")
        return
    rows = f"SELECT {', '.join(quoted)}, {first} AS {K1}, {second} AS {K2} FROM {read}"
    taken = _first(con, rows, count)
    # the greatest hashes taken are the next row's: the rows before them are in the sample whatever their text, the
    # rows with them as far as the whole order takes them
    [(k1, k2)] = con.execute(f"SELECT {K1}, {K2} FROM {SAMPLE} ORDER BY {K1} DESC, {K2} DESC LIMIT 1").fetchall()
    last = f"{K1} = {int(k1)}::UBIGINT AND {K2} = {int(k2)}::UBIGINT"
    [(tied,)] = con.execute(f"DELETE FROM {SAMPLE} WHERE {last}").fetchall()
    if taken - tied < SAMPLE_ROWS:
        order = ", ".join([*content, *names])
        limit = SAMPLE_ROWS - (taken - tied)
        con.execute(f"INSERT INTO {SAMPLE} SELECT * FROM ({rows}) WHERE {last} ORDER BY {order} LIMIT {limit}")


def _first(con: duckdb.DuckDBPyConnection, rows: str, count: int) -> int:
    """Puts the first SAMPLE_ROWS + 1 of ``rows`` (``count`` of them, more than SAMPLE_ROWS) by their two hashes in
    SAMPLE; returns how many it holds: SAMPLE_ROWS + 1."""
    share = SAMPLE_MARGIN * (SAMPLE_ROWS + 1) / count
    top = f"ORDER BY {K1}, {K2} LIMIT {SAMPLE_ROWS + 1}"
    if share < 1:
        below = f"{K1} < {int(share * 2**64)}::UBIGINT"
        [(taken,)] = con.execute(f"CREATE OR REPLACE TEMP TABLE {SAMPLE} AS {rows} WHERE {below} {top}").fetchall()
        if taken > SAMPLE_ROWS:
            return int(taken)
    [(taken,)] = con.execute(f"CREATE OR REPLACE TEMP TABLE {SAMPLE} AS {rows} {top}").fetchall()
    return int(taken)


# What puts a file's sample in SAMPLE (con, file, its text columns): _sample, or another engine's that takes the same
# rows (engine spark: derived/spark/personal.py reads and hashes the file on Spark)
Sampler = Callable[[duckdb.DuckDBPyConnection, Stored, list[str]], None]


def _classify(
    con: duckdb.DuckDBPyConnection, file: Stored, decided: tuple[str, ...] = (), sample: Sampler | None = None
) -> list[tuple[str, str, float, int]]:
    """(column, kind, share, sampled) for each personal kind found in a text column of ``file`` but those
    ``decided`` otherwise (they still choose the sample, as the rows' content)."""
    columns = {c: kind for c, kind in _text_columns(con, file).items() if "'" not in c and '"' not in c}
    if not set(columns) - set(decided):
        return []
    (sample or _sample)(con, file, list(columns))
    values = {c: f'unnest("{c}")' if k.endswith("[]") else f'"{c}"' for c, k in columns.items() if c not in decided}
    per_column = " UNION ALL ".join(  # each distinct value classified once (a column's values repeat: cities...)
        f"SELECT '{c}' AS column_name, main.pii_kind(v) AS kind, sum(n)::BIGINT AS n FROM "
        f"(SELECT v, count(*) AS n FROM (SELECT {value} AS v FROM {SAMPLE}) WHERE v IS NOT NULL AND v <> '' "
        "GROUP BY v) GROUP BY ALL"
        for c, value in values.items()
    )
    rows = con.execute(per_column).fetchall()
    con.execute(f"DROP TABLE {SAMPLE}")
    totals: dict[str, int] = {}
    for column, _kind, n in rows:
        totals[column] = totals.get(column, 0) + n
    position = {c: i for i, c in enumerate(columns)}  # found in the file's order of columns, whatever the query's
    found = sorted(((c, k, n) for c, k, n in rows if k is not None), key=lambda r: (position[r[0]], r[1]))
    return [(c, k, n / totals[c], totals[c]) for c, k, n in found]


Row = tuple[str, str, str | None, str, float | None, int | None]  # a personal_columns row
Profiled = dict[tuple[str, str | None], list[Row]]  # (relation, source) → the rows found in its file


def profile(
    con: duckdb.DuckDBPyConnection,
    entity_files: dict[tuple[str, str], Path],
    derived_files: dict[str, Stored],
    kept: Kept | None = None,
    sample: Sampler | None = None,
    profiled: Profiled | None = None,
) -> pl.DataFrame:
    """``personal_columns`` for the entity files ((entity, source) → file) and derived files (table → file);
    ``con`` has the masking macros (core.dictionary.MASK_MACROS). A file ``kept`` profiled is not sampled again.
    ``sample``: what samples a file (None: _sample). ``profiled``: what was found already in some of these files
    (Companions.profiled), not sampled again."""
    found = {**(profiled or {}), **_profiled(con, entity_files, derived_files, kept, sample, profiled or {})}
    return _found(found, entity_files, derived_files)


def _files(
    entity_files: dict[tuple[str, str], Path], derived_files: dict[str, Stored]
) -> list[tuple[str, str | None, Stored]]:
    """(relation, source, file) of every file profiled, in personal_columns' order: the entities', then the derived."""
    files: list[tuple[str, str | None, Stored]] = [(e, s, f) for (e, s), f in sorted(entity_files.items())]
    return files + [(table, None, file) for table, file in sorted(derived_files.items()) if file.exists()]


def _profiled(
    con: duckdb.DuckDBPyConnection,
    entity_files: dict[tuple[str, str], Path],
    derived_files: dict[str, Stored],
    kept: Kept | None,
    sample: Sampler | None,
    done: Profiled,
) -> Profiled:
    """The rows found in each file not ``done``: the kept build's when it profiled the same file, else classified."""
    out: Profiled = {}
    for relation, source, file in _files(entity_files, derived_files):
        if (relation, source) in done:
            continue
        same = kept.rows(relation, source, file) if kept is not None else None
        if same is None:
            carried = CARRIES_KEYS.get(relation, ()) if source is None else ()  # decided by lineage (_found)
            same = [
                (relation, c, source, kind, share, n) for c, kind, share, n in _classify(con, file, carried, sample)
            ]
        out[(relation, source)] = same
    return out


def _found(
    profiled: Profiled, entity_files: dict[tuple[str, str], Path], derived_files: dict[str, Stored]
) -> pl.DataFrame:
    """personal_columns from what each of the files was found to hold, with the columns decided by lineage."""
    found = [
        row for relation, source, _file in _files(entity_files, derived_files) for row in profiled[(relation, source)]
    ]
    # A derived column carrying source keys is personal for the rows of each source whose keys are: the
    # entity files are profiled one source at a time, so a small source is not lost in a large table's
    # sample, and the other sources' rows are served as they are (no pseudonym to compute on them).
    keyed = sorted({source for _, column, source, *_ in found if source is not None and column in KEY_COLUMNS})
    found += [
        (table, c, source, "key", None, None) for table, cs in CARRIES_KEYS.items() for c in cs for source in keyed
    ]
    types = {"VARCHAR": pl.String, "DOUBLE": pl.Float64, "BIGINT": pl.Int64}
    return pl.DataFrame(found, schema={c: types[t] for c, t in TABLES["personal_columns"].items()}, orient="row")


# -- keyed pseudonyms, computed once per build ----------------------------------------------------
PSN_SUFFIX = "__psn"  # `<relation>__psn`: a relation's rows of the sources with personal keys, tokens beside
# The column each companion table is written in the order of. Customer 360 reads these relations one customer
# at a time (by the customer's records or golden key): with a customer's rows side by side, the join and
# filter pushdown skip every other row group, where the snapshot's own order (dates) spreads them over all of
# them. Measured at large on the timeline of a customer the call center keys by phone: the companion rows read
# went from 1.77M to one row group (123k), 132 -> 8 ms CPU. Facts read by date (lead_facts, attribution) keep
# their order.
CLUSTER_BY: dict[str, str] = {
    "interactions": "customer_ref",
    "orders": "customer_ref",
    "contracts": "customer_ref",
    "customers": "source_record_id",
    "identity_links": "customer_key",
    "customer_attributes": "customer_key",
}
# Companion tables that hold every row of their relation (the other sources' keys as they are in the token
# column): the masked roles then read one relation, as the admin does, and the join filter of a Customer 360
# lookup reaches it (a union of the relation's other rows and the companion's lost it: the profile's identity
# links read 3.5M rows as a manager against a few row groups as an admin, +14 % CPU per query at large).
# Small derived tables only: a large one would be stored, and searched by an erasure, twice.
WHOLE = frozenset({"identity_links"})
# zstd's level 1: the companions are whole copies of their relations' rows (3.5M identity links at large), and
# level 1 writes them for ~20 % less CPU than DuckDB's default level at about the same size (large: the links'
# 74 MB file 2.41 -> 2.13 CPU-s, the call center's interactions 2.60 -> 2.41), read as fast.
COMPANION_COMPRESSION = "COMPRESSION zstd, COMPRESSION_LEVEL 1"


def pseudonym_sql(key: str, value: str) -> str:
    """The keyed pseudonym of ``value`` (an SQL expression): a personal value becomes 'PSN-' and 16 hex of
    SHA-256(key || value), other values pass unchanged. The build's companion tables and the serving
    connection's pseudonym() macro both use this, so a token is the same wherever it is computed."""
    if not re.fullmatch(r"[0-9a-f]+", key):
        raise ValueError("the pseudonym key is hex digits")
    token = f"'PSN-' || left(sha256('{key}' || {value}), 16)"
    return f"CASE WHEN main.pii_kind({value}) IS NULL THEN {value} ELSE {token} END"


def pseudonymized(found: pl.DataFrame) -> dict[str, dict[str, tuple[str, ...]]]:
    """Relation → its personal key columns → the sources whose rows hold personal values in them, from
    ``personal_columns``: what the companion tables precompute. A key found personal in a table without
    sources (every row) is left to the serving connection's pseudonym()."""
    out: dict[str, dict[str, set[str]]] = {}
    for relation, column, source, kind in found.select("relation", "column_name", "source_system", "kind").rows():
        if source is not None and (column in KEY_COLUMNS or kind == "key"):
            out.setdefault(relation, {}).setdefault(column, set()).add(source)
    return {r: {c: tuple(sorted(s)) for c, s in sorted(cols.items())} for r, cols in sorted(out.items())}


def _read_all(stored: list[Stored]) -> str:
    """What a statement reads the rows of every one of ``stored`` from, by name."""
    paths = [p for p in stored if isinstance(p, Path)]
    reads = [f"SELECT * FROM read_parquet([{', '.join(quote_path(p) for p in paths)}], union_by_name = true)"]
    reads = (reads if paths else []) + [u.sql for u in stored if isinstance(u, Union)]
    return (
        reads[0].removeprefix("SELECT * FROM ")
        if len(reads) == 1 and paths
        else f"({' UNION ALL BY NAME '.join(reads)})"
    )


def write_pseudonymized(
    con: duckdb.DuckDBPyConnection,
    key: str,
    found: pl.DataFrame,
    files: dict[str, list[Stored]],
    stage: Path,
) -> dict[str, Path]:
    """For each relation with personal keys (``files``: relation → its Parquet files), ``<relation>__psn``:
    the rows of the sources where they are personal (every row for WHOLE), as they are, plus a
    ``<column>__psn`` token beside each personal key (the key itself on other sources' rows). Masked roles
    read these rows with the tokens in place of the keys (query/security.py), so no query hashes keys; erasure
    finds a person's rows here by their raw key.
    Returns table → file written."""
    written: dict[str, Path] = {}
    for relation, columns in pseudonymized(found).items():
        sources = sorted({s for cs in columns.values() for s in cs})
        paths = [f for f in files.get(relation, []) if f.exists()]
        target = stage / f"{relation}{PSN_SUFFIX}.parquet"
        listed = ", ".join(quote_literal(s) for s in sources)
        if paths:
            tokens = []
            for c, cs in columns.items():
                within = ", ".join(quote_literal(s) for s in cs)
                tokens.append(f"CASE WHEN source_system IN ({within}) THEN {pseudonym_sql(key, c)} ELSE {c} END")
            rows = (
                f"SELECT *, {', '.join(f'{t} AS {c}{PSN_SUFFIX}' for t, c in zip(tokens, columns, strict=True))} "
                f"FROM {_read_all(paths)} "
                f"{'' if relation in WHOLE else f'WHERE source_system IN ({listed})'}"
            )
            cluster = CLUSTER_BY.get(relation)
            if cluster in columns:  # a personal key: by its token, what the masked roles look customers up by
                rows += f" ORDER BY {cluster}{PSN_SUFFIX}"
            elif cluster is not None and any(cluster in dict(_schema(p)) for p in paths):
                rows += f" ORDER BY {cluster}"
        else:  # nothing to copy: an empty table says the relation's personal keys are precomputed
            rows = "SELECT " + ", ".join(f"NULL::VARCHAR AS {c}, NULL::VARCHAR AS {c}{PSN_SUFFIX}" for c in columns)
            rows += " WHERE false"
        con.execute(f"COPY ({rows}) TO {quote_path(target)} (FORMAT parquet, {COMPANION_COMPRESSION})")
        written[f"{relation}{PSN_SUFFIX}"] = target
    return written


@dataclass(frozen=True)
class Companions:
    """The personal step but its ``personal_columns`` file (write_companions): what the files profiled so far
    hold, and the companion tables written (table → file) with what each was written from (their keys)."""

    profiled: Profiled
    written: dict[str, Path]
    keys: dict[str, str]


def write_companions(
    con: duckdb.DuckDBPyConnection,
    data_path: Path,
    entity_files: dict[tuple[str, str], Path],
    derived_files: dict[str, Stored],
    stage: Path,
    kept: Kept | None = None,
    link: Callable[[Path, Path], object] = shutil.copyfile,
    sample: Sampler | None = None,
) -> Companions:
    """The entity files and ``derived_files`` profiled, and the companion tables with the keyed pseudonyms
    (write_pseudonymized, keyed by ``runs/.pseudonym_key`` under ``data_path``) written into ``stage``. Which
    companions there are and what they hold depends on the entity files' profiles and the files of the relations
    that carry source keys only (a derived table's own columns are listed without a source): a derived table that
    carries none may be written after this and profiled by write_tables (churn's, while this runs beside churn).
    With ``kept``, a companion made from the same files is ``link``-ed from it, not written again."""
    profiled = _profiled(con, entity_files, derived_files, kept, sample, {})
    found = _found(profiled, entity_files, derived_files)
    by_relation: dict[str, list[Stored]] = {t: [f] for t, f in derived_files.items()}
    for (entity, _source), file in entity_files.items():
        by_relation.setdefault(entity, []).append(file)
    key = own_key(data_path, PSEUDONYM_KEY)
    keys = _companion_keys(key, found, entity_files, derived_files)
    before = kept.files if kept is not None else {}
    same = {t for t, k in keys.items() if kept is not None and kept.companions.get(t) == k and t in before}
    same = {t for t in same if before[t].is_file()}
    written = {}
    for table in sorted(same):
        link(before[table], stage / f"{table}.parquet")
        written[table] = stage / f"{table}.parquet"
    remake = found.filter(~(pl.col("relation") + PSN_SUFFIX).is_in(list(same)))  # the others' rows stay whole
    written.update(write_pseudonymized(con, key, remake, by_relation, stage))
    return Companions(profiled, written, keys)


def write_tables(
    con: duckdb.DuckDBPyConnection,
    data_path: Path,
    entity_files: dict[tuple[str, str], Path],
    derived_files: dict[str, Stored],
    stage: Path,
    kept: Kept | None = None,
    link: Callable[[Path, Path], object] = shutil.copyfile,
    sample: Sampler | None = None,
    made: Companions | None = None,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """The derived build's personal-data step: ``personal_columns`` (profile) and the companion tables
    (write_companions, or ``made`` by it already from these entity files and some of ``derived_files``: the others
    are profiled here), written into ``stage``. Returns table → file, and what the step was made from
    (``Kept.state``: the next build's ``kept``). With ``kept`` (the current build's step, same code and settings),
    a file it profiled is not sampled again, and ``personal_columns`` is ``link``-ed from it when nothing else is
    found. ``sample``: what samples a file (profile)."""
    if made is None:
        made = write_companions(con, data_path, entity_files, derived_files, stage, kept, link, sample)
    found = profile(con, entity_files, derived_files, kept, sample, made.profiled)
    if kept is not None and found.equals(kept.found):  # no file profiled again, or nothing else found
        link(kept.file, stage / "personal_columns.parquet")
    else:
        found.write_parquet(stage / "personal_columns.parquet")
    files: list[tuple[tuple[str, str | None], Stored]] = [
        *(((e, s), f) for (e, s), f in entity_files.items()),
        *(((t, None), f) for t, f in derived_files.items()),
    ]
    state = {
        "profiled": {_slot(r, s): file_id(f) for (r, s), f in sorted(files, key=str) if f.exists()},
        "sampled_by": sampled_by(),
        "companions": made.keys,
    }
    return {"personal_columns": stage / "personal_columns.parquet", **dict(sorted(made.written.items()))}, state


# -- what the next build may keep ----------------------------------------------------------------------
def file_id(path: Stored) -> str:
    """A file's identity: the same inode, size and modification time are the same bytes. Published files are
    never written in place (a rewrite, erasure's too, replaces the file), and a build links the files of
    the current build it keeps, so a linked file is the same one. A Union's: its files'."""
    if isinstance(path, Union):
        return " ".join(file_id(f) for f in path.files)
    st = path.stat()
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"


def sampled_by() -> str:
    """How a file's sample is chosen (_sample's order, DuckDB's hash() of this version, SAMPLE_ROWS rows). A file
    profiled with another sample is profiled again, so kept rows are what a build from an empty folder finds."""
    return f"content hash, build names' hash, duckdb {duckdb.__version__}, {SAMPLE_ROWS} rows"


def _slot(relation: str, source: str | None) -> str:
    return f"{relation}/{source or ''}"


def _companion_keys(
    key: str, found: pl.DataFrame, entity_files: dict[tuple[str, str], Path], derived_files: dict[str, Stored]
) -> dict[str, str]:
    """Each companion table → what it is written from: the relation's personal keys and their sources, the
    files its rows come from (by identity), the columns of every file of the relation (they are read together,
    by name) and the pseudonym key (by its hash)."""
    out = {}
    for relation, columns in pseudonymized(found).items():
        sources = {s for cs in columns.values() for s in cs}
        files: list[tuple[str | None, Stored]] = [(None, derived_files[relation])] if relation in derived_files else []
        files += [(s, f) for (e, s), f in sorted(entity_files.items()) if e == relation]
        files = [(s, f) for s, f in files if f.exists()]
        read = [file_id(f) for s, f in files if relation in WHOLE or s is None or s in sources]
        schemas = [_schema(f) for _s, f in files]
        parts = [relation, columns, read, schemas, hashlib.sha256(key.encode()).hexdigest()]
        out[f"{relation}{PSN_SUFFIX}"] = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    return out


@dataclass(frozen=True)
class Kept:
    """The current build's personal step: its ``personal_columns`` rows, the files it profiled and the keys
    and files of its companion tables (``state``, as write_tables returned it, in the build's manifest entry)."""

    file: Path  # its personal_columns
    found: pl.DataFrame  # read from ``file``
    state: dict[str, Any]
    files: dict[str, Path]  # companion table → the current build's file

    @property
    def companions(self) -> dict[str, str]:
        return dict(self.state.get("companions") or {})

    def rows(self, relation: str, source: str | None, file: Stored) -> list[Row] | None:
        """The personal columns found in ``file`` when it is the one the current build profiled for ``relation``
        (and ``source``), else None (sample it)."""
        if self.state.get("sampled_by") != sampled_by():  # rows another sample chose
            return None
        if (self.state.get("profiled") or {}).get(_slot(relation, source)) != file_id(file):
            return None
        rows = self.found.filter((pl.col("relation") == relation) & pl.col("source_system").eq_missing(source))
        return [tuple(r) for r in rows.rows()]
