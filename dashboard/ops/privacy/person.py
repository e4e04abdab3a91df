"""Who a privacy request is about: the identifier as typed, normalized, and every record, key and
identifier that names the person in the snapshots and derived builds."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from dashboard.core import parse
from dashboard.core.config import Settings
from dashboard.core.errors import CockpitError
from dashboard.pipeline import suppression

KINDS = ("phone", "email", "id_number", "customer")
PENDING = Path("runs") / "privacy" / "pending"
_SEP = "[\\s\\-().\u3000]"
_EDGE = "[^0-9A-Za-z._%+\\-@]"  # what may stand next to a phone, e-mail or ID number in a longer text


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


def pseudonym(settings: Settings, ident: Identifier) -> str:
    """A keyed hash standing for the person in the audit log (same person → same token)."""
    return "person:" + suppression.digest(suppression.secret(settings.data_path), "person", ident.value)[:16]
