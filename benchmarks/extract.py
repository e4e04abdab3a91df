"""Extract a 10M-row PostgreSQL table into a snapshot's Parquet extract, next to the floor: PostgreSQL's
own ``COPY table TO 'file'`` of the same rows, in the same run. Also measured: the two psycopg ways
(COPY to STDOUT parsed by Arrow's CSV reader, and a server-side cursor), and incremental pulls after 1% of
the rows changed: kept as a delta beside the base, the same compacted into a new base (what every pull did
before base + delta extracts), and a second 1% on top; wall time, CPU time and bytes written for each.

    python benchmarks/extract.py --rows 10000000            # starts its own PostgreSQL (tests/dbserver.py)
    python benchmarks/extract.py --url postgresql://...     # or uses yours (needs CREATE TABLE and COPY TO file)

Each extract runs in a fresh child process so its peak memory (max RSS) is its own. The section
"## Database extract (issue 10)" of docs/benchmarks.md is replaced with the results (--no-write: print only).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SECTION = "## Database extract (issue 10)"
TABLE = "bench_customers"
METHODS = ("adbc", "psycopg_copy", "psycopg_cursor")


# -- the workers (each run in its own interpreter) ------------------------------------------------------------
def worker_adbc(url: str, out: Path, previous: Path | None, compact: bool = False) -> dict[str, Any]:
    """The product path: dashboard.sources.database.read, as a refresh runs it, then the extract read as one
    relation (what the refresh's standardize step gets). ``compact``: the deltas are written into a new base
    whatever their size (the way every incremental pull worked before base + delta extracts)."""
    import resource

    from dashboard.core.config import SourceConfig
    from dashboard.sources import database, extract
    from dashboard.sources.incremental import ExtractContext

    if compact:
        extract.COMPACT_SHARE = 0.0
    os.environ["BENCH_DB_URL"] = url
    src = SourceConfig.model_validate({
        "name": "bench", "kind": "postgres", "connection": "env:BENCH_DB_URL", "timeout_seconds": 600,
        "tables": [{"entity": "customers", "table": TABLE, "key": "id", "watermark": "updated_at"}],
    })
    ctx = ExtractContext(out.parent, out / "extract", previous)
    cpu, t = _cpu(), time.perf_counter()
    result, _label = database.read(src, src.tables[0], ctx)
    seconds, cpu_s = time.perf_counter() - t, _cpu() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the extract's own, before the read
    state = json.loads((out / "extract" / "0.json").read_text())
    cpu, t = _cpu(), time.perf_counter()
    rows = result.read().height
    read_s, read_cpu = time.perf_counter() - t, _cpu() - cpu
    read_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    new = [f for f in (out / "extract").iterdir() if f.stat().st_nlink == 1]  # written here, not linked
    return {"rows": state["rows"], "pulled": state["pulled_rows"], "seconds": seconds, "cpu_s": cpu_s,
            "bytes": sum(f.stat().st_size for f in new), "files": len(result.files),
            "pull_s": state["pull_seconds"], "merge_s": state["merge_seconds"],
            "read_s": read_s, "read_cpu_s": read_cpu, "read_rows": rows, "read_peak_mb": read_peak_mb,
            "peak_mb": peak_mb, "compacted": state.get("compacted", False)}


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread: the Parquet writer's and Polars' too
    return r.ru_utime + r.ru_stime


def worker_psycopg_copy(url: str, out: Path, batch_rows: int = 100_000) -> dict[str, Any]:
    """COPY ... TO STDOUT (csv) streamed into Arrow's CSV reader with the columns' types given."""
    import psycopg
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    types = {"id": pa.int32(), "name": pa.string(), "phone": pa.string(), "email": pa.string(),
             "city": pa.string(), "amount": pa.string(), "updated_at": pa.timestamp("us", tz="UTC")}
    rows = 0
    sql = f"COPY (SELECT * FROM {TABLE}) TO STDOUT (FORMAT csv, HEADER true)"
    with psycopg.connect(url) as con, con.cursor() as cur, cur.copy(sql) as copy:
        reader = pacsv.open_csv(
            _CopyStream(copy), read_options=pacsv.ReadOptions(block_size=16 << 20),
            convert_options=pacsv.ConvertOptions(column_types=types),
        )
        with pq.ParquetWriter(out / "copy.parquet", reader.schema, compression="zstd") as w:
            for batch in reader:
                w.write_batch(batch)
                rows += batch.num_rows
    return {"rows": rows, "bytes": (out / "copy.parquet").stat().st_size}


class _CopyStream:
    """A psycopg Copy as the file object Arrow's CSV reader wants."""

    def __init__(self, copy: Any) -> None:
        self._chunks = iter(copy)
        self._buf = bytearray()
        self.closed = False

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            try:
                self._buf += next(self._chunks)
            except StopIteration:
                break
        n = len(self._buf) if n < 0 else min(n, len(self._buf))
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def worker_psycopg_cursor(url: str, out: Path, batch_rows: int = 100_000) -> dict[str, Any]:
    """A server-side (named) cursor, fetchmany into Arrow batches."""
    import psycopg
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = 0
    with psycopg.connect(url) as con, con.cursor(name="bench") as cur:
        cur.itersize = batch_rows
        cur.execute(f"SELECT id, name, phone, email, city, amount::text, updated_at FROM {TABLE}")
        names = [d.name for d in cur.description or []]
        writer = None
        while chunk := cur.fetchmany(batch_rows):
            batch = pa.RecordBatch.from_arrays([pa.array(c) for c in zip(*chunk, strict=True)], names=names)
            if writer is None:
                writer = pq.ParquetWriter(out / "cursor.parquet", batch.schema, compression="zstd")
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer:
            writer.close()
    return {"rows": rows, "bytes": (out / "cursor.parquet").stat().st_size}


def _worker(argv: list[str]) -> None:
    method, url, out = argv[0], argv[1], Path(argv[2])
    previous = Path(argv[3]) if len(argv) > 3 else None
    compact = len(argv) > 4 and argv[4] == "compact"
    import resource

    import adbc_driver_postgresql.dbapi  # noqa: F401 - imports are not part of the extract's time
    import psycopg  # noqa: F401
    import pyarrow.csv
    import pyarrow.parquet  # noqa: F401

    import dashboard.sources.database  # noqa: F401

    t, cpu = time.perf_counter(), _cpu()
    if method == "adbc":
        res = worker_adbc(url, out, previous, compact)
    elif method == "psycopg_copy":
        res = worker_psycopg_copy(url, out)
    else:
        res = worker_psycopg_cursor(url, out)
    res.setdefault("seconds", time.perf_counter() - t)
    res.setdefault("cpu_s", _cpu() - cpu)
    res.setdefault("peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(res))


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"worker {args[0]} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- the run ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _server(url: str | None) -> Iterator[tuple[str, Path | None]]:
    """(url, folder the server can write COPY files to)."""
    if url:
        yield url, None
        return
    from tests.dbserver import postgres

    with postgres() as pg:
        yield pg.url(), pg.folder


def _sql(url: str, *statements: str) -> float:
    import psycopg

    t = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as con:
        for s in statements:
            con.execute(s)  # our own benchmark statements: identifiers and numbers only
    return time.perf_counter() - t


def run(url: str, server_dir: Path | None, rows: int, methods: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {"rows": rows, "load_before": os.getloadavg()}
    print(f"creating {rows:,} rows in {TABLE} ...", flush=True)
    _sql(url, f"DROP TABLE IF EXISTS {TABLE}",
         f"CREATE UNLOGGED TABLE {TABLE} AS SELECT i::int AS id, 'customer ' || i AS name, "
         f"'138' || lpad((i % 100000000)::text, 8, '0') AS phone, md5(i::text) || '@example.com' AS email, "
         f"(ARRAY['上海','北京','深圳','广州'])[i % 4 + 1] AS city, ((i % 100000) * 1.25)::numeric(12,2) AS amount, "
         f"timestamptz '2024-01-01' + i * interval '1 second' AS updated_at FROM generate_series(1, {rows}) i",
         f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)", f"CREATE INDEX ON {TABLE} (updated_at)",
         f"VACUUM ANALYZE {TABLE}")

    with tempfile.TemporaryDirectory(prefix="cockpit-xbench-") as tmp:
        copy_dir = server_dir or Path(tmp)
        os.chmod(copy_dir, 0o777)  # the server process writes the floor file
        floor_file = copy_dir / "floor.csv"
        _sql(url, f"COPY {TABLE} TO '{floor_file}' (FORMAT csv)")  # warm the cache once
        floor_file.unlink()
        results["floor_s"] = _sql(url, f"COPY {TABLE} TO '{floor_file}' (FORMAT csv)")
        results["floor_bytes"] = floor_file.stat().st_size
        floor_file.unlink()
        for m in methods:
            out = Path(tmp) / m
            out.mkdir()
            print(f"{m} ...", flush=True)
            results[m] = _child(m, url, str(out))
            if m != "adbc":
                for f in out.glob("*.parquet"):
                    f.unlink()
        if "adbc" in methods:
            changed = rows // 100
            edit = f"UPDATE {TABLE} SET name = name || ' (edited)', updated_at = now() WHERE id % 100 = {{}}"
            _sql(url, edit.format(7))
            print(f"incremental after {changed:,} changed rows: as a delta, then compacted ...", flush=True)
            first = Path(tmp) / "adbc" / "extract"
            for name, how in (("incremental", ""), ("compacted", "compact")):
                (Path(tmp) / name).mkdir()
                results[name] = _child("adbc", url, str(Path(tmp) / name), str(first), how)
                results[name]["changed"] = changed
            _sql(url, edit.format(8))
            print("a second 1 % on top of the first delta ...", flush=True)
            (Path(tmp) / "incremental2").mkdir()
            results["incremental2"] = _child("adbc", url, str(Path(tmp) / "incremental2"),
                                             str(Path(tmp) / "incremental" / "extract"))
            results["incremental2"]["changed"] = changed
    return results


def markdown(r: dict[str, Any], command: str) -> str:
    load = r["load_before"]
    floor = r["floor_s"]
    lines = [
        SECTION, "",
        f"Command: `{command}` ({datetime.now(UTC).date()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average before the run {load[0]:.2f}; PostgreSQL started by the benchmark on loopback, "
        "fsync off; the machine was shared with other engineers' work).", "",
        f"{r['rows']:,} rows (id, name, phone, email, city, numeric amount, timestamptz) from the local PostgreSQL "
        "into Parquet (zstd). Floor: PostgreSQL's own `COPY table TO 'file'` (CSV) of the same rows.", "",
        "| what | wall | CPU | bytes written | rows/s | × floor (wall) | peak memory |",
        "|---|---|---|---|---|---|---|",
        f"| floor: `COPY {TABLE} TO file` ({r['floor_bytes'] / 1e9:.2f} GB CSV) | {floor:.1f} s | (server) | "
        f"{r['floor_bytes'] / 1e6:,.0f} MB | {r['rows'] / floor:,.0f} | 1.0× | (server) |",
    ]
    names = {"adbc": "**cockpit extract (ADBC, the product path)**", "psycopg_copy": "psycopg COPY → Arrow CSV reader",
             "psycopg_cursor": "psycopg server-side cursor → Arrow"}
    for m in METHODS:
        if m in r:
            x = r[m]
            lines.append(f"| {names[m]} | {x['seconds']:.1f} s | {x['cpu_s']:.1f} s | {x['bytes'] / 1e6:,.0f} MB | "
                         f"{x['rows'] / x['seconds']:,.0f} | {x['seconds'] / floor:.2f}× | {x['peak_mb']:,.0f} MB |")
    incremental = {
        "incremental": "**1 % changed, kept as a delta**: pull {pulled:,} rows ({pull_s:.1f} s) + add to the base "
                       "({merge_s:.1f} s)",
        "incremental2": "another 1 % on top (base + 2 deltas): pull {pulled:,} rows ({pull_s:.1f} s) + add "
                        "({merge_s:.1f} s)",
        "compacted": "the same 1 % compacted into a new base (every pull before): pull {pulled:,} ({pull_s:.1f} s) "
                     "+ rewrite {rows:,} rows ({merge_s:.1f} s)",
    }
    for key, label in incremental.items():
        if key in r:
            x = r[key]
            lines.append(f"| {label.format(**x)} | {x['seconds']:.1f} s | {x['cpu_s']:.1f} s | "
                         f"{x['bytes'] / 1e6:,.1f} MB | – | {x['seconds'] / floor:.2f}× | {x['peak_mb']:,.0f} MB |")
    if "incremental" in r:
        lines += ["", "Then the refresh reads the extract as one relation (the latest version of each key) for "
                  "standardize:", "", "| extract | files | rows | wall | CPU | peak memory |",
                  "|---|---|---|---|---|---|"]
        for key, label in (("adbc", "full pull (one base)"), ("incremental", "base + 1 delta"),
                           ("incremental2", "base + 2 deltas"), ("compacted", "compacted (one base)")):
            if key in r and "read_s" in r[key]:
                x = r[key]
                lines.append(f"| {label} | {x['files']} | {x['read_rows']:,} | {x['read_s']:.2f} s | "
                             f"{x['read_cpu_s']:.2f} s | {x['read_peak_mb']:,.0f} MB |")
    lines += ["", "Goal: within 2× the floor and under 2 GB peak for the extract; an incremental pull costing in "
              "proportion to what changed. This is the extract step (database → the snapshot's Parquet extract); "
              "standardize and validate then run on it as for any source (see the refresh benchmark above). "
              "Bytes written: the files the step wrote (hard links to the last snapshot's files are not counted).",
              ""]
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    doc = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    doc = pattern.sub(lambda _m: text + "\n", doc) if pattern.search(doc) else doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc, encoding="utf-8")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--url", help="an existing PostgreSQL (default: start one in a temporary folder)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    with _server(args.url or os.environ.get("BENCH_PG_URL")) as (url, folder):
        results = run(url, folder, args.rows, args.methods)
    command = "python benchmarks/extract.py" + (f" --rows {args.rows}" if args.rows != 10_000_000 else "")
    text = markdown(results, command)
    print(text)
    print(json.dumps(results, indent=2))
    if not args.no_write:
        write_section(Path(args.out), text)


if __name__ == "__main__":
    main()
