"""A real Spark standalone cluster for the engine tests: a master and one worker on 127.0.0.1, started
from the pyspark package's own ``bin/spark-class`` (pip's pyspark has no start-master.sh) in a temporary
folder, on free ports, stopped (their own process ids) and removed when the tests end.

A worker can be lost as a machine is (``Cluster.lose_worker``: it and its executors killed at once).

Without pyspark (the spark extra) or Java the tests skip with a message; in CI (the ``CI`` environment
variable is set) they fail instead (``make test`` installs both).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from tests.cpu_record import process_tree
from tests.dbserver import free_port

READY_SECONDS = 180  # the machine is shared: a JVM can take a minute to come up


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the Spark engine tests (make test installs the spark extra and Java)")
    pytest.skip(f"{reason}: Spark engine tests skipped (make spark installs pyspark and openjdk-17-jre-headless)")


def spark_home() -> Path:
    """The pyspark package's folder, or skip (fail in CI) without pyspark or Java."""
    try:
        import pyspark
    except ImportError:
        unavailable("pyspark is not installed")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        unavailable("no Java (java on PATH or JAVA_HOME)")
    return Path(pyspark.__file__).parent


# A JVM kept for the next module only while it holds less than this: on the small demo a local JVM's heap grows to
# its limit (a quarter of the machine), and one kept that large through the rest of the Spark modules beside the
# browser and cluster tests was what the kernel killed when memory ran out
KEEP_JVM_BELOW = 2 * 2**30


def stop_keeping_jvm(spark: Any = None, below: int | None = KEEP_JVM_BELOW) -> None:
    """The end of a test module's Spark work: ``spark``'s context and the sources' session the engine holds
    (derived.spark.standardize) are stopped, and this process's JVM is kept for the next module's session while
    it is alive and holds less than ``below`` bytes (None: whatever it holds, as ``spark.stop()`` keeps it);
    otherwise it is ended as release_engine and stop_session end it. On a running JVM a new context starts in a
    second or two; a JVM's start and the compiling of its first jobs cost tens of seconds (40 s + 12 s at load 16),
    and make test runs a dozen Spark modules on one worker."""
    from pyspark import SparkContext

    from dashboard.derived.spark import standardize
    from dashboard.derived.spark.session import stop_session

    sessions = [*standardize._held.values(), *([spark] if spark is not None else [])]
    standardize._held.clear()
    for session in sessions:
        session.stop()
    jvm = getattr(SparkContext._gateway, "proc", None)
    too_big = below is not None and jvm is not None and _resident(jvm.pid) >= below
    if sessions and jvm is not None and (jvm.poll() is not None or too_big):
        stop_session(sessions[0])  # its context stopped above; the gateway and the JVM ended here


def _resident(pid: int) -> int:
    """Bytes of memory process ``pid`` holds (where the system will not say: as if over any limit)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 2**63


@dataclass
class Cluster:
    master: str  # spark://127.0.0.1:<port>
    ui: str  # the master's JSON status page
    folder: Path
    processes: list[subprocess.Popen[bytes]]  # the master's JVM, then each worker's
    worker_uis: list[str] = field(default_factory=list)  # each worker's JSON status page, in workers' order
    env: dict[str, str] = field(default_factory=dict)  # the daemons' environment (_environment)
    logs: list[IO[bytes]] = field(default_factory=list)  # the daemons' log files, closed when the cluster stops

    @property
    def workers(self) -> list[subprocess.Popen[bytes]]:
        return self.processes[1:]

    def status(self) -> dict[str, object]:
        return _json(self.ui)

    def executors(self, worker: int) -> list[dict[str, Any]]:
        """The executors worker ``worker`` runs now (each with its ``id`` and ``appid``)."""
        return list(_json(self.worker_uis[worker]).get("executors") or [])

    def lose_worker(self, worker: int) -> list[int]:
        """Worker ``worker`` lost as a machine is: its JVM, its executors' JVMs and their Python workers killed at
        once (SIGKILL, by the process ids under the worker's, all started here). Returns the ids killed."""
        pids = process_tree(self.workers[worker].pid)
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.workers[worker].wait(30)
        return pids

    def restart_lost_workers(self) -> None:
        """Every worker lost or killed before started again, on new ports; returns once the master counts every
        worker alive."""
        for i, worker in enumerate(self.workers):
            if worker.poll() is not None:
                self.processes[1 + i], self.worker_uis[i] = _worker(self)
        _wait(self, len(self.workers))


def _json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return dict(json.load(r))


def _environment(home: Path, folder: Path) -> dict[str, str]:
    conf = folder / "conf"
    conf.mkdir()
    (conf / "log4j2.properties").write_text(
        "rootLogger.level = warn\nrootLogger.appenderRef.stdout.ref = console\n"
        "appender.console.type = Console\nappender.console.name = console\n"
        "appender.console.layout.type = PatternLayout\nappender.console.layout.pattern = %d %p %c{1}: %m%n\n",
        encoding="utf-8",
    )
    return {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_CONF_DIR": str(conf),
        "SPARK_WORKER_DIR": str(folder / "work"),
        "SPARK_LOG_DIR": str(folder / "logs"),
        # the master's and workers' JVMs (not the executors: QUICK_JVM) with the JIT's quick tier and one GC
        # thread: they start, schedule and wait; a master and a worker idle for 60 s took 12.3 CPU-s with the
        # JVM's defaults and 6.3 with these (session 30)
        "SPARK_DAEMON_JAVA_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
    }


@contextmanager
def standalone(workers: int = 1) -> Iterator[Cluster]:
    """A master and ``workers`` workers (1 core, 2 GB each) on loopback; yields once the master counts them."""
    home = spark_home()
    folder = Path(tempfile.mkdtemp(prefix="cockpit-spark-"))
    env = _environment(home, folder)
    port, ui_port = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    logs = [(folder / "master.log").open("wb")]
    processes = [
        subprocess.Popen(
            [str(home / "bin" / "spark-class"), "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(ui_port)],
            env=env, stdout=logs[0], stderr=subprocess.STDOUT, start_new_session=True,
        )
    ]  # fmt: skip
    cluster = Cluster(master, f"http://127.0.0.1:{ui_port}/json/", folder, processes, env=env, logs=logs)
    try:
        for _ in range(workers):
            process, worker_ui = _worker(cluster)
            processes.append(process)
            cluster.worker_uis.append(worker_ui)
        _wait(cluster, workers)
        yield cluster
    finally:
        for p in processes:  # our own JVMs, by their process ids
            p.terminate()
        for p in processes:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
        for f in logs:
            f.close()
        shutil.rmtree(folder, ignore_errors=True)


def _worker(cluster: Cluster) -> tuple[subprocess.Popen[bytes], str]:
    """A worker (1 core, 2 GB) started for ``cluster``'s master, and its JSON status page."""
    log = (cluster.folder / f"worker{len(cluster.logs) - 1}.log").open("wb")
    cluster.logs.append(log)
    ui = free_port()
    process = subprocess.Popen(
        [str(Path(cluster.env["SPARK_HOME"]) / "bin" / "spark-class"), "org.apache.spark.deploy.worker.Worker",
         cluster.master, "--host", "127.0.0.1", "--cores", "1", "--memory", "2g", "--webui-port", str(ui)],
        env=cluster.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{ui}/json/"


_SHARED: dict[int, Cluster] = {}  # workers → the cluster shared_standalone started with as many


def shared_standalone(config: pytest.Config, workers: int = 2) -> Cluster:
    """A cluster of ``workers`` workers shared by the test modules of this process that ask for one
    (test_spark_fault_refresh, then test_spark_faults: a master's and a worker's start, ~16 CPU-s, saved): started
    at the first ask and stopped when the test session ends; a worker an earlier test lost is started again, so
    each asker finds ``workers`` workers alive. The askers end their applications before they return."""
    cluster = _SHARED.get(workers)
    if cluster is None or cluster.processes[0].poll() is not None:
        stack = ExitStack()
        cluster = _SHARED[workers] = stack.enter_context(standalone(workers))
        config.add_cleanup(stack.close)
    cluster.restart_lost_workers()
    return cluster


def _wait(cluster: Cluster, workers: int) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        for p in cluster.processes:
            if p.poll() is not None:
                log = (cluster.folder / "master.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"a Spark daemon exited with {p.returncode}: {log}")
        try:
            if int(str(cluster.status().get("aliveworkers", 0))) >= workers:
                return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the Spark cluster at {cluster.master} was not ready in {READY_SECONDS} s")
