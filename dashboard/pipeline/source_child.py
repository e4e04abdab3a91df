"""A refresh's sources read in a process of their own (issue 22, point 2). Their frames leave memory in the
process that read them (at large 0.7-1.9 GB once they end: what the allocators keep of what they freed), which
the derived build then had to build beside, or in a child of its own that starts with less; a process that
exits gives it all back, so the build runs in the refresh's process with its whole budget.

The child gets its job over a pipe, tells each progress event (the tracker's source calls) as it happens, and
sends back its result or the error it raised (rebuilt here with its type and message, as the derived build's
child does: pipeline/derive_child.py). It dies with its parent; a kill of the child fails the refresh with
``SourcesStopped`` and publishes nothing.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from dashboard.core.errors import CockpitError
from dashboard.pipeline import derive_child
from dashboard.pipeline.derive_child import _end, _rebuilt, _stopped, start_child

_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the dashboard package


class SourcesStopped(CockpitError):
    """The sources' process ended without a result (killed, out of memory, crashed)."""


def run_apart(entry: str, job: dict[str, Any], tracker: Any) -> Any:
    """``entry`` (``module:function``, called with the job and a ``Teller``) in a new process; each call it
    makes on its teller is made on ``tracker`` here, as it happens; its return value is returned."""
    module, function = entry.split(":")
    boot = f"import sys; sys.path.insert(0, {_ROOT!r}); from {module} import {function}; {function}()"
    proc, requests, replies = start_child(boot)
    try:
        with contextlib.suppress(OSError):  # a child dead at start: its end below says so
            requests.send(job)
        requests.close()
        while True:
            try:
                kind, *body = replies.recv()
            except (EOFError, OSError):
                raise _stopped(proc, "the sources' process", SourcesStopped) from None
            if kind == "tell":
                getattr(tracker, body[0])(*body[1])
            elif kind == "done":
                return body[0]
            else:  # "error"
                raise _rebuilt(*body)
    except BaseException:
        proc.kill()  # the refresh stops (an error, an interrupt): so do the sources
        raise
    finally:
        replies.close()
        _end(proc)


class Teller:
    """The child's stand-in for the parent's tracker: each source call sent as it is made (from any lane)."""

    def __init__(self, replies: Connection) -> None:
        self._replies = replies
        self._lock = threading.Lock()

    def _tell(self, method: str, *args: Any) -> None:
        with self._lock:
            self._replies.send(("tell", method, args))

    def source_started(self, name: str) -> None:
        self._tell("source_started", name)

    def reading(self, name: str, rows: int) -> None:
        self._tell("reading", name, rows)

    def rows_read(self, name: str, rows: int, entities: list[str]) -> None:
        self._tell("rows_read", name, rows, entities)

    def source_ended(self, name: str, outcome: str, rows: int) -> None:
        self._tell("source_ended", name, outcome, rows)


def serve(work: Callable[[dict[str, Any], Teller], Any]) -> None:
    """The child's life (derive_child.serve): the job, ``work``'s progress events and its result sent back."""
    derive_child.serve(lambda job, replies: work(job, Teller(replies)))
