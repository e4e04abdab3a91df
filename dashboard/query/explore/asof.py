"""As-of comparison for Explore: the warehouse as it was with one source at an earlier retained
snapshot (every other source current), so the same question can be asked of both.

The old snapshot's files replace the source's current ones in a copy of the manifest; the role
schemas are built over them exactly as for the live warehouse, so row filters and masking apply.
Lead facts are recomputed from the swapped leads and funnel events; the other derived tables (identity
links, golden customers) are the current build's.
"""

from __future__ import annotations

import copy

import duckdb

from dashboard.core.config import Settings
from dashboard.core.duck import drop_relation
from dashboard.core.entities import ENTITIES
from dashboard.core.store import Manifest, Store
from dashboard.derived.analytics import LEAD_FACTS_SQL
from dashboard.derived.tables import attach_views
from dashboard.query.explore.models import ExploreError
from dashboard.query.facts import attach_customer_keys
from dashboard.query.warehouse import BASE, Stamp, Warehouse, attach_role_views

FROZEN: Stamp = (0, 0, 0)  # never changes, so the first build is the only one


def earlier_snapshots(store: Store, manifest: Manifest) -> dict[str, list[str]]:
    """Per source, its retained earlier snapshots (newest first) that are still on disk."""
    out: dict[str, list[str]] = {}
    for source, info in sorted((manifest.get("sources") or {}).items()):
        kept = [s for s in info.get("previous", []) if (store.snapshots / source / s).is_dir()]
        if kept:
            out[source] = kept
    return out


def as_of_manifest(store: Store, manifest: Manifest, source: str, snapshot_id: str) -> Manifest:
    """The manifest with ``source`` at ``snapshot_id``: its entities read from that snapshot's files."""
    info = (manifest.get("sources") or {}).get(source)
    if info is None:
        raise ExploreError(f"no source named '{source[:40]}' has been published")
    folder = store.snapshots / source / snapshot_id
    if snapshot_id not in info.get("previous", []) or not folder.is_dir():
        raise ExploreError(f"snapshot '{snapshot_id[:40]}' of source '{source}' is no longer kept (see retention)")
    swapped = copy.deepcopy(manifest)
    entities = {}
    for entity in ENTITIES:
        path = folder / f"{entity}.parquet"
        if path.is_file():
            entities[entity] = {"file": store.rel(path)}
    swapped["sources"][source] = {**info, "snapshot_id": snapshot_id, "entities": entities}
    return swapped


class AsOfWarehouse(Warehouse):
    """A warehouse frozen at one source's earlier snapshot; ``sql(..., user=...)`` works as usual.

    Built once, on first use, through the Warehouse's own build-and-swap (so as safe to share between
    threads); a later publish does not move it."""

    def __init__(self, settings: Settings, source: str, snapshot_id: str) -> None:
        super().__init__(settings)
        self.source, self.snapshot_id = source, snapshot_id

    def _stamp(self) -> Stamp:
        return FROZEN

    def _read_manifest(self) -> Manifest:
        return as_of_manifest(self.store, self.store.read_manifest(), self.source, self.snapshot_id)

    def _build(self, manifest: Manifest) -> duckdb.DuckDBPyConnection:
        con = self._connect()
        try:
            attach_views(con, self.store, manifest, in_memory=frozenset(), schema=BASE)
            con.execute(f"USE {BASE}")
            drop_relation(con, "lead_facts", BASE)
            con.execute(f"CREATE TABLE lead_facts AS {LEAD_FACTS_SQL}")
            con.execute("USE main")
            attach_customer_keys(con, BASE, frozenset())  # as the live warehouse's facts carry them
            attach_role_views(con, BASE, key=self._pseudonym_key)
        except BaseException:
            con.close()
            raise
        return con
