"""What a new input holds: a sample of it read with the source readers, each column's content profiled,
the canonical entity decided and its columns mapped by header (the data dictionary's aliases) and by
content (phones, e-mails, ID numbers, dates, keys). `cockpit source add` and the Import page use it.

Only a sample is read (the first rows of a CSV or JSON Lines file, the head of a Parquet file), so a
large export is profiled in seconds; the row count of the whole file is estimated from the sample.
"""

from __future__ import annotations

import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from dashboard.core import parse
from dashboard.core.config import Settings, TableConfig
from dashboard.core.dictionary import DEFAULT_PATH
from dashboard.core.entities import ENTITIES, Entity
from dashboard.core.errors import SourceError
from dashboard.sources import csv, excel, json, parquet

SAMPLE_ROWS = 20_000
SAMPLE_BYTES = 16 * 1024 * 1024  # a CSV or JSON Lines sample: at most this much of the file's head
SUFFIX_KINDS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".xls": "excel",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
WON = "won_date"  # the alias group of dates on which a lead was won: a won stage event
UNKNOWN = "unknown"  # standardization's placeholder for a missing channel or kind, written as a constant
SHARE = 0.8  # of a column's filled sample values that must look like phones, e-mails, IDs or dates
_ANY = "any"  # an alias group with no entity of its own


@dataclass(frozen=True)
class Sample:
    """The first rows of one input, as the source reader returns them."""

    label: str  # the file name, or schema.table
    kind: str  # a source kind: csv | excel | json | parquet | postgres | mysql
    frame: pl.DataFrame
    total_rows: int | None  # of the whole input (estimated for CSV and JSON Lines), None when unknown
    estimated: bool = False
    path: Path | None = None
    sheet: str | None = None


@dataclass(frozen=True)
class ColumnProfile:
    header: str
    looks_like: str  # phone | email | id_number | datetime | number | key | text | empty
    filled: float  # share of the sample's rows with a value
    unique: bool  # every sample row has a value and no two are equal
    samples: tuple[str, ...]


@dataclass
class TableMapping:
    """One canonical entity read from the input: canonical column → header, and fixed values."""

    entity: str
    columns: dict[str, str] = field(default_factory=dict)
    constants: dict[str, str] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)  # canonical column → "header" | "content: phones" ...
    score: int = 0

    def table_config(self, path: str = "", sheet: str | None = None, table: str | None = None) -> TableConfig:
        return TableConfig.model_validate(
            {
                "entity": self.entity,
                "columns": self.columns,
                "constants": self.constants,
                **({"path": path} if path else {}),
                **({"sheet": sheet} if sheet else {}),
                **({"table": table} if table else {}),
            }
        )


@dataclass
class Proposal:
    sample: Sample
    profiles: dict[str, ColumnProfile]
    tables: list[TableMapping]
    alternatives: list[str]  # other entities the input could hold, best first

    @property
    def unmapped(self) -> list[str]:
        used = {h for t in self.tables for h in t.columns.values()}
        return [h for h in self.profiles if h not in used]


# -- reading a sample ---------------------------------------------------------------------------------
def kind_of(path: Path) -> str:
    kind = SUFFIX_KINDS.get(path.suffix.lower())
    if kind is None:
        known = " ".join(sorted(SUFFIX_KINDS))
        raise SourceError(f"{path.name}: unknown file type '{path.suffix or '(none)'}' (expected one of: {known})")
    return kind


def sample_file(path: Path, rows: int = SAMPLE_ROWS, sheet: str | None = None) -> Sample:
    """The first ``rows`` rows of a file, read by its kind's reader; a clear error naming the file otherwise."""
    kind = kind_of(path)
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    table = TableConfig(entity="leads", path=path.name, sheet=sheet)
    try:
        if kind == "parquet":
            frame = parquet.read(path, table) if path.stat().st_size < SAMPLE_BYTES else _parquet_head(path, rows)
            total = pl.scan_parquet(path).select(pl.len()).collect().item()
            return Sample(path.name, kind, frame.head(rows), total, path=path)
        if kind == "excel":
            frame = excel.read(path, table)
            return Sample(path.name, kind, frame.head(rows), frame.height, path=path, sheet=sheet)
        return _sample_text(path, kind, table, rows)
    except SourceError:
        raise
    except Exception as e:  # a reader library's own error: name the file, keep the cause
        raise SourceError(f"{path.name}: cannot be read as {kind}: {e}") from e


def _parquet_head(path: Path, rows: int) -> pl.DataFrame:
    return pl.scan_parquet(path).head(rows).collect()


def _sample_text(path: Path, kind: str, table: TableConfig, rows: int) -> Sample:
    """CSV and JSON Lines: the file's head, cut after its last whole line, read by the kind's own reader
    from a copy with the same name (so its messages name the file)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(SAMPLE_BYTES)
    whole = len(head) == size
    if kind == "json" and head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"[" and not whole:
        raise SourceError(f"{path.name}: a JSON array this large is read whole; export it as JSON Lines to sample it")
    if not whole:
        head = head[: head.rfind(b"\n") + 1] or head
    reader = csv.read if kind == "csv" else json.read
    with tempfile.TemporaryDirectory(prefix="cockpit-sample-") as tmp:
        copy = Path(tmp) / path.name
        copy.write_bytes(head)
        frame = reader(copy, table)
    if not whole and frame.height > 1:
        frame = frame.head(frame.height - 1)  # the last row may be cut inside a quoted field
    sampled = frame.head(rows)
    if whole:
        return Sample(path.name, kind, sampled, frame.height, path=path)
    used = len(head) * sampled.height / max(frame.height, 1)  # bytes of the rows kept
    return Sample(path.name, kind, sampled, round(size * sampled.height / max(used, 1)), estimated=True, path=path)


# -- profiling ----------------------------------------------------------------------------------------
def profile(frame: pl.DataFrame) -> dict[str, ColumnProfile]:
    return {c: _profile(frame.get_column(c)) for c in frame.columns}


def _profile(s: pl.Series) -> ColumnProfile:
    temporal = s.dtype == pl.Date or isinstance(s.dtype, pl.Datetime)
    numeric = s.dtype.is_numeric()
    text = parse.clean_text(s.cast(pl.String))
    values = text.drop_nulls()
    n = len(values)
    filled = n / len(s) if len(s) else 0.0
    unique = bool(n) and n == len(s) and values.n_unique() == n
    samples = tuple(values.unique(maintain_order=True).head(3).to_list())
    if not n:
        return ColumnProfile(s.name, "empty", 0.0, False, ())

    def share(hits: pl.Series) -> float:
        return float(hits.fill_null(False).sum()) / n

    if temporal:
        looks = "datetime"
    elif not numeric and share(parse.normalize_phone(values)[1]) >= SHARE:
        looks = "phone"
    elif not numeric and share(values.str.contains(parse.EMAIL_RE)) >= SHARE:
        looks = "email"
    elif not numeric and share(values.str.to_uppercase().str.contains(parse.ID_RE)) >= SHARE:
        looks = "id_number"
    elif not numeric and share(values.str.contains(r"\D") & parse.parse_datetime(values).is_not_null()) >= SHARE:
        looks = "datetime"  # a plain number is never read as a date here (IDs look like Excel serial days)
    elif numeric or share(parse.parse_number(values).is_not_null()) >= SHARE:
        looks = "number"
    else:
        looks = "text"
    if unique and looks in ("text", "number") and _key_like(s.name):
        looks = "key"
    return ColumnProfile(s.name, looks, filled, unique, tuple(str(v) for v in samples))


def _key_like(header: str) -> bool:
    return bool(re.search(r"(^|_|\b)(id|no|code|key)$|编号|号$|代码", header.strip().lower()))


# -- mapping ------------------------------------------------------------------------------------------
def normalize(header: str) -> str:
    """``金额(元)`` → ``金额``, ``Lead Source`` → ``leadsource``: how headers and aliases are compared."""
    h = re.sub(r"[（(\[【][^)）\]】]*[)）\]】]\s*$", "", header.strip().lower().replace("\ufeff", ""))
    return re.sub(r"[\s_\-./:：]", "", h)


def load_aliases(path: Path | None = None) -> dict[str, list[str]]:
    """The data dictionary's ``[aliases]``: column (or entity.column, or won_date) → normalized aliases. A
    dictionary of one's own (``[quality] dictionary``) adds its aliases before the bundled ones."""
    out: dict[str, list[str]] = {}
    for where in dict.fromkeys([p for p in (path, DEFAULT_PATH) if p is not None]):
        try:
            raw = tomllib.loads(where.read_text(encoding="utf-8")).get("aliases") or {}
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise SourceError(f"data dictionary {where}: cannot read its [aliases]: {e}") from None
        for key, aliases in raw.items():
            known = out.setdefault(str(key), [])
            known += [n for a in aliases if (n := normalize(str(a))) not in known]
    return out


def settings_aliases(settings: Settings) -> dict[str, list[str]]:
    """The aliases of the dictionary ``[quality] dictionary`` names (relative to the config's folder), then
    the bundled ones."""
    own = Path(settings.quality.dictionary) if settings.quality.dictionary else None
    return load_aliases(own if own is None or own.is_absolute() else settings.base_dir / own)


def _aliases_for(aliases: dict[str, list[str]], entity: str, column: str) -> list[str]:
    own = aliases.get(f"{entity}.{column}", [])
    return own + [a for a in aliases.get(column, []) if a not in own] if own else aliases.get(column, [])


def _headers_by_alias(headers: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in headers:
        out.setdefault(normalize(h), h)
    return out


def map_entity(
    entity: Entity, profiles: dict[str, ColumnProfile], aliases: dict[str, list[str]]
) -> TableMapping | None:
    """The entity's columns found in the input, or None when a required one cannot be had."""
    by_alias = _headers_by_alias(list(profiles))
    named = {h for group in aliases.values() for a in group if (h := by_alias.get(a))}  # a header some alias names
    m = TableMapping(entity.name)
    taken: set[str] = set()
    won_header = None
    for col in entity.columns:
        groups = _aliases_for(aliases, entity.name, col.name)
        if entity.name == "lead_events" and col.name == "occurred_at":
            groups = groups + aliases.get(WON, [])
        for alias in groups:
            h = by_alias.get(alias)
            if h is None or h in taken:
                continue
            if col.type == "datetime" and profiles[h].looks_like not in ("datetime", "empty"):
                continue  # the header says date, the values do not
            if alias in aliases.get(WON, []) and col.name == "occurred_at":
                won_header = h
            m.columns[col.name], m.how[col.name] = h, "header"
            taken.add(h)
            break
    _map_by_content(m, entity, profiles, taken, named)
    if entity.name == "lead_events" and "stage" not in m.columns:
        if won_header is None or m.columns.get("occurred_at") != won_header:
            return None
        m.constants["stage"], m.how["stage"] = "won", f"constant: '{won_header}' is the date it was won"
    for name in entity.required:
        if name not in m.columns and name in ("channel", "kind"):
            m.constants[name], m.how[name] = UNKNOWN, f"constant: no {name} column"
    missing = [c for c in entity.required if c not in m.columns and c not in m.constants]
    if missing:
        return None
    headers = sum(1 for h in m.how.values() if h == "header")
    content = sum(1 for h in m.how.values() if h.startswith("content"))
    m.score = 10 * headers + content
    return m if headers or content >= 3 else None  # no header known: only when the values say enough


_CONTENT = {"phone": "phone", "email": "email", "id_number": "id_number"}


def _map_by_content(
    m: TableMapping, entity: Entity, profiles: dict[str, ColumnProfile], taken: set[str], named: set[str]
) -> None:
    """Columns no header named: phones, e-mails and ID numbers by their values; a required date from the first
    date column no alias claims; a required amount from the only such number column; the record key from a
    unique column named like an id."""
    free = [h for h in profiles if h not in taken and h not in named]
    for col in entity.columns:
        if col.name in m.columns:
            continue
        want = _CONTENT.get(col.name)
        if want is None and col.required:
            want = {"datetime": "datetime", "float": "number"}.get(col.type)
        if want is None and col.name == entity.key and col.required:
            want = "key"
        fits = [h for h in free if profiles[h].looks_like == want]
        found = fits[0] if fits and (want != "number" or len(fits) == 1) else None  # two numbers: which is it?
        if found is not None:
            m.columns[col.name], m.how[col.name] = found, f"content: {want}"
            free.remove(found)
            taken.add(found)


def propose(sample: Sample, aliases: dict[str, list[str]] | None = None, entity: str | None = None) -> Proposal:
    """The tables to read from the input. A leads file with a stage or a won date also yields its lead events;
    an input no entity fits is a SourceError naming the file and its headers."""
    aliases = aliases if aliases is not None else load_aliases()
    if sample.frame.width == 0 or sample.frame.height == 0:
        raise SourceError(f"{sample.label}: no data rows to profile")
    profiles = profile(sample.frame)
    if entity is not None and entity not in ENTITIES:
        raise SourceError(f"unknown entity '{entity}' (expected one of: {', '.join(ENTITIES)})")
    candidates = {
        name: m for name, e in ENTITIES.items() if (entity in (None, name)) and (m := map_entity(e, profiles, aliases))
    }
    if not candidates:
        heads = ", ".join(f"'{h}'" for h in list(profiles)[:20])
        want = f"as {entity}: its required columns ({', '.join(ENTITIES[entity].required)}) are" if entity else ""
        raise SourceError(
            f"{sample.label}: cannot tell which entity it holds {want or 'from'} its headers ({heads}); "
            "no alias in the data dictionary matches enough of them. Give --entity, or write its [[sources]] "
            "block by hand"
        )
    ranked = sorted(candidates.values(), key=lambda m: -m.score)  # stable: ENTITIES order breaks a tie
    tables = [ranked[0]]
    pair = {"leads": "lead_events", "lead_events": "leads"}.get(ranked[0].entity)
    other = candidates.get(pair) if pair else None
    if other and other.columns.get("lead_id") == ranked[0].columns.get("lead_id") and _adds(ranked[0], other):
        tables = sorted([ranked[0], other], key=lambda m: list(ENTITIES).index(m.entity))
    chosen = {t.entity for t in tables}
    return Proposal(sample, profiles, tables, [m.entity for m in ranked if m.entity not in chosen])


def _adds(first: TableMapping, second: TableMapping) -> bool:
    """Lead events beside leads only when they have a date of their own (a stage change or a won date)."""
    events = first if first.entity == "lead_events" else second
    leads = second if events is first else first
    return events.columns.get("occurred_at") not in (None, leads.columns.get("created_at"))


def remap(proposal: Proposal, entity: str, columns: dict[str, str], constants: dict[str, str]) -> TableMapping:
    """A mapping a person edited: checked against the entity and the input's headers."""
    if entity not in ENTITIES:
        raise SourceError(f"unknown entity '{entity}' (expected one of: {', '.join(ENTITIES)})")
    known = ENTITIES[entity].column_names
    for col, header in columns.items():
        if col not in known:
            raise SourceError(f"'{col}' is not a column of {entity} (columns: {', '.join(known)})")
        if header not in proposal.profiles:
            raise SourceError(f"{proposal.sample.label}: no column '{header}' (mapped to {entity}.{col})")
    return TableMapping(entity, dict(columns), dict(constants), dict.fromkeys(columns, "edited"))


def sample_table(connection: str, table: str, base_dir: Path, rows: int = SAMPLE_ROWS) -> Sample:
    """The first ``rows`` rows of a database table; ``connection`` is a reference (env:VAR, secret:key),
    never a URL, since the same reference is what cockpit.toml will hold."""
    import pyarrow as pa

    from dashboard.core.config import SourceConfig
    from dashboard.sources import access, database

    url = access.resolve(connection, base_dir, f"{connection}")
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    kind = {"postgres": "postgres", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}.get(scheme)
    if kind is None:
        raise SourceError(f"{connection}: not a postgres:// or mysql:// connection URL (it starts with {scheme}://)")
    source = SourceConfig.model_validate(
        {"name": "onboard", "kind": kind, "connection": connection, "tables": [{"entity": "leads", "table": table}]}
    )
    sql = f"{database.quote_ident(kind, table)} LIMIT {int(rows)}"
    count = f"SELECT count(*) AS n FROM {database.quote_ident(kind, table)}"
    pull = database.postgres_batches if kind == "postgres" else database.mysql_batches
    where = f"{table} ({kind} at {access.safe_url(url)})"
    try:
        batches = list(pull(url, f"SELECT * FROM {sql}", (), source))
        total = pa.Table.from_batches(list(pull(url, count, (), source))).column(0)[0].as_py()
    except SourceError:
        raise
    except Exception as e:  # the drivers' errors: named, never leaking the URL
        raise access.unavailable(where, e, access.secret_parts(url)) from None
    frame = pl.from_arrow(pa.Table.from_batches(batches)) if batches else pl.DataFrame()
    assert isinstance(frame, pl.DataFrame)
    return Sample(table, kind, frame, int(total))
