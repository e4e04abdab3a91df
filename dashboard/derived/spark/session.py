"""The Spark session a derived build runs on: the environment pyspark needs, a master checked before any
work starts, and errors a person can act on (which key, which host) instead of a JVM stack."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dashboard.core.config import Settings, export_environment
from dashboard.core.errors import CockpitError, ConfigError

# Spark's own defaults where ours differ: the cockpit's timestamps are naive (Parquet's "not adjusted to
# UTC"), written back as microseconds like DuckDB's and polars', never INT96; no web UI unless asked.
# Adaptive execution (Spark's default since 3.2) is stated, not assumed: it merges a shuffle's small
# partitions and turns a join whose side proves small into a broadcast, which is what keeps the steps'
# many small shuffles cheap. Every one of these, and of the local ones below, yields to [engine.conf].
DEFAULTS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
}
# With master local[...] the cockpit's own JVM is the driver and the only executor, and a build is many short
# jobs over small tables: there the JVM spent 44 % of its CPU compiling Spark's own code (the JIT's second
# tier, for code that never runs long enough to repay it; docs/benchmarks.md "Spark", session settings).
# So on one machine: the JIT's quick tier only, the throughput collector, a heap of a quarter of the
# machine's memory (Spark's 1 GB is a driver's that only plans; this one holds every task's data too, and
# 2 GB ran out in standardize at the large demo), and a shuffle into a few partitions per core (Spark's 200
# are mostly task overhead). A cluster keeps Spark's own: its executors are other JVMs, sized in
# [engine.conf]. The quick tier alone leaves the JVM the 48 MB code cache of a quick-only JIT, and Spark
# compiles classes for every query: the large build filled it at the end of identity (the JIT off for the rest
# of the build), a medium one took 96-99 % of it (the JVM evicting compiled code to make room) and 60-62 MB of
# a larger one, whose JVM then spent a tenth less CPU (229-240 -> 202-213 CPU-s) and no more memory. So 256 MB:
# address space reserved, resident only as used (docs/benchmarks.md "The local JVM's code cache").
LOCAL_JAVA_OPTIONS = "-XX:+UseParallelGC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m"
# warn, less the eight lines Splink's Spark linker causes on every build: its Java functions registered again
# ("The function ... replaced a previously registered function"), and the two dozen of its connected components
# on identity's clusters: an iteration's empty table read back ("All paths were ignored")
_LOG4J = """rootLogger.level = warn
rootLogger.appenderRef.stdout.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
logger.native.name = org.apache.hadoop.util.NativeCodeLoader
logger.native.level = error
logger.functions.name = org.apache.spark.sql.catalyst.analysis.SimpleFunctionRegistry
logger.functions.level = error
logger.datasource.name = org.apache.spark.sql.execution.datasources.DataSource
logger.datasource.level = error
"""


class EngineError(CockpitError):
    """The Spark engine could not run the build: the refresh fails as a failed source does (exit 3), and
    the manifest, with the last good snapshots and build, stays as it was."""

    exit_code = 3


def spark_home() -> Path:
    """The Spark the pyspark package carries (bin/spark-class, jars/), or a ConfigError naming the extra."""
    try:
        import pyspark
    except ImportError:
        raise ConfigError(
            "engine.kind = 'spark' needs pyspark: install the spark extra (pip install -e '.[spark]')"
        ) from None
    return Path(pyspark.__file__).parent


def spark_environment(settings: Settings) -> dict[str, str]:
    """The variables pyspark's launcher reads: its own SPARK_HOME, this Python for the workers, a conf
    folder whose log4j2.properties keeps Spark's INFO lines off the terminal, and the loopback address
    for a master on this machine (otherwise Spark picks a non-loopback one)."""
    conf_dir = settings.data_path / ".spark" / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "log4j2.properties").write_text(_LOG4J, encoding="utf-8")
    # the Python an executor starts for the rows the driver hands Spark (createDataFrame of a list runs a
    # Python worker): this one on this machine; on a cluster the executors' own, named in [engine.conf]
    python = str(settings.engine.conf.get("spark.pyspark.python") or sys.executable)
    out = {"SPARK_HOME": str(spark_home()), "PYSPARK_PYTHON": python, "SPARK_CONF_DIR": str(conf_dir)}
    if is_loopback(settings.engine.master):
        out["SPARK_LOCAL_IP"] = "127.0.0.1"
    return out


def is_loopback(master: str) -> bool:
    hosts = standalone_hosts(master)
    return master.startswith("local") or (bool(hosts) and all(h in ("127.0.0.1", "localhost") for h, _ in hosts))


def standalone_hosts(master: str) -> list[tuple[str, int]]:
    """spark://a:7077,b:7077 → [(a, 7077), (b, 7077)]; other masters → []."""
    if not master.startswith("spark://"):
        return []
    out = []
    for part in master.removeprefix("spark://").split(","):
        host, _, port = part.rpartition(":")
        out.append((host or part, int(port) if port.isdigit() else 7077))
    return out


def check_master(master: str, timeout: float = 5.0) -> None:
    """A standalone master nobody answers at is an EngineError naming it, before a JVM starts (Spark itself
    retries for a minute, then stops the context under a job that never returns)."""
    hosts = standalone_hosts(master)
    errors = []
    for host, port in hosts:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return
        except OSError as e:
            errors.append(f"{host}:{port}: {e.strerror or e}")
    if hosts:
        raise EngineError(f"the Spark master {master} ([engine] master) cannot be reached: {'; '.join(errors)}")


def build_session(settings: Settings, extra: dict[str, str] | None = None) -> Any:
    """A started SparkSession for ``settings.engine`` (DEFAULTS, then [engine.conf], then ``extra``)."""
    engine = settings.engine
    check_master(engine.master)
    export_environment(spark_environment(settings))
    from pyspark.errors import PySparkException
    from pyspark.sql import SparkSession

    logging.getLogger("py4j").setLevel(logging.ERROR)
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)  # a JSON stack per failed query
    builder = SparkSession.builder.master(engine.master).appName(engine.app_name)
    conf = session_conf(engine.master, {k: _text(v) for k, v in engine.conf.items()}, extra)
    conf["spark.jars"] = ",".join(j for j in (conf.get("spark.jars"), splink_jar()) if j)
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        return builder.getOrCreate()
    except (PySparkException, OSError) as e:
        raise EngineError(f"Spark could not start for [engine] master = {engine.master!r}: {first_line(e)}") from None


def session_conf(master: str, conf: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    """The settings a session for ``master`` starts with: DEFAULTS, then the local ones (local_defaults),
    then [engine.conf] (``conf``), then ``extra``: a setting the operator gives always wins."""
    return {**DEFAULTS, **local_defaults(master), **conf, **(extra or {})}


def local_defaults(master: str) -> dict[str, str]:
    """On this machine: shuffle partitions for its cores (a standalone master on 127.0.0.1 too, its workers
    sharing these cores); the JVM settings only for local[...], where the driver's JVM does the work."""
    if not is_loopback(master):
        return {}
    cores = local_cores(master) or os.cpu_count() or 1
    out = {"spark.sql.shuffle.partitions": str(4 * cores)}
    if master.startswith("local"):
        out |= {"spark.driver.memory": local_driver_memory(), "spark.driver.extraJavaOptions": LOCAL_JAVA_OPTIONS}
    return out


def local_driver_memory() -> str:
    """A quarter of this machine's memory in whole GB, at least 2 GB (2 where the machine will not say)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # no sysconf names on this system
        return "2g"
    return f"{max(2, round(total / 4 / 2**30))}g"


def local_cores(master: str) -> int | None:
    """The task slots of a local master: local → 1, local[N] and local[N, retries] → N; local[*] and other
    masters → None (as many as the machine has, or the cluster's)."""
    if master == "local":
        return 1
    match = re.fullmatch(r"local\[(\d+)(,\s*\d+)?\]", master)
    return int(match.group(1)) if match else None


def splink_jar() -> str:
    """The jar of string similarity functions Splink ships (jaro_winkler, which identity's comparisons use):
    Splink's Spark linker needs it on the driver and every executor, so it is in spark.jars from the start."""
    from splink.internals.spark.jar_location import similarity_jar_location

    return str(similarity_jar_location())


def run_within(spark: Any, work: Callable[[], None], timeout: float, late: str, failed: str) -> None:
    """``work`` (Spark jobs) on a thread of its own: an error is an EngineError saying ``failed``, and past
    ``timeout`` seconds its jobs are cancelled and the EngineError says ``late``. A cluster that lost its
    workers does not fail a job, it waits for executors forever; an unattended refresh must not."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
            outcome.append(None)
        except Exception as e:  # reported below, on the caller's thread
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        spark.sparkContext.cancelAllJobs()
        worker.join(30)  # the cancelled job's error, before the session stops under it
        raise EngineError(late)
    if outcome[0] is not None:
        raise EngineError(f"{failed}: {jvm_ended(spark) or first_line(outcome[0])}")


def jvm_ended(spark: Any) -> str | None:
    """How the JVM this process started for Spark ended, if it has: a killed JVM otherwise surfaces as
    "Connection refused" from the gateway, which names neither the JVM nor memory."""
    proc: Any = getattr(getattr(spark.sparkContext, "_gateway", None), "proc", None)
    code = proc.poll() if proc is not None else None
    if code is None:
        return None
    if code < 0:
        cause = ", as the system does to a process when the machine runs out of memory" if code == -9 else ""
        return f"the Spark driver's JVM (pid {proc.pid}) was killed by signal {-code}{cause}"
    return f"the Spark driver's JVM (pid {proc.pid}) ended with exit status {code}"


def probe(spark: Any, master: str, timeout: float) -> None:
    """Run one tiny job: a cluster with no worker (or none with room) accepts an application and then never
    runs it; past ``timeout`` seconds that is an EngineError, the jobs cancelled."""
    run_within(
        spark,
        lambda: spark.range(1).count(),
        timeout,
        f"the Spark cluster at {master} ran no job within {timeout:g} s "
        "([engine] connect_timeout_seconds): no worker has free cores or memory for the application",
        f"the Spark cluster at {master} failed a test job",
    )


@contextmanager
def spark_session(settings: Settings) -> Iterator[Any]:
    """A session checked by a test job, stopped on leaving (however the build ends), its JVM with it."""
    spark = build_session(settings)
    try:
        probe(spark, settings.engine.master, settings.engine.connect_timeout_seconds)
        yield spark
    finally:
        stop_session(spark)


def stop_session(spark: Any) -> None:
    """Stop ``spark`` and end the JVM pyspark started for it in this process. ``spark.stop()`` alone keeps that
    JVM for the next session, with all the memory its heap grew to: a refresh stops its sources' session before
    the derived build starts its own in a child process, so at the large demo the sources' idle JVM held ~3 GB
    beside the build's, and a long-lived process (cockpit serve's scheduled refreshes) kept one for good. The
    next session in this process starts a new JVM (a second or two on this machine)."""
    from pyspark import SparkContext

    spark.stop()
    with SparkContext._lock:
        gateway, SparkContext._gateway, SparkContext._jvm = SparkContext._gateway, None, None
    proc: Any = getattr(gateway, "proc", None)
    if gateway is None:
        return
    gateway.shutdown()
    if proc is None:  # a gateway pyspark did not start (PYSPARK_GATEWAY_PORT): not ours to end
        return
    if proc.stdin is not None:
        proc.stdin.close()  # Spark's gateway server exits when its stdin closes
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


def _text(value: str | int | float | bool) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
