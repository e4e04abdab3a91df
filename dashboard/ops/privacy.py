"""Privacy requests (PIPL): erase a person from every file under the data folder, keep them out of later
snapshots, write a person's copy, and remove rows past their retention; each one audited.

Every rewrite is crash-safe file by file (a temp file beside it, fsync, ``os.replace``): a kill -9 leaves each
file old or new, and a rerun finishes the work. What an erasure is about is kept in a pending plan under
``runs/privacy/pending/`` until it is done, so a rerun still finds records an earlier run already removed
from the tables it resolves the person with. Source systems and the demo's raw inputs are never rewritten.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dashboard.core import audit, parse
from dashboard.core.config import Settings
from dashboard.core.errors import CockpitError
from dashboard.core.store import Store, atomic_write_text, crash_point
from dashboard.pipeline import suppression
from dashboard.pipeline.review import Who

KINDS = ("phone", "email", "id_number", "customer")
ERASED = "[erased]"
PENDING = Path("runs") / "privacy" / "pending"
_TMP_SUFFIX = ".privacy-tmp"
# never rewritten: input (the demo's raw files, drop folders), the demo's answer key, locks, the spill folder
_SKIP_TOP = {"raw", "demo_truth", "locks", ".spill"}
_TEXT_SUFFIXES = {".json", ".jsonl", ".html", ".csv", ".txt", ".md", ".xml"}
_SEP = "[\\s\\-().\u3000]"
_EDGE = "[^0-9A-Za-z._%+\\-@]"  # what may stand next to a phone, e-mail or ID number in a longer text
# columns that name a source record, and the kind of record each names
_RECORD_COLUMNS = {"source_record_id": ("customer", "lead"), "customer_ref": ("customer",), "lead_id": ("lead",)}
_KEY_COLUMNS = ("customer_key", "old_key")
_PERSON_COLUMNS = (*suppression.IDENTIFIERS, *_RECORD_COLUMNS, *_KEY_COLUMNS)


class PrivacyInputError(CockpitError):
    """A malformed identifier (a phone that is not a mobile number, ...): a usage error."""

    exit_code = 2


@dataclass(frozen=True)
class Identifier:
    kind: str  # phone | email | id_number | customer
    value: str  # normalized: 11-digit mobile, lower-case e-mail, upper-case ID number, or a customer key


def parse_identifier(kind: str, text: str) -> Identifier:
    """Normalize what a person typed the way standardize does (``138-0013-8000`` → ``13800138000``)."""
    raw = (text or "").strip()
    if kind not in KINDS:
        raise PrivacyInputError(f"unknown identifier '{kind}' (expected one of: {', '.join(KINDS)})")
    if kind == "customer":
        if not raw:
            raise PrivacyInputError("--customer needs a customer key (as Customer 360 shows it)")
        return Identifier(kind, raw)
    normalize = {"phone": parse.normalize_phone, "email": parse.normalize_email, "id_number": parse.normalize_id_number}
    value, valid = normalize[kind](pl.Series(kind, [raw], pl.String))
    shaped = {"id_number": bool(re.fullmatch(parse.ID_RE, str(value[0])))}.get(kind, bool(valid[0]))
    if not raw or not shaped:
        what = {
            "phone": "a mobile number (11 digits starting with 1; +86 and separators are fine)",
            "email": "an e-mail address",
            "id_number": "an ID number (18 characters: 17 digits and a digit or X)",
        }[kind]
        raise PrivacyInputError(f"'{raw}' is not {what}")
    return Identifier(kind, str(value[0]))


# -- who the person is ----------------------------------------------------------------------------------
@dataclass
class Person:
    """Everything that names one person in the data: identifiers, source records, golden customer keys."""

    needles: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in suppression.IDENTIFIERS})
    records: set[tuple[str, str, str]] = field(default_factory=set)  # (source, "customer" | "lead", record id)
    keys: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return not (self.records or self.keys or any(self.needles.values()))

    def merge(self, other: Person) -> None:
        for k, values in other.needles.items():
            self.needles.setdefault(k, set()).update(values)
        self.records |= other.records
        self.keys |= other.keys
        self.names |= other.names

    def to_json(self) -> dict[str, Any]:
        return {
            "needles": {k: sorted(v) for k, v in self.needles.items()},
            "records": sorted(list(r) for r in self.records),
            "keys": sorted(self.keys),
            "names": sorted(self.names),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Person:
        p = cls()
        for k, values in data.get("needles", {}).items():
            p.needles.setdefault(k, set()).update(values)
        p.records = {(s, k, i) for s, k, i in data.get("records", [])}
        p.keys = set(data.get("keys", []))
        p.names = set(data.get("names", []))
        return p

    def record_ids(self, kinds: tuple[str, ...]) -> list[str]:
        return sorted({f"{s}\x1f{i}" for s, k, i in self.records if k in kinds})

    def pattern(self, with_keys: bool = False) -> str | None:
        """One regex finding any of the person's phones (any format), e-mails or ID numbers inside a text (and,
        ``with_keys``, their golden customer keys: the audit log names customers by key)."""
        alts = [f"(?:(?:\\+|00)?86{_SEP}*)?" + f"{_SEP}?".join(p) for p in sorted(self.needles.get("phone", ()))]
        alts += [re.escape(v) for k in ("email", "id_number") for v in sorted(self.needles.get(k, ()))]
        alts += [re.escape(k) for k in sorted(self.keys)] if with_keys else []
        return f"(?i)(^|{_EDGE})(?:{'|'.join(alts)})($|{_EDGE})" if alts else None

    def literals(self) -> list[str]:
        """Plain strings a cheap search finds the person's identifiers by: each phone as 11 digits and split
        3-4-4, 7-4 or 3-8 by a space or a dash; each e-mail and ID number."""
        out = []
        for p in sorted(self.needles.get("phone", ())):
            out.append(p)
            for sep in (" ", "-"):
                out += [sep.join((p[:3], p[3:7], p[7:])), sep.join((p[:7], p[7:])), sep.join((p[:3], p[3:]))]
        return out + [v for k in ("email", "id_number") for v in sorted(self.needles.get(k, ()))]

    def exact(self) -> list[str]:
        """Values that name the person when they fill a whole cell (names, record ids) — never matched inside text."""
        return sorted(self.names | {i for _s, _k, i in self.records})


def _files(root: Path, top: str, name: str = "*.parquet") -> list[Path]:
    folder = root / top
    return sorted(folder.rglob(name)) if folder.exists() else []


def _entity_of(path: Path) -> str:
    return path.name.split(".", 1)[0]  # customers.parquet, customers.rejected.parquet → customers


def _read(path: Path, columns: list[str]) -> pl.DataFrame:
    have = pq.read_schema(path).names
    cols = [c for c in columns if c in have]
    return pl.read_parquet(path, columns=cols) if cols else pl.DataFrame()


def _canonical_files(root: Path) -> list[Path]:
    """Entity files of every retained snapshot, quarantine and staging folder (rejected rows included)."""
    return [p for top in ("snapshots", "quarantine", "staging") for p in _files(root, top)]


def find_person(settings: Settings, ident: Identifier) -> Person:
    """The person's source records (in any snapshot), golden keys (in any derived build) and identifiers."""
    root = settings.data_path
    person = Person()
    if ident.kind == "customer":
        person.keys.add(ident.value)
    else:
        person.needles[ident.kind].add(ident.value)
    people_files = [p for p in _canonical_files(root) if _entity_of(p) in ("customers", "leads")]
    _records_by_identifier(person, people_files)
    derived = _files(root, "derived")
    for path in [p for p in derived if p.stem in ("customer_golden", "customer_lookup", "customer_redirects")]:
        _keys_from(person, path)
    for path in [p for p in derived if p.stem == "identity_links"]:
        links = _read(path, ["source_system", "source_record_id", "record_kind", "customer_key"])
        mine = links.filter(
            pl.col("customer_key").is_in(sorted(person.keys))
            | pl.concat_str("source_system", "source_record_id", separator="\x1f").is_in(
                person.record_ids(("customer", "lead"))
            )
        )
        person.keys |= set(mine.get_column("customer_key").to_list())
        person.records |= {(s, k, i) for s, i, k, _key in mine.iter_rows()}
    _identifiers_of_records(person, people_files)
    return person


def _records_by_identifier(person: Person, files: list[Path]) -> None:
    for path in files:
        kind = "customer" if _entity_of(path) == "customers" else "lead"
        id_col = "source_record_id" if kind == "customer" else "lead_id"
        frame = _read(path, ["source_system", id_col, *suppression.IDENTIFIERS])
        if id_col not in frame.columns or "source_system" not in frame.columns:
            continue
        hit = pl.any_horizontal(
            pl.col(c).is_in(sorted(person.needles[c])) for c in suppression.IDENTIFIERS if c in frame.columns
        )
        for source, record_id in frame.filter(hit).select("source_system", id_col).iter_rows():
            person.records.add((source, kind, record_id))


def _keys_from(person: Person, path: Path) -> None:
    if path.stem == "customer_redirects":
        frame = _read(path, ["old_key", "customer_key"])
        person.keys |= set(frame.filter(pl.col("old_key").is_in(sorted(person.keys))).get_column("customer_key"))
        return
    if path.stem == "customer_lookup":
        frame = _read(path, ["attribute", "value", "customer_key"])
        needles = [v for k, values in person.needles.items() for v in values]
        person.keys |= set(frame.filter(pl.col("value").is_in(needles)).get_column("customer_key").to_list())
        return
    frame = _read(path, ["customer_key", "name", *suppression.IDENTIFIERS])
    hit = pl.col("customer_key").is_in(sorted(person.keys))
    for c in suppression.IDENTIFIERS:
        if c in frame.columns:
            hit = hit | pl.col(c).is_in(sorted(person.needles[c]))
    mine = frame.filter(hit)
    person.keys |= set(mine.get_column("customer_key").to_list())
    _collect_identifiers(person, mine)


def _collect_identifiers(person: Person, rows: pl.DataFrame) -> None:
    for c in suppression.IDENTIFIERS:
        if c in rows.columns:
            person.needles[c] |= {v for v in rows.get_column(c).drop_nulls().to_list() if _usable(c, v)}
    if "name" in rows.columns:
        person.names |= set(rows.get_column("name").drop_nulls().to_list())


def _usable(kind: str, value: str) -> bool:
    """Only well-formed identifiers become search needles: a short or odd value would match other people."""
    pattern = {"phone": parse.MOBILE_RE, "email": parse.EMAIL_RE, "id_number": parse.ID_RE}[kind]
    return bool(re.fullmatch(pattern.strip("^$"), value))


def _identifiers_of_records(person: Person, files: list[Path]) -> None:
    for path in files:
        kind = "customer" if _entity_of(path) == "customers" else "lead"
        id_col = "source_record_id" if kind == "customer" else "lead_id"
        frame = _read(path, ["source_system", id_col, "name", *suppression.IDENTIFIERS])
        if id_col not in frame.columns or "source_system" not in frame.columns:
            continue
        mine = frame.filter(pl.concat_str("source_system", id_col, separator="\x1f").is_in(person.record_ids((kind,))))
        _collect_identifiers(person, mine)


# -- rewriting one file -----------------------------------------------------------------------------------
@dataclass
class FileChange:
    path: str  # relative to the data folder
    rows_removed: int
    values_erased: int


@dataclass
class Target:
    """What to take out of a table: rows naming the person (dropped) and values inside other tables (erased).

    A file is first asked a cheap question (literal search, id lookups: ``candidates``); only a file that
    may hold the person is read whole and matched exactly (the regex, with its boundaries)."""

    person: Person
    replacement: str = ERASED
    drop_by_text: bool = True  # False for retention: rows go by record and key only

    def __post_init__(self) -> None:
        self.regex = self.person.pattern()
        self.literals = self.person.literals()
        self.exact = self.person.exact()
        self.keys = sorted(self.person.keys)
        self.by_source: dict[tuple[str, str], list[str]] = {}
        for source, kind, record_id in self.person.records:
            self.by_source.setdefault((source, kind), []).append(record_id)

    def _records(self, cols: set[str]) -> list[pl.Expr]:
        """Rows whose (source_system, record column) names one of the person's records."""
        if "source_system" not in cols:
            return []
        out = []
        for c, kinds in _RECORD_COLUMNS.items():
            for (source, kind), ids in self.by_source.items() if c in cols else ():
                if kind in kinds:
                    out.append((pl.col("source_system") == source) & pl.col(c).is_in(ids))
        return out

    def _keyed(self, cols: set[str]) -> list[pl.Expr]:
        keys = [pl.col(c).is_in(self.keys) for c in _KEY_COLUMNS if c in cols and self.keys]
        return keys + self._records(cols)

    def candidates(self, schema: pl.Schema) -> pl.Expr | None:
        """True on every row that may name the person (a superset of what ``drop`` and ``erase`` touch)."""
        cols = set(schema.names())
        person_table = bool(cols & set(_PERSON_COLUMNS))
        conds = self._keyed(cols)
        for c, t in schema.items():
            text = self._has_literal(pl.col(c)) if self.literals else None
            if t == pl.String:
                whole = pl.col(c).is_in(self.exact) if self.exact and not person_table else None
                conds += [e for e in (text if self.drop_by_text or not person_table else None, whole) if e is not None]
            elif t == pl.List(pl.String) and (self.literals or self.exact):
                conds.append(pl.col(c).list.eval(self._element(pl.element(), exact_regex=False)).list.any())
        return pl.any_horizontal(conds).fill_null(False) if conds else None

    def _has_literal(self, e: pl.Expr) -> pl.Expr:
        return e.str.contains_any(self.literals, ascii_case_insensitive=True)

    def drop(self, schema: pl.Schema) -> pl.Expr | None:
        cols = set(schema.names())
        conds = self._keyed(cols)
        if cols & set(_PERSON_COLUMNS) and self.regex and self.drop_by_text:
            conds += [pl.col(c).str.contains(self.regex) for c, t in schema.items() if t == pl.String]
        return pl.any_horizontal(conds).fill_null(False) if conds else None

    def erase(self, schema: pl.Schema) -> dict[str, pl.Expr]:
        """Per column, the expression that erases the person's values from the rows that stay."""
        out: dict[str, pl.Expr] = {}
        person_table = bool(set(schema.names()) & set(_PERSON_COLUMNS))
        for c, t in schema.items():
            if t == pl.List(pl.String) and (self.regex or self.exact):
                out[c] = pl.col(c).list.eval(pl.element().filter(~self._element(pl.element())))
            elif t == pl.String and not person_table and (self.regex or self.exact):
                col = pl.col(c)
                replaced = col.str.replace_all(self.regex, f"${{1}}{self.replacement}${{2}}") if self.regex else col
                out[c] = pl.when(col.is_in(self.exact)).then(pl.lit(self.replacement)).otherwise(replaced)
        return out

    def _element(self, e: pl.Expr, exact_regex: bool = True) -> pl.Expr:
        hit = e.is_in(self.exact)
        if self.regex and exact_regex:
            hit = hit | e.str.contains(self.regex)
        elif self.literals:
            hit = hit | self._has_literal(e)
        return hit.fill_null(False)


def rewrite_parquet(root: Path, path: Path, target: Target) -> FileChange | None:
    """Drop and erase in one file; written only when something changes (temp file, fsync, os.replace).

    The cheap ``candidates`` test runs on every row; the exact match (regex, list filters) only on the few
    rows it picks, and the file keeps its row order (snapshots are sorted by date for row-group skipping)."""
    frame = pl.read_parquet(path)
    schema = frame.schema
    maybe = target.candidates(schema)
    picked = frame.select(maybe).to_series() if maybe is not None else None
    if picked is None or not picked.any():
        return None
    sub = frame.filter(picked)
    drop, erase = target.drop(schema), target.erase(schema)
    gone = sub.select(drop).to_series() if drop is not None else pl.repeat(False, sub.height, eager=True)
    stay, erased = sub.filter(~gone), 0
    if erase:
        after = stay.with_columns(e.alias(c) for c, e in erase.items())
        for c in erase:
            if schema[c] == pl.List(pl.String):
                erased += int((stay.get_column(c).list.len() - after.get_column(c).list.len()).fill_null(0).sum())
            else:
                erased += int(stay.get_column(c).ne_missing(after.get_column(c)).sum())
        stay = after
    removed = int(gone.sum())
    if not removed and not erased:
        return None
    if erased:  # changed rows go back in their places
        numbered = frame.with_row_index("__row")
        rows = numbered.filter(picked).get_column("__row").filter(~gone)
        merged = pl.concat([numbered.filter(~picked), stay.with_columns(rows.alias("__row")).select(numbered.columns)])
        kept = merged.sort("__row").drop("__row")
    else:
        kept = frame.filter(~pl.repeat(False, frame.height, eager=True).scatter(picked.arg_true().filter(gone), True))
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")
    kept.write_parquet(tmp, compression="zstd", compression_level=1)  # the fastest zstd: a rewrite is on the clock
    _commit(tmp, path)
    return FileChange(path.relative_to(root).as_posix(), removed, erased)


def _replace_parquet(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")
    pq.write_table(table, tmp, compression="zstd")
    _commit(tmp, path)


def _commit(tmp: Path, path: Path) -> None:
    """fsync, then rename over the old file: a kill leaves the old file or the new one (and a temp file a rerun
    deletes)."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rewrite_text(root: Path, path: Path, target: Target) -> FileChange | None:
    """JSON: every string value that names the person is erased; other text: the identifiers inside it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    count = 0
    regex = re.compile(target.regex.removeprefix("(?i)"), re.IGNORECASE) if target.regex else None
    exact = set(target.exact)

    def scrub(s: str) -> str:
        nonlocal count
        if s in exact:
            count += 1
            return target.replacement
        if regex is None:
            return s
        new, n = regex.subn(lambda m: f"{m.group(1)}{target.replacement}{m.group(2)}", s)
        count += n
        return new

    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
        new_text = json.dumps(_walk(data, scrub), ensure_ascii=False, indent=2)
    else:
        new_text = scrub(text) if regex else text
    if not count:
        return None
    atomic_write_text(path, new_text)
    return FileChange(path.relative_to(root).as_posix(), 0, count)


def _walk(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_walk(v, scrub) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, scrub) for k, v in value.items()}
    return value


def _data_files(root: Path) -> list[Path]:
    """Every file an erasure looks at, snapshots first and the derived builds (which find the person) last."""
    order = {"snapshots": 0, "quarantine": 1, "staging": 2, "runs": 3, "derived": 4}
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in _SKIP_TOP or path.name.startswith("."):
            continue
        if rel.parts[:2] in (("runs", "audit"), ("runs", "privacy")):
            continue  # the audit log keeps its events (pseudonymized below); the privacy folder holds no person
        if path.suffix == ".parquet" or path.suffix in _TEXT_SUFFIXES:
            out.append(path)
    return sorted(out, key=lambda p: (order.get(p.relative_to(root).parts[0], 3), str(p)))


def _clean_temp_files(root: Path) -> None:
    """Temp files a killed erasure left: they may hold the person, and nothing names them."""
    for tmp in root.rglob(f"*{_TMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)


# -- erasure ----------------------------------------------------------------------------------------------
@dataclass
class Proof:
    pseudonym: str
    changes: list[FileChange]
    suppressed: int  # hashes added to the suppression list (0 on a rerun)
    audit_events: int  # audit events whose identifiers were replaced by the pseudonym

    @property
    def rows(self) -> int:
        return sum(c.rows_removed for c in self.changes)

    @property
    def values(self) -> int:
        return sum(c.values_erased for c in self.changes)

    def lines(self) -> list[str]:
        out = [f"{c.path}: {c.rows_removed} rows removed, {c.values_erased} values erased" for c in self.changes]
        if not self.changes:
            out.append("0 rows: nothing under the data folder names this person")
        out.append(
            f"{len(self.changes)} files rewritten, {self.rows} rows removed, {self.values} values erased; "
            f"{self.audit_events} audit events pseudonymized as {self.pseudonym}; "
            f"{self.suppressed} suppression entries added"
        )
        return out


def pseudonym(settings: Settings, ident: Identifier) -> str:
    """A keyed hash standing for the person in the audit log (same person → same token)."""
    return "person:" + suppression.digest(suppression.secret(settings.data_path), "person", ident.value)[:16]


@contextlib.contextmanager
def exclusive(settings: Settings, wait: float, holder: str) -> Iterator[Store]:
    """Every source lock and the publish lock, as a refresh takes them (same order: no deadlock). Busy (exit 4)
    when a refresh holds one past ``wait`` seconds."""
    store = Store(settings.data_path)
    names = set(settings.source_names)
    for top in (store.snapshots, store.quarantine):
        names |= {p.name for p in top.iterdir()} if top.exists() else set()
    with store.source_locks(sorted(names), wait, holder), store.lock(wait):
        yield store


def forget(
    settings: Settings,
    ident: Identifier,
    reason: str,
    who: Who,
    wait: float = 0,
) -> Proof:
    """Erase the person from every file under the data folder and keep them out of later snapshots."""
    if not reason.strip():
        raise PrivacyInputError("--reason is required (recorded in the audit log)")
    root = settings.data_path
    token = pseudonym(settings, ident)
    with exclusive(settings, wait, "cockpit privacy forget") as store:
        _clean_temp_files(root)
        store.clean_staging()
        plan_path = root / PENDING / f"{token.partition(':')[2]}.json"
        person = find_person(settings, ident)
        if plan_path.exists():  # an earlier run was killed: it found what this one may no longer see
            person.merge(Person.from_json(json.loads(plan_path.read_text(encoding="utf-8"))))
        _write_plan(plan_path, person)
        added = suppression.add(root, _suppression_entries(settings, person))
        target = Target(person)
        changes = []
        for path in _data_files(root):
            change = (
                rewrite_parquet(root, path, target) if path.suffix == ".parquet" else rewrite_text(root, path, target)
            )
            if change:
                changes.append(change)
                crash_point(f"privacy_file:{len(changes)}")  # tests: kill -9 after the Nth rewritten file
        events = _pseudonymize_audit(settings, person, token)
        _recount_manifest(store, {c.path for c in changes})
        plan_path.unlink(missing_ok=True)
    proof = Proof(token, changes, added, events)
    audit.record(
        settings,
        "privacy_forget",
        who.name,
        who.role,
        who.client,
        target=token,
        rows=proof.rows,
        identifier=ident.kind,
        reason=_scrub_text(reason, person, token),
        files=len(changes),
        values_erased=proof.values,
        suppression_added=added,
    )
    return proof


def _write_plan(path: Path, person: Person) -> None:
    atomic_write_text(path, json.dumps(person.to_json(), ensure_ascii=False))


def _suppression_entries(settings: Settings, person: Person) -> dict[str, str]:
    key = suppression.secret(settings.data_path)
    out = {suppression.digest(key, k, v): k for k, values in person.needles.items() for v in values}
    for source, kind, record_id in person.records:
        out[suppression.digest(key, "record", suppression.record_value(source, kind, record_id))] = "record"
    return out


def _scrub_text(text: str, person: Person, replacement: str) -> str:
    regex = person.pattern(with_keys=True)
    if regex is None:
        return text
    return re.sub(regex.removeprefix("(?i)"), lambda m: f"{m.group(1)}{replacement}{m.group(2)}", text, flags=re.I)


def _pseudonymize_audit(settings: Settings, person: Person, token: str) -> int:
    """Audit events keep what was done, with the person's identifiers and customer keys replaced by their
    pseudonym."""
    files = sorted(audit.audit_dir(settings).glob("*/*.parquet"))
    regex = person.pattern(with_keys=True)
    if not files or regex is None:
        return 0
    text_cols = ["user", "client", "target", "detail"]
    sql = f"""
        SELECT DISTINCT filename FROM read_parquet($files, union_by_name = true, filename = true)
        WHERE {" OR ".join(f'coalesce(regexp_matches("{c}", $regex), false)' for c in text_cols)}
    """
    with duckdb.connect() as con:
        hits = [r[0] for r in con.execute(sql, {"files": [str(f) for f in files], "regex": regex}).fetchall()]
    for path in hits:
        arrow = pq.read_table(path)
        frame = pl.from_arrow(arrow)
        assert isinstance(frame, pl.DataFrame)
        out = frame.with_columns(
            pl.col(c).str.replace_all(regex, f"${{1}}{token}${{2}}") for c in text_cols if c in frame.columns
        )
        _replace_parquet(Path(path), out.to_arrow().cast(arrow.schema))
    return len(hits)


def _recount_manifest(store: Store, changed: set[str]) -> None:
    """The manifest's row counts follow the rewritten files, and its new version tells every reader's cache."""
    manifest = store.read_manifest()
    for entry in manifest.get("sources", {}).values():
        for info in entry.get("entities", {}).values():
            if info.get("file") in changed:
                info["rows"] = pq.read_metadata(store.abs(info["file"])).num_rows
    if changed:
        store.write_manifest(manifest)


# -- retention --------------------------------------------------------------------------------------------
# the dates that are a row's own activity
ACTIVITY = {
    "customers": ("created_at", "updated_at"),
    "leads": ("created_at",),
    "lead_events": ("occurred_at",),
    "orders": ("ordered_at",),
    "interactions": ("occurred_at",),
    "contracts": ("signed_at", "paid_at", "due_date"),
    "marketing_spend": ("spend_date",),
}
# activity a customer or lead has in the other tables of its snapshot: (table, its dates, the column naming it)
LINKED = {
    "customers": (
        "source_record_id",
        (
            ("orders", ("ordered_at",), "customer_ref"),
            ("interactions", ("occurred_at",), "customer_ref"),
            ("contracts", ("signed_at", "paid_at"), "customer_ref"),
            ("leads", ("created_at",), "customer_ref"),
        ),
    ),
    "leads": ("lead_id", (("lead_events", ("occurred_at",), "lead_id"), ("interactions", ("occurred_at",), "lead_id"))),
}
CASCADE = {"leads": ("lead_events", "lead_id")}  # a lead's funnel events go with it
# what retention reads of a table: its dates and the columns naming records (never the whole table)
_DATED_COLUMNS = sorted(
    {c for cols in ACTIVITY.values() for c in cols} | {"source_record_id", "lead_id", "customer_ref"}
)


@dataclass
class Expired:
    path: Path
    source: str
    entity: str
    where: str  # current | retained | quarantine | rejected
    rows: int
    mask: pl.Series  # True: the row is past its retention


def _folders(store: Store) -> Iterator[tuple[str, str, Path]]:
    """(source, current|retained|quarantine, folder) of every snapshot kept on disk."""
    manifest = store.read_manifest()
    for top, label in ((store.snapshots, "retained"), (store.quarantine, "quarantine")):
        for source_dir in sorted(top.iterdir()) if top.exists() else []:
            current = (manifest["sources"].get(source_dir.name) or {}).get("snapshot_id")
            for folder in sorted(p for p in source_dir.iterdir() if p.is_dir()):
                yield source_dir.name, "current" if label == "retained" and folder.name == current else label, folder


def _last_activity(frame: pl.DataFrame, entity: str, tables: dict[str, pl.DataFrame]) -> pl.Series:
    own = [pl.col(c) for c in ACTIVITY.get(entity, ()) if c in frame.columns]
    key, links = LINKED.get(entity, ("", ()))
    out = frame.select(key) if key in frame.columns else pl.DataFrame({"__none": [None] * frame.height})
    for i, (table, dates, ref) in enumerate(links if key in frame.columns else ()):
        other = tables.get(table)
        cols = [c for c in dates if other is not None and c in other.columns]
        if other is None or ref not in other.columns or not cols:
            continue
        latest = other.group_by(ref).agg(pl.max_horizontal(cols).max().alias(f"__l{i}"))
        out = out.join(latest, left_on=key, right_on=ref, how="left", maintain_order="left")
        own.append(pl.lit(out.get_column(f"__l{i}")))
    if not own:
        return pl.repeat(None, frame.height, dtype=pl.Datetime("us"), eager=True)
    return frame.select(pl.max_horizontal(own)).to_series()


def _expired_in(folder: Path, source: str, where: str, cutoffs: dict[str, dt.datetime]) -> list[Expired]:
    files = {p.name.removesuffix(".parquet"): p for p in folder.glob("*.parquet")}
    tables = {name: _read(p, _DATED_COLUMNS) for name, p in files.items() if name in ACTIVITY}
    out: dict[str, Expired] = {}
    for name, path in files.items():
        entity, rejected = name.removesuffix(".rejected"), name.endswith(".rejected")
        if entity not in cutoffs or entity not in ACTIVITY:
            continue
        frame = tables[name] if not rejected else _read(path, _DATED_COLUMNS)
        last = _last_activity(frame, entity, {} if rejected else tables)
        mask = (last < cutoffs[entity]).fill_null(False)
        out[name] = Expired(path, source, entity, "rejected" if rejected else where, frame.height, mask)
    for entity, (child, ref) in CASCADE.items():
        parent, kid = out.get(entity), tables.get(child)
        if parent is None or kid is None or ref not in kid.columns:
            continue
        gone = tables[entity].filter(parent.mask).get_column(ref)
        mask = kid.get_column(ref).is_in(gone.implode()).fill_null(False)
        if child in out:
            mask = mask | out[child].mask
        out[child] = Expired(files[child], source, child, where, kid.height, mask)
    return list(out.values())


def _cutoffs(settings: Settings, now: dt.datetime | None) -> dict[str, dt.datetime]:
    """entity → the last-activity time before which its rows go (naive local time, as the data holds it)."""
    now = now or dt.datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)
    return {e: now - dt.timedelta(days=d) for e, d in settings.privacy.retention_days().items()}


def expired_rows(settings: Settings, now: dt.datetime | None = None) -> list[Expired]:
    cutoffs = _cutoffs(settings, now)
    store = Store(settings.data_path)
    return (
        [e for s, where, folder in _folders(store) for e in _expired_in(folder, s, where, cutoffs)] if cutoffs else []
    )


def retention_preview(settings: Settings, now: dt.datetime | None = None) -> pl.DataFrame:
    """Per source, entity and place (current snapshot, older retained ones, quarantine, rejected rows): files,
    rows and the rows past their retention."""
    rows = [(e.source, e.entity, e.where, e.rows, int(e.mask.sum())) for e in expired_rows(settings, now)]
    frame = pl.DataFrame(
        rows,
        schema={"source": pl.String, "entity": pl.String, "where": pl.String, "rows": pl.Int64, "expired": pl.Int64},
        orient="row",
    )
    return (
        frame.group_by("source", "entity", "where")
        .agg(pl.len().alias("files"), pl.col("rows").sum(), pl.col("expired").sum())
        .sort("source", "entity", "where")
    )


@dataclass
class RetentionResult:
    changes: list[FileChange]
    by_entity: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(c.rows_removed for c in self.changes)

    def lines(self) -> list[str]:
        out = [f"{c.path}: {c.rows_removed} rows removed" for c in self.changes]
        per = ", ".join(f"{e} {n}" for e, n in sorted(self.by_entity.items())) or "nothing expired"
        return [*out, f"{len(self.changes)} files rewritten, {self.rows} rows removed ({per})"]


def apply_retention(
    settings: Settings,
    who: Who,
    wait: float = 0,
    now: dt.datetime | None = None,
) -> RetentionResult:
    """Remove expired rows from every snapshot kept on disk, then their records from the derived build."""
    root = settings.data_path
    changes: list[FileChange] = []
    by_entity: dict[str, int] = {}
    gone = Person()
    with exclusive(settings, wait, "cockpit privacy retention") as store:
        _clean_temp_files(root)
        for e in expired_rows(settings, now):
            n = int(e.mask.sum())
            if not n:
                continue
            if e.where == "current" and e.entity in ("customers", "leads"):
                kind, col = ("customer", "source_record_id") if e.entity == "customers" else ("lead", "lead_id")
                ids = _read(e.path, [col]).filter(e.mask).get_column(col).to_list()
                gone.records |= {(e.source, kind, i) for i in ids}
            arrow = pq.read_table(e.path)
            _replace_parquet(e.path, arrow.filter(pa.array(~e.mask)))
            changes.append(FileChange(e.path.relative_to(root).as_posix(), n, 0))
            by_entity[e.entity] = by_entity.get(e.entity, 0) + n
            crash_point(f"privacy_file:{len(changes)}")
        gone.keys = _keys_left_without_records(root, store, gone)
        target = Target(gone, drop_by_text=False)
        for path in _files(root, "derived") if not gone.empty else []:
            change = rewrite_parquet(root, path, target)
            if change:
                changes.append(change)
        _recount_manifest(store, {c.path for c in changes})
    result = RetentionResult(changes, by_entity)
    audit.record(
        settings, "privacy_retention", who.name, who.role, who.client, "retention", result.rows, removed=by_entity
    )
    return result


def _keys_left_without_records(root: Path, store: Store, gone: Person) -> set[str]:
    """Golden customers every source record of which expired."""
    tables = (store.read_manifest().get("derived") or {}).get("tables") or {}
    if "identity_links" not in tables or not gone.records:
        return set()
    links = _read(root / tables["identity_links"], ["source_system", "source_record_id", "customer_key"])
    ids = gone.record_ids(("customer", "lead"))
    flagged = links.with_columns(
        pl.concat_str("source_system", "source_record_id", separator="\x1f").is_in(ids).alias("gone")
    )
    return set(flagged.group_by("customer_key").agg(pl.col("gone").all()).filter("gone").get_column("customer_key"))


# -- a person's copy --------------------------------------------------------------------------------------
README = """\
个人信息副本 / Copy of personal data

本文件夹包含本系统在导出时保存的关于您的全部信息（依据《个人信息保护法》第四十五条）：
每个来源系统的记录（customers、leads 等）、统一客户档案（golden_record）、互动、订单、流失风险评分及原因。
summary.json 列出每个文件及其行数。如需更正或删除，请联系数据负责人。

This folder holds everything this system held about you when it was exported (PIPL, article 45):
each source system's records (customers, leads, ...), the unified customer record (golden_record),
interactions, orders, the churn risk score and its reasons. summary.json lists each file and its rows.
To have them corrected or deleted, contact the data owner.
"""


@dataclass
class ExportResult:
    pseudonym: str
    files: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(self.files.values())


def _current_frames(root: Path, manifest: dict[str, Any], entity: str) -> pl.DataFrame:
    paths = [root / e["entities"][entity]["file"] for e in manifest["sources"].values() if entity in e["entities"]]
    frames = [pl.read_parquet(p) for p in paths if p.exists()]
    return pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()


def _of(frame: pl.DataFrame, column: str, ids: list[str]) -> pl.Expr:
    """Rows whose (source_system, column) names one of ``ids``."""
    if column not in frame.columns or "source_system" not in frame.columns:
        return pl.lit(False)
    return pl.concat_str("source_system", column, separator="\x1f").is_in(ids)


def person_tables(settings: Settings, person: Person) -> dict[str, pl.DataFrame]:
    """What the current snapshots and derived build hold about the person, one frame per kind of record."""
    root = settings.data_path
    manifest = Store(root).read_manifest()
    customers, leads = person.record_ids(("customer",)), person.record_ids(("lead",))
    out: dict[str, pl.DataFrame] = {}
    for entity in ("customers", "leads", "lead_events", "orders", "interactions", "contracts"):
        frame = _current_frames(root, manifest, entity)
        if frame.is_empty():
            continue
        conds = [_of(frame, "customer_ref", customers), _of(frame, "lead_id", leads)]
        if entity == "customers":
            conds = [_of(frame, "source_record_id", customers)]
        out[entity] = frame.filter(pl.any_horizontal(conds).fill_null(False))
    derived = (manifest.get("derived") or {}).get("tables") or {}
    for table, name in (("customer_golden", "golden_record"), ("churn_scores", "churn"), ("identity_links", "links")):
        if table in derived and (root / derived[table]).exists():
            frame = pl.read_parquet(root / derived[table])
            out[name] = frame.filter(pl.col("customer_key").is_in(sorted(person.keys)))
    return out


def export_person(
    settings: Settings,
    ident: Identifier,
    out_dir: Path,
    who: Who,
) -> ExportResult:
    """Write the person's copy: one formula-safe CSV per kind of record, summary.json and a zh/en README."""
    from dashboard.ops.export import to_csv

    person = find_person(settings, ident)
    tables = {k: v for k, v in person_tables(settings, person).items() if v.height}
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, frame in tables.items():
        (out_dir / f"{name}.csv").write_bytes(to_csv(frame))
        files[f"{name}.csv"] = frame.height
    token = pseudonym(settings, ident)
    total = sum(files.values())
    summary = {
        "person": token,
        "identifier": ident.kind,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": files,
        "rows": total,
        "sources": sorted({s for s, _k, _i in person.records}),
        "customer_keys": sorted(person.keys),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2), encoding="utf-8")
    (out_dir / "README.txt").write_text(README, encoding="utf-8")
    audit.record(settings, "privacy_export", who.name, who.role, who.client, token, total, files=len(files))
    return ExportResult(token, files)
