"""Each `cockpit` command imports what it uses: `cockpit status` and `cockpit users` answer without DuckDB or
polars, and a refresh that finds nothing changed keeps churn's tables without importing its model libraries
(scikit-learn and SciPy cost ~1.5 CPU-s to import, more than the rest of such a refresh)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dashboard.core.config import Settings
from dashboard.pipeline.refresh import refresh

ROOT = Path(__file__).resolve().parents[1]
# The CLI run as `cockpit` runs it, naming at exit the top-level packages the process imported.
CLI = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('imported:', *sorted({m.split('.')[0] for m in sys.modules}), file=sys.stderr))\n"
    "from dashboard.cli import main\n"
    "main()\n"
)
MODEL_LIBRARIES = {"sklearn", "scipy", "splink", "great_expectations", "pyspark"}
DATA_LIBRARIES = {"duckdb", "polars", "pyarrow", "sqlglot"}


def cockpit(settings: Settings, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``cockpit --config <settings' file> *args`` in a process of its own, and the packages it imported."""
    cfg = str(settings.base_dir / "cockpit.toml")
    done = subprocess.run(
        [sys.executable, "-c", CLI, "--config", cfg, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("imported: ")]
    assert lines, done.stderr[-2000:]
    return done, set(lines[-1].split()[1:])


def test_status_and_users_answer_without_the_data_libraries(small_demo: Settings) -> None:
    done, imported = cockpit(small_demo, "status")
    assert done.returncode == 0, done.stderr[-2000:]
    for source in small_demo.sources:
        assert f"{source.name} (" in done.stdout
    assert done.stdout.count("✔ ok") == len(small_demo.sources)
    assert not imported & (MODEL_LIBRARIES | DATA_LIBRARIES), sorted(imported & (MODEL_LIBRARIES | DATA_LIBRARIES))

    done, imported = cockpit(small_demo, "users", "list")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not imported & (MODEL_LIBRARIES | DATA_LIBRARIES), sorted(imported & (MODEL_LIBRARIES | DATA_LIBRARIES))


def test_a_refresh_with_nothing_changed_imports_no_model_library(small_demo: Settings) -> None:
    refresh(small_demo)  # the derived build of today (the demo's may be of the day before, made before midnight)
    built = json.loads((small_demo.data_path / "manifest.json").read_text(encoding="utf-8"))["derived"]["build_id"]
    done, imported = cockpit(small_demo, "refresh", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("unchanged since then") == len(small_demo.sources), done.stdout
    assert not imported & MODEL_LIBRARIES, sorted(imported & MODEL_LIBRARIES)
    derived = json.loads((small_demo.data_path / "manifest.json").read_text(encoding="utf-8"))["derived"]
    assert derived["build_id"] != built  # a new build, published
    assert "churn" in derived["reused"], derived["reused"]  # which kept churn's tables: no model to load
