"""A worker of a real standalone cluster lost while ``cockpit refresh`` runs its derived build's Spark jobs: the
worker and its executor are killed (SIGKILL) while a task of identity's Spark jobs runs on that executor, Spark runs
what was lost again on the other worker, the refresh exits 0, and the published numbers are the undisturbed
refresh's (every named query of the cockpit and channel pages, identity's links up to key naming, golden records,
churn's ranks, as tests/test_spark_cluster.py compares them).

The refresh is the derived build alone (the sources count as unchanged), every step made on the cluster (a build
made with other [engine] settings shares no step). Churn scores with the undisturbed refresh's own fit, pinned
([churn] model, as `cockpit churn export-fit` writes it): the worker is lost in identity's jobs, and churn's Spark
fit (its backtest and final fit: most of churn's jobs) is not what is tested here (tests/test_spark_cluster.py
compares the cluster's fit with DuckDB's). Churn's features, scores, ranks and card are still made on the
cluster from the disturbed build's links, and compared."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.dbserver import free_port
from tests.sparkcluster import Cluster, shared_standalone, spark_home
from tests.test_spark_cluster import (
    PAGE_QUERIES,
    QUICK_JVM,
    SPARK_STEP_TABLES,
    _by_members,
    _frame,
    _groups,
    _made_before_reuse,
    _pin_churn,
    _read_with,
    _table,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark_cluster")]  # beside the other standalone clusters
# the step whose Spark jobs lose the worker: identity (records and features, Splink's blocking and scoring, the
# clusters' connected components and the keys: most of the build's jobs, Splink's tables checkpointed between them)
STEP = "deriving: identity resolution"
WAIT_SECONDS = 300


def _rest(ui: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui}/api/v1/applications{path}", timeout=5) as r:
        return json.load(r)


def _lose_a_worker_mid_job(cluster: Cluster, ui: int, started: threading.Event, seen: dict[str, Any]) -> None:
    """Once the refresh reached STEP: wait until the build's application runs a task on worker 0's executor while
    worker 1 runs one of its executors too, then lose worker 0 (SIGKILL: it, its executor, their Python workers).
    What was running then goes into ``seen``."""
    if not started.wait(WAIT_SECONDS):
        return
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            [app] = _rest(ui, "")
            mine = {str(e["id"]) for e in cluster.executors(0) if e.get("appid") == app["id"]}
            theirs = [e for e in cluster.executors(1) if e.get("appid") == app["id"]]
            busy = [e for e in _rest(ui, f"/{app['id']}/executors") if e["id"] in mine and e["activeTasks"] > 0]
            running = _rest(ui, f"/{app['id']}/jobs?status=running")
        except (OSError, ValueError):  # the build's application not started yet, or its UI not up
            busy, theirs, running = [], [], []
        if busy and theirs and running:
            seen["killed"] = cluster.lose_worker(0)
            seen["jobs"] = [j["jobId"] for j in running]
            seen["tasks"] = busy[0]["activeTasks"]
            return
        time.sleep(0.05)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds a worker's executors in /proc (Linux)")
def test_a_worker_lost_during_a_refresh_is_retried_and_the_numbers_are_the_same(
    small_demo: Settings, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    spark_home()  # skips (fails in CI) without pyspark or Java
    root = tmp_path / "company"
    shutil.copytree(small_demo.base_dir, root, symlinks=True)
    _pin_churn(small_demo, root)
    ui = free_port()  # the build's driver UI: its REST API tells which executor runs a task
    # two workers alive (the group's two-worker cluster); worker 0 is lost below, test_spark_faults starts it again
    cluster = shared_standalone(pytestconfig)
    conf = {**QUICK_JVM, "spark.ui.enabled": "true", "spark.ui.port": str(ui)}
    with (root / "cockpit.toml").open("a", encoding="utf-8") as f:
        f.write(f'\n[engine]\nkind = "spark"\nmaster = "{cluster.master}"\n[engine.conf]\n')
        f.write("".join(f'"{key}" = "{value}"\n' for key, value in conf.items()))
    settings = load_settings(root / "cockpit.toml")
    _made_before_reuse(settings)  # every derived step made again, on the cluster
    _read_with(settings)  # the sources count as unchanged: the refresh is the derived build alone
    before = Store(settings.data_path).read_manifest()["derived"]["build_id"]
    started, seen, err = threading.Event(), dict[str, Any](), list[str]()
    killer = threading.Thread(target=_lose_a_worker_mid_job, args=(cluster, ui, started, seen), daemon=True)
    killer.start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "--config", str(root / "cockpit.toml"), "refresh"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None and proc.stdout is not None
    watchdog = threading.Timer(2 * WAIT_SECONDS, proc.kill)  # a refresh that hangs fails the test, not the run
    watchdog.start()
    for line in proc.stderr:  # the progress lines, one as each step starts and ends
        err.append(line)
        if STEP in line:
            started.set()
    out = proc.stdout.read()
    code = proc.wait(WAIT_SECONDS)
    watchdog.cancel()
    killer.join(10)
    started.set()
    alive = cluster.status()["aliveworkers"]
    assert code == 0, "".join(err[-30:])
    assert "Traceback" not in "".join(err)
    assert seen.get("killed"), "the worker was never lost mid-job: " + "".join(err[-30:])
    assert seen["tasks"] > 0 and seen["jobs"]  # a task of the build ran on it when it was lost
    assert alive == 1
    assert "unchanged since then" in out  # no source read again: the build alone
    manifest = Store(settings.data_path).read_manifest()
    assert manifest["derived"]["build_id"] != before
    assert manifest["derived"]["reused"] == []
    assert not list((settings.data_path / "staging").rglob("*.parquet"))  # nothing left half-written
    assert manifest["derived"]["churn_fit"]["pinned"]  # churn scored with the pinned fit, none made
    # the published numbers: the undisturbed (DuckDB engine's) refresh's (one Warehouse each: its views made once)
    served = [Warehouse(small_demo), Warehouse(settings)]
    try:
        for name in PAGE_QUERIES:
            want, got = (w.run_query(name, {}, user=SYSTEM) for w in served)
            assert want.height > 0 and _frame(got).equals(_frame(want)), (name, got, want)
    finally:
        for warehouse in served:
            warehouse.close()
    want_links, got_links = _groups(_table(small_demo, "identity_links")), _groups(_table(settings, "identity_links"))
    assert len(want_links) > 100 and set(got_links.values()) == set(want_links.values())
    for table in SPARK_STEP_TABLES:
        assert _frame(_by_members(settings, table)).equals(_frame(_by_members(small_demo, table))), table

    def ranked(s: Settings) -> list[tuple[int, frozenset[tuple[str, str]], float]]:
        members = _groups(_table(s, "identity_links"))
        scores = _table(s, "churn_scores").sort("rank")
        return [(r, members[k], round(risk, 9)) for r, k, risk in scores.select("rank", "customer_key", "risk").rows()]

    assert ranked(settings) == ranked(small_demo)
