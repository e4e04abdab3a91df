"""Is the server still serving? Every page run is counted in and out; a run stuck past STALL_SECONDS
while no other run finishes makes the server unhealthy: ``/healthz`` (dashboard/server.py) answers
503 and systemd's watchdog stops being fed, so a load balancer or systemd restarts a stuck server.

A server whose Python threads cannot run at all (a deadlock on the GIL) answers nothing and feeds
nothing, which the same two checks catch as a time-out.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from dashboard.core.config import NOTIFY_SOCKET_ENV, WATCHDOG_USEC_ENV, env

STALL_SECONDS = 120.0  # a page run longer than this, with no other run finishing meanwhile, is stuck


@dataclass(frozen=True)
class Health:
    healthy: bool
    in_flight: int  # page runs under way now
    oldest_seconds: float  # how long the oldest of them has been running
    since_finished_seconds: float  # since any run last finished (or the process started)
    finished: int  # runs finished since the process started

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


class Progress:
    """The runs of one process: started, finished, and when each began."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._running: dict[int, float] = {}
        self._last_finished = clock()
        self._finished = 0

    @contextmanager
    def run(self) -> Iterator[None]:
        """Around one page run; a run that ends in an exception (st.stop, a rerun, an error) ends too."""
        run_id = next(self._ids)
        with self._lock:
            self._running[run_id] = self._clock()
        try:
            yield
        finally:
            with self._lock:
                del self._running[run_id]
                self._last_finished = self._clock()
                self._finished += 1

    def health(self, stall_seconds: float = STALL_SECONDS) -> Health:
        with self._lock:
            now = self._clock()
            oldest = now - min(self._running.values()) if self._running else 0.0
            since = now - self._last_finished
            stuck = oldest > stall_seconds and since > stall_seconds
            return Health(not stuck, len(self._running), round(oldest, 1), round(since, 1), self._finished)


PROGRESS = Progress()  # this process's page runs


def _notify(message: str) -> bool:
    """Send ``message`` to systemd (sd_notify); False when not run by systemd with a notify socket."""
    path = env(NOTIFY_SOCKET_ENV)
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path  # an abstract socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(address)
        s.sendall(message.encode())
    return True


def feed_systemd(progress: Progress = PROGRESS, stop: threading.Event | None = None) -> threading.Thread | None:
    """Tell systemd the server is ready, then feed its watchdog (WatchdogSec=) at half the interval for
    as long as ``progress`` is healthy. None when systemd asked for no watchdog."""
    _notify("READY=1")
    usec = env(WATCHDOG_USEC_ENV)
    if not usec or not usec.isdigit():
        return None
    interval = int(usec) / 1e6 / 2
    stopped = stop or threading.Event()

    def feed() -> None:
        while not stopped.wait(interval):
            if progress.health().healthy:
                _notify("WATCHDOG=1")

    thread = threading.Thread(target=feed, name="cockpit-watchdog", daemon=True)
    thread.start()
    return thread
