"""The watchdog: a stuck page run makes /healthz answer 503 and stops feeding systemd; a server that
keeps finishing runs stays healthy, and `cockpit serve`'s entry point answers /healthz for real."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from dashboard.core.config import CONFIG_ENV, NOTIFY_SOCKET_ENV, WATCHDOG_USEC_ENV, Settings
from dashboard.ops.watchdog import STALL_SECONDS, Progress, feed_systemd

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_run_stuck_past_the_limit_with_nothing_finishing_is_unhealthy() -> None:
    clock = Clock()
    progress = Progress(clock)
    assert progress.health().healthy  # idle is healthy
    stuck = progress.run()
    stuck.__enter__()
    clock.now += STALL_SECONDS - 1
    assert progress.health().healthy  # a long run is not yet a stuck one
    clock.now += 2
    health = progress.health()
    assert not health.healthy
    assert (health.in_flight, health.oldest_seconds, health.finished) == (1, STALL_SECONDS + 1, 0)
    with progress.run():  # another session's run still finishes: the server is serving
        pass
    assert progress.health().healthy
    clock.now += STALL_SECONDS + 1
    assert not progress.health().healthy  # ... until nothing has finished for as long again
    stuck.__exit__(None, None, None)
    assert progress.health().healthy
    assert progress.health().finished == 2


def test_a_run_ended_by_an_exception_counts_as_finished() -> None:
    progress = Progress(Clock())
    with pytest.raises(RuntimeError), progress.run():
        raise RuntimeError("st.stop() and reruns end a run by raising")
    assert (progress.health().in_flight, progress.health().finished) == (0, 1)


def _listen(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(5)
    return sock


def test_systemd_hears_ready_then_the_watchdog_while_healthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = _listen(tmp_path)
    monkeypatch.setenv(NOTIFY_SOCKET_ENV, str(tmp_path / "notify.sock"))
    monkeypatch.setenv(WATCHDOG_USEC_ENV, "200000")  # fed every 0.1 s
    stop = threading.Event()
    thread = feed_systemd(Progress(), stop)
    try:
        assert listener.recv(64) == b"READY=1"
        assert listener.recv(64) == b"WATCHDOG=1"
        assert listener.recv(64) == b"WATCHDOG=1"
    finally:
        stop.set()
        assert thread is not None
        thread.join(5)
        listener.close()


def test_a_stuck_server_stops_feeding_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = _listen(tmp_path)
    monkeypatch.setenv(NOTIFY_SOCKET_ENV, str(tmp_path / "notify.sock"))
    monkeypatch.setenv(WATCHDOG_USEC_ENV, "200000")
    clock = Clock()
    progress = Progress(clock)
    stuck = progress.run()
    stuck.__enter__()
    clock.now += STALL_SECONDS + 1
    stop = threading.Event()
    thread = feed_systemd(progress, stop)
    try:
        assert listener.recv(64) == b"READY=1"
        listener.settimeout(1.0)  # five feeding intervals: none may come
        with pytest.raises(TimeoutError):
            listener.recv(64)
    finally:
        stop.set()
        assert thread is not None
        thread.join(5)
        listener.close()


def test_without_systemd_nothing_is_fed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NOTIFY_SOCKET_ENV, raising=False)
    monkeypatch.delenv(WATCHDOG_USEC_ENV, raising=False)
    assert feed_systemd(Progress()) is None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_the_served_app_answers_healthz(company: Settings, tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, CONFIG_ENV: str(company.base_dir / "cockpit.toml")}
    command = [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "server.py")]
    command += ["--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"]
    command += ["--browser.gatherUsageStats", "false"]
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        body: dict[str, object] = {}
        while time.monotonic() < deadline and not body:
            assert server.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    assert response.status == 200
                    body = json.loads(response.read())
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.3)
        assert body["healthy"] is True, log.read_text(errors="replace")[-2000:]
        assert body["in_flight"] == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as response:
            assert response.read() == b"ok"  # Streamlit's own routes are all still there
    finally:
        server.terminate()
        server.wait(timeout=15)
