"""数据资产目录: the data asset inventory, built from the config, the manifest, each snapshot's profile
and the data dictionary (never typed by hand twice), at four levels (systems, tables, fields,
lineage), and its export to an Excel workbook with one sheet per level.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.core.config import Settings, SourceConfig
from dashboard.core.dictionary import Dictionary, for_settings
from dashboard.core.entities import ENTITIES, NEVER
from dashboard.core.errors import CockpitError
from dashboard.core.store import Store
from dashboard.derived.quality.profile import mapping
from dashboard.derived.tables import DERIVED_TABLES
from dashboard.ops.status import SourceStatus, source_status
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import QUERIES_DIR, Warehouse

PAGES_DIR = Path(__file__).parents[1] / "pages"
COMPONENTS_DIR = Path(__file__).parents[1] / "components"
LEVELS: tuple[str, ...] = ("systems", "tables", "fields", "lineage")
# The entity views each derived table is built from (in the derived build after every refresh).
DERIVED_FROM: dict[str, tuple[str, ...]] = {
    "identity_links": ("customers", "leads", "orders", "interactions", "contracts"),
    "lead_facts": ("leads", "lead_events"),
    "attribution": ("leads", "lead_events", "interactions"),
    "filter_values": ("leads",),
    "field_quality": tuple(ENTITIES),
    "identity_consistency": ("customers", "leads"),
}
# table macros the queries read through (defined in derived.tables.FILTERED_LEADS_MACRO)
MACROS = {"filtered_leads": "lead_facts", "filtered_spend": "marketing_spend"}
_FROM = re.compile(r"\b(?:FROM|JOIN)\s+([a-z_][a-z0-9_]*)", re.IGNORECASE)


@dataclass(frozen=True)
class Inventory:
    systems: pl.DataFrame
    tables: pl.DataFrame
    fields: pl.DataFrame
    lineage: pl.DataFrame

    def level(self, name: str) -> pl.DataFrame:
        frame: pl.DataFrame = getattr(self, name)
        return frame


def load_inventory(settings: Settings) -> Inventory:
    """The inventory as of now (the CLI's way in; the page passes its cached profile instead)."""
    warehouse = Warehouse(settings)
    try:
        profile = warehouse.run_query("field_profile", user=SYSTEM)
    finally:
        warehouse.close()
    return build_inventory(settings, profile, source_status(settings))


def consent_counts(settings: Settings) -> pl.DataFrame:
    """Marketing consent (yes / no / unknown) per source's customer records and overall by golden customer
    (``source_system = '(all)'``): the ``consent_counts`` query, unrestricted (counts only, nothing personal)."""
    warehouse = Warehouse(settings)
    try:
        return warehouse.run_query("consent_counts", user=SYSTEM)
    finally:
        warehouse.close()


def build_inventory(settings: Settings, profile: pl.DataFrame, statuses: list[SourceStatus]) -> Inventory:
    """profile: the ``field_profile`` query; statuses: ``status.source_status``."""
    by_name = {s.name: s for s in statuses}
    dictionary = for_settings(settings)
    systems, tables, fields = [], [], []
    for src in settings.sources:
        st = by_name[src.name]
        maps = mapping(src)
        systems.append(_system(src, st, ", ".join(maps)))
        for entity, cols in maps.items():
            tables.append(_table(src, st, entity, cols, dictionary))
            fields += _fields(src.name, entity, cols, profile, dictionary)
    return Inventory(
        pl.DataFrame(systems, schema=_SYSTEMS),
        pl.DataFrame(tables, schema=_TABLES),
        pl.DataFrame(fields, schema=_FIELDS),
        lineage(settings),
    )


def _system(src: SourceConfig, st: SourceStatus, entities: str) -> dict[str, object]:
    return {
        "source_system": src.name,
        "title": src.display_title,
        "kind": src.kind,
        "owner": src.owner,
        "schedule": src.schedule,
        "last_refresh": st.published_at,
        "snapshots": st.snapshots_kept,
        "current_snapshot": st.snapshot_id,
        "entities": entities,
        "rows": sum(st.rows.values()),
        "state": st.problem or "ok",
    }


def _table(
    src: SourceConfig, st: SourceStatus, entity: str, cols: dict[str, str], dictionary: Dictionary
) -> dict[str, object]:
    info = dictionary.entities.get(entity, {})
    return {
        "source_system": src.name,
        "entity": entity,
        "view": entity,
        "classification": dictionary.source_classes.get(src.name) or info.get("classification"),
        "rows": st.rows.get(entity),
        "fields_provided": len(cols),
        "fields": len(ENTITIES[entity].columns),
        "input": ", ".join(t.path for t in src.tables if t.entity == entity),
        "description_zh": info.get("zh"),
        "description_en": info.get("en"),
    }


def _fields(
    source: str, entity: str, cols: dict[str, str], profile: pl.DataFrame, dictionary: Dictionary
) -> list[dict[str, object]]:
    ent = ENTITIES[entity]
    mine = profile.filter((pl.col("source_system") == source) & (pl.col("entity") == entity))
    by_col = {r["column_name"]: r for r in mine.iter_rows(named=True)}
    out = []
    for c in ent.columns:
        p = by_col.get(c.name, {})
        info = dictionary.field(entity, c.name)
        origin = cols.get(c.name)
        if origin is None and c.name == ent.key and c.name not in ent.required:
            origin = "(generated)"
        elif origin is None and (_fill_rate(p) or 0) > 0:
            origin = "(same name)"
        out.append(
            {
                "source_system": source,
                "entity": entity,
                "field": c.name,
                "source_column": origin,
                "type": c.type,
                "required": c.required,
                "classification": dictionary.classification(source, entity, c.name),
                "personal": info.personal,
                "description_zh": info.zh,
                "description_en": info.en,
                "fill_rate": _fill_rate(p),
                "applies_when": p.get("applies_when"),  # the rows the fill rate counts, where not every row
                "distinct_values": p.get("distinct_values"),
                "examples": ", ".join(p.get("examples") or []),
            }
        )
    return out


def _fill_rate(p: dict[str, Any]) -> float | None:
    """The field's fill rate over the rows it applies to; an optional field's (judged on none) over every row,
    so that the inventory still says how often it is filled."""
    if p.get("applies_when") == NEVER and p.get("rows"):
        return float(p.get("filled") or 0) / p["rows"]
    return p.get("fill_rate")


def query_tables(sql: str) -> set[str]:
    """The views and derived tables a query reads (FROM / JOIN names and table macros)."""
    known = set(ENTITIES) | set(DERIVED_TABLES)
    names = {MACROS.get(n.lower(), n.lower()) for n in _FROM.findall(sql)}
    return names & known


def query_pages() -> dict[str, list[str]]:
    """query name → pages that run it, found by its quoted name in a page or a component the page imports."""
    queries = {p.stem for p in QUERIES_DIR.glob("*.sql")}
    out: dict[str, list[str]] = {q: [] for q in queries}
    for page in sorted(PAGES_DIR.glob("*.py")):
        text = page.read_text(encoding="utf-8")
        for mod in set(re.findall(r"dashboard\.components(?:\.(\w+)| import ([\w, ]+))", text)):
            for name in filter(None, [mod[0], *mod[1].replace(" ", "").split(",")]):
                comp = COMPONENTS_DIR / f"{name}.py"
                text += comp.read_text(encoding="utf-8") if comp.is_file() else ""
        for q in queries:
            if f'"{q}"' in text:
                out[q].append(page.stem)
    return out


def lineage(settings: Settings) -> pl.DataFrame:
    """source → snapshot → view → (derived table) → query → pages; one row per path."""
    manifest = Store(settings.data_path).read_manifest()
    pages = query_pages()
    reads = {p.stem: query_tables(p.read_text(encoding="utf-8")) for p in sorted(QUERIES_DIR.glob("*.sql"))}
    rows = []
    for src in settings.sources:
        snapshot = ((manifest.get("sources") or {}).get(src.name) or {}).get("snapshot_id")
        for entity in mapping(src):
            via = [None, *(d for d, inputs in DERIVED_FROM.items() if entity in inputs)]
            for derived in via:
                table = derived or entity
                for query in sorted(q for q, tabs in reads.items() if table in tabs):
                    rows.append(
                        {
                            "source_system": src.name,
                            "snapshot_id": snapshot,
                            "view": entity,
                            "derived_table": derived,
                            "query": query,
                            "pages": ", ".join(pages.get(query, [])),
                        }
                    )
    return pl.DataFrame(rows, schema=_LINEAGE)


def excel_bytes(inventory: Inventory) -> bytes:
    """The workbook: one sheet per level (systems, tables, fields, lineage) and an 'about' sheet."""
    import xlsxwriter

    about = pl.DataFrame(
        {
            "item": ["generated_at", *(f"{level}_rows" for level in LEVELS)],
            "value": [
                datetime.now(UTC).isoformat(timespec="seconds"),
                *(str(inventory.level(lv).height) for lv in LEVELS),
            ],
        }
    )
    buf = io.BytesIO()
    with xlsxwriter.Workbook(buf, {"in_memory": True}) as wb:
        for level in LEVELS:
            inventory.level(level).write_excel(wb, worksheet=level, autofit=True, table_style="Table Style Light 9")
        about.write_excel(wb, worksheet="about", autofit=True)
    return buf.getvalue()


def write_excel(inventory: Inventory, path: Path) -> Path:
    """Written whole or not at all (a temp file beside it, then renamed)."""
    path = Path(path)
    if path.suffix.lower() != ".xlsx":
        raise CockpitError(f"the workbook must be an .xlsx file, got '{path}'")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(excel_bytes(inventory))
        tmp.replace(path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CockpitError(f"cannot write the workbook '{path}': {e.strerror or e}") from None
    return path


_SYSTEMS = {
    "source_system": pl.String, "title": pl.String, "kind": pl.String, "owner": pl.String, "schedule": pl.String,
    "last_refresh": pl.String, "snapshots": pl.Int64, "current_snapshot": pl.String, "entities": pl.String,
    "rows": pl.Int64, "state": pl.String,
}  # fmt: skip
_TABLES = {
    "source_system": pl.String, "entity": pl.String, "view": pl.String, "classification": pl.String,
    "rows": pl.Int64, "fields_provided": pl.Int64, "fields": pl.Int64, "input": pl.String,
    "description_zh": pl.String, "description_en": pl.String,
}  # fmt: skip
_FIELDS = {
    "source_system": pl.String, "entity": pl.String, "field": pl.String, "source_column": pl.String,
    "type": pl.String, "required": pl.Boolean, "classification": pl.String, "personal": pl.Boolean,
    "description_zh": pl.String, "description_en": pl.String, "fill_rate": pl.Float64,
    "applies_when": pl.String, "distinct_values": pl.Int64, "examples": pl.String,
}  # fmt: skip
_LINEAGE = {
    "source_system": pl.String, "snapshot_id": pl.String, "view": pl.String, "derived_table": pl.String,
    "query": pl.String, "pages": pl.String,
}  # fmt: skip
