"""Onboarding a proposed source: what the quality gate would say about its sample, the ``[sources.quality]``
settings that would let the sample's normal gaps pass (each one named with its numbers), and the
``[[sources]]`` block appended to cockpit.toml (the user's text kept byte for byte, the file replaced
atomically, a duplicate source name refused).
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from dashboard.core import parse
from dashboard.core.config import Settings, SourceConfig, parse_settings
from dashboard.core.errors import ConfigError
from dashboard.core.store import atomic_write_text
from dashboard.pipeline.guidance import way_forward
from dashboard.pipeline.standardize import REJECT_COL, RowIssue, standardize
from dashboard.pipeline.validate import NOT_NULL, Outcome, validate
from dashboard.sources.columns import FILE_COL, ROW_COL, check_columns
from dashboard.sources.onboard import Proposal, Sample

PREVIEW_SNAPSHOT = "<snapshot>"
MAX_ACCEPTED = 0.5  # a larger share of empty or invalid values is never accepted on its own


@dataclass(frozen=True)
class Location:
    """Where the source's rows are: a file (path as cockpit.toml will hold it) or a database table."""

    path: str = ""
    sheet: str | None = None
    connection: str | None = None
    table: str | None = None


@dataclass
class TablePreview:
    entity: str
    rows: int  # sample rows read
    kept: int  # would be published
    issues: list[RowIssue]

    @property
    def set_aside(self) -> int:
        return self.rows - self.kept


@dataclass
class GatePreview:
    """The gate on the sample: as it stands, and with the proposed ``[sources.quality]`` settings."""

    source: SourceConfig
    tables: list[TablePreview]
    outcomes: list[Outcome]  # with the proposed settings
    default_failed: list[Outcome]  # blocking failures with the default gate
    quality: dict[str, dict[str, float]] = field(default_factory=dict)  # proposed [sources.quality]
    notes: list[str] = field(default_factory=list)  # why each setting
    way_forward: list[str] = field(default_factory=list)  # the guidance for the default gate's failures

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.blocking and not o.success]

    @property
    def warnings(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.blocking and not o.success]

    @property
    def passes(self) -> bool:
        return not self.failed


def default_name(label: str, is_file: bool = True) -> str:
    """A source name from a file or table name: ``Olist MQL.csv`` → ``olist_mql``, ``线索.csv`` → ``xian_suo``."""
    stem = Path(label).stem if is_file else label.rsplit(".", 1)[-1]
    if re.search(r"[\u3400-\u9fff]", stem):
        stem = parse.pinyin(pl.Series([stem])).item() or stem
    name = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")
    return name or "imported"


def file_location(path: Path, base_dir: Path, sheet: str | None = None) -> Location:
    """The file as cockpit.toml names it: relative to the config's folder when inside it; glob characters
    escaped (the path is read as a glob)."""
    resolved = path.resolve()
    try:
        text = resolved.relative_to(base_dir.resolve()).as_posix()
    except ValueError:
        text = resolved.as_posix()
    return Location(path=glob.escape(text), sheet=sheet)


Part = tuple[Proposal, Location]  # one input of the source: what it holds, and where it is


def source_dict(name: str, parts: list[Part], quality: dict[str, Any]) -> dict[str, Any]:
    """The source as cockpit.toml's schema takes it: every table of every input, in order."""
    kinds = {p.sample.kind for p, _ in parts}
    if len(kinds) > 1:
        raise ConfigError(f"one source reads one kind of input (given: {', '.join(sorted(kinds))}); add them apart")
    out: dict[str, Any] = {"name": name, "kind": parts[0][0].sample.kind, "title": name}
    if parts[0][1].connection:
        out["connection"] = parts[0][1].connection
    out["tables"] = [
        {
            "entity": t.entity,
            **({"path": where.path} if where.path else {}),
            **({"sheet": where.sheet} if where.sheet else {}),
            **({"table": where.table} if where.table else {}),
            **({"constants": t.constants} if t.constants else {}),
            "columns": t.columns,
        }
        for p, where in parts
        for t in p.tables
    ]
    if quality:
        out["quality"] = quality
    return out


def _gate(settings: Settings, src: SourceConfig, parts: list[Part]) -> tuple[list[TablePreview], list[Outcome]]:
    """Each table standardized from its input's sample; one validation per entity, as a refresh runs it."""
    samples = [p.sample for p, _ in parts for _t in p.tables]
    now = datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)
    tables: list[TablePreview] = []
    frames: dict[str, list[pl.DataFrame]] = {}
    for table, sample in zip(src.tables, samples, strict=True):
        frame = sample.frame
        raw = frame.with_columns(
            pl.lit(sample.label).alias(FILE_COL), pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW_COL)
        )
        check_columns(raw, table, sample.label)
        std = standardize(raw, table, src, settings, PREVIEW_SNAPSHOT)
        kept = int(std.frame.get_column(REJECT_COL).is_null().sum())
        tables.append(TablePreview(table.entity, frame.height, kept, std.issues))
        frames.setdefault(table.entity, []).append(std.frame)
    outcomes: list[Outcome] = []
    for entity, parts_of in frames.items():
        whole = pl.concat(parts_of, how="diagonal_relaxed") if len(parts_of) > 1 else parts_of[0]
        outcomes += validate(whole, entity, src.name, src.quality, now)
    return tables, outcomes


def _accept(failed: list[Outcome]) -> tuple[dict[str, dict[str, float]], list[str]]:
    """The null and invalid shares that let the sample's failures pass: the next whole percent above each
    observed share, up to MAX_ACCEPTED. Row counts and date ranges are never accepted here: a person decides."""
    quality: dict[str, dict[str, float]] = {}
    notes = []
    for o in failed:
        if o.column is None or o.unexpected_percent is None or o.note is not None or "mostly" not in o.kwargs:
            continue
        key = "max_null_share" if o.expectation == NOT_NULL else "max_invalid_share"
        share = min(1.0, (math.floor(o.unexpected_percent + 1e-9) + 1) / 100)
        if share > MAX_ACCEPTED:
            continue  # most of the column: a wrong mapping or a missing alias, not a gap to accept
        quality.setdefault(key, {})[f"{o.entity}.{o.column}"] = share
        what = "empty" if key == "max_null_share" else f"fail {o.expectation}"
        notes.append(
            f"{o.entity}.{o.column}: {o.unexpected_percent:.1f}% of the sample's rows {what} "
            f"({o.unexpected_count} of {o.element_count}); {key} {share} lets this pass"
        )
    return quality, notes


def preview(settings: Settings, parts: list[Part], name: str) -> GatePreview:
    """Standardize and validate the samples as a refresh would; where the default gate blocks on empty or
    invalid shares, the settings that would accept them, and the gate again with them."""
    base = source_dict(name, parts, {})
    src = _source(settings, base)
    tables, outcomes = _gate(settings, src, parts)
    failed = [o for o in outcomes if o.blocking and not o.success]
    out = GatePreview(src, tables, outcomes, failed, way_forward=way_forward(settings, src, PREVIEW_SNAPSHOT, failed))
    out.quality, out.notes = _accept(failed)
    if out.quality:
        out.source = _source(settings, {**base, "quality": out.quality})
        out.tables, out.outcomes = _gate(settings, out.source, parts)
    return out


def _source(settings: Settings, spec: dict[str, Any]) -> SourceConfig:
    """The source as cockpit.toml would hold it, checked by the config's own schema (its messages)."""
    parsed = parse_settings({"sources": [spec]}, settings.base_dir, origin="the proposed source")
    return parsed.sources[0]


# -- the block appended to cockpit.toml ---------------------------------------------------------------
def _s(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _inline(values: dict[str, Any]) -> str:
    items = (f"{_s(k) if '.' in k else k} = {_s(v) if isinstance(v, str) else v}" for k, v in values.items())
    return "{ " + ", ".join(items) + " }"


def _rows(sample: Sample) -> str:
    total = "?" if sample.total_rows is None else f"{'~' if sample.estimated else ''}{sample.total_rows:,}"
    return f"{sample.label} (profiled {sample.frame.height:,} of {total} rows)"


def render_block(spec: dict[str, Any], parts: list[Part], notes: list[str], today: date | None = None) -> str:
    """The ``[[sources]]`` block, laid out like the hand-written ones, with why each column was chosen."""
    lines = [
        "",
        f"# added by `cockpit source add` on {(today or date.today()).isoformat()} from "
        + ", ".join(_rows(p.sample) for p, _ in parts),
        "[[sources]]",
    ]
    lines += [f"{k} = {_s(spec[k])}" for k in ("name", "kind", "title", "connection") if k in spec]
    hows = [t.how for p, _ in parts for t in p.tables]
    for table, how in zip(spec["tables"], hows, strict=True):
        lines += ["", "  [[sources.tables]]", f"  entity = {_s(table['entity'])}"]
        lines += [f"  {k} = {_s(table[k])}" for k in ("path", "sheet", "table") if k in table]
        if table.get("constants"):
            lines.append(f"  constants = {_inline(table['constants'])}")
        lines.append("  [sources.tables.columns]")
        for col, header in table["columns"].items():
            lines.append(f"  {col} = {_s(header)}".ljust(40) + f"  # {how.get(col, 'edited')}")
    if spec.get("quality"):
        lines += ["", "  [sources.quality]                # the sample's normal gaps, accepted by `source add`:"]
        lines += [f"  # {n}" for n in notes]
        lines += [f"  {k} = {_inline(v)}" for k, v in spec["quality"].items()]
    return "\n".join(lines) + "\n"


def append_source(config_path: Path, block: str, name: str) -> None:
    """Append ``block`` to cockpit.toml: refused when the name is taken or the result would not load; the
    file's own text is kept as it is and the whole is replaced atomically (never half written)."""
    try:
        text = config_path.read_bytes().decode("utf-8")
        raw = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{config_path}: cannot read it to add a source: {e}") from None
    taken = [s.get("name") for s in raw.get("sources") or [] if isinstance(s, dict)]
    if name in taken:
        raise ConfigError(
            f"{config_path}: a source named '{name}' already exists; choose another name with --name "
            f"(configured: {', '.join(str(n) for n in taken)})"
        )
    new = text + ("\n" if text and not text.endswith("\n") else "") + block
    try:
        parsed = tomllib.loads(new)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{config_path}: the new block would not be valid TOML ({e}); nothing written") from None
    parse_settings(parsed, config_path.resolve().parent, origin=str(config_path))
    mode = config_path.stat().st_mode
    if config_path.read_bytes().decode("utf-8") != text:
        raise ConfigError(f"{config_path}: changed while the source was being added; nothing written, run it again")
    atomic_write_text(config_path, new)
    os.chmod(config_path, mode & 0o7777)


# -- the whole step, and what it says ------------------------------------------------------------------
@dataclass
class Onboarding:
    parts: list[Part]
    name: str
    gate: GatePreview
    block: str


def onboard(settings: Settings, parts: list[Part], name: str | None = None) -> Onboarding:
    """The inputs' gate preview and the block that would be appended; a taken name is refused here
    already, before anything is asked."""
    first = parts[0][0].sample
    name = name or default_name(first.label, is_file=first.path is not None)
    if name in settings.source_names:
        raise ConfigError(
            f"a source named '{name}' already exists in cockpit.toml; choose another name with --name "
            f"(configured: {', '.join(settings.source_names)})"
        )
    gate = preview(settings, parts, name)
    return Onboarding(parts, name, gate, render_block(source_dict(name, parts, gate.quality), parts, gate.notes))


def describe(settings: Settings, ob: Onboarding) -> list[str]:
    """The proposal as `cockpit source add` prints it: the mapping with sample values (personal ones
    masked), the columns left out, and the gate's word on the samples."""
    from dashboard.core.dictionary import for_settings, mask_if

    dictionary = for_settings(settings)
    lines = [f"source '{ob.name}' ({ob.gate.source.kind})"]
    for p, _ in ob.parts:
        lines.append(f"  {_rows(p.sample)}")
        for t in p.tables:
            lines.append(f"    {t.entity}")
            for col, header in t.columns.items():
                personal = dictionary.personal(t.entity, col)
                examples = ", ".join(mask_if(v, personal, col) for v in p.profiles[header].samples)
                lines.append(f"      {col:<16} ← {header:<24} {t.how.get(col, ''):<20} e.g. {examples[:80]}")
            for col, value in t.constants.items():
                lines.append(f"      {col:<16} = '{value}' ({t.how.get(col, 'constant')})")
        if p.alternatives:
            lines.append(f"    also possible: {', '.join(p.alternatives)} (choose with --entity)")
        if p.unmapped:
            lines.append(f"    not mapped: {', '.join(p.unmapped)}")
    gate = ob.gate
    lines.append("Quality gate on the sample:")
    for tp in gate.tables:
        lines.append(f"  {tp.entity}: {tp.rows:,} rows, {tp.kept:,} would publish, {tp.set_aside:,} set aside")
        for i in tp.issues:
            seen = ", ".join(dict.fromkeys(str(x["value"]) for x in i.samples if x.get("value") is not None))
            lines.append(
                f"    {i.column}: {i.count:,} rows {i.problem} ({i.action})" + (f"; e.g. {seen}" if seen else "")
            )
            if i.problem == "unknown funnel stage":
                lines.append(f'      name their funnel stage in [stage_aliases], e.g. opportunity = ["{seen}"]')
    if gate.default_failed:
        lines.append("  as the gate stands, it would quarantine this source:")
        lines += [f"    - {o.describe()}" for o in gate.default_failed]
    if gate.quality:
        lines.append("  the block below accepts these gaps in [sources.quality]:")
        lines += [f"    {n}" for n in gate.notes]
    if gate.failed:
        lines.append("  ✘ the first refresh would still quarantine it:")
        lines += [f"    - {o.describe()}" for o in gate.failed]
        lines += [f"    {w}" for w in gate.way_forward]
    else:
        lines.append("  ✔ the sample passes" + (" with those settings" if gate.quality else ""))
    lines += [f"  ! warning: {o.describe()}" for o in gate.warnings]
    return lines
