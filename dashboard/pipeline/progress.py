"""A refresh's progress: its steps (each source, the derived build's steps, the publish), the rows each
read or wrote, the time taken and an estimate of what is left, from the step times the last finished
refresh recorded (``runs/step_times.json``).

Told three ways: plain lines (logs, pipes, cron), a live view in a terminal (``live_display``), and a
progress file, ``runs/progress/<pid>-<id>.json``, replaced whole at each step and removed when the
refresh ends, which the admin page reads. A killed refresh leaves its file behind; its process is gone,
so readers skip it and the next refresh removes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from dashboard.core.store import Store, now_utc, write_json

# The derived build's steps, in order: the name its time is recorded under, and what it says as it starts.
DERIVED_STEPS: dict[str, str] = {
    "identity": "identity resolution",
    "quality": "quality tables",
    "analytics": "channel analytics",
    "golden": "golden customer records",
    "churn": "churn scores",
}
DERIVING = "deriving: "  # how the derived build's progress line of a starting step begins
BESIDE = "deriving (in parallel): "  # ... of a step started while the one running goes on
PUBLISH = "publish"
WAITING, RUNNING, DONE = "waiting", "running", "done"
_FOLDER, _TIMES = "progress", "step_times.json"


class Lap(Protocol):
    """Hears a derived step's name as it ends, with the rows it wrote where that means something."""

    def __call__(self, step: str, rows: int | None = None) -> None: ...


@dataclass
class Step:
    name: str  # a source's name, "derive.<step>" or "publish": what its time is recorded under
    label: str
    source: str | None = None
    state: str = WAITING
    rows: int | None = None
    seconds: float = 0.0  # done: its time; running: so far, as of the progress's updated_at
    outcome: str | None = None  # a source: published | quarantined


@dataclass
class RefreshProgress:
    pid: int
    started_at: str  # ISO time, UTC
    steps: list[Step]
    updated_at: float = 0.0  # epoch seconds of the last step event
    elapsed: float = 0.0  # as of updated_at
    remaining: float | None = None  # seconds left as of updated_at; None before a refresh has recorded times
    finished: bool = False
    process_started: str | None = None  # when its process started (Linux): a later process given the pid is not it

    @property
    def current(self) -> Step | None:
        return next((s for s in self.steps if s.state == RUNNING), None)

    @property
    def done(self) -> int:
        return sum(s.state == DONE for s in self.steps)

    def at(self, now: float) -> RefreshProgress:
        """As it stands at ``now``: the running step's time, the elapsed and remaining time moved on."""
        if self.finished:
            return self
        gone = max(now - self.updated_at, 0.0)
        steps = [replace(s, seconds=s.seconds + gone) if s.state == RUNNING else s for s in self.steps]
        left = None if self.remaining is None else max(self.remaining - gone, 0.0)
        return replace(self, steps=steps, elapsed=self.elapsed + gone, remaining=left, updated_at=now)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RefreshProgress:
        return cls(**{**data, "steps": [Step(**s) for s in data["steps"]]})


def duration(seconds: float, units: tuple[str, ...] = ("s", "min", "h")) -> str:
    """``4.2 s``, ``3 min 05 s``, ``1 h 02 min`` (``units``: the words for seconds, minutes, hours)."""
    s, m, h = units
    if seconds < 60:
        return f"{seconds:.1f} {s}"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} {m} {secs:02d} {s}" if minutes < 60 else f"{minutes // 60} {h} {minutes % 60:02d} {m}"


def estimate(progress: RefreshProgress) -> str | None:
    """What is left in words; None without recorded step times to go by."""
    if progress.remaining is None:
        return None
    return "almost done" if progress.remaining < 1 else f"about {duration(progress.remaining)} left"


class Tracker:
    """One refresh's progress, told as it goes. ``say`` hears plain lines, ``watch`` the whole progress
    after each event. Used as a context manager: the file goes at the end, however it ends. Sources read at
    once (``lanes`` of them: pipeline/refresh.py) each run as a step of their own; their events may come from
    several threads, told one at a time."""

    def __init__(
        self,
        store: Store,
        sources: list[str],
        say: Callable[[str], None] | None = None,
        watch: Callable[[RefreshProgress], None] | None = None,
        clock: Callable[[], float] = time.time,
        lanes: int = 1,
    ) -> None:
        self._lock = threading.RLock()
        self._lanes = max(lanes, 1)
        self._say = say or (lambda _line: None)
        self._watch = watch or (lambda _p: None)
        self._clock = clock
        self._times_path = store.runs / _TIMES
        self._times: dict[str, float] = _read(self._times_path) or {}
        folder = store.runs / _FOLDER
        remove_stale(folder)
        self.path = folder / f"{os.getpid()}-{secrets.token_hex(3)}.json"
        self._sources = sources
        self._t0 = self._last = clock()  # _last: the last step's start or end
        self._began: dict[str, float] = {}  # each running step's start
        derived = [*DERIVED_STEPS, *(n.removeprefix("derive.") for n in self._times if n.startswith("derive."))]
        self.progress = RefreshProgress(
            os.getpid(),
            now_utc().isoformat(),
            [Step(name, name, source=name) for name in sources]
            + [Step(f"derive.{d}", DERIVED_STEPS.get(d, d)) for d in dict.fromkeys(derived)]
            + [Step(PUBLISH, "publishing")],
            updated_at=self._t0,
            process_started=process_started(os.getpid()),
        )
        self._changed()

    # -- the sources ----------------------------------------------------------------------------------
    def source_started(self, name: str) -> None:
        with self._lock:  # beside the other sources being read
            self._start(name, beside=True)
            self._say(f"{self._position(name)} {name}: reading")

    def reading(self, name: str, rows: int) -> None:
        """Rows read so far (a source of several tables counts up table by table); no line of its own."""
        with self._lock:
            self._step(name).rows = rows
            self._changed()

    def rows_read(self, name: str, rows: int, entities: list[str]) -> None:
        with self._lock:
            self.reading(name, rows)
            self._say(f"    {name}: validating {', '.join(entities)} ({rows:,} rows read)")

    def source_ended(self, name: str, outcome: str, rows: int) -> None:
        with self._lock:
            step = self._end(name, rows, outcome)
            took = duration(step.seconds)
            self._say(f"{self._position(name)} {name}: {outcome} ({rows:,} rows) in {took}{self._left()}")

    # -- the derived build (``say`` and ``lap`` are build_derived's progress and lap) ---------------------
    def say(self, line: str) -> None:
        """A line of the derived build: one that starts a step starts it here too; the others pass on."""
        beside = line.startswith(BESIDE)
        if line.startswith(DERIVING) or beside:
            label = line.removeprefix(BESIDE if beside else DERIVING)
            key = next((k for k, v in DERIVED_STEPS.items() if v == label), label)
            if not any(s.name == f"derive.{key}" for s in self.progress.steps):  # a step the table lacks
                self.progress.steps.insert(len(self.progress.steps) - 1, Step(f"derive.{key}", label))
            self._start(f"derive.{key}", beside)
        self._say(line)

    def lap(self, step: str, rows: int | None = None) -> None:
        # A step the build names differently from its line ends whichever derived step is running.
        current = self.progress.current
        mine = current is None or self._step_state(f"derive.{step}") == RUNNING  # steps beside each other
        name = f"derive.{step}" if mine or current is None else current.name
        ended = self._end(name, rows)
        counted = f"{rows:,} rows" if rows is not None else "done"
        self._say(f"    {ended.label}: {counted} in {duration(ended.seconds)}{self._left()}")

    def publishing(self) -> None:
        self._start(PUBLISH)

    # -- the end ----------------------------------------------------------------------------------------
    def __enter__(self) -> Tracker:
        return self

    def finish(self) -> None:
        """The refresh ended well: its step times become the next one's estimate. Called while the publish
        lock is held, so two refreshes in one process never write them at once."""
        if self.progress.current is not None:
            self._end(self.progress.current.name, notify=False)
        self.progress.finished = True
        self.progress.steps = [s for s in self.progress.steps if s.state == DONE]  # a step gone from the build
        self._changed()
        took = {s.name: round(s.seconds, 3) for s in self.progress.steps}
        ours = {*self._sources, PUBLISH}
        others = {k: v for k, v in self._times.items() if k not in ours and not k.startswith("derive.")}
        write_json(self._times_path, {**others, **took})  # the sources not refreshed this time keep theirs
        self._say(f"refresh done in {duration(self._clock() - self._t0)}")

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    # -- inside ------------------------------------------------------------------------------------------
    def _position(self, name: str) -> str:
        return f"[{self._sources.index(name) + 1}/{len(self._sources)}]"

    def _step(self, name: str) -> Step:
        return next(s for s in self.progress.steps if s.name == name)

    def _step_state(self, name: str) -> str | None:
        return next((s.state for s in self.progress.steps if s.name == name), None)

    def _start(self, name: str, beside: bool = False) -> None:
        """``beside``: the steps running go on (sources read at once); otherwise a step that said nothing as it
        ended ends here."""
        for running in [] if beside else [s for s in self.progress.steps if s.state == RUNNING]:
            self._end(running.name, notify=False)
        self._step(name).state = RUNNING
        self._began[name] = self._last = self._clock()
        self._changed()

    def _end(self, name: str, rows: int | None = None, outcome: str | None = None, notify: bool = True) -> Step:
        step = self._step(name)
        now = self._clock()
        step.state, step.seconds, step.outcome = DONE, now - self._began.pop(name, self._last), outcome
        self._last = now
        step.rows = rows if rows is not None else step.rows
        if notify:
            self._changed()
        return step

    def _left(self) -> str:
        words = estimate(self.progress)
        return f" · {words}" if words else ""

    def _changed(self) -> None:
        now = self._clock()
        p = self.progress
        p.updated_at, p.elapsed = now, now - self._t0
        for step in p.steps:
            if step.state == RUNNING and step.name in self._began:
                step.seconds = now - self._began[step.name]
        p.remaining = self._remaining()
        write_json(self.path, p.to_dict())
        self._watch(p)

    def _remaining(self) -> float | None:
        """The recorded times of the steps left (less what the running ones took so far); the sources' shared
        by the lanes they are read in."""
        left = reading = 0.0
        for step in self.progress.steps:
            if step.state == DONE:
                continue
            past = self._times.get(step.name)
            if past is None:
                return None
            rest = max(past - step.seconds, 0.0) if step.state == RUNNING else past
            if step.source is not None:
                reading += rest
            else:
                left += rest
        return left + reading / self._lanes


# -- the readers ---------------------------------------------------------------------------------------------
def running(data_dir: Path) -> list[RefreshProgress]:
    """The refreshes running now, oldest first, as they stand now; a killed refresh's file is not one."""
    folder = data_dir / "runs" / _FOLDER
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    found = [p for d in map(_read, files) if d and _running(d) and (p := _load(d)) is not None]
    now = time.time()
    return sorted((p.at(now) for p in found), key=lambda p: p.started_at)


def remove_stale(folder: Path) -> None:
    """Remove the progress files of refreshes whose process is gone (killed midway)."""
    for f in folder.glob("*.json") if folder.is_dir() else []:
        data = _read(f)
        if data is not None and not _running(data):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()


def _load(data: dict[str, Any]) -> RefreshProgress | None:
    """``data`` as progress; None for a file of another shape (another version's, a stray one)."""
    with contextlib.suppress(KeyError, TypeError, ValueError):
        return RefreshProgress.from_dict(data)
    return None


def _running(data: dict[str, Any]) -> bool:
    """Is the refresh that wrote ``data`` still running: its process alive, and the same process?"""
    if not alive(data.get("pid")):
        return False
    recorded, now = data.get("process_started"), process_started(int(data["pid"]))
    return recorded is None or now is None or recorded == now


def process_started(pid: int) -> str | None:
    """When process ``pid`` started, in clock ticks since boot (field 22 of /proc/<pid>/stat); None elsewhere."""
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        return stat.rsplit(")", 1)[1].split()[19]  # the fields after the command name start at field 3
    return None


def _read(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, json.JSONDecodeError):
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    return None


def alive(pid: Any) -> bool:
    """Is process ``pid`` running (``pid``: as a record has it, perhaps missing)?"""
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, TypeError, ValueError):
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


# -- the terminal ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def live_display() -> Iterator[Callable[[RefreshProgress], None]]:
    """A live view on stderr, redrawn four times a second: each step with its rows and time, the current
    one spinning, and the estimate. Yields the ``watch`` to hand to the refresh."""
    from rich.console import Console, Group
    from rich.live import Live
    from rich.spinner import Spinner
    from rich.table import Table
    from rich.text import Text

    latest: list[RefreshProgress] = []
    spinner = Spinner("dots")

    def draw() -> Group:
        if not latest:
            return Group()
        p = latest[-1].at(time.time())
        table = Table.grid(padding=(0, 2))
        for s in p.steps:
            mark: Any = {DONE: Text("✔", style="green"), RUNNING: spinner}.get(s.state, Text("·", style="dim"))
            rows = "" if s.rows is None else f"{s.rows:,} rows"
            took = "" if s.state == WAITING else duration(s.seconds)
            style = "dim" if s.state == WAITING else ""
            table.add_row(mark, Text(s.label, style=style), Text(rows, justify="right"), took, s.outcome or "")
        left = estimate(p) or "no estimate yet (the first refresh records the step times)"
        if p.finished:
            left = "done"
        return Group(table, Text(f"{p.done}/{len(p.steps)} steps · {duration(p.elapsed)} elapsed · {left}"))

    def watch(p: RefreshProgress) -> None:  # a copy: the display draws on a thread of its own
        latest[:] = [replace(p, steps=[replace(s) for s in p.steps])]

    with Live(get_renderable=draw, console=Console(stderr=True), refresh_per_second=4, transient=False):
        yield watch
