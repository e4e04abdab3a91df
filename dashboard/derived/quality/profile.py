"""Data-quality profile of one snapshot, computed once when it is staged (never on page load) and
kept beside its Parquet files as ``quality.parquet``: per entity and field the fill rate, validity
(phone, email, ID number, dates in range), uniqueness, and a few offending values, masked when personal.

One definition for both engines: an entity's measures are one SQL statement (DuckDB dialect: every count,
distinct count and rule-breaking count). With engine duckdb polars' SQL engine runs it over the frame just
staged (DuckDB's count(DISTINCT) took 3-5x polars' CPU); with engine spark it is a Spark job over the
staged file, transpiled (derived/spark/quality.py). The validity rules are SQL conditions that the few
samples (the first offending rows in the file's order, on the driver) filter by too.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from dashboard.core.config import SourceConfig
from dashboard.core.dictionary import Dictionary, mask_if
from dashboard.core.entities import ENTITIES, VALIDITY_FLAGS, Column, Condition

if TYPE_CHECKING:
    from sqlglot import exp

PROFILE_FILE = "quality.parquet"
MIN_DATE = datetime(2000, 1, 1)  # earlier dates are not plausible for CRM data
FUTURE_DAYS = {"due_date": 3660}  # due dates lie ahead; other dates may be at most a day in the future
SAMPLES = 5
# Exact distinct counts cost about a second per multi-million-row text column: above this many rows
# only the record key is counted exactly (its uniqueness is flagged); other fields get an estimate.
EXACT_DISTINCT_ROWS = 1_000_000
# What a field's fill over the rows it applies to is made of (measure_fill makes them again for a stored profile).
FILL_COLUMNS = ("applies_when", "applies_rows", "applies_filled", "fill_rate", "empty_samples")
TABLE = "profiled"  # the name the profile's statements read an entity's rows by

# Runs the entity's aggregate statement (DuckDB SQL over TABLE, ``$name`` parameters) on an engine and
# returns its one row by column name (engine spark: derived/spark/quality.py).
Aggregate = Callable[[str, dict[str, Any]], dict[str, Any]]

SCHEMA: dict[str, Any] = {
    "source_system": pl.String,
    "snapshot_id": pl.String,
    "entity": pl.String,
    "column_name": pl.String,
    "source_column": pl.String,  # the input column (or "= constant") the mapping names; null if none
    "provided": pl.Boolean,  # mapped, a constant, required, or filled: the source is judged on it
    "is_key": pl.Boolean,
    "personal": pl.Boolean,
    "rows": pl.Int64,
    "filled": pl.Int64,
    "applies_when": pl.String,  # the rows the field applies to ("stage = won"); null: every row
    "applies_rows": pl.Int64,  # how many rows that is
    "applies_filled": pl.Int64,  # of those, how many have a value
    "fill_rate": pl.Float64,  # applies_filled ÷ applies_rows: the fill rate every page and command shows
    "checked": pl.Int64,  # filled values a validity rule applies to (phone, email, ID number, dates)
    "invalid": pl.Int64,
    "valid_rate": pl.Float64,
    "distinct_values": pl.Int64,
    "distinct_exact": pl.Boolean,  # false: the engine's HyperLogLog estimate (polars' about ±2%, Spark's ±5%)
    "uniqueness": pl.Float64,  # distinct ÷ filled
    "empty_samples": pl.List(pl.String),  # record ids of rows where the field is empty
    "invalid_samples": pl.List(pl.String),
    "duplicate_samples": pl.List(pl.String),  # "value ×count" of repeated record keys
    "examples": pl.List(pl.String),
    "computed_at": pl.Datetime("us", "UTC"),
}


def mapping(src: SourceConfig) -> dict[str, dict[str, str]]:
    """entity → canonical column → where it comes from: the input's header, or ``= value`` for a constant."""
    out: dict[str, dict[str, str]] = {}
    for table in src.tables:
        cols = out.setdefault(table.entity, {})
        for name, header in table.columns.items():
            cols[name] = header if name not in cols or cols[name] == header else f"{cols[name]} | {header}"
        for name, value in table.constants.items():
            cols.setdefault(name, f"= {value}")
    return out


def _q(name: str) -> str:
    return f'"{name}"'  # our own column names (entities.py), never a source's


class Rules:
    """Each field's validity rule as a DuckDB condition on a filled value that breaks it, and the
    parameters the conditions name (the plausible date range, from ``now``)."""

    def __init__(
        self, cols: list[Column], columns: list[str], now: datetime, applies: dict[str, Condition] | None = None
    ) -> None:
        self.conditions: dict[str, str] = {}
        self.args: dict[str, Any] = {}
        # the rows each field applies to, where not every row: the condition as SQL over these rows
        self.applies = {c.name: (applies or {})[c.name] for c in cols if c.name in (applies or {})}
        self.where: dict[str, str] = {}
        for name, cond in self.applies.items():
            self.where[name], args = cond.sql(cond.column in columns, f"applies_{name}")
            self.args |= args
        for col in cols:
            value = _q(col.name)
            flag = VALIDITY_FLAGS.get(col.name)
            if flag and flag in columns:
                self.conditions[col.name] = f"{value} IS NOT NULL AND NOT coalesce({_q(flag)}, true)"
            elif col.type == "datetime":
                latest = f"latest_{col.name}"
                self.args["earliest"] = MIN_DATE
                self.args[latest] = now.replace(tzinfo=None) + timedelta(days=FUTURE_DAYS.get(col.name, 1))
                self.conditions[col.name] = f"{value} IS NOT NULL AND NOT ({value} BETWEEN $earliest AND ${latest})"

    def used(self, sql: str) -> dict[str, Any]:
        """The parameters ``sql`` names (DuckDB refuses one it does not)."""
        return {k: v for k, v in self.args.items() if re.search(rf"\${k}\b", sql)}


def aggregate_sql(cols: list[Column], rules: Rules, exact: set[str], *, estimates: bool = True) -> str:
    """One pass over an entity's rows: its row count, and per field the filled values, distinct values
    (exact, or a HyperLogLog estimate; ``estimates`` False: left out) and values breaking its rule."""
    parts = ["count(*) AS n"]
    for c in cols:
        parts.append(f"count({_q(c.name)}) AS f_{c.name}")
        if c.name in exact:
            parts.append(f"count(DISTINCT {_q(c.name)}) AS d_{c.name}")
        elif estimates:
            parts.append(f"approx_count_distinct({_q(c.name)}) AS d_{c.name}")
    parts += [f"count(CASE WHEN {cond} THEN 1 END) AS i_{name}" for name, cond in rules.conditions.items()]
    for name, where in rules.where.items():
        parts += [
            f"count(CASE WHEN {where} THEN 1 END) AS a_{name}",
            f"count(CASE WHEN {where} THEN {_q(name)} END) AS af_{name}",
        ]
    return f"SELECT {', '.join(parts)} FROM {TABLE}"


def bind(sql: str, args: dict[str, Any]) -> str:
    """``sql`` with its ``$name`` parameters as typed literals on the parse tree, for polars' SQL (which has
    no placeholders): the profile's own date bounds, and the values of the config's applies-when conditions (set
    as literal nodes, never pasted into the text); never a source's text."""
    import sqlglot  # imported when a profile is made (~0.1 CPU-s), not by every process that reads one
    from sqlglot import exp

    def literal(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Placeholder) and node.name in args:
            value = args[node.name]
            if isinstance(value, str):  # an applies-when value from the config: a string literal, quoted by sqlglot
                return exp.Literal.string(value)
            return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), "TIMESTAMP")
        return node

    return sqlglot.parse_one(sql, read="duckdb").transform(literal).sql(dialect="duckdb")


def profile_frame(
    frame: pl.DataFrame | pl.LazyFrame,
    source: str,
    snapshot_id: str,
    entity: str,
    sources: dict[str, str],
    dictionary: Dictionary,
    aggregate: Aggregate | None = None,
    applies: dict[str, Condition] | None = None,
) -> pl.DataFrame:
    """One pass of aggregates over one entity's published rows (``aggregate``: on an engine of its own, over
    the same rows as ``frame``; by default polars' SQL engine over ``frame``), then a few samples. ``frame``
    may be a scan of the staged file (engine spark: the samples read only what they pick). ``applies``: the
    rows a field applies to where not every row (QualityConfig.applies), its fill rate judged over them."""
    ent, now = ENTITIES[entity], datetime.now(UTC)
    names = frame.collect_schema().names()
    cols = [c for c in ent.columns if c.name in names]
    key = ent.key if ent.key in names else None
    rules = Rules(cols, names, now, applies)
    height = frame.height if isinstance(frame, pl.DataFrame) else frame.select(pl.len()).collect().item()
    exact = {c.name for c in cols if c.name == key or height <= EXACT_DISTINCT_ROWS}
    if aggregate is not None:
        sql = aggregate_sql(cols, rules, exact)
        agg = aggregate(sql, rules.used(sql))
    else:  # polars' SQL has no HyperLogLog: an estimate is each engine's own (polars' here, Spark's there)
        assert isinstance(frame, pl.DataFrame), "a scan's aggregates come from its engine"
        sql = aggregate_sql(cols, rules, exact - {key}, estimates=False)
        agg = pl.SQLContext({TABLE: frame}).execute(bind(sql, rules.used(sql)), eager=True).row(0, named=True)
        estimates = [
            pl.col(c.name).drop_nulls().approx_n_unique().alias(f"d_{c.name}") for c in cols if c.name not in exact
        ]
        agg |= frame.select(estimates).row(0, named=True) if estimates else {}
        if key is not None:
            agg[f"d_{key}"] = _distinct(frame.get_column(key))
    samples = _Samples(frame, rules, key, dictionary.personal(entity, key or ""))
    return pl.DataFrame([_record(c, agg, samples, entity, sources, dictionary) | {
        "source_system": source, "snapshot_id": snapshot_id, "entity": entity, "is_key": c.name == key,
        "distinct_exact": c.name in exact, "computed_at": now,
    } for c in cols], schema=SCHEMA)  # fmt: skip


def _distinct(values: pl.Series) -> int:
    """How many distinct values ``values`` holds besides null, exactly (SQL's count(DISTINCT)). A record key's
    are usually all distinct, which their 64-bit hashes show for a fifth of the cost of comparing the texts
    (5.8M WeChat message ids: 0.17 against 0.8 CPU-s): a collision can only make the hashes fewer, so as many
    hashes as values means as many distinct values; else the values are counted."""
    filled = values.drop_nulls() if values.null_count() else values
    if filled.hash().n_unique() == filled.len():
        return filled.len()
    return filled.n_unique()


def _record(
    c: Column, agg: dict[str, Any], samples: _Samples, entity: str, sources: dict[str, str], dictionary: Dictionary
) -> dict[str, Any]:
    n, filled = int(agg["n"]), int(agg[f"f_{c.name}"])
    where = samples.rules.where.get(c.name)
    rows, rows_filled = (int(agg[f"a_{c.name}"]), int(agg[f"af_{c.name}"])) if where else (n, filled)
    unique = min(int(agg[f"d_{c.name}"]), filled)
    rule = samples.rules.conditions.get(c.name)
    invalid = int(agg[f"i_{c.name}"]) if rule else None
    personal, is_key = dictionary.personal(entity, c.name), c.name == samples.key
    return {
        "column_name": c.name,
        "source_column": sources.get(c.name),
        "provided": c.name in sources or c.required or is_key or filled > 0,
        "personal": personal,
        "rows": n,
        "filled": filled,
        "applies_when": samples.rules.applies[c.name].text if where else None,
        "applies_rows": rows,
        "applies_filled": rows_filled,
        "fill_rate": rows_filled / rows if rows else None,
        "checked": filled if rule else None,
        "invalid": invalid,
        "valid_rate": (filled - invalid) / filled if invalid is not None and filled else None,
        "distinct_values": unique,
        "uniqueness": unique / filled if filled else None,
        "empty_samples": samples.empty(c.name, where) if rows_filled < rows else [],
        "invalid_samples": samples.values(samples.rule(c.name), c.name, personal) if invalid else [],
        "duplicate_samples": samples.duplicates(c.name, personal) if is_key and unique < filled else [],
        "examples": samples.values(pl.col(c.name).is_not_null(), c.name, personal, 3),
    }


class _Samples:
    """A few values of one field that show a problem (the first in the file's order), masked when personal."""

    def __init__(self, frame: pl.DataFrame | pl.LazyFrame, rules: Rules, key: str | None, key_personal: bool) -> None:
        self.frame, self.rules, self.key, self.key_personal = frame.lazy(), rules, key, key_personal

    def rule(self, name: str) -> pl.Expr:
        """The field's validity rule, the same condition the aggregate counted by."""
        cond = self.rules.conditions[name]
        return pl.sql_expr(bind(cond, self.rules.used(cond)))

    def empty(self, name: str, applies: str | None = None) -> list[str]:
        """Which records lack the field (of those it applies to: ``applies``, a SQL condition): their key, or their
        row number in the snapshot file."""
        ident = pl.col(self.key) if self.key else pl.format("row {}", pl.int_range(1, pl.len() + 1))
        missing = pl.col(name).is_null() & (pl.sql_expr(bind(applies, self.rules.used(applies))) if applies else True)
        where = self.frame.with_columns(ident.alias("_id")).filter(missing).select(pl.col("_id").alias("id"))
        picked = where.head(SAMPLES).collect()
        return [mask_if(v, self.key_personal, self.key or "") for v in picked.get_column("id").to_list()]

    def values(self, where: pl.Expr, name: str, personal: bool, limit: int = SAMPLES) -> list[str]:
        picked = self.frame.filter(where).select(name).head(limit * 4).collect().get_column(name)
        return list(dict.fromkeys(mask_if(v, personal, name) for v in picked.to_list()))[:limit]

    def duplicates(self, name: str, personal: bool) -> list[str]:
        counts = (
            self.frame.select(name)
            .drop_nulls()
            .group_by(name)
            .len()
            .filter(pl.col("len") > 1)
            .sort(["len", name], descending=[True, False])
            .head(SAMPLES)
            .collect()
        )
        return [f"{mask_if(v, personal, name)} ×{n}" for v, n in counts.iter_rows()]


class SnapshotProfile:
    """Collects one snapshot's entity profiles while refresh stages it; written beside its files.
    ``aggregate``: an entity's aggregates from its staged file (engine spark, derived/spark/quality.py)."""

    def __init__(
        self,
        src: SourceConfig,
        snapshot_id: str,
        dictionary: Dictionary,
        aggregate: Callable[[str, Path], Aggregate] | None = None,
        applies: Callable[[str, str], dict[str, Condition]] | None = None,
    ) -> None:
        self.source, self.snapshot_id, self.dictionary = src.name, snapshot_id, dictionary
        self.sources = mapping(src)
        self.aggregate = aggregate
        self.applies = applies  # (source, entity) → the rows each field applies to: QualityConfig.applies
        self.frames: list[pl.DataFrame] = []

    def add(self, frame: pl.DataFrame | pl.LazyFrame, entity: str, path: Path | None = None) -> None:
        """``frame``: the entity's rows as staged (or a scan of them), at ``path`` (which an ``aggregate`` engine
        reads)."""
        m = self.sources.get(entity, {})
        agg = (
            self.aggregate(f"the quality profile of {self.source}.{entity}", path) if self.aggregate and path else None
        )
        applies = self.applies(self.source, entity) if self.applies else None
        self.frames.append(
            profile_frame(frame, self.source, self.snapshot_id, entity, m, self.dictionary, agg, applies)
        )

    def write(self, folder: Path) -> None:
        out = pl.concat(self.frames) if self.frames else pl.DataFrame(schema=SCHEMA)
        out.write_parquet(folder / PROFILE_FILE)


def profile_snapshot(
    folder: Path,
    source: str,
    snapshot_id: str,
    sources: dict[str, dict[str, str]],
    dictionary: Dictionary,
    applies: Callable[[str, str], dict[str, Condition]] | None = None,
) -> pl.DataFrame:
    """Profile of a snapshot folder's entity files (a snapshot written before profiles existed)."""
    frames = [
        profile_frame(
            pl.read_parquet(path),
            source,
            snapshot_id,
            entity,
            sources.get(entity, {}),
            dictionary,
            None,
            applies(source, entity) if applies else None,
        )
        for entity in ENTITIES
        if (path := folder / f"{entity}.parquet").is_file()
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)


def measure_fill(path: Path, entity: str, fields: dict[str, Condition | None], dictionary: Dictionary) -> pl.DataFrame:
    """Some fields' fill over the rows each applies to (None: every row), from an entity's snapshot file, reading
    only those fields, their conditions' columns and the record key: profile_frame's numbers for them."""
    scan = pl.scan_parquet(path)
    names = scan.collect_schema().names()
    key = ENTITIES[entity].key if ENTITIES[entity].key in names else None
    rules = Rules([], names, datetime.now(UTC))
    where: dict[str, str | None] = {}
    for c, cond in fields.items():
        if c in names:
            where[c], args = cond.sql(cond.column in names, f"applies_{c}") if cond else (None, {})
            rules.args |= args
    counts, every = [], pl.int_range(pl.len()) >= 0  # a row's flag, true on each (a literal would sum to 1)
    for c, w in where.items():
        applies = every & pl.sql_expr(bind(w, rules.used(w))) if w else every
        counts += [applies.sum().alias(f"a_{c}"), (applies & pl.col(c).is_not_null()).sum().alias(f"af_{c}")]
    agg = scan.select(counts).collect().row(0, named=True) if counts else {}
    samples = _Samples(scan, rules, key, dictionary.personal(entity, key or ""))
    out = []
    for c, w in where.items():
        n, filled = int(agg[f"a_{c}"]), int(agg[f"af_{c}"])
        cond = fields[c]
        out.append({
            "entity": entity, "column_name": c, "applies_when": cond.text if cond else None, "applies_rows": n,
            "applies_filled": filled, "fill_rate": filled / n if n else None,
            "empty_samples": samples.empty(c, w) if filled < n else [],
        })  # fmt: skip
    return pl.DataFrame(out, schema={k: SCHEMA[k] for k in ("entity", "column_name", *FILL_COLUMNS)})


def read_profile(folder: Path) -> pl.DataFrame | None:
    path = folder / PROFILE_FILE
    return pl.read_parquet(path) if path.is_file() else None
