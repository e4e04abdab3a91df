"""Sandboxed statements: one SQL statement run as a user in a process of its own, where its limits hold
whatever it computes. The SQL tab and ``cockpit sql`` run what a person typed through here.

In the server's own process a time limit is an interrupt, and DuckDB looks for an interrupt only between
vectors: one long expression runs to its end (``SELECT length(repeat('x', 1500000000))`` took 13.9 s
and 3 GB against a 2 s limit), and memory a function allocates outside DuckDB's buffer manager is not
held by ``memory_limit``. So each statement runs in a worker process of its own, started ahead (one
spare waits with the query layer imported and the views built, so a statement does not wait for an
interpreter to start) and used for that one statement only:

- its data segment is capped (``RLIMIT_DATA``: ``[query] memory_limit`` plus ``HEADROOM``), so any
  allocation past it fails, inside DuckDB as an "out of memory" error the statement ends with;
- its DuckDB connection is held to the same memory_limit, reads Parquet only under the data folder's
  ``snapshots/`` and ``derived/`` (``allowed_directories``, external access off, configuration locked);
- it builds the role views of the manifest on disk itself (nothing loaded into memory; built again
  if a newer manifest is published before its statement comes), says it is ready, and only then does
  the time limit start: DuckDB's own interrupt at the limit, SIGKILL ``GRACE_SECONDS`` after it. A kill
  stops any expression (measured: a 2 s limit ends in 2.3-2.6 s on a loaded two-core machine);
- it gets none of the server's environment (no credentials) and no file descriptor but its pipes;
- its result comes back as Arrow IPC bytes, at most ``MAX_RESULT_BYTES``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard.core.config import Settings, env
from dashboard.core.duck import quote_path, size_bytes
from dashboard.core.errors import AccessDenied, QueryError, QueryTimeout
from dashboard.core.store import Manifest
from dashboard.derived.tables import attach_views
from dashboard.query.facts import attach_customer_keys
from dashboard.query.security import Principal
from dashboard.query.warehouse import BASE, Warehouse, attach_pseudonymized, attach_role_views

HEADROOM = 2**30  # bytes the process may hold past DuckDB's memory_limit: Python, Arrow, the result
GRACE_SECONDS = 0.3  # past the time limit, DuckDB's own interrupt gets this long; then the process is killed
START_SECONDS = 120.0  # building the views of the manifest (before the time limit starts)
MAX_RESULT_BYTES = 64 * 2**20  # the result as Arrow IPC
AT_ONCE = 2  # statements running at once in one server process; one more waits up to its time limit
_slots = threading.BoundedSemaphore(AT_ONCE)
_PREPARED, _READY, _DATA, _ERROR = b"P", b"R", b"D", b"E"


class Stopped(QueryError):
    """The statement went past a limit other than time: ``reason`` is "memory", "result", "busy" or
    "crashed"; ``values`` are the figures its message names."""

    def __init__(self, reason: str, message: str, **values: Any) -> None:
        super().__init__(message)
        self.reason = reason
        self.values = values


class SandboxWarehouse(Warehouse):
    """The role views of the manifest on disk, on one bounded connection that reads nothing but the
    published Parquet files (no table is loaded into memory: one statement reads them once)."""

    def _build(self, manifest: Manifest) -> duckdb.DuckDBPyConnection:
        con = self._connect()
        try:
            attach_views(con, self.store, manifest, frozenset(), schema=BASE)
            attach_pseudonymized(con, self.store, manifest, BASE, frozenset())  # the build's tokens, as pages read
            attach_customer_keys(con, BASE, frozenset())  # the facts' customer_key, as views
            attach_role_views(con, BASE, key=self._pseudonym_key)
            confine(con, [self.store.snapshots, self.store.derived])
        except BaseException:
            con.close()
            raise
        return con


def confine(con: duckdb.DuckDBPyConnection, folders: Sequence[Path]) -> None:
    """From now on ``con`` reads files only under ``folders``, loads no extension, and no statement can
    change its settings back (DuckDB refuses to turn external access on again while it runs)."""
    allowed = ", ".join(quote_path(f) for f in folders)  # our own data folder's paths, quoted
    con.execute(f"SET allowed_directories = [{allowed}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")


def run(settings: Settings, sql: str, user: Principal, timeout: float) -> pl.DataFrame:
    """``sql`` as ``user`` sees the data, in a process of its own, stopped at ``timeout`` seconds and at
    ``[query] memory_limit``. Raises QueryTimeout, AccessDenied, QueryError (the engine's message) or
    Stopped."""
    if not _slots.acquire(timeout=timeout):
        raise Stopped("busy", f"{AT_ONCE} queries are running already: try again in a moment", n=AT_ONCE)
    try:
        return _run(settings, sql, user, timeout)
    finally:
        _slots.release()


def keep_spare(keep: bool) -> None:
    """Whether a spare worker waits for the next statement (a server: yes; a one-off command: no)."""
    global _keep_spare
    _keep_spare = keep


@dataclass
class _Worker:
    settings: Settings
    proc: subprocess.Popen[bytes]
    requests: Connection
    replies: Connection
    prepared: bool = False  # it has said its views are built: a statement starts at once

    def prepare(self, seconds: float) -> bytes | None:
        """Wait up to ``seconds`` for the views: _PREPARED, or None / b"" as ``_receive`` says."""
        if not self.prepared:
            reply = _receive(self.replies, seconds)
            self.prepared = reply == _PREPARED
            if not self.prepared:
                return reply
        return _PREPARED

    def stop(self, wait: bool = True) -> None:
        """Kill it (it has done its one statement, or is past its limit); ``wait=False`` leaves the reaping
        (and the kernel's freeing of a big process's memory) to a thread, so the caller goes on at once."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.requests.close()
        self.replies.close()
        if wait:
            self.proc.wait()
        else:
            threading.Thread(target=self.proc.wait, name="cockpit-sql-reap", daemon=True).start()


_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the dashboard package
_BOOT = f"import sys; sys.path.insert(0, {_ROOT!r}); from dashboard.query.sandbox import serve_one; serve_one()"
_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR")  # all of the environment a worker gets
_spare: _Worker | None = None
_keep_spare = True
_spare_lock = threading.Lock()


def _start(settings: Settings) -> _Worker:
    """A worker process for ``settings``: it imports the query layer, caps its memory and builds the views,
    then waits for its one statement on stdin."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _BOOT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={name: value for name in _ENVIRONMENT if (value := env(name))},  # no credentials, no config
    )
    assert proc.stdin is not None and proc.stdout is not None
    requests, replies = Connection(os.dup(proc.stdin.fileno())), Connection(os.dup(proc.stdout.fileno()))
    proc.stdin.close()
    proc.stdout.close()
    # pickled, from this process to its own child; on a thread, as a big config could fill the pipe before
    # the worker has started reading
    threading.Thread(target=_send_quietly, args=(requests, settings), name="cockpit-sql-start", daemon=True).start()
    return _Worker(settings, proc, requests, replies)


def _send_quietly(requests: Connection, message: Any) -> None:
    with contextlib.suppress(OSError):  # the worker died at start: the statement finds it gone and says so
        requests.send(message)


def warm(settings: Settings, wait: bool = False) -> None:
    """Have a spare worker for ``settings`` start now (the SQL tab calls this when it is shown), and with
    ``wait`` until it has built its views (tests: the lock is held meanwhile)."""
    global _spare
    with _spare_lock:
        if _spare is not None and (_spare.settings != settings or _spare.proc.poll() is not None):
            _spare.stop()
            _spare = None
        if _spare is None:
            _spare = _start(settings)
        if wait:
            _spare.prepare(START_SECONDS)


def _take(settings: Settings) -> _Worker:
    """The spare worker when it is for the same settings (a new one otherwise), and a new spare."""
    global _spare
    with _spare_lock:
        worker, _spare = _spare, None
        if worker is not None and (worker.settings != settings or worker.proc.poll() is not None):
            worker.stop()
            worker = None
        if worker is None:
            worker = _start(settings)
        if _keep_spare:
            _spare = _start(settings)
    return worker


def _run(settings: Settings, sql: str, user: Principal, timeout: float) -> pl.DataFrame:
    worker = _take(settings)
    try:
        reply = worker.prepare(START_SECONDS)
        if reply == _PREPARED:
            statement = {"sql": sql, "user": user, "timeout": timeout, "max_bytes": MAX_RESULT_BYTES}
            _send_quietly(worker.requests, statement)  # the worker is reading: it said it is prepared
            reply = _receive(worker.replies, START_SECONDS)
        if reply is None:
            raise QueryError(f"the query's process did not get ready in {START_SECONDS:g} s")
        if reply == _READY:  # the time limit starts now
            reply = _receive(worker.replies, timeout + GRACE_SECONDS)
        if reply is None:
            worker.proc.kill()
            raise QueryTimeout(f"the query ran longer than {timeout:g} s and was stopped")
        if reply == b"":
            try:
                code = worker.proc.wait(5)
            except subprocess.TimeoutExpired:  # it closed its pipe but lives on: stop it
                worker.proc.kill()
                code = worker.proc.wait()
            why = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
            raise Stopped("crashed", f"the query's process ended unexpectedly ({why}); nothing was returned", code=why)
        if reply[:1] == _DATA:
            return pl.read_ipc(io.BytesIO(reply[1:]))
        raise _error(json.loads(reply[1:]), settings, timeout)
    finally:
        worker.stop(wait=False)


def _receive(replies: Connection, seconds: float) -> bytes | None:
    """The worker's next message; None when none came in ``seconds``; b"" when the worker is gone."""
    try:
        if not replies.poll(seconds):
            return None
        return replies.recv_bytes(MAX_RESULT_BYTES + 1024)
    except (EOFError, OSError):
        return b""


def _error(info: dict[str, Any], settings: Settings, timeout: float) -> QueryError:
    kind, message = info.get("kind"), str(info.get("message", ""))
    if kind == "timeout":
        return QueryTimeout(f"the query ran longer than {timeout:g} s and was stopped")
    if kind == "access":
        return AccessDenied(message, str(info.get("detail", "")))
    if kind == "memory":
        limit = settings.query.memory_limit
        return Stopped("memory", f"the query needed more memory than the {limit} allowed and was stopped", limit=limit)
    if kind == "result":
        mb = MAX_RESULT_BYTES // 2**20
        return Stopped("result", f"the result is larger than {mb} MB: select fewer rows or shorter columns", mb=mb)
    return QueryError(message)


# -- the worker ------------------------------------------------------------------------------------
def serve_one() -> None:
    """A worker's life: its settings and then one statement read from stdin, the replies written to
    stdout, then exit."""
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the replies
    requests = Connection(os.dup(0), writable=False)
    try:
        settings: Settings = requests.recv()  # from the process that started this one
        wh, failed = _prepare(settings)
        replies.send_bytes(_PREPARED)  # a failure is said when the statement comes
        statement = requests.recv()
    except (EOFError, OSError):  # that process stopped before it needed this spare
        os._exit(0)
    if failed is not None:
        _send_error(replies, *failed)
    else:
        _serve(replies, wh, **statement)
    replies.close()
    os._exit(0)  # no interpreter shutdown: DuckDB's threads may still be stopping


def _prepare(settings: Settings) -> tuple[SandboxWarehouse, tuple[str, str] | None]:
    """Cap this process's memory and build the views, before any statement arrives."""
    wh = SandboxWarehouse(settings)
    try:
        cap = size_bytes(settings.query.memory_limit) + HEADROOM
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        cap = cap if hard == resource.RLIM_INFINITY else min(cap, hard)  # never above what the system allows
        resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
        wh.manifest  # noqa: B018 — builds the views
    except QueryError as e:
        return wh, ("error", e.message)
    except Exception as e:
        return wh, ("error", f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}")
    return wh, None


def _serve(
    replies: Connection, wh: SandboxWarehouse, sql: str, user: Principal, timeout: float, max_bytes: int
) -> None:
    """Say ready, run, send the result or the error."""
    try:
        wh.manifest  # noqa: B018 — a manifest published since the views were built: built again, before the clock
        replies.send_bytes(_READY)
        buf = io.BytesIO()
        wh.sql(sql, user=user, timeout=timeout).write_ipc(buf)
        if buf.tell() > max_bytes:
            _send_error(replies, "result", "")
        else:
            replies.send_bytes(_DATA + buf.getvalue())
    except QueryTimeout as e:
        _send_error(replies, "timeout", e.message)
    except AccessDenied as e:
        _send_error(replies, "access", e.message, e.detail)
    except QueryError as e:
        out_of_memory = isinstance(e.__cause__, duckdb.OutOfMemoryException)
        _send_error(replies, "memory" if out_of_memory else "error", e.message)
    except MemoryError:
        _send_error(replies, "memory", "")
    except Exception as e:  # anything else is said, not hidden: the parent shows its first line
        _send_error(replies, "error", f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}")


def _send_error(replies: Connection, kind: str, message: str, detail: str = "") -> None:
    with contextlib.suppress(OSError):  # the parent stopped waiting
        replies.send_bytes(_ERROR + json.dumps({"kind": kind, "message": message, "detail": detail}).encode())
