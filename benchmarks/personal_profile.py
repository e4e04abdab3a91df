"""The personal-data profile of a refreshed company (derived/personal.py ``profile``), every file sampled anew: wall
and CPU seconds, peak RSS, and each file's CPU with ``--per-file``. Run each version of the code in a process of its
own, back to back, and compare (``PYTHONPATH`` picks the code, e.g. a ``git archive`` of the commit before):

    .venv/bin/python benchmarks/personal_profile.py --config $BENCH/medium/cockpit.toml
    PYTHONPATH=$BENCH/before .venv/bin/python benchmarks/personal_profile.py --config $BENCH/medium/cockpit.toml

It reads the current build's files (the manifest's snapshots and derived tables) and writes nothing but ``--out``.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from dashboard.core.config import load_settings
from dashboard.core.dictionary import MASK_MACROS
from dashboard.core.duck import work_connection
from dashboard.core.store import Store
from dashboard.derived import personal
from dashboard.derived.tables import DERIVED_TABLES, READ_FROM


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="cockpit.toml of a refreshed company")
    ap.add_argument("--per-file", action="store_true", help="profile the files one by one and print each one's CPU")
    ap.add_argument("--out", help="write what the profile found to this Parquet file (to compare two versions)")
    args = ap.parse_args()
    settings = load_settings(args.config)
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    entity_files = {
        (entity, source): store.abs(info["file"])
        for source, entry in manifest["sources"].items()
        for entity, info in (entry.get("entities") or {}).items()
    }
    tables = manifest["derived"]["tables"]
    # what the build profiles: every derived table but those read from another and the profile's own
    made_after = {*READ_FROM, *personal.TABLES}
    derived = {t: store.abs(rel) for t, rel in tables.items() if t in DERIVED_TABLES and t not in made_after}
    print(f"code: {personal.__file__}; {personal.sampled_by()}; load {os.getloadavg()[0]:.1f}")
    with work_connection(settings) as con:
        con.execute(MASK_MACROS)
        cpu, wall = _cpu(), time.perf_counter()
        if args.per_file:
            for (entity, source), file in sorted(entity_files.items()):
                start = _cpu()
                personal.profile(con, {(entity, source): file}, {})
                print(f"  {entity}/{source}: {_cpu() - start:.3f} CPU-s")
            for table, file in sorted(derived.items()):
                start = _cpu()
                personal.profile(con, {}, {table: file})
                print(f"  {table}: {_cpu() - start:.3f} CPU-s")
        else:
            found = personal.profile(con, entity_files, derived)
            print(f"{found.height} rows found")
            if args.out:
                found.write_parquet(args.out)
        cpu, wall = _cpu() - cpu, time.perf_counter() - wall
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{len(entity_files) + len(derived)} files: {wall:.2f} s wall, {cpu:.2f} CPU-s, peak RSS {peak:.0f} MB, "
        f"load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
