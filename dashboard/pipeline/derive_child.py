"""The derived build in a process of its own (issue 22). A refresh's sources leave their memory in the
refresh's process (4.1 GB at large: the allocators keep what the frames freed), and the derived build
then peaked on top of it; a new interpreter starts without it, so the build's peak is its own.

The child gets the settings, the pending manifest and ``full`` over a pipe, builds, and sends back each
progress line and step lap as it happens, then the new manifest, or the error it raised (rebuilt here
with its type and message, so the refresh fails as it would in process). It dies with its parent: a
``kill -9`` of the refresh does not leave a build running. A crash point inside the build kills the
child, which the parent reports as ``DerivedBuildStopped``; the last good state stays current.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import pickle
import resource
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from dashboard.core.config import Settings
from dashboard.core.duck import process_rss, size_bytes, trim_heap
from dashboard.core.errors import CockpitError
from dashboard.core.store import Manifest, Store
from dashboard.pipeline.progress import Lap

# the child's lap also tells its peak memory so far (MB), which the refresh's step times record
ChildLap = Callable[[str, "int | None", float], None]

_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the dashboard package
_BOOT = f"import sys; sys.path.insert(0, {_ROOT!r}); from dashboard.pipeline.derive_child import serve; serve()"
CHILD_MEMORY_FLOOR = 2 * 2**30  # the child's [build_memory] at least, however much the refresh's process holds
_EXIT_WAIT = 60.0  # seconds a child that sent its result may take to exit before it is killed
_PR_SET_PDEATHSIG = 1


class DerivedBuildStopped(CockpitError):
    """The derived build's process ended without a result (killed, out of memory, crashed)."""


def builds_here(settings: Settings) -> bool:
    """Whether a refresh's derived build runs in the refresh's own process: ``[engine] derive_in_child`` off, or
    (engine duckdb) the process holds less than ``derive_in_process_below`` once glibc gave back what it kept
    free. A child starts without the memory the sources left (4.1 GB after a full refresh at large), but starts
    an interpreter and imports polars, DuckDB, the build's modules and churn's model libraries again: ~1.4 of an
    incremental ERP refresh's ~10.5 CPU-s at medium, whose process holds ~0.5 GB then. With engine spark the build
    is always a child: its Spark application is its own, not the sources' session."""
    engine = settings.engine
    if not engine.derive_in_child:
        return True
    if engine.kind != "duckdb":
        return False
    trim_heap()
    return process_rss() < size_bytes(engine.derive_in_process_below)


def child_settings(settings: Settings, held: int) -> Settings:
    """The child's settings: ``[build_memory]`` less ``held`` (what the refresh's process holds while the child
    builds; at least CHILD_MEMORY_FLOOR), so that the two processes together stay within it. Measured at large
    (session 19): a child sized to the whole 6 GB beside a refresh's process holding ~1.3 GB peaked at 6.30 GB."""
    budget = max(size_bytes(settings.build_memory) - held, CHILD_MEMORY_FLOOR)
    return settings.model_copy(update={"build_memory": f"{budget // 2**20}MiB"})


def build_in_child(
    settings: Settings,
    manifest: Manifest,
    progress: Callable[[str], None],
    lap: ChildLap,
    *,
    full: bool = False,
) -> Manifest:
    """``build_derived(settings, Store(settings.data_path), manifest, ...)`` in a new process: its progress
    lines reach ``progress`` and its laps ``lap`` (with the child's peak RSS in MB) as they happen."""
    proc, requests, replies = start_child(_BOOT)
    try:
        with contextlib.suppress(OSError):  # a child dead at start: its end below says so
            requests.send({"settings": child_settings(settings, process_rss()), "manifest": manifest, "full": full})
        requests.close()
        while True:
            try:
                message = replies.recv()
            except (EOFError, OSError):
                raise _stopped(proc) from None
            kind, *body = message
            if kind == "say":
                progress(body[0])
            elif kind == "lap":
                lap(body[0], body[1], body[2])
            elif kind == "done":
                return dict(body[0])
            else:  # "error"
                raise _rebuilt(*body)
    finally:
        replies.close()
        _end(proc)


def start_child(boot: str) -> tuple[subprocess.Popen[bytes], Connection, Connection]:
    """A new interpreter running ``boot`` (``serve``) with this process's pid, and the pipes to and from it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", boot, str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    requests, replies = Connection(os.dup(proc.stdin.fileno())), Connection(os.dup(proc.stdout.fileno()))
    proc.stdin.close()
    proc.stdout.close()
    return proc, requests, replies


def _end(proc: subprocess.Popen[bytes]) -> None:
    """Wait for the child to exit (it does right after its result); kill it when it does not, or when this
    process stops waiting for another reason (an interrupt)."""
    try:
        proc.wait(_EXIT_WAIT if proc.returncode is None else 0)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def _stopped(
    proc: subprocess.Popen[bytes],
    what: str = "the derived build's process",
    error: type[CockpitError] = DerivedBuildStopped,
) -> CockpitError:
    """``error`` saying how ``proc`` (``what``: a child of a refresh, pipeline/source_child.py too) ended."""
    try:
        code = proc.wait(_EXIT_WAIT)
    except subprocess.TimeoutExpired:  # it closed its pipe but lives on
        proc.kill()
        code = proc.wait()
    how = f"was killed ({signal.Signals(-code).name})" if code < 0 else f"exited with status {code}"
    hint = " — out of memory?" if code == -signal.SIGKILL else ""
    return error(f"{what} {how}{hint} before it finished; nothing was published, the last good state stays current")


def _rebuilt(blob: bytes | None, module: str, name: str, message: str, trace: str) -> BaseException:
    """The child's exception as it was raised there: unpickled, or its class with its message."""
    exc: BaseException | None = None
    if blob is not None:
        with contextlib.suppress(Exception):
            exc = pickle.loads(blob)
    if exc is None:
        try:
            cls = getattr(importlib.import_module(module), name)
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise TypeError(name)
            exc = cls.__new__(cls)
            exc.args = (message,)
            if isinstance(exc, CockpitError):
                exc.message = message
        except Exception:
            exc = RuntimeError(f"{name}: {message}")
    exc.add_note(f"raised in the derived build's process:\n{trace}")
    return exc


# -- the child ---------------------------------------------------------------------------------------
def serve(work: Callable[[dict[str, Any], Connection], Any] | None = None) -> None:
    """The child's life: the job from stdin, the messages to stdout, then exit. ``work``: what it makes of the
    job, sending its messages (by default the derived build: ``run_job``); its result is sent as "done"."""
    _die_with(int(sys.argv[1]))
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the replies
    requests = Connection(os.dup(0), writable=False)
    try:
        job = requests.recv()
    except (EOFError, OSError):  # the refresh stopped before it sent the job
        os._exit(1)
    try:
        out = run_job(job["settings"], job["manifest"], job["full"], replies) if work is None else work(job, replies)
        replies.send(("done", out))
    except BaseException as e:  # every error goes back to the refresh, which raises it
        replies.send(("error", *_portable(e)))
    finally:
        sys.stderr.flush()
    replies.close()
    os._exit(0)  # no interpreter shutdown: DuckDB's threads may still be stopping


def run_job(settings: Settings, manifest: Manifest, full: bool, replies: Connection) -> Manifest:
    from dashboard.pipeline.derive import build_derived

    def say(line: str) -> None:
        replies.send(("say", line))

    def lap(step: str, rows: int | None = None) -> None:
        replies.send(("lap", step, rows, peak_rss_mb()))

    done: Lap = lap
    return build_derived(settings, Store(settings.data_path), manifest, say, done, full=full)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _portable(e: BaseException) -> tuple[bytes | None, str, str, str, str]:
    """The exception pickled when it comes back whole, with its class's place and its message besides."""
    blob: bytes | None = None
    with contextlib.suppress(Exception):
        data = pickle.dumps(e)
        pickle.loads(data)  # some exceptions pickle but cannot be rebuilt from their args
        blob = data
    message = e.message if isinstance(e, CockpitError) else str(e)
    trace = "".join(traceback.format_exception(e))
    return blob, type(e).__module__, type(e).__qualname__, message, trace


def _die_with(parent: int) -> None:
    """End this process when ``parent`` ends, however it ends: the kernel's parent-death signal on Linux,
    and a watch on the parent's pid (other systems, and a parent gone before the signal was asked for)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)

    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="cockpit-derive-parent", daemon=True).start()
