"""The settings a Spark session starts with: on one machine (local[...]) a heap, a garbage collector, a JIT
tier and shuffle partitions for short jobs over small tables; on a cluster Spark's own; and whatever
[engine.conf] says wins over both."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dashboard.core.config import parse_settings
from dashboard.derived.spark.session import (
    DEFAULTS,
    local_cores,
    local_driver_memory,
    session_conf,
    spark_environment,
)
from tests.sparkcluster import spark_home

# twice what a medium build's JVM used of a larger code cache at most (60-62 MB): the quick tier's own 48 MB filled
# at large (derived/spark/session.py)
CODE_CACHE_MB = 128


def code_cache_mb(options: list[str]) -> int:
    """The code cache JVM options reserve, in MB; 0 when they leave the JVM's own (48 MB with the quick tier)."""
    sizes = [m for m in (re.fullmatch(r"-XX:ReservedCodeCacheSize=(\d+)([mMgG])", o) for o in options) if m]
    if not sizes:
        return 0
    number, unit = sizes[-1].groups()
    return int(number) * (1024 if unit in "gG" else 1)


@pytest.mark.parametrize(
    ("master", "cores"),
    [("local", 1), ("local[2]", 2), ("local[16]", 16), ("local[4, 3]", 4), ("local[*]", None), ("yarn", None)],
)
def test_a_local_masters_task_slots_are_read_from_it(master: str, cores: int | None) -> None:
    assert local_cores(master) == cores


def test_one_machine_gets_partitions_for_its_cores_and_a_jvm_for_short_jobs() -> None:
    conf = session_conf("local[2]", {})
    assert conf["spark.sql.shuffle.partitions"] == "8"  # not Spark's 200 tasks per shuffle
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    heap = int(conf["spark.driver.memory"].removesuffix("g"))  # whole GB
    assert heap == max(2, round(machine / 4)), (heap, machine)  # a quarter of the machine, not Spark's 1 GB
    options = conf["spark.driver.extraJavaOptions"].split()
    assert "-XX:TieredStopAtLevel=1" in options
    assert code_cache_mb(options) >= CODE_CACHE_MB, options
    assert conf["spark.sql.adaptive.enabled"] == "true"
    assert session_conf("local[3]", {})["spark.sql.shuffle.partitions"] == "12"


def test_a_cluster_keeps_sparks_own_sizes() -> None:
    for master in ("yarn", "k8s://https://k8s.internal:6443", "spark://spark-master.internal:7077"):
        conf = session_conf(master, {})
        assert conf == DEFAULTS, master  # no partitions, driver heap or JVM options of ours
    # a standalone cluster on this machine: its workers share these cores, but run in JVMs of their own
    local_cluster = session_conf("spark://127.0.0.1:7077", {})
    assert "spark.sql.shuffle.partitions" in local_cluster
    assert "spark.driver.extraJavaOptions" not in local_cluster


def test_the_operators_settings_win() -> None:
    mine = {"spark.driver.memory": "6g", "spark.sql.shuffle.partitions": "3", "spark.sql.adaptive.enabled": "false"}
    conf = session_conf("local[2]", mine, {"spark.sql.shuffle.partitions": "5"})
    assert conf["spark.driver.memory"] == "6g"
    assert conf["spark.sql.adaptive.enabled"] == "false"
    assert conf["spark.sql.shuffle.partitions"] == "5"  # a caller's extra (a benchmark's --conf) last


def test_the_executors_python_is_this_one_unless_engine_conf_names_theirs(tmp_path: Path) -> None:
    spark_home()  # skips (fails in CI) without pyspark or Java

    def python(conf: dict[str, str]) -> str:
        raw = {"data_dir": str(tmp_path / "data"), "engine": {"kind": "spark", "master": "yarn", "conf": conf}}
        return spark_environment(parse_settings(raw, tmp_path))["PYSPARK_PYTHON"]

    assert python({}) == sys.executable
    assert python({"spark.pyspark.python": "/opt/python3.11/bin/python3"}) == "/opt/python3.11/bin/python3"


_SEEN = """
def seen(spark):
    jvm = spark.sparkContext._jvm
    runtime = jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    return {
        "max_heap_mb": jvm.java.lang.Runtime.getRuntime().maxMemory() // 2**20,
        "jvm_args": list(runtime.getInputArguments()),
        "code_cache_mb": sum(
            p.getUsage().getMax() for p in jvm.java.lang.management.ManagementFactory.getMemoryPoolMXBeans()
            if p.getName().startswith(("CodeCache", "CodeHeap"))
        ) // 2**20,
        "partitions": spark.conf.get("spark.sql.shuffle.partitions"),
    }
"""

_PROBE = """
import json, sys
from pathlib import Path
from dashboard.core.config import parse_settings
from dashboard.derived.spark.session import build_session

root = Path(sys.argv[1])
settings = parse_settings(json.loads(sys.argv[2]), root)
spark = build_session(settings)
print(json.dumps(seen(spark)))
spark.stop()
"""

# The sources' session's whole life on local[1] in one Python process (its JVM's settings; released, its JVM ended;
# started again on a new JVM, which is then killed): three tests' observations from one process and two JVMs, where
# a process for each test took three processes and four JVMs (each importing the engine, starting a JVM, a job)
_LIFE = """
import json, os, signal, sys
from pathlib import Path
from dashboard.core.config import parse_settings
from dashboard.derived.spark import standardize
from dashboard.derived.spark.session import EngineError, run_within
from dashboard.derived.spark.standardize import release, session

settings = parse_settings(json.loads(sys.argv[2]), Path(sys.argv[1]))
first = session(settings)
ours = seen(first)
jvm = first.sparkContext._gateway.proc
release()
ended = jvm.poll()
refused = {}


def no_job(spark, master, timeout):  # a cluster that accepts the application and never runs its test job
    refused["jvm"] = spark.sparkContext._gateway.proc
    raise EngineError("the Spark cluster ran no job")


standardize.probe, probe = no_job, standardize.probe
try:
    session(settings)
except EngineError:
    refused["ended_with"] = refused.pop("jvm").poll()
standardize.probe = probe
second = session(settings)
proc = second.sparkContext._gateway.proc
released = {
    "first_jvm_ended_with": ended,
    "refused_jvm_ended_with": refused.get("ended_with", "no EngineError"),
    "new_jvm": proc.pid != jvm.pid,
    "rows": second.range(7).count(),
}
os.kill(proc.pid, signal.SIGKILL)
proc.wait(60)
try:
    run_within(second, lambda: second.range(10).count(), 60, "late", "the Spark job for golden_values failed")
except EngineError as e:
    killed = {"message": e.message, "exit_code": e.exit_code}
print(json.dumps({"ours": ours, "released": released, "killed": killed}))
"""
LOCAL_1 = {"kind": "spark", "master": "local[1]"}


@pytest.fixture(scope="module")
def life(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """_LIFE's observations, in a Python process of its own: a process starts one JVM at a time, whose heap and
    options the first session fixes, so a session started before in this one would decide what it sees."""
    spark_home()  # skips (fails in CI) without pyspark or Java
    root = tmp_path_factory.mktemp("spark_life")
    seen: dict[str, Any] = _in_own_process(root, _LIFE, {"data_dir": str(root / "data"), "engine": LOCAL_1})
    return seen


@pytest.mark.slow
@pytest.mark.xdist_group("spark")
def test_a_local_session_runs_with_them_and_engine_conf_overrides_them(tmp_path: Path, life: dict[str, Any]) -> None:
    """Each in a process of its own (life's, and one with [engine.conf]'s): a Python process starts one JVM, whose
    heap and options the first session fixes, so a session started before in the same process would decide what
    this one sees."""
    ours = life["ours"]
    heap_mb = int(local_driver_memory().removesuffix("g")) * 1024
    assert 0.8 * heap_mb < ours["max_heap_mb"] <= heap_mb  # the heap asked for, less what the JVM keeps for itself
    assert "-XX:TieredStopAtLevel=1" in ours["jvm_args"]
    assert ours["code_cache_mb"] >= CODE_CACHE_MB  # the JVM's own with the quick tier alone: 48
    assert ours["partitions"] == "4"
    conf = {"spark.driver.memory": "1g", "spark.driver.extraJavaOptions": "-XX:+UseSerialGC"}
    theirs = _in_own_process(
        tmp_path, _PROBE, {"data_dir": str(tmp_path / "data"), "engine": {**LOCAL_1, "conf": conf}}
    )
    assert theirs["max_heap_mb"] <= 1024
    assert "-XX:+UseSerialGC" in theirs["jvm_args"]
    assert "-XX:TieredStopAtLevel=1" not in theirs["jvm_args"]


@pytest.mark.slow
@pytest.mark.xdist_group("spark")
def test_a_killed_jvm_is_named_not_a_refused_connection(life: dict[str, Any]) -> None:
    """The system's out-of-memory killer takes the largest process, often Spark's JVM on a shared machine;
    the refresh then says so, where before it said "[Errno 111] Connection refused". (_LIFE: the JVM of a session
    that ran a job, killed with SIGKILL, then a job asked of it.)"""
    failed = life["killed"]
    assert failed["message"].startswith("the Spark job for golden_values failed: the Spark driver's JVM (pid ")
    killed = "was killed by signal 9, as the system does to a process when the machine runs out of memory"
    assert killed in failed["message"]
    assert failed["exit_code"] == 3  # as a source that cannot be read


@pytest.mark.slow
@pytest.mark.xdist_group("spark")
def test_releasing_the_sources_session_ends_its_jvm_and_a_later_refresh_starts_another(life: dict[str, Any]) -> None:
    """A stopped session keeps pyspark's JVM and the memory its heap grew to; the refresh releases its sources'
    session before the derived build starts its own in a child process, so that JVM must end there."""
    seen = life["released"]
    assert seen["first_jvm_ended_with"] == 0  # its gateway server's own exit, not a kill
    # a session whose test job never ran (a cluster with no free worker) ends its JVM too: cockpit serve's
    # scheduled refreshes kept one each time before
    assert seen["refused_jvm_ended_with"] == 0
    assert seen["new_jvm"] is True
    assert seen["rows"] == 7


def _in_own_process(tmp_path: Path, script: str, raw: dict[str, Any]) -> Any:
    """``script`` run by a Python process of its own (a script, not python -c: DEPENDENCY_NOTES, GX's import
    trap) with the folder and the settings ``raw``; what its last line printed, as JSON."""
    path = tmp_path / "probe.py"
    path.write_text(textwrap.dedent(_SEEN) + textwrap.dedent(script), encoding="utf-8")
    out = subprocess.run(
        [sys.executable, str(path), str(tmp_path), json.dumps(raw)], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])
