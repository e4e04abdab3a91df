"""Workers lost mid-job on a real standalone cluster: while another worker lives, Spark runs the lost
tasks again and the job's answer is whole; when the last one goes, the job is cancelled at
``job_timeout_seconds`` and the step fails with an EngineError instead of waiting for executors forever."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dashboard.core.config import parse_settings
from dashboard.derived.spark.session import EngineError, build_session, run_within
from tests.sparkcluster import shared_standalone, spark_home

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark_cluster")]  # beside test_spark_cluster
TASKS = 16


def _slow_job(spark: Any, seconds: float, out: list[int]) -> Callable[[], None]:
    """TASKS tasks of ``seconds`` each; the sum of their numbers lands in ``out``."""

    def task(x: int) -> int:
        import time

        time.sleep(seconds)
        return x

    return lambda: out.append(spark.sparkContext.parallelize(range(TASKS), TASKS).map(task).sum())


def _when_running(spark: Any, tasks: int, then: Callable[[], None]) -> None:
    """Wait until ``tasks`` tasks run at once, then call ``then`` (the job runs on another thread)."""
    tracker = spark.sparkContext.statusTracker()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        running = 0
        for stage in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage)
            running += info.numActiveTasks if info else 0
        if running >= tasks:
            then()
            return
        time.sleep(0.2)
    raise AssertionError(f"never {tasks} tasks running at once")


def test_a_lost_worker_is_retried_and_losing_the_last_fails_cleanly(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    import threading

    spark_home()  # skips (fails in CI) without pyspark or Java
    cluster = shared_standalone(pytestconfig)  # test_spark_fault_refresh's, its lost worker started again
    # the limit only has to outlast the second job's first task starting on the executor already running
    engine = {"kind": "spark", "master": cluster.master, "job_timeout_seconds": 30}
    settings = parse_settings({"data_dir": str(tmp_path / "data"), "engine": engine}, tmp_path)
    spark = build_session(settings)
    try:
        first, second = cluster.workers
        # one worker killed while both run tasks: its tasks run again on the other
        out: list[int] = []
        killer = threading.Thread(target=_when_running, args=(spark, 2, first.kill))
        killer.start()
        run_within(spark, _slow_job(spark, 2, out), 180, "late", "failed")  # executors may still be starting
        killer.join()
        assert first.poll() is not None  # it was killed mid-job ...
        assert out == [sum(range(TASKS))]  # ... and every task's number is in the answer once
        # the last worker killed: no executor is left, the job is cancelled at the time limit
        out.clear()
        killer = threading.Thread(target=_when_running, args=(spark, 1, second.kill))
        killer.start()
        with pytest.raises(EngineError) as e:
            run_within(spark, _slow_job(spark, 5, out), settings.engine.job_timeout_seconds, "late", "failed")
        killer.join()
        assert e.value.message == "late"  # cancelled at the limit, not failed
        assert out == []
    finally:
        spark.stop()
