"""Serving many sessions at once (issue 17): no Python callback runs inside Polars or DuckDB on the
serving path, and one Warehouse shared by many threads answers across publishes with no error, each
answer from one snapshot (the old or the new, never a mix), and the new one once it is swapped in.
"""

from __future__ import annotations

import ast
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboard.core.config import Settings
from dashboard.core.errors import QueryError
from dashboard.pipeline.refresh import refresh
from dashboard.query.explore.asof import AsOfWarehouse, earlier_snapshots
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
UI = ("components", "pages", "app.py")


# -- no Python callbacks in Polars or DuckDB ----------------------------------------------------
# A Python function run by a library's thread pool needs the GIL; a thread holding the GIL while it
# waits on that pool (a Polars conversion, say) then waits for ever: the server hangs.
CALLBACKS = frozenset({"map_elements", "map_batches", "map_rows", "map_groups", "apply", "create_function"})
POLARS_CALLBACKS = frozenset({"fold", "reduce", "cum_fold", "cum_reduce"})  # pl.fold(acc, lambda ..., exprs)


def serving_modules() -> Iterator[Path]:
    """Every module the server may run: all of dashboard/ but the demo generator (it runs in a refresh)."""
    for path in sorted(DASHBOARD.rglob("*.py")):
        if "demo" not in path.relative_to(DASHBOARD).parts[:1]:
            yield path


def _calls(path: Path) -> Iterator[tuple[int, ast.Attribute]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node.lineno, node.func


def test_no_python_callbacks_in_polars_or_duckdb_on_the_serving_path() -> None:
    found = []
    for path in serving_modules():
        for line, func in _calls(path):
            on_polars = isinstance(func.value, ast.Name) and func.value.id in {"pl", "polars"}
            if func.attr in CALLBACKS or (on_polars and func.attr in POLARS_CALLBACKS):
                found.append(f"{path.relative_to(DASHBOARD.parent)}:{line}: .{func.attr}(")
    assert not found, "vectorise these, or format plain lists outside Polars (README, Development):\n" + "\n".join(
        found
    )


def test_the_ui_converts_to_pandas_through_arrow_not_polars() -> None:
    """A Styler needs pandas; ``frame.to_arrow().to_pandas()`` converts on pyarrow's side, which waits for
    its threads with the GIL released, instead of Polars' ``to_pandas()``."""
    found = []
    for part in UI:
        root = DASHBOARD / part
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            for line, func in _calls(path):
                receiver = func.value
                through_arrow = (
                    isinstance(receiver, ast.Call)
                    and isinstance(receiver.func, ast.Attribute)
                    and receiver.func.attr == "to_arrow"
                )
                if func.attr == "to_pandas" and not through_arrow:
                    found.append(f"{path.relative_to(DASHBOARD.parent)}:{line}")
    assert not found, found


# -- one Warehouse, many readers, a few publishes ----------------------------------------------
NEW_LEADS = 5  # paid-search leads of rep1 each publish adds to the CRM
PUBLISHES = 3
READERS = [
    Principal("admin", "admin"),
    Principal("manager", "manager"),
    Principal("analyst", "analyst"),
    Principal("rep1", "sales", "rep1"),
] * 2
COUNTS = "SELECT (SELECT count(*) FROM leads) AS leads, (SELECT count(*) FROM lead_facts) AS facts"
WAIT = 120.0  # seconds: a bound on every wait below, never a pause
PACE = 0.05  # seconds between a reader's questions: busy, yet leaving the refresh room to run


def add_crm_leads(settings: Settings, publish: int) -> None:
    """``NEW_LEADS`` more paid-search leads owned by rep1, so every role's answers move with each publish."""
    lines = []
    for i in range(NEW_LEADS):
        n = 100 * publish + i
        day = date(2026, 3, 1) + timedelta(days=i)
        lines.append(f"CRM-{n},{day},百度推广,1390014{n:04d},p{n}@example.com,rep1")
    with open(settings.base_dir / "imports" / "crm" / "leads.csv", "a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def answers(wh: Warehouse, who: Principal) -> dict[str, tuple[Any, ...]]:
    """What a reader asks: the channels page's summary (a named query over the in-memory lead facts) and
    two counts from one query, over the leads' files and over the lead facts (a mix would disagree)."""
    summary = wh.run_query("channel_summary", user=who)
    return {"summary": tuple(summary.rows()), "counts": wh.sql(COUNTS, user=who).row(0)}


def expected_now(settings: Settings) -> dict[tuple[str, str], tuple[Any, ...]]:
    """Every reader's answers on the snapshot just published, from a warehouse of its own."""
    wh = Warehouse(settings)
    try:
        return {(who.username, kind): value for who in READERS for kind, value in answers(wh, who).items()}
    finally:
        wh.close()


def generation(kind: str, value: tuple[Any, ...], first: tuple[Any, ...]) -> int:
    """How many publishes an answer has seen: its paid-search (summary) or lead-facts count (counts) has
    grown by NEW_LEADS with each."""
    if kind == "counts":
        grown = value[1] - first[1]
    else:
        leads = {row[0]: row[1] for row in value}
        grown = leads["paid_search"] - {row[0]: row[1] for row in first}["paid_search"]
    return grown // NEW_LEADS


@dataclass
class Reader:
    who: Principal
    answers: list[tuple[str, int, tuple[Any, ...]]] = field(default_factory=list)  # kind, floor, answer
    seen: int = -1  # the newest generation this reader has been answered from


@dataclass
class Board:
    """What the readers report, under one condition the main thread waits on."""

    first: dict[tuple[str, str], tuple[Any, ...]]
    cond: threading.Condition = field(default_factory=threading.Condition)
    newest: int = 0  # the newest generation any reader has been answered from
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def wait_for(self, done: Callable[[], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: done() or bool(self.errors), timeout=WAIT), "readers stalled"
        assert not self.errors, "\n".join(self.errors)


def read(wh: Warehouse, reader: Reader, board: Board) -> None:
    try:
        while not board.stop.is_set():
            floor = board.newest  # an answer begun after another reader got generation g is from g or later
            assert wh.version >= 1 and "sources" in wh.manifest
            for kind, value in answers(wh, reader.who).items():
                gen = generation(kind, value, board.first[(reader.who.username, kind)])
                with board.cond:
                    reader.answers.append((kind, floor, value))
                    reader.seen = max(reader.seen, gen)
                    board.newest = max(board.newest, gen)
                    board.cond.notify_all()
            board.stop.wait(PACE)
    except BaseException:
        with board.cond:
            board.errors.append(f"{reader.who.username}: {traceback.format_exc()}")
            board.cond.notify_all()


def test_readers_across_publishes_see_one_snapshot_each_and_no_error(company: Settings) -> None:
    expected = [expected_now(company)]
    board = Board(first=expected[0])
    wh = Warehouse(company)  # shared, as the server shares one between sessions
    readers = [Reader(who) for who in READERS]
    threads = [threading.Thread(target=read, args=(wh, r, board), daemon=True) for r in readers]
    for thread in threads:
        thread.start()
    try:
        board.wait_for(lambda: all(r.seen >= 0 for r in readers))
        for publish in range(1, PUBLISHES + 1):
            add_crm_leads(company, publish)
            result = refresh(company, ["crm"])  # while the readers read
            assert result.exit_code == 0, [r.reasons for r in result.sources]
            expected.append(expected_now(company))
            board.wait_for(lambda p=publish: all(r.seen >= p for r in readers))  # each reader sees it
    finally:
        board.stop.set()
        for thread in threads:
            thread.join(timeout=WAIT)
    assert not any(t.is_alive() for t in threads)
    assert not board.errors, "\n".join(board.errors)
    assert wh.version == wh.store.read_manifest()["version"]

    for reader in readers:
        assert len(reader.answers) >= 2 * (PUBLISHES + 1)
        for kind, floor, value in reader.answers:
            key = (reader.who.username, kind)
            gen = generation(kind, value, expected[0][key])
            assert 0 <= gen <= PUBLISHES and value == expected[gen][key], (key, value)  # one snapshot, whole
            assert gen >= floor, (key, gen, floor)  # never older than an answer already given
    # the test moved what it meant to: every role's counts grew with each publish
    # rep1's leads: their own, and the 3 unowned web-form leads of their customers (README: "records linked to
    # those customers"); their funnel's facts: their own leads only
    assert [e[("rep1", "counts")] for e in expected] == [(13 + 5 * g, 10 + 5 * g) for g in range(PUBLISHES + 1)]
    assert [e[("admin", "counts")][1] for e in expected] == [60 + 5 * g for g in range(PUBLISHES + 1)]
    wh.close()


class CountingBuilds(Warehouse):
    """A Warehouse that counts its builds (the view building the issue saw run several times at once)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.builds: list[int] = []

    def _build(self, manifest: dict[str, Any]) -> Any:
        self.builds.append(int(manifest.get("version", 0)))
        return super()._build(manifest)


def together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` in n threads released at once; their results, or the first error's traceback."""
    barrier, results, errors = threading.Barrier(n, timeout=WAIT), [None] * n, []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert not any(t.is_alive() for t in threads) and not errors, "\n".join(errors)
    return results


def test_a_cold_start_builds_the_views_once_for_every_session_signing_in(company: Settings) -> None:
    wh = CountingBuilds(company)
    seen = together(8, lambda i: (wh.version, answers(wh, READERS[i])["counts"]))
    assert wh.builds == [1]
    assert {who.username: counts for who, (version, counts) in zip(READERS, seen, strict=True)} == {
        "admin": (60, 60),
        "manager": (60, 60),
        "analyst": (60, 60),
        "rep1": (13, 10),  # their 10 leads and their customers' 3 unowned web forms; the facts their own 10
    }
    wh.close()


def test_close_lets_running_queries_finish_and_refuses_later_ones(company: Settings) -> None:
    wh = Warehouse(company)
    board = Board(first={})
    refused: list[str] = []
    answered = [0] * len(READERS)

    def read_until_closed(i: int) -> None:
        try:
            while True:
                wh.sql(COUNTS, user=READERS[i])
                with board.cond:
                    answered[i] += 1
                    board.cond.notify_all()
        except QueryError as e:
            with board.cond:
                refused.append(e.message)
        except BaseException:
            with board.cond:
                board.errors.append(traceback.format_exc())
                board.cond.notify_all()

    threads = [threading.Thread(target=read_until_closed, args=(i,), daemon=True) for i in range(len(READERS))]
    for thread in threads:
        thread.start()
    board.wait_for(lambda: all(answered))
    wh.close()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert not any(t.is_alive() for t in threads) and not board.errors, board.errors
    assert refused == ["the warehouse has been closed"] * len(READERS)
    with pytest.raises(QueryError, match="closed"):
        _ = wh.version


def test_an_as_of_warehouse_is_built_once_and_stays_at_its_snapshot(company: Settings) -> None:
    add_crm_leads(company, 1)
    assert refresh(company, ["crm"]).exit_code == 0
    live = Warehouse(company)
    earlier = earlier_snapshots(live.store, live.manifest)["crm"][0]

    class CountingAsOf(AsOfWarehouse):
        builds = 0

        def _build(self, manifest: dict[str, Any]) -> Any:
            CountingAsOf.builds += 1
            return super()._build(manifest)

    then = CountingAsOf(company, "crm", earlier)
    assert together(8, lambda i: then.sql(COUNTS, user=SYSTEM).row(0)) == [(60, 60)] * 8
    add_crm_leads(company, 2)
    assert refresh(company, ["crm"]).exit_code == 0
    assert (
        then.sql(COUNTS, user=SYSTEM).row(0) == (60, 60) and CountingAsOf.builds == 1
    )  # frozen: the publish does not move it
    assert live.sql(COUNTS, user=SYSTEM).row(0) == (70, 70)
    then.close()
    live.close()
